//! Exactly-once processing on the embedded broker: the transaction flow (output appears,
//! offsets progress, state is right across a restart), an aborted transaction resetting the
//! tasks, a fenced producer stopping the thread, and a record of what the mock cluster itself
//! does with transactions (so this file flags the day it starts isolating aborted records).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::{Offset, TopicPartitionList};
use streamkit::config::ProcessingGuarantee;
use streamkit::prelude::*;
use streamkit::testing::EmbeddedBroker;

fn topology() -> Topology {
    let b = StreamsBuilder::new();
    b.stream(
        "eos-taps",
        Consumed::with(Serdes::string(), Serdes::string()),
    )
    .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
    .count(Materialized::named("eos-counts"))
    .to_stream()
    .to(
        "eos-counts-out",
        Produced::with(Serdes::string(), Serdes::i64()),
    );
    b.build().unwrap()
}

fn config(app: &str, broker: &EmbeddedBroker, state_dir: &std::path::Path) -> StreamsConfig {
    StreamsConfig::new(app)
        .embedded(broker)
        .state_dir(state_dir)
        .processing_guarantee(ProcessingGuarantee::ExactlyOnce)
        .commit_interval(Duration::from_millis(100))
        .set("consumer.heartbeat.interval.ms", "100")
}

fn taps(range: std::ops::Range<usize>) -> Vec<(String, Vec<u8>)> {
    range
        .map(|i| {
            (
                format!("station-{}", i % 10),
                format!("tap-{i}").into_bytes(),
            )
        })
        .collect()
}

fn setup(broker: &EmbeddedBroker) {
    broker.create_topic("eos-taps", 2).unwrap();
    broker.create_topic("eos-counts-out", 2).unwrap();
}

/// Offsets committed by group `group` on `topic` partitions 0..n (missing = 0).
fn committed(bootstrap: &str, group: &str, topic: &str, n: i32) -> i64 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..n {
        tpl.add_partition(topic, p);
    }
    c.committed_offsets(tpl, Duration::from_secs(10))
        .unwrap()
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            _ => 0,
        })
        .sum()
}

fn store_counts(app: &KafkaStreams) -> BTreeMap<String, i64> {
    app.store::<String, i64>("eos-counts")
        .and_then(|s| s.all())
        .map(|all| all.into_iter().collect())
        .unwrap_or_default()
}

#[test]
fn transactions_carry_output_offsets_and_state_across_a_restart() {
    common::init_logs();
    let broker = EmbeddedBroker::start().unwrap();
    setup(&broker);
    let bootstrap = broker.bootstrap_servers().to_string();
    let dir = tempfile::tempdir().unwrap();
    let app = KafkaStreams::new(topology(), config("eos-flow", &broker, dir.path())).unwrap();
    app.start().unwrap();
    common::produce(&bootstrap, "eos-taps", &taps(0..200));
    assert!(
        common::eventually(Duration::from_secs(60), || {
            let c = store_counts(&app);
            c.len() == 10 && c.values().all(|v| *v == 20)
        }),
        "{:?}",
        store_counts(&app)
    );
    // Offsets progress: every input record is covered by a commit.
    assert!(
        common::eventually(Duration::from_secs(30), || committed(
            &bootstrap, "eos-flow", "eos-taps", 2
        ) == 200),
        "committed {}",
        committed(&bootstrap, "eos-flow", "eos-taps", 2)
    );
    let out = common::read_until(&bootstrap, "eos-counts-out", Duration::from_secs(30), |r| {
        r.len() >= 200
    });
    assert_eq!(out.len(), 200, "one output record per input record");
    app.close().unwrap();
    assert!(app.error().is_none());

    // A new instance resumes after the committed offsets with the committed state.
    let again = KafkaStreams::new(topology(), config("eos-flow", &broker, dir.path())).unwrap();
    again.start().unwrap();
    common::produce(&bootstrap, "eos-taps", &taps(200..300));
    assert!(
        common::eventually(Duration::from_secs(60), || {
            let c = store_counts(&again);
            c.len() == 10 && c.values().all(|v| *v == 30)
        }),
        "{:?}",
        store_counts(&again)
    );
    assert_eq!(
        again.metrics().records_processed(),
        100,
        "nothing processed twice"
    );
    assert!(common::eventually(Duration::from_secs(30), || committed(
        &bootstrap, "eos-flow", "eos-taps", 2
    ) == 300));
    again.close().unwrap();
}

#[test]
fn an_aborted_transaction_resets_the_tasks_and_processing_goes_on() {
    common::init_logs();
    let broker = EmbeddedBroker::start().unwrap();
    setup(&broker);
    let bootstrap = broker.bootstrap_servers().to_string();
    let dir = tempfile::tempdir().unwrap();
    let app = KafkaStreams::new(topology(), config("eos-abort", &broker, dir.path())).unwrap();
    app.start().unwrap();
    common::produce(&bootstrap, "eos-taps", &taps(0..100));
    assert!(common::eventually(Duration::from_secs(60), || committed(
        &bootstrap,
        "eos-abort",
        "eos-taps",
        2
    ) == 100));
    let restored_before = app.metrics().restored_records();
    // ILLEGAL_GENERATION answering the next transactional offset commit makes librdkafka
    // require an abort.
    broker
        .fail_next_requests(
            RDKafkaApiKey::TxnOffsetCommit,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION],
        )
        .unwrap();
    common::produce(&bootstrap, "eos-taps", &taps(100..200));
    assert!(
        common::eventually(Duration::from_secs(60), || committed(
            &bootstrap,
            "eos-abort",
            "eos-taps",
            2
        ) == 200),
        "committed {}",
        committed(&bootstrap, "eos-abort", "eos-taps", 2)
    );
    assert_eq!(app.state(), StreamsState::Running, "{:?}", app.error());
    // The reset rebuilt the stores from their changelogs and re-read the input from the last
    // commit: records after it were processed twice, once in the aborted transaction.
    assert!(app.metrics().restored_records() > restored_before);
    assert!(app.metrics().records_processed() > 200);
    // The mock keeps the aborted transaction's changelog records visible, so the rebuilt
    // counts may include them (on a real broker they are exactly 20); none is lost.
    let counts = store_counts(&app);
    assert_eq!(counts.len(), 10);
    assert!(counts.values().all(|v| *v >= 20), "{counts:?}");
    app.close().unwrap();
}

#[test]
fn transactions_aborted_again_and_again_stop_the_thread_instead_of_looping() {
    let broker = EmbeddedBroker::start().unwrap();
    setup(&broker);
    let bootstrap = broker.bootstrap_servers().to_string();
    let dir = tempfile::tempdir().unwrap();
    let app = KafkaStreams::new(
        topology(),
        config("eos-abort-loop", &broker, dir.path()).max_transaction_aborts(3),
    )
    .unwrap();
    app.start().unwrap();
    assert!(app.wait_for_state(StreamsState::Running, Duration::from_secs(30)));
    // Every transactional offset commit refused: each commit aborts, the same input is
    // processed again, and its commit is refused again — a fault retrying cannot fix.
    broker
        .fail_next_requests(
            RDKafkaApiKey::TxnOffsetCommit,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION; 50],
        )
        .unwrap();
    common::produce(&bootstrap, "eos-taps", &taps(0..10));
    assert!(
        app.wait_for_state(StreamsState::Error, Duration::from_secs(60)),
        "{:?}",
        app.state()
    );
    let err = app.close().unwrap_err().to_string();
    assert!(err.contains("aborted 3 times in a row"), "{err}");
    assert!(
        err.contains("eos-abort-loop-"),
        "names the transactional id: {err}"
    );
}

#[test]
fn a_fenced_producer_stops_the_thread_with_a_clear_error() {
    common::init_logs();
    let broker = EmbeddedBroker::start().unwrap();
    setup(&broker);
    let bootstrap = broker.bootstrap_servers().to_string();
    let dir = tempfile::tempdir().unwrap();
    let app = KafkaStreams::new(topology(), config("eos-fenced", &broker, dir.path())).unwrap();
    app.start().unwrap();
    assert!(app.wait_for_state(StreamsState::Running, Duration::from_secs(30)));
    // What a coordinator answers a producer whose epoch was bumped by a newer one.
    broker
        .fail_next_requests(
            RDKafkaApiKey::TxnOffsetCommit,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH],
        )
        .unwrap();
    common::produce(&bootstrap, "eos-taps", &taps(0..10));
    assert!(app.wait_for_state(StreamsState::Error, Duration::from_secs(60)));
    let err = app.close().unwrap_err().to_string();
    assert!(err.contains("fenced"), "{err}");
    assert!(
        err.contains("eos-fenced-"),
        "names the transactional id: {err}"
    );
}

/// What librdkafka's mock cluster does with transactions. These assertions describe the
/// mock's shortcomings as observed; if one fails, the mock changed and the documentation
/// (README, docs/src/architecture.md, `EmbeddedBroker`) must be updated with it.
#[test]
fn the_mock_cluster_shows_aborted_records_and_drops_transactional_offset_commits() {
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("mock-txn", 1).unwrap();
    let bootstrap = broker.bootstrap_servers().to_string();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("transactional.id", "mock-txn-probe")
        .create()
        .unwrap();
    let timeout = Duration::from_secs(30);
    producer.init_transactions(timeout).unwrap();

    producer.begin_transaction().unwrap();
    producer
        .send(BaseRecord::to("mock-txn").key("k").payload("aborted"))
        .unwrap();
    producer.flush(timeout).unwrap();
    producer.abort_transaction(timeout).unwrap();

    producer.begin_transaction().unwrap();
    producer
        .send(BaseRecord::to("mock-txn").key("k").payload("committed"))
        .unwrap();
    // (b) offsets sent into a transaction that commits.
    let group: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "mock-txn-group")
        .create()
        .unwrap();
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset("mock-txn", 0, Offset::Offset(1))
        .unwrap();
    producer
        .send_offsets_to_transaction(&offsets, &group.group_metadata().unwrap(), timeout)
        .unwrap();
    producer.commit_transaction(timeout).unwrap();

    // (a) a read_committed consumer still sees the aborted record.
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "mock-txn-reader")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("mock-txn", 0, Offset::Beginning)
        .unwrap();
    reader.assign(&tpl).unwrap();
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while seen.len() < 2 && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = reader.poll(Duration::from_millis(100)) {
            seen.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
        }
    }
    assert_eq!(
        seen,
        vec!["aborted".to_string(), "committed".to_string()],
        "the mock no longer shows aborted records to read_committed consumers: update the docs"
    );
    assert_eq!(
        committed(&bootstrap, "mock-txn-group", "mock-txn", 1),
        0,
        "the mock now stores transactional offset commits: update the docs and drop the \
         plain commit the runtime adds on the embedded broker"
    );
}
