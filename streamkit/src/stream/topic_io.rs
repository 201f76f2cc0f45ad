//! Parameter objects of the DSL: how a stream is consumed, produced and repartitioned.

use std::sync::Arc;

use crate::error_policy::DeserializationHandler;
use crate::operators::source::TimestampExtractor;
use crate::processor::Data;
use crate::serde::{Serde, SerdeRef};

/// How to read a topic: key and value serdes, deserialization-error policy, timestamps.
pub struct Consumed<K, V> {
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) value_serde: SerdeRef<V>,
    pub(crate) handler: Option<DeserializationHandler>,
    pub(crate) timestamp_extractor: Option<TimestampExtractor<K, V>>,
    pub(crate) name: Option<String>,
}

impl<K: Data, V: Data> Consumed<K, V> {
    /// Reads keys and values with these serdes.
    pub fn with(key_serde: impl Serde<K>, value_serde: impl Serde<V>) -> Self {
        Consumed {
            key_serde: Arc::new(key_serde),
            value_serde: Arc::new(value_serde),
            handler: None,
            timestamp_extractor: None,
            name: None,
        }
    }

    /// What to do with records that cannot be deserialized. Default = the application's
    /// [`default_deserialization_handler`](crate::config::StreamsConfig::default_deserialization_handler),
    /// itself `Fail` by default.
    pub fn on_deserialization_error(mut self, handler: DeserializationHandler) -> Self {
        self.handler = Some(handler);
        self
    }

    /// Event time from the record's contents: `f(key, value, kafka_timestamp) -> ms`.
    /// Default = the Kafka record timestamp.
    pub fn with_timestamp_extractor(
        mut self,
        f: impl Fn(&K, &V, i64) -> i64 + Send + Sync + 'static,
    ) -> Self {
        self.timestamp_extractor = Some(Arc::new(f));
        self
    }

    /// Names the source node. Default = `KSTREAM-SOURCE-<n>`.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// How to write a topic: key and value serdes and the sink's name.
pub struct Produced<K, V> {
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) value_serde: SerdeRef<V>,
    pub(crate) name: Option<String>,
}

impl<K: Data, V: Data> Produced<K, V> {
    /// Writes keys and values with these serdes.
    pub fn with(key_serde: impl Serde<K>, value_serde: impl Serde<V>) -> Self {
        Produced {
            key_serde: Arc::new(key_serde),
            value_serde: Arc::new(value_serde),
            name: None,
        }
    }

    /// Names the sink node. Default = `KSTREAM-SINK-<n>`.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// How to repartition: serdes, the topic's name and partition count.
pub struct Repartitioned<K, V> {
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) value_serde: SerdeRef<V>,
    pub(crate) name: Option<String>,
    pub(crate) partitions: Option<i32>,
}

impl<K: Data, V: Data> Repartitioned<K, V> {
    /// Writes and reads the repartition topic with these serdes.
    pub fn with(key_serde: impl Serde<K>, value_serde: impl Serde<V>) -> Self {
        Repartitioned {
            key_serde: Arc::new(key_serde),
            value_serde: Arc::new(value_serde),
            name: None,
            partitions: None,
        }
    }

    /// The topic is `<application-id>-<name>-repartition`. Default name =
    /// `KSTREAM-REPARTITION-<n>`; give a name so the topic survives topology changes.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Partition count of the topic. Default = the partition count of the sub-topology's
    /// input topics.
    pub fn partitions(mut self, n: i32) -> Self {
        self.partitions = Some(n);
        self
    }
}
