//! Stores survive restarts and moves: their changelogs restore them. Losing the local state
//! directory gives the same results; after one of two instances leaves, the survivor restores
//! the moved tasks and the aggregates are exact.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use streamkit::prelude::*;
use streamkit::testing::EmbeddedBroker;

fn topology() -> Topology {
    let b = StreamsBuilder::new();
    b.stream("taps", Consumed::with(Serdes::string(), Serdes::string()))
        .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
        .count(Materialized::named("tap-counts"))
        .to_stream()
        .to(
            "tap-counts-out",
            Produced::with(Serdes::string(), Serdes::i64()),
        );
    b.build().unwrap()
}

fn config(broker: &EmbeddedBroker, state_dir: &std::path::Path) -> StreamsConfig {
    StreamsConfig::new("restore-app")
        .embedded(broker)
        .state_dir(state_dir)
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

/// Latest output value per key.
fn latest(broker: &EmbeddedBroker, expected_records: usize) -> BTreeMap<String, i64> {
    let out = common::read_until(
        broker.bootstrap_servers(),
        "tap-counts-out",
        Duration::from_secs(60),
        |r| r.len() >= expected_records,
    );
    let mut m = BTreeMap::new();
    for r in out {
        m.insert(
            r.key_str().to_string(),
            i64::from_be_bytes(r.value.unwrap().try_into().unwrap()),
        );
    }
    m
}

fn wait_processed(app: &KafkaStreams, n: u64) {
    assert!(
        common::eventually(Duration::from_secs(60), || app
            .metrics()
            .records_processed()
            >= n),
        "processed {} of {n}",
        app.metrics().records_processed()
    );
}

#[test]
fn losing_the_state_directory_gives_identical_results() {
    common::init_logs();
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("taps", 2).unwrap();
    broker.create_topic("tap-counts-out", 2).unwrap();
    let dir1 = tempfile::tempdir().unwrap();
    let first = KafkaStreams::new(topology(), config(&broker, dir1.path())).unwrap();
    first.start().unwrap();
    common::produce(broker.bootstrap_servers(), "taps", &taps(0..200));
    wait_processed(&first, 200);
    first.close().unwrap();
    drop(dir1); // the local state is gone

    let dir2 = tempfile::tempdir().unwrap();
    let second = KafkaStreams::new(topology(), config(&broker, dir2.path())).unwrap();
    second.start().unwrap();
    assert!(second.wait_for_state(StreamsState::Running, Duration::from_secs(30)));
    // Every changelog record was read back (200 updates, no cache), and reported.
    assert_eq!(second.metrics().restored_records(), 200);
    assert!(
        second
            .metrics()
            .encode_text()
            .contains("streamkit_restore_remaining_records")
    );
    common::produce(broker.bootstrap_servers(), "taps", &taps(200..300));
    wait_processed(&second, 100);
    let counts = latest(&broker, 300);
    assert_eq!(counts.len(), 10);
    assert!(counts.values().all(|c| *c == 30), "{counts:?}");
    let store = second.store::<String, i64>("tap-counts").unwrap();
    assert_eq!(store.get(&"station-3".to_string()).unwrap(), Some(30));
    assert_eq!(store.all().unwrap().len(), 10);
    second.close().unwrap();
}

#[test]
fn the_survivor_restores_moved_tasks_and_counts_exactly() {
    common::init_logs();
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("taps", 4).unwrap();
    broker.create_topic("tap-counts-out", 4).unwrap();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = KafkaStreams::new(topology(), config(&broker, da.path())).unwrap();
    let b = KafkaStreams::new(topology(), config(&broker, db.path())).unwrap();
    a.start().unwrap();
    b.start().unwrap();
    assert!(common::wait_stable(
        &[&a, &b],
        Duration::from_secs(2),
        Duration::from_secs(60)
    ));
    common::produce(broker.bootstrap_servers(), "taps", &taps(0..400));
    assert!(common::eventually(Duration::from_secs(60), || {
        a.metrics().records_processed() + b.metrics().records_processed() >= 400
    }));
    assert!(
        a.metrics().records_processed() > 0 && b.metrics().records_processed() > 0,
        "both worked"
    );
    // Only committed progress survives the move without being counted again: the embedded
    // broker refuses the commit of a revocation callback while the group rebalances.
    common::wait_committed(broker.bootstrap_servers(), "restore-app", "taps", 4, 400);
    b.close().unwrap();
    common::produce(broker.bootstrap_servers(), "taps", &taps(400..600));
    // a now owns every partition: its view of the store covers all keys with exact counts.
    assert!(
        common::eventually(Duration::from_secs(60), || {
            a.store::<String, i64>("tap-counts")
                .and_then(|s| s.all())
                .map(|all| all.len() == 10 && all.iter().all(|(_, c)| *c == 60))
                .unwrap_or(false)
        }),
        "{:?}",
        a.store::<String, i64>("tap-counts").and_then(|s| s.all())
    );
    let counts = latest(&broker, 600);
    assert!(counts.values().all(|c| *c == 60), "{counts:?}");
    a.close().unwrap();
}

#[test]
fn the_record_cache_collapses_changelog_writes_between_commits() {
    common::init_logs();
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("taps", 1).unwrap();
    broker.create_topic("cached-out", 1).unwrap();
    let topology = || {
        let b = StreamsBuilder::new();
        b.stream("taps", Consumed::with(Serdes::string(), Serdes::string()))
            .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
            .count(Materialized::named("cached-counts").with_caching_enabled())
            .to_stream()
            .to(
                "cached-out",
                Produced::with(Serdes::string(), Serdes::i64()),
            );
        b.build().unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    // Commits only at close: every update before it sits in the cache.
    let config = || {
        StreamsConfig::new("cache-app")
            .embedded(&broker)
            .state_dir(dir.path())
            .commit_interval(Duration::from_secs(3600))
    };
    let app = KafkaStreams::new(topology(), config()).unwrap();
    app.start().unwrap();
    common::produce(broker.bootstrap_servers(), "taps", &taps(0..500));
    wait_processed(&app, 500);
    app.close().unwrap();

    let changelog = common::read_until(
        broker.bootstrap_servers(),
        "cache-app-cached-counts-changelog",
        Duration::from_secs(5),
        |r| r.len() >= 500,
    );
    assert!(
        changelog.len() <= 10,
        "{} changelog records for 10 keys",
        changelog.len()
    );
    let mut latest = BTreeMap::new();
    for r in &changelog {
        latest.insert(
            r.key_str().to_string(),
            i64::from_be_bytes(r.value.clone().unwrap().try_into().unwrap()),
        );
    }
    assert!(
        latest.len() == 10 && latest.values().all(|c| *c == 50),
        "{latest:?}"
    );
    // Downstream still sees every update.
    assert_eq!(
        common::read_until(
            broker.bootstrap_servers(),
            "cached-out",
            Duration::from_secs(30),
            |r| r.len() >= 500
        )
        .len(),
        500
    );

    // Restarted from the persistent store and its checkpoint, counting goes on.
    let again = KafkaStreams::new(topology(), config()).unwrap();
    again.start().unwrap();
    common::produce(broker.bootstrap_servers(), "taps", &taps(500..510));
    wait_processed(&again, 10);
    assert_eq!(
        again
            .store::<String, i64>("cached-counts")
            .unwrap()
            .get(&"station-0".to_string())
            .unwrap(),
        Some(51)
    );
    again.close().unwrap();
}

#[test]
fn without_a_checkpoint_local_state_is_rebuilt_from_the_changelog_alone() {
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("taps", 1).unwrap();
    broker.create_topic("tap-counts-out", 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let first = KafkaStreams::new(topology(), config(&broker, dir.path())).unwrap();
    first.start().unwrap();
    common::produce(broker.bootstrap_servers(), "taps", &taps(0..10));
    wait_processed(&first, 10);
    first.close().unwrap();

    // A write that never reached the changelog (as after a crash), and no checkpoint.
    let task_dir = dir.path().join("restore-app").join("0_0");
    assert!(
        task_dir.join(".checkpoint").exists(),
        "a clean close writes a checkpoint"
    );
    std::fs::remove_file(task_dir.join(".checkpoint")).unwrap();
    {
        let db = rocksdb::DB::open_default(task_dir.join("rocksdb").join("tap-counts")).unwrap();
        db.put(b"ghost", 99i64.to_be_bytes()).unwrap();
        db.flush().unwrap();
    }

    let second = KafkaStreams::new(topology(), config(&broker, dir.path())).unwrap();
    second.start().unwrap();
    assert!(second.wait_for_state(StreamsState::Running, Duration::from_secs(30)));
    let store = second.store::<String, i64>("tap-counts").unwrap();
    assert_eq!(
        store.get(&"ghost".to_string()).unwrap(),
        None,
        "stale local state was wiped"
    );
    assert_eq!(store.get(&"station-4".to_string()).unwrap(), Some(1));
    second.close().unwrap();
}

/// Writes `(key, value)` straight into `partition` of `topic` (as another instance's task
/// would have logged it).
fn produce_to_partition(broker: &EmbeddedBroker, topic: &str, partition: i32, key: &str, v: i64) {
    use rdkafka::producer::{BaseRecord, Producer};
    let p = common::producer(broker.bootstrap_servers());
    let value = v.to_be_bytes();
    p.send(
        BaseRecord::to(topic)
            .partition(partition)
            .key(key.as_bytes())
            .payload(&value[..]),
    )
    .map_err(|(e, _)| e)
    .unwrap();
    p.flush(Duration::from_secs(30)).unwrap();
}

/// Records per partition of `topic`, read to its end (`total` records).
fn records_by_partition(broker: &EmbeddedBroker, topic: &str, total: usize) -> Vec<common::Read> {
    let records = common::read_until(
        broker.bootstrap_servers(),
        topic,
        Duration::from_secs(30),
        |r| r.len() >= total,
    );
    assert_eq!(records.len(), total, "{topic}");
    records
}

#[test]
fn one_restore_brings_every_new_task_and_store_up_to_date_from_or_past_its_checkpoint() {
    common::init_logs();
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("taps", 4).unwrap();
    let topology = || {
        let b = StreamsBuilder::new();
        let taps = b.stream("taps", Consumed::with(Serdes::string(), Serdes::string()));
        let grouped = taps.group_by_key(Grouped::with(Serdes::string(), Serdes::string()));
        grouped.count(Materialized::named("counts"));
        grouped.reduce(|_, latest| latest, Materialized::named("lasts").in_memory());
        b.build().unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let config = || config(&broker, dir.path());
    let inputs: Vec<(String, Vec<u8>)> = (0..400)
        .map(|i| (format!("k{:02}", i % 40), format!("v{i}").into_bytes()))
        .collect();
    let first = KafkaStreams::new(topology(), config()).unwrap();
    first.start().unwrap();
    common::produce(broker.bootstrap_servers(), "taps", &inputs);
    wait_processed(&first, 400);
    first.close().unwrap();

    // Which keys each task (= changelog partition) holds, from the changelog itself.
    let counts_log = "restore-app-counts-changelog";
    let logged = records_by_partition(&broker, counts_log, 400);
    let partition_of: BTreeMap<String, i32> = logged
        .iter()
        .map(|r| (r.key_str().to_string(), r.partition))
        .collect();
    assert_eq!(partition_of.len(), 40);
    let mut expected: BTreeMap<String, i64> =
        partition_of.keys().map(|k| (k.clone(), 10)).collect();

    // Task 0_0 keeps its checkpoint: it resumes from it, so a local-only write survives and
    // only the record logged since (by "another instance") is read.
    // Task 0_1 loses its checkpoint: wiped (the local-only write goes), restored in full.
    // Task 0_2 loses its whole directory: restored in full.
    // Task 0_3's checkpoint lies past the changelog's end: wiped, restored in full.
    let task_dir = |t: &str| dir.path().join("restore-app").join(t);
    for t in ["0_0", "0_1", "0_3"] {
        assert!(task_dir(t).join(".checkpoint").exists(), "{t}");
        let db = rocksdb::DB::open_default(task_dir(t).join("rocksdb").join("counts")).unwrap();
        db.put(format!("ghost-{t}"), 99i64.to_be_bytes()).unwrap();
        db.flush().unwrap();
    }
    expected.insert("ghost-0_0".into(), 99);
    std::fs::remove_file(task_dir("0_1").join(".checkpoint")).unwrap();
    std::fs::remove_dir_all(task_dir("0_2")).unwrap();
    std::fs::write(task_dir("0_3").join(".checkpoint"), "counts 1000000\n").unwrap();
    produce_to_partition(&broker, counts_log, 0, "injected-0", 7);
    produce_to_partition(&broker, counts_log, 3, "injected-3", 8);
    expected.insert("injected-0".into(), 7);
    expected.insert("injected-3".into(), 8);

    let second = KafkaStreams::new(topology(), config()).unwrap();
    second.start().unwrap();
    assert!(second.wait_for_state(StreamsState::Running, Duration::from_secs(30)));
    let counts = second.store::<String, i64>("counts").unwrap();
    assert!(
        common::eventually(Duration::from_secs(30), || counts
            .all()
            .map(|all| all.len() >= expected.len())
            .unwrap_or(false)),
        "{:?}",
        counts.all()
    );
    let all: BTreeMap<String, i64> = counts.all().unwrap().into_iter().collect();
    assert_eq!(all, expected);
    // The in-memory store starts empty and reads its whole changelog: each key's last value.
    let lasts: BTreeMap<String, String> = second
        .store::<String, String>("lasts")
        .unwrap()
        .all()
        .unwrap()
        .into_iter()
        .collect();
    let last_inputs: BTreeMap<String, String> = inputs
        .iter()
        .map(|(k, v)| (k.clone(), String::from_utf8(v.clone()).unwrap()))
        .collect();
    assert_eq!(lasts, last_inputs);
    // Exactly what had to be read: 0_0 only its one new record; 0_1..0_3 their whole counts
    // changelogs (0_3 with its new record); the in-memory store all 400 records.
    let full: usize = logged.iter().filter(|r| r.partition != 0).count();
    assert_eq!(
        second.metrics().restored_records(),
        (1 + full + 1 + 400) as u64
    );
    second.close().unwrap();
}

/// A restore that takes longer than `max.poll.interval.ms` keeps the member in the group: the
/// thread serves its group consumer while it restores, so librdkafka does not leave the group
/// when the restore ends (which would start a rebalance, and restore again).
#[test]
fn a_restore_longer_than_the_max_poll_interval_does_not_cost_the_member_its_place() {
    common::init_logs();
    const ENTRIES: usize = 20_000;
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("taps", 1).unwrap();
    broker
        .create_topic("restore-app-tap-counts-changelog", 1)
        .unwrap();
    // The changelog in small batches, read back slowly: each fetch brings a few batches, and
    // the restore consumer then waits 100 ms before the next.
    let producer: rdkafka::producer::BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("batch.num.messages", "20")
        .create()
        .unwrap();
    for i in 0..ENTRIES {
        let key = format!("station-{i:06}");
        let value = 1i64.to_be_bytes();
        let mut record = rdkafka::producer::BaseRecord::to("restore-app-tap-counts-changelog")
            .key(&key)
            .payload(&value[..]);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
    }
    rdkafka::producer::Producer::flush(&producer, Duration::from_secs(30)).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let config = config(&broker, dir.path())
        .set("consumer.session.timeout.ms", "6000")
        .set("consumer.max.poll.interval.ms", "6000")
        .set("restore.consumer.queued.min.messages", "1")
        .set("restore.consumer.fetch.queue.backoff.ms", "100")
        .set("restore.consumer.max.partition.fetch.bytes", "4096");
    let app = KafkaStreams::new(topology(), config).unwrap();
    let changes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = changes.clone();
    app.set_state_listener(move |old, new| seen.lock().unwrap().push((old, new)));
    let started = std::time::Instant::now();
    app.start().unwrap();
    assert!(
        app.wait_for_state(StreamsState::Running, Duration::from_secs(180)),
        "{:?} {:?}",
        app.state(),
        app.error()
    );
    let restore_took = started.elapsed();
    assert_eq!(app.metrics().restored_records(), ENTRIES as u64);
    assert!(
        restore_took > Duration::from_secs(8),
        "the restore took {restore_took:?}, not longer than max.poll.interval.ms (6 s): \
         the test no longer tests what it says"
    );
    // Past another poll interval: had the member been evicted during the restore, its next
    // poll would have rejoined the group and rebalanced.
    std::thread::sleep(Duration::from_secs(8));
    let after_running: Vec<_> = changes
        .lock()
        .unwrap()
        .iter()
        .skip_while(|(_, new)| *new != StreamsState::Running)
        .copied()
        .collect();
    assert_eq!(
        after_running,
        [(StreamsState::Rebalancing, StreamsState::Running)],
        "the instance rebalanced after its restore"
    );
    // And it processes: one more tap counts on top of the restored 1.
    common::produce(
        broker.bootstrap_servers(),
        "taps",
        &[("station-000007".to_string(), b"tap".to_vec())],
    );
    let store = app.store::<String, i64>("tap-counts").unwrap();
    assert!(common::eventually(Duration::from_secs(30), || store
        .get(&"station-000007".to_string())
        .ok()
        .flatten()
        == Some(2)));
    app.close().unwrap();
}
