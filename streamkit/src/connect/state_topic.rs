//! A component's progress in a compacted, one-partition Kafka topic: replayed to its end at
//! start, appended to as the component moves on (as Kafka Connect keeps source offsets and
//! Schema Registry keeps `_schemas`).

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use crate::config::StreamsConfig;
use crate::error::{Error, Result};
use crate::runtime::admin;

/// How long [`StateTopic::open`] may take to read the topic to its end.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an append waits for the broker's acknowledgement.
const APPEND_TIMEOUT: Duration = Duration::from_secs(30);

/// One record of a state topic: key, and value (`None`: a tombstone).
pub(crate) type StateRecord = (Vec<u8>, Option<Vec<u8>>);

/// The writing end of a state topic.
pub(crate) struct StateTopic {
    producer: FutureProducer,
    topic: String,
}

impl StateTopic {
    /// Creates `topic` (compacted, one partition, so records keep their order) when missing
    /// and reads it to its end; `client` names the clients in the broker's logs. Returns the
    /// records in the order they were written: the caller folds them into its state.
    pub fn open(
        config: &StreamsConfig,
        topic: &str,
        client: &str,
    ) -> Result<(StateTopic, Vec<StateRecord>)> {
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
        let records = replay(config, topic, client)?;
        let producer: FutureProducer = admin::base_client_config(config, "producer")?
            .set("client.id", format!("{client}-producer"))
            .set("enable.idempotence", "true")
            .set("linger.ms", "0")
            .create()?;
        Ok((
            StateTopic {
                producer,
                topic: topic.to_string(),
            },
            records,
        ))
    }

    /// Appends a record and waits for the broker to acknowledge it.
    pub async fn append(&self, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        let mut record = FutureRecord::<[u8], [u8]>::to(&self.topic)
            .key(key)
            .partition(0);
        if let Some(v) = value {
            record = record.payload(v);
        }
        self.producer
            .send(record, APPEND_TIMEOUT)
            .await
            .map_err(|(e, _)| Error::Produce {
                topic: self.topic.clone(),
                reason: e.to_string(),
            })?;
        Ok(())
    }

    /// The topic's name.
    pub fn topic(&self) -> &str {
        &self.topic
    }
}

fn replay(config: &StreamsConfig, topic: &str, client: &str) -> Result<Vec<StateRecord>> {
    let consumer: BaseConsumer = admin::base_client_config(config, "consumer")?
        .set("client.id", format!("{client}-consumer"))
        .set("group.id", format!("streamkit-{client}"))
        .set("enable.auto.commit", "false")
        .create()?;
    let deadline = Instant::now() + READ_TIMEOUT;
    let (low, high) = loop {
        match consumer.fetch_watermarks(topic, 0, Duration::from_secs(5)) {
            Ok(w) => break w,
            // A topic created a moment ago may not have a leader yet.
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, %topic, "waiting for the state topic");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e.into()),
        }
    };
    let mut records = Vec::new();
    if high <= low {
        return Ok(records);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    while Instant::now() < deadline {
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m?;
        match m.key() {
            Some(key) => records.push((key.to_vec(), m.payload().map(<[u8]>::to_vec))),
            None => {
                tracing::warn!(offset = m.offset(), %topic, "skipping a state record without a key")
            }
        }
        if m.offset() + 1 >= high {
            tracing::info!(records = records.len(), %topic, "state topic read");
            return Ok(records);
        }
    }
    Err(Error::Config(format!(
        "could not read the state topic {topic} to its end (offset {high}) within {READ_TIMEOUT:?}"
    )))
}
