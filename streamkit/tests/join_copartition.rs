//! Joins and partitioning on the embedded broker: a stream-stream join of two co-partitioned
//! topics matches records of every partition; mismatched partition counts fail at start,
//! naming both topics and counts; the records a left join holds back survive a restart
//! through their changelog; a foreign-key join spans tables with different partition counts.

mod common;

use std::time::Duration;

use rdkafka::producer::{BaseRecord, Producer};
use streamkit::prelude::*;
use streamkit::testing::EmbeddedBroker;

fn topology(left_join: bool) -> Topology {
    let b = StreamsBuilder::new();
    let orders = b.stream("orders", Consumed::with(Serdes::string(), Serdes::string()));
    let payments = b.stream(
        "payments",
        Consumed::with(Serdes::string(), Serdes::string()),
    );
    let joined = StreamJoined::with(Serdes::string(), Serdes::string(), Serdes::string())
        .named("order-payments");
    let windows = JoinWindows::of(Duration::from_secs(60));
    let out = if left_join {
        orders.left_join(
            &payments,
            |o: &String, p: Option<&String>| format!("{o}+{}", p.map_or("unpaid", |p| p.as_str())),
            windows,
            joined,
        )
    } else {
        orders.join(
            &payments,
            |o: &String, p: &String| format!("{o}+{p}"),
            windows,
            joined,
        )
    };
    out.to("paid", Produced::with(Serdes::string(), Serdes::string()));
    b.build().unwrap()
}

fn config(broker: &EmbeddedBroker, app: &str, state_dir: &std::path::Path) -> StreamsConfig {
    StreamsConfig::new(app)
        .embedded(broker)
        .state_dir(state_dir)
        .commit_interval(Duration::from_millis(100))
}

/// Produces `(key, value)` records with explicit timestamps.
fn produce_at(broker: &EmbeddedBroker, topic: &str, records: &[(&str, &str, i64)]) {
    let p = common::producer(broker.bootstrap_servers());
    for (k, v, ts) in records {
        p.send(BaseRecord::to(topic).key(*k).payload(*v).timestamp(*ts))
            .map_err(|(e, _)| e)
            .expect("send");
    }
    p.flush(Duration::from_secs(30)).expect("flush");
}

#[test]
fn a_join_matches_records_of_every_partition() {
    common::init_logs();
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("orders", 3).unwrap();
    broker.create_topic("payments", 3).unwrap();
    broker.create_topic("paid", 3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let app = KafkaStreams::new(topology(false), config(&broker, "join-app", dir.path())).unwrap();
    app.start().unwrap();
    assert!(app.wait_for_state(StreamsState::Running, Duration::from_secs(30)));
    let keys: Vec<String> = (0..30).map(|i| format!("order-{i}")).collect();
    let orders: Vec<(String, Vec<u8>)> = keys
        .iter()
        .map(|k| (k.clone(), format!("o:{k}").into_bytes()))
        .collect();
    let payments: Vec<(String, Vec<u8>)> = keys
        .iter()
        .map(|k| (k.clone(), format!("p:{k}").into_bytes()))
        .collect();
    common::produce(broker.bootstrap_servers(), "orders", &orders);
    common::produce(broker.bootstrap_servers(), "payments", &payments);
    let out = common::read_until(
        broker.bootstrap_servers(),
        "paid",
        Duration::from_secs(60),
        |r| r.len() >= keys.len(),
    );
    app.close().unwrap();
    let mut got: Vec<(String, String)> = out
        .iter()
        .map(|r| (r.key_str().to_string(), r.value_str().to_string()))
        .collect();
    got.sort();
    let mut want: Vec<(String, String)> = keys
        .iter()
        .map(|k| (k.clone(), format!("o:{k}+p:{k}")))
        .collect();
    want.sort();
    assert_eq!(got, want);
    let partitions: std::collections::BTreeSet<i32> = out.iter().map(|r| r.partition).collect();
    assert!(
        partitions.len() > 1,
        "keys spread over partitions: {partitions:?}"
    );
}

#[test]
fn mismatched_partition_counts_fail_at_start_naming_both_topics() {
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("orders", 2).unwrap();
    broker.create_topic("payments", 3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let app = KafkaStreams::new(topology(false), config(&broker, "bad-join", dir.path())).unwrap();
    let err = app.start().unwrap_err();
    assert!(matches!(err, Error::CoPartitioning(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("orders has 2 partitions") && msg.contains("payments has 3 partitions"),
        "{msg}"
    );
    assert_eq!(app.state(), StreamsState::Error);
}

/// An order without payment waits in the outer store; the application stops and a new
/// instance (fresh state directory, so the store is restored from its changelog) emits it
/// once a later record closes its window.
#[test]
fn waiting_records_survive_a_restart() {
    common::init_logs();
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("orders", 1).unwrap();
    broker.create_topic("payments", 1).unwrap();
    broker.create_topic("paid", 1).unwrap();
    let t0 = 1_700_000_000_000;
    let first_dir = tempfile::tempdir().unwrap();
    let first = KafkaStreams::new(
        topology(true),
        config(&broker, "wait-app", first_dir.path()),
    )
    .unwrap();
    first.start().unwrap();
    assert!(first.wait_for_state(StreamsState::Running, Duration::from_secs(30)));
    produce_at(
        &broker,
        "orders",
        &[("o-1", "book", t0), ("o-2", "pen", t0 + 1_000)],
    );
    produce_at(&broker, "payments", &[("o-2", "card", t0 + 2_000)]);
    assert!(common::eventually(Duration::from_secs(30), || {
        first.metrics().records_processed() >= 3
    }));
    let early = common::read_until(
        broker.bootstrap_servers(),
        "paid",
        Duration::from_secs(30),
        |r| !r.is_empty(),
    );
    assert_eq!(early.len(), 1);
    assert_eq!(early[0].value_str(), "pen+card");
    first.close().unwrap();

    let second_dir = tempfile::tempdir().unwrap();
    let second = KafkaStreams::new(
        topology(true),
        config(&broker, "wait-app", second_dir.path()),
    )
    .unwrap();
    second.start().unwrap();
    assert!(second.wait_for_state(StreamsState::Running, Duration::from_secs(30)));
    // 61 s after o-1: its window (60 s, no grace) has closed.
    produce_at(&broker, "orders", &[("o-3", "ink", t0 + 61_000)]);
    let out = common::read_until(
        broker.bootstrap_servers(),
        "paid",
        Duration::from_secs(60),
        |r| r.len() >= 2,
    );
    second.close().unwrap();
    let got: Vec<(String, String)> = out
        .iter()
        .map(|r| (r.key_str().to_string(), r.value_str().to_string()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("o-2".to_string(), "pen+card".to_string()),
            ("o-1".to_string(), "book+unpaid".to_string()),
        ]
    );
}

/// A foreign-key join needs no co-partitioning between its tables: orders (3 partitions)
/// find their products (2 partitions) through the subscription topics, which the runtime
/// sizes like the side that reads them.
#[test]
fn a_foreign_key_join_spans_differently_partitioned_tables() {
    common::init_logs();
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("orders", 3).unwrap();
    broker.create_topic("products", 2).unwrap();
    broker.create_topic("lines", 3).unwrap();
    let b = StreamsBuilder::new();
    let latest = |topic: &str| {
        b.stream(topic, Consumed::with(Serdes::string(), Serdes::string()))
            .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
            .reduce(
                |_old, new| new,
                Materialized::named(format!("{topic}-rows")),
            )
    };
    let (orders, products) = (latest("orders"), latest("products"));
    orders
        .join_foreign_key(
            &products,
            |product: &String| product.clone(),
            |_product: &String, name: &String| name.clone(),
            Materialized::named("lines").value_serde(Serdes::string()),
        )
        .to_stream()
        .to("lines", Produced::with(Serdes::string(), Serdes::string()));
    let dir = tempfile::tempdir().unwrap();
    let app = KafkaStreams::new(b.build().unwrap(), config(&broker, "fk-app", dir.path())).unwrap();
    app.start().unwrap();
    assert!(app.wait_for_state(StreamsState::Running, Duration::from_secs(30)));
    let products: Vec<(String, Vec<u8>)> = (0..5)
        .map(|p| (format!("p{p}"), format!("product {p}").into_bytes()))
        .collect();
    common::produce(broker.bootstrap_servers(), "products", &products);
    let orders: Vec<(String, Vec<u8>)> = (0..20)
        .map(|o| (format!("o{o}"), format!("p{}", o % 5).into_bytes()))
        .collect();
    common::produce(broker.bootstrap_servers(), "orders", &orders);
    let out = common::read_until(
        broker.bootstrap_servers(),
        "lines",
        Duration::from_secs(60),
        |r| r.len() >= 20,
    );
    app.close().unwrap();
    let mut got: Vec<(String, String)> = out
        .iter()
        .map(|r| (r.key_str().to_string(), r.value_str().to_string()))
        .collect();
    got.sort();
    let mut want: Vec<(String, String)> = (0..20)
        .map(|o| (format!("o{o}"), format!("product {}", o % 5)))
        .collect();
    want.sort();
    assert_eq!(got, want);
    let md = {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let c: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", broker.bootstrap_servers())
            .create()
            .unwrap();
        c.fetch_metadata(None, Duration::from_secs(10)).unwrap()
    };
    let partitions = |topic: &str| {
        md.topics()
            .iter()
            .find(|t| t.name() == topic)
            .map(|t| t.partitions().len())
    };
    assert_eq!(
        partitions("fk-app-lines-subscription-registration-repartition"),
        Some(2)
    );
    assert_eq!(
        partitions("fk-app-lines-subscription-response-repartition"),
        Some(3)
    );
}
