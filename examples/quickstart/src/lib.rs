//! The quickstart application: bus positions in, late buses out, end to end.
//!
//! ```text
//! bus-positions (JSON, keyed by vehicle)
//!   ─▶ undecodable bytes ─▶ bus-positions-dlq
//!   ─▶ keep buses more than 5 minutes late
//!   ─▶ re-key by line ─▶ <application-id>-by-line-repartition
//!   ─▶ a line of text per late bus ─▶ late-buses (keyed by line)
//! ```
//!
//! [`topology`] is the streamkit part, testable without a broker; [`run`] is the whole
//! program: create the topics, produce positions, run the application, read its output back
//! and check it against what was produced.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use streamkit::prelude::*;
use streamkit::testing::EmbeddedBroker;

/// Input topic: bus positions as JSON, keyed by vehicle id.
pub const POSITIONS: &str = "bus-positions";
/// Dead-letter topic: the positions that could not be decoded, as they were read.
pub const DEAD_LETTERS: &str = "bus-positions-dlq";
/// Output topic: one text line per late bus, keyed by line.
pub const LATE_BUSES: &str = "late-buses";
/// A bus is late when it runs more than this many minutes behind schedule.
pub const LATE_AFTER_MINUTES: f64 = 5.0;

/// The topics [`run`] creates, with their partition counts.
const TOPICS: [(&str, i32); 3] = [(POSITIONS, 2), (LATE_BUSES, 2), (DEAD_LETTERS, 1)];

/// One bus position report, as JSON on [`POSITIONS`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Position {
    /// Report id, unique per report: how the output is checked under at-least-once delivery.
    pub id: u64,
    /// Bus line, e.g. `M15`.
    pub line: String,
    /// Vehicle id, the record key.
    pub vehicle: String,
    /// Minutes behind schedule (negative = early).
    pub delay_minutes: f64,
}

/// The application: late buses, re-keyed by line, as text.
///
/// ```
/// use streamkit::prelude::*;
/// let driver = TopologyTestDriver::new(quickstart::topology()?)?;
/// let input = driver.input_topic(quickstart::POSITIONS, Serdes::string(), Serdes::bytes());
/// input.pipe("MTA_7001".into(), br#"{"id":7,"line":"M15","vehicle":"MTA_7001","delay_minutes":8.5}"#.to_vec())?;
/// input.pipe("MTA_7002".into(), br#"{"id":8,"line":"B63","vehicle":"MTA_7002","delay_minutes":1.0}"#.to_vec())?;
/// input.pipe("MTA_7003".into(), b"{not json".to_vec())?;
/// let out = driver.output_topic(quickstart::LATE_BUSES, Serdes::string(), Serdes::string());
/// assert_eq!(
///     out.read_key_values(),
///     vec![("M15".to_string(), "#7 line M15 bus MTA_7001 is 8.5 min late".to_string())]
/// );
/// let dlq = driver.output_topic(quickstart::DEAD_LETTERS, Serdes::string(), Serdes::bytes());
/// assert_eq!(dlq.read_values(), vec![b"{not json".to_vec()]);
/// # Ok::<(), streamkit::Error>(())
/// ```
pub fn topology() -> streamkit::Result<Topology> {
    let builder = StreamsBuilder::new();
    builder
        .stream(
            POSITIONS,
            Consumed::with(Serdes::string(), Serdes::json::<Position>())
                .on_deserialization_error(DeserializationHandler::DeadLetter(DEAD_LETTERS.into())),
        )
        .filter(|_vehicle, p| p.delay_minutes > LATE_AFTER_MINUTES)
        .named("late-only")
        .select_key(|_vehicle, p| p.line.clone())
        .named("key-by-line")
        .repartition(
            Repartitioned::with(Serdes::string(), Serdes::json::<Position>()).named("by-line"),
        )
        .map_values(|p| describe(&p))
        .named("describe")
        .to(
            LATE_BUSES,
            Produced::with(Serdes::string(), Serdes::string()),
        );
    builder.build()
}

/// The output text for a late bus; starts with `#<id>` (see [`report_id`]).
pub fn describe(p: &Position) -> String {
    format!(
        "#{} line {} bus {} is {:.1} min late",
        p.id, p.line, p.vehicle, p.delay_minutes
    )
}

/// The report id at the start of an output text (`#<id> …`) or of a report's bytes
/// (`{"id":<id>,…`, also when the rest is malformed).
pub fn report_id(bytes: &[u8]) -> Option<u64> {
    let rest = bytes
        .strip_prefix(b"#")
        .or_else(|| bytes.strip_prefix(br#"{"id":"#))?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

/// What to run against, and how much.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "quickstart",
    about = "streamkit quickstart: find late buses, end to end",
    long_about = "Creates the topics, produces bus positions (2% of them malformed), runs a \
                  streamkit application that sends late buses to `late-buses` (re-keyed by \
                  line) and malformed records to `bus-positions-dlq`, reads both back and checks \
                  them against what was produced. Without --bootstrap-servers everything runs \
                  on an in-process embedded broker."
)]
pub struct Args {
    /// Kafka brokers (`host:port,…`); without it an embedded broker is started in-process.
    #[arg(long)]
    pub bootstrap_servers: Option<String>,
    /// Number of position reports to produce.
    #[arg(long, default_value_t = 1000)]
    pub records: u64,
    /// Application id: the consumer group and the prefix of the internal topics.
    #[arg(long, default_value = "quickstart")]
    pub application_id: String,
    /// Longest wait, in seconds, for the output to be complete.
    #[arg(long, default_value_t = 60)]
    pub timeout_secs: u64,
}

impl Args {
    /// `records` reports on the embedded broker, default application id and timeout.
    pub fn embedded(records: u64) -> Self {
        Args {
            bootstrap_servers: None,
            records,
            application_id: "quickstart".into(),
            timeout_secs: 60,
        }
    }
}

/// What a run produced and read back. Counts of output records are of distinct report ids,
/// since at-least-once delivery may repeat records.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Reports produced to [`POSITIONS`].
    pub records_in: u64,
    /// Of those, malformed: the dead letters to expect.
    pub malformed: u64,
    /// Of those, well-formed and late: the output records to expect.
    pub expected_late: u64,
    /// Distinct late buses read from [`LATE_BUSES`].
    pub late_out: u64,
    /// Distinct reports read from [`DEAD_LETTERS`].
    pub dead_lettered: u64,
    /// Output records of this run that should not be there (an on-time bus, a wrong key).
    pub unexpected: u64,
    /// Late buses read back, per line.
    pub late_per_line: BTreeMap<String, u64>,
    /// From start (broker, topics, producing included) until the output was complete, or
    /// the timeout.
    pub wall_time: Duration,
}

impl Summary {
    /// Whether every expected record came out, and nothing else.
    pub fn is_complete(&self) -> bool {
        self.late_out == self.expected_late
            && self.dead_lettered == self.malformed
            && self.unexpected == 0
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "records in:      {}", self.records_in)?;
        writeln!(
            f,
            "late buses out:  {} (expected {})",
            self.late_out, self.expected_late
        )?;
        for (line, n) in &self.late_per_line {
            writeln!(f, "  line {line:<5} {n}")?;
        }
        writeln!(
            f,
            "dead-lettered:   {} (expected {})",
            self.dead_lettered, self.malformed
        )?;
        if self.unexpected > 0 {
            writeln!(f, "unexpected:      {}", self.unexpected)?;
        }
        write!(f, "wall time:       {:.2} s", self.wall_time.as_secs_f64())
    }
}

/// One report to produce.
#[derive(Debug, Clone)]
pub struct Report {
    /// Record key: the vehicle id.
    pub vehicle: String,
    /// Record value: JSON of `position`, or malformed bytes.
    pub bytes: Vec<u8>,
    /// The position, or `None` when `bytes` are malformed.
    pub position: Option<Position>,
}

const LINES: [&str; 5] = ["M15", "B63", "Q58", "BX12", "S79"];

/// `n` deterministic reports with ids from `first_id`; every 50th is malformed (2%), about a
/// third of the others are late.
pub fn reports(n: u64, first_id: u64) -> Vec<Report> {
    (0..n)
        .map(|i| {
            let id = first_id + i;
            let bus = i % 40;
            let vehicle = format!("MTA_{}", 7000 + bus);
            let line = LINES[(bus % 5) as usize].to_string();
            if i % 50 == 49 {
                // Cut off mid-object: what a crashing upstream writer leaves behind.
                let bytes = format!(r#"{{"id":{id},"line":"{line}","vehic"#).into_bytes();
                return Report {
                    vehicle,
                    bytes,
                    position: None,
                };
            }
            let position = Position {
                id,
                line,
                vehicle: vehicle.clone(),
                delay_minutes: ((i * 7919) % 23) as f64 * 0.5 - 2.0,
            };
            Report {
                bytes: serde_json::to_vec(&position).expect("a position is valid JSON"),
                vehicle,
                position: Some(position),
            }
        })
        .collect()
}

/// Counts failed deliveries of the report producer.
#[derive(Default)]
struct DeliveryCheck {
    failed: AtomicU64,
}

impl ClientContext for DeliveryCheck {}

impl ProducerContext for DeliveryCheck {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            tracing::error!(error = %e, "report not delivered");
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn create_topics(embedded: Option<&EmbeddedBroker>, servers: &str) -> anyhow::Result<()> {
    // Only what is missing: a cluster without the admin API (such as `streamkit broker`, whose
    // topics are created with `--topic`) works when the topics exist.
    let config = StreamsConfig::new("topic-setup");
    let config = match embedded {
        Some(broker) => config.embedded(broker),
        None => config.bootstrap_servers(servers),
    };
    streamkit::runtime::ensure_topics(&config, &TOPICS).context("creating the topics")
}

/// Produces the reports and waits for every acknowledgement.
fn produce(servers: &str, reports: &[Report]) -> anyhow::Result<()> {
    let producer: BaseProducer<DeliveryCheck> = ClientConfig::new()
        .set("bootstrap.servers", servers)
        // murmur2, as Kafka's Java clients and streamkit's own producer partition.
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .create_with_context(DeliveryCheck::default())
        .context("creating the producer")?;
    for r in reports {
        let mut record = BaseRecord::to(POSITIONS)
            .key(r.vehicle.as_str())
            .payload(r.bytes.as_slice());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    producer.poll(Duration::from_millis(10));
                    record = back;
                }
                Err((e, _)) => return Err(e).context("producing a report"),
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer
        .flush(Duration::from_secs(60))
        .context("flushing the reports")?;
    let failed = producer.context().failed.load(Ordering::Relaxed);
    if failed > 0 {
        bail!("{failed} reports were not delivered");
    }
    Ok(())
}

/// A consumer reading every partition of `topics` from the beginning, outside any group.
fn reader(servers: &str, app_id: &str, topics: &[&str]) -> anyhow::Result<BaseConsumer> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .set("group.id", format!("{app_id}-quickstart-reader"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .context("creating the output reader")?;
    let mut tpl = TopicPartitionList::new();
    for topic in topics {
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(30))
            .with_context(|| format!("metadata of {topic}"))?;
        let partitions = md.topics().first().map(|t| t.partitions()).unwrap_or(&[]);
        if partitions.is_empty() {
            bail!("topic {topic} has no partitions");
        }
        for p in partitions {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)?;
        }
    }
    // Assigned, not subscribed: no group join to wait for.
    consumer.assign(&tpl)?;
    Ok(consumer)
}

/// Runs the quickstart: create topics, produce `args.records` reports, run the application,
/// read `late-buses` and `bus-positions-dlq` until every expected record is there (or
/// `args.timeout_secs` pass), print and return the summary.
pub fn run(args: Args) -> anyhow::Result<Summary> {
    let started = Instant::now();
    // Declared first, dropped last: the application and clients close before the broker.
    let embedded = match args.bootstrap_servers {
        Some(_) => None,
        None => Some(EmbeddedBroker::start().context("starting the embedded broker")?),
    };
    let servers = match (&args.bootstrap_servers, &embedded) {
        (Some(servers), _) => servers.clone(),
        (None, Some(broker)) => broker.bootstrap_servers().to_string(),
        (None, None) => unreachable!("no broker"),
    };
    create_topics(embedded.as_ref(), &servers)?;

    // On a real cluster the topics may hold earlier runs' records: ids of this run start at
    // (seconds since the epoch) × 10^7, which no earlier run of fewer than 10^7 records
    // reached, and only this run's ids are counted.
    let first_id = match &embedded {
        Some(_) => 0,
        None => {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .context("clock before 1970")?
                .as_secs()
                * 10_000_000
        }
    };
    let ids = first_id..first_id + args.records;
    let reports = reports(args.records, first_id);
    let mut expected_late: BTreeMap<u64, String> = BTreeMap::new();
    let mut malformed = 0;
    for r in &reports {
        match &r.position {
            Some(p) if p.delay_minutes > LATE_AFTER_MINUTES => {
                expected_late.insert(p.id, p.line.clone());
            }
            Some(_) => {}
            None => malformed += 1,
        }
    }
    produce(&servers, &reports)?;
    tracing::info!(records = args.records, "reports produced");

    let config = StreamsConfig::new(args.application_id.as_str())
        .commit_interval(Duration::from_millis(200));
    let config = match &embedded {
        Some(broker) => config.embedded(broker),
        None => config.bootstrap_servers(servers.as_str()),
    };
    let app = KafkaStreams::new(topology()?, config)?;
    app.start()?;

    let consumer = reader(&servers, &args.application_id, &[LATE_BUSES, DEAD_LETTERS])?;
    let mut late_seen: HashSet<u64> = HashSet::new();
    let mut dead_seen: HashSet<u64> = HashSet::new();
    let mut unexpected: HashSet<u64> = HashSet::new();
    let mut late_per_line: BTreeMap<String, u64> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let done = |late: &HashSet<u64>, dead: &HashSet<u64>| {
        late.len() == expected_late.len() && dead.len() as u64 == malformed
    };
    while !done(&late_seen, &dead_seen) && Instant::now() < deadline {
        if let Some(e) = app.error() {
            bail!("the application failed: {e}");
        }
        let msg = match consumer.poll(Duration::from_millis(100)) {
            None => continue,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "output reader error");
                continue;
            }
            Some(Ok(msg)) => msg,
        };
        let payload = msg.payload().unwrap_or_default();
        let Some(id) = report_id(payload).filter(|id| ids.contains(id)) else {
            continue; // an earlier run's record
        };
        if msg.topic() == DEAD_LETTERS {
            if reports[(id - first_id) as usize].position.is_none() {
                dead_seen.insert(id);
            } else {
                unexpected.insert(id);
            }
            continue;
        }
        let key = msg.key().map(String::from_utf8_lossy);
        match expected_late.get(&id) {
            Some(line) if key.as_deref() == Some(line.as_str()) => {
                if late_seen.insert(id) {
                    *late_per_line.entry(line.clone()).or_default() += 1;
                }
            }
            _ => {
                unexpected.insert(id);
            }
        }
    }
    let wall_time = started.elapsed();
    drop(consumer);
    app.close().context("closing the application")?;

    let summary = Summary {
        records_in: args.records,
        malformed,
        expected_late: expected_late.len() as u64,
        late_out: late_seen.len() as u64,
        dead_lettered: dead_seen.len() as u64,
        unexpected: unexpected.len() as u64,
        late_per_line,
        wall_time,
    };
    println!("{summary}");
    Ok(summary)
}

// The Rust examples of the repository's README compile (and, unless marked `no_run`, run) as
// doc tests of this crate, so the README cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
