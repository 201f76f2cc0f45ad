//! The record cache in front of a caching store (Kafka Streams' `NamedCache`): recent entries
//! by key, each *dirty* (written since the last flush, not in the backend yet) or *clean* (the
//! same as the backend), in least-recently-used order.
//!
//! Repeated updates of a key between flushes collapse into one backend write and one changelog
//! record. A flush hands the dirty entries out in the order they became dirty and keeps them,
//! clean, so the next reads and updates of hot keys still hit memory. Over its byte budget the
//! cache drops its least recently used entries; when that entry is dirty its owner flushes
//! first (see [`RecordCache::lru_is_dirty`]), as Kafka Streams does.
//!
//! Entries live in a slab (`slots`), indexed by a hash table of slot numbers and threaded on a
//! doubly linked LRU list by slot number, so a hit costs one hash of the key and no allocation.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hashbrown::HashTable;

/// Bytes charged per entry besides its key and value: the slot, the table entry and the two
/// allocations' headers, roughly, so that the budget bounds the memory actually used.
pub(crate) const ENTRY_OVERHEAD: usize = 96;

/// No slot (end of the LRU list).
const NIL: u32 = u32::MAX;

struct Slot {
    key: Box<[u8]>,
    /// `None`: the key is deleted (a tombstone to write, or known absent once clean).
    value: Option<Vec<u8>>,
    dirty: bool,
    /// Neighbours in the LRU list: `prev` is more recently used, `next` less.
    prev: u32,
    next: u32,
}

impl Slot {
    fn size(&self) -> usize {
        self.key.len() + self.value.as_ref().map_or(0, Vec::len) + ENTRY_OVERHEAD
    }
}

/// The byte budget shared by the record caches of one stream thread (Kafka Streams'
/// `ThreadCache`: `statestore.cache.max.bytes` is for the whole instance, split evenly
/// between its threads). A cache over the shared budget evicts its own least recently used
/// entries, as Kafka Streams evicts from the cache being written.
#[derive(Debug)]
pub(crate) struct CacheBudget {
    used: AtomicUsize,
    max: usize,
}

impl CacheBudget {
    /// A budget of `max` bytes for all the caches given it; 0 turns caching off.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(CacheBudget {
            used: AtomicUsize::new(0),
            max,
        })
    }

    /// Whether caches may be created under this budget.
    pub fn enabled(&self) -> bool {
        self.max > 0
    }

    /// Bytes charged by all the caches sharing the budget.
    #[cfg(test)]
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

/// See the [module documentation](self).
pub(crate) struct RecordCache {
    hasher: std::collections::hash_map::RandomState,
    table: HashTable<u32>,
    /// Entries by slot number; `None` when free (listed in `free`).
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    /// Most recently used entry.
    head: u32,
    /// Least recently used entry.
    tail: u32,
    /// Slots that became dirty since the last flush, in that order.
    dirty: Vec<u32>,
    /// Bytes charged by this cache (also counted in `budget`).
    bytes: usize,
    budget: Arc<CacheBudget>,
}

impl RecordCache {
    /// An empty cache holding up to `max_bytes` (keys, values and [`ENTRY_OVERHEAD`] each)
    /// on its own.
    #[cfg(test)]
    pub fn new(max_bytes: usize) -> Self {
        Self::sharing(CacheBudget::new(max_bytes))
    }

    /// An empty cache whose entries count against `budget`, with the other caches sharing it.
    pub fn sharing(budget: Arc<CacheBudget>) -> Self {
        RecordCache {
            hasher: Default::default(),
            table: HashTable::new(),
            slots: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            dirty: Vec::new(),
            bytes: 0,
            budget,
        }
    }

    fn slot(&self, i: u32) -> &Slot {
        self.slots[i as usize].as_ref().expect("live slot")
    }

    fn slot_mut(&mut self, i: u32) -> &mut Slot {
        self.slots[i as usize].as_mut().expect("live slot")
    }

    fn find(&self, key: &[u8]) -> Option<u32> {
        let hash = self.hasher.hash_one(key);
        self.table
            .find(hash, |&i| *self.slot(i).key == *key)
            .copied()
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = {
            let s = self.slot(i);
            (s.prev, s.next)
        };
        match prev {
            NIL => self.head = next,
            p => self.slot_mut(p).next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.slot_mut(n).prev = prev,
        }
    }

    fn push_front(&mut self, i: u32) {
        let old_head = self.head;
        {
            let s = self.slot_mut(i);
            s.prev = NIL;
            s.next = old_head;
        }
        match old_head {
            NIL => self.tail = i,
            h => self.slot_mut(h).prev = i,
        }
        self.head = i;
    }

    fn touch(&mut self, i: u32) {
        if self.head != i {
            self.unlink(i);
            self.push_front(i);
        }
    }

    /// The cached state of `key`, marking it most recently used: `None` when not cached,
    /// `Some(None)` when cached as deleted.
    pub fn get(&mut self, key: &[u8]) -> Option<Option<&[u8]>> {
        let i = self.find(key)?;
        self.touch(i);
        Some(self.slot(i).value.as_deref())
    }

    /// Caches `value` for `key` (`None` = deleted), dirty (to be written to the backend at the
    /// next flush) or clean (what the backend holds, e.g. read from it).
    pub fn put(&mut self, key: &[u8], value: Option<&[u8]>, dirty: bool) {
        if let Some(i) = self.find(key) {
            self.touch(i);
            let s = self.slots[i as usize].as_mut().expect("live slot");
            let before = s.size();
            match (&mut s.value, value) {
                (Some(old), Some(new)) => {
                    old.clear();
                    old.extend_from_slice(new);
                }
                (old, new) => *old = new.map(<[u8]>::to_vec),
            }
            let after = s.size();
            let became_dirty = dirty && !s.dirty;
            // A clean write over a dirty entry (a read racing nothing: the task is the only
            // writer) keeps it dirty: the backend does not have it yet.
            s.dirty |= dirty;
            self.charge(after);
            self.release(before);
            if became_dirty {
                self.dirty.push(i);
            }
            return;
        }
        let slot = Slot {
            key: key.into(),
            value: value.map(<[u8]>::to_vec),
            dirty,
            prev: NIL,
            next: NIL,
        };
        self.charge(slot.size());
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(slot);
                i
            }
            None => {
                self.slots.push(Some(slot));
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 cache entries")
            }
        };
        let hash = self.hasher.hash_one(key);
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.table.insert_unique(hash, i, |&j| {
            hasher.hash_one(&*slots[j as usize].as_ref().expect("live slot").key)
        });
        self.push_front(i);
        if dirty {
            self.dirty.push(i);
        }
    }

    fn charge(&mut self, n: usize) {
        self.bytes += n;
        self.budget.used.fetch_add(n, Ordering::Relaxed);
    }

    fn release(&mut self, n: usize) {
        self.bytes -= n;
        self.budget.used.fetch_sub(n, Ordering::Relaxed);
    }

    /// Whether the caches sharing the budget take more than it (this one then evicts its own
    /// least recently used entries).
    pub fn over_budget(&self) -> bool {
        self.budget.used.load(Ordering::Relaxed) > self.budget.max
    }

    /// Whether the least recently used entry (the next to evict) is dirty: the owner must
    /// flush before [`RecordCache::evict_lru`].
    pub fn lru_is_dirty(&self) -> bool {
        self.tail != NIL && self.slot(self.tail).dirty
    }

    /// Drops the least recently used entry, which must be clean. Returns whether there was one.
    pub fn evict_lru(&mut self) -> bool {
        let i = self.tail;
        if i == NIL {
            return false;
        }
        assert!(!self.slot(i).dirty, "evicting a dirty cache entry");
        self.unlink(i);
        let hash = self.hasher.hash_one(&*self.slot(i).key);
        if let Ok(entry) = self.table.find_entry(hash, |&j| j == i) {
            entry.remove();
        }
        let slot = self.slots[i as usize].take().expect("live slot");
        self.release(slot.size());
        self.free.push(i);
        true
    }

    /// Whether some entry is dirty.
    pub fn has_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// The dirty entries in the order they became dirty, without changing them.
    pub fn dirty_entries(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
        self.dirty.iter().map(|&i| {
            let s = self.slot(i);
            (&*s.key, s.value.as_deref())
        })
    }

    /// Marks every entry clean (after [`RecordCache::dirty_entries`] were written).
    pub fn mark_clean(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        for &i in &dirty {
            self.slot_mut(i).dirty = false;
        }
        dirty.clear();
        self.dirty = dirty;
    }

    /// Forgets every entry (dirty ones included).
    pub fn clear(&mut self) {
        self.table.clear();
        self.slots.clear();
        self.free.clear();
        self.dirty.clear();
        self.head = NIL;
        self.tail = NIL;
        self.release(self.bytes);
    }

    /// Number of cached entries.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Bytes charged to the budget.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for RecordCache {
    fn drop(&mut self) {
        self.release(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flushed(c: &mut RecordCache) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        let out = c
            .dirty_entries()
            .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
            .collect();
        c.mark_clean();
        out
    }

    fn kv(k: &str, v: Option<&str>) -> (Vec<u8>, Option<Vec<u8>>) {
        (k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec()))
    }

    #[test]
    fn updates_collapse_and_flush_in_first_dirtied_order() {
        let mut c = RecordCache::new(1 << 20);
        c.put(b"b", Some(b"1"), true);
        c.put(b"a", Some(b"1"), true);
        c.put(b"b", Some(b"2"), true);
        c.put(b"c", None, true);
        c.put(b"z", Some(b"clean"), false);
        assert_eq!(c.get(b"b"), Some(Some(b"2".as_slice())));
        assert_eq!(c.get(b"c"), Some(None));
        assert_eq!(c.get(b"nope"), None);
        assert_eq!(
            flushed(&mut c),
            vec![kv("b", Some("2")), kv("a", Some("1")), kv("c", None)]
        );
        // Flushed entries stay, clean: nothing more to flush, still readable.
        assert!(!c.has_dirty());
        assert!(flushed(&mut c).is_empty());
        assert_eq!(c.len(), 4);
        assert_eq!(c.get(b"a"), Some(Some(b"1".as_slice())));
        // Dirtied again after a flush: flushed again, in the new order.
        c.put(b"a", Some(b"3"), true);
        c.put(b"z", Some(b"4"), true);
        assert_eq!(
            flushed(&mut c),
            vec![kv("a", Some("3")), kv("z", Some("4"))]
        );
    }

    #[test]
    fn caches_sharing_a_budget_evict_their_own_entries_and_release_it_when_dropped() {
        let entry = 1 + 1 + ENTRY_OVERHEAD;
        let budget = CacheBudget::new(3 * entry);
        let mut a = RecordCache::sharing(budget.clone());
        let mut b = RecordCache::sharing(budget.clone());
        for k in [b"1", b"2", b"3"] {
            a.put(k, Some(b"x"), false);
        }
        assert!(!a.over_budget());
        assert_eq!(budget.used(), 3 * entry);
        // b's first entry takes the thread over its budget: b is over too, and evicts its own
        // entry (the only one it has), not a's.
        b.put(b"4", Some(b"y"), false);
        assert!(b.over_budget() && a.over_budget());
        assert!(b.evict_lru());
        assert!(!b.evict_lru(), "b had one entry");
        assert!(!a.over_budget());
        assert_eq!((a.len(), b.len(), budget.used()), (3, 0, 3 * entry));
        // Updates, clears and drops give the bytes back.
        a.put(b"1", Some(b"longer"), true);
        assert_eq!(budget.used(), 3 * entry + 5);
        b.put(b"5", None, true);
        b.clear();
        assert_eq!(budget.used(), 3 * entry + 5);
        drop(a);
        assert_eq!(budget.used(), 0);
        assert!(!CacheBudget::new(0).enabled());
    }

    #[test]
    fn a_clean_write_does_not_clean_a_dirty_entry() {
        let mut c = RecordCache::new(1 << 20);
        c.put(b"k", Some(b"1"), true);
        c.put(b"k", Some(b"1"), false);
        assert_eq!(flushed(&mut c), vec![kv("k", Some("1"))]);
    }

    #[test]
    fn eviction_takes_the_least_recently_used_entry() {
        let entry = 1 + 1 + ENTRY_OVERHEAD;
        let mut c = RecordCache::new(3 * entry);
        for k in [b"a", b"b", b"c"] {
            c.put(k, Some(b"v"), false);
        }
        assert!(!c.over_budget());
        // `a` is used again, so `b` is now the least recently used.
        assert!(c.get(b"a").is_some());
        c.put(b"d", Some(b"v"), false);
        assert!(c.over_budget());
        assert!(!c.lru_is_dirty());
        assert!(c.evict_lru());
        assert!(!c.over_budget());
        assert_eq!(c.get(b"b"), None);
        for k in [b"a", b"c", b"d"] {
            assert!(c.get(k).is_some());
        }
        assert_eq!(c.bytes(), 3 * entry);
        // The freed slot is reused.
        c.put(b"e", Some(b"v"), true);
        assert_eq!(c.len(), 4);
        assert_eq!(c.get(b"e"), Some(Some(b"v".as_slice())));
    }

    #[test]
    fn a_dirty_lru_entry_must_be_flushed_before_eviction() {
        let entry = 1 + 1 + ENTRY_OVERHEAD;
        let mut c = RecordCache::new(2 * entry);
        c.put(b"a", Some(b"1"), true);
        c.put(b"b", Some(b"1"), false);
        c.put(b"c", Some(b"1"), true);
        assert!(c.over_budget());
        assert!(c.lru_is_dirty());
        assert_eq!(
            flushed(&mut c),
            vec![kv("a", Some("1")), kv("c", Some("1"))]
        );
        assert!(!c.lru_is_dirty());
        assert!(c.evict_lru());
        assert_eq!(c.get(b"a"), None);
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn sizes_follow_value_changes_and_clear_empties() {
        let mut c = RecordCache::new(1 << 20);
        c.put(b"key", Some(b"12345"), true);
        assert_eq!(c.bytes(), 3 + 5 + ENTRY_OVERHEAD);
        c.put(b"key", Some(b"1"), true);
        assert_eq!(c.bytes(), 3 + 1 + ENTRY_OVERHEAD);
        c.put(b"key", None, true);
        assert_eq!(c.bytes(), 3 + ENTRY_OVERHEAD);
        c.clear();
        assert_eq!((c.len(), c.bytes()), (0, 0));
        assert!(!c.has_dirty());
        assert_eq!(c.get(b"key"), None);
        assert!(!c.evict_lru());
    }

    /// Random operations against a simple model: reads see the last write, a flush hands out
    /// exactly the keys written since the previous one (in first-write order, last values),
    /// and eviction never loses a dirty entry or breaks the LRU list.
    #[test]
    fn matches_a_model_under_random_operations() {
        use std::collections::HashMap;
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut c = RecordCache::new(20 * (2 + 2 + ENTRY_OVERHEAD));
        let mut backend: HashMap<Vec<u8>, Option<Vec<u8>>> = HashMap::new();
        let mut latest: HashMap<Vec<u8>, Option<Vec<u8>>> = HashMap::new();
        let mut dirty_order: Vec<Vec<u8>> = Vec::new();
        for _ in 0..20_000 {
            let key = format!("{:02}", next() % 40).into_bytes();
            match next() % 10 {
                0..=5 => {
                    let value =
                        (next() % 4 != 0).then(|| format!("{:02}", next() % 100).into_bytes());
                    if !dirty_order.contains(&key) {
                        dirty_order.push(key.clone());
                    }
                    latest.insert(key.clone(), value.clone());
                    c.put(&key, value.as_deref(), true);
                    while c.over_budget() {
                        if c.lru_is_dirty() {
                            let order = flushed(&mut c);
                            assert_eq!(
                                order.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
                                dirty_order
                            );
                            backend.extend(order);
                            dirty_order.clear();
                        }
                        assert!(c.evict_lru());
                    }
                }
                6..=8 => {
                    let want = latest.get(&key).cloned();
                    match c.get(&key) {
                        Some(v) => assert_eq!(Some(v.map(<[u8]>::to_vec)), want),
                        // Not cached: the backend must have the latest value.
                        None => assert_eq!(backend.get(&key).cloned(), want),
                    }
                }
                _ => {
                    let order = flushed(&mut c);
                    assert_eq!(
                        order.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
                        dirty_order
                    );
                    // Last values, as written.
                    for (k, v) in &order {
                        assert_eq!(Some(v), latest.get(k));
                    }
                    backend.extend(order);
                    dirty_order.clear();
                }
            }
            let expected: usize = (0..c.slots.len())
                .filter_map(|i| c.slots[i].as_ref().map(Slot::size))
                .sum();
            assert_eq!(c.bytes(), expected);
        }
        // Walking the LRU list both ways visits every entry once.
        let mut forward = 0;
        let mut i = c.head;
        while i != NIL {
            forward += 1;
            i = c.slot(i).next;
        }
        let mut backward = 0;
        let mut i = c.tail;
        while i != NIL {
            backward += 1;
            i = c.slot(i).prev;
        }
        assert_eq!((forward, backward), (c.len(), c.len()));
    }
}
