//! A task's state stores: the backend holding the bytes, the changelog writes not yet sent,
//! and the poisoning that stops writes after a failed flush.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::stream::StoreBackend;
use crate::topology::StoreSpec;

/// The bytes side of a store; typed handles in [`crate::processor`] wrap it with serdes.
pub(crate) trait Backend: Send {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()>;
    fn delete(&mut self, key: &[u8]) -> Result<()>;
    /// Entries with keys in the range, in byte order.
    fn range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
    fn approximate_len(&self) -> u64;
    fn flush(&mut self) -> Result<()>;
}

/// A sorted in-memory map.
#[derive(Default)]
pub(crate) struct MemoryBackend(BTreeMap<Vec<u8>, Vec<u8>>);

impl Backend for MemoryBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.0.get(key).cloned())
    }
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.0.insert(key.to_vec(), value.to_vec());
        Ok(())
    }
    fn delete(&mut self, key: &[u8]) -> Result<()> {
        self.0.remove(key);
        Ok(())
    }
    fn range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if let (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) =
            (from, to)
        {
            if a > b {
                return Ok(Vec::new());
            }
        }
        Ok(self
            .0
            .range::<[u8], _>((from, to))
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

/// One store of one task.
pub(crate) struct TaskStore {
    pub spec: Arc<StoreSpec>,
    backend: Box<dyn Backend>,
    /// `(topic, partition)` of the changelog, when logging is on.
    pub changelog: Option<(String, i32)>,
    /// Writes to send to the changelog: `None` value = delete (a tombstone).
    pub pending: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// Set when a flush failed: the store's contents can no longer be trusted.
    poisoned: bool,
}

/// A store shared by its task (writes) and interactive queries (reads from other threads).
pub(crate) type SharedStore = Arc<Mutex<TaskStore>>;

impl TaskStore {
    pub fn open(
        spec: Arc<StoreSpec>,
        app_id: &str,
        partition: i32,
        _dir: &Path,
    ) -> Result<TaskStore> {
        let backend: Box<dyn Backend> = match spec.backend {
            StoreBackend::InMemory | StoreBackend::RocksDb => Box::new(MemoryBackend::default()),
        };
        let changelog = spec
            .logging
            .then(|| (spec.changelog_topic().resolve(app_id), partition));
        Ok(TaskStore {
            spec,
            backend,
            changelog,
            pending: Vec::new(),
            poisoned: false,
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

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.backend.get(key)
    }

    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.check()?;
        self.backend.put(key, value)?;
        if self.changelog.is_some() {
            self.pending.push((key.to_vec(), Some(value.to_vec())));
        }
        Ok(())
    }

    pub fn delete(&mut self, key: &[u8]) -> Result<()> {
        self.check()?;
        self.backend.delete(key)?;
        if self.changelog.is_some() {
            self.pending.push((key.to_vec(), None));
        }
        Ok(())
    }

    pub fn range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.backend.range(from, to)
    }

    pub fn approximate_len(&self) -> u64 {
        self.backend.approximate_len()
    }

    pub fn flush(&mut self) -> Result<()> {
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
/// interactive queries.
#[derive(Clone, Default)]
pub(crate) struct StoreRegistry(
    Arc<Mutex<HashMap<String, BTreeMap<crate::runtime::TaskId, SharedStore>>>>,
);

impl StoreRegistry {
    pub fn register(&self, task: crate::runtime::TaskId, stores: &TaskStores) {
        let mut all = self.0.lock().expect("registry lock");
        for (name, store) in stores {
            all.entry(name.clone())
                .or_default()
                .insert(task, store.clone());
        }
    }

    pub fn unregister(&self, task: crate::runtime::TaskId) {
        let mut all = self.0.lock().expect("registry lock");
        for by_task in all.values_mut() {
            by_task.remove(&task);
        }
    }

    /// The instances of store `name`, one per task that has it open.
    pub fn get(&self, name: &str) -> Vec<SharedStore> {
        self.0
            .lock()
            .expect("registry lock")
            .get(name)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Names of every store open in this instance.
    pub fn names(&self) -> Vec<String> {
        self.0
            .lock()
            .expect("registry lock")
            .iter()
            .filter(|(_, m)| !m.is_empty())
            .map(|(n, _)| n.clone())
            .collect()
    }
}
