//! Where state lives: the RocksDB backend and its memory budget.
//!
//! Every state store of every task is a separate RocksDB instance under
//! `state_dir/<application-id>/<task>/rocksdb/<store>` (or a sorted in-memory map, when a
//! `Materialized` asks for `in_memory()`). Stores hold bytes; typed handles
//! ([`KeyValueStore`],
//! [`WindowStore`],
//! [`SessionStore`]) apply the store's serdes, and the byte
//! layouts of windowed keys live in one module (`state::codec`, versioned):
//! `key ‖ start` for windows and `key ‖ end ‖ start` for sessions, timestamps big-endian with the
//! sign bit flipped so that a range scan of one key runs in time order.
//!
//! **Durability** comes from the changelog, not from RocksDB: the write-ahead log is off (as
//! in Kafka Streams), memtables are flushed at every commit, and a checkpoint file records the
//! changelog offset the flushed files reflect. After a crash a store resumes from its
//! checkpoint; without one (or after the state directory is lost) it is rebuilt from the
//! beginning of its changelog.
//!
//! **Memory** is bounded by default: all RocksDB instances of an application instance share
//! one LRU block cache and one write-buffer manager (sizes in
//! [`StreamsConfig::rocksdb_memory`](crate::config::StreamsConfig::rocksdb_memory)), so a
//! hundred tasks do not mean a hundred memtable budgets.

pub(crate) mod backend;
pub(crate) mod cache;
pub(crate) mod checkpoint;
pub(crate) mod codec;
pub(crate) mod dir;
pub(crate) mod handle;
mod query;
pub(crate) mod rocksdb;
pub(crate) mod spec;
pub(crate) mod store;

pub use handle::{KeyValueStore, SessionStore, WindowStore};
pub use query::{ReadOnlyKeyValueStore, ReadOnlySessionStore, ReadOnlyWindowStore};
pub use spec::StoreBackend;

/// Memory budget shared by every RocksDB store of an application instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RocksDbMemory {
    /// Block cache (reads), in bytes. Default = 64 MiB.
    pub block_cache_bytes: usize,
    /// Memtables (writes) of all stores together, in bytes. Default = 32 MiB.
    pub write_buffer_bytes: usize,
}

impl Default for RocksDbMemory {
    fn default() -> Self {
        RocksDbMemory {
            block_cache_bytes: 64 << 20,
            write_buffer_bytes: 32 << 20,
        }
    }
}
