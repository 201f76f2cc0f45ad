//! Malformed input on a real Kafka-protocol broker: dead-letter routing with origin headers,
//! log-and-continue counting, and fail stopping the instance with a clear error.

mod common;

use std::time::Duration;

use streamkit::error_policy::dead_letter_headers as h;
use streamkit::prelude::*;
use streamkit::testing::EmbeddedBroker;

#[derive(serde::Serialize, serde::Deserialize, Clone)]
struct Reading {
    station: u32,
    riders: u32,
}

fn topology(handler: DeserializationHandler) -> Topology {
    let b = StreamsBuilder::new();
    b.stream(
        "readings",
        Consumed::with(Serdes::string(), Serdes::json::<Reading>())
            .on_deserialization_error(handler),
    )
    .map_values(|r| r.riders as i64)
    .to("riders", Produced::with(Serdes::string(), Serdes::i64()));
    b.build().unwrap()
}

fn input() -> Vec<(String, Vec<u8>)> {
    (0..20)
        .map(|i| {
            let v = if i % 5 == 3 {
                format!("{{broken json {i}").into_bytes()
            } else {
                serde_json::to_vec(&Reading {
                    station: 40000 + i,
                    riders: i,
                })
                .unwrap()
            };
            (format!("s{i}"), v)
        })
        .collect()
}

fn config(broker: &EmbeddedBroker, app: &str) -> StreamsConfig {
    StreamsConfig::new(app)
        .embedded(broker)
        .commit_interval(Duration::from_millis(100))
}

#[test]
fn malformed_records_go_to_the_dead_letter_topic_with_their_origin() {
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("readings", 1).unwrap();
    broker.create_topic("riders", 1).unwrap();
    broker.create_topic("readings-dlq", 1).unwrap();
    let servers = broker.bootstrap_servers().to_string();
    common::produce(&servers, "readings", &input());

    let app = KafkaStreams::new(
        topology(DeserializationHandler::DeadLetter("readings-dlq".into())),
        config(&broker, "dlq-app"),
    )
    .unwrap();
    app.start().unwrap();
    let dead = common::read_until(&servers, "readings-dlq", Duration::from_secs(30), |rs| {
        rs.len() >= 4
    });
    let good = common::read_until(&servers, "riders", Duration::from_secs(30), |rs| {
        rs.len() >= 16
    });
    assert_eq!(good.len(), 16);
    assert_eq!(dead.len(), 4);
    for (d, i) in dead.iter().zip([3, 8, 13, 18]) {
        assert_eq!(
            d.value_str(),
            format!("{{broken json {i}"),
            "original bytes kept"
        );
        assert_eq!(d.key_str(), format!("s{i}"));
        assert_eq!(d.headers[h::TOPIC], "readings");
        assert_eq!(d.headers[h::PARTITION], "0");
        assert_eq!(d.headers[h::OFFSET], i.to_string());
        assert_eq!(d.headers[h::STAGE], "value");
        assert!(
            d.headers[h::ERROR].contains("json"),
            "{}",
            d.headers[h::ERROR]
        );
    }
    assert!(common::eventually(Duration::from_secs(10), || app
        .metrics()
        .dropped_records("deserialization")
        == 4));
    assert_eq!(app.metrics().dead_letter_records(), 4);
    app.close().unwrap();
}

#[test]
fn log_and_continue_skips_and_counts() {
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("readings", 1).unwrap();
    broker.create_topic("riders", 1).unwrap();
    let servers = broker.bootstrap_servers().to_string();
    common::produce(&servers, "readings", &input());
    let app = KafkaStreams::new(
        topology(DeserializationHandler::LogAndContinue),
        config(&broker, "skip-app"),
    )
    .unwrap();
    app.start().unwrap();
    let good = common::read_until(&servers, "riders", Duration::from_secs(30), |rs| {
        rs.len() >= 16
    });
    assert_eq!(good.len(), 16);
    assert!(common::eventually(Duration::from_secs(10), || app
        .metrics()
        .dropped_records("deserialization")
        == 4));
    assert!(common::eventually(Duration::from_secs(10), || app
        .metrics()
        .records_processed()
        == 20));
    app.close().unwrap();
}

#[test]
fn fail_stops_the_instance_naming_the_record() {
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("readings", 1).unwrap();
    broker.create_topic("riders", 1).unwrap();
    let servers = broker.bootstrap_servers().to_string();
    common::produce(&servers, "readings", &input());
    let app = KafkaStreams::new(
        topology(DeserializationHandler::Fail),
        config(&broker, "fail-app"),
    )
    .unwrap();
    app.start().unwrap();
    assert!(
        app.wait_for_state(StreamsState::Error, Duration::from_secs(30)),
        "state {:?}",
        app.state()
    );
    let err = app.error().unwrap();
    assert!(err.contains("readings[0]@3"), "{err}");
    // The three good records before the bad one were processed and their output delivered.
    let good = common::read_until(&servers, "riders", Duration::from_secs(10), |rs| {
        rs.len() >= 3
    });
    assert_eq!(good.len(), 3);
    assert!(app.close().is_err());
}
