//! Tables and joins on the embedded broker: a global table loaded before processing starts
//! and kept up to date, a stream-table join across co-partitioned topics, and the start-up
//! co-partitioning error.

mod common;

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use streamkit::prelude::*;
use streamkit::testing::EmbeddedBroker;

const WAIT: Duration = Duration::from_secs(30);

/// Produces `(key, value)` pairs, `None` = tombstone, and waits for the acknowledgements.
fn produce(broker: &EmbeddedBroker, topic: &str, records: &[(&str, Option<&str>)]) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("partitioner", "murmur2_random")
        .create()
        .unwrap();
    for (k, v) in records {
        let mut r = BaseRecord::<str, str>::to(topic).key(*k);
        if let Some(v) = v {
            r = r.payload(*v);
        }
        p.send(r).map_err(|(e, _)| e).unwrap();
    }
    p.flush(WAIT).unwrap();
}

fn config(app: &str, broker: &EmbeddedBroker, dir: &tempfile::TempDir) -> StreamsConfig {
    StreamsConfig::new(app)
        .embedded(broker)
        .state_dir(dir.path())
        .commit_interval(Duration::from_millis(200))
}

/// Taps joined with the station names of a global table.
fn global_topology() -> Topology {
    let b = StreamsBuilder::new();
    let stations = b.global_table(
        "stations",
        Consumed::with(Serdes::string(), Serdes::string()),
        Materialized::named("stations"),
    );
    b.stream("taps", Consumed::with(Serdes::string(), Serdes::string()))
        .join_global(
            &stations,
            |_card, station| station.clone(),
            |station, name| format!("{station}={name}"),
        )
        .to(
            "named-taps",
            Produced::with(Serdes::string(), Serdes::string()),
        );
    b.build().unwrap()
}

#[test]
fn a_global_table_is_loaded_before_processing_and_follows_updates() {
    common::init_logs();
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("stations", 3).unwrap();
    broker.create_topic("taps", 2).unwrap();
    broker.create_topic("named-taps", 2).unwrap();
    let rows: Vec<(String, String)> = (1..=9)
        .map(|i| (format!("s{i}"), format!("station {i}")))
        .collect();
    let rows_ref: Vec<(&str, Option<&str>)> = rows
        .iter()
        .map(|(k, v)| (k.as_str(), Some(v.as_str())))
        .collect();
    produce(&broker, "stations", &rows_ref);
    produce(&broker, "stations", &[("s9", None)]);

    let dir = tempfile::tempdir().unwrap();
    let app = KafkaStreams::new(global_topology(), config("global-app", &broker, &dir)).unwrap();
    app.start().unwrap();
    // start() returns once the global table holds its topic: every row, the tombstone applied.
    let store = app.store::<String, String>("stations").unwrap();
    assert_eq!(store.all().unwrap().len(), 8);
    assert_eq!(store.get(&"s3".into()).unwrap(), Some("station 3".into()));
    assert_eq!(store.get(&"s9".into()).unwrap(), None);
    assert!(app.wait_for_state(StreamsState::Running, WAIT));

    produce(
        &broker,
        "taps",
        &[("card-1", Some("s1")), ("card-2", Some("s9"))],
    );
    let out = common::read_until(broker.bootstrap_servers(), "named-taps", WAIT, |r| {
        !r.is_empty()
    });
    assert_eq!(out.len(), 1, "s9 was deleted: card-2 has no match");
    assert_eq!(
        (out[0].key_str(), out[0].value_str()),
        ("card-1", "s1=station 1")
    );

    // The global thread keeps reading: an update reaches the store, then the joins.
    produce(
        &broker,
        "stations",
        &[("s2", Some("renamed")), ("s10", Some("new"))],
    );
    assert!(common::eventually(WAIT, || {
        store.get(&"s2".into()).unwrap().as_deref() == Some("renamed")
            && store.get(&"s10".into()).unwrap().is_some()
    }));
    produce(
        &broker,
        "taps",
        &[("card-3", Some("s2")), ("card-4", Some("s10"))],
    );
    let out = common::read_until(broker.bootstrap_servers(), "named-taps", WAIT, |r| {
        r.len() >= 3
    });
    let mut values: Vec<&str> = out.iter().map(|r| r.value_str()).collect();
    values.sort();
    assert_eq!(values, vec!["s10=new", "s1=station 1", "s2=renamed"]);
    app.close().unwrap();
    // A store handle keeps the store (and its RocksDB lock) alive.
    drop((store, app));

    // Changes made while no instance ran, a deletion included, are there after a restart
    // with the same state directory: the store is rebuilt from the topic.
    produce(&broker, "stations", &[("s1", None), ("s3", Some("moved"))]);
    let app = KafkaStreams::new(global_topology(), config("global-app", &broker, &dir)).unwrap();
    app.start().unwrap();
    let store = app.store::<String, String>("stations").unwrap();
    assert_eq!(store.get(&"s1".into()).unwrap(), None);
    assert_eq!(store.get(&"s3".into()).unwrap(), Some("moved".into()));
    assert_eq!(store.get(&"s2".into()).unwrap(), Some("renamed".into()));
    assert_eq!(store.all().unwrap().len(), 8);

    // A second instance sharing the state directory holds its own copy.
    let second = KafkaStreams::new(global_topology(), config("global-app", &broker, &dir)).unwrap();
    second.start().unwrap();
    let copy = second.store::<String, String>("stations").unwrap();
    assert_eq!(copy.all().unwrap(), store.all().unwrap());
    drop((copy, store));
    second.close().unwrap();
    app.close().unwrap();
    // Global stores are rebuilt at each start: nothing is left behind.
    let left: Vec<_> = std::fs::read_dir(dir.path().join("global-app"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("global-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_stream_table_join_runs_across_co_partitioned_topics() {
    common::init_logs();
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("accounts", 2).unwrap();
    broker.create_topic("payments", 2).unwrap();
    broker.create_topic("receipts", 2).unwrap();
    let b = StreamsBuilder::new();
    let accounts = b.table(
        "accounts",
        Consumed::with(Serdes::string(), Serdes::string()),
        Materialized::named("accounts"),
    );
    b.stream(
        "payments",
        Consumed::with(Serdes::string(), Serdes::string()),
    )
    .left_join_table(&accounts, |amount, owner| {
        format!("{amount} from {}", owner.map_or("unknown", |o| o.as_str()))
    })
    .to(
        "receipts",
        Produced::with(Serdes::string(), Serdes::string()),
    );
    let dir = tempfile::tempdir().unwrap();
    let app = KafkaStreams::new(b.build().unwrap(), config("join-app", &broker, &dir)).unwrap();
    app.start().unwrap();
    assert!(app.wait_for_state(StreamsState::Running, WAIT));
    let owners: Vec<(String, String)> = (0..6)
        .map(|i| (format!("acct-{i}"), format!("owner {i}")))
        .collect();
    let owners_ref: Vec<(&str, Option<&str>)> = owners
        .iter()
        .map(|(k, v)| (k.as_str(), Some(v.as_str())))
        .collect();
    produce(&broker, "accounts", &owners_ref);
    produce(&broker, "accounts", &[("acct-5", None)]);
    // Wait until the tasks' stores hold the table, so the order of the two topics is known.
    let store = app.store::<String, String>("accounts").unwrap();
    assert!(common::eventually(WAIT, || {
        store.all().map(|a| a.len() == 5).unwrap_or(false)
    }));
    let payments: Vec<(String, String)> = (0..6)
        .map(|i| (format!("acct-{i}"), format!("${i}")))
        .collect();
    let payments_ref: Vec<(&str, Option<&str>)> = payments
        .iter()
        .map(|(k, v)| (k.as_str(), Some(v.as_str())))
        .collect();
    produce(&broker, "payments", &payments_ref);
    let out = common::read_until(broker.bootstrap_servers(), "receipts", WAIT, |r| {
        r.len() >= 6
    });
    let mut got: Vec<(String, String)> = out
        .iter()
        .map(|r| (r.key_str().to_string(), r.value_str().to_string()))
        .collect();
    got.sort();
    let mut expected: Vec<(String, String)> = (0..5)
        .map(|i| (format!("acct-{i}"), format!("${i} from owner {i}")))
        .collect();
    expected.push(("acct-5".into(), "$5 from unknown".into()));
    assert_eq!(got, expected);
    app.close().unwrap();
}

#[test]
fn joined_topics_with_different_partition_counts_fail_at_start() {
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("orders", 3).unwrap();
    broker.create_topic("customers", 2).unwrap();
    let b = StreamsBuilder::new();
    let customers = b.table(
        "customers",
        Consumed::with(Serdes::string(), Serdes::string()),
        Materialized::named("customers").in_memory(),
    );
    b.stream("orders", Consumed::with(Serdes::string(), Serdes::string()))
        .join_table(&customers, |o, c| format!("{o}{c}"))
        .to("out", Produced::with(Serdes::string(), Serdes::string()));
    let dir = tempfile::tempdir().unwrap();
    let app = KafkaStreams::new(b.build().unwrap(), config("copart-app", &broker, &dir)).unwrap();
    let err = app.start().unwrap_err();
    assert!(matches!(err, Error::CoPartitioning(_)), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("customers has 2 partitions") && msg.contains("orders has 3 partitions"),
        "{msg}"
    );
    assert_eq!(app.state(), StreamsState::Error);
}

#[test]
fn an_empty_global_topic_loads_at_once() {
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("stations", 2).unwrap();
    broker.create_topic("taps", 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let app =
        KafkaStreams::new(global_topology(), config("empty-global-app", &broker, &dir)).unwrap();
    app.start().unwrap();
    assert_eq!(
        app.store::<String, String>("stations")
            .unwrap()
            .all()
            .unwrap(),
        vec![]
    );
    app.close().unwrap();
}
