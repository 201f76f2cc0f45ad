//! On a real broker, `KafkaStreams::start` creates its internal topics through the admin API
//! with Kafka Streams' configs: changelogs compacted, windowed changelogs compacted and
//! deleted after the store's retention plus a day, repartition topics deleted (never
//! compacted: a repartition topic holds many records per key) and sized as co-partitioning
//! needs. The embedded broker ignores topic configs, so only a real one can show them.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::kafka;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use streamkit::prelude::*;
use streamkit::window::{SessionWindows, TimeWindows};

const DAY_MS: i64 = 86_400_000;

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client")
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn create_topics(bootstrap: &str, topics: &[(&str, i32)]) {
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, n)| NewTopic::new(name, *n, TopicReplication::Fixed(1)))
        .collect();
    for r in block_on(admin(bootstrap).create_topics(&new, &AdminOptions::new())).unwrap() {
        r.expect("create topic");
    }
}

/// The topic's configs as the broker reports them (every key, defaults included), once the
/// broker answering knows the topic (a describe right after the creation can come back empty).
fn describe(bootstrap: &str, topic: &str) -> HashMap<String, String> {
    let mut configs = HashMap::new();
    common::eventually(Duration::from_secs(10), || {
        configs = describe_once(bootstrap, topic);
        configs.contains_key("cleanup.policy")
    });
    configs
}

fn describe_once(bootstrap: &str, topic: &str) -> HashMap<String, String> {
    let admin = admin(bootstrap);
    let described = block_on(admin.describe_configs(
        &[ResourceSpecifier::Topic(topic)],
        &AdminOptions::new().request_timeout(Some(Duration::from_secs(10))),
    ))
    .unwrap();
    let resource = described
        .into_iter()
        .next()
        .unwrap()
        .unwrap_or_else(|e| panic!("describe {topic}: {e}"));
    resource
        .entries
        .into_iter()
        .filter_map(|e| Some((e.name, e.value?)))
        .collect()
}

fn partitions(bootstrap: &str, topic: &str) -> usize {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    md.topics()[0].partitions().len()
}

#[test]
fn internal_topics_are_created_with_kafka_streams_configs_and_copartitioned_counts() {
    common::init_logs();
    let bootstrap = kafka::bootstrap();
    let app_id = kafka::unique("internal-topics");
    let orders = kafka::unique("orders");
    let payments = kafka::unique("payments");
    // Different partition counts: a join of both, re-keyed, needs repartition topics of
    // equal size (Kafka Streams takes the larger count for both).
    create_topics(&bootstrap, &[(orders.as_str(), 4), (payments.as_str(), 2)]);

    let b = StreamsBuilder::new();
    let s = Serdes::string;
    let o = b.stream(&orders, Consumed::with(s(), s()));
    let p = b.stream(&payments, Consumed::with(s(), s()));
    o.group_by_key(Grouped::with(s(), s()))
        .count(Materialized::named("per-customer"));
    o.group_by_key(Grouped::with(s(), s()))
        .windowed_by(TimeWindows::tumbling(Duration::from_secs(60)).grace(Duration::from_secs(10)))
        .count(Materialized::named("per-minute").with_retention(Duration::from_secs(3600)));
    // No explicit retention: the store keeps windows for a day (streamkit's default).
    o.group_by_key(Grouped::with(s(), s()))
        .windowed_by_session(SessionWindows::with_inactivity_gap(Duration::from_secs(
            300,
        )))
        .count(Materialized::named("sessions"));
    // A key change before a grouping: a repartition topic sized as its writer's input.
    p.group_by(
        |_, v: &String| v.clone(),
        Grouped::with(s(), s()).named("by-payment"),
    )
    .count(Materialized::named("per-payment"));
    o.select_key(|_, v: &String| v.clone())
        .join(
            &p.select_key(|_, v: &String| v.clone()),
            |a: &String, b: &String| format!("{a}+{b}"),
            JoinWindows::of(Duration::from_secs(30)),
            StreamJoined::with(s(), s(), s()).named("matched"),
        )
        .to(&kafka::unique("matched"), Produced::with(s(), s()));
    let topology = b.build().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let app = KafkaStreams::new(
        topology,
        StreamsConfig::new(&app_id)
            .bootstrap_servers(&bootstrap)
            .state_dir(dir.path()),
    )
    .unwrap();
    app.start().unwrap();
    let topic = |name: &str| format!("{app_id}-{name}");

    let kv = describe(&bootstrap, &topic("per-customer-changelog"));
    assert_eq!(kv["cleanup.policy"], "compact");

    // Windowed changelogs: compacted (latest per window) and deleted once older than the
    // store keeps windows, plus a day (`windowstore.changelog.additional.retention.ms`).
    let windowed = describe(&bootstrap, &topic("per-minute-changelog"));
    assert_eq!(windowed["cleanup.policy"], "compact,delete");
    assert_eq!(windowed["retention.ms"], (3_600_000 + DAY_MS).to_string());
    let sessions = describe(&bootstrap, &topic("sessions-changelog"));
    assert_eq!(sessions["cleanup.policy"], "compact,delete");
    assert_eq!(sessions["retention.ms"], (DAY_MS + DAY_MS).to_string());
    // A join's buffers: retention before + after + 1 ms + grace (none), plus a day.
    for store in ["matched-this-join-store", "matched-other-join-store"] {
        let join = describe(&bootstrap, &topic(&format!("{store}-changelog")));
        assert_eq!(join["cleanup.policy"], "compact,delete", "{store}");
        assert_eq!(
            join["retention.ms"],
            (60_001 + DAY_MS).to_string(),
            "{store}"
        );
    }

    // Repartition topics: never compacted, never deleted by time, in Kafka Streams' 50 MiB
    // segments.
    let repartitions = [
        "by-payment-repartition",
        "matched-left-repartition",
        "matched-right-repartition",
    ];
    for name in repartitions {
        let c = describe(&bootstrap, &topic(name));
        assert_eq!(c["cleanup.policy"], "delete", "{name}");
        assert_eq!(c["segment.bytes"], "52428800", "{name}");
        // No time retention: the threads purge what they committed.
        assert_eq!(c["retention.ms"], "-1", "{name}");
    }
    assert_eq!(partitions(&bootstrap, &topic("by-payment-repartition")), 2);
    // Both sides of the join: as many partitions as the larger input, so that a key lands
    // in the same partition number on each side.
    assert_eq!(
        partitions(&bootstrap, &topic("matched-left-repartition")),
        4
    );
    assert_eq!(
        partitions(&bootstrap, &topic("matched-right-repartition")),
        4
    );
    // Changelogs have one partition per task of the store's sub-topology.
    assert_eq!(partitions(&bootstrap, &topic("per-customer-changelog")), 4);
    assert_eq!(partitions(&bootstrap, &topic("per-payment-changelog")), 2);
    assert_eq!(
        partitions(&bootstrap, &topic("matched-other-join-store-changelog")),
        4
    );
    app.close().unwrap();
}

/// Records go through a repartition topic with event times a month old (replayed history):
/// none expires before it is read, and what the application committed is deleted from the
/// topic (DeleteRecords), as Kafka Streams purges it.
#[test]
fn repartition_topics_are_purged_below_the_committed_offsets() {
    common::init_logs();
    let bootstrap = kafka::bootstrap();
    let app_id = kafka::unique("purge");
    let input = kafka::unique("purge-in");
    let output = kafka::unique("purge-out");
    create_topics(&bootstrap, &[(input.as_str(), 2), (output.as_str(), 2)]);
    const RECORDS: usize = 2000;
    let month_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 30 * 86_400_000;
    let producer = common::producer(&bootstrap);
    for i in 0..RECORDS {
        let (k, v) = (format!("r{i}"), format!("k{}", i % 7));
        let record = rdkafka::producer::BaseRecord::to(&input)
            .key(&k)
            .payload(&v)
            .timestamp(month_ago + i as i64);
        producer.send(record).map_err(|(e, _)| e).unwrap();
        producer.poll(Duration::ZERO);
    }
    rdkafka::producer::Producer::flush(&producer, Duration::from_secs(30)).unwrap();

    let b = StreamsBuilder::new();
    b.stream(&input, Consumed::with(Serdes::string(), Serdes::string()))
        .group_by(
            |_, v: &String| v.clone(),
            Grouped::with(Serdes::string(), Serdes::string()).named("by-value"),
        )
        .count(Materialized::named("counts"))
        .to_stream()
        .to(&output, Produced::with(Serdes::string(), Serdes::i64()));
    let dir = tempfile::tempdir().unwrap();
    let app = KafkaStreams::new(
        b.build().unwrap(),
        StreamsConfig::new(&app_id)
            .bootstrap_servers(&bootstrap)
            .state_dir(dir.path())
            .replication_factor(1)
            .commit_interval(Duration::from_millis(100))
            .repartition_purge_interval(Duration::from_secs(1)),
    )
    .unwrap();
    app.start().unwrap();
    let repartition = format!("{app_id}-by-value-repartition");
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let (mut low, mut high) = (0i64, 0i64);
    let purged = common::eventually(Duration::from_secs(90), || {
        (low, high) = (0..2)
            .map(|p| {
                consumer
                    .fetch_watermarks(&repartition, p, Duration::from_secs(5))
                    .unwrap()
            })
            .fold((0, 0), |(l, h), (pl, ph)| (l + pl, h + ph));
        high == RECORDS as i64 && low == high
    });
    assert!(
        purged,
        "repartition topic not purged: low {low}, high {high} ({:?} {:?})",
        app.state(),
        app.error()
    );
    // Nothing was lost on the way: every key counted every record.
    let mut last = HashMap::new();
    for r in common::read_all(&bootstrap, &output, Duration::from_secs(5)) {
        last.insert(
            r.key_str().to_string(),
            i64::from_be_bytes(r.value.unwrap().try_into().unwrap()),
        );
    }
    let want: HashMap<String, i64> = (0..7)
        .map(|k| {
            (
                format!("k{k}"),
                (0..RECORDS).filter(|i| i % 7 == k).count() as i64,
            )
        })
        .collect();
    assert_eq!(last, want);
    app.close().unwrap();
}
