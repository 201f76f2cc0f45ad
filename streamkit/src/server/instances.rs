//! Which instance holds which store partitions: every instance publishes its
//! `application_server` and the partitions of each store it has open to the compacted topic
//! `<application-id>-instances` (one partition, keyed by `application_server`), and reads
//! everyone's entries back.
//!
//! librdkafka has no pluggable assignor, so Kafka Streams' way (host info in the assignment
//! userdata) is not available; a compacted topic works on any Kafka-protocol broker, the
//! embedded one included. An instance publishes when its set of open stores changes (a
//! rebalance moved tasks) and every [`HEARTBEAT`]; it writes a tombstone when it closes.
//! Between a rebalance and the next publication two instances may claim a partition: the
//! claim made most recently (`assigned_ms`) wins, and an entry whose heartbeat is older than
//! [`STALE_AFTER`] (a crashed instance) is ignored.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::{ServerContext, StateFn};
use crate::config::StreamsConfig;
use crate::error::Result;
use crate::runtime::admin::{base_client_config, create_topics, topic_partitions};
use crate::state::store::StoreRegistry;

/// How often an instance re-publishes its entry.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(2);
/// An entry not refreshed for this long is ignored.
pub(crate) const STALE_AFTER: Duration = Duration::from_secs(20);
/// How far ahead of this machine's clock an entry's times may be (clock skew between
/// machines); an entry further in the future is refused, or it would win every claim (the
/// most recent `assigned_ms` wins) and never go stale.
pub(crate) const MAX_CLOCK_SKEW: Duration = Duration::from_secs(30);
/// How often the directory thread checks for a changed assignment.
const TICK: Duration = Duration::from_millis(100);

/// One instance's entry in `<application-id>-instances`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct InstanceInfo {
    pub application_server: String,
    /// Store name → partitions held.
    pub stores: BTreeMap<String, Vec<i32>>,
    /// When the instance's assignment last changed (ms since the epoch).
    pub assigned_ms: i64,
    /// When the entry was last published.
    pub heartbeat_ms: i64,
    /// The instance's state (`Running`, `Rebalancing`, …).
    pub state: String,
}

/// The instances of an application as this instance last read them.
pub(crate) struct Directory {
    topic: String,
    endpoint: String,
    entries: Mutex<HashMap<String, InstanceInfo>>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Directory {
    pub fn new(app_id: &str, endpoint: &str) -> Self {
        Directory {
            topic: format!("{app_id}-instances"),
            endpoint: endpoint.to_string(),
            entries: Mutex::default(),
        }
    }

    fn apply(&self, key: &str, value: Option<&[u8]>) {
        let mut entries = self.entries.lock().expect("directory lock");
        match value.map(serde_json::from_slice::<InstanceInfo>) {
            None => {
                entries.remove(key);
            }
            Some(Ok(info)) => {
                let latest = now_ms() + MAX_CLOCK_SKEW.as_millis() as i64;
                if info.application_server != key {
                    tracing::warn!(topic = %self.topic, %key, claimed = %info.application_server,
                        "ignoring an instance entry whose key is not the endpoint it names");
                } else if info.heartbeat_ms > latest || info.assigned_ms > latest {
                    tracing::warn!(topic = %self.topic, %key, heartbeat_ms = info.heartbeat_ms,
                        assigned_ms = info.assigned_ms,
                        "ignoring an instance entry dated in the future (beyond the allowed clock skew)");
                } else {
                    entries.insert(key.to_string(), info);
                }
            }
            Some(Err(e)) => {
                tracing::warn!(topic = %self.topic, %key, error = %e, "ignoring unreadable instance entry")
            }
        }
    }

    /// The other instance that holds partition `partition` of `store`, if one does.
    pub fn owner(&self, store: &str, partition: i32) -> Option<String> {
        let fresh_after = now_ms() - STALE_AFTER.as_millis() as i64;
        self.entries
            .lock()
            .expect("directory lock")
            .values()
            .filter(|i| i.application_server != self.endpoint && i.heartbeat_ms >= fresh_after)
            .filter(|i| i.stores.get(store).is_some_and(|p| p.contains(&partition)))
            .max_by_key(|i| i.assigned_ms)
            .map(|i| i.application_server.clone())
    }

    /// The `application_server` of every other instance whose entry is fresh.
    pub fn live_others(&self) -> Vec<String> {
        let fresh_after = now_ms() - STALE_AFTER.as_millis() as i64;
        let mut v: Vec<String> = self
            .entries
            .lock()
            .expect("directory lock")
            .values()
            .filter(|i| i.application_server != self.endpoint && i.heartbeat_ms >= fresh_after)
            .map(|i| i.application_server.clone())
            .collect();
        v.sort();
        v
    }

    /// Every known entry, this instance's included.
    pub fn all(&self) -> Vec<InstanceInfo> {
        let mut v: Vec<_> = self
            .entries
            .lock()
            .expect("directory lock")
            .values()
            .cloned()
            .collect();
        v.sort_by(|a, b| a.application_server.cmp(&b.application_server));
        v
    }
}

/// `GET /instances`: every instance of the application this one knows of.
pub(crate) async fn list(State(ctx): State<Arc<ServerContext>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "self": ctx.endpoint,
        "instances": ctx.directory.all(),
    }))
}

/// Creates `<application-id>-instances` if missing (one partition, compacted).
fn ensure_topic(config: &StreamsConfig, topic: &str) -> Result<()> {
    if topic_partitions(config)?.contains_key(topic) {
        return Ok(());
    }
    create_topics(
        config,
        &[(
            topic.to_string(),
            1,
            vec![("cleanup.policy".to_string(), "compact".to_string())],
        )],
    )
}

/// Starts the thread that publishes this instance's entry and reads everyone's.
pub(crate) fn spawn(
    config: &StreamsConfig,
    directory: Arc<Directory>,
    registry: StoreRegistry,
    state: StateFn,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>> {
    ensure_topic(config, &directory.topic)?;
    let mut pc = base_client_config(config, "producer")?;
    pc.set(
        "client.id",
        format!("{}-instances-producer", config.application_id),
    )
    .set("linger.ms", "0")
    // Statistics of these two small clients are not worth a callback (and librdkafka's
    // default one logs every report).
    .set("statistics.interval.ms", "0");
    let producer: BaseProducer = pc.create()?;
    let mut cc = base_client_config(config, "consumer")?;
    cc.set("group.id", format!("{}-instances", config.application_id))
        .set(
            "client.id",
            format!("{}-instances-consumer", config.application_id),
        )
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("statistics.interval.ms", "0");
    let consumer: BaseConsumer = cc.create()?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&directory.topic, 0, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    let name = format!("{}-instances", config.application_id);
    Ok(std::thread::Builder::new().name(name).spawn(move || {
        let mut published: Option<(u64, Instant)> = None;
        let mut assigned_ms = now_ms();
        while !stop.load(Ordering::Acquire) {
            let (version, stores) = registry.assignment();
            let due = match published {
                None => true,
                Some((v, at)) => {
                    if v != version {
                        assigned_ms = now_ms();
                    }
                    v != version || at.elapsed() >= HEARTBEAT
                }
            };
            if due {
                let info = InstanceInfo {
                    application_server: directory.endpoint.clone(),
                    stores,
                    assigned_ms,
                    heartbeat_ms: now_ms(),
                    state: format!("{:?}", state()),
                };
                let value = serde_json::to_vec(&info).expect("serializable entry");
                // Our own view first: the read-back may lag.
                directory.apply(&info.application_server, Some(&value));
                let record = BaseRecord::to(&directory.topic)
                    .key(directory.endpoint.as_bytes())
                    .payload(&value);
                match producer.send(record) {
                    Ok(()) => published = Some((version, Instant::now())),
                    Err((e, _)) => tracing::warn!(error = %e, "cannot publish instance entry"),
                }
            }
            producer.poll(Duration::ZERO);
            let deadline = Instant::now() + TICK;
            while Instant::now() < deadline {
                match consumer.poll(deadline.saturating_duration_since(Instant::now())) {
                    Some(Ok(m)) => {
                        if let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) {
                            directory.apply(key, m.payload());
                        }
                    }
                    Some(Err(e)) => tracing::debug!(error = %e, "instance directory read"),
                    None => break,
                }
            }
        }
        // Withdraw: a tombstone, so others stop forwarding here at once.
        let record =
            BaseRecord::<[u8], [u8]>::to(&directory.topic).key(directory.endpoint.as_bytes());
        if producer.send(record).is_ok() {
            let _ = producer.flush(Duration::from_secs(5));
        }
    })?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(server: &str, assigned_ms: i64, heartbeat_ms: i64) -> Vec<u8> {
        serde_json::to_vec(&InstanceInfo {
            application_server: server.to_string(),
            stores: BTreeMap::from([("counts".to_string(), vec![0])]),
            assigned_ms,
            heartbeat_ms,
            state: "Running".into(),
        })
        .unwrap()
    }

    #[test]
    fn entries_dated_in_the_future_or_under_another_key_are_refused() {
        let d = Directory::new("app", "me:1");
        let now = now_ms();
        d.apply("a:1", Some(&entry("a:1", now - 1000, now)));
        assert_eq!(d.owner("counts", 0).as_deref(), Some("a:1"));
        // A claim dated an hour ahead would win every comparison and never go stale.
        d.apply("b:1", Some(&entry("b:1", now + 3_600_000, now)));
        d.apply("c:1", Some(&entry("c:1", now, now + 3_600_000)));
        // An entry keyed by one endpoint naming another.
        d.apply("d:1", Some(&entry("e:1", now, now)));
        assert_eq!(d.owner("counts", 0).as_deref(), Some("a:1"));
        assert_eq!(d.live_others(), ["a:1"]);
        // Small skew is fine.
        d.apply("f:1", Some(&entry("f:1", now + 5_000, now + 5_000)));
        assert_eq!(d.owner("counts", 0).as_deref(), Some("f:1"));
    }
}
