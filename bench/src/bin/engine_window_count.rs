//! Windowed count through the streamkit engine (in-process, no broker, RocksDB store) against
//! the same read-modify-write loop made directly with the rocksdb crate, in one process.
//!
//! `cargo run --release -p streamkit-bench --bin engine_window_count -- --records 1000000 --keys 100000`

use std::time::{Duration, Instant};

use clap::Parser;
use rocksdb::{DB, Options, WriteOptions};
use streamkit::prelude::*;
use streamkit::window::TimeWindows;
use streamkit_bench::{median, rate, records};

#[derive(Parser)]
struct Args {
    /// Records per run.
    #[arg(long, default_value_t = 1_000_000)]
    records: usize,
    /// Distinct keys.
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// Runs of each contender (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

const WINDOW_MS: i64 = 60_000;

/// The limit: read, increment and write `key ‖ window start` in RocksDB, WAL off.
fn raw_rocksdb(input: &[(String, i64)]) -> anyhow::Result<Duration> {
    let dir = tempfile::tempdir()?;
    let mut opts = Options::default();
    opts.create_if_missing(true);
    let db = DB::open(&opts, dir.path())?;
    let mut write = WriteOptions::default();
    write.disable_wal(true);
    let started = Instant::now();
    let mut key = Vec::with_capacity(32);
    for (k, ts) in input {
        let start = ts.max(&0) / WINDOW_MS * WINDOW_MS;
        key.clear();
        key.extend_from_slice(k.as_bytes());
        key.extend_from_slice(&start.to_be_bytes());
        let count = db.get(&key)?.map_or(0, |v| {
            i64::from_be_bytes(v.as_slice().try_into().unwrap_or([0; 8]))
        });
        db.put_opt(&key, (count + 1).to_be_bytes(), &write)?;
    }
    db.flush()?;
    Ok(started.elapsed())
}

/// streamkit: `group_by_key().windowed_by(tumbling 60 s).count()` with a RocksDB store,
/// through the test driver (the engine without a broker).
fn engine(input: &[(String, i64)], caching: bool) -> anyhow::Result<Duration> {
    let b = StreamsBuilder::new();
    let materialized = Materialized::named("counts");
    let materialized = if caching {
        materialized.with_caching_enabled()
    } else {
        materialized
    };
    b.stream("in", Consumed::with(Serdes::string(), Serdes::unit()))
        .group_by_key(Grouped::with(Serdes::string(), Serdes::unit()))
        .windowed_by(TimeWindows::tumbling(Duration::from_millis(
            WINDOW_MS as u64,
        )))
        .count(materialized.with_logging_disabled());
    let dir = tempfile::tempdir()?;
    let driver = TopologyTestDriver::with_config(
        b.build()?,
        StreamsConfig::new("bench").state_dir(dir.path()),
    )?;
    driver.set_commit_every(10_000);
    let topic = driver.input_topic("in", Serdes::string(), Serdes::unit());
    let started = Instant::now();
    for (k, ts) in input {
        topic.pipe_at(k.clone(), (), *ts)?;
    }
    driver.close()?;
    Ok(started.elapsed())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!(
        "windowed count, {} records, {} keys, {} runs each (medians)",
        args.records, args.keys, args.runs
    );
    for skewed in [false, true] {
        let input = records(args.records, args.keys, skewed);
        let (mut raw, mut eng, mut cached) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..args.runs {
            raw.push(rate(input.len(), raw_rocksdb(&input)?));
            eng.push(rate(input.len(), engine(&input, false)?));
            cached.push(rate(input.len(), engine(&input, true)?));
        }
        let label = if skewed {
            "skewed keys"
        } else {
            "uniform keys"
        };
        println!("{label}:");
        let runs = |xs: &[f64]| {
            xs.iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!(
            "  runs: raw {} | engine {} | engine+cache {}",
            runs(&raw),
            runs(&eng),
            runs(&cached)
        );
        let (raw, eng, cached) = (median(raw), median(eng), median(cached));
        println!("  raw rocksdb loop        {raw:>12.0} records/s");
        println!(
            "  streamkit engine        {eng:>12.0} records/s   ratio {:.2}",
            eng / raw
        );
        println!(
            "  streamkit engine+cache  {cached:>12.0} records/s   ratio {:.2}",
            cached / raw
        );
    }
    Ok(())
}
