//! The bytes side of a state store: the [`Backend`] trait, and the in-memory backend
//! (RocksDB's is in [`super::rocksdb`]).

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::error::Result;

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
