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
    assert_eq!(app.state(), StreamsState::Created);
    app.start().unwrap();
    assert!(app.wait_for_state(StreamsState::Running, Duration::from_secs(30)));
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
        Some(&(StreamsState::Created, StreamsState::Rebalancing))
    );
    assert!(transitions.contains(&(StreamsState::Rebalancing, StreamsState::Running)));
    assert_eq!(
        &transitions[transitions.len() - 2..],
        &[
            (StreamsState::Running, StreamsState::PendingShutdown),
            (StreamsState::PendingShutdown, StreamsState::NotRunning)
        ]
    );
    assert_eq!(app.state(), StreamsState::NotRunning);
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
    assert_eq!(app.state(), StreamsState::Error);
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
    assert!(app.wait_for_state(StreamsState::Running, Duration::from_secs(30)));
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

/// `in` counted per key into a RocksDB store.
fn counting() -> Topology {
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
        .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
        .count(Materialized::named("counts"))
        .to_stream()
        .to("out", Produced::with(Serdes::string(), Serdes::i64()));
    b.build().unwrap()
}

#[test]
fn two_instances_cannot_share_a_state_directory() {
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("in", 1).unwrap();
    let dir = std::env::temp_dir().join(format!("streamkit-shared-dir-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = || {
        StreamsConfig::new("shared-dir-app")
            .embedded(&broker)
            .state_dir(&dir)
    };
    let first = KafkaStreams::new(counting(), config()).unwrap();
    first.start().unwrap();
    let second = KafkaStreams::new(counting(), config()).unwrap();
    let err = second.start().unwrap_err().to_string();
    assert!(err.contains("in use by another instance"), "{err}");
    assert!(
        err.contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    assert_eq!(second.state(), StreamsState::Error);
    first.close().unwrap();

    // Closed: the directory is free again.
    let third = KafkaStreams::new(counting(), config()).unwrap();
    third.start().unwrap();
    third.close().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn global_store_directories_are_reaped_only_when_nobody_holds_them() {
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("in", 1).unwrap();
    broker.create_topic("stations", 1).unwrap();
    let dir = std::env::temp_dir().join(format!("streamkit-reap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let app_dir = dir.join("reap-app");
    // One left by a process that ended, one held by a live process (here: a lock this test
    // holds, as another PID namespace's process would), and one without a lock file.
    let dead = app_dir.join("global-4000000-0");
    let live = app_dir.join("global-4000001-0");
    let unknown = app_dir.join("global-4000002-0");
    for d in [&dead, &live, &unknown] {
        std::fs::create_dir_all(d.join("0")).unwrap();
    }
    std::fs::write(dead.join(".lock"), "4000000\n").unwrap();
    let held = std::fs::File::create(live.join(".lock")).unwrap();
    held.try_lock().unwrap();

    let b = StreamsBuilder::new();
    let stations = b.global_table(
        "stations",
        Consumed::with(Serdes::string(), Serdes::string()),
        Materialized::named("stations"),
    );
    b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
        .join_global(
            &stations,
            |k: &String, _v: &String| k.clone(),
            |v: &String, s: &String| format!("{v}@{s}"),
        )
        .to("out", Produced::with(Serdes::string(), Serdes::string()));
    let app = KafkaStreams::new(
        b.build().unwrap(),
        StreamsConfig::new("reap-app")
            .embedded(&broker)
            .state_dir(&dir),
    )
    .unwrap();
    assert!(!dead.exists(), "an unheld directory is reaped");
    assert!(live.exists(), "a held directory is kept");
    assert!(
        unknown.exists(),
        "a directory without a lock file is left alone"
    );
    app.start().unwrap();
    assert!(app.wait_for_state(StreamsState::Running, Duration::from_secs(30)));
    app.close().unwrap();
    drop(held);
    std::fs::remove_dir_all(&dir).unwrap();
}
