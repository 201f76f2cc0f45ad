//! A scrape of `/metrics` after N good, M malformed, L late records and one whose processing
//! fails: the counters equal what was processed and dropped, and librdkafka statistics arrive
//! as gauges.

mod common;
#[path = "common/http.rs"]
mod http;

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use streamkit::error_policy::ProcessingErrorHandler;
use streamkit::prelude::*;
use streamkit::testing::EmbeddedBroker;
use streamkit::window::TimeWindows;

const GOOD: i64 = 40;
const MALFORMED: usize = 7;
const LATE: usize = 5;
/// Event time of the first record, a multiple of the window size.
const T: i64 = 1_000_000;

/// The reading that makes processing fail.
const UNLUCKY: i64 = 13;

/// Fails on [`UNLUCKY`], passes everything else on.
struct Picky;

impl Processor<String, i64> for Picky {
    type KOut = String;
    type VOut = i64;
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, i64>,
        r: Record<String, i64>,
    ) -> Result<()> {
        if r.value == UNLUCKY {
            return Err(Error::custom("unlucky reading"));
        }
        ctx.forward(r)
    }
}

fn topology() -> Topology {
    let b = StreamsBuilder::new();
    let valid = b
        .stream(
            "readings",
            Consumed::with(Serdes::string(), Serdes::i64())
                .on_deserialization_error(DeserializationHandler::LogAndContinue),
        )
        .filter(|_, v| *v >= 0)
        .named("valid");
    // The first child: when it fails on a record, the aggregation never sees the record.
    valid.process(|| Picky);
    valid
        .group_by_key(Grouped::with(Serdes::string(), Serdes::i64()))
        .windowed_by(TimeWindows::tumbling(Duration::from_secs(10)))
        .count(Materialized::named("readings-per-10s").in_memory());
    b.build().unwrap()
}

#[test]
fn scraped_counters_match_records_processed_and_dropped() {
    common::init_logs();
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("readings", 1).unwrap();
    let servers = broker.bootstrap_servers().to_string();
    let dir = tempfile::tempdir().unwrap();
    let config = StreamsConfig::new("metrics-app")
        .embedded(&broker)
        .state_dir(dir.path())
        .commit_interval(Duration::from_millis(100))
        .set("consumer.statistics.interval.ms", "200")
        .set("producer.statistics.interval.ms", "200")
        .processing_error_handler(ProcessingErrorHandler::LogAndContinue)
        .query_server("127.0.0.1:0");
    let app = KafkaStreams::new(topology(), config).unwrap();
    app.start().unwrap();
    assert!(app.wait_for_state(StreamsState::Running, Duration::from_secs(30)));
    let addr = app.query_server_addr().unwrap().to_string();

    // One partition, so stream time is exact: good records at T + 0 s … T + 39 s, then
    // malformed ones, then records for the window [T, T + 10 s), closed by then (grace 0).
    // (T > 0: librdkafka stamps a record produced with timestamp 0 with the current time.)
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &servers)
        .create()
        .unwrap();
    let send = |value: &[u8], ts: i64| {
        p.send(
            BaseRecord::to("readings")
                .key("sensor")
                .payload(value)
                .timestamp(ts),
        )
        .unwrap();
    };
    for i in 0..GOOD {
        send(&i.to_be_bytes(), T + i * 1000);
    }
    for _ in 0..MALFORMED {
        send(b"bad", T + (GOOD - 1) * 1000);
    }
    for _ in 0..LATE {
        send(&1i64.to_be_bytes(), T + 500);
    }
    p.flush(Duration::from_secs(10)).unwrap();

    let total = GOOD as usize + MALFORMED + LATE;
    let mut scrape = String::new();
    let done = common::eventually(Duration::from_secs(30), || {
        scrape = http::get(&addr, "/metrics", None).body;
        http::metric_sum(&scrape, "streamkit_records_processed_total", &[]) as usize >= total
            && http::metric_sum(&scrape, "streamkit_consumer_lag", &[("topic", "readings")]) == 0.0
            && scrape.contains("streamkit_consumer_lag{")
    });
    assert!(done, "{scrape}");
    let sum =
        |name: &str, labels: &[(&str, &str)]| http::metric_sum(&scrape, name, labels) as usize;
    assert_eq!(sum("streamkit_records_processed_total", &[]), total);
    // The one task times its first record and then one in 16.
    assert_eq!(
        sum("streamkit_process_latency_seconds_count", &[]),
        total.div_ceil(16)
    );
    assert_eq!(
        sum(
            "streamkit_dropped_records_total",
            &[("reason", "deserialization")]
        ),
        MALFORMED
    );
    assert_eq!(
        sum("streamkit_dropped_records_total", &[("reason", "late")]),
        LATE
    );
    assert_eq!(
        sum("streamkit_dropped_records_total", &[("reason", "error")]),
        1
    );
    // The filter saw every record that decoded; all passed it.
    assert_eq!(
        sum(
            "streamkit_processor_records_total",
            &[("processor", "valid")]
        ),
        GOOD as usize + LATE
    );
    // The failed record left no trace in the window it fell in: 10 readings, 9 counted.
    let w = http::get(
        &addr,
        &format!(
            "/stores/readings-per-10s/sensor?from={0}&to={0}",
            T + 10_000
        ),
        None,
    )
    .json();
    assert_eq!(w["windows"][0]["value"], 9, "{w}");
    // One key, windows of 10 s over 0 … 39 s: four windows in the store.
    assert_eq!(
        sum("streamkit_store_entries", &[("store", "readings-per-10s")]),
        4
    );
    assert!(
        scrape.contains("streamkit_kafka_broker_rtt_seconds{"),
        "{scrape}"
    );
    assert!(
        scrape.contains("streamkit_rocksdb_memory_bytes{"),
        "{scrape}"
    );
    assert!(
        scrape.contains("streamkit_commit_latency_seconds_count{"),
        "{scrape}"
    );
    // The in-process API agrees with the scrape.
    assert_eq!(app.metrics().records_processed() as usize, total);
    assert_eq!(app.metrics().dropped_records("late") as usize, LATE);
    app.close().unwrap();
}
