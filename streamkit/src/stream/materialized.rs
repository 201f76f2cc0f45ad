//! [`Materialized`]: how an aggregation's state store is built.

use crate::state::StoreBackend;
use std::sync::Arc;
use std::time::Duration;

use crate::processor::Data;
use crate::serde::{Serde, SerdeRef};

/// How to materialize an aggregation: the store's name (which names its changelog topic
/// `<application-id>-<name>-changelog`), serdes, backend, changelog and retention.
///
/// Name every store you care about: an unnamed store gets a generated name that changes when
/// the topology changes, and with it the changelog topic.
pub struct Materialized<K, V> {
    pub(crate) name: Option<String>,
    pub(crate) key_serde: Option<SerdeRef<K>>,
    pub(crate) value_serde: Option<SerdeRef<V>>,
    pub(crate) backend: StoreBackend,
    pub(crate) logging: bool,
    pub(crate) caching: bool,
    pub(crate) retention: Option<Duration>,
}

impl<K: Data, V: Data> Default for Materialized<K, V> {
    fn default() -> Self {
        Materialized {
            name: None,
            key_serde: None,
            value_serde: None,
            backend: StoreBackend::RocksDb,
            logging: true,
            caching: false,
            retention: None,
        }
    }
}

impl<K: Data, V: Data> Materialized<K, V> {
    /// A store called `name`.
    pub fn named(name: impl Into<String>) -> Self {
        Materialized {
            name: Some(name.into()),
            ..Self::default()
        }
    }

    /// An unnamed store with these serdes (a generated name is used).
    pub fn with(key_serde: impl Serde<K>, value_serde: impl Serde<V>) -> Self {
        Self::default()
            .key_serde(key_serde)
            .value_serde(value_serde)
    }

    /// Key serde of the store and changelog. Default = the grouping's key serde.
    pub fn key_serde(mut self, serde: impl Serde<K>) -> Self {
        self.key_serde = Some(Arc::new(serde));
        self
    }

    /// Value serde of the store and changelog. Required unless the operator knows its value
    /// type's serde (count uses i64).
    pub fn value_serde(mut self, serde: impl Serde<V>) -> Self {
        self.value_serde = Some(Arc::new(serde));
        self
    }

    /// Keep the store in memory instead of RocksDB.
    pub fn in_memory(mut self) -> Self {
        self.backend = StoreBackend::InMemory;
        self
    }

    /// No changelog topic: the store is not restored after a crash or rebalance.
    pub fn with_logging_disabled(mut self) -> Self {
        self.logging = false;
        self
    }

    /// Cache updates between commits and emit one per key (Kafka Streams' record cache).
    /// Default = off: every update is emitted.
    pub fn with_caching_enabled(mut self) -> Self {
        self.caching = true;
        self
    }

    /// How long windows are kept (windowed stores). Default = window size + grace, at least
    /// one day, as in Kafka Streams.
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = Some(retention);
        self
    }
}
