//! Read-only views of an instance's stores for interactive queries: each view looks at the
//! store's instances in every task this application instance runs.

use crate::error::{Error, Result};
use crate::record::Data;
use crate::state::store::SharedStore;
use crate::state::store::StoreRegistry;
use crate::state::{KeyValueStore, SessionStore, WindowStore};
use crate::window::Window;

fn instances(registry: &StoreRegistry, name: &str) -> Result<Vec<SharedStore>> {
    let stores = registry.get(name);
    if stores.is_empty() {
        let known = registry.names();
        return Err(Error::IllegalState(format!(
            "store {name:?} is not open on this instance (open stores: {known:?}); is the instance running and assigned its tasks?"
        )));
    }
    Ok(stores)
}

/// A read-only view of a key-value store across the instance's tasks.
pub struct ReadOnlyKeyValueStore<K, V> {
    parts: Vec<KeyValueStore<K, V>>,
}

impl<K: Data, V: Data> ReadOnlyKeyValueStore<K, V> {
    pub(crate) fn open(registry: &StoreRegistry, name: &str) -> Result<Self> {
        let parts = instances(registry, name)?
            .into_iter()
            .map(KeyValueStore::open)
            .collect::<Result<_>>()?;
        Ok(ReadOnlyKeyValueStore { parts })
    }

    /// The value of `key` (a key lives in exactly one task).
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        for p in &self.parts {
            if let Some(v) = p.get(key)? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// Entries with keys from `from` to `to` (inclusive), in key-byte order per task.
    pub fn range(&self, from: &K, to: &K) -> Result<Vec<(K, V)>> {
        let mut out = Vec::new();
        for p in &self.parts {
            out.extend(p.range(from, to)?);
        }
        Ok(out)
    }

    /// Every entry.
    pub fn all(&self) -> Result<Vec<(K, V)>> {
        let mut out = Vec::new();
        for p in &self.parts {
            out.extend(p.all()?);
        }
        Ok(out)
    }

    /// Approximate number of entries.
    pub fn approximate_num_entries(&self) -> u64 {
        self.parts
            .iter()
            .map(KeyValueStore::approximate_num_entries)
            .sum()
    }
}

/// A read-only view of a window store across the instance's tasks.
pub struct ReadOnlyWindowStore<K, V> {
    parts: Vec<WindowStore<K, V>>,
}

impl<K: Data, V: Data> ReadOnlyWindowStore<K, V> {
    pub(crate) fn open(registry: &StoreRegistry, name: &str) -> Result<Self> {
        let parts = instances(registry, name)?
            .into_iter()
            .map(WindowStore::open)
            .collect::<Result<_>>()?;
        Ok(ReadOnlyWindowStore { parts })
    }

    /// `(window start, value)` of `key` for window starts in `[from, to]`, oldest first.
    pub fn fetch(&self, key: &K, from: i64, to: i64) -> Result<Vec<(i64, V)>> {
        let mut out = Vec::new();
        for p in &self.parts {
            out.extend(p.fetch_range(key, from, to)?);
        }
        out.sort_by_key(|(start, _)| *start);
        Ok(out)
    }

    /// Every `(key, window start, value)`.
    pub fn all(&self) -> Result<Vec<(K, i64, V)>> {
        let mut out = Vec::new();
        for p in &self.parts {
            out.extend(p.all()?);
        }
        Ok(out)
    }
}

/// A read-only view of a session store across the instance's tasks.
pub struct ReadOnlySessionStore<K, V> {
    parts: Vec<SessionStore<K, V>>,
}

impl<K: Data, V: Data> ReadOnlySessionStore<K, V> {
    pub(crate) fn open(registry: &StoreRegistry, name: &str) -> Result<Self> {
        let parts = instances(registry, name)?
            .into_iter()
            .map(SessionStore::open)
            .collect::<Result<_>>()?;
        Ok(ReadOnlySessionStore { parts })
    }

    /// Sessions of `key`, ordered by end.
    pub fn fetch(&self, key: &K) -> Result<Vec<(Window, V)>> {
        let mut out = Vec::new();
        for p in &self.parts {
            out.extend(p.find_sessions(key, i64::MIN, i64::MAX)?);
        }
        out.sort_by_key(|(w, _)| (w.end, w.start));
        Ok(out)
    }

    /// Every `(key, session, value)`.
    pub fn all(&self) -> Result<Vec<(K, Window, V)>> {
        let mut out = Vec::new();
        for p in &self.parts {
            out.extend(p.all()?);
        }
        Ok(out)
    }
}
