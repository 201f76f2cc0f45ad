//! The Cassandra sink against a real Apache Cassandra node (`STREAMKIT_TEST_CASSANDRA`,
//! started by scripts/test.sh through scripts/cassandra.sh; the tests fail without it) and an
//! embedded broker: keyspace and table created on request, rows read back with the CQL driver
//! (newest value per key, tombstones delete), offsets committed only after the writes, a
//! replay from the beginning (as CQL batches) leaving the same rows, and a record that does not deserialize
//! stopping the sink with its position.
#![cfg(feature = "cassandra")]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use serde::{Deserialize, Serialize};
use streamkit::connect::cassandra::{CassandraSink, Cell, SinkProgress};
use streamkit::prelude::*;
use streamkit::testing::EmbeddedBroker;

fn cassandra() -> String {
    std::env::var("STREAMKIT_TEST_CASSANDRA").expect(
        "STREAMKIT_TEST_CASSANDRA must name a Cassandra node's CQL port (scripts/test.sh starts \
         one with scripts/cassandra.sh), e.g. 127.0.0.1:9042",
    )
}

/// A keyspace no other test run uses.
fn keyspace(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("sk_{test}_{}_{}", std::process::id(), nanos % 1_000_000_000)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Person {
    name: String,
    age: i32,
}

fn uuid_of(i: u32) -> String {
    format!("00000000-0000-4000-8000-{i:012x}")
}

fn produce(servers: &str, topic: &str, records: &[(String, Option<Vec<u8>>)]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .create()
        .unwrap();
    for (key, value) in records {
        let mut r = BaseRecord::<String, Vec<u8>>::to(topic)
            .key(key)
            .partition(0);
        if let Some(v) = value {
            r = r.payload(v);
        }
        producer.send(r).map_err(|(e, _)| e).unwrap();
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

fn sink(table: &str, topic: &str, group: &str) -> CassandraSink<String, Person> {
    CassandraSink::new("test", [cassandra()], table)
        .topic(topic, Serdes::string(), Serdes::json::<Person>())
        .key_columns([("id", "uuid")], |k: &String| vec![Cell::uuid_text(k)])
        .value_columns([("name", "text"), ("age", "int")], |p: &Person| {
            vec![Cell::Text(p.name.clone()), Cell::Int(p.age)]
        })
        .create_keyspace(1)
        .create_table(true)
        .batch_rows(20)
        .max_records(100)
        .linger(Duration::from_millis(100))
        .group_id(group)
}

/// Runs `sink` until `done(progress)` holds (or `idle` passes when `done` is `None`).
async fn run_until(
    sink: CassandraSink<String, Person>,
    config: &StreamsConfig,
    done: impl Fn(&SinkProgress) -> bool + Send + 'static,
) -> Result<Arc<SinkProgress>> {
    let progress = sink.progress();
    let watched = progress.clone();
    let shutdown = async move {
        while !done(&watched) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(120), sink.run(config, shutdown))
        .await
        .expect("the sink finished in time")?;
    Ok(progress)
}

/// The offset `group` committed on partition 0 of `people`.
fn committed(servers: &str, group: &str) -> i64 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition("people", 0);
    let got = c.committed_offsets(tpl, Duration::from_secs(30)).unwrap();
    match got.find_partition("people", 0).unwrap().offset() {
        rdkafka::Offset::Offset(o) => o,
        other => panic!("no committed offset: {other:?}"),
    }
}

async fn rows(session: &Session, table: &str) -> BTreeMap<String, (String, i32)> {
    let result = session
        .query_unpaged(format!("SELECT id, name, age FROM {table}"), &[])
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    result
        .rows::<(uuid::Uuid, String, i32)>()
        .unwrap()
        .map(|r| {
            let (id, name, age) = r.unwrap();
            (id.to_string(), (name, age))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_land_newest_per_key_offsets_commit_after_and_a_replay_changes_nothing() {
    let node = cassandra();
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("people", 1).unwrap();
    // A consumer that leaves is replaced quickly when the next run of the group joins.
    let config = StreamsConfig::new("cassandra-sink-test")
        .embedded(&broker)
        .set("consumer.session.timeout.ms", "6000")
        .set("consumer.heartbeat.interval.ms", "500");
    let table = format!("{}.people", keyspace("rows"));

    let json = |name: &str, age: i32| {
        Some(
            serde_json::to_vec(&Person {
                name: name.into(),
                age,
            })
            .unwrap(),
        )
    };
    let mut records: Vec<(String, Option<Vec<u8>>)> = (0..250)
        .map(|i| {
            (
                uuid_of(i),
                json(&format!("person {i}"), 20 + (i % 50) as i32),
            )
        })
        .collect();
    // Key 7 changes (twice, in the same read and in the same batch); key 9 is deleted.
    records.push((uuid_of(7), json("renamed", 99)));
    records.push((uuid_of(9), None));
    records.push((uuid_of(7), json("renamed again", 98)));
    produce(broker.bootstrap_servers(), "people", &records);
    let total = records.len() as u64;

    let mut want: BTreeMap<String, (String, i32)> = BTreeMap::new();
    for (k, v) in &records {
        match v {
            Some(v) => {
                let p: Person = serde_json::from_slice(v).unwrap();
                want.insert(k.clone(), (p.name, p.age));
            }
            None => {
                want.remove(k);
            }
        }
    }
    assert_eq!(want.len(), 249);

    let progress = run_until(sink(&table, "people", "g1"), &config, move |p| {
        p.records_read() >= total
    })
    .await
    .unwrap();
    assert_eq!(progress.records_read(), total);
    assert!(
        progress.batches() >= 250 / 20,
        "written in batches: {}",
        progress.batches()
    );
    assert!(progress.commits() >= 1);

    let session = SessionBuilder::new()
        .known_node(&node)
        .build()
        .await
        .unwrap();
    let got = rows(&session, &table).await;
    assert_eq!(got.len(), want.len());
    assert_eq!(got, want);
    assert_eq!(got[&uuid_of(7)], ("renamed again".to_string(), 98));
    assert!(!got.contains_key(&uuid_of(9)));

    // The group's committed offset is the end of the topic: nothing is read twice.
    assert_eq!(committed(broker.bootstrap_servers(), "g1"), total as i64);

    // New records after the commit are the only ones read.
    produce(
        broker.bootstrap_servers(),
        "people",
        &[(uuid_of(500), json("late", 30))],
    );
    let late = run_until(sink(&table, "people", "g1"), &config, |p| {
        p.records_read() >= 1
    })
    .await
    .unwrap();
    assert_eq!(late.records_read(), 1, "resumed from the committed offset");
    assert_eq!(
        committed(broker.bootstrap_servers(), "g1"),
        total as i64 + 1
    );
    want.insert(uuid_of(500), ("late".to_string(), 30));

    // A replay of the whole topic (a group that has committed nothing, as after a crash
    // before any commit) leaves exactly the same rows; written as CQL batches this time.
    let before = rows(&session, &table).await;
    assert_eq!(before, want);
    let replay = run_until(
        sink(&table, "people", "replay").cql_batches(true),
        &config,
        move |p| p.records_read() > total,
    )
    .await
    .unwrap();
    assert_eq!(replay.records_read(), total + 1);
    assert_eq!(rows(&session, &table).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_does_not_deserialize_stops_the_sink_naming_its_offset() {
    cassandra();
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("people", 1).unwrap();
    let config = StreamsConfig::new("cassandra-sink-bad").embedded(&broker);
    let table = format!("{}.people", keyspace("bad"));
    produce(
        broker.bootstrap_servers(),
        "people",
        &[
            (uuid_of(1), Some(br#"{"name":"ok","age":1}"#.to_vec())),
            (uuid_of(2), Some(b"garbage".to_vec())),
        ],
    );
    let e = run_until(sink(&table, "people", "g"), &config, |_| false)
        .await
        .unwrap_err();
    let message = e.to_string();
    assert!(message.contains("people[0]@1"), "{message}");
    assert!(message.contains("does not deserialize"), "{message}");
}
