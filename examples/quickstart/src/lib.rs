//! The quickstart application: bus positions in, late buses per line out.
//!
//! `bus-positions` (JSON, keyed by vehicle) → drop malformed records to `bus-positions-dlq` →
//! keep buses more than 5 minutes late → re-key by line (through a repartition topic) →
//! count late buses per line (a RocksDB-style store with a changelog) → `late-buses-per-line`.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde::{Deserialize, Serialize};
use streamkit::prelude::*;
use streamkit::testing::EmbeddedBroker;

/// Input topic.
pub const POSITIONS: &str = "bus-positions";
/// Dead-letter topic for malformed positions.
pub const DEAD_LETTERS: &str = "bus-positions-dlq";
/// Output topic: late buses per line (running count).
pub const LATE_PER_LINE: &str = "late-buses-per-line";

/// One bus position report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Position {
    /// Report id, unique.
    pub id: u64,
    /// Bus line, e.g. `M15`.
    pub line: String,
    /// Vehicle id.
    pub vehicle: String,
    /// Minutes behind schedule (negative = early).
    pub delay_minutes: f64,
}

/// The topology: a function so tests can run it through the test driver.
pub fn topology() -> streamkit::Result<Topology> {
    let b = StreamsBuilder::new();
    b.stream(
        POSITIONS,
        Consumed::with(Serdes::string(), Serdes::json::<Position>())
            .on_deserialization_error(DeserializationHandler::DeadLetter(DEAD_LETTERS.into())),
    )
    .filter(|_vehicle, p| p.delay_minutes > 5.0)
    .named("late-only")
    .group_by(
        |_vehicle, p| p.line.clone(),
        Grouped::with(Serdes::string(), Serdes::json::<Position>()).named("by-line"),
    )
    .count(Materialized::named("late-per-line"))
    .to_stream()
    .to(
        LATE_PER_LINE,
        Produced::with(Serdes::string(), Serdes::i64()),
    );
    b.build()
}

/// What to run against.
#[derive(Debug, Clone, clap::Parser)]
#[command(about = "streamkit quickstart: count late buses per line, end to end")]
pub struct Args {
    /// Kafka brokers; without it an embedded broker is started in-process.
    #[arg(long)]
    pub bootstrap_servers: Option<String>,
    /// Number of position reports to produce.
    #[arg(long, default_value_t = 1000)]
    pub records: u64,
    /// Application id (consumer group, internal topic prefix).
    #[arg(long, default_value = "quickstart")]
    pub application_id: String,
    /// Local state directory.
    #[arg(long, default_value_os_t = std::env::temp_dir().join("streamkit-quickstart"))]
    pub state_dir: std::path::PathBuf,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Reports produced.
    pub produced: u64,
    /// Malformed reports among them.
    pub malformed: u64,
    /// Reports sent to the dead-letter topic.
    pub dead_lettered: u64,
    /// Final count of late buses per line, from the output topic.
    pub late_per_line: BTreeMap<String, i64>,
    /// The same, expected from what was produced.
    pub expected_late_per_line: BTreeMap<String, i64>,
    /// Wall time.
    pub elapsed: Duration,
}

const LINES: [&str; 5] = ["M15", "B63", "Q58", "BX12", "S79"];

/// Deterministic reports; every 50th one is malformed.
pub fn reports(n: u64) -> Vec<(String, Vec<u8>, Option<Position>)> {
    (0..n)
        .map(|id| {
            let vehicle = format!("MTA_{}", 7000 + id % 40);
            if id % 50 == 49 {
                return (
                    vehicle,
                    format!("{{\"id\":{id},\"line\":").into_bytes(),
                    None,
                );
            }
            let p = Position {
                id,
                line: LINES[(id % 5) as usize].to_string(),
                vehicle: vehicle.clone(),
                delay_minutes: ((id * 37) % 17) as f64 - 4.0,
            };
            (vehicle, serde_json::to_vec(&p).expect("json"), Some(p))
        })
        .collect()
}

fn create_topics(
    args: &Args,
    embedded: Option<&EmbeddedBroker>,
    servers: &str,
) -> anyhow::Result<()> {
    let topics = [(POSITIONS, 2), (DEAD_LETTERS, 1), (LATE_PER_LINE, 2)];
    if let Some(b) = embedded {
        for (t, p) in topics {
            b.create_topic(t, p)?;
        }
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .create()?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(t, p)| NewTopic::new(t, *p, TopicReplication::Fixed(-1)))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for r in rt.block_on(admin.create_topics(&new, &AdminOptions::new()))? {
        match r {
            Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => bail!("cannot create topic {t}: {e}"),
        }
    }
    let _ = &args.application_id;
    Ok(())
}

/// Produces the reports, runs the app until the output is complete, and reports.
pub fn run(args: Args) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let embedded = match &args.bootstrap_servers {
        Some(_) => None,
        None => Some(EmbeddedBroker::start().context("starting the embedded broker")?),
    };
    let servers = match (&args.bootstrap_servers, &embedded) {
        (Some(s), _) => s.clone(),
        (None, Some(b)) => b.bootstrap_servers().to_string(),
        (None, None) => unreachable!(),
    };
    create_topics(&args, embedded.as_ref(), &servers)?;

    let reports = reports(args.records);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &servers)
        .set("partitioner", "murmur2_random")
        .create()?;
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    let mut malformed = 0;
    for (key, value, parsed) in &reports {
        match parsed {
            Some(p) if p.delay_minutes > 5.0 => *expected.entry(p.line.clone()).or_default() += 1,
            Some(_) => {}
            None => malformed += 1,
        }
        let mut record = BaseRecord::to(POSITIONS)
            .key(key.as_str())
            .payload(value.as_slice());
        while let Err((_, r)) = producer.send(record) {
            producer.poll(Duration::from_millis(10));
            record = r;
        }
    }
    producer.flush(Duration::from_secs(30))?;

    let mut config = StreamsConfig::new(&args.application_id)
        .state_dir(&args.state_dir)
        .commit_interval(Duration::from_millis(200));
    config = match &embedded {
        Some(b) => config.embedded(b),
        None => config.bootstrap_servers(&servers),
    };
    let app = KafkaStreams::new(topology()?, config)?;
    app.start()?;

    // Read the output until every line reached its expected count (or time runs out).
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &servers)
        .set("group.id", format!("{}-reader", args.application_id))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = rdkafka::TopicPartitionList::new();
    for (topic, partitions) in [(LATE_PER_LINE, 2), (DEAD_LETTERS, 1)] {
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)?;
        }
    }
    consumer.assign(&tpl)?;
    let mut late: BTreeMap<String, i64> = BTreeMap::new();
    let mut dead: HashSet<Vec<u8>> = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while (late != expected || dead.len() as u64 != malformed) && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m?;
            if m.topic() == DEAD_LETTERS {
                dead.insert(m.payload().unwrap_or_default().to_vec());
            } else {
                let line = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
                let count = i64::from_be_bytes(
                    m.payload()
                        .unwrap_or_default()
                        .try_into()
                        .context("count")?,
                );
                let e = late.entry(line).or_default();
                *e = (*e).max(count);
            }
        }
        if let Some(e) = app.error() {
            bail!("the application failed: {e}");
        }
    }
    app.close()?;
    Ok(Summary {
        produced: args.records,
        malformed,
        dead_lettered: dead.len() as u64,
        late_per_line: late,
        expected_late_per_line: expected,
        elapsed: started.elapsed(),
    })
}
