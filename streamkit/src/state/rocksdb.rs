//! The RocksDB backend of a store.

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use rocksdb::{
    BlockBasedOptions, Cache, DB, Options, ReadOptions, WriteBufferManager, WriteOptions,
};

use super::RocksDbMemory;
use crate::error::{Error, Result};
use crate::state::backend::Backend;
use crate::state::backend::BatchEntry;

/// The block cache and write-buffer manager all stores of an instance share.
#[derive(Clone)]
pub(crate) struct RocksDbShared {
    inner: Arc<(Cache, WriteBufferManager)>,
}

impl RocksDbShared {
    pub fn new(memory: RocksDbMemory) -> Self {
        let cache = Cache::new_lru_cache(memory.block_cache_bytes);
        // Memtable memory is charged to the block cache too, so the two together stay within
        // the budget; over it, the manager flushes memtables. Writers are not stalled: a stall
        // waits until memtable memory falls below the budget, which never happens once the
        // stores' minimum reservations (about 1 MiB per open memtable) exceed it — 51 window
        // stores (tasks) under the default 32 MiB hung forever in the benchmark.
        let wbm = WriteBufferManager::new_write_buffer_manager_with_cache(
            memory.write_buffer_bytes,
            false,
            cache.clone(),
        );
        RocksDbShared {
            inner: Arc::new((cache, wbm)),
        }
    }

    /// Bytes in use: (block cache, pinned block cache entries, memtables).
    pub fn usage(&self) -> (usize, usize, usize) {
        let (cache, wbm) = &*self.inner;
        (cache.get_usage(), cache.get_pinned_usage(), wbm.get_usage())
    }
}

/// The byte layout a store was written with lives in `STREAMKIT_LAYOUT` beside its files; a
/// store written by another layout version is refused rather than misread.
fn check_layout(path: &Path) -> Result<()> {
    let file = path.join("STREAMKIT_LAYOUT");
    let current = crate::state::codec::LAYOUT_VERSION.to_string();
    match std::fs::read_to_string(&file) {
        Ok(found) if found.trim() == current => Ok(()),
        Ok(found) => Err(Error::IllegalState(format!(
            "store {} was written with byte layout {}, this build uses {current}; delete the task's \
             state directory to rebuild it from the changelog",
            path.display(),
            found.trim()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(std::fs::write(file, current)?),
        Err(e) => Err(e.into()),
    }
}

fn rocks_err(e: rocksdb::Error) -> Error {
    Error::Io(std::io::Error::other(format!("rocksdb: {e}")))
}

pub(crate) struct RocksDbBackend {
    db: DB,
    write: WriteOptions,
    /// Point reads: no checksum verification (the changelog, not RocksDB, is the durable
    /// copy; a corrupt file is caught by compaction and by scans).
    read: ReadOptions,
}

impl RocksDbBackend {
    /// Opens (creating if needed) the store at `dir/rocksdb/name`, tuned for processing.
    pub fn open(dir: &Path, name: &str, shared: &RocksDbShared) -> Result<Self> {
        Self::open_tuned(dir, name, shared, false)
    }

    /// [`RocksDbBackend::open`], tuned for a bulk load (a large restore) when `bulk`: without
    /// in-place memtable updates and the memtable filter, which speed up processing (reads
    /// and rewrites of the same keys) but make each insert of a restore dearer.
    pub fn open_tuned(dir: &Path, name: &str, shared: &RocksDbShared, bulk: bool) -> Result<Self> {
        let path = dir.join("rocksdb").join(name);
        std::fs::create_dir_all(&path)?;
        check_layout(&path)?;
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&shared.inner.0);
        // Whole-key bloom filters: most reads of a new window's or key's entry find nothing,
        // and without a filter each such miss reads a block of every level.
        table.set_bloom_filter(10.0, false);
        table.set_cache_index_and_filter_blocks(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.set_block_based_table_factory(&table);
        opts.set_write_buffer_manager(&shared.inner.1);
        // No compression, as in Kafka Streams: stores are small and short-lived (windows
        // expire), and compressing every flush and compaction cost more CPU than it saved.
        opts.set_compression_type(rocksdb::DBCompressionType::None);
        // A store has one writer (its task, under the store's lock) and no snapshots: an
        // update of a key whose new value is no larger overwrites the memtable entry in place
        // (aggregates rewrite the same keys all the time), rather than adding a version that
        // every later read of the key walks past.
        opts.set_allow_concurrent_memtable_write(false);
        opts.set_inplace_update_support(!bulk);
        // A bloom filter over the memtable's whole keys: reads of absent keys (a new window,
        // a join's new timestamp) skip the skip-list search.
        if !bulk {
            opts.set_memtable_whole_key_filtering(true);
            opts.set_memtable_prefix_bloom_ratio(0.05);
        } else {
            // A bulk load writes each key once: small memtables flushed often cost little and
            // keep a restore's memory down (the default 64 MiB memtable, under the shared
            // budget, was most of a restoring instance's peak RSS).
            opts.set_write_buffer_size(4 << 20);
        }
        let db = DB::open(&opts, &path).map_err(rocks_err)?;
        let mut write = WriteOptions::default();
        // The changelog is the durable log; RocksDB's own WAL would write everything twice.
        write.disable_wal(true);
        let mut read = ReadOptions::default();
        read.set_verify_checksums(false);
        Ok(RocksDbBackend { db, write, read })
    }
}

impl Backend for RocksDbBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db.get_opt(key, &self.read).map_err(rocks_err)
    }

    fn get_into(&self, key: &[u8], out: &mut Vec<u8>) -> Result<bool> {
        out.clear();
        match self.db.get_pinned_opt(key, &self.read).map_err(rocks_err)? {
            Some(v) => {
                out.extend_from_slice(&v);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.db.put_opt(key, value, &self.write).map_err(rocks_err)
    }

    fn delete(&mut self, key: &[u8]) -> Result<()> {
        self.db.delete_opt(key, &self.write).map_err(rocks_err)
    }

    fn write_all(&mut self, records: &mut dyn Iterator<Item = BatchEntry<'_>>) -> Result<()> {
        let mut batch = rocksdb::WriteBatch::default();
        for (k, v) in records {
            match v {
                Some(v) => batch.put(k, v),
                None => batch.delete(k),
            }
        }
        self.db.write_opt(batch, &self.write).map_err(rocks_err)
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
        let mut read = ReadOptions::default();
        read.set_verify_checksums(false);
        // Bounds let RocksDB stop at the end of the range instead of at the next live key
        // past it (which may lie behind many tombstones or in another file).
        match to {
            Bound::Included(b) => {
                // The smallest key above `b` is `b ‖ 0x00`.
                let mut upper = Vec::with_capacity(b.len() + 1);
                upper.extend_from_slice(b);
                upper.push(0);
                read.set_iterate_upper_bound(upper);
            }
            Bound::Excluded(b) => read.set_iterate_upper_bound(b),
            Bound::Unbounded => {}
        }
        let mut iter = self.db.raw_iterator_opt(read);
        match from {
            Bound::Included(a) | Bound::Excluded(a) => iter.seek(a),
            Bound::Unbounded => iter.seek_to_first(),
        }
        let mut out = Vec::new();
        while out.len() < limit
            && let (Some(k), Some(v)) = (iter.key(), iter.value())
        {
            let skip = matches!(from, Bound::Excluded(a) if k == a);
            if !skip {
                out.push((k.to_vec(), v.to_vec()));
            }
            iter.next();
        }
        iter.status().map_err(rocks_err)?;
        Ok(out)
    }

    fn approximate_len(&self) -> u64 {
        self.db
            .property_int_value("rocksdb.estimate-num-keys")
            .ok()
            .flatten()
            .unwrap_or(0)
    }

    fn flush(&mut self) -> Result<()> {
        self.db.flush().map_err(rocks_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::backend::MemoryBackend;

    /// The same range queries give the same answers on both backends.
    fn exercise(b: &mut dyn Backend) {
        for k in [b"a".as_slice(), b"b", b"ba", b"c", b"d"] {
            b.put(k, k).unwrap();
        }
        b.delete(b"d").unwrap();
        let keys = |r: Vec<(Vec<u8>, Vec<u8>)>| {
            r.into_iter()
                .map(|(k, _)| String::from_utf8(k).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            keys(b.range(Bound::Unbounded, Bound::Unbounded).unwrap()),
            ["a", "b", "ba", "c"]
        );
        assert_eq!(
            keys(
                b.range(Bound::Included(b"b"), Bound::Included(b"c"))
                    .unwrap()
            ),
            ["b", "ba", "c"]
        );
        assert_eq!(
            keys(
                b.range(Bound::Excluded(b"b"), Bound::Excluded(b"c"))
                    .unwrap()
            ),
            ["ba"]
        );
        assert_eq!(
            keys(b.range(Bound::Included(b"bb"), Bound::Unbounded).unwrap()),
            ["c"]
        );
        // A limited range stops after `limit` entries (an excluded start is not one of them).
        assert_eq!(
            keys(
                b.range_limit(Bound::Unbounded, Bound::Unbounded, 2)
                    .unwrap()
            ),
            ["a", "b"]
        );
        assert_eq!(
            keys(
                b.range_limit(Bound::Excluded(b"a"), Bound::Unbounded, 2)
                    .unwrap()
            ),
            ["b", "ba"]
        );
        assert!(
            b.range_limit(Bound::Unbounded, Bound::Unbounded, 0)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            keys(
                b.range(Bound::Included(b"z"), Bound::Included(b"a"))
                    .unwrap()
            ),
            Vec::<String>::new()
        );
        assert_eq!(b.get(b"ba").unwrap().as_deref(), Some(b"ba".as_slice()));
        assert_eq!(b.get(b"d").unwrap(), None);
    }

    #[test]
    fn memory_and_rocksdb_agree_on_ranges() {
        exercise(&mut MemoryBackend::default());
        let dir = tempfile::tempdir().unwrap();
        let shared = RocksDbShared::new(RocksDbMemory::default());
        exercise(&mut RocksDbBackend::open(dir.path(), "s", &shared).unwrap());
    }
}

#[cfg(test)]
mod recover {
    use super::*;

    #[test]
    fn rocksdb_store_recovers_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let shared = RocksDbShared::new(RocksDbMemory::default());
        {
            let mut b = RocksDbBackend::open(dir.path(), "counts", &shared).unwrap();
            for i in 0..1000u32 {
                b.put(&i.to_be_bytes(), format!("v{i}").as_bytes()).unwrap();
            }
            for i in (0..1000u32).step_by(10) {
                b.delete(&i.to_be_bytes()).unwrap();
            }
            b.flush().unwrap();
            b.put(b"after-flush", b"x").unwrap();
            // Dropped without a second flush: closing must persist the memtable even though
            // the WAL is off.
        }
        let b = RocksDbBackend::open(dir.path(), "counts", &shared).unwrap();
        let all = b.range(Bound::Unbounded, Bound::Unbounded).unwrap();
        assert_eq!(all.len(), 900 + 1);
        assert_eq!(
            b.get(&7u32.to_be_bytes()).unwrap().as_deref(),
            Some(b"v7".as_slice())
        );
        assert_eq!(b.get(&10u32.to_be_bytes()).unwrap(), None);
        assert_eq!(
            b.get(b"after-flush").unwrap().as_deref(),
            Some(b"x".as_slice())
        );
    }
}

#[cfg(test)]
mod budget {
    use super::*;

    /// More stores than the memtable budget has room for (each open memtable reserves about
    /// 1 MiB of it) still take writes: the budget flushes, it never blocks writers for good.
    #[test]
    fn more_stores_than_the_write_budget_holds_do_not_block_writes() {
        let dir = tempfile::tempdir().unwrap();
        let shared = RocksDbShared::new(RocksDbMemory {
            block_cache_bytes: 8 << 20,
            write_buffer_bytes: 4 << 20,
        });
        let path = dir.path().to_path_buf();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut stores: Vec<RocksDbBackend> = (0..12)
                .map(|i| RocksDbBackend::open(&path, &format!("s{i}"), &shared).unwrap())
                .collect();
            for i in 0..2_000u32 {
                for s in &mut stores {
                    s.put(&i.to_be_bytes(), &[7u8; 100]).unwrap();
                }
            }
            let _ = done_tx.send(
                stores
                    .iter()
                    .all(|s| s.get(&1999u32.to_be_bytes()).unwrap().is_some()),
            );
        });
        // A deadlock detector, not a speed check: the writes take well under a second.
        let all_written = done_rx
            .recv_timeout(std::time::Duration::from_secs(120))
            .expect("writes blocked: the write buffer manager stalled them");
        assert!(all_written);
    }
}
