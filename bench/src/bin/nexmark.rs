//! Nexmark queries on streamkit, with events from the crates.io `nexmark` generator as JSON:
//! in-process (the topology in `TopologyTestDriver`, no broker — like Flink's published
//! figures, which use an in-process source) and through Kafka (a broker given by `--broker`).
//! Reports throughput per core, events ÷ CPU-seconds of this process (the Nexmark metric),
//! beside the published per-core figures of Flink 1.13 and RisingWave; prints Markdown.
//!
//! `cargo run --release -p streamkit-bench --bin nexmark -- --events 1000000 --runs 3`

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use nexmark::EventGenerator;
use nexmark::config::NexmarkConfig;
use nexmark::event::{Auction, Bid, Event, Person};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use streamkit::prelude::*;
use streamkit::window::{JoinWindows, TimeWindows};
use streamkit_bench::report::{Contender, Metric, Run};
use streamkit_bench::{cpu_seconds, peak_rss_kib};

#[derive(Parser)]
struct Args {
    /// Events per query run.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Runs of each query (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Queries, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "q0,q1,q2,q5,q7,q8")]
    queries: Vec<String>,
    /// A broker to run the queries through, `name=bootstrap` (repeatable; the mock broker,
    /// which has no admin API, is skipped).
    #[arg(long = "broker", value_parser = parse_kv)]
    brokers: Vec<(String, String)>,
    /// Names (of `--broker`) that are the embedded mock broker.
    #[arg(long = "embedded")]
    embedded: Vec<String>,
    /// librdkafka settings for one broker's clients, `name:key=value` (repeatable).
    #[arg(long = "client")]
    client: Vec<String>,
    /// Give up on one Kafka run after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected name=value, got {s:?}"))
}

/// Published throughput per core (events/s per core) — Flink 1.13 with an in-process
/// source, RisingWave with a Kafka source.
const PUBLISHED: &[(&str, Option<f64>, Option<f64>)] = &[
    ("q0", Some(155_000.0), Some(118_000.0)),
    ("q1", Some(158_000.0), None),
    ("q2", Some(175_000.0), None),
    ("q5", Some(22_100.0), Some(5_200.0)),
    ("q7", Some(12_300.0), Some(20_300.0)),
    ("q8", Some(146_000.0), None),
];

/// Targets per core against Flink's figure: ≥ 1× on q0–q2, ≥ 3× on q5 and q7.
fn flink_target(q: &str) -> Option<f64> {
    match q {
        "q0" | "q1" | "q2" => Some(1.0),
        "q5" | "q7" => Some(3.0),
        _ => None,
    }
}

/// The generator's events with a fixed base time (deterministic), as (key, JSON, timestamp):
/// the key is the auction of a bid, the id of an auction or a person.
fn events(n: u64) -> Vec<(String, Vec<u8>, i64)> {
    let config = NexmarkConfig {
        base_time: 1_700_000_000_000,
        ..NexmarkConfig::default()
    };
    EventGenerator::new(config)
        .take(n as usize)
        .map(|e| {
            let key = match &e {
                Event::Bid(b) => b.auction,
                Event::Auction(a) => a.id,
                Event::Person(p) => p.id,
            };
            let ts = e.timestamp() as i64;
            (
                key.to_string(),
                serde_json::to_vec(&e).expect("events serialize"),
                ts,
            )
        })
        .collect()
}

const SOURCE: &str = "nexmark-events";

/// The event stream, decoded from JSON.
fn event_stream(b: &StreamsBuilder, source: &str) -> KStream<String, Event> {
    b.stream(
        source,
        Consumed::with(Serdes::string(), Serdes::json::<Event>()),
    )
}

/// Bids of the event stream.
fn bids_of(events: &KStream<String, Event>) -> KStream<String, Bid> {
    events.flat_map_values(|e| match e {
        Event::Bid(bid) => Some(bid),
        _ => None,
    })
}

/// Bids of the event stream read from `source`.
fn bids(b: &StreamsBuilder, source: &str) -> KStream<String, Bid> {
    bids_of(&event_stream(b, source))
}

/// A q5 window's hottest auctions: the highest bid count and the auctions that have it.
type Hottest = (i64, Vec<i64>);

/// The topology of query `q`, reading `source`, writing `<q>-out` (prefixed by `out_prefix`).
fn topology(q: &str, source: &str, out_prefix: &str) -> anyhow::Result<Topology> {
    let b = StreamsBuilder::new();
    let out = format!("{out_prefix}{q}-out");
    match q {
        // q0 pass-through: every bid, as is.
        "q0" => bids(&b, source).to(&out, Produced::with(Serdes::string(), Serdes::json())),
        // q1 currency conversion: the price in euros.
        "q1" => bids(&b, source)
            .map_values(|mut bid| {
                bid.price = bid.price * 908 / 1000;
                bid
            })
            .to(&out, Produced::with(Serdes::string(), Serdes::json())),
        // q2 selection: bids on every 123rd auction, (auction, price).
        "q2" => bids(&b, source)
            .filter(|_, bid| bid.auction % 123 == 0)
            .map_values(|bid| (bid.auction, bid.price))
            .to(
                &out,
                Produced::with(Serdes::string(), Serdes::json::<(usize, usize)>()),
            ),
        // q5 hot items: bids per auction over hopping 10 s windows every 2 s, each window's
        // final counts (suppressed until it closes), then per window the maximum count and
        // the auctions that reach it.
        "q5" => {
            bids(&b, source)
                .group_by(
                    |_, bid| bid.auction as i64,
                    Grouped::with(Serdes::i64(), Serdes::json::<Bid>()).named("q5-by-auction"),
                )
                .windowed_by(TimeWindows::hopping(
                    Duration::from_secs(10),
                    Duration::from_secs(2),
                ))
                .count(Materialized::named("q5-counts"))
                .suppress(Suppressed::until_window_closes())
                .to_stream()
                .map(|wk, count| (wk.window.start, (wk.key, count)))
                .group_by_key(
                    Grouped::with(Serdes::i64(), Serdes::json::<(i64, i64)>())
                        .named("q5-by-window"),
                )
                .aggregate(
                    || (0i64, Vec::new()),
                    |_, &(auction, count), (max, mut hottest): Hottest| {
                        if count > max {
                            (count, vec![auction])
                        } else {
                            if count == max {
                                hottest.push(auction);
                            }
                            (max, hottest)
                        }
                    },
                    Materialized::named("q5-max").value_serde(Serdes::json::<Hottest>()),
                )
                .to_stream()
                .to(
                    &out,
                    Produced::with(Serdes::i64(), Serdes::json::<Hottest>()),
                );
        }
        // q7 highest bid: the highest bid of each tumbling 10 s window (a windowed reduce
        // over all bids, suppressed until the window closes), joined back with the bids on
        // the price (a stream-stream join within 10 s, both sides repartitioned by price),
        // keeping the bids of that window.
        "q7" => {
            let bids = bids_of(&event_stream(&b, source));
            let highest = bids
                .group_by(
                    |_, _| 0i64,
                    Grouped::with(Serdes::i64(), Serdes::json::<Bid>()).named("q7-all"),
                )
                .windowed_by(TimeWindows::tumbling(Duration::from_secs(10)))
                .reduce(
                    |a, b| if b.price > a.price { b } else { a },
                    Materialized::named("q7-max"),
                )
                .suppress(Suppressed::until_window_closes())
                .to_stream()
                .map(|wk, bid| (bid.price as i64, wk.window.start));
            bids.select_key(|_, bid| bid.price as i64)
                .join(
                    &highest,
                    |bid: &Bid, start: &i64| (bid.clone(), *start),
                    JoinWindows::of(Duration::from_secs(10)),
                    StreamJoined::with(Serdes::i64(), Serdes::json::<Bid>(), Serdes::i64())
                        .named("q7-join"),
                )
                .flat_map_values(|(bid, start)| {
                    let ts = bid.date_time as i64;
                    (ts >= start && ts < start + 10_000).then_some(bid)
                })
                .to(&out, Produced::with(Serdes::i64(), Serdes::json::<Bid>()));
        }
        // q8 monitor new users: people who opened an auction in the same tumbling 10 s window
        // they registered in (persons joined with auctions on id = seller within 10 s, kept
        // when both fall in one window): (id, name, window start), one row per auction.
        "q8" => {
            let all = event_stream(&b, source);
            let persons = all.flat_map_values(|e| match e {
                Event::Person(p) => Some(p),
                _ => None,
            });
            let auctions = all
                .flat_map_values(|e| match e {
                    Event::Auction(a) => Some(a),
                    _ => None,
                })
                .select_key(|_, a| a.seller.to_string());
            persons
                .join(
                    &auctions,
                    |p: &Person, a: &Auction| {
                        let window = p.date_time / 10_000;
                        (window == a.date_time / 10_000)
                            .then(|| (p.id, p.name.clone(), window * 10_000))
                    },
                    JoinWindows::of(Duration::from_secs(10)),
                    StreamJoined::with(
                        Serdes::string(),
                        Serdes::json::<Person>(),
                        Serdes::json::<Auction>(),
                    )
                    .named("q8-join"),
                )
                .flat_map_values(|row| row)
                .to(
                    &out,
                    Produced::with(Serdes::string(), Serdes::json::<(usize, String, u64)>()),
                );
        }
        other => bail!("unknown query {other}"),
    }
    Ok(b.build()?)
}

/// One in-process run of `q`, and how many records its tasks processed (source and internal
/// topics: the count a run through Kafka must reach).
fn in_process(q: &str, input: &[(String, Vec<u8>, i64)]) -> anyhow::Result<(Run, u64)> {
    let dir = tempfile::tempdir()?;
    let driver = TopologyTestDriver::with_config(
        topology(q, SOURCE, "")?,
        StreamsConfig::new(format!("nexmark-{q}")).state_dir(dir.path()),
    )?;
    driver.set_commit_every(10_000);
    let topic = driver.input_topic(SOURCE, Serdes::string(), Serdes::bytes());
    let (started, cpu) = (Instant::now(), cpu_seconds());
    for (k, v, ts) in input {
        topic.pipe_raw(Some(k.as_bytes()), Some(v), *ts)?;
    }
    let processed = driver.metrics().records_processed();
    driver.close()?;
    let run = Run {
        records: input.len() as u64,
        seconds: started.elapsed().as_secs_f64(),
        cpu_seconds: cpu_seconds() - cpu,
        peak_rss_kib: peak_rss_kib(),
    };
    Ok((run, processed))
}

/// Commit interval of the runs through Kafka.
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);
/// How long nothing may be processed, once the source topic is committed, before a run
/// through Kafka counts as done (see [`Kafka::run`]).
const QUIET: Duration = Duration::from_secs(3);

struct Kafka {
    name: String,
    bootstrap: String,
    client: Vec<(String, String)>,
}

impl Kafka {
    fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap);
        for (k, v) in &self.client {
            c.set(k, v);
        }
        c
    }

    fn create_topic(&self, name: &str) -> anyhow::Result<()> {
        let admin: AdminClient<DefaultClientContext> = self.config().create()?;
        let topic = NewTopic::new(name, 1, TopicReplication::Fixed(1))
            .set("retention.ms", "-1")
            .set("retention.bytes", "-1");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        for r in rt.block_on(admin.create_topics([&topic], &AdminOptions::new()))? {
            if let Err((t, code)) = r
                && code != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists
            {
                bail!("cannot create {t}: {code}");
            }
        }
        Ok(())
    }

    fn preload(&self, topic: &str, input: &[(String, Vec<u8>, i64)]) -> anyhow::Result<()> {
        let producer: BaseProducer = self
            .config()
            .set("linger.ms", "20")
            .set("batch.size", "1000000")
            .set("queue.buffering.max.messages", "1000000")
            .create()?;
        for (i, (k, v, ts)) in input.iter().enumerate() {
            let mut r = BaseRecord::to(topic).key(k).payload(v).timestamp(*ts);
            loop {
                match producer.send(r) {
                    Ok(()) => break,
                    Err((_, back)) => {
                        producer.poll(Duration::from_millis(5));
                        r = back;
                    }
                }
            }
            if i % 1000 == 0 {
                producer.poll(Duration::ZERO);
            }
        }
        producer.flush(Duration::from_secs(120))?;
        Ok(())
    }

    /// The offset the group `app` committed on partition 0 of `topic` (None before its first
    /// commit, or when the broker cannot say).
    fn committed(&self, checker: &BaseConsumer, topic: &str) -> Option<i64> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic, 0);
        let committed = checker
            .committed_offsets(tpl, Duration::from_secs(5))
            .ok()?;
        match committed.find_partition(topic, 0)?.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        }
    }

    /// One run of `q` reading `source` (`events` records) through this broker, timed from the
    /// first source record to the last record processed anywhere in the topology (source and
    /// internal topics).
    ///
    /// The run is over when the application has committed the whole source topic (a commit
    /// flushes the output that the committed records caused, repartition records included)
    /// and then nothing more is processed for [`QUIET`] — longer than a commit interval, so
    /// that records held in caches or suppression buffers until a commit, and the internal
    /// records they cause, are processed before it ends. The count of records processed is
    /// compared with the in-process run's (`expected`), but does not end the run: through
    /// Kafka a join task's two inputs interleave differently, so joins and windows may
    /// process (or drop as late) a different number of records.
    fn run(
        &self,
        q: &str,
        source: &str,
        events: u64,
        expected: u64,
        timeout: u64,
        seq: usize,
    ) -> anyhow::Result<Run> {
        let app = format!("nexmark-{q}-{}-{seq}", std::process::id());
        let state = tempfile::tempdir()?;
        let mut config = StreamsConfig::new(&app)
            .bootstrap_servers(&self.bootstrap)
            .state_dir(state.path())
            .commit_interval(COMMIT_INTERVAL);
        // The settings given are consumer settings (fetch.wait.max.ms): for the group's consumer
        // and the restore consumer.
        for (k, v) in &self.client {
            config = config
                .set(format!("consumer.{k}"), v)
                .set(format!("restore.consumer.{k}"), v);
        }
        self.create_topic(&format!("{app}-{q}-out"))?;
        // Asks the group's committed offsets without joining it.
        let checker: BaseConsumer = self.config().set("group.id", &app).create()?;
        let topology = topology(q, source, &format!("{app}-"))?;
        let streams = KafkaStreams::new(topology, config)?;
        streams.start()?;
        let deadline = Instant::now() + Duration::from_secs(timeout);
        let mut first: Option<(Instant, f64)> = None;
        let mut last = (Instant::now(), 0.0, 0u64);
        let mut source_done = false;
        let mut next_check = Instant::now();
        loop {
            let processed = streams.metrics().records_processed();
            let now = Instant::now();
            if processed > 0 && first.is_none() {
                first = Some((now, cpu_seconds()));
            }
            if processed != last.2 {
                last = (now, cpu_seconds(), processed);
            }
            // Not `processed >= events`: a broker that loses records (Tansu 0.6 skips the rest
            // of a batch when a fetch starts inside it, after a pause) would keep the run
            // waiting forever; the count is compared with the in-process one below.
            if !source_done && processed > 0 && now >= next_check {
                // Not every 2 ms: an offset fetch is a request to the broker.
                next_check = now + Duration::from_millis(200);
                source_done = self
                    .committed(&checker, source)
                    .is_some_and(|o| o >= events as i64);
            }
            if source_done && now.duration_since(last.0) >= QUIET {
                break;
            }
            if let Some(e) = streams.error() {
                bail!("streamkit failed: {e}");
            }
            if now > deadline {
                bail!("timed out after {processed} records processed");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        streams.close()?;
        let (start, cpu) = first.context("no record")?;
        let note = match last.2.cmp(&expected) {
            std::cmp::Ordering::Equal => "as in-process".to_string(),
            _ => format!("in-process: {expected}"),
        };
        eprintln!(
            "  {q}: {} records processed in the topology (source and internal topics; {note})",
            last.2
        );
        Ok(Run {
            records: events,
            seconds: last.0.duration_since(start).as_secs_f64(),
            cpu_seconds: last.1 - cpu,
            peak_rss_kib: peak_rss_kib(),
        })
    }
}

fn table(title: String, contenders: Vec<Contender>, published: usize, note: &str) -> String {
    let mut out = String::new();
    let runs = contenders.iter().map(|c| c.runs.len()).max().unwrap_or(0);
    let _ = writeln!(out, "### {title}\n");
    let _ = write!(out, "| query |");
    for i in 1..=runs {
        let _ = write!(out, " run {i} |");
    }
    let _ = writeln!(
        out,
        " median (events per CPU-second) | events/s (wall) | Flink 1.13 | ÷ Flink | RisingWave | ÷ RisingWave | target |"
    );
    let _ = writeln!(
        out,
        "|---|{}---:|---:|---:|---:|---:|---:|---|",
        "---:|".repeat(runs)
    );
    let mut failures = Vec::new();
    for c in &contenders {
        let median = c.median(Metric::PerCore);
        let wall = c.median(Metric::Rate);
        let _ = write!(out, "| {} |", c.name);
        for (i, r) in c.runs.iter().enumerate() {
            match r {
                Ok(r) => {
                    let _ = write!(out, " {:.0} |", r.per_core());
                }
                Err(e) => {
                    failures.push(format!("{} run {}: {e}", c.name, i + 1));
                    let _ = write!(out, " failed |");
                }
            }
        }
        let (flink, rw) = PUBLISHED
            .iter()
            .find(|(q, ..)| *q == c.name)
            .map_or((None, None), |p| (p.1, p.2));
        let cell = |x: Option<f64>| x.map_or("—".to_string(), |x| format!("{x:.0}"));
        let ratio = |x: Option<f64>| x.map_or("—".to_string(), |x| format!("{:.2}×", median / x));
        let target = match (flink_target(&c.name), flink) {
            (Some(t), Some(f)) if published == 0 => {
                let verdict = if median / f >= t { "met" } else { "missed" };
                format!("≥ {t}× Flink: **{verdict}**")
            }
            _ => "—".into(),
        };
        let _ = writeln!(
            out,
            " {median:.0} | {wall:.0} | {} | {} | {} | {} | {target} |",
            cell(flink),
            ratio(flink),
            cell(rw),
            ratio(rw)
        );
    }
    for f in failures {
        let _ = writeln!(out, "\n- Failed: {f}");
    }
    let _ = writeln!(out, "\n{note}\n");
    out
}

/// One contender, with no runs yet, per query.
fn contenders(queries: &[String]) -> Vec<Contender> {
    queries
        .iter()
        .map(|q| Contender {
            name: q.clone(),
            runs: vec![],
        })
        .collect()
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    streamkit_bench::init_logs();
    let input = events(args.events);
    let bytes: usize = input.iter().map(|(k, v, _)| k.len() + v.len()).sum();
    eprintln!(
        "nexmark: {} events, {} bytes of JSON on average",
        input.len(),
        bytes / input.len().max(1)
    );
    let mut local: Vec<Contender> = contenders(&args.queries);
    let mut processed_by = std::collections::HashMap::new();
    for _ in 0..args.runs {
        for c in local.iter_mut() {
            let r = in_process(&c.name, &input)
                .map(|(run, n)| {
                    processed_by.insert(c.name.clone(), n);
                    run
                })
                .map_err(|e| format!("{e:#}"));
            if let Ok(r) = &r {
                eprintln!(
                    "  {} in-process: {:.0} events per CPU-second",
                    c.name,
                    r.per_core()
                );
            }
            c.runs.push(r);
        }
    }
    let mut out = table(
        format!(
            "6. Nexmark in-process — {} events per run, {} bytes of JSON per event on average",
            args.events,
            bytes / input.len().max(1)
        ),
        local,
        0,
        "Events from the `nexmark` crate's generator (default configuration: 46 bids, 3 auctions \
         and 1 person per 50 events, 10 000 events per second of event time), serialized as JSON \
         and piped as bytes into `TopologyTestDriver` (RocksDB stores, changelogs off since \
         there is no broker), so every event is decoded from JSON. Per core = events ÷ \
         CPU-seconds of the process (one thread). q0: every bid re-encoded to an output topic; \
         q1: price × 0.908; q2: `auction % 123 == 0`; q5: bid count per auction over hopping \
         10 s windows every 2 s, suppressed until each window closes, then regrouped by \
         window (a repartition) and folded to the maximum count and its auctions; q7: the \
         highest bid per tumbling 10 s window (windowed reduce, suppressed) joined back with \
         the bids on the price (stream-stream join within 10 s, both sides repartitioned), \
         bids of that window kept; q8: persons joined with auctions on id = seller \
         (stream-stream join within 10 s), kept when both fall in the same tumbling 10 s \
         window (one row per auction, where Flink's SQL groups them first).",
    );
    let mut seq = 0;
    for (name, bootstrap) in &args.brokers {
        if args.embedded.contains(name) {
            continue;
        }
        let prefix = format!("{name}:");
        let kafka = Kafka {
            name: name.clone(),
            bootstrap: bootstrap.clone(),
            client: args
                .client
                .iter()
                .filter_map(|c| c.strip_prefix(&prefix))
                .filter_map(|kv| parse_kv(kv).ok())
                .collect(),
        };
        let source = format!("nexmark-events-{}", std::process::id());
        kafka.create_topic(&source)?;
        kafka.preload(&source, &input)?;
        let mut remote: Vec<Contender> = contenders(&args.queries);
        for _ in 0..args.runs {
            for c in remote.iter_mut() {
                seq += 1;
                let Some(&expected) = processed_by.get(&c.name) else {
                    c.runs.push(Err("its in-process run failed".into()));
                    continue;
                };
                let r = kafka
                    .run(&c.name, &source, args.events, expected, args.timeout, seq)
                    .map_err(|e| format!("{e:#}"));
                if let Ok(r) = &r {
                    eprintln!(
                        "  {} via {}: {:.0} events per CPU-second",
                        c.name,
                        kafka.name,
                        r.per_core()
                    );
                }
                c.runs.push(r);
            }
        }
        out.push_str(&table(
            format!(
                "6. Nexmark through Kafka — {} broker, {} events per run, 1 partition",
                kafka.name, args.events
            ),
            remote,
            1,
            "The same topologies reading the events from a topic (one stream thread, \
             changelogs on, commits every second). Per core = events ÷ CPU-seconds of the \
             streamkit process (the broker excluded), from its first record to the last \
             record processed (source and internal topics; a run ends once the whole source \
             is committed and nothing more is processed for 3 s). RisingWave's figures are \
             with a Kafka source.",
        ));
    }
    print!("{out}");
    Ok(())
}
