//! A state store as a topology declares it: kind, backend, logging, caching, serdes. Each
//! task opens its own instance ([`super::store::TaskStore`]).

use std::sync::Arc;

/// Which engine holds a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreBackend {
    /// RocksDB under `state_dir/<application-id>/<task>/`. Default.
    #[default]
    RocksDb,
    /// A sorted in-memory map, rebuilt from the changelog on restart.
    InMemory,
}

/// The kind of a state store, with what its changelog needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreKind {
    KeyValue,
    /// Window store; entries older than the retention are dropped.
    Window {
        retention_ms: i64,
    },
    /// Session store.
    Session {
        retention_ms: i64,
    },
}

/// A state store as the topology declares it; each task opens its own instance.
pub(crate) struct StoreSpec {
    pub name: String,
    pub kind: StoreKind,
    pub backend: StoreBackend,
    pub logging: bool,
    /// Whether a record cache collapses updates between commits.
    pub caching: bool,
    /// `StoreSerdes<K, V>` of the store's key and value types.
    pub serdes: Arc<dyn crate::state::handle::ErasedSerdes>,
}
