//! A stateful application on the embedded broker through broker faults, one after the other:
//! added round-trip time, request errors on Fetch, OffsetCommit and Produce, and the broker
//! taken down and brought back. After each fault the records produced meanwhile are processed
//! and committed within [`STALL_BOUND`]; at the end no record is lost, each bucket's count is
//! exactly the number of records passed on to it (a record processed again is counted again,
//! at least once), and each fault shows in the instance's metrics.

mod common;
#[path = "common/http.rs"]
mod http;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use streamkit::prelude::*;
use streamkit::testing::EmbeddedBroker;

const APP: &str = "broker-faults";
const REPARTITION: &str = "broker-faults-by-bucket-repartition";
const PARTITIONS: i32 = 4;
const BUCKETS: u64 = 7;
/// How long the records produced around a fault may take, from the fault's end, to be
/// processed through both sub-topologies and committed: a thread that stalls on a fault (or
/// waits out a long reconnect backoff) fails the test.
const STALL_BOUND: Duration = Duration::from_secs(30);
/// How long the broker stays down: longer than the members' session timeout (6 s on the
/// embedded broker), so the group expels the thread's consumer and its partitions are lost,
/// not just unreachable.
const OUTAGE: Duration = Duration::from_secs(8);
const BATCH: u64 = 500;
const PRODUCER: &str = "broker-faults-StreamThread-1-producer";
const CONSUMER: &str = "broker-faults-StreamThread-1-consumer";

/// Holds the stream thread inside a record while closed, so that the test knows no Produce
/// request of the application is in flight and the next ones carry that record's output.
#[derive(Default)]
struct Gate {
    closed: AtomicBool,
    holding: AtomicBool,
}

/// Orders → (gate) → re-keyed to a bucket → repartition topic → passed on to `orders-seen` and
/// counted per bucket (a RocksDB store with a changelog) → `bucket-counts`.
fn topology(gate: Arc<Gate>) -> Topology {
    let b = StreamsBuilder::new();
    let by_bucket = b
        .stream("orders", Consumed::with(Serdes::string(), Serdes::string()))
        .map_values(move |v: String| {
            while gate.closed.load(Ordering::Acquire) {
                gate.holding.store(true, Ordering::Release);
                std::thread::sleep(Duration::from_millis(10));
            }
            v
        })
        .select_key(|_, v: &String| format!("bucket-{}", v.parse::<u64>().unwrap() % BUCKETS))
        .repartition(Repartitioned::with(Serdes::string(), Serdes::string()).named("by-bucket"));
    by_bucket.to(
        "orders-seen",
        Produced::with(Serdes::string(), Serdes::string()),
    );
    by_bucket
        .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
        .count(Materialized::named("per-bucket"))
        .to_stream()
        .to(
            "bucket-counts",
            Produced::with(Serdes::string(), Serdes::i64()),
        );
    b.build().unwrap()
}

/// Whether every one of the first `produced` orders is processed through both sub-topologies
/// and committed: the input offsets, and the repartition topic's to its end. Asks only for
/// metadata, end offsets and committed offsets, so that the test's own requests do not take
/// the errors meant for the application's Fetch, OffsetCommit and Produce requests.
fn caught_up(servers: &str, produced: u64) -> bool {
    if common::committed_total(servers, APP, "orders", PARTITIONS) != produced as i64 {
        return false;
    }
    let shuffled = common::record_count(servers, REPARTITION);
    shuffled >= produced as i64
        && common::committed_total(servers, APP, REPARTITION, PARTITIONS) == shuffled
}

fn scrape(app: &KafkaStreams) -> String {
    app.metrics().encode_text()
}

/// The error counters of a scrape that are not zero.
fn error_lines(scrape: &str) -> String {
    scrape
        .lines()
        .filter(|l| {
            (l.starts_with("streamkit_kafka_errors_total")
                || l.starts_with("streamkit_kafka_broker_errors_total"))
                && !l.ends_with(" 0")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn request_errors_an_outage_and_added_latency_lose_nothing_and_show_in_metrics() {
    common::init_logs();
    let broker = EmbeddedBroker::start().unwrap();
    for topic in ["orders", "orders-seen", "bucket-counts"] {
        broker.create_topic(topic, PARTITIONS).unwrap();
    }
    let servers = broker.bootstrap_servers().to_string();
    let dir = tempfile::tempdir().unwrap();
    let gate = Arc::new(Gate::default());
    let app = KafkaStreams::new(
        topology(gate.clone()),
        StreamsConfig::new(APP)
            .embedded(&broker)
            .state_dir(dir.path())
            .commit_interval(Duration::from_millis(200))
            // Statistics feed the broker fault counters: often, so the test need not wait.
            .set("statistics.interval.ms", "500")
            .close_timeout(Duration::from_secs(60)),
    )
    .unwrap();
    app.start().unwrap();
    assert!(
        app.wait_for_state(StreamsState::Running, Duration::from_secs(60)),
        "{:?} {:?}",
        app.state(),
        app.error()
    );

    let mut produced = 0;
    let mut send = |n: u64| {
        let batch: Vec<(String, Vec<u8>)> = (produced..produced + n)
            .map(|i| (format!("order-{i}"), i.to_string().into_bytes()))
            .collect();
        common::produce(&servers, "orders", &batch);
        produced += n;
        produced
    };
    let mut times: Vec<(&str, Duration)> = Vec::new();
    let mut recovered = |fault: &'static str, produced: u64, since: Instant| {
        let ok = common::eventually(STALL_BOUND, || caught_up(&servers, produced));
        assert!(
            ok,
            "{fault}: the {produced} orders were not processed and committed within \
             {STALL_BOUND:?} of the fault's end: {:?} {:?}",
            app.state(),
            app.error()
        );
        assert_ne!(app.state(), StreamsState::Error, "{:?}", app.error());
        times.push((fault, since.elapsed()));
    };

    let total = send(BATCH);
    recovered("no fault", total, Instant::now());

    // Every response delayed by 250 ms while a batch goes through.
    broker
        .set_round_trip_time(-1, Duration::from_millis(250))
        .unwrap();
    let started = Instant::now();
    let total = send(BATCH);
    recovered("250 ms round-trip time", total, started);
    let rtt = || {
        http::metric_sum(
            &scrape(&app),
            "streamkit_kafka_broker_rtt_seconds",
            &[("client", CONSUMER)],
        )
    };
    assert!(
        common::eventually(Duration::from_secs(10), || rtt() >= 0.25),
        "the added round-trip time is not in the metrics: {}",
        rtt()
    );
    broker.set_round_trip_time(-1, Duration::ZERO).unwrap();

    // Fetch: errors librdkafka handles itself (a leader moved, a broker's disk failed) and
    // one it passes on to the application (the broker's catch-all UNKNOWN_SERVER_ERROR).
    let total = send(BATCH);
    broker
        .fail_next_requests(
            RDKafkaApiKey::Fetch,
            &[
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN,
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR,
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN,
            ],
        )
        .unwrap();
    recovered("Fetch errors", total, Instant::now());
    let fetch_errors = http::metric_sum(
        &scrape(&app),
        "streamkit_kafka_errors_total",
        &[
            ("client", CONSUMER),
            ("operation", "consume"),
            ("error", "Unknown"),
        ],
    );
    assert!(fetch_errors >= 1.0, "the failed fetches are not counted");

    // OffsetCommit: two errors librdkafka retries (the coordinator loading, a timeout), then
    // one it returns (a rebalance in progress), which the thread defers to its next commit.
    let total = send(BATCH);
    broker
        .fail_next_requests(
            RDKafkaApiKey::OffsetCommit,
            &[
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS,
            ],
        )
        .unwrap();
    recovered("OffsetCommit errors", total, Instant::now());
    let text = scrape(&app);
    let commit_errors = http::metric_sum(
        &text,
        "streamkit_kafka_errors_total",
        &[
            ("client", CONSUMER),
            ("operation", "commit"),
            ("error", "RebalanceInProgress"),
        ],
    );
    assert!(commit_errors >= 1.0, "the refused commit is not counted");
    let retried = || {
        http::metric_sum(
            &scrape(&app),
            "streamkit_kafka_broker_errors_total",
            &[("client", CONSUMER), ("kind", "request_retry")],
        )
    };
    assert!(
        common::eventually(Duration::from_secs(10), || retried() >= 2.0),
        "the retried commits are not counted:\n{}",
        error_lines(&scrape(&app))
    );

    // Produce: the thread is held inside a record of the next batch, so that the errors go to
    // its producer's requests (and not to the test's): a leader moved, the connection closed
    // mid-request, a timeout and a failed disk; librdkafka retries each.
    gate.closed.store(true, Ordering::Release);
    let total = send(BATCH);
    assert!(
        common::eventually(Duration::from_secs(30), || gate
            .holding
            .load(Ordering::Acquire)),
        "the thread never reached the gate"
    );
    let disconnects = || {
        http::metric_sum(
            &scrape(&app),
            "streamkit_kafka_broker_errors_total",
            &[("client", PRODUCER), ("kind", "disconnect")],
        )
    };
    let disconnects_before = disconnects();
    broker
        .fail_next_requests(
            RDKafkaApiKey::Produce,
            &[
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                RDKafkaRespErr::RD_KAFKA_RESP_ERR__TRANSPORT,
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR,
            ],
        )
        .unwrap();
    gate.closed.store(false, Ordering::Release);
    recovered("Produce errors", total, Instant::now());
    assert!(
        common::eventually(Duration::from_secs(10), || disconnects()
            > disconnects_before),
        "the connection closed mid-Produce is not counted"
    );

    // The broker down for OUTAGE while a batch is being processed, then back: the thread's
    // assignment is lost, its commits refused, and it rejoins.
    let total = send(BATCH);
    broker.broker_down(1).unwrap();
    // Nothing to wait for: the outage lasts OUTAGE.
    std::thread::sleep(OUTAGE);
    broker.broker_up(1).unwrap();
    recovered("broker down 8 s", total, Instant::now());
    let unreachable = http::metric_sum(
        &scrape(&app),
        "streamkit_kafka_errors_total",
        &[("client", CONSUMER), ("operation", "consume")],
    );
    assert!(unreachable > fetch_errors, "the outage is not counted");

    let text = scrape(&app);
    app.close().unwrap();

    // No order lost; each bucket counted exactly the records passed on to it.
    let seen = common::read_all(&servers, "orders-seen", Duration::from_secs(60));
    let mut times_seen: HashMap<u64, usize> = HashMap::new();
    let mut per_bucket: HashMap<String, i64> = HashMap::new();
    for r in &seen {
        let n: u64 = r.value_str().parse().unwrap();
        assert_eq!(r.key_str(), format!("bucket-{}", n % BUCKETS));
        *times_seen.entry(n).or_default() += 1;
        *per_bucket.entry(r.key_str().to_string()).or_default() += 1;
    }
    let mut lost: Vec<u64> = (0..produced)
        .filter(|n| !times_seen.contains_key(n))
        .collect();
    lost.sort_unstable();
    assert!(
        lost.is_empty(),
        "{} orders lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    let mut last: HashMap<String, i64> = HashMap::new();
    for r in common::read_all(&servers, "bucket-counts", Duration::from_secs(60)) {
        let v = i64::from_be_bytes(r.value.as_deref().unwrap().try_into().unwrap());
        last.insert(r.key_str().to_string(), v);
    }
    assert_eq!(
        last, per_bucket,
        "each bucket's count is the number of records passed on to it"
    );
    let duplicates = seen.len() as u64 - produced;
    println!(
        "{produced} orders, {duplicates} passed on again; recovered after each fault in \
         {times:?}; errors counted:\n{}",
        error_lines(&text)
    );
}
