//! Helpers shared by the integration tests: produce to and read from an embedded broker.
#![allow(dead_code)]

pub mod broker_faults;
pub mod kafka;
pub mod postgres;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

/// A record read back from a topic.
#[derive(Debug, Clone)]
pub struct Read {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub partition: i32,
    pub offset: i64,
    /// The record's timestamp, if it has one.
    pub timestamp: Option<i64>,
    /// Header values by name (a null value reads as empty).
    pub headers: HashMap<String, String>,
    /// The headers as they came, in order (`None`: a null value).
    pub header_list: Vec<(String, Option<Vec<u8>>)>,
}

impl Read {
    pub fn value_str(&self) -> &str {
        std::str::from_utf8(self.value.as_deref().unwrap_or_default()).unwrap()
    }
    pub fn key_str(&self) -> &str {
        std::str::from_utf8(self.key.as_deref().unwrap_or_default()).unwrap()
    }
}

pub fn producer(bootstrap: &str) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .create()
        .expect("producer")
}

/// Produces (key, value) pairs and waits for every acknowledgement.
pub fn produce(bootstrap: &str, topic: &str, records: &[(String, Vec<u8>)]) {
    let p = producer(bootstrap);
    for (k, v) in records {
        let mut r = BaseRecord::to(topic)
            .key(k.as_bytes())
            .payload(v.as_slice());
        loop {
            match p.send(r) {
                Ok(()) => break,
                Err((_, back)) => {
                    p.poll(Duration::from_millis(10));
                    r = back;
                }
            }
        }
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(30)).expect("flush");
}

/// Reads `topic` from the beginning until `done(records so far)` or the timeout.
pub fn read_until(
    bootstrap: &str,
    topic: &str,
    timeout: Duration,
    mut done: impl FnMut(&[Read]) -> bool,
) -> Vec<Read> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("reader-{topic}-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    // Assign every partition rather than join a group: no rebalance to wait for.
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in md.topics()[0].partitions() {
        tpl.add_partition_offset(topic, p.id(), rdkafka::Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while Instant::now() < deadline && !done(&out) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let header_list: Vec<(String, Option<Vec<u8>>)> = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default();
            let headers = header_list
                .iter()
                .map(|(k, v)| {
                    let v = String::from_utf8_lossy(v.as_deref().unwrap_or_default());
                    (k.clone(), v.into_owned())
                })
                .collect();
            out.push(Read {
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
                partition: m.partition(),
                offset: m.offset(),
                timestamp: m.timestamp().to_millis(),
                headers,
                header_list,
            });
        }
    }
    out
}

/// Polls `cond` every 20 ms until true or the timeout; returns its last value.
pub fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// Sends streamkit's logs to the test output (shown for failing tests); `RUST_LOG` filters.
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "streamkit=info".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Waits until every instance has been `Running` without a break for `hold`: the group is
/// stable. (The embedded broker refuses offset commits while a rebalance is joining, so
/// progress committed in a revocation callback can be lost there; tests that count exactly
/// start producing once the group has settled.)
pub fn wait_stable(apps: &[&streamkit::KafkaStreams], hold: Duration, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut since: Option<Instant> = None;
    while Instant::now() < deadline {
        if apps
            .iter()
            .all(|a| a.state() == streamkit::runtime::State::Running)
        {
            let s = *since.get_or_insert_with(Instant::now);
            if s.elapsed() >= hold {
                return true;
            }
        } else {
            since = None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The offsets `group` has committed on `topic`'s `partitions`, summed (a partition without a
/// commit counts 0).
pub fn committed_total(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let Ok(committed) = consumer.committed_offsets(tpl, Duration::from_secs(5)) else {
        return 0;
    };
    committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            rdkafka::Offset::Offset(o) => Some(o),
            _ => None,
        })
        .sum()
}

/// Waits until `group` has committed `n` records of `topic` in all (at-least-once: only
/// committed progress survives a rebalance that the embedded broker refuses commits in).
pub fn wait_committed(bootstrap: &str, group: &str, topic: &str, partitions: i32, n: i64) {
    let mut last = 0;
    assert!(
        eventually(Duration::from_secs(60), || {
            last = committed_total(bootstrap, group, topic, partitions);
            last >= n
        }),
        "{group} committed {last} of {n} records of {topic}"
    );
}

/// How many records `topic` holds: the sum of its partitions' end offsets.
pub fn record_count(bootstrap: &str, topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("consumer");
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    md.topics()[0]
        .partitions()
        .iter()
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                .expect("watermarks")
                .1
        })
        .sum()
}

/// Every record `topic` holds now (it must not be written to meanwhile): reads until as many
/// as its end offsets count, or the timeout.
pub fn read_all(bootstrap: &str, topic: &str, timeout: Duration) -> Vec<Read> {
    let total = record_count(bootstrap, topic);
    read_until(bootstrap, topic, timeout, |rs| rs.len() as i64 >= total)
}
