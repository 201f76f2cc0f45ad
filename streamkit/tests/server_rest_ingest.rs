//! REST-Proxy-compatible ingest on the query server, driven from Python `requests` as the CTA
//! weather station drove the Kafka REST Proxy: the original weather call unchanged
//! (`tests/python/rest_weather.py`), then valid and invalid bodies of every embedded format
//! (`tests/python/rest_ingest_cases.py`). What reached the topics is read back, Avro through
//! the registry. The client comes from the venv `scripts/test.sh` installs
//! (`STREAMKIT_TEST_PYTHON`); without it these tests fail.

mod common;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apache_avro::Schema;
use serde_json::{Value, json};
use streamkit::config::RestIngest;
use streamkit::prelude::*;
use streamkit::registry::{EmbeddedRegistry, RegistryConfig};
use streamkit::serde::Serde;
use streamkit::serde::avro::{AvroGeneric, RegistryClient};
use streamkit::testing::EmbeddedBroker;

const WEATHER_TOPIC: &str = "org.chicago.cta.weather.v1";
const TOKEN: &str = "weather-station";

fn python() -> PathBuf {
    let path = std::env::var_os("STREAMKIT_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/interop/bin/python")
        });
    assert!(
        path.exists(),
        "{} missing: run scripts/test.sh (or `source scripts/lib.sh && ensure_python_interop`) \
         to install the Python clients (requests)",
        path.display()
    );
    path
}

/// Runs `tests/python/<script>` and parses the JSON it prints.
fn run_python(script: &str, args: &[&str]) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let out = Command::new(python())
        .arg(&script)
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python {} {args:?} failed:\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stdout));
    })
}

fn start() -> (EmbeddedBroker, EmbeddedRegistry, RegistryClient) {
    common::init_logs();
    let broker = EmbeddedBroker::start().unwrap();
    let registry =
        EmbeddedRegistry::start(RegistryConfig::embedded(&broker).listen("127.0.0.1:0")).unwrap();
    let client = registry.client().unwrap();
    (broker, registry, client)
}

fn weather_schema(file: &str) -> Schema {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python/schemas")
        .join(file);
    Schema::parse_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Decodes a wire-format Avro record through the registry, as JSON.
fn avro_json(client: &RegistryClient, topic: &str, bytes: &[u8]) -> Value {
    // The writer schema comes from the registry by the record's id; this one is not used.
    let serde = AvroGeneric::new(client, Schema::Null);
    let value = serde.deserialize(topic, bytes).unwrap();
    serde.to_json(&value).unwrap()
}

#[test]
fn the_cta_weather_producer_posts_to_rest_ingest_unchanged() {
    let (broker, _registry, client) = start();
    broker.create_topic(WEATHER_TOPIC, 1).unwrap();
    let servers = broker.bootstrap_servers().to_string();

    // A topology reading the weather back, so the ingested records are shown to be what a
    // streamkit application consumes.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let b = StreamsBuilder::new();
    let sink = seen.clone();
    b.stream(
        WEATHER_TOPIC,
        Consumed::with(
            AvroGeneric::new(&client, weather_schema("weather_key.json")).key(),
            AvroGeneric::new(&client, weather_schema("weather_value.json")),
        ),
    )
    .foreach(move |_k, v| sink.lock().unwrap().push(v.clone()));
    let dir = tempfile::tempdir().unwrap();
    let app = KafkaStreams::new(
        b.build().unwrap(),
        StreamsConfig::new("cta-weather")
            .embedded(&broker)
            .state_dir(dir.path())
            .commit_interval(Duration::from_millis(100))
            // No token: the original call sends none.
            .query_server("127.0.0.1:0")
            .rest_ingest(RestIngest::new().schema_registry(&client)),
    )
    .unwrap();
    app.start().unwrap();
    let url = format!("http://{}", app.query_server_addr().unwrap());

    const MONTHS: usize = 12;
    let runs = run_python("rest_weather.py", &[&url, &MONTHS.to_string(), "17"]);
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), MONTHS);

    let key_id = client
        .lookup(
            &format!("{WEATHER_TOPIC}-key"),
            &weather_schema("weather_key.json"),
        )
        .unwrap();
    let value_id = client
        .lookup(
            &format!("{WEATHER_TOPIC}-value"),
            &weather_schema("weather_value.json"),
        )
        .unwrap();
    assert_ne!(key_id, value_id);
    for (i, run) in runs.iter().enumerate() {
        assert_eq!(run["status_code"], 200, "{run}");
        assert_eq!(run["content_type"], "application/vnd.kafka.v2+json");
        assert_eq!(
            run["response"],
            json!({
                "offsets": [{"partition": 0, "offset": i, "error_code": null, "error": null}],
                "key_schema_id": key_id,
                "value_schema_id": value_id,
            }),
            "the REST Proxy's answer to reading {i}"
        );
    }

    let read = common::read_until(&servers, WEATHER_TOPIC, Duration::from_secs(30), |r| {
        r.len() >= MONTHS
    });
    assert_eq!(read.len(), MONTHS);
    for (run, record) in runs.iter().zip(&read) {
        let sent = &run["sent"];
        let key = avro_json(&client, WEATHER_TOPIC, record.key.as_deref().unwrap());
        assert_eq!(key, sent["key"]);
        let value = avro_json(&client, WEATHER_TOPIC, record.value.as_deref().unwrap());
        assert_eq!(value["status"], sent["value"]["status"]);
        // An Avro float: the f32 nearest the reading.
        let temperature = sent["value"]["temperature"].as_f64().unwrap();
        assert_eq!(
            value["temperature"].as_f64().unwrap(),
            f64::from(temperature as f32),
            "{value} vs {sent}"
        );
        // Written with the registered ids, in the Confluent wire format.
        assert_eq!(record.key.as_deref().unwrap()[..5], wire(key_id));
        assert_eq!(record.value.as_deref().unwrap()[..5], wire(value_id));
    }

    assert!(
        common::eventually(Duration::from_secs(60), || seen.lock().unwrap().len()
            >= MONTHS),
        "the topology saw {} of {MONTHS} readings",
        seen.lock().unwrap().len()
    );
    app.close().unwrap();
}

fn wire(id: u32) -> [u8; 5] {
    let b = id.to_be_bytes();
    [0, b[0], b[1], b[2], b[3]]
}

#[test]
fn valid_and_invalid_bodies_of_every_content_type_get_the_rest_proxy_answers() {
    let (broker, _registry, client) = start();
    broker.create_topic("rest-json", 2).unwrap();
    broker.create_topic("rest-binary", 2).unwrap();
    broker.create_topic("rest-avro", 1).unwrap();
    let servers = broker.bootstrap_servers().to_string();
    let b = StreamsBuilder::new();
    b.stream(
        "rest-json",
        Consumed::with(Serdes::bytes(), Serdes::bytes()),
    )
    .foreach(|_, _| {});
    let dir = tempfile::tempdir().unwrap();
    let app = KafkaStreams::new(
        b.build().unwrap(),
        StreamsConfig::new("rest-ingest-cases")
            .embedded(&broker)
            .state_dir(dir.path())
            .query_server("127.0.0.1:0")
            .query_server_token(TOKEN)
            .rest_ingest(
                RestIngest::new()
                    .schema_registry(&client)
                    .max_body_bytes(64 << 10),
            ),
    )
    .unwrap();
    app.start().unwrap();
    let url = format!("http://{}", app.query_server_addr().unwrap());

    let got = run_python("rest_ingest_cases.py", &[&url, TOKEN]);
    let case = |name: &str| -> &Value {
        got.get(name)
            .unwrap_or_else(|| panic!("no case {name}: {got}"))
    };
    // An error: the HTTP status and the REST Proxy's error_code.
    let error = |name: &str, status: u64, code: u64| {
        let c = case(name);
        assert_eq!(
            (c["status"].as_u64(), c["body"]["error_code"].as_u64()),
            (Some(status), Some(code)),
            "{name}: {c}"
        );
        assert!(
            c["body"]["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{name}: {c}"
        );
    };
    let ok = |name: &str| -> Value {
        let c = case(name);
        assert_eq!(c["status"], 200, "{name}: {c}");
        assert_eq!(c["content_type"], "application/vnd.kafka.v2+json");
        for o in c["body"]["offsets"].as_array().unwrap() {
            assert_eq!(
                (&o["error_code"], &o["error"]),
                (&Value::Null, &Value::Null),
                "{name}: {c}"
            );
        }
        c["body"].clone()
    };

    // json
    let body = ok("json_valid");
    let offsets = body["offsets"].as_array().unwrap();
    assert_eq!(offsets.len(), 3);
    assert_eq!(offsets[1]["partition"], 1, "the record's partition: {body}");
    assert_eq!(
        (&body["key_schema_id"], &body["value_schema_id"]),
        (&Value::Null, &Value::Null)
    );
    let body = ok("json_partition_endpoint");
    assert!(
        body["offsets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["partition"] == 0),
        "{body}"
    );
    error("json_malformed", 400, 400);
    error("json_no_records", 422, 422);
    error("json_missing_records", 422, 422);
    error("json_records_not_a_list", 400, 400);
    error("json_negative_partition", 422, 422);
    error("json_partition_out_of_range", 404, 40402);
    error("json_unknown_partition_endpoint", 404, 40402);
    error("json_unknown_topic", 404, 40401);

    // binary
    assert_eq!(ok("binary_valid")["offsets"].as_array().unwrap().len(), 2);
    assert_eq!(
        ok("binary_partition_endpoint")["offsets"][0]["partition"],
        1
    );
    error("binary_bad_base64", 400, 400);
    error("binary_not_a_string", 400, 400);

    // avro
    let valid = ok("avro_valid");
    let key_id = valid["key_schema_id"].as_u64().unwrap() as u32;
    let value_id = valid["value_schema_id"].as_u64().unwrap() as u32;
    assert_eq!(
        client
            .lookup("rest-avro-key", &Schema::parse_str("\"string\"").unwrap())
            .unwrap(),
        key_id,
        "key_schema registered under <topic>-key"
    );
    assert_eq!(
        client.latest("rest-avro-value").unwrap().0,
        value_id,
        "value_schema registered under <topic>-value"
    );
    let by_id = ok("avro_by_schema_id");
    assert_eq!(
        (&by_id["key_schema_id"], &by_id["value_schema_id"]),
        (&valid["key_schema_id"], &valid["value_schema_id"])
    );
    error("avro_invalid_schema", 422, 42205);
    error("avro_not_matching", 422, 42203);
    error("avro_bare_union", 422, 42203);
    error("avro_missing_value_schema", 422, 42202);
    error("avro_missing_key_schema", 422, 42201);
    error("avro_unknown_schema_id", 408, 40801);
    error("avro_incompatible_schema", 408, 40801);
    let message = case("avro_not_matching")["body"]["message"]
        .as_str()
        .unwrap();
    assert!(
        message.starts_with("Conversion of JSON to Avro failed: records[0].value.station_id"),
        "{message}"
    );

    // any format
    error("unsupported_content_type", 415, 415);
    assert_eq!(case("no_token")["status"], 401);
    assert_eq!(case("wrong_token")["status"], 401);
    error("too_large", 413, 413);

    // Only the valid requests reached the topics.
    let json_records = common::read_all(&servers, "rest-json", Duration::from_secs(30));
    let mut values: Vec<(Option<String>, String)> = json_records
        .iter()
        .map(|r| {
            (
                r.key
                    .as_ref()
                    .map(|k| String::from_utf8(k.clone()).unwrap()),
                r.value_str().to_string(),
            )
        })
        .collect();
    values.sort();
    assert_eq!(
        values,
        vec![
            (None, "53.5".to_string()),
            (None, "[\"foo\",\"bar\"]".to_string()),
            (None, "{\"n\":1}".to_string()),
            (None, "{\"n\":2}".to_string()),
            (
                Some("\"somekey\"".to_string()),
                "{\"foo\":\"bar\"}".to_string()
            ),
        ]
    );

    let binary = common::read_all(&servers, "rest-binary", Duration::from_secs(30));
    let mut pairs: Vec<(Option<Vec<u8>>, Vec<u8>, i32)> = binary
        .iter()
        .map(|r| (r.key.clone(), r.value.clone().unwrap(), r.partition))
        .collect();
    pairs.sort();
    assert_eq!(pairs.len(), 3);
    assert_eq!(
        (pairs[0].0.as_deref(), &pairs[0].1[..]),
        (None, &b"no key"[..])
    );
    assert_eq!(
        (pairs[1].0.as_deref(), &pairs[1].1[..], pairs[1].2),
        (Some(&b"k"[..]), &b"v"[..], 1)
    );
    assert_eq!(
        (pairs[2].0.as_deref(), &pairs[2].1[..]),
        (Some(&b"station-1"[..]), &b"\x00\x01\xffraw"[..])
    );
    // A keyed record goes where Kafka's default partitioner (murmur2) puts it.
    let keyed = binary
        .iter()
        .find(|r| r.key.as_deref() == Some(b"station-1"))
        .unwrap();
    assert_eq!(keyed.partition, murmur2_partition(b"station-1", 2));

    let avro = common::read_all(&servers, "rest-avro", Duration::from_secs(30));
    let decoded: Vec<(Value, Value)> = avro
        .iter()
        .map(|r| {
            (
                avro_json(&client, "rest-avro", r.key.as_deref().unwrap()),
                avro_json(&client, "rest-avro", r.value.as_deref().unwrap()),
            )
        })
        .collect();
    assert_eq!(decoded.len(), 3);
    assert_eq!(decoded[0].0, json!("a1"));
    assert_eq!(
        decoded[0].1,
        json!({
            "station_id": 40001,
            "train_id": "BL001",
            "direction": "b",
            "prev_station_id": 40000,
            "cars": ["1001", "1002"],
            "dwell_ms": {"40000": 1500},
            "line": "blue",
        }),
        "a union branch, an enum, an array, a map and a default"
    );
    assert_eq!(decoded[1].1["prev_station_id"], Value::Null);
    assert_eq!(decoded[2].0, json!("a3"));
    assert_eq!(decoded[2].1["station_id"], 40003);

    app.close().unwrap();
}

/// Kafka's default partitioner: murmur2 of the key bytes, positive, modulo the partitions.
fn murmur2_partition(data: &[u8], partitions: i32) -> i32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        for (i, b) in rest.iter().enumerate().rev() {
            h ^= u32::from(*b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    ((h as i32) & 0x7fff_ffff) % partitions
}

/// `POST` with a JSON body over a plain socket; the status and body.
fn post(addr: &str, path: &str, content_type: &str, body: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

#[test]
fn rest_ingest_is_off_unless_enabled_and_needs_the_query_server() {
    common::init_logs();
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("in", 1).unwrap();
    let topology = || {
        let b = StreamsBuilder::new();
        b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
            .foreach(|_, _| {});
        b.build().unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let config = StreamsConfig::new("no-ingest")
        .embedded(&broker)
        .state_dir(dir.path());

    let err = KafkaStreams::new(topology(), config.clone().rest_ingest(RestIngest::new()))
        .map(|_| ())
        .expect_err("rest_ingest without query_server is refused")
        .to_string();
    assert!(err.contains("query_server"), "{err}");

    let app = KafkaStreams::new(topology(), config.query_server("127.0.0.1:0")).unwrap();
    app.start().unwrap();
    let addr = app.query_server_addr().unwrap().to_string();
    let (status, body) = post(
        &addr,
        "/topics/in",
        "application/vnd.kafka.json.v2+json",
        r#"{"records":[{"value":1}]}"#,
    );
    assert_eq!(status, 404, "{body}");
    assert_eq!(common::record_count(broker.bootstrap_servers(), "in"), 0);
    app.close().unwrap();
}

#[test]
fn avro_without_a_registry_fails_as_the_rest_proxy_does_and_json_still_flows() {
    common::init_logs();
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("readings", 1).unwrap();
    let b = StreamsBuilder::new();
    b.stream("readings", Consumed::with(Serdes::bytes(), Serdes::bytes()))
        .foreach(|_, _| {});
    let dir = tempfile::tempdir().unwrap();
    let app = KafkaStreams::new(
        b.build().unwrap(),
        StreamsConfig::new("no-registry")
            .embedded(&broker)
            .state_dir(dir.path())
            .query_server("127.0.0.1:0")
            .rest_ingest(RestIngest::new()),
    )
    .unwrap();
    app.start().unwrap();
    let addr = app.query_server_addr().unwrap().to_string();
    let (status, body) = post(
        &addr,
        "/topics/readings",
        "application/vnd.kafka.avro.v2+json",
        r#"{"value_schema":"\"int\"","records":[{"value":1}]}"#,
    );
    assert_eq!(status, 408, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error_code"], 40801);
    let (status, body) = post(
        &addr,
        "/topics/readings/partitions/0",
        "application/vnd.kafka.json.v2+json",
        r#"{"records":[{"key":{"id":1},"value":{"t":20.5}}]}"#,
    );
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body,
        json!({"offsets": [{"partition": 0, "offset": 0, "error_code": null, "error": null}],
               "key_schema_id": null, "value_schema_id": null})
    );
    let read = common::read_all(
        broker.bootstrap_servers(),
        "readings",
        Duration::from_secs(30),
    );
    assert_eq!(
        (read[0].key_str(), read[0].value_str()),
        ("{\"id\":1}", "{\"t\":20.5}")
    );
    app.close().unwrap();
}

#[test]
fn a_record_the_broker_refuses_gets_the_rest_proxy_error_in_its_offset() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    common::init_logs();
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("refused", 1).unwrap();
    let b = StreamsBuilder::new();
    b.stream("refused", Consumed::with(Serdes::bytes(), Serdes::bytes()))
        .foreach(|_, _| {});
    let dir = tempfile::tempdir().unwrap();
    let app = KafkaStreams::new(
        b.build().unwrap(),
        StreamsConfig::new("refusals")
            .embedded(&broker)
            .state_dir(dir.path())
            .query_server("127.0.0.1:0")
            .rest_ingest(RestIngest::new()),
    )
    .unwrap();
    app.start().unwrap();
    let addr = app.query_server_addr().unwrap().to_string();
    let produce = || {
        let (status, body) = post(
            &addr,
            "/topics/refused",
            "application/vnd.kafka.binary.v2+json",
            r#"{"records":[{"value":"AQI="}]}"#,
        );
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<Value>(&body).unwrap()["offsets"][0].clone()
    };
    assert_eq!(produce()["error_code"], Value::Null);
    // The instance directory also produces: retry until this client's request drew the error.
    let mut refused = Value::Null;
    for _ in 0..10 {
        broker
            .fail_next_requests(
                RDKafkaApiKey::Produce,
                &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED],
            )
            .unwrap();
        let offset = produce();
        if !offset["error_code"].is_null() {
            refused = offset;
            break;
        }
    }
    assert_eq!(refused["error_code"], 50002, "{refused}");
    assert_eq!(
        (&refused["partition"], &refused["offset"]),
        (&Value::Null, &Value::Null)
    );
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("Kafka error: ") && e.contains("uthoriz")),
        "{refused}"
    );
    // The producer is still usable.
    assert_eq!(produce()["error_code"], Value::Null, "after the refusal");
    app.close().unwrap();
}
