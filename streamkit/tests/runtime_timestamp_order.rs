//! Timestamp-ordered processing across a task's input partitions on the embedded broker: the
//! records of a task's partitions are buffered and processed lowest timestamp first, so an
//! input whose records sit earlier in the consumer's delivery (produced first, or far ahead in
//! offsets) does not make the other input's records late or join against rows from its
//! future.

mod common;

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use streamkit::prelude::*;
use streamkit::testing::EmbeddedBroker;

const WAIT: Duration = Duration::from_secs(30);

/// Produces `(key, value, timestamp)` records and waits for the acknowledgements.
fn produce(broker: &EmbeddedBroker, topic: &str, records: &[(String, String, i64)]) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("partitioner", "murmur2_random")
        .create()
        .unwrap();
    for (k, v, ts) in records {
        let mut r = BaseRecord::<str, str>::to(topic)
            .key(k.as_str())
            .payload(v.as_str())
            .timestamp(*ts);
        loop {
            match p.send(r) {
                Ok(()) => break,
                Err((_, back)) => {
                    p.poll(Duration::from_millis(10));
                    r = back;
                }
            }
        }
    }
    p.flush(WAIT).unwrap();
}

fn config(app: &str, broker: &EmbeddedBroker, dir: &tempfile::TempDir) -> StreamsConfig {
    StreamsConfig::new(app)
        .embedded(broker)
        .state_dir(dir.path())
        .commit_interval(Duration::from_millis(200))
        // Small buffers: the inputs are paused and resumed on the way.
        .buffered_records_per_partition(50)
}

/// Clicks joined with the user row valid at each click's time, although every click was
/// produced before any row: the rows (lower timestamps) are processed first.
#[test]
fn a_stream_table_join_sees_the_rows_of_the_records_time() {
    common::init_logs();
    let broker = EmbeddedBroker::start().unwrap();
    for t in ["clicks", "users", "enriched"] {
        broker.create_topic(t, 1).unwrap();
    }
    // Clicks at 1000, 1010, …; user versions every 100 ms from 995: click i (time
    // 1000 + 10 i) must see version (10 i + 5) / 100 … i.e. the last row before it.
    let clicks: Vec<(String, String, i64)> = (0..200)
        .map(|i| ("u".to_string(), format!("c{i}"), 1000 + 10 * i))
        .collect();
    let users: Vec<(String, String, i64)> = (0..20)
        .map(|v| ("u".to_string(), format!("v{v}"), 995 + 100 * v))
        .collect();
    produce(&broker, "clicks", &clicks);
    produce(&broker, "users", &users);

    let b = StreamsBuilder::new();
    let table = b.table(
        "users",
        Consumed::with(Serdes::string(), Serdes::string()),
        Materialized::named("users").in_memory(),
    );
    b.stream("clicks", Consumed::with(Serdes::string(), Serdes::string()))
        .left_join_table(&table, |click, user| {
            format!("{click}={}", user.map_or("null", |u| u.as_str()))
        })
        .to(
            "enriched",
            Produced::with(Serdes::string(), Serdes::string()),
        );
    let dir = tempfile::tempdir().unwrap();
    let app =
        KafkaStreams::new(b.build().unwrap(), config("ts-order-table", &broker, &dir)).unwrap();
    app.start().unwrap();
    let out = common::read_until(broker.bootstrap_servers(), "enriched", WAIT, |r| {
        r.len() >= clicks.len()
    });
    app.close().unwrap();
    let got: Vec<String> = out.iter().map(|r| r.value_str().to_string()).collect();
    let expected: Vec<String> = (0..200i64)
        .map(|i| format!("c{i}=v{}", (10 * i + 5) / 100))
        .collect();
    assert_eq!(got, expected);
}

/// A stream-stream join whose left input is produced entirely before the right one: in
/// offsets the left side is far ahead, in time the two interleave. Processed in timestamp
/// order, every pair joins and no right record is dropped as late.
#[test]
fn a_stream_stream_join_drops_no_record_of_the_side_behind_in_offsets() {
    common::init_logs();
    let broker = EmbeddedBroker::start().unwrap();
    for t in ["orders", "payments", "paid"] {
        broker.create_topic(t, 1).unwrap();
    }
    let n = 300;
    let orders: Vec<(String, String, i64)> = (0..n)
        .map(|i| (format!("k{i}"), format!("o{i}"), 1000 + 10 * i))
        .collect();
    let payments: Vec<(String, String, i64)> = (0..n)
        .map(|i| (format!("k{i}"), format!("p{i}"), 1005 + 10 * i))
        .collect();
    produce(&broker, "orders", &orders);
    produce(&broker, "payments", &payments);

    let b = StreamsBuilder::new();
    let o = b.stream("orders", Consumed::with(Serdes::string(), Serdes::string()));
    let p = b.stream(
        "payments",
        Consumed::with(Serdes::string(), Serdes::string()),
    );
    o.join(
        &p,
        |o: &String, p: &String| format!("{o}-{p}"),
        // No grace: a record older than stream time minus the window is dropped.
        JoinWindows::of(Duration::from_millis(20)),
        StreamJoined::with(Serdes::string(), Serdes::string(), Serdes::string())
            .named("order-payments")
            .in_memory(),
    )
    .to("paid", Produced::with(Serdes::string(), Serdes::string()));
    let dir = tempfile::tempdir().unwrap();
    let app =
        KafkaStreams::new(b.build().unwrap(), config("ts-order-join", &broker, &dir)).unwrap();
    app.start().unwrap();
    let out = common::read_until(broker.bootstrap_servers(), "paid", WAIT, |r| {
        r.len() >= n as usize
    });
    // Give a wrong extra output a moment to show up.
    let extra = common::read_until(
        broker.bootstrap_servers(),
        "paid",
        Duration::from_millis(500),
        |r| r.len() > n as usize,
    );
    app.close().unwrap();
    let mut got: Vec<String> = out.iter().map(|r| r.value_str().to_string()).collect();
    got.sort();
    let mut expected: Vec<String> = (0..n).map(|i| format!("o{i}-p{i}")).collect();
    expected.sort();
    assert_eq!(got, expected);
    assert_eq!(extra.len(), n as usize, "unexpected extra join results");
}

/// Buffered records of a two-input task keep the deserialization handling they had: a value
/// that cannot be decoded goes to the dead-letter topic with its origin, in its time order
/// among the merged inputs, and the others go on. A custom timestamp extractor orders them.
#[test]
fn merged_inputs_are_ordered_by_extracted_time_and_bad_records_keep_their_origin() {
    use streamkit::error_policy::dead_letter_headers as h;
    common::init_logs();
    let broker = EmbeddedBroker::start().unwrap();
    for t in ["east", "west", "merged", "bad"] {
        broker.create_topic(t, 1).unwrap();
    }
    // The event time is in the value; the Kafka timestamps say the opposite order.
    let east: Vec<(String, String, i64)> = [10, 30, 50]
        .iter()
        .map(|t| ("e".to_string(), t.to_string(), 1000 - t))
        .collect();
    let mut west: Vec<(String, String, i64)> = [20, 40]
        .iter()
        .map(|t| ("w".to_string(), t.to_string(), 1000 - t))
        .collect();
    // Undecodable: ordered by its Kafka timestamp, between 30 and 40.
    west.insert(1, ("w".to_string(), "not a number".to_string(), 35));
    produce(&broker, "east", &east);
    produce(&broker, "west", &west);

    let b = StreamsBuilder::new();
    let consumed = || {
        Consumed::with(Serdes::string(), Serdes::json::<i64>())
            .with_timestamp_extractor(|_k: &String, v: &i64, _ts| *v)
            .on_deserialization_error(DeserializationHandler::DeadLetter("bad".into()))
    };
    b.stream("east", consumed())
        .merge(&b.stream("west", consumed()))
        .map_values(|v: i64| v.to_string())
        .to("merged", Produced::with(Serdes::string(), Serdes::string()));
    let dir = tempfile::tempdir().unwrap();
    let app =
        KafkaStreams::new(b.build().unwrap(), config("ts-order-merge", &broker, &dir)).unwrap();
    app.start().unwrap();
    let out = common::read_until(broker.bootstrap_servers(), "merged", WAIT, |r| r.len() >= 5);
    let bad = common::read_until(broker.bootstrap_servers(), "bad", WAIT, |r| !r.is_empty());
    app.close().unwrap();
    let got: Vec<&str> = out.iter().map(|r| r.value_str()).collect();
    assert_eq!(got, ["10", "20", "30", "40", "50"]);
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].value_str(), "not a number");
    assert_eq!(bad[0].headers[h::TOPIC], "west");
    assert_eq!(bad[0].headers[h::OFFSET], "1");
    assert_eq!(bad[0].headers[h::STAGE], "value");
}
