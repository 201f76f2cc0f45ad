//! The Postgres source against a real PostgreSQL server (`STREAMKIT_TEST_POSTGRES_URL`, started
//! by `scripts/test.sh`): rows inserted, updated (timestamp modes) and inserted between polls
//! arrive exactly once, across restarts of the source; rows sharing a timestamp across batches
//! are neither lost nor repeated; a dropped table stops the source with a clear error; Avro
//! rows through the registry; the source inside an application (`stream_from_connector`).

mod common;

use std::collections::BTreeMap;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Value, json};
use streamkit::connect::postgres_source::PostgresSource;
use streamkit::prelude::*;
use streamkit::registry::{EmbeddedRegistry, RegistryConfig};
use streamkit::serde::Serde;
use streamkit::serde::avro::AvroGeneric;
use streamkit::testing::EmbeddedBroker;
use tokio_postgres::NoTls;

fn postgres_url() -> String {
    std::env::var("STREAMKIT_TEST_POSTGRES_URL").expect(
        "STREAMKIT_TEST_POSTGRES_URL is not set: these tests need a PostgreSQL server \
         (scripts/test.sh starts a throwaway one and sets it)",
    )
}

/// A blocking Postgres client for the test's own statements.
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
}

/// A unique table name per test and process.
fn table(prefix: &str) -> String {
    format!("{prefix}_{}", std::process::id())
}

/// A source running on its own thread until [`Running::stop`].
struct Running {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<streamkit::Result<()>>>,
}

impl Running {
    fn start(source: PostgresSource, config: &StreamsConfig) -> Running {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let config = config.clone();
        let thread = std::thread::spawn(move || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap()
                .block_on(source.run(&config, stopped))
        });
        Running {
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> streamkit::Result<()> {
        let _ = self.stop.take().unwrap().send(());
        self.thread.take().unwrap().join().unwrap()
    }

    /// Waits for the source to stop by itself (an error) and returns how.
    fn wait(mut self, timeout: Duration) -> streamkit::Result<()> {
        let thread = self.thread.take().unwrap();
        assert!(
            common::eventually(timeout, || thread.is_finished()),
            "the source did not stop"
        );
        thread.join().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Waits until `topic` holds at least `n` records (a reader assigned before the topic exists
/// would see no partition).
fn await_records(bootstrap: &str, topic: &str, n: usize) {
    let arrived = common::eventually(Duration::from_secs(30), || {
        common::record_count(bootstrap, topic) >= n as i64
    });
    assert!(
        arrived,
        "{topic} holds {} records, expected {n}",
        common::record_count(bootstrap, topic)
    );
}

/// Every record of `topic` as (key, JSON value), once `n` have arrived (and after a pause in
/// which no more came, so extra records are seen).
fn records(bootstrap: &str, topic: &str, n: usize) -> Vec<(String, Value)> {
    await_records(bootstrap, topic, n);
    // Two more polls' time: nothing else may come.
    std::thread::sleep(Duration::from_millis(800));
    let all = common::read_all(bootstrap, topic, Duration::from_secs(30));
    assert_eq!(all.len(), n, "no record twice in {topic}");
    all.iter()
        .map(|r| {
            (
                r.key_str().to_string(),
                serde_json::from_slice(r.value.as_deref().unwrap()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn incrementing_rows_arrive_once_across_batches_polls_and_a_restart() {
    let broker = EmbeddedBroker::start().unwrap();
    let config = StreamsConfig::new("pg-source-inc").embedded(&broker);
    let db = Db::connect();
    let t = table("pgsrc_inc");
    db.execute(&format!(
        "DROP TABLE IF EXISTS {t};
         CREATE TABLE {t} (stop_id serial PRIMARY KEY, stop_name text NOT NULL, ada boolean, opened date, ratio numeric);
         INSERT INTO {t} (stop_name, ada, opened, ratio) VALUES
           ('Austin', true, DATE '1970-01-11', 1.5), ('Harlem', false, NULL, NULL), ('Oak Park', NULL, NULL, 2);"
    ));
    let source = || {
        PostgresSource::new(format!("inc-{t}"), postgres_url())
            .table(t.clone())
            .incrementing("stop_id")
            .key_column("stop_id")
            .topic_prefix("org.chicago.cta.")
            .batch_rows(2)
            .poll_interval(Duration::from_millis(300))
    };
    let topic = format!("org.chicago.cta.{t}");
    assert_eq!(source().topics(), vec![topic.clone()]);

    let running = Running::start(source(), &config);
    let got = records(broker.bootstrap_servers(), &topic, 3);
    assert_eq!(
        got[0],
        (
            "1".to_string(),
            json!({"stop_id": 1, "stop_name": "Austin", "ada": true, "opened": 10, "ratio": 1.5})
        )
    );
    // Columns keep their table order in the JSON text.
    let first = common::read_all(broker.bootstrap_servers(), &topic, Duration::from_secs(10));
    assert!(
        first[0]
            .value_str()
            .starts_with(r#"{"stop_id":1,"stop_name":"Austin""#),
        "{}",
        first[0].value_str()
    );

    // Inserted between polls.
    db.execute(&format!(
        "INSERT INTO {t} (stop_name) VALUES ('Ridgeland'), ('Central');"
    ));
    let got = records(broker.bootstrap_servers(), &topic, 5);
    let keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["1", "2", "3", "4", "5"]);
    running.stop().unwrap();

    // Inserted while the source is down, then a restart: only the new row comes.
    db.execute(&format!("INSERT INTO {t} (stop_name) VALUES ('Cicero');"));
    let running = Running::start(source(), &config);
    let got = records(broker.bootstrap_servers(), &topic, 6);
    assert_eq!(got[5].1["stop_name"], "Cicero");
    let keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["1", "2", "3", "4", "5", "6"]);
    running.stop().unwrap();
    db.execute(&format!("DROP TABLE {t};"));
}

#[test]
fn timestamp_modes_send_updates_once_and_keep_rows_sharing_a_timestamp() {
    let broker = EmbeddedBroker::start().unwrap();
    let config = StreamsConfig::new("pg-source-ts").embedded(&broker);
    let db = Db::connect();
    let (a, b) = (table("pgsrc_ts"), table("pgsrc_tsinc"));
    for t in [&a, &b] {
        db.execute(&format!(
            "DROP TABLE IF EXISTS {t};
             CREATE TABLE {t} (id serial PRIMARY KEY, name text, updated_at timestamptz NOT NULL DEFAULT now());
             INSERT INTO {t} (name) VALUES ('a'), ('b'), ('c'), ('d'), ('e');"
        ));
    }
    // Five rows share one timestamp and the batch is two rows: the timestamp mode must take
    // all five at once, the timestamp+incrementing mode resumes inside the timestamp.
    let sources = || {
        [
            PostgresSource::new(format!("ts-{a}"), postgres_url())
                .table(a.clone())
                .timestamp("updated_at"),
            PostgresSource::new(format!("tsinc-{b}"), postgres_url())
                .table(b.clone())
                .timestamp_incrementing("updated_at", "id"),
        ]
        .map(|s| {
            s.key_column("id")
                .batch_rows(2)
                .poll_interval(Duration::from_millis(300))
        })
    };
    let start = || sources().map(|s| Running::start(s, &config));
    let running = start();
    for t in [&a, &b] {
        let got = records(broker.bootstrap_servers(), t, 5);
        let names: Vec<&str> = got
            .iter()
            .map(|(_, v)| v["name"].as_str().unwrap())
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(sorted, ["a", "b", "c", "d", "e"], "{t}");
        assert!(
            got[0].1["updated_at"].as_i64().unwrap() > 1_700_000_000_000,
            "epoch ms"
        );
    }

    // An update and an insert between polls.
    for t in [&a, &b] {
        db.execute(&format!(
            "UPDATE {t} SET name = 'b2', updated_at = now() WHERE id = 2;
             INSERT INTO {t} (name) VALUES ('f');"
        ));
    }
    for t in [&a, &b] {
        let got = records(broker.bootstrap_servers(), t, 7);
        let mut last: Vec<(String, String)> = got[5..]
            .iter()
            .map(|(k, v)| (k.clone(), v["name"].as_str().unwrap().to_string()))
            .collect();
        last.sort();
        assert_eq!(
            last,
            [("2".into(), "b2".into()), ("6".into(), "f".into())],
            "{t}"
        );
    }
    for r in running {
        r.stop().unwrap();
    }

    // Updated while down; after the restart only that change comes.
    for t in [&a, &b] {
        db.execute(&format!(
            "UPDATE {t} SET name = 'c2', updated_at = now() WHERE id = 3;"
        ));
    }
    let running = start();
    for t in [&a, &b] {
        let got = records(broker.bootstrap_servers(), t, 8);
        assert_eq!(got[7].0, "3");
        assert_eq!(got[7].1["name"], "c2");
        // The latest value per key is the table's content.
        let latest: BTreeMap<&str, &str> = got
            .iter()
            .map(|(k, v)| (k.as_str(), v["name"].as_str().unwrap()))
            .collect();
        assert_eq!(
            latest.values().copied().collect::<Vec<_>>(),
            ["a", "b2", "c2", "d", "e", "f"]
        );
    }
    for r in running {
        r.stop().unwrap();
    }
    db.execute(&format!("DROP TABLE {a}; DROP TABLE {b};"));
}

#[test]
fn bulk_mode_and_a_query_resend_everything_each_poll() {
    let broker = EmbeddedBroker::start().unwrap();
    let config = StreamsConfig::new("pg-source-bulk").embedded(&broker);
    let db = Db::connect();
    let t = table("pgsrc_bulk");
    db.execute(&format!(
        "DROP TABLE IF EXISTS {t};
         CREATE TABLE {t} (line text, stops int);
         INSERT INTO {t} VALUES ('red', 33), ('blue', 33), ('green', 30);"
    ));
    let running = Running::start(
        PostgresSource::new(format!("bulk-{t}"), postgres_url())
            .query(format!(
                "SELECT line, stops * 2 AS doubled FROM {t} WHERE stops > 30"
            ))
            .topic_prefix(format!("{t}-long-lines"))
            .poll_interval(Duration::from_millis(200)),
        &config,
    );
    let topic = format!("{t}-long-lines");
    await_records(broker.bootstrap_servers(), &topic, 6);
    let read = common::read_until(
        broker.bootstrap_servers(),
        &topic,
        Duration::from_secs(30),
        |r| r.len() >= 6,
    );
    running.stop().unwrap();
    assert!(read.len() >= 6);
    for r in &read {
        let v: Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
        assert_eq!(v["doubled"], 66, "{v}");
        assert!(r.key.is_none());
    }
    db.execute(&format!("DROP TABLE {t};"));
}

#[test]
fn a_dropped_table_stops_the_source_naming_the_table() {
    let broker = EmbeddedBroker::start().unwrap();
    let config = StreamsConfig::new("pg-source-drop").embedded(&broker);
    let db = Db::connect();
    let t = table("pgsrc_drop");
    db.execute(&format!(
        "DROP TABLE IF EXISTS {t};
         CREATE TABLE {t} (id bigserial PRIMARY KEY, v text);
         INSERT INTO {t} (v) VALUES ('x');"
    ));
    let running = Running::start(
        PostgresSource::new(format!("drop-{t}"), postgres_url())
            .table(t.clone())
            .incrementing("id")
            .poll_interval(Duration::from_millis(200)),
        &config,
    );
    records(broker.bootstrap_servers(), &t, 1);
    db.execute(&format!("DROP TABLE {t};"));
    let err = running
        .wait(Duration::from_secs(30))
        .unwrap_err()
        .to_string();
    assert!(err.contains(&t) && err.contains("does not exist"), "{err}");

    // A mode column the table lacks is as clear.
    db.execute(&format!("CREATE TABLE {t} (id int);"));
    let err = Running::start(
        PostgresSource::new(format!("drop2-{t}"), postgres_url())
            .table(t.clone())
            .incrementing("missing_col"),
        &config,
    )
    .wait(Duration::from_secs(30))
    .unwrap_err()
    .to_string();
    assert!(err.contains("missing_col"), "{err}");
    db.execute(&format!("DROP TABLE {t};"));
}

#[test]
fn an_application_streams_avro_rows_of_a_source_it_runs() {
    let broker = EmbeddedBroker::start().unwrap();
    let registry =
        EmbeddedRegistry::start(RegistryConfig::embedded(&broker).listen("127.0.0.1:0")).unwrap();
    let db = Db::connect();
    let t = table("pgsrc_app");
    db.execute(&format!(
        "DROP TABLE IF EXISTS {t};
         CREATE TABLE {t} (stop_id int PRIMARY KEY, station_name varchar(64), red boolean, seen timestamp);
         INSERT INTO {t} VALUES (40010, 'Austin', true, TIMESTAMP '2024-01-02 03:04:05.678'),
                                 (40020, 'Harlem', false, NULL);"
    ));
    let client = registry.client().unwrap();
    let source = PostgresSource::new(format!("app-{t}"), postgres_url())
        .table(t.clone())
        .incrementing("stop_id")
        .key_column("stop_id")
        .topic_prefix("org.chicago.cta.")
        .poll_interval(Duration::from_millis(200))
        .avro(&client);
    let builder = StreamsBuilder::new();
    let reader = AvroGeneric::new(
        &client,
        apache_avro::Schema::parse_str(r#""null""#).unwrap(),
    );
    builder
        .stream_from_connector(source, Consumed::with(Serdes::string(), reader))
        .map_values(|v: apache_avro::types::Value| {
            let apache_avro::types::Value::Record(fields) = v else {
                return "not a record".to_string();
            };
            format!("{fields:?}")
        })
        .to(
            "stations-described",
            Produced::with(Serdes::string(), Serdes::string()),
        );
    let app = KafkaStreams::new(
        builder.build().unwrap(),
        StreamsConfig::new(format!("pgsrc-app-{}", std::process::id()))
            .embedded(&broker)
            .commit_interval(Duration::from_millis(100)),
    )
    .unwrap();
    app.start().unwrap();
    await_records(broker.bootstrap_servers(), "stations-described", 2);
    let out = common::read_until(
        broker.bootstrap_servers(),
        "stations-described",
        Duration::from_secs(60),
        |r| r.len() >= 2,
    );
    assert_eq!(out.len(), 2, "{:?}", app.error());
    assert_eq!(out[0].key_str(), "40010");
    assert!(
        out[0].value_str().contains("String(\"Austin\")"),
        "{}",
        out[0].value_str()
    );
    assert!(
        out[0]
            .value_str()
            .contains("TimestampMillis(1704164645678)"),
        "{}",
        out[0].value_str()
    );
    assert!(
        out[1].value_str().contains("(\"seen\", Union(0, Null))"),
        "{}",
        out[1].value_str()
    );

    // The rows on the topic are Confluent-framed Avro with the registered schema.
    let raw = common::read_all(
        broker.bootstrap_servers(),
        &format!("org.chicago.cta.{t}"),
        Duration::from_secs(10),
    );
    assert_eq!(raw[0].value.as_ref().unwrap()[0], 0, "magic byte");
    let value = reader_of(&client)
        .deserialize("x", raw[0].value.as_deref().unwrap())
        .unwrap();
    assert!(format!("{value:?}").contains("Int(40010)"));
    let (_, schema) = client
        .latest(&format!("org.chicago.cta.{t}-value"))
        .unwrap();
    assert!(
        format!("{schema:?}").contains("TimestampMillis"),
        "{schema:?}"
    );

    // A dropped table stops the application with the source's error.
    db.execute(&format!("DROP TABLE {t};"));
    assert!(
        app.wait_for_state(StreamsState::Error, Duration::from_secs(30)),
        "{:?}",
        app.state()
    );
    let err = app.close().unwrap_err().to_string();
    assert!(err.contains(&t), "{err}");
}

fn reader_of(client: &streamkit::serde::avro::RegistryClient) -> AvroGeneric {
    AvroGeneric::new(client, apache_avro::Schema::parse_str(r#""null""#).unwrap())
}
