//! The processing and production error handlers on a Kafka-protocol broker, at least once
//! and exactly once: a panicking closure's record dead-lettered as read, output over the
//! producer's size limit skipped or dead-lettered with the input record that made it, a
//! delivery the broker refuses dead-lettered (cut short) by the stream thread before its
//! commit, and the defaults still failing with the cause.

mod common;

use std::time::Duration;

use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use streamkit::config::ProcessingGuarantee;
use streamkit::error_policy::dead_letter_headers as h;
use streamkit::prelude::*;
use streamkit::testing::EmbeddedBroker;

/// Over the producer limit the tests set (`producer.message.max.bytes`).
const BIG: usize = 20_000;

/// `in` → upper-cased (panicking on "boom", growing "big…" past the producer's limit) → `out`.
fn topology() -> Topology {
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
        .map_values(|v: String| {
            if v == "boom" {
                panic!("the closure cannot take {v:?}");
            }
            if v.starts_with("big") {
                return "X".repeat(BIG);
            }
            v.to_uppercase()
        })
        .to("out", Produced::with(Serdes::string(), Serdes::string()));
    b.build().unwrap()
}

fn records(values: &[&str]) -> Vec<(String, Vec<u8>)> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("k{i}"), v.as_bytes().to_vec()))
        .collect()
}

fn broker() -> EmbeddedBroker {
    let broker = EmbeddedBroker::start().unwrap();
    for topic in ["in", "out", "in-dlq", "out-dlq"] {
        broker.create_topic(topic, 1).unwrap();
    }
    broker
}

fn config(broker: &EmbeddedBroker, app: &str, guarantee: ProcessingGuarantee) -> StreamsConfig {
    StreamsConfig::new(app)
        .embedded(broker)
        .processing_guarantee(guarantee)
        .commit_interval(Duration::from_millis(100))
        .set("producer.message.max.bytes", "10000")
}

/// Starts `config`'s application on `topology()`, pipes `values` in, and waits until `out`
/// holds `expected` records; returns the app and what `out` holds.
fn run(
    broker: &EmbeddedBroker,
    config: StreamsConfig,
    values: &[&str],
    expected: usize,
) -> (KafkaStreams, Vec<common::Read>) {
    let app = KafkaStreams::new(topology(), config).unwrap();
    app.start().unwrap();
    assert!(app.wait_for_state(StreamsState::Running, Duration::from_secs(30)));
    let servers = broker.bootstrap_servers();
    common::produce(servers, "in", &records(values));
    let out = common::read_until(servers, "out", Duration::from_secs(30), |r| {
        r.len() >= expected
    });
    (app, out)
}

fn values(records: &[common::Read]) -> Vec<&str> {
    records.iter().map(common::Read::value_str).collect()
}

fn a_panicking_record_is_dead_lettered_as_read(guarantee: ProcessingGuarantee, app: &str) {
    let broker = broker();
    let (app, out) = run(
        &broker,
        config(&broker, app, guarantee)
            .processing_error_handler(ProcessingErrorHandler::DeadLetter("in-dlq".into())),
        &["a", "boom", "b", "c"],
        3,
    );
    assert_eq!(values(&out), ["A", "B", "C"]);
    let dead = common::read_until(
        broker.bootstrap_servers(),
        "in-dlq",
        Duration::from_secs(30),
        |r| !r.is_empty(),
    );
    assert_eq!(dead.len(), 1);
    let d = &dead[0];
    assert_eq!((d.key_str(), d.value_str()), ("k1", "boom"));
    assert_eq!(
        d.headers[h::ERROR],
        r#"panicked: the closure cannot take "boom""#
    );
    assert_eq!(d.headers[h::STAGE], "processing");
    assert!(
        d.headers[h::NODE].starts_with("KSTREAM-MAPVALUES-"),
        "{}",
        d.headers[h::NODE]
    );
    assert_eq!(d.headers[h::TOPIC], "in");
    assert_eq!(d.headers[h::PARTITION], "0");
    assert_eq!(d.headers[h::OFFSET], "1");
    assert!(common::eventually(Duration::from_secs(10), || app
        .metrics()
        .dropped_records("error")
        == 1));
    assert_eq!(app.state(), StreamsState::Running);
    app.close().unwrap();
}

#[test]
fn a_panicking_record_is_dead_lettered_as_read_and_the_rest_arrives() {
    a_panicking_record_is_dead_lettered_as_read(ProcessingGuarantee::AtLeastOnce, "panic-dlq");
}

#[test]
fn under_exactly_once_a_panicking_record_is_dead_lettered_inside_the_transaction() {
    a_panicking_record_is_dead_lettered_as_read(ProcessingGuarantee::ExactlyOnce, "panic-dlq-eos");
}

fn an_output_over_the_size_limit_is_dead_lettered_with_its_input(
    guarantee: ProcessingGuarantee,
    app: &str,
) {
    let broker = broker();
    let (app, out) = run(
        &broker,
        config(&broker, app, guarantee)
            .production_error_handler(ProductionErrorHandler::DeadLetter("out-dlq".into())),
        &["a", "big-1", "b", "big-2", "c"],
        3,
    );
    assert_eq!(values(&out), ["A", "B", "C"]);
    let dead = common::read_until(
        broker.bootstrap_servers(),
        "out-dlq",
        Duration::from_secs(30),
        |r| r.len() >= 2,
    );
    assert_eq!(dead.len(), 2);
    for (d, (key, value, offset)) in dead
        .iter()
        .zip([("k1", "big-1", "1"), ("k3", "big-2", "3")])
    {
        // KIP-1034: the input record being processed, not the refused output.
        assert_eq!((d.key_str(), d.value_str()), (key, value));
        assert_eq!(d.headers[h::STAGE], "production");
        assert_eq!(d.headers[h::TARGET_TOPIC], "out");
        assert!(
            d.headers[h::ERROR].contains("too large"),
            "{}",
            d.headers[h::ERROR]
        );
        assert_eq!(d.headers[h::TOPIC], "in");
        assert_eq!(d.headers[h::OFFSET], offset);
    }
    assert!(common::eventually(Duration::from_secs(10), || app
        .metrics()
        .dropped_records("production")
        == 2));
    assert_eq!(app.metrics().dead_letter_records(), 2);
    assert_eq!(app.state(), StreamsState::Running);
    app.close().unwrap();
}

#[test]
fn an_output_over_the_producers_size_limit_is_dead_lettered_with_its_input_record() {
    an_output_over_the_size_limit_is_dead_lettered_with_its_input(
        ProcessingGuarantee::AtLeastOnce,
        "big-dlq",
    );
}

#[test]
fn under_exactly_once_an_output_over_the_size_limit_is_dead_lettered_inside_the_transaction() {
    an_output_over_the_size_limit_is_dead_lettered_with_its_input(
        ProcessingGuarantee::ExactlyOnce,
        "big-dlq-eos",
    );
}

#[test]
fn log_and_continue_skips_an_output_over_the_size_limit_and_counts_it() {
    let broker = broker();
    let (app, out) = run(
        &broker,
        config(&broker, "big-skip", ProcessingGuarantee::AtLeastOnce)
            .production_error_handler(ProductionErrorHandler::LogAndContinue),
        &["a", "big", "b"],
        2,
    );
    assert_eq!(values(&out), ["A", "B"]);
    assert!(common::eventually(Duration::from_secs(10), || app
        .metrics()
        .dropped_records("production")
        == 1));
    assert_eq!(app.metrics().dead_letter_records(), 0);
    assert_eq!(app.state(), StreamsState::Running);
    app.close().unwrap();
}

#[test]
fn by_default_an_output_over_the_size_limit_stops_the_instance_naming_the_topic() {
    let broker = broker();
    let (app, out) = run(
        &broker,
        config(&broker, "big-fail", ProcessingGuarantee::AtLeastOnce),
        &["a", "big", "b"],
        1,
    );
    assert_eq!(values(&out), ["A"]);
    assert!(
        app.wait_for_state(StreamsState::Error, Duration::from_secs(30)),
        "{:?}",
        app.state()
    );
    let error = app.error().unwrap();
    assert!(
        error.contains("failed to produce to out") && error.contains("too large"),
        "{error}"
    );
    assert!(app.close().is_err());
}

#[test]
fn a_delivery_the_broker_refuses_is_dead_lettered_cut_short_before_the_commit() {
    let broker = broker();
    let servers = broker.bootstrap_servers().to_string();
    // The input is in before the broker is told to refuse: the application's first produce
    // request, which holds its first output, is the one refused.
    let big = format!("big-{}", "y".repeat(6000));
    let inputs = [big.as_str(), "a", "b", "c", "d"];
    common::produce(&servers, "in", &records(&inputs));
    broker
        .fail_next_requests(
            RDKafkaApiKey::Produce,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE],
        )
        .unwrap();
    // A topology whose output keeps the input's size (the producer's own limit is not hit).
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
        .map_values(|v: String| v.to_uppercase())
        .to("out", Produced::with(Serdes::string(), Serdes::string()));
    let app = KafkaStreams::new(
        b.build().unwrap(),
        StreamsConfig::new("refused-dlq")
            .embedded(&broker)
            .commit_interval(Duration::from_millis(100))
            .production_error_handler(ProductionErrorHandler::DeadLetter("out-dlq".into())),
    )
    .unwrap();
    app.start().unwrap();
    // Every input ends in `out` or, refused in the first produce request, in `out-dlq`.
    let mut out = Vec::new();
    let mut dead = Vec::new();
    assert!(
        common::eventually(Duration::from_secs(30), || {
            out = common::read_all(&servers, "out", Duration::from_millis(500));
            dead = common::read_all(&servers, "out-dlq", Duration::from_millis(500));
            out.len() + dead.len() >= inputs.len()
        }),
        "out {} + dead letters {}",
        out.len(),
        dead.len()
    );
    assert_eq!(out.len() + dead.len(), inputs.len());
    assert!(!dead.is_empty(), "the first output was refused");
    // The refused record itself: its key, its value (the first is cut short).
    let first = &dead[0];
    assert_eq!(first.key_str(), "k0");
    assert_eq!(first.value.as_ref().unwrap().len(), 4096);
    assert!(first.value_str().starts_with("BIG-YYY"));
    assert_eq!(first.headers[h::TRUNCATED], (6000 + 4).to_string());
    for d in &dead {
        assert_eq!(d.headers[h::STAGE], "production");
        assert_eq!(d.headers[h::TARGET_TOPIC], "out");
        assert!(
            d.headers[h::ERROR].contains("too large"),
            "{}",
            d.headers[h::ERROR]
        );
    }
    let mut keys: Vec<&str> = out.iter().chain(&dead).map(common::Read::key_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["k0", "k1", "k2", "k3", "k4"]);
    // The dead letters were delivered before the input offsets were committed.
    common::wait_committed(&servers, "refused-dlq", "in", 1, inputs.len() as i64);
    assert!(common::eventually(Duration::from_secs(10), || app
        .metrics()
        .dropped_records("production")
        == dead.len() as u64));
    assert_eq!(app.state(), StreamsState::Running);
    app.close().unwrap();
}

#[test]
fn under_exactly_once_a_refused_delivery_aborts_the_transaction_and_the_input_is_processed_again() {
    let broker = broker();
    let servers = broker.bootstrap_servers().to_string();
    common::produce(&servers, "in", &records(&["a", "b", "c"]));
    broker
        .fail_next_requests(
            RDKafkaApiKey::Produce,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE],
        )
        .unwrap();
    let app = KafkaStreams::new(
        topology(),
        config(&broker, "refused-eos", ProcessingGuarantee::ExactlyOnce)
            .production_error_handler(ProductionErrorHandler::DeadLetter("out-dlq".into())),
    )
    .unwrap();
    app.start().unwrap();
    // The embedded broker shows aborted records too: each value arrives at least once.
    let out = common::read_until(&servers, "out", Duration::from_secs(30), |r| {
        ["A", "B", "C"]
            .iter()
            .all(|v| r.iter().any(|x| x.value_str() == *v))
    });
    for v in ["A", "B", "C"] {
        assert!(values(&out).contains(&v), "{:?}", values(&out));
    }
    assert!(
        common::read_all(&servers, "out-dlq", Duration::from_secs(1)).is_empty(),
        "under exactly-once a refused delivery aborts; it is not dead-lettered"
    );
    assert_eq!(app.state(), StreamsState::Running);
    app.close().unwrap();
}
