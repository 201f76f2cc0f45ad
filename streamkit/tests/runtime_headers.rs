//! Record headers through a real Kafka-protocol broker: every input record's headers reach
//! its output, and records without headers gain none — whatever the value (empty, long) and
//! however many headers (a count of 64 or more takes two varint bytes).

mod common;

use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer};
use streamkit::prelude::*;
use streamkit::testing::EmbeddedBroker;

/// (value, headers as (name, value) pairs; `None` = a null header value).
type Input = (String, Vec<(String, Option<String>)>);

fn inputs() -> Vec<Input> {
    let h = |n: usize| -> Vec<(String, Option<String>)> {
        (0..n)
            .map(|i| (format!("h{i}"), Some(format!("v{i}"))))
            .collect()
    };
    vec![
        ("plain".into(), vec![]),
        ("one".into(), h(1)),
        (String::new(), h(2)),
        (String::new(), vec![]),
        ("x".repeat(300), h(3)),
        ("many".into(), h(70)),
        ("null header".into(), vec![("n".into(), None)]),
        ("plain again".into(), vec![]),
    ]
}

#[test]
fn headers_reach_the_output_exactly_as_they_came_in() {
    common::init_logs();
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("in", 1).unwrap();
    broker.create_topic("out", 1).unwrap();
    let servers = broker.bootstrap_servers().to_string();

    let inputs = inputs();
    let p = common::producer(&servers);
    for (i, (value, headers)) in inputs.iter().enumerate() {
        let key = format!("k{i}");
        let mut r = BaseRecord::to("in")
            .key(key.as_str())
            .payload(value.as_str());
        if !headers.is_empty() {
            let mut hs = OwnedHeaders::new();
            for (name, v) in headers {
                hs = hs.insert(Header {
                    key: name,
                    value: v.as_deref(),
                });
            }
            r = r.headers(hs);
        }
        p.send(r).map_err(|(e, _)| e).unwrap();
    }
    p.flush(Duration::from_secs(30)).unwrap();

    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
        .map_values(|v| v)
        .to("out", Produced::with(Serdes::string(), Serdes::string()));
    let app = KafkaStreams::new(
        b.build().unwrap(),
        StreamsConfig::new("headers-app")
            .embedded(&broker)
            .commit_interval(Duration::from_millis(100)),
    )
    .unwrap();
    app.start().unwrap();

    let out: Vec<Input> = common::read_until(&servers, "out", Duration::from_secs(30), |r| {
        r.len() >= inputs.len()
    })
    .into_iter()
    .map(|r| {
        let headers = r
            .header_list
            .into_iter()
            .map(|(k, v)| (k, v.map(|v| String::from_utf8(v).unwrap())))
            .collect();
        (
            String::from_utf8(r.value.unwrap_or_default()).unwrap(),
            headers,
        )
    })
    .collect();
    app.close().unwrap();
    assert_eq!(out, inputs);
}
