//! The registry's `_schemas` topic: created compacted with one partition (so records keep
//! their order), read to its end at start, appended to on every change.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use super::store::{LogRecord, State};
use crate::config::StreamsConfig;
use crate::error::{Error, Result};
use crate::runtime::admin;

const READ_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) struct Log {
    producer: FutureProducer,
    topic: String,
}

impl Log {
    /// Ensures the topic exists and replays it into a [`State`].
    pub fn open(config: &StreamsConfig, topic: &str) -> Result<(Log, State)> {
        if !admin::topic_partitions(config)?.contains_key(topic) {
            admin::create_topics(
                config,
                &[(
                    topic.to_string(),
                    1,
                    vec![("cleanup.policy".to_string(), "compact".to_string())],
                )],
            )?;
        }
        let state = replay(config, topic)?;
        let producer: FutureProducer = admin::base_client_config(config, "registry-producer")?
            .set("enable.idempotence", "true")
            .set("linger.ms", "0")
            .create()?;
        Ok((
            Log {
                producer,
                topic: topic.to_string(),
            },
            state,
        ))
    }

    /// Appends `record` and waits for the broker to acknowledge it.
    pub async fn append(&self, (key, value): &LogRecord) -> Result<()> {
        let key = key.to_string();
        let value = value.as_ref().map(|v| v.to_string());
        let mut record = FutureRecord::to(&self.topic).key(&key).partition(0);
        if let Some(v) = &value {
            record = record.payload(v);
        }
        self.producer
            .send(record, Duration::from_secs(30))
            .await
            .map_err(|(e, _)| Error::Produce {
                topic: self.topic.clone(),
                reason: e.to_string(),
            })?;
        Ok(())
    }
}

fn replay(config: &StreamsConfig, topic: &str) -> Result<State> {
    let consumer: BaseConsumer = admin::base_client_config(config, "registry-consumer")?
        .set("group.id", "streamkit-schema-registry")
        .set("enable.auto.commit", "false")
        .create()?;
    let mut state = State::default();
    let deadline = Instant::now() + READ_TIMEOUT;
    let (low, high) = loop {
        match consumer.fetch_watermarks(topic, 0, Duration::from_secs(5)) {
            Ok(w) => break w,
            // A topic created a moment ago may not have a leader yet.
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, %topic, "waiting for the schemas topic");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e.into()),
        }
    };
    if high <= low {
        return Ok(state);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    let mut records = 0u64;
    while Instant::now() < deadline {
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m?;
        let key = m
            .key()
            .and_then(|k| serde_json::from_slice::<serde_json::Value>(k).ok());
        let value = m
            .payload()
            .and_then(|v| serde_json::from_slice::<serde_json::Value>(v).ok());
        match key {
            Some(key) => state.apply(&(key, value)),
            None => {
                tracing::warn!(offset = m.offset(), %topic, "skipping a schemas record without a JSON key")
            }
        }
        records += 1;
        if m.offset() + 1 >= high {
            tracing::info!(records, %topic, "schema registry state read");
            return Ok(state);
        }
    }
    Err(Error::Config(format!(
        "schema registry: could not read {topic} to its end (offset {high}) within {READ_TIMEOUT:?}"
    )))
}
