//! A task's state stores: the backend holding the bytes, the changelog writes not yet sent,
//! and the poisoning that stops writes after a failed flush.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::state::cache::{CacheBudget, RecordCache};
use crate::state::rocksdb::{RocksDbBackend, RocksDbShared};
use crate::stream::StoreBackend;
use crate::topology::StoreSpec;

/// A write (`Some` value) or delete (`None`) of a batch applied without logging.
pub(crate) type BatchEntry<'a> = (&'a [u8], Option<&'a [u8]>);

/// The bytes side of a store; typed handles in [`crate::processor`] wrap it with serdes.
pub(crate) trait Backend: Send {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Copies the value of `key` into `out` (cleared first); `false` when there is none. Saves
    /// the allocation of [`Backend::get`] on the hot path.
    fn get_into(&self, key: &[u8], out: &mut Vec<u8>) -> Result<bool> {
        out.clear();
        Ok(self.get(key)?.map(|v| out.extend_from_slice(&v)).is_some())
    }
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()>;
    fn delete(&mut self, key: &[u8]) -> Result<()>;
    /// Entries with keys in the range, in byte order.
    fn range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.range_limit(from, to, usize::MAX)
    }
    /// The first `limit` entries of [`range`](Self::range): a query asking for a page reads
    /// a page, not the whole range.
    fn range_limit(
        &self,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
    fn approximate_len(&self) -> u64;
    fn flush(&mut self) -> Result<()>;
    /// Writes (`Some`) and deletes (`None`) in order, as one batch where the backend has
    /// batches (RocksDB: one `WriteBatch`, which a restore of millions of records needs).
    fn write_all(&mut self, records: &mut dyn Iterator<Item = BatchEntry<'_>>) -> Result<()> {
        for (k, v) in records {
            match v {
                Some(v) => self.put(k, v)?,
                None => self.delete(k)?,
            }
        }
        Ok(())
    }
}

/// A sorted in-memory map.
#[derive(Default)]
pub(crate) struct MemoryBackend(BTreeMap<Vec<u8>, Vec<u8>>);

impl Backend for MemoryBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.0.get(key).cloned())
    }
    fn get_into(&self, key: &[u8], out: &mut Vec<u8>) -> Result<bool> {
        out.clear();
        Ok(self.0.get(key).map(|v| out.extend_from_slice(v)).is_some())
    }
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        match self.0.get_mut(key) {
            Some(v) => {
                v.clear();
                v.extend_from_slice(value);
            }
            None => {
                self.0.insert(key.to_vec(), value.to_vec());
            }
        }
        Ok(())
    }
    fn delete(&mut self, key: &[u8]) -> Result<()> {
        self.0.remove(key);
        Ok(())
    }
    fn range_limit(
        &self,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if let (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) =
            (from, to)
            && a > b
        {
            return Ok(Vec::new());
        }
        Ok(self
            .0
            .range::<[u8], _>((from, to))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
    fn approximate_len(&self) -> u64 {
        self.0.len() as u64
    }
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

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
    task: Option<crate::runtime::TaskId>,
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
pub(crate) struct StoreChange {
    pub task: crate::runtime::TaskId,
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
    task: Option<crate::runtime::TaskId>,
    /// `Some` when writes are queued for the changelog (or an external committer).
    pending: Option<&'a mut Vec<PendingWrite>>,
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

    fn announce(&mut self) -> Announce<'_> {
        let log = self.changelog.is_some() || self.capture;
        Announce {
            changes: &self.changes,
            task: self.task,
            pending: log.then_some(&mut self.pending),
        }
    }

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
            && let Some(t) = crate::processor::codec::expiry_time(self.spec.kind, key)
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
                && let Some(t) = crate::processor::codec::expiry_time(kind, k)
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
    stores: HashMap<String, BTreeMap<crate::runtime::TaskId, SharedStore>>,
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
    pub fn register(&self, task: crate::runtime::TaskId, stores: &TaskStores) {
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

    pub fn unregister(&self, task: crate::runtime::TaskId) {
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
    pub fn get_by_task(&self, name: &str) -> BTreeMap<crate::runtime::TaskId, SharedStore> {
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
    pub fn subscribe_at_most(
        &self,
        name: &str,
        max: usize,
    ) -> Option<tokio::sync::broadcast::Receiver<StoreChange>> {
        let sender = self.0.lock().expect("registry lock").sender(name);
        (sender.receiver_count() < max).then(|| sender.subscribe())
    }
}

/// `<task dir>/.checkpoint`: per store, the changelog offset its persistent contents reflect.
/// One `store offset` line each; rewritten atomically (write + rename) at every commit.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Checkpoint(pub BTreeMap<String, i64>);

impl Checkpoint {
    const FILE: &str = ".checkpoint";

    pub fn read(dir: &Path) -> Result<Checkpoint> {
        let path = dir.join(Self::FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Checkpoint::default()),
            Err(e) => return Err(e.into()),
        };
        let mut map = BTreeMap::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let parsed = line
                .rsplit_once(' ')
                .and_then(|(s, o)| o.parse::<i64>().ok().map(|o| (s.to_string(), o)));
            match parsed {
                Some((store, offset)) => {
                    map.insert(store, offset);
                }
                None => {
                    // A torn or foreign file: restore everything from the beginning.
                    tracing::warn!(path = %path.display(), "ignoring unreadable checkpoint");
                    return Ok(Checkpoint::default());
                }
            }
        }
        Ok(Checkpoint(map))
    }

    /// Deletes the checkpoint file, if there is one.
    pub fn remove(dir: &Path) -> Result<()> {
        match std::fs::remove_file(dir.join(Self::FILE)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Writes the file durably, as Kafka Streams' `OffsetCheckpoint` does: the data is synced
    /// before the rename and the directory after it, so a power loss leaves either the old
    /// checkpoint or the new one — never a renamed file whose contents were not yet on disk,
    /// which would claim offsets the stores do not hold.
    pub fn write(&self, dir: &Path) -> Result<()> {
        use std::io::Write;
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(".checkpoint.tmp");
        let text: String = self.0.iter().map(|(s, o)| format!("{s} {o}\n")).collect();
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(tmp, dir.join(Self::FILE))?;
        std::fs::File::open(dir)?.sync_all()?;
        Ok(())
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
        let spec = crate::processor::StoreBuilder::key_value(
            "bulk",
            crate::serde::Serdes::string(),
            crate::serde::Serdes::string(),
        )
        .spec;
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

    #[test]
    fn checkpoints_round_trip_and_tolerate_garbage() {
        let dir = std::env::temp_dir().join(format!("streamkit-ckpt-{}", std::process::id()));
        let c = Checkpoint(BTreeMap::from([
            ("counts".to_string(), 42),
            ("sums".to_string(), 7),
        ]));
        c.write(&dir).unwrap();
        assert_eq!(Checkpoint::read(&dir).unwrap(), c);
        std::fs::write(dir.join(".checkpoint"), "counts forty-two").unwrap();
        assert_eq!(Checkpoint::read(&dir).unwrap(), Checkpoint::default());
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(Checkpoint::read(&dir).unwrap(), Checkpoint::default());
    }
}
