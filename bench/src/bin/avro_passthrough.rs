//! Avro against JSON through the same passthrough topology, in one process: records decoded
//! into a typed struct and encoded again, through `TopologyTestDriver` (no broker, so the
//! serdes are what is measured), Avro in the Confluent wire format through an embedded schema
//! registry. Also counts the registry requests made while the Avro runs process (the schema
//! ids are cached: the count must be 0 once the first record has registered and looked up).
//!
//! `cargo run --release -p streamkit-bench --bin avro_passthrough -- --records 1000000`

use std::time::{Duration, Instant};

use anyhow::ensure;
use clap::Parser;
use serde::{Deserialize, Serialize};
use streamkit::prelude::*;
use streamkit::registry::{EmbeddedRegistry, RegistryConfig};
use streamkit::serde::Serde;
use streamkit::serde::avro::{Avro, RegistryClient};
use streamkit::testing::EmbeddedBroker;
use streamkit_bench::{median, rate};

#[derive(Parser)]
struct Args {
    /// Records per run.
    #[arg(long, default_value_t = 1_000_000)]
    records: usize,
    /// Runs of each contender (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

/// A CTA-style event: the kind of record the seed pipelines send through the registry.
#[derive(Debug, Clone, Serialize, Deserialize, apache_avro::AvroSchema)]
#[avro(namespace = "org.chicago.cta")]
struct Event {
    station_id: i32,
    station_name: String,
    line: String,
    train_id: String,
    timestamp: i64,
    temperature: f64,
    in_service: bool,
}

fn events(n: usize) -> Vec<Event> {
    let names = [
        "Clark/Lake",
        "Belmont",
        "Howard",
        "O'Hare",
        "Harlem/Lake",
        "Jackson",
    ];
    let lines = ["blue", "red", "green"];
    (0..n)
        .map(|i| Event {
            station_id: 40_000 + (i % 300) as i32,
            station_name: names[i % names.len()].to_string(),
            line: lines[i % lines.len()].to_string(),
            train_id: format!("BL{:03}", i % 40),
            timestamp: 1_538_373_600_000 + i as i64 * 250,
            temperature: 40.0 + (i % 50) as f64 * 0.5,
            in_service: i % 17 != 0,
        })
        .collect()
}

/// One run: pre-encoded `values` piped through `stream(in, value serde) → to(out, serde)`;
/// the time from the first record piped to the last one processed.
fn run<S>(serde: impl Fn() -> S, values: &[Vec<u8>]) -> anyhow::Result<Duration>
where
    S: Serde<Event> + 'static,
{
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(Serdes::unit(), serde()))
        .to("out", Produced::with(Serdes::unit(), serde()));
    let driver = TopologyTestDriver::new(b.build()?)?;
    let input = driver.input_topic("in", Serdes::unit(), Serdes::bytes());
    let started = Instant::now();
    for v in values {
        input.pipe_raw(None, Some(v), 0)?;
    }
    let took = started.elapsed();
    let dropped = driver.metrics().dropped_records("deserialization");
    ensure!(dropped == 0, "{dropped} records failed to decode");
    driver.close()?;
    Ok(took)
}

fn encode<S: Serde<Event>>(serde: &S, events: &[Event]) -> anyhow::Result<Vec<Vec<u8>>> {
    events
        .iter()
        .map(|e| {
            let mut out = Vec::new();
            serde.serialize("in", e, &mut out)?;
            Ok(out)
        })
        .collect()
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let broker = EmbeddedBroker::start()?;
    let registry =
        EmbeddedRegistry::start(RegistryConfig::embedded(&broker).listen("127.0.0.1:0"))?;
    let client: RegistryClient = registry.client()?;
    let events = events(args.records);
    let json = Serdes::json::<Event>;
    let avro = || Avro::<Event>::registry(&client);
    let json_in = encode(&json(), &events)?;
    let avro_in = encode(&avro(), &events)?;
    let json_bytes: usize = json_in.iter().map(Vec::len).sum();
    let avro_bytes: usize = avro_in.iter().map(Vec::len).sum();
    println!(
        "passthrough, decode + encode of a 7-field record, {} records, {} runs each (medians); \
         {:.0} bytes/record JSON, {:.0} Avro",
        args.records,
        args.runs,
        json_bytes as f64 / args.records as f64,
        avro_bytes as f64 / args.records as f64
    );
    // A warm-up of each, so the output subject is registered and both ids are in the
    // client's cache (each run builds its serdes anew, as a restarted application would).
    run(json, &json_in[..1000.min(json_in.len())])?;
    run(avro, &avro_in[..1000.min(avro_in.len())])?;
    let (mut j, mut a) = (Vec::new(), Vec::new());
    let mut requests = 0;
    for _ in 0..args.runs {
        j.push(rate(json_in.len(), run(json, &json_in)?));
        let before = client.requests();
        a.push(rate(avro_in.len(), run(avro, &avro_in)?));
        requests += client.requests() - before;
    }
    let runs = |xs: &[f64]| {
        xs.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!("  runs: json {} | avro {}", runs(&j), runs(&a));
    let (j, a) = (median(j), median(a));
    println!("  JSON (serde_json)       {j:>12.0} records/s");
    println!(
        "  Avro (registry)         {a:>12.0} records/s   ratio {:.2} (target ≥ 0.70)",
        a / j
    );
    println!(
        "  registry requests during the Avro runs: {requests} (for {} records)",
        args.records * args.runs
    );
    Ok(())
}
