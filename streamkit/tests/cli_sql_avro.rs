//! `streamkit sql` with Avro: `--schema-registry URL` serves the CTA statements' `AVRO` table,
//! and without it an embedded registry starts and prints its URL.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use streamkit::registry::{EmbeddedRegistry, RegistryConfig};
use streamkit::serde::Serde;
use streamkit::serde::avro::{Avro, RegistryClient};
use streamkit::testing::EmbeddedBroker;

/// Kills the process even when an assertion fails.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(serde::Serialize, serde::Deserialize, apache_avro::AvroSchema)]
struct Turnstile {
    station_id: i32,
    station_name: String,
    line: String,
}

#[test]
fn sql_command_reads_avro_through_the_given_registry() {
    let registry_broker = EmbeddedBroker::start().unwrap();
    let registry =
        EmbeddedRegistry::start(RegistryConfig::embedded(&registry_broker).listen("127.0.0.1:0"))
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cta.sql");
    std::fs::write(
        &file,
        "CREATE TABLE turnstile (station_id INT, station_name VARCHAR, line VARCHAR) WITH \
         (KAFKA_TOPIC='org.chicago.cta.turnstiles', VALUE_FORMAT='AVRO', KEY='station_id', PARTITIONS=1);\n\
         CREATE TABLE turnstile_summary WITH (VALUE_FORMAT='JSON') AS SELECT station_id, \
         COUNT(station_id) AS count FROM turnstile GROUP BY station_id;\n",
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_streamkit"))
        .args(["sql", file.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .args(["--schema-registry", registry.url(), "--state-dir"])
        .arg(dir.path().join("state"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut guard = Guard(child);
    let mut lines = BufReader::new(guard.0.stdout.take().unwrap()).lines();
    let mut next = || lines.next().expect("output").unwrap();
    let bootstrap = next()
        .strip_prefix("bootstrap.servers=")
        .unwrap()
        .to_string();
    assert!(next().starts_with("ksql.server="));
    assert_eq!(next(), "Table created");
    assert_eq!(next(), "Created query with ID CTAS_TURNSTILE_SUMMARY_0");

    let client = registry.client().unwrap();
    let serde = Avro::<Turnstile>::registry(&client);
    let events: Vec<(String, Vec<u8>)> = [(40380, "blue"), (41320, "red"), (40380, "green")]
        .iter()
        .enumerate()
        .map(|(i, (id, line))| {
            let mut buf = Vec::new();
            let t = Turnstile {
                station_id: *id,
                station_name: format!("station {id}"),
                line: line.to_string(),
            };
            serde
                .serialize("org.chicago.cta.turnstiles", &t, &mut buf)
                .unwrap();
            (format!("event-{i}"), buf)
        })
        .collect();
    common::produce(&bootstrap, "org.chicago.cta.turnstiles", &events);

    let summary = common::read_until(
        &bootstrap,
        "TURNSTILE_SUMMARY",
        Duration::from_secs(60),
        |rs| {
            let last = |id: i32| {
                rs.iter()
                    .rev()
                    .find(|r| r.key.as_deref() == Some(&id.to_be_bytes()[..]))
                    .map(|r| r.value_str())
            };
            last(40380) == Some(r#"{"COUNT":2}"#) && last(41320) == Some(r#"{"COUNT":1}"#)
        },
    );
    // Every event counts (the table is keyed by the message key, KEY='station_id' a hint),
    // one update at a time.
    let counts = |id: i32| -> Vec<&str> {
        summary
            .iter()
            .filter(|r| r.key.as_deref() == Some(&id.to_be_bytes()[..]))
            .map(|r| r.value_str())
            .collect()
    };
    assert_eq!(counts(40380), [r#"{"COUNT":1}"#, r#"{"COUNT":2}"#]);
    assert_eq!(counts(41320), [r#"{"COUNT":1}"#]);
}

#[test]
fn sql_command_without_a_registry_starts_an_embedded_one() {
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_streamkit"))
        .args(["sql", "--listen", "127.0.0.1:0", "--state-dir"])
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = Guard(child);
    // Read standard error to its end on a thread, so the process never writes to a closed pipe.
    let stderr = guard.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("schema.registry.url=") {
                let _ = tx.send(url.to_string());
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the registry's URL on standard error");
    let client = RegistryClient::new(&url).unwrap();
    let id = client
        .register(
            "turnstiles-value",
            &<Turnstile as apache_avro::AvroSchema>::get_schema(),
        )
        .unwrap();
    assert_eq!(id, 1);
    // End of input ends the prompt.
    drop(guard.0.stdin.take());
    let status = guard.0.wait().unwrap();
    assert!(status.success(), "{status}");
}
