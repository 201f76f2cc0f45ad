//! Typed handles over a task's stores, as processors use them: keys and values through the
//! store's serdes, windowed keys through [`codec`](super::codec).

use crate::error::{Error, Result};
use crate::record::Data;
use crate::serde::{Serde, SerdeRef, decode};
use crate::state::codec;
use crate::state::spec::StoreKind;
use crate::state::store::SharedStore;
use crate::window::Window;
use std::any::Any;
use std::ops::Bound;

/// The serdes of a store, kept type-erased in the topology.
pub(crate) struct StoreSerdes<K, V> {
    pub key: SerdeRef<K>,
    pub value: SerdeRef<V>,
}

/// A store's serdes as the type-erased topology holds them: downcast to [`StoreSerdes`] for a
/// typed handle, or convert keys and values to and from JSON through the serdes without
/// knowing the types (the query server).
#[cfg_attr(
    not(feature = "server"),
    allow(dead_code, reason = "the query server reads it")
)]
pub(crate) trait ErasedSerdes: Any + Send + Sync {
    fn as_any(&self) -> &dyn Any;
    /// The store-key bytes of a key given as JSON.
    fn key_bytes(&self, store: &str, key: &serde_json::Value) -> Result<Vec<u8>>;
    /// The JSON form of store-key bytes.
    fn key_json(&self, store: &str, bytes: &[u8]) -> Result<serde_json::Value>;
    /// The JSON form of value bytes.
    fn value_json(&self, store: &str, bytes: &[u8]) -> Result<serde_json::Value>;
}

impl dyn ErasedSerdes {
    /// The serdes as `T` (a `StoreSerdes<K, V>`), if they are.
    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        self.as_any().downcast_ref()
    }
}

impl<K: Data, V: Data> ErasedSerdes for StoreSerdes<K, V> {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn key_bytes(&self, store: &str, key: &serde_json::Value) -> Result<Vec<u8>> {
        let key = self.key.parse_json(key)?;
        encode(&*self.key, store, &key)
    }
    fn key_json(&self, store: &str, bytes: &[u8]) -> Result<serde_json::Value> {
        let key = self.key.deserialize(store, bytes)?;
        Ok(self.key.to_json(&key)?)
    }
    fn value_json(&self, store: &str, bytes: &[u8]) -> Result<serde_json::Value> {
        let value = self.value.deserialize(store, bytes)?;
        Ok(self.value.to_json(&value)?)
    }
}

/// Checks a store's kind and value types (one lock), returning its name and serdes.
fn open_parts<K: Data, V: Data>(
    store: &SharedStore,
    want: &str,
    is_kind: impl Fn(StoreKind) -> bool,
) -> Result<(String, SerdeRef<K>, SerdeRef<V>)> {
    let s = store.lock().expect("store lock");
    if !is_kind(s.spec.kind) {
        return Err(Error::Topology(format!(
            "store {} is not a {want} store",
            s.spec.name
        )));
    }
    let serdes = s
        .spec
        .serdes
        .downcast_ref::<StoreSerdes<K, V>>()
        .ok_or_else(|| {
            Error::Topology(format!(
                "store {} does not hold ({}, {})",
                s.spec.name,
                std::any::type_name::<K>(),
                std::any::type_name::<V>()
            ))
        })?;
    Ok((
        s.spec.name.clone(),
        serdes.key.clone(),
        serdes.value.clone(),
    ))
}

fn encode<T: 'static>(serde: &dyn Serde<T>, name: &str, value: &T) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    serde.serialize(name, value, &mut buf)?;
    Ok(buf)
}

/// A typed key-value store of a task. Keys are ordered by their serialized bytes.
pub struct KeyValueStore<K, V> {
    name: String,
    store: SharedStore,
    key: SerdeRef<K>,
    value: SerdeRef<V>,
    /// Set for a global table's store seen from a stream task: only the global thread writes.
    read_only: bool,
}

impl<K: Data, V: Data> KeyValueStore<K, V> {
    /// Whether `key` is a Kafka null key under the store's key serde (an aggregation drops
    /// such records, as Kafka Streams does).
    pub(crate) fn is_null_key(&self, key: &K) -> bool {
        self.key.is_null(key)
    }

    pub(crate) fn open(store: SharedStore) -> Result<Self> {
        let (name, key, value) =
            open_parts::<K, V>(&store, "key-value", |k| matches!(k, StoreKind::KeyValue))?;
        Ok(KeyValueStore {
            name,
            store,
            key,
            value,
            read_only: false,
        })
    }

    /// The store's name.
    pub(crate) fn store_name(&self) -> &str {
        &self.name
    }

    /// The same store, refusing writes.
    pub(crate) fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    fn check_writable(&self) -> Result<()> {
        if self.read_only {
            return Err(Error::IllegalState(format!(
                "store {} belongs to a global table: tasks may read it, only the global thread writes it",
                self.name
            )));
        }
        Ok(())
    }

    /// The value of `key`.
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        let name = &*self.name;
        self.store.lock().expect("store lock").with_bufs(|s, k, _| {
            self.key.serialize(name, key, k)?;
            s.get_with(k, |v| {
                v.map(|v| self.value.deserialize(name, v)).transpose()
            })?
            .map_err(Error::from)
        })
    }

    /// Sets `key` to `value` (and logs it).
    pub fn put(&self, key: &K, value: &V) -> Result<()> {
        self.check_writable()?;
        let name = &*self.name;
        self.store.lock().expect("store lock").with_bufs(|s, k, v| {
            self.key.serialize(name, key, k)?;
            self.value.serialize(name, value, v)?;
            s.put(k, v)
        })
    }

    /// Removes `key` (and logs a tombstone).
    pub fn delete(&self, key: &K) -> Result<()> {
        self.check_writable()?;
        let name = &*self.name;
        self.store.lock().expect("store lock").with_bufs(|s, k, _| {
            self.key.serialize(name, key, k)?;
            s.delete(k)
        })
    }

    /// Entries with keys from `from` to `to` (both inclusive), in key-byte order.
    pub fn range(&self, from: &K, to: &K) -> Result<Vec<(K, V)>> {
        let name = &*self.name;
        let (a, b) = (
            encode(&*self.key, name, from)?,
            encode(&*self.key, name, to)?,
        );
        let raw = self
            .store
            .lock()
            .expect("store lock")
            .range(Bound::Included(&a), Bound::Included(&b))?;
        self.decode_all(raw)
    }

    /// Every entry, in key-byte order.
    pub fn all(&self) -> Result<Vec<(K, V)>> {
        let raw = self
            .store
            .lock()
            .expect("store lock")
            .range(Bound::Unbounded, Bound::Unbounded)?;
        self.decode_all(raw)
    }

    /// Number of entries (exact for memory stores, estimated for RocksDB).
    pub fn approximate_num_entries(&self) -> u64 {
        self.store.lock().expect("store lock").approximate_len()
    }

    fn decode_all(&self, raw: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Vec<(K, V)>> {
        let name = &*self.name;
        raw.into_iter()
            .map(|(k, v)| {
                Ok((
                    decode(&*self.key, name, Some(&k))?,
                    decode(&*self.value, name, Some(&v))?,
                ))
            })
            .collect()
    }
}

/// Deletes every entry whose expiry time ([`codec::expiry_time`]) is before `cutoff`: a full
/// scan, skipped while the store knows that no entry is that old.
fn remove_expired(store: &SharedStore, cutoff: i64) -> Result<usize> {
    let mut s = store.lock().expect("store lock");
    if s.expiry_floor.is_some_and(|floor| floor >= cutoff) {
        return Ok(0);
    }
    let kind = s.spec.kind;
    let raw = s.range(Bound::Unbounded, Bound::Unbounded)?;
    let mut removed = 0;
    let mut oldest_kept = i64::MAX;
    for (k, _) in raw {
        match codec::expiry_time(kind, &k) {
            Some(t) if t < cutoff => {
                s.delete(&k)?;
                removed += 1;
            }
            Some(t) => oldest_kept = oldest_kept.min(t),
            None => {}
        }
    }
    s.expiry_floor = Some(oldest_kept);
    Ok(removed)
}

/// A typed window store: values by (key, window start).
pub struct WindowStore<K, V> {
    name: String,
    store: SharedStore,
    key: SerdeRef<K>,
    value: SerdeRef<V>,
}

impl<K: Data, V: Data> WindowStore<K, V> {
    /// Whether `key` is a Kafka null key under the store's key serde (an aggregation drops
    /// such records, as Kafka Streams does).
    pub(crate) fn is_null_key(&self, key: &K) -> bool {
        self.key.is_null(key)
    }

    pub(crate) fn open(store: SharedStore) -> Result<Self> {
        let (name, key, value) =
            open_parts::<K, V>(&store, "window", |k| matches!(k, StoreKind::Window { .. }))?;
        Ok(WindowStore {
            name,
            store,
            key,
            value,
        })
    }

    /// Sets the value of `key` in the window starting at `window_start`; `None` removes it.
    pub fn put(&self, key: &K, window_start: i64, value: Option<&V>) -> Result<()> {
        let name = &*self.name;
        self.store.lock().expect("store lock").with_bufs(|s, k, v| {
            self.key.serialize(name, key, k)?;
            k.extend_from_slice(&codec::time(window_start));
            match value {
                Some(value) => {
                    self.value.serialize(name, value, v)?;
                    s.put(k, v)
                }
                None => s.delete(k),
            }
        })
    }

    /// The value of `key` in the window starting at `window_start`.
    pub fn fetch(&self, key: &K, window_start: i64) -> Result<Option<V>> {
        let name = &*self.name;
        self.store.lock().expect("store lock").with_bufs(|s, k, _| {
            self.key.serialize(name, key, k)?;
            k.extend_from_slice(&codec::time(window_start));
            s.get_with(k, |v| {
                v.map(|v| self.value.deserialize(name, v)).transpose()
            })?
            .map_err(Error::from)
        })
    }

    /// `(window start, value)` of `key` for starts in `[from, to]`, oldest first.
    pub fn fetch_range(&self, key: &K, from: i64, to: i64) -> Result<Vec<(i64, V)>> {
        let name = &*self.name;
        let kb = encode(&*self.key, name, key)?;
        let (a, b) = (codec::key_with(&kb, &[from]), codec::key_with(&kb, &[to]));
        let raw = self
            .store
            .lock()
            .expect("store lock")
            .range(Bound::Included(&a), Bound::Included(&b))?;
        let mut out = Vec::new();
        for (k, v) in raw {
            if let Some((key_bytes, t)) = codec::split(&k, 1)
                && key_bytes == kb.as_slice()
            {
                out.push((t[0], decode(&*self.value, name, Some(&v))?));
            }
        }
        Ok(out)
    }

    /// Every `(key, window start, value)`, ordered by key bytes then start.
    pub fn all(&self) -> Result<Vec<(K, i64, V)>> {
        let name = &*self.name;
        let raw = self
            .store
            .lock()
            .expect("store lock")
            .range(Bound::Unbounded, Bound::Unbounded)?;
        let mut out = Vec::with_capacity(raw.len());
        for (k, v) in raw {
            let (key_bytes, t) = codec::split(&k, 1)
                .ok_or_else(|| Error::Internal(format!("corrupt window key in store {name}")))?;
            out.push((
                decode(&*self.key, name, Some(key_bytes))?,
                t[0],
                decode(&*self.value, name, Some(&v))?,
            ));
        }
        Ok(out)
    }

    /// Removes every window that starts before `min_start` (retention).
    pub fn remove_older_than(&self, min_start: i64) -> Result<usize> {
        remove_expired(&self.store, min_start)
    }
}

/// A typed session store: values by (key, session window).
pub struct SessionStore<K, V> {
    name: String,
    store: SharedStore,
    key: SerdeRef<K>,
    value: SerdeRef<V>,
}

impl<K: Data, V: Data> SessionStore<K, V> {
    /// Whether `key` is a Kafka null key under the store's key serde (an aggregation drops
    /// such records, as Kafka Streams does).
    pub(crate) fn is_null_key(&self, key: &K) -> bool {
        self.key.is_null(key)
    }

    pub(crate) fn open(store: SharedStore) -> Result<Self> {
        let (name, key, value) = open_parts::<K, V>(&store, "session", |k| {
            matches!(k, StoreKind::Session { .. })
        })?;
        Ok(SessionStore {
            name,
            store,
            key,
            value,
        })
    }

    /// Sets (`Some`) or removes (`None`) the session `window` of `key`.
    pub fn put(&self, key: &K, window: Window, value: Option<&V>) -> Result<()> {
        let name = &*self.name;
        let k = codec::key_with(&encode(&*self.key, name, key)?, &[window.end, window.start]);
        match value {
            Some(v) => {
                let v = encode(&*self.value, name, v)?;
                self.store.lock().expect("store lock").put(&k, &v)
            }
            None => self.store.lock().expect("store lock").delete(&k),
        }
    }

    /// Sessions of `key` that end at or after `earliest_end` and start at or before
    /// `latest_start`, ordered by end.
    pub fn find_sessions(
        &self,
        key: &K,
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<Vec<(Window, V)>> {
        let name = &*self.name;
        let kb = encode(&*self.key, name, key)?;
        let a = codec::key_with(&kb, &[earliest_end, i64::MIN]);
        let b = codec::key_with(&kb, &[i64::MAX, i64::MAX]);
        let raw = self
            .store
            .lock()
            .expect("store lock")
            .range(Bound::Included(&a), Bound::Included(&b))?;
        let mut out = Vec::new();
        for (k, v) in raw {
            if let Some((key_bytes, t)) = codec::split(&k, 2) {
                let window = Window::new(t[1], t[0]);
                if key_bytes == kb.as_slice() && window.start <= latest_start {
                    out.push((window, decode(&*self.value, name, Some(&v))?));
                }
            }
        }
        Ok(out)
    }

    /// Removes every session that ended before `min_end` (retention).
    pub fn remove_ended_before(&self, min_end: i64) -> Result<usize> {
        remove_expired(&self.store, min_end)
    }

    /// Every `(key, session, value)`.
    pub fn all(&self) -> Result<Vec<(K, Window, V)>> {
        let name = &*self.name;
        let raw = self
            .store
            .lock()
            .expect("store lock")
            .range(Bound::Unbounded, Bound::Unbounded)?;
        let mut out = Vec::with_capacity(raw.len());
        for (k, v) in raw {
            let (key_bytes, t) = codec::split(&k, 2)
                .ok_or_else(|| Error::Internal(format!("corrupt session key in store {name}")))?;
            out.push((
                decode(&*self.key, name, Some(key_bytes))?,
                Window::new(t[1], t[0]),
                decode(&*self.value, name, Some(&v))?,
            ));
        }
        Ok(out)
    }
}
