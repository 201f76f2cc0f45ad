//! Record headers through a real Kafka-protocol broker: every input record's headers reach
//! its output, and records without headers gain none — whatever the value (empty, long) and
//! however many headers (a count of 64 or more takes two varint bytes).

mod common;

use std::time::Duration;

use rdkafka::message::{Header, Headers as _, Message, OwnedHeaders};
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

    // Read the output with its headers in order (the common reader keeps them in a map).
    let consumer: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &servers)
        .set("group.id", "headers-reader")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset("out", 0, rdkafka::Offset::Beginning)
        .unwrap();
    rdkafka::consumer::Consumer::assign(&consumer, &tpl).unwrap();
    let mut out: Vec<Input> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while out.len() < inputs.len() && std::time::Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            let headers = m
                .headers()
                .map(|hs| {
                    hs.iter()
                        .map(|h| {
                            (
                                h.key.to_string(),
                                h.value.map(|v| String::from_utf8(v.to_vec()).unwrap()),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let value = String::from_utf8(m.payload().unwrap_or_default().to_vec()).unwrap();
            out.push((value, headers));
        }
    }
    app.close().unwrap();
    assert_eq!(out, inputs);
}
