//! Faust-style tables written by an agent on the embedded broker: the query server answers
//! for them, deletes reach the changelog as tombstones, and a restart with an empty state
//! directory restores them from their changelogs.

mod common;
#[path = "common/http.rs"]
mod http;

use std::time::Duration;

use streamkit::prelude::*;
use streamkit::table::{FaustTable, WindowedFaustTable};
use streamkit::testing::EmbeddedBroker;

fn tables() -> (FaustTable<String, i64>, WindowedFaustTable<String, i64>) {
    (
        FaustTable::new("event-counts", Serdes::string(), Serdes::i64()).with_default(|| 0),
        FaustTable::new("events-per-hour", Serdes::string(), Serdes::i64())
            .with_default(|| 0)
            .tumbling(Duration::from_secs(3600), Duration::from_secs(86_400)),
    )
}

/// `reset` deletes the key's count; anything else counts.
fn topology() -> Topology {
    let (counts, hourly) = tables();
    let b = StreamsBuilder::new();
    b.add_state_store(counts.store());
    b.add_state_store(hourly.store());
    let (c, h) = (counts.clone(), hourly.clone());
    b.agent(
        "count-events",
        "events",
        Consumed::with(Serdes::string(), Serdes::string()),
        &[counts.name(), hourly.name()],
        move |mut events| {
            let (c, h) = (c.clone(), h.clone());
            async move {
                let counts = events.table(&c)?;
                let hourly = events.windowed_table(&h)?;
                while let Some(e) = events.next().await {
                    if e.value == "reset" {
                        counts.delete(&e.key)?;
                    } else {
                        counts.update(&e.key, |n| n + 1)?;
                        hourly.update(&e.key, |n| n + 1)?;
                    }
                }
                Ok(())
            }
        },
    );
    b.build().unwrap()
}

fn config(broker: &EmbeddedBroker, dir: &std::path::Path) -> StreamsConfig {
    StreamsConfig::new("faust-app")
        .embedded(broker)
        .state_dir(dir)
        .commit_interval(Duration::from_millis(100))
        .query_server("127.0.0.1:0")
}

fn events(keys: usize, per_key: usize) -> Vec<(String, Vec<u8>)> {
    (0..keys * per_key)
        .map(|i| (format!("k{}", i % keys), format!("e{i}").into_bytes()))
        .collect()
}

#[test]
fn an_agents_tables_are_queryable_logged_and_restored() {
    common::init_logs();
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("events", 2).unwrap();
    let servers = broker.bootstrap_servers().to_string();

    let dir1 = tempfile::tempdir().unwrap();
    let first = KafkaStreams::new(topology(), config(&broker, dir1.path())).unwrap();
    first.start().unwrap();
    common::produce(&servers, "events", &events(6, 5));
    common::produce(&servers, "events", &[("k5".into(), b"reset".to_vec())]);
    let addr = first.query_server_addr().unwrap().to_string();
    assert!(
        common::eventually(Duration::from_secs(60), || {
            first.metrics().records_processed() >= 31
        }),
        "processed {} of 31: {:?}",
        first.metrics().records_processed(),
        first.error()
    );

    // The query server answers from the Faust tables like from any store.
    let r = http::get(&addr, "/stores/event-counts/k0", None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (r.json()["key"].clone(), r.json()["value"].clone()),
        ("k0".into(), 5.into())
    );
    let reset = http::get(&addr, "/stores/event-counts/k5", None);
    assert_eq!(reset.status, 404, "deleted: {}", reset.body);
    let r = http::get(
        &addr,
        &format!("/stores/events-per-hour/k1?from=0&to={}", i64::MAX),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let total: u64 = r.json()["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["value"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 5, "{}", r.body);
    first.close().unwrap();

    // The delete is a tombstone in the table's changelog, after k5's five counts.
    let changelog = common::read_until(
        &servers,
        "faust-app-event-counts-changelog",
        Duration::from_secs(30),
        |r| r.len() >= 31,
    );
    let k5: Vec<Option<i64>> = changelog
        .iter()
        .filter(|r| r.key_str() == "k5")
        .map(|r| {
            r.value
                .as_ref()
                .map(|v| i64::from_be_bytes(v.as_slice().try_into().unwrap()))
        })
        .collect();
    assert_eq!(k5, vec![Some(1), Some(2), Some(3), Some(4), Some(5), None]);
    drop(dir1);

    // A new instance with no local state restores both tables from their changelogs.
    let dir2 = tempfile::tempdir().unwrap();
    let second = KafkaStreams::new(topology(), config(&broker, dir2.path())).unwrap();
    second.start().unwrap();
    assert!(second.wait_for_state(StreamsState::Running, Duration::from_secs(30)));
    // 31 count records (30 updates and a tombstone) and 30 window updates.
    assert_eq!(second.metrics().restored_records(), 61);
    let counts = second.store::<String, i64>("event-counts").unwrap();
    assert_eq!(counts.get(&"k0".to_string()).unwrap(), Some(5));
    assert_eq!(counts.get(&"k5".to_string()).unwrap(), None);
    assert_eq!(counts.all().unwrap().len(), 5);
    // Counting goes on from the restored values.
    common::produce(&servers, "events", &events(6, 1));
    assert!(
        common::eventually(Duration::from_secs(60), || {
            counts.get(&"k0".to_string()).ok().flatten() == Some(6)
                && counts.get(&"k5".to_string()).ok().flatten() == Some(1)
        }),
        "{:?}",
        counts.all()
    );
    second.close().unwrap();
}
