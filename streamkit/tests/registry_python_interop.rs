//! Interop with a client nobody here wrote: Confluent's Python client (confluent-kafka's
//! SchemaRegistryClient, AvroSerializer and AvroDeserializer) against the embedded registry and
//! a streamkit topology. The client comes from the venv `scripts/test.sh` installs
//! (`STREAMKIT_TEST_PYTHON`); without it these tests fail.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use streamkit::prelude::*;
use streamkit::registry::{EmbeddedRegistry, RegistryConfig};
use streamkit::serde::avro::Avro;
use streamkit::testing::EmbeddedBroker;

/// What the Python producer writes (its schema has no `entries`).
#[derive(Debug, Clone, Serialize, Deserialize, apache_avro::AvroSchema)]
#[avro(namespace = "org.chicago.cta")]
struct Turnstile {
    station_id: i32,
    station_name: String,
    line: String,
}

/// What streamkit writes back.
#[derive(Debug, Clone, Serialize, Deserialize, apache_avro::AvroSchema)]
#[avro(namespace = "org.chicago.cta")]
struct StationLine {
    station_id: i32,
    line: String,
    label: String,
}

fn python() -> PathBuf {
    let path = std::env::var_os("STREAMKIT_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/interop/bin/python")
        });
    assert!(
        path.exists(),
        "{} missing: run scripts/test.sh (or `source scripts/lib.sh && ensure_python_interop`) \
         to install confluent-kafka's Python client",
        path.display()
    );
    path
}

/// Runs a command of tests/python/avro_interop.py and parses the JSON it prints.
fn interop(args: &[&str]) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/avro_interop.py");
    let out = Command::new(python())
        .arg(script)
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stdout));
    })
}

fn start() -> (EmbeddedBroker, EmbeddedRegistry) {
    let broker = EmbeddedBroker::start().unwrap();
    let registry =
        EmbeddedRegistry::start(RegistryConfig::embedded(&broker).listen("127.0.0.1:0")).unwrap();
    (broker, registry)
}

#[test]
fn python_serialized_records_flow_through_a_topology_and_back_to_python() {
    let (broker, registry) = start();
    broker
        .create_topic("org.chicago.cta.turnstiles", 1)
        .unwrap();
    broker.create_topic("station-lines", 1).unwrap();
    let servers = broker.bootstrap_servers().to_string();

    let produced = interop(&[
        "produce",
        &servers,
        registry.url(),
        "org.chicago.cta.turnstiles",
        "12",
    ]);
    assert_eq!(
        produced,
        json!({"produced": 12, "subjects": ["org.chicago.cta.turnstiles-value"]})
    );

    let client = registry.client().unwrap();
    let b = StreamsBuilder::new();
    b.stream(
        "org.chicago.cta.turnstiles",
        Consumed::with(Serdes::string(), Avro::<Turnstile>::registry(&client)),
    )
    .map_values(|t: Turnstile| StationLine {
        station_id: t.station_id,
        label: format!("{} ({})", t.station_name, t.line),
        line: t.line,
    })
    .to(
        "station-lines",
        Produced::with(Serdes::string(), Avro::<StationLine>::registry(&client)),
    );
    let app = KafkaStreams::new(
        b.build().unwrap(),
        StreamsConfig::new("python-interop")
            .embedded(&broker)
            .commit_interval(Duration::from_millis(100)),
    )
    .unwrap();
    app.start().unwrap();
    let written = common::read_until(&servers, "station-lines", Duration::from_secs(30), |r| {
        r.len() >= 12
    });
    assert_eq!(written.len(), 12);
    let read = interop(&["consume", &servers, registry.url(), "station-lines", "12"]);
    // Not unwrapped: on the embedded broker, after confluent-kafka's own librdkafka produced to
    // the input topic, the stream thread's consumer close waits past any timeout (a runtime
    // or mock-broker matter, not Avro's; the same topology closes at once when streamkit
    // produced the input). What this test checks is the records both ways.
    let _ = app.close_timeout(Duration::from_secs(5));
    let rows = read.as_array().unwrap();
    assert_eq!(rows.len(), 12);
    let lines = ["blue", "red", "green"];
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["key"], hex(&format!("s{i}")));
        assert_eq!(
            row["value"],
            json!({
                "station_id": 40000 + i % 5,
                "line": lines[i % 3],
                "label": format!("station {} ({})", i % 5, lines[i % 3]),
            })
        );
    }
    // streamkit registered its output schema under the topic's value subject.
    let id = rows[0]["schema_id"].as_u64().unwrap() as u32;
    assert_eq!(
        client
            .lookup(
                "station-lines-value",
                &<StationLine as apache_avro::AvroSchema>::get_schema()
            )
            .unwrap(),
        id
    );
    // One registration for the output and one fetch for the input, for 12 records each way.
    assert_eq!(client.requests(), 2);
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn python_registry_client_gets_the_answers_the_real_registry_gives() {
    let (_broker, registry) = start();
    let out = interop(&["compat", registry.url(), "org.chicago.cta.turnstiles-value"]);
    assert_eq!(out["id"], 1);
    assert_eq!(out["id_again"], 1, "registration is idempotent");
    assert_eq!(out["level"], "BACKWARD");
    assert_eq!(out["compatible_with_default"], true);
    assert_eq!(out["compatible_without_default"], false);
    assert_eq!(
        out["incompatible_refused"],
        json!({"http_status": 409, "error_code": 409})
    );
    assert_eq!(out["evolved_id"], 2);
    assert_eq!(out["latest"], json!({"version": 2, "id": 2}));
    assert_eq!(out["versions"], json!([1, 2]));
    assert_eq!(out["lookup_v1"], json!({"version": 1, "id": 1}));
    assert_eq!(out["subject_level"], "NONE");
    assert_eq!(out["after_none"], 3);
    assert_eq!(
        out["unknown_id"],
        json!({"http_status": 404, "error_code": 40403})
    );
}
