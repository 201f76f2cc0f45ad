//! Avro serdes against the embedded schema registry: the Confluent wire format, one registry
//! call per schema, subject name strategies, schema evolution, and bad records reaching the
//! deserialization handler with their reason.

use apache_avro::types::Value;
use apache_avro::{AvroSchema, Schema};
use serde::{Deserialize, Serialize};
use streamkit::error_policy::dead_letter_headers;
use streamkit::prelude::*;
use streamkit::registry::{EmbeddedRegistry, RegistryConfig};
use streamkit::serde::Serde;
use streamkit::serde::avro::{Avro, AvroGeneric, RegistryClient, SubjectNameStrategy};
use streamkit::testing::EmbeddedBroker;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "org.chicago.cta")]
struct Turnstile {
    station_id: i32,
    station_name: String,
    line: String,
}

/// Turnstile with a field added later, with a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TurnstileV2 {
    station_id: i32,
    station_name: String,
    line: String,
    entries: i64,
}

const TURNSTILE_V2: &str = r#"{"type":"record","name":"Turnstile","namespace":"org.chicago.cta","fields":[
    {"name":"station_id","type":"int"},{"name":"station_name","type":"string"},
    {"name":"line","type":"string"},{"name":"entries","type":"long","default":7}]}"#;

fn start() -> (EmbeddedBroker, EmbeddedRegistry) {
    let broker = EmbeddedBroker::start().unwrap();
    let registry =
        EmbeddedRegistry::start(RegistryConfig::embedded(&broker).listen("127.0.0.1:0")).unwrap();
    (broker, registry)
}

fn turnstile(i: i32) -> Turnstile {
    Turnstile {
        station_id: 40000 + i,
        station_name: format!("station {i}"),
        line: "blue".into(),
    }
}

fn encode<T: 'static>(serde: &impl Serde<T>, topic: &str, value: &T) -> Vec<u8> {
    let mut buf = Vec::new();
    serde.serialize(topic, value, &mut buf).unwrap();
    buf
}

#[test]
fn values_use_the_confluent_wire_format_and_one_registry_call_per_schema() {
    let (_broker, registry) = start();
    let writer_client = registry.client().unwrap();
    let writer = Avro::<Turnstile>::registry(&writer_client);
    let records: Vec<Vec<u8>> = (0..100)
        .map(|i| encode(&writer, "turnstiles", &turnstile(i)))
        .collect();
    assert_eq!(
        writer_client.requests(),
        1,
        "one registration for 100 records"
    );

    let first = &records[0];
    assert_eq!(first[0], 0, "magic byte");
    let id = u32::from_be_bytes(first[1..5].try_into().unwrap());
    assert_eq!(
        writer_client
            .lookup("turnstiles-value", &Turnstile::get_schema())
            .unwrap(),
        id,
        "registered under <topic>-value"
    );

    let reader_client = registry.client().unwrap();
    let reader = Avro::<Turnstile>::registry(&reader_client);
    for (i, bytes) in records.iter().enumerate() {
        assert_eq!(
            reader.deserialize("turnstiles", bytes).unwrap(),
            turnstile(i as i32)
        );
    }
    assert_eq!(
        reader_client.requests(),
        1,
        "one schema fetch for 100 records"
    );
}

#[test]
fn subject_name_strategies_name_the_key_value_and_record_subjects() {
    let (_broker, registry) = start();
    let client = registry.client().unwrap();
    let schema = Turnstile::get_schema();
    let cases = [
        (Avro::<Turnstile>::registry(&client).key(), "t-key"),
        (Avro::<Turnstile>::registry(&client), "t-value"),
        (
            Avro::<Turnstile>::registry(&client)
                .subject_name_strategy(SubjectNameStrategy::RecordName),
            "org.chicago.cta.Turnstile",
        ),
        (
            Avro::<Turnstile>::registry(&client)
                .subject_name_strategy(SubjectNameStrategy::TopicRecordName),
            "t-org.chicago.cta.Turnstile",
        ),
    ];
    let check = RegistryClient::new(registry.url()).unwrap();
    for (serde, subject) in cases {
        assert!(check.lookup(subject, &schema).is_err(), "{subject} before");
        let bytes = encode(&serde, "t", &turnstile(1));
        let id = u32::from_be_bytes(bytes[1..5].try_into().unwrap());
        assert_eq!(check.lookup(subject, &schema).unwrap(), id, "{subject}");
    }
}

#[test]
fn without_auto_registration_the_schema_must_be_registered_first() {
    let (_broker, registry) = start();
    let client = registry.client().unwrap();
    let serde = Avro::<Turnstile>::registry(&client).auto_register(false);
    let mut buf = Vec::new();
    let err = serde
        .serialize("gated", &turnstile(1), &mut buf)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not registered under subject gated-value"),
        "{err}"
    );

    let id = RegistryClient::new(registry.url())
        .unwrap()
        .register("gated-value", &Turnstile::get_schema())
        .unwrap();
    buf.clear();
    serde.serialize("gated", &turnstile(1), &mut buf).unwrap();
    assert_eq!(u32::from_be_bytes(buf[1..5].try_into().unwrap()), id);
}

#[test]
fn a_field_added_with_a_default_reads_from_records_written_without_it() {
    let (_broker, registry) = start();
    let client = registry.client().unwrap();
    let old = encode(
        &Avro::<Turnstile>::registry(&client),
        "evolving",
        &turnstile(3),
    );
    let v2 = Schema::parse_str(TURNSTILE_V2).unwrap();
    let reader = Avro::<TurnstileV2>::with_schema(&client, v2.clone());
    assert_eq!(
        reader.deserialize("evolving", &old).unwrap(),
        TurnstileV2 {
            station_id: 40003,
            station_name: "station 3".into(),
            line: "blue".into(),
            entries: 7,
        }
    );

    // Generic values: as written, or resolved to the reader's schema.
    let as_written = AvroGeneric::new(&client, v2.clone())
        .deserialize("evolving", &old)
        .unwrap();
    let Value::Record(fields) = as_written else {
        panic!("{as_written:?}")
    };
    assert_eq!(fields.len(), 3);
    let resolved = AvroGeneric::new(&client, v2)
        .resolve_to_schema()
        .deserialize("evolving", &old)
        .unwrap();
    let Value::Record(fields) = resolved else {
        panic!("{resolved:?}")
    };
    assert_eq!(fields[3], ("entries".to_string(), Value::Long(7)));
}

#[test]
fn bad_records_reach_the_dead_letter_topic_with_the_reason() {
    let (_broker, registry) = start();
    let client = registry.client().unwrap();
    let b = StreamsBuilder::new();
    b.stream(
        "turnstiles",
        Consumed::with(Serdes::string(), Avro::<Turnstile>::registry(&client))
            .on_deserialization_error(DeserializationHandler::DeadLetter("turnstiles-dlq".into())),
    )
    .map_values(|t: Turnstile| t.station_id as i64)
    .to("ids", Produced::with(Serdes::string(), Serdes::i64()));
    let driver = TopologyTestDriver::new(b.build().unwrap()).unwrap();

    let good = encode(
        &Avro::<Turnstile>::registry(&client),
        "turnstiles",
        &turnstile(5),
    );
    let mut unknown_id = good.clone();
    unknown_id[1..5].copy_from_slice(&4242u32.to_be_bytes());
    let truncated = good[..good.len() - 3].to_vec();
    let input = driver.input_topic("turnstiles", Serdes::string(), Serdes::bytes());
    input
        .pipe_raw(Some(b"json"), Some(br#"{"station_id":1}"#), 1)
        .unwrap();
    input
        .pipe_raw(Some(b"unknown"), Some(&unknown_id), 2)
        .unwrap();
    input
        .pipe_raw(Some(b"truncated"), Some(&truncated), 3)
        .unwrap();
    input.pipe_raw(Some(b"good"), Some(&good), 4).unwrap();

    let out = driver.output_topic("ids", Serdes::string(), Serdes::i64());
    assert_eq!(out.read_key_values(), vec![("good".to_string(), 40005)]);
    let dead = driver
        .output_topic("turnstiles-dlq", Serdes::string(), Serdes::bytes())
        .read_records();
    let reasons: Vec<(String, String)> = dead
        .iter()
        .map(|r| {
            (
                r.key.clone(),
                r.headers
                    .last_str(dead_letter_headers::ERROR)
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(
        reasons[0].1.contains("unknown magic byte 0x7b"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].1.contains("schema id 4242 is not registered"),
        "{reasons:?}"
    );
    assert!(
        reasons[2].1.starts_with("invalid data: avro: schema id"),
        "{reasons:?}"
    );
    assert_eq!(dead[1].value, unknown_id, "the original bytes are kept");
    assert_eq!(driver.metrics().dropped_records("deserialization"), 3);
}

/// A record as the CTA producers' schema files name it (`arrival.value`): Avro does not match
/// record names against the reading type, so neither may the serde — every value reads back,
/// from the first record on and for as long as the serde runs.
#[test]
fn a_record_named_unlike_its_type_reads_into_it() {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Arrival {
        station_id: i32,
        prev_station_id: Option<i32>,
        prev_direction: Option<String>,
    }
    let (_broker, registry) = start();
    let client = registry.client().unwrap();
    let schema = Schema::parse_str(
        r#"{"namespace": "com.udacity", "type": "record", "name": "arrival.value", "fields": [
            {"name": "station_id", "type": "int"},
            {"name": "prev_station_id", "type": ["null", "int"]},
            {"name": "prev_direction", "type": ["null", "string"]}]}"#,
    )
    .unwrap();
    let serde = Avro::<Arrival>::with_schema(&client, schema);
    for i in 0..3 {
        let a = Arrival {
            station_id: 40_000 + i,
            prev_station_id: (i > 0).then_some(40_000 + i - 1),
            prev_direction: (i > 0).then(|| "a".to_string()),
        };
        let mut bytes = Vec::new();
        serde.serialize("arrivals", &a, &mut bytes).unwrap();
        assert_eq!(serde.deserialize("arrivals", &bytes).unwrap(), a);
    }
}
