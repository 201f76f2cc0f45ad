//! The instance state machine, its listener, and start-up checks.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use streamkit::prelude::*;
use streamkit::testing::EmbeddedBroker;

fn passthrough(input: &str) -> Topology {
    let b = StreamsBuilder::new();
    b.stream(input, Consumed::with(Serdes::string(), Serdes::string()))
        .to("out", Produced::with(Serdes::string(), Serdes::string()));
    b.build().unwrap()
}

#[test]
fn states_follow_created_rebalancing_running_pending_shutdown_not_running() {
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("in", 2).unwrap();
    broker.create_topic("out", 2).unwrap();
    let app = KafkaStreams::new(
        passthrough("in"),
        StreamsConfig::new("life-app").embedded(&broker),
    )
    .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    app.set_state_listener(move |old, new| log.lock().unwrap().push((old, new)));
    assert_eq!(app.state(), State::Created);
    app.start().unwrap();
    assert!(app.wait_for_state(State::Running, Duration::from_secs(30)));
    assert!(app.start().is_err(), "a second start is refused");
    common::produce(
        broker.bootstrap_servers(),
        "in",
        &[("k".into(), b"v".to_vec())],
    );
    let out = common::read_until(
        broker.bootstrap_servers(),
        "out",
        Duration::from_secs(30),
        |r| !r.is_empty(),
    );
    assert_eq!(out[0].value_str(), "v");
    app.close().unwrap();
    let transitions = seen.lock().unwrap().clone();
    assert_eq!(
        transitions.first(),
        Some(&(State::Created, State::Rebalancing))
    );
    assert!(transitions.contains(&(State::Rebalancing, State::Running)));
    assert_eq!(
        &transitions[transitions.len() - 2..],
        &[
            (State::Running, State::PendingShutdown),
            (State::PendingShutdown, State::NotRunning)
        ]
    );
    assert_eq!(app.state(), State::NotRunning);
}

#[test]
fn a_missing_source_topic_is_a_clear_error() {
    let broker = EmbeddedBroker::start().unwrap();
    let app = KafkaStreams::new(
        passthrough("no-such-topic"),
        StreamsConfig::new("missing-app").embedded(&broker),
    )
    .unwrap();
    let err = app.start().unwrap_err();
    assert!(
        matches!(err, Error::MissingSourceTopics(ref t) if t == &["no-such-topic".to_string()]),
        "{err}"
    );
    assert_eq!(app.state(), State::Error);
}

#[test]
fn config_errors_are_reported_before_starting() {
    let err = KafkaStreams::new(passthrough("in"), StreamsConfig::new("no-brokers")).unwrap_err();
    assert!(err.to_string().contains("bootstrap_servers"), "{err}");
    let err = KafkaStreams::new(
        passthrough("in"),
        StreamsConfig::new("bad id!").bootstrap_servers("x:1"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("application id"), "{err}");
}

#[test]
fn the_repartition_topic_is_created_with_the_input_partition_count() {
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("in", 3).unwrap();
    broker.create_topic("out", 1).unwrap();
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
        .repartition(Repartitioned::with(Serdes::string(), Serdes::string()).named("shuffle"))
        .to("out", Produced::with(Serdes::string(), Serdes::string()));
    let app = KafkaStreams::new(
        b.build().unwrap(),
        StreamsConfig::new("sizing-app").embedded(&broker),
    )
    .unwrap();
    app.start().unwrap();
    assert!(app.wait_for_state(State::Running, Duration::from_secs(30)));
    let consumer: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .create()
        .unwrap();
    use rdkafka::consumer::Consumer;
    let md = consumer
        .fetch_metadata(
            Some("sizing-app-shuffle-repartition"),
            Duration::from_secs(10),
        )
        .unwrap();
    assert_eq!(md.topics()[0].partitions().len(), 3);
    app.close().unwrap();
}
