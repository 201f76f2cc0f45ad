//! Source nodes: decode raw Kafka records, apply the deserialization-error policy, advance
//! stream time, and start the record's way through the sub-topology.

use std::any::Any;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use crate::error::{Error, Result, SerdeError};
use crate::error_policy::{DeserializationHandler, dead_letter_headers as h};
use crate::processor::Child;
use crate::processor::task_state::{OutKind, OutRecord, TaskState};
use crate::processor::{Data, Punctuation};
use crate::record::Record;
use crate::serde::{SerdeRef, decode};
use crate::topology::node::{
    Instance, NodeControl, NodeFactory, RawRecord, RawSource, typed_children,
};

/// Computes a record's event time from its key, value and the Kafka record timestamp.
pub(crate) type TimestampExtractor<K, V> = Arc<dyn Fn(&K, &V, i64) -> i64 + Send + Sync>;

pub(crate) struct SourceFactory<K, V> {
    pub key_serde: SerdeRef<K>,
    pub value_serde: SerdeRef<V>,
    pub handler: Option<DeserializationHandler>,
    pub timestamp_extractor: Option<TimestampExtractor<K, V>>,
}

impl<K: Data, V: Data> NodeFactory for SourceFactory<K, V> {
    fn instantiate(
        &self,
        name: &Arc<str>,
        _index: usize,
        _app_id: &str,
        children: &[(Arc<str>, Rc<dyn Any>)],
    ) -> Result<Instance> {
        let node = Rc::new(RefCell::new(SourceNode {
            name: name.clone(),
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
            handler: self.handler.clone(),
            timestamp_extractor: self.timestamp_extractor.clone(),
            children: typed_children::<K, V>(name, children)?,
        }));
        Ok(Instance {
            input: None,
            control: node.clone(),
            source: Some(node),
            committer: None,
        })
    }
}

struct SourceNode<K, V> {
    name: Arc<str>,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
    handler: Option<DeserializationHandler>,
    timestamp_extractor: Option<TimestampExtractor<K, V>>,
    children: Vec<Child<K, V>>,
}

impl<K: Data, V: Data> SourceNode<K, V> {
    fn on_error(
        &self,
        task: &mut TaskState,
        raw: RawRecord<'_>,
        stage: &str,
        err: SerdeError,
    ) -> Result<()> {
        let (topic, partition, offset) = match &task.meta {
            Some(m) => (m.topic.to_string(), m.partition, m.offset),
            None => (String::new(), -1, -1),
        };
        let handler = self
            .handler
            .as_ref()
            .unwrap_or(&task.default_deserialization_handler)
            .clone();
        match handler {
            DeserializationHandler::Fail => Err(Error::Deserialization {
                topic,
                partition,
                offset,
                source: err,
            }),
            DeserializationHandler::LogAndContinue => {
                tracing::warn!(%topic, partition, offset, stage, error = %err, node = %self.name,
                    "skipping record that cannot be deserialized");
                task.metrics.dropped_deserialization.inc();
                Ok(())
            }
            DeserializationHandler::DeadLetter(dlq) => {
                let mut headers = raw.headers;
                headers
                    .add(h::ERROR, err.to_string())
                    .add(h::STAGE, stage)
                    .add(h::TOPIC, topic.as_str())
                    .add(h::PARTITION, partition.to_string())
                    .add(h::OFFSET, offset.to_string())
                    .add(h::NODE, self.name.as_bytes());
                task.collector.send(OutRecord {
                    topic: &dlq,
                    partition: None,
                    key: raw.key,
                    value: raw.value,
                    timestamp: raw.timestamp,
                    headers: &headers,
                    kind: OutKind::DeadLetter,
                })?;
                tracing::debug!(%topic, partition, offset, stage, error = %err, dead_letter_topic = %dlq,
                    "sent record that cannot be deserialized to the dead-letter topic");
                task.metrics.dropped_deserialization.inc();
                task.metrics.dead_letter.inc();
                Ok(())
            }
        }
    }
}

impl<K: Data, V: Data> RawSource for SourceNode<K, V> {
    fn order_timestamp(&self, topic: &str, raw: &RawRecord<'_>) -> i64 {
        let Some(f) = &self.timestamp_extractor else {
            return raw.timestamp;
        };
        match (
            decode(&*self.key_serde, topic, raw.key),
            decode(&*self.value_serde, topic, raw.value),
        ) {
            (Ok(k), Ok(v)) => f(&k, &v, raw.timestamp),
            _ => raw.timestamp,
        }
    }

    fn receive_raw(&mut self, task: &mut TaskState, raw: RawRecord<'_>) -> Result<()> {
        let topic = task
            .meta
            .as_ref()
            .map(|m| m.topic.clone())
            .unwrap_or_else(|| Arc::from(""));
        let key = match decode(&*self.key_serde, &topic, raw.key) {
            Ok(k) => k,
            Err(e) => return self.on_error(task, raw, "key", e),
        };
        let value = match decode(&*self.value_serde, &topic, raw.value) {
            Ok(v) => v,
            Err(e) => return self.on_error(task, raw, "value", e),
        };
        let timestamp = match &self.timestamp_extractor {
            Some(f) => f(&key, &value, raw.timestamp),
            None => raw.timestamp,
        };
        task.stream_time = task.stream_time.max(timestamp);
        task.clock.set_event_time(timestamp);
        let record = Record {
            key,
            value,
            timestamp,
            headers: raw.headers,
        };
        let Some((last, rest)) = self.children.split_last() else {
            return Ok(());
        };
        for child in rest {
            child.node.borrow_mut().receive(task, record.clone())?;
        }
        last.node.borrow_mut().receive(task, record)
    }
}

impl<K, V> NodeControl for SourceNode<K, V> {
    fn init(&mut self, _task: &mut TaskState) -> Result<()> {
        Ok(())
    }
    fn punctuate(&mut self, _task: &mut TaskState, _p: Punctuation) -> Result<()> {
        Ok(())
    }
    fn close(&mut self, _task: &mut TaskState) -> Result<()> {
        Ok(())
    }
}
