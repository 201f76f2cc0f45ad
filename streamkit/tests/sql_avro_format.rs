//! SQL's `VALUE_FORMAT='AVRO'`: the CTA seed's statements, verbatim, over Avro turnstile
//! events, and `CREATE … AS SELECT` writing Avro with a schema it registers.

use apache_avro::types::Value as AvroValue;
use serde::{Deserialize, Serialize};
use streamkit::prelude::*;
use streamkit::registry::{EmbeddedRegistry, RegistryConfig};
use streamkit::serde::Serde;
use streamkit::serde::avro::{Avro, AvroGeneric, RegistryClient};
use streamkit::sql::Engine;
use streamkit::testing::EmbeddedBroker;

#[derive(Debug, Clone, Serialize, Deserialize, apache_avro::AvroSchema)]
#[avro(namespace = "org.chicago.cta")]
struct Turnstile {
    station_id: i32,
    station_name: String,
    line: String,
}

/// The key the seed's turnstile producer wrote: the event's time.
#[derive(Debug, Clone, Serialize, Deserialize, apache_avro::AvroSchema)]
#[avro(namespace = "com.udacity")]
struct TurnstileKey {
    timestamp: i64,
}

fn start() -> (EmbeddedBroker, EmbeddedRegistry, RegistryClient) {
    let broker = EmbeddedBroker::start().unwrap();
    let registry =
        EmbeddedRegistry::start(RegistryConfig::embedded(&broker).listen("127.0.0.1:0")).unwrap();
    let client = registry.client().unwrap();
    (broker, registry, client)
}

fn events() -> Vec<Turnstile> {
    [
        (40380, "Clark/Lake", "blue"),
        (41320, "Belmont", "red"),
        (40380, "Clark/Lake", "green"),
        (40380, "Clark/Lake", "blue"),
    ]
    .into_iter()
    .map(|(id, name, line)| Turnstile {
        station_id: id,
        station_name: name.into(),
        line: line.into(),
    })
    .collect()
}

#[test]
fn the_cta_statements_run_verbatim_over_avro_turnstile_events() {
    let (_broker, _registry, client) = start();
    let mut engine = Engine::offline().schema_registry(client.clone());
    engine
        .execute(
            "CREATE TABLE turnstile (station_id INT, station_name VARCHAR, line VARCHAR) WITH \
             (KAFKA_TOPIC='org.chicago.cta.turnstiles', VALUE_FORMAT='AVRO', KEY='station_id');",
        )
        .unwrap();
    engine
        .execute(
            "CREATE TABLE turnstile_summary WITH (VALUE_FORMAT='JSON') AS SELECT station_id, \
             COUNT(station_id) AS count FROM turnstile GROUP BY station_id;",
        )
        .unwrap();
    let driver = TopologyTestDriver::new(engine.topology().unwrap()).unwrap();
    // Keyed as the seed's producer keyed them: an Avro record holding the event's time (in
    // milliseconds, so the keys' bytes are not UTF-8).
    let input = driver.input_topic(
        "org.chicago.cta.turnstiles",
        Avro::<TurnstileKey>::registry(&client).key(),
        Avro::<Turnstile>::registry(&client),
    );
    let t0 = 1_600_000_000_000i64;
    for (i, e) in events().into_iter().enumerate() {
        let key = TurnstileKey {
            timestamp: t0 + i as i64 * 1_000,
        };
        input.pipe(key, e).unwrap();
    }
    // Not Avro: skipped by the SQL sources' log-and-continue handler.
    driver
        .input_topic(
            "org.chicago.cta.turnstiles",
            Serdes::string(),
            Serdes::string(),
        )
        .pipe("bad".into(), r#"{"station_id": 1}"#.into())
        .unwrap();

    let out = driver
        .output_topic("TURNSTILE_SUMMARY", Serdes::i32(), Serdes::string())
        .read_key_values();
    // As in KSQL 5, KEY='station_id' is a hint: the table keeps one row per message key (per
    // event here), so the summary counts every entry of each station.
    let last: std::collections::BTreeMap<i32, String> = out.into_iter().collect();
    assert_eq!(
        last,
        [
            (40380, r#"{"COUNT":3}"#.to_string()),
            (41320, r#"{"COUNT":1}"#.to_string())
        ]
        .into()
    );
    assert_eq!(driver.metrics().dropped_records("deserialization"), 1);
}

#[test]
fn create_as_select_writes_avro_with_a_schema_it_registers() {
    let (_broker, _registry, client) = start();
    let mut engine = Engine::offline().schema_registry(client.clone());
    engine
        .execute(
            "CREATE STREAM turnstile_events (station_id INT, station_name VARCHAR, line VARCHAR) \
             WITH (KAFKA_TOPIC='org.chicago.cta.turnstiles', VALUE_FORMAT='AVRO');
             CREATE STREAM blue_line WITH (KAFKA_TOPIC='blue-line', VALUE_FORMAT='AVRO') AS \
             SELECT station_id, station_name FROM turnstile_events WHERE line = 'blue';",
        )
        .unwrap();
    let driver = TopologyTestDriver::new(engine.topology().unwrap()).unwrap();
    let input = driver.input_topic(
        "org.chicago.cta.turnstiles",
        Serdes::string(),
        Avro::<Turnstile>::registry(&client),
    );
    for (i, e) in events().into_iter().enumerate() {
        input.pipe(format!("event-{i}"), e).unwrap();
    }

    let raw = driver
        .output_topic("blue-line", Serdes::unit(), Serdes::bytes())
        .read_values();
    assert_eq!(raw.len(), 2);
    let id = u32::from_be_bytes(raw[0][1..5].try_into().unwrap());
    let schema = client.schema_by_id(id).unwrap();
    assert_eq!(
        client.lookup("blue-line-value", &schema).unwrap(),
        id,
        "registered under the output topic's value subject"
    );
    let reader = AvroGeneric::new(&client, (*schema).clone());
    let row = reader.deserialize("blue-line", &raw[0]).unwrap();
    assert_eq!(
        row,
        AvroValue::Record(vec![
            (
                "STATION_ID".into(),
                AvroValue::Union(1, Box::new(AvroValue::Int(40380)))
            ),
            (
                "STATION_NAME".into(),
                AvroValue::Union(1, Box::new(AvroValue::String("Clark/Lake".into())))
            ),
        ])
    );
}

#[test]
fn an_avro_source_without_columns_takes_them_from_the_registered_schema() {
    let (_broker, _registry, client) = start();
    let mut engine = Engine::offline().schema_registry(client.clone());
    let err = engine
        .execute("CREATE STREAM events WITH (KAFKA_TOPIC='org.chicago.cta.turnstiles', VALUE_FORMAT='AVRO');")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no schema is registered under subject org.chicago.cta.turnstiles-value"),
        "{err}"
    );

    client
        .register(
            "org.chicago.cta.turnstiles-value",
            &<Turnstile as apache_avro::AvroSchema>::get_schema(),
        )
        .unwrap();
    engine
        .execute("CREATE STREAM events WITH (KAFKA_TOPIC='org.chicago.cta.turnstiles', VALUE_FORMAT='AVRO');")
        .unwrap();
    let results = engine.execute("DESCRIBE events;").unwrap();
    let streamkit::sql::StatementResult::Description { source, .. } = &results[0] else {
        panic!("{results:?}")
    };
    let columns: Vec<(String, String)> = source
        .value()
        .iter()
        .map(|c| (c.name.clone(), c.ty.to_string()))
        .collect();
    assert_eq!(
        columns,
        [
            ("STATION_ID".to_string(), "INTEGER".to_string()),
            ("STATION_NAME".to_string(), "VARCHAR(STRING)".to_string()),
            ("LINE".to_string(), "VARCHAR(STRING)".to_string()),
        ]
    );
}

/// A nested Avro record, as a producer nobody here wrote would register it.
#[derive(Debug, Clone, Serialize, Deserialize, apache_avro::AvroSchema)]
#[avro(namespace = "org.chicago.cta")]
struct Origin {
    station_id: i32,
    name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, apache_avro::AvroSchema)]
#[avro(namespace = "org.chicago.cta")]
struct Trip {
    rider: String,
    line: String,
    origin: Origin,
}

#[test]
fn nested_avro_records_are_struct_columns_read_with_arrows_and_written_back_as_records() {
    let (_broker, _registry, client) = start();
    client
        .register(
            "trips-value",
            &<Trip as apache_avro::AvroSchema>::get_schema(),
        )
        .unwrap();
    let mut engine = Engine::offline().schema_registry(client.clone());
    // Columns from the registered schema, the nested record a STRUCT.
    engine
        .execute("CREATE STREAM trips WITH (KAFKA_TOPIC='trips', VALUE_FORMAT='AVRO');")
        .unwrap();
    let results = engine.execute("DESCRIBE trips;").unwrap();
    let streamkit::sql::StatementResult::Description { source, .. } = &results[0] else {
        panic!("{results:?}")
    };
    assert_eq!(
        source
            .value()
            .last()
            .map(|c| (c.name.as_str(), c.ty.to_string())),
        Some((
            "ORIGIN",
            "STRUCT<`STATION_ID` INTEGER, `NAME` VARCHAR(STRING)>".to_string()
        ))
    );
    engine
        .execute(
            "CREATE STREAM blue_origins WITH (KAFKA_TOPIC='blue-origins', VALUE_FORMAT='AVRO') AS \
             SELECT rider, origin->name AS station, origin FROM trips \
             WHERE line = 'blue' AND origin->station_id > 40000;",
        )
        .unwrap();
    let driver = TopologyTestDriver::new(engine.topology().unwrap()).unwrap();
    let input = driver.input_topic("trips", Serdes::unit(), Avro::<Trip>::registry(&client));
    for (rider, line, id, name) in [
        ("r1", "blue", 40380, "Clark/Lake"),
        ("r2", "red", 41320, "Belmont"),
        ("r3", "blue", 30001, "Nowhere"),
    ] {
        let trip = Trip {
            rider: rider.into(),
            line: line.into(),
            origin: Origin {
                station_id: id,
                name: name.into(),
            },
        };
        input.pipe((), trip).unwrap();
    }

    let raw = driver
        .output_topic("blue-origins", Serdes::unit(), Serdes::bytes())
        .read_values();
    assert_eq!(raw.len(), 1);
    let id = u32::from_be_bytes(raw[0][1..5].try_into().unwrap());
    let schema = client.schema_by_id(id).unwrap();
    assert_eq!(client.lookup("blue-origins-value", &schema).unwrap(), id);
    let some = |v: AvroValue| AvroValue::Union(1, Box::new(v));
    let row = AvroGeneric::new(&client, (*schema).clone())
        .deserialize("blue-origins", &raw[0])
        .unwrap();
    assert_eq!(
        row,
        AvroValue::Record(vec![
            ("RIDER".into(), some(AvroValue::String("r1".into()))),
            (
                "STATION".into(),
                some(AvroValue::String("Clark/Lake".into()))
            ),
            (
                "ORIGIN".into(),
                some(AvroValue::Record(vec![
                    ("STATION_ID".into(), some(AvroValue::Int(40380))),
                    ("NAME".into(), some(AvroValue::String("Clark/Lake".into()))),
                ]))
            ),
        ])
    );
}
