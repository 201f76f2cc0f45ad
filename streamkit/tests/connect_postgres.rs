//! The Postgres sink against a real PostgreSQL server (`STREAMKIT_TEST_POSTGRES_URL`, started
//! by `scripts/test.sh`): upserts and tombstone deletes (from a changelog stream and from a
//! table read from a topic), offsets stored with the rows, a fresh instance resuming from those
//! offsets and from the store contents kept in Postgres, tasks moving between instances, a
//! killed database connection retried, and a clear error for a table that does not exist.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::producer::{BaseRecord, Producer};
use streamkit::connect::postgres::PostgresSink;
use streamkit::prelude::*;
use streamkit::testing::EmbeddedBroker;
use tokio_postgres::NoTls;

fn postgres_url() -> String {
    std::env::var("STREAMKIT_TEST_POSTGRES_URL").expect(
        "STREAMKIT_TEST_POSTGRES_URL is not set: these tests need a PostgreSQL server \
         (scripts/test.sh starts a throwaway one and sets it)",
    )
}

/// A blocking Postgres client for the test's own queries.
struct Db {
    rt: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl Db {
    fn connect() -> Db {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&postgres_url(), NoTls)
                .await
                .expect("connecting to STREAMKIT_TEST_POSTGRES_URL");
            tokio::spawn(conn);
            client
        });
        Db { rt, client }
    }

    fn execute(&self, sql: &str) {
        self.rt.block_on(self.client.batch_execute(sql)).unwrap();
    }

    fn rows(&self, sql: &str) -> Vec<tokio_postgres::Row> {
        self.rt.block_on(self.client.query(sql, &[])).unwrap()
    }

    /// Sum of the next offsets stored for an application (missing table = 0).
    fn offsets(&self, app: &str) -> i64 {
        self.rt
            .block_on(self.client.query(
                "SELECT COALESCE(SUM(next_offset), 0)::bigint FROM streamkit_offsets \
                 WHERE application_id = $1",
                &[&app],
            ))
            .map(|r| r[0].get::<_, i64>(0))
            .unwrap_or(0)
    }
}

/// A name unique to this test run (tests run in parallel against one server).
fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    )
}

/// Produces (key, optional value) records; `None` is a tombstone.
fn produce(bootstrap: &str, topic: &str, records: &[(String, Option<String>)]) {
    let p = common::producer(bootstrap);
    for (k, v) in records {
        let mut r = BaseRecord::<str, str>::to(topic).key(k.as_str());
        if let Some(v) = v {
            r = r.payload(v.as_str());
        }
        p.send(r).map_err(|(e, _)| e).unwrap();
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(30)).unwrap();
}

fn vehicles_topology(url: &str, table: &str, topic: &str) -> Topology {
    let b = StreamsBuilder::new();
    b.stream(
        topic,
        Consumed::with(Serdes::string(), Serdes::option(Serdes::string())),
    )
    .to_postgres(
        PostgresSink::new(url, table)
            .key_columns(["vehicle"], |v: &String| vec![v.clone().into()])
            .value_columns(["position"], |p: &String| vec![p.clone().into()])
            .batch_rows(7),
    );
    b.build().unwrap()
}

fn config(app: &str, broker: &EmbeddedBroker, dir: &std::path::Path) -> StreamsConfig {
    StreamsConfig::new(app)
        .embedded(broker)
        .state_dir(dir)
        .commit_interval(Duration::from_millis(100))
}

fn table_contents(db: &Db, table: &str) -> BTreeMap<String, String> {
    db.rows(&format!("SELECT vehicle, position FROM {table}"))
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// One test's database table, topic and embedded broker, named uniquely (tests run in
/// parallel against one server).
struct Setup {
    db: Db,
    app_id: String,
    table: String,
    topic: String,
    broker: EmbeddedBroker,
    bootstrap: String,
}

/// Creates `<name>_table (columns)` in Postgres and a `partitions`-partition topic.
fn setup(name: &str, columns: &str, partitions: i32) -> Setup {
    common::init_logs();
    let db = Db::connect();
    let (app_id, table, topic) = (
        unique(&format!("pg_{name}_app")),
        unique(&format!("pg_{name}")),
        unique(&format!("pg-{name}")),
    );
    db.execute(&format!("CREATE TABLE {table} ({columns})"));
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic(&topic, partitions).unwrap();
    let bootstrap = broker.bootstrap_servers().to_string();
    Setup {
        db,
        app_id,
        table,
        topic,
        broker,
        bootstrap,
    }
}

const VEHICLE_COLUMNS: &str = "vehicle text PRIMARY KEY, position text NOT NULL";
const COUNT_COLUMNS: &str = "station text PRIMARY KEY, taps bigint NOT NULL";

/// Taps numbered `range`, spread over ten stations `s0`..`s9`.
fn taps(range: std::ops::Range<usize>) -> Vec<(String, Vec<u8>)> {
    range
        .map(|i| (format!("s{}", i % 10), format!("t{i}").into_bytes()))
        .collect()
}

/// Waits until the offsets stored for the application sum to `n`.
fn wait_for_offsets(db: &Db, app_id: &str, n: i64) {
    assert!(
        common::eventually(Duration::from_secs(60), || db.offsets(app_id) == n),
        "offsets stored: {} (waited for {n})",
        db.offsets(app_id)
    );
}

/// The station counts in the table, checked to be `expected` for each of the ten stations.
fn assert_counts(db: &Db, table: &str, expected: i64) {
    let counts: BTreeMap<String, i64> = db
        .rows(&format!("SELECT station, taps FROM {table}"))
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(counts.len(), 10);
    assert!(counts.values().all(|c| *c == expected), "{counts:?}");
}

#[test]
fn upserts_deletes_and_offsets_commit_together_and_a_new_instance_resumes_there() {
    let t = setup("vehicles", VEHICLE_COLUMNS, 2);
    let url = postgres_url();

    // 20 vehicles appear, 5 leave (tombstones), 5 move.
    let mut first: Vec<(String, Option<String>)> = (0..20)
        .map(|i| (format!("v{i}"), Some(format!("a{i}"))))
        .collect();
    first.extend((0..5).map(|i| (format!("v{i}"), None)));
    first.extend((5..10).map(|i| (format!("v{i}"), Some(format!("b{i}")))));
    produce(&t.bootstrap, &t.topic, &first);

    let dir = tempfile::tempdir().unwrap();
    let app = KafkaStreams::new(
        vehicles_topology(&url, &t.table, &t.topic),
        config(&t.app_id, &t.broker, dir.path()),
    )
    .unwrap();
    app.start().unwrap();
    wait_for_offsets(&t.db, &t.app_id, 30);
    let rows = table_contents(&t.db, &t.table);
    let mut expected: BTreeMap<String, String> = (5..20)
        .map(|i| (format!("v{i}"), format!("a{i}")))
        .collect();
    for i in 5..10 {
        expected.insert(format!("v{i}"), format!("b{i}"));
    }
    assert_eq!(rows, expected);
    app.close().unwrap();

    // A fresh instance with empty local state starts from the offsets in Postgres: it
    // processes only the new records, whatever the group committed in Kafka.
    produce(
        &t.bootstrap,
        &t.topic,
        &[
            ("v19".to_string(), None),
            ("v30".to_string(), Some("c30".to_string())),
        ],
    );
    let dir2 = tempfile::tempdir().unwrap();
    let again = KafkaStreams::new(
        vehicles_topology(&url, &t.table, &t.topic),
        config(&t.app_id, &t.broker, dir2.path()),
    )
    .unwrap();
    again.start().unwrap();
    wait_for_offsets(&t.db, &t.app_id, 32);
    assert_eq!(again.metrics().records_processed(), 2);
    expected.remove("v19");
    expected.insert("v30".to_string(), "c30".to_string());
    assert_eq!(table_contents(&t.db, &t.table), expected);
    again.close().unwrap();
}

fn counts_topology(url: &str, table: &str, topic: &str) -> Topology {
    let b = StreamsBuilder::new();
    b.stream(topic, Consumed::with(Serdes::string(), Serdes::string()))
        .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
        .count(Materialized::named("pg-counts"))
        .to_postgres(
            PostgresSink::new(url, table)
                .key_columns(["station"], |s: &String| vec![s.clone().into()])
                .value_columns(["taps"], |n: &i64| vec![(*n).into()]),
        );
    b.build().unwrap()
}

#[test]
fn a_count_resumes_from_the_state_kept_in_postgres_after_losing_local_state() {
    let t = setup("counts", COUNT_COLUMNS, 2);
    let url = postgres_url();
    common::produce(&t.bootstrap, &t.topic, &taps(0..100));
    let dir = tempfile::tempdir().unwrap();
    let app = KafkaStreams::new(
        counts_topology(&url, &t.table, &t.topic),
        config(&t.app_id, &t.broker, dir.path()),
    )
    .unwrap();
    app.start().unwrap();
    wait_for_offsets(&t.db, &t.app_id, 100);
    app.close().unwrap();
    drop(dir); // local RocksDB state gone; the changelog is not read for this task

    common::produce(&t.bootstrap, &t.topic, &taps(100..200));
    let dir2 = tempfile::tempdir().unwrap();
    let again = KafkaStreams::new(
        counts_topology(&url, &t.table, &t.topic),
        config(&t.app_id, &t.broker, dir2.path()),
    )
    .unwrap();
    again.start().unwrap();
    wait_for_offsets(&t.db, &t.app_id, 200);
    assert_counts(&t.db, &t.table, 20);
    let store = again.store::<String, i64>("pg-counts").unwrap();
    assert_eq!(store.get(&"s3".to_string()).unwrap(), Some(20));
    again.close().unwrap();
}

#[test]
fn a_missing_table_fails_the_thread_with_the_database_error() {
    common::init_logs();
    let url = postgres_url();
    let (app_id, table, topic) = (
        unique("pg_missing_app"),
        unique("pg_no_such_table"),
        unique("pg-missing"),
    );
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic(&topic, 1).unwrap();
    produce(
        broker.bootstrap_servers(),
        &topic,
        &[("v1".to_string(), Some("x".to_string()))],
    );
    let dir = tempfile::tempdir().unwrap();
    let app = KafkaStreams::new(
        vehicles_topology(&url, &table, &topic),
        config(&app_id, &broker, dir.path()),
    )
    .unwrap();
    app.start().unwrap();
    assert!(app.wait_for_state(StreamsState::Error, Duration::from_secs(60)));
    let err = app.close().unwrap_err().to_string();
    assert!(err.contains(&format!("postgres sink {table}")), "{err}");
    assert!(err.contains("does not exist"), "{err}");
    // Nothing was recorded as done.
    assert_eq!(Db::connect().offsets(&app_id), 0);
}

#[test]
fn a_sink_without_columns_is_a_topology_error() {
    let b = StreamsBuilder::new();
    b.stream(
        "t",
        Consumed::with(Serdes::string(), Serdes::option(Serdes::string())),
    )
    .to_postgres(PostgresSink::<String, String>::new("postgres://x@y/z", "t"));
    let err = b.build().unwrap_err().to_string();
    assert!(err.contains("key_columns"), "{err}");
}

#[test]
fn a_table_read_from_a_topic_upserts_and_deletes_its_rows() {
    let t = setup("stations", VEHICLE_COLUMNS, 2);
    let url = postgres_url();
    produce(
        &t.bootstrap,
        &t.topic,
        &[
            ("40380".to_string(), Some("Clark/Lake".to_string())),
            ("41320".to_string(), Some("Belmont".to_string())),
            ("40380".to_string(), Some("Clark/Lake (Blue)".to_string())),
            ("41320".to_string(), None),
            ("40900".to_string(), Some("Howard".to_string())),
        ],
    );
    let b = StreamsBuilder::new();
    b.table(
        t.topic.as_str(),
        Consumed::with(Serdes::string(), Serdes::string()),
        Materialized::named("pg-stations"),
    )
    .to_postgres(
        PostgresSink::new(&url, &t.table)
            .key_columns(["vehicle"], |v: &String| vec![v.clone().into()])
            .value_columns(["position"], |p: &String| vec![p.clone().into()]),
    );
    let dir = tempfile::tempdir().unwrap();
    let app =
        KafkaStreams::new(b.build().unwrap(), config(&t.app_id, &t.broker, dir.path())).unwrap();
    app.start().unwrap();
    wait_for_offsets(&t.db, &t.app_id, 5);
    let expected: BTreeMap<String, String> = [
        ("40380".to_string(), "Clark/Lake (Blue)".to_string()),
        ("40900".to_string(), "Howard".to_string()),
    ]
    .into();
    assert_eq!(table_contents(&t.db, &t.table), expected);
    app.close().unwrap();
}

#[test]
fn a_lost_database_connection_is_retried_without_losing_or_repeating_rows() {
    let t = setup("retry_counts", COUNT_COLUMNS, 2);
    // The sink's sessions carry this name, so the test can find and kill them.
    let url = format!("{}?application_name={}", postgres_url(), t.app_id);
    let dir = tempfile::tempdir().unwrap();
    let app = KafkaStreams::new(
        counts_topology(&url, &t.table, &t.topic),
        config(&t.app_id, &t.broker, dir.path()),
    )
    .unwrap();
    app.start().unwrap();
    common::produce(&t.bootstrap, &t.topic, &taps(0..100));
    wait_for_offsets(&t.db, &t.app_id, 100);
    let killed = t.db.rows(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{}'",
        t.app_id
    ));
    assert!(!killed.is_empty(), "the sink's connections were found");
    common::produce(&t.bootstrap, &t.topic, &taps(100..200));
    wait_for_offsets(&t.db, &t.app_id, 200);
    assert_eq!(app.state(), StreamsState::Running, "{:?}", app.error());
    assert_counts(&t.db, &t.table, 20);
    app.close().unwrap();
}

#[test]
fn tasks_moving_between_instances_keep_the_table_exact() {
    let t = setup("move_counts", COUNT_COLUMNS, 4);
    let url = postgres_url();
    let (da, db_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = KafkaStreams::new(
        counts_topology(&url, &t.table, &t.topic),
        config(&t.app_id, &t.broker, da.path()),
    )
    .unwrap();
    let b = KafkaStreams::new(
        counts_topology(&url, &t.table, &t.topic),
        config(&t.app_id, &t.broker, db_dir.path()),
    )
    .unwrap();
    a.start().unwrap();
    b.start().unwrap();
    common::produce(&t.bootstrap, &t.topic, &taps(0..200));
    wait_for_offsets(&t.db, &t.app_id, 200);
    // b leaves mid-stream: its tasks move to a, which loads them from Postgres.
    common::produce(&t.bootstrap, &t.topic, &taps(200..300));
    b.close().unwrap();
    common::produce(&t.bootstrap, &t.topic, &taps(300..400));
    wait_for_offsets(&t.db, &t.app_id, 400);
    assert_counts(&t.db, &t.table, 40);
    a.close().unwrap();
}

#[test]
fn the_sink_also_runs_under_exactly_once_processing() {
    let t = setup("eos_counts", COUNT_COLUMNS, 2);
    let url = postgres_url();
    common::produce(&t.bootstrap, &t.topic, &taps(0..100));
    let dir = tempfile::tempdir().unwrap();
    let app = KafkaStreams::new(
        counts_topology(&url, &t.table, &t.topic),
        config(&t.app_id, &t.broker, dir.path())
            .processing_guarantee(streamkit::config::ProcessingGuarantee::ExactlyOnce),
    )
    .unwrap();
    app.start().unwrap();
    wait_for_offsets(&t.db, &t.app_id, 100);
    assert_counts(&t.db, &t.table, 10);
    app.close().unwrap();
}
