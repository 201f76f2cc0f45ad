//! State stores as processors see them: typed handles over a task's stores, and the
//! [`StoreBuilder`] that declares a store for a custom processor.
//!
//! Every write goes to the store and, when logging is on, to the store's changelog topic
//! (`<application-id>-<store>-changelog`, written to the task's partition), from which the
//! store is restored after a crash or when its task moves to another instance.

use std::any::Any;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::processor::Data;
use crate::runtime::stores::SharedStore;
use crate::serde::{Serde, SerdeRef, decode};
use crate::stream::StoreBackend;
use crate::topology::{StoreKind, StoreSpec};
use crate::window::Window;

/// The serdes of a store, kept type-erased in the topology.
pub(crate) struct StoreSerdes<K, V> {
    pub key: SerdeRef<K>,
    pub value: SerdeRef<V>,
}

/// A store's serdes as the type-erased topology holds them: downcast to [`StoreSerdes`] for a
/// typed handle, or convert keys and values to and from JSON through the serdes without
/// knowing the types (the query server).
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

/// Declares a store for [`KStream::process_with_stores`](crate::stream::KStream::process_with_stores).
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

/// Byte layouts of windowed store keys: `key ‖ t1 ‖ [t2]`, timestamps 8 bytes big-endian with
/// the sign bit flipped so that negative times sort before positive ones. A variable-length
/// key followed by a fixed suffix sorts by (key, time) only among entries of the *same* key,
/// so every scan is per key and checks the key bytes of what it finds.
pub(crate) mod codec {
    /// Layout version, written next to every persistent store and checked when it opens; bump
    /// it (with a migration) if a layout ever changes.
    pub const LAYOUT_VERSION: u8 = 1;

    pub fn time(ts: i64) -> [u8; 8] {
        ((ts as u64) ^ (1 << 63)).to_be_bytes()
    }

    pub fn read_time(b: &[u8]) -> i64 {
        (u64::from_be_bytes(b.try_into().expect("8 bytes")) ^ (1 << 63)) as i64
    }

    pub fn key_with(key: &[u8], times: &[i64]) -> Vec<u8> {
        let mut out = Vec::with_capacity(key.len() + 8 * times.len());
        out.extend_from_slice(key);
        for t in times {
            out.extend_from_slice(&time(*t));
        }
        out
    }

    /// The time that decides when an entry of a store of `kind` expires: a window's start, a
    /// session's end; `None` for key-value stores (and keys too short to hold it).
    pub fn expiry_time(kind: crate::topology::StoreKind, raw: &[u8]) -> Option<i64> {
        use crate::topology::StoreKind;
        // Window keys end with the start; session keys with end ‖ start.
        let from_end = match kind {
            StoreKind::KeyValue => return None,
            StoreKind::Window { .. } => 8,
            StoreKind::Session { .. } => 16,
        };
        let at = raw.len().checked_sub(from_end)?;
        Some(read_time(&raw[at..at + 8]))
    }

    /// Splits `key ‖ n timestamps`; `None` if too short.
    pub fn split(raw: &[u8], n: usize) -> Option<(&[u8], Vec<i64>)> {
        let suffix = 8 * n;
        if raw.len() < suffix {
            return None;
        }
        let (key, times) = raw.split_at(raw.len() - suffix);
        Some((key, times.chunks(8).map(read_time).collect()))
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

#[cfg(test)]
mod codec_properties {
    use super::codec;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn window_keys_round_trip(key in proptest::collection::vec(any::<u8>(), 0..40), t in any::<i64>()) {
            let raw = codec::key_with(&key, &[t]);
            let (k, times) = codec::split(&raw, 1).unwrap();
            prop_assert_eq!(k, key.as_slice());
            prop_assert_eq!(times, vec![t]);
        }

        #[test]
        fn byte_order_is_time_order_within_a_key(key in proptest::collection::vec(any::<u8>(), 0..20), a in any::<i64>(), b in any::<i64>()) {
            let (ka, kb) = (codec::key_with(&key, &[a]), codec::key_with(&key, &[b]));
            prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
        }

        #[test]
        fn byte_order_is_key_then_time_order_for_equal_length_keys(
            k1 in proptest::collection::vec(any::<u8>(), 8),
            k2 in proptest::collection::vec(any::<u8>(), 8),
            a in any::<i64>(),
            b in any::<i64>(),
        ) {
            let (x, y) = (codec::key_with(&k1, &[a]), codec::key_with(&k2, &[b]));
            prop_assert_eq!(x.cmp(&y), (&k1, a).cmp(&(&k2, b)));
        }

        #[test]
        fn session_keys_order_by_end_then_start(key in proptest::collection::vec(any::<u8>(), 0..20), e1 in any::<i64>(), s1 in any::<i64>(), e2 in any::<i64>(), s2 in any::<i64>()) {
            let (x, y) = (codec::key_with(&key, &[e1, s1]), codec::key_with(&key, &[e2, s2]));
            prop_assert_eq!(x.cmp(&y), (e1, s1).cmp(&(e2, s2)));
            let (k, times) = codec::split(&x, 2).unwrap();
            prop_assert_eq!(k, key.as_slice());
            prop_assert_eq!(times, vec![e1, s1]);
        }

        #[test]
        fn expiry_time_is_the_window_start_or_the_session_end(key in proptest::collection::vec(any::<u8>(), 0..20), a in any::<i64>(), b in any::<i64>()) {
            use crate::topology::StoreKind;
            let window = StoreKind::Window { retention_ms: 1 };
            let session = StoreKind::Session { retention_ms: 1 };
            prop_assert_eq!(codec::expiry_time(window, &codec::key_with(&key, &[a])), Some(a));
            prop_assert_eq!(codec::expiry_time(session, &codec::key_with(&key, &[a, b])), Some(a));
            prop_assert_eq!(codec::expiry_time(StoreKind::KeyValue, &codec::key_with(&key, &[a])), None);
            prop_assert_eq!(codec::expiry_time(session, &key[..key.len().min(15)]), None);
        }

        #[test]
        fn short_input_is_rejected(raw in proptest::collection::vec(any::<u8>(), 0..8)) {
            prop_assert!(codec::split(&raw, 1).is_none());
        }
    }
}
