//! A task's state stores: the backend holding the bytes, the changelog writes not yet sent,
//! the poisoning that stops writes after a failed flush, and the registry queries find them in.

use crate::error::{Error, Result};
use crate::state::StoreBackend;
use crate::state::backend::{Backend, BatchEntry, MemoryBackend};
use crate::state::cache::{CacheBudget, RecordCache};
use crate::state::rocksdb::{RocksDbBackend, RocksDbShared};
use crate::state::spec::StoreSpec;
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A write waiting for the changelog: key and value (`None` = a tombstone).
pub(crate) type PendingWrite = (Vec<u8>, Option<Vec<u8>>);

/// One store of one task.
pub(crate) struct TaskStore {
    pub spec: Arc<StoreSpec>,
    backend: Box<dyn Backend>,
    /// `(topic, partition)` of the changelog, when logging is on.
    pub changelog: Option<(String, i32)>,
    /// Writes to send to the changelog: `None` value = delete (a tombstone).
    pub pending: Vec<PendingWrite>,
    /// Raised with every write queued in `pending`, so that the task locks only the stores
    /// that have writes to send.
    unsent: Arc<AtomicBool>,
    /// Set when a flush failed: the store's contents can no longer be trusted.
    poisoned: bool,
    /// Queue writes in `pending` even without a changelog (for an external committer).
    pub capture: bool,
    /// Where a RocksDB backend lives, to reopen it with other tuning
    /// ([`TaskStore::bulk_load`]); `None` for other (not persistent) backends.
    reopen: Option<(std::path::PathBuf, RocksDbShared)>,
    /// Whether the backend is open tuned for a bulk load.
    bulk: bool,
    /// Recent entries, the dirty ones held back until the next flush (caching stores).
    cache: Option<RecordCache>,
    /// Where writes are announced to change-stream subscribers (set on registration).
    changes: Option<ChangeSender>,
    /// The task owning this instance (set on registration).
    task: Option<crate::record::TaskId>,
    /// For window and session stores: a lower bound of the time that decides when an entry
    /// expires (window start, session end) over every entry; `None` when unknown. Lets
    /// retention skip its full scan while nothing can have expired.
    pub expiry_floor: Option<i64>,
    /// Scratch buffers for the typed handles' encoded keys and values, and for values read
    /// from the backend.
    key_buf: Vec<u8>,
    value_buf: Vec<u8>,
    read_buf: Vec<u8>,
}

/// One write to a store, as change-stream subscribers see it (after the record cache).
#[derive(Debug, Clone)]
#[cfg_attr(
    not(feature = "server"),
    allow(dead_code, reason = "the query server reads it")
)]
pub(crate) struct StoreChange {
    pub task: crate::record::TaskId,
    pub key: Arc<[u8]>,
    /// `None` when the key was deleted.
    pub value: Option<Arc<[u8]>>,
}

/// Announces a store's writes to its subscribers.
pub(crate) type ChangeSender = tokio::sync::broadcast::Sender<StoreChange>;

/// Changes a slow change-stream subscriber may fall behind by before it misses some.
const CHANGE_BUFFER: usize = 4096;

/// A store shared by its task (writes) and interactive queries (reads from other threads).
pub(crate) type SharedStore = Arc<Mutex<TaskStore>>;

/// Tells change-stream subscribers and the changelog about a write that reached the backend.
struct Announce<'a> {
    changes: &'a Option<ChangeSender>,
    task: Option<crate::record::TaskId>,
    /// `Some` when writes are queued for the changelog (or an external committer).
    pending: Option<&'a mut Vec<PendingWrite>>,
    unsent: &'a AtomicBool,
}

impl Announce<'_> {
    fn write(&mut self, key: &[u8], value: Option<&[u8]>) {
        if let Some((tx, task)) = self.changes.as_ref().zip(self.task)
            && tx.receiver_count() > 0
        {
            // No subscriber, no copy: the hot path pays one atomic load.
            let _ = tx.send(StoreChange {
                task,
                key: key.into(),
                value: value.map(Into::into),
            });
        }
        if let Some(p) = &mut self.pending {
            p.push((key.to_vec(), value.map(<[u8]>::to_vec)));
            self.unsent.store(true, Ordering::Release);
        }
    }
}

impl TaskStore {
    pub fn open(
        spec: Arc<StoreSpec>,
        app_id: &str,
        partition: i32,
        dir: &Path,
        rocksdb: &RocksDbShared,
        cache: &Arc<CacheBudget>,
    ) -> Result<TaskStore> {
        let (backend, persistent): (Box<dyn Backend>, bool) = match spec.backend {
            StoreBackend::InMemory => (Box::new(MemoryBackend::default()), false),
            StoreBackend::RocksDb => (
                Box::new(RocksDbBackend::open(dir, &spec.name, rocksdb)?),
                true,
            ),
        };
        let changelog = spec
            .logging
            .then(|| (spec.changelog_topic().resolve(app_id), partition));
        let spec_caching = spec.caching;
        Ok(TaskStore {
            spec,
            backend,
            changelog,
            pending: Vec::new(),
            unsent: Arc::default(),
            poisoned: false,
            capture: false,
            // A new in-memory store is empty; a persistent one may hold anything.
            expiry_floor: (!persistent).then_some(i64::MAX),
            reopen: persistent.then(|| (dir.to_path_buf(), rocksdb.clone())),
            bulk: false,
            cache: (spec_caching && cache.enabled()).then(|| RecordCache::sharing(cache.clone())),
            changes: None,
            task: None,
            key_buf: Vec::new(),
            value_buf: Vec::new(),
            read_buf: Vec::new(),
        })
    }

    fn check(&self) -> Result<()> {
        if self.poisoned {
            return Err(Error::IllegalState(format!(
                "store {} refuses writes after a failed flush; the task must be restored",
                self.spec.name
            )));
        }
        Ok(())
    }

    /// The flag the task watches: raised when a write is queued for the changelog (now, if
    /// one is already queued).
    pub fn share_unsent_flag(&mut self, flag: Arc<AtomicBool>) {
        if !self.pending.is_empty() {
            flag.store(true, Ordering::Release);
        }
        self.unsent = flag;
    }

    fn announce(&mut self) -> Announce<'_> {
        let log = self.changelog.is_some() || self.capture;
        Announce {
            changes: &self.changes,
            task: self.task,
            pending: log.then_some(&mut self.pending),
            unsent: &self.unsent,
        }
    }

    #[cfg_attr(
        not(feature = "server"),
        allow(dead_code, reason = "the query server reads it")
    )]
    pub fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get_with(key, |v| v.map(<[u8]>::to_vec))
    }

    /// Calls `f` with the value of `key` (`None` when absent), without copying it out of the
    /// cache or allocating.
    pub fn get_with<R>(&mut self, key: &[u8], f: impl FnOnce(Option<&[u8]>) -> R) -> Result<R> {
        if let Some(cache) = &mut self.cache {
            if let Some(cached) = cache.get(key) {
                return Ok(f(cached));
            }
            if !self.backend.get_into(key, &mut self.read_buf)? {
                return Ok(f(None));
            }
            // A read of an existing key is cached (clean), as in Kafka Streams.
            cache.put(key, Some(&self.read_buf), false);
            let r = f(Some(&self.read_buf));
            self.enforce_budget()?;
            return Ok(r);
        }
        let found = self.backend.get_into(key, &mut self.read_buf)?;
        Ok(f(found.then_some(self.read_buf.as_slice())))
    }

    /// Runs `f` with the store and two cleared scratch buffers (for an encoded key and
    /// value), so that typed handles encode without allocating.
    pub fn with_bufs<R>(
        &mut self,
        f: impl FnOnce(&mut Self, &mut Vec<u8>, &mut Vec<u8>) -> R,
    ) -> R {
        let (mut k, mut v) = (
            std::mem::take(&mut self.key_buf),
            std::mem::take(&mut self.value_buf),
        );
        k.clear();
        v.clear();
        let r = f(self, &mut k, &mut v);
        (self.key_buf, self.value_buf) = (k, v);
        r
    }

    fn write(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        self.check()?;
        if value.is_some()
            && let Some(floor) = &mut self.expiry_floor
            && let Some(t) = crate::state::codec::expiry_time(self.spec.kind, key)
        {
            *floor = (*floor).min(t);
        }
        if let Some(cache) = &mut self.cache {
            cache.put(key, value, true);
            return self.enforce_budget();
        }
        match value {
            Some(v) => self.backend.put(key, v)?,
            None => self.backend.delete(key)?,
        }
        self.announce().write(key, value);
        Ok(())
    }

    /// Evicts least recently used cache entries until the cache fits its budget, flushing
    /// first when the next one to go is dirty.
    fn enforce_budget(&mut self) -> Result<()> {
        while let Some(cache) = &self.cache
            && cache.over_budget()
        {
            if cache.lru_is_dirty() {
                self.flush_cache()?;
            }
            if !self.cache.as_mut().is_some_and(RecordCache::evict_lru) {
                break;
            }
        }
        Ok(())
    }

    /// Writes the dirty cached entries to the backend (one batch) and queues them for the
    /// changelog, in the order they were first written since the last flush; they stay
    /// cached, clean.
    pub fn flush_cache(&mut self) -> Result<()> {
        let Some(cache) = &mut self.cache else {
            return Ok(());
        };
        if !cache.has_dirty() {
            return Ok(());
        }
        self.backend.write_all(&mut cache.dirty_entries())?;
        let log = self.changelog.is_some() || self.capture;
        let mut announce = Announce {
            changes: &self.changes,
            task: self.task,
            pending: log.then_some(&mut self.pending),
            unsent: &self.unsent,
        };
        for (k, v) in cache.dirty_entries() {
            announce.write(k, v);
        }
        cache.mark_clean();
        Ok(())
    }

    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.write(key, Some(value))
    }

    pub fn delete(&mut self, key: &[u8]) -> Result<()> {
        self.write(key, None)
    }

    /// Entries in key order (cached updates are written out first).
    pub fn range(
        &mut self,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.range_limit(from, to, usize::MAX)
    }

    /// The first `limit` entries of [`TaskStore::range`].
    pub fn range_limit(
        &mut self,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.flush_cache()?;
        self.backend.range_limit(from, to, limit)
    }

    pub fn approximate_len(&self) -> u64 {
        self.backend.approximate_len()
    }

    /// Empties the store without logging (before a restore from the changelog's beginning).
    pub fn wipe(&mut self) -> Result<()> {
        if let Some(cache) = &mut self.cache {
            cache.clear();
        }
        let keys = self.backend.range(Bound::Unbounded, Bound::Unbounded)?;
        self.backend
            .write_all(&mut keys.iter().map(|(k, _)| (k.as_slice(), None)))?;
        self.expiry_floor = Some(i64::MAX);
        Ok(())
    }

    /// Applies changelog records without logging them again (restore).
    #[cfg_attr(
        not(feature = "postgres"),
        allow(dead_code, reason = "the Postgres sink restores through it")
    )]
    pub fn restore(&mut self, records: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<()> {
        self.restore_entries(&mut records.iter().map(|(k, v)| (k.as_slice(), v.as_deref())))
    }

    /// [`TaskStore::restore`] from borrowed bytes (the restorer's reused buffers).
    pub fn restore_entries(
        &mut self,
        records: &mut dyn Iterator<Item = BatchEntry<'_>>,
    ) -> Result<()> {
        if let Some(cache) = &mut self.cache {
            // The backend changes under the cache: what it holds is stale. (Nothing is dirty
            // during a restore; flush anyway rather than lose a write.)
            if cache.has_dirty() {
                self.flush_cache()?;
            }
            if let Some(cache) = &mut self.cache {
                cache.clear();
            }
        }
        let (kind, floor) = (self.spec.kind, &mut self.expiry_floor);
        let mut tracked = records.inspect(|(k, v)| {
            if v.is_some()
                && let Some(floor) = floor.as_mut()
                && let Some(t) = crate::state::codec::expiry_time(kind, k)
            {
                *floor = (*floor).min(t);
            }
        });
        self.backend.write_all(&mut tracked)
    }

    /// Reopens a RocksDB backend tuned for a bulk load (`on`, before a large restore) or for
    /// processing again (after it). The close flushes the memtable (no WAL is written), so
    /// nothing is lost; other backends ignore it.
    pub fn bulk_load(&mut self, on: bool) -> Result<()> {
        let Some((dir, shared)) = self.reopen.clone() else {
            return Ok(());
        };
        if self.bulk == on {
            return Ok(());
        }
        self.backend.flush()?;
        // The old database must be closed (its lock released) before it opens again.
        self.backend = Box::new(MemoryBackend::default());
        match RocksDbBackend::open_tuned(&dir, &self.spec.name, &shared, on) {
            Ok(db) => {
                self.backend = Box::new(db);
                self.bulk = on;
                Ok(())
            }
            Err(e) => {
                self.poisoned = true;
                Err(e)
            }
        }
    }

    /// Whether the backend keeps its contents across restarts (so a checkpoint can skip
    /// most of the restore).
    pub fn is_persistent(&self) -> bool {
        self.reopen.is_some()
    }

    pub fn flush(&mut self) -> Result<()> {
        self.flush_cache()?;
        let r = self.backend.flush();
        if r.is_err() {
            self.poisoned = true;
        }
        r
    }
}

/// The stores of a task by name.
pub(crate) type TaskStores = HashMap<String, SharedStore>;

/// The stores of every task of an application instance, by store name then task, for
/// interactive queries; and per store name, the channel its change stream is sent on.
#[derive(Clone, Default)]
pub(crate) struct StoreRegistry(Arc<Mutex<RegistryInner>>);

#[derive(Default)]
struct RegistryInner {
    stores: HashMap<String, BTreeMap<crate::record::TaskId, SharedStore>>,
    changes: HashMap<String, ChangeSender>,
    /// Bumped on every (un)registration, so watchers see that the assignment changed.
    version: u64,
}

impl RegistryInner {
    fn sender(&mut self, name: &str) -> ChangeSender {
        self.changes
            .entry(name.to_string())
            .or_insert_with(|| tokio::sync::broadcast::channel(CHANGE_BUFFER).0)
            .clone()
    }
}

impl StoreRegistry {
    pub fn register(&self, task: crate::record::TaskId, stores: &TaskStores) {
        let mut all = self.0.lock().expect("registry lock");
        for (name, store) in stores {
            let tx = all.sender(name);
            {
                let mut s = store.lock().expect("store lock");
                s.changes = Some(tx);
                s.task = Some(task);
            }
            all.stores
                .entry(name.clone())
                .or_default()
                .insert(task, store.clone());
        }
        all.version += 1;
    }

    pub fn unregister(&self, task: crate::record::TaskId) {
        let mut all = self.0.lock().expect("registry lock");
        for by_task in all.stores.values_mut() {
            by_task.remove(&task);
        }
        all.version += 1;
    }

    /// The instances of store `name`, one per task that has it open.
    pub fn get(&self, name: &str) -> Vec<SharedStore> {
        self.0
            .lock()
            .expect("registry lock")
            .stores
            .get(name)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The instances of store `name` by task.
    pub fn get_by_task(&self, name: &str) -> BTreeMap<crate::record::TaskId, SharedStore> {
        self.0
            .lock()
            .expect("registry lock")
            .stores
            .get(name)
            .cloned()
            .unwrap_or_default()
    }

    /// Names of every store open in this instance.
    pub fn names(&self) -> Vec<String> {
        self.0
            .lock()
            .expect("registry lock")
            .stores
            .iter()
            .filter(|(_, m)| !m.is_empty())
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Per open store, the partitions (tasks) of it this instance holds; and the registry
    /// version that snapshot reflects.
    #[cfg_attr(
        not(feature = "server"),
        allow(dead_code, reason = "the query server reads it")
    )]
    pub fn assignment(&self) -> (u64, BTreeMap<String, Vec<i32>>) {
        let all = self.0.lock().expect("registry lock");
        let map = all
            .stores
            .iter()
            .filter(|(_, m)| !m.is_empty())
            .map(|(n, m)| (n.clone(), m.keys().map(|t| t.partition).collect()))
            .collect();
        (all.version, map)
    }

    /// Subscribes to every later write of store `name` on this instance (whichever tasks it
    /// moves to).
    /// A receiver of every write to store `name` on this instance, unless `max` subscribers
    /// already follow it.
    #[cfg_attr(
        not(feature = "server"),
        allow(dead_code, reason = "the query server reads it")
    )]
    pub fn subscribe_at_most(
        &self,
        name: &str,
        max: usize,
    ) -> Option<tokio::sync::broadcast::Receiver<StoreChange>> {
        let sender = self.0.lock().expect("registry lock").sender(name);
        (sender.receiver_count() < max).then(|| sender.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_takes_at_most_max_change_subscribers() {
        let registry = StoreRegistry::default();
        let a = registry.subscribe_at_most("counts", 2).unwrap();
        let _b = registry.subscribe_at_most("counts", 2).unwrap();
        assert!(registry.subscribe_at_most("counts", 2).is_none());
        assert!(registry.subscribe_at_most("other", 2).is_some());
        drop(a);
        assert!(registry.subscribe_at_most("counts", 2).is_some());
    }

    #[test]
    fn a_store_reopened_for_a_bulk_load_and_back_keeps_every_entry() {
        let dir = tempfile::tempdir().unwrap();
        let spec = crate::state::spec::StoreSpec {
            name: "bulk".into(),
            kind: crate::state::spec::StoreKind::KeyValue,
            backend: crate::state::StoreBackend::RocksDb,
            logging: true,
            caching: false,
            serdes: Arc::new(crate::state::handle::StoreSerdes::<String, String> {
                key: Arc::new(crate::serde::Serdes::string()),
                value: Arc::new(crate::serde::Serdes::string()),
            }),
        };
        let shared = RocksDbShared::new(crate::state::RocksDbMemory::default());
        let mut store = TaskStore::open(
            Arc::new(spec),
            "app",
            0,
            dir.path(),
            &shared,
            &CacheBudget::new(0),
        )
        .unwrap();
        store.put(b"before", b"1").unwrap();
        store.bulk_load(true).unwrap();
        store
            .restore(&[
                (b"a".to_vec(), Some(b"2".to_vec())),
                (b"before".to_vec(), None),
                (b"b".to_vec(), Some(b"3".to_vec())),
            ])
            .unwrap();
        store.bulk_load(false).unwrap();
        store.bulk_load(false).unwrap(); // already tuned for processing: nothing to do
        store.put(b"c", b"4").unwrap();
        let all = store.range(Bound::Unbounded, Bound::Unbounded).unwrap();
        let expect: Vec<(Vec<u8>, Vec<u8>)> = [("a", "2"), ("b", "3"), ("c", "4")]
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect();
        assert_eq!(all, expect);
    }
}
