//! Push queries cannot grow without bound: an engine runs a limited number at once, and a
//! reader that falls too far behind is dropped (its rows channel closes, and the REST server
//! ends the response with an error line) instead of buffering every row.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use streamkit::prelude::*;
use streamkit::sql::Engine;
use streamkit::testing::EmbeddedBroker;

fn earliest() -> BTreeMap<String, String> {
    BTreeMap::from([("auto.offset.reset".to_string(), "earliest".to_string())])
}

#[test]
fn a_slow_reader_is_dropped_and_running_queries_are_capped() {
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("taps", 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = StreamsConfig::new("sql-limits")
        .embedded(&broker)
        .state_dir(dir.path())
        .commit_interval(Duration::from_millis(100));
    let mut engine = Engine::new(config).push_limits(1, 5);
    engine
        .execute(
            "CREATE STREAM taps (station VARCHAR KEY, fare INT) WITH (KAFKA_TOPIC='taps', VALUE_FORMAT='JSON');",
        )
        .unwrap();
    let taps: Vec<(String, Vec<u8>)> = (0..50)
        .map(|i| (format!("s{i}"), format!(r#"{{"fare": {i}}}"#).into_bytes()))
        .collect();
    common::produce(broker.bootstrap_servers(), "taps", &taps);

    let mut push = engine
        .push("SELECT station, fare FROM taps EMIT CHANGES;", &earliest())
        .unwrap();
    // One running: a second is refused, naming the limit.
    let refused = engine
        .push("SELECT station FROM taps EMIT CHANGES;", &earliest())
        .err()
        .expect("a second push query is refused");
    assert!(
        refused.to_string().contains("1 push queries are running"),
        "{refused}"
    );

    // Nobody reads: after 5 buffered rows the reader is dropped.
    assert!(
        common::eventually(Duration::from_secs(60), || push.overflowed()),
        "the query never gave up on its reader"
    );
    let mut buffered = 0;
    while let Ok(row) = push.rows.try_recv() {
        assert_eq!(row.len(), 2);
        buffered += 1;
    }
    assert_eq!(buffered, 5, "exactly the buffer, then nothing");
    assert!(push.rows.is_closed(), "the channel is closed");

    // Ending the query frees its place.
    drop(push);
    let again = engine
        .push("SELECT station FROM taps EMIT CHANGES;", &earliest())
        .unwrap();
    drop(again);
}
