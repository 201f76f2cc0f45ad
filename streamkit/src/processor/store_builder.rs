//! [`StoreBuilder`]: declares a state store for a custom processor.

use crate::processor::Data;
use crate::serde::{Serde, SerdeRef};
use crate::state::StoreBackend;
use crate::state::handle::StoreSerdes;
use crate::state::spec::{StoreKind, StoreSpec};
use std::sync::Arc;
use std::time::Duration;

/// Declares a store for [`KStream::process_with_stores`](crate::stream::KStream::process_with_stores).
///
/// # Examples
///
/// ```
/// use streamkit::prelude::*;
/// use streamkit::processor::{KeyValueStore, StoreBuilder};
///
/// /// Emits the running total per key, kept in a store.
/// struct Total { store: Option<KeyValueStore<String, i64>> }
///
/// impl Processor<String, i64> for Total {
///     type KOut = String;
///     type VOut = i64;
///     fn init(&mut self, ctx: &mut ProcessorContext<'_, String, i64>) -> Result<()> {
///         self.store = Some(ctx.key_value_store("totals")?);
///         Ok(())
///     }
///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, i64>, r: Record<String, i64>) -> Result<()> {
///         let store = self.store.as_ref().unwrap();
///         let total = store.get(&r.key)?.unwrap_or(0) + r.value;
///         store.put(&r.key, &total)?;
///         ctx.forward(r.with_value(total))
///     }
/// }
///
/// let b = StreamsBuilder::new();
/// b.add_state_store(StoreBuilder::key_value("totals", Serdes::string(), Serdes::i64()).in_memory());
/// b.stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
///     .process_with_stores(|| Total { store: None }, &["totals"])
///     .to("out", Produced::with(Serdes::string(), Serdes::i64()));
/// let d = TopologyTestDriver::new(b.build()?)?;
/// let input = d.input_topic("in", Serdes::string(), Serdes::i64());
/// input.pipe_all([("a".to_string(), 2), ("a".to_string(), 3)])?;
/// assert_eq!(d.output_topic("out", Serdes::string(), Serdes::i64()).read_values(), vec![2, 5]);
/// // The changelog got both writes.
/// assert_eq!(d.output_topic("test-app-totals-changelog", Serdes::string(), Serdes::i64()).read_values(), vec![2, 5]);
/// # Ok::<(), streamkit::Error>(())
/// ```
pub struct StoreBuilder {
    pub(crate) spec: StoreSpec,
}

impl StoreBuilder {
    fn new<K: Data, V: Data>(
        name: &str,
        kind: StoreKind,
        key: impl Serde<K>,
        value: impl Serde<V>,
    ) -> Self {
        Self::from_refs(name, kind, Arc::new(key), Arc::new(value))
    }

    /// A logged RocksDB store of `kind` over shared serdes.
    pub(crate) fn from_refs<K: Data, V: Data>(
        name: &str,
        kind: StoreKind,
        key: SerdeRef<K>,
        value: SerdeRef<V>,
    ) -> Self {
        StoreBuilder {
            spec: StoreSpec {
                name: name.to_string(),
                kind,
                backend: StoreBackend::RocksDb,
                logging: true,
                caching: false,
                serdes: Arc::new(StoreSerdes::<K, V> { key, value }),
            },
        }
    }

    /// A key-value store.
    pub fn key_value<K: Data, V: Data>(
        name: &str,
        key: impl Serde<K>,
        value: impl Serde<V>,
    ) -> Self {
        Self::new(name, StoreKind::KeyValue, key, value)
    }

    /// A window store keeping windows for `retention`.
    pub fn window<K: Data, V: Data>(
        name: &str,
        key: impl Serde<K>,
        value: impl Serde<V>,
        retention: Duration,
    ) -> Self {
        Self::new(
            name,
            StoreKind::Window {
                retention_ms: retention.as_millis() as i64,
            },
            key,
            value,
        )
    }

    /// A session store keeping sessions for `retention`.
    pub fn session<K: Data, V: Data>(
        name: &str,
        key: impl Serde<K>,
        value: impl Serde<V>,
        retention: Duration,
    ) -> Self {
        Self::new(
            name,
            StoreKind::Session {
                retention_ms: retention.as_millis() as i64,
            },
            key,
            value,
        )
    }

    /// Keep the store in memory (rebuilt from its changelog on restart). Default = RocksDB.
    pub fn in_memory(mut self) -> Self {
        self.spec.backend = StoreBackend::InMemory;
        self
    }

    /// No changelog: the store starts empty after a restart or move.
    pub fn with_logging_disabled(mut self) -> Self {
        self.spec.logging = false;
        self
    }
}
