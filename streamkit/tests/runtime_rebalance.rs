//! Two instances of one application share the work through the consumer group; stopping one
//! mid-stream moves its partitions to the other and no record is lost (at-least-once).

mod common;

use std::collections::HashSet;
use std::time::Duration;

use streamkit::prelude::*;
use streamkit::testing::EmbeddedBroker;

fn topology() -> Topology {
    let b = StreamsBuilder::new();
    b.stream("orders", Consumed::with(Serdes::string(), Serdes::string()))
        // Re-key by a bucket of the id so records must cross the repartition topic.
        .select_key(|_, v: &String| format!("bucket-{}", v.parse::<u64>().unwrap() % 7))
        .repartition(Repartitioned::with(Serdes::string(), Serdes::string()).named("by-bucket"))
        .map_values(|v| format!("seen:{v}"))
        .to(
            "orders-seen",
            Produced::with(Serdes::string(), Serdes::string()),
        );
    b.build().unwrap()
}

fn config(broker: &EmbeddedBroker) -> StreamsConfig {
    StreamsConfig::new("rebalance-app")
        .embedded(broker)
        .commit_interval(Duration::from_millis(100))
        .set("consumer.heartbeat.interval.ms", "100")
        .set("consumer.session.timeout.ms", "6000")
        // A thread that does not stop fails the test with its name rather than hanging it.
        .close_timeout(Duration::from_secs(30))
}

fn batch(range: std::ops::Range<u64>) -> Vec<(String, Vec<u8>)> {
    range
        .map(|i| (format!("customer-{}", i % 50), i.to_string().into_bytes()))
        .collect()
}

#[test]
fn stopping_one_of_two_instances_loses_no_record() {
    common::init_logs();
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("orders", 4).unwrap();
    broker.create_topic("orders-seen", 4).unwrap();
    let servers = broker.bootstrap_servers().to_string();

    // Instance a runs two stream threads: three group members in all once b joins.
    let a = KafkaStreams::new(topology(), config(&broker).num_stream_threads(2)).unwrap();
    a.start().unwrap();
    assert!(
        a.wait_for_state(StreamsState::Running, Duration::from_secs(30)),
        "a: {:?}",
        a.state()
    );
    common::produce(&servers, "orders", &batch(0..1000));

    let b = KafkaStreams::new(topology(), config(&broker)).unwrap();
    b.start().unwrap();
    assert!(
        common::eventually(Duration::from_secs(30), || a.state()
            == StreamsState::Running
            && b.state() == StreamsState::Running),
        "both running: a={:?} {:?} b={:?} {:?}",
        a.state(),
        a.error(),
        b.state(),
        b.error()
    );
    common::produce(&servers, "orders", &batch(1000..2000));
    // Both instances work before one leaves.
    assert!(common::eventually(Duration::from_secs(30), || {
        a.metrics().records_processed() > 0 && b.metrics().records_processed() > 0
    }));
    b.close().unwrap();
    assert_eq!(b.state(), StreamsState::NotRunning);
    common::produce(&servers, "orders", &batch(2000..3000));

    let expected: HashSet<String> = (0..3000).map(|i| format!("seen:{i}")).collect();
    let mut seen = HashSet::new();
    let out = common::read_until(&servers, "orders-seen", Duration::from_secs(60), |rs| {
        if let Some(r) = rs.last() {
            seen.insert(r.value_str().to_string());
        }
        seen.len() == expected.len()
    });
    let got: HashSet<String> = out.iter().map(|r| r.value_str().to_string()).collect();
    let missing: Vec<_> = expected.difference(&got).take(10).collect();
    assert!(
        missing.is_empty(),
        "{} records missing, e.g. {missing:?}",
        expected.len() - got.len().min(expected.len())
    );
    // Every output record went through the repartition topic: its key is the bucket.
    for r in &out {
        let id: u64 = r.value_str().trim_start_matches("seen:").parse().unwrap();
        assert_eq!(r.key_str(), format!("bucket-{}", id % 7));
    }
    a.close().unwrap();
}
