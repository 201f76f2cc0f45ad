//! `to`: serialize each record and hand it to the producer (or the test driver).

use std::sync::Arc;

use crate::error::Result;
use crate::processor::task_state::{OutKind, OutRecord};
use crate::processor::{Data, Processor, ProcessorContext};
use crate::record::Record;
use crate::serde::{SerdeRef, encode};
use crate::stream::topic_io::PartitionerRef;
use crate::topology::TopicName;

/// Chooses the topic of each record.
pub(crate) type TopicExtractor<K, V> = Arc<dyn Fn(&K, &V) -> String + Send + Sync>;

pub(crate) enum SinkTopic<K, V> {
    Fixed(TopicName),
    PerRecord(TopicExtractor<K, V>),
}

impl<K, V> Clone for SinkTopic<K, V> {
    fn clone(&self) -> Self {
        match self {
            SinkTopic::Fixed(t) => SinkTopic::Fixed(t.clone()),
            SinkTopic::PerRecord(f) => SinkTopic::PerRecord(f.clone()),
        }
    }
}

pub(crate) struct Sink<K, V> {
    pub topic: SinkTopic<K, V>,
    /// The fixed topic's name on the cluster, resolved in `init`.
    pub resolved: String,
    pub key_serde: SerdeRef<K>,
    pub value_serde: SerdeRef<V>,
    /// Chooses each record's partition; `None`: the producer's partitioner.
    pub partitioner: Option<PartitionerRef<K, V>>,
    pub key_buf: Vec<u8>,
    pub value_buf: Vec<u8>,
}

impl<K, V> Sink<K, V> {
    pub fn new(
        topic: SinkTopic<K, V>,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
        partitioner: Option<PartitionerRef<K, V>>,
    ) -> Self {
        Sink {
            topic,
            resolved: String::new(),
            key_serde,
            value_serde,
            partitioner,
            key_buf: Vec::new(),
            value_buf: Vec::new(),
        }
    }
}

impl<K: Data, V: Data> Processor<K, V> for Sink<K, V> {
    type KOut = ();
    type VOut = ();

    fn init(&mut self, ctx: &mut ProcessorContext<'_, (), ()>) -> Result<()> {
        if let SinkTopic::Fixed(t) = &self.topic {
            self.resolved = t.resolve(ctx.application_id());
        }
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, (), ()>,
        record: Record<K, V>,
    ) -> Result<()> {
        let per_record;
        let topic = match &self.topic {
            SinkTopic::Fixed(_) => self.resolved.as_str(),
            SinkTopic::PerRecord(f) => {
                per_record = f(&record.key, &record.value);
                per_record.as_str()
            }
        };
        let partition = match &self.partitioner {
            None => None,
            Some(p) => {
                let count = ctx.partition_count(topic)?;
                match p.partition(topic, &record.key, &record.value, count) {
                    // A user error (the record's, for the processing error handler), as
                    // Kafka Streams fails on an invalid partition.
                    Some(n) if !(0..count).contains(&n) => {
                        return Err(crate::Error::custom(format!(
                            "the stream partitioner chose partition {n} of {topic}, which has {count}"
                        )));
                    }
                    n => n,
                }
            }
        };
        let has_key = encode(&*self.key_serde, topic, &record.key, &mut self.key_buf)?;
        let has_value = encode(
            &*self.value_serde,
            topic,
            &record.value,
            &mut self.value_buf,
        )?;
        ctx.send(OutRecord {
            topic,
            partition,
            key: has_key.then_some(self.key_buf.as_slice()),
            value: has_value.then_some(self.value_buf.as_slice()),
            timestamp: record.timestamp,
            headers: &record.headers,
            kind: OutKind::Output,
        })
    }
}
