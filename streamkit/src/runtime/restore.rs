//! Changelog restoration: before the tasks a thread was just assigned start processing, their
//! logged stores are brought up to the end of their changelogs.
//!
//! Every changelog partition of every task being created goes into ONE assignment of the
//! thread's restore consumer (outside the group), so librdkafka fetches them all together
//! (as Kafka Streams' restore consumer does) rather than one partition after another. Each
//! polled record is routed to its store's buffer (one reused byte buffer per store, no
//! allocation per record); buffers are written as one batch per store (a RocksDB
//! `WriteBatch`) whenever `RESTORE_BATCH` records are buffered in all, and a partition is
//! finished once the consumer's position reaches the end offset read at the start (offsets
//! up to it may hold no record: transaction markers).
//!
//! A persistent store whose checkpoint lies within the changelog's `[low, high]` resumes from
//! it; any other store is wiped and restored from the beginning (`low`), so that local writes
//! that never reached the changelog do not survive.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use prometheus::{IntCounter, IntGauge};
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;

use crate::config::{ProcessingGuarantee, StreamsConfig};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::runtime::TaskId;
use crate::runtime::admin::base_client_config;
use crate::runtime::stores::{BatchEntry, Checkpoint, SharedStore, TaskStores};

/// Records buffered (over all partitions) before they are written to their stores.
const RESTORE_BATCH: usize = 10_000;
/// How long a poll waits when nothing is fetched; the positions are checked after each such
/// poll (a partition ending in transaction markers delivers no last record).
const RESTORE_POLL: Duration = Duration::from_millis(100);
/// Bound on each end-offset query.
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(30);
/// Least time between two progress log lines of one restore.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Fetch settings of the restore consumer unless the application sets them
/// (`restore.consumer.<name>`): it reads whole partitions from a known start to a known end,
/// so larger fetches than a processing consumer's pay off (Kafka Streams likewise gives its
/// restore consumer its own, larger `max.poll.records`).
const FETCH_DEFAULTS: [(&str, &str); 2] = [
    // Per partition per fetch: 1 MiB by default.
    ("max.partition.fetch.bytes", "4194304"),
    // Once a partition's prefetched records exceed the queue thresholds
    // (`queued.min.messages`, `queued.max.messages.kbytes`), librdkafka postpones its next
    // fetch by this long (1 s by default): a restore writing to its stores while records
    // pile up sat idle for seconds (3.4 s instead of 0.8 s for 1M records in the benchmark).
    // The restore consumer drains its queue without pause, so it retries quickly.
    ("fetch.queue.backoff.ms", "10"),
];

/// One task whose logged stores must be brought up to date.
pub(crate) struct RestoreRequest<'a> {
    pub task: TaskId,
    pub stores: &'a TaskStores,
    /// Per store, the changelog offset its persistent contents reflect.
    pub checkpoint: &'a Checkpoint,
}

/// Per task, per logged store: the changelog offset (next to read) the store's contents
/// reflect after the restore.
pub(crate) type Restored = HashMap<TaskId, HashMap<String, i64>>;

/// Reads changelog partitions (by assignment, outside the group) into tasks' stores.
/// Restores of at least this many records reopen a RocksDB store tuned for a bulk load
/// ([`TaskStore::bulk_load`](crate::runtime::stores::TaskStore::bulk_load)) and reopen it
/// for processing at the end; smaller ones are not worth the two reopens.
const BULK_LOAD_RECORDS: i64 = 100_000;

pub(crate) struct ChangelogRestorer {
    consumer: BaseConsumer,
    thread: String,
    metrics: Metrics,
}

impl ChangelogRestorer {
    /// The restore consumer of stream thread `thread`.
    pub fn new(config: &StreamsConfig, thread: &str, metrics: Metrics) -> Result<Self> {
        let mut c = base_client_config(config, "restore.consumer")?;
        c.set("group.id", format!("{}-restore", config.application_id))
            .set("client.id", format!("{thread}-restore-consumer"))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .set("auto.offset.reset", "earliest");
        let own = config.client_settings("restore.consumer");
        for (k, v) in FETCH_DEFAULTS {
            if !own.contains_key(k) {
                c.set(k, v);
            }
        }
        if config.processing_guarantee == ProcessingGuarantee::ExactlyOnce
            && !own.contains_key("isolation.level")
        {
            c.set("isolation.level", "read_committed");
        }
        Ok(ChangelogRestorer {
            consumer: c.create()?,
            thread: thread.to_string(),
            metrics,
        })
    }

    /// Brings every logged store of `tasks` up to the end of its changelog partition, all
    /// partitions read through one assignment; returns what each store reached.
    pub fn restore(&self, tasks: &[RestoreRequest<'_>]) -> Result<Restored> {
        let mut reached: Restored = HashMap::new();
        let mut slots = Vec::new();
        for req in tasks {
            let by_store = reached.entry(req.task).or_default();
            for (name, store) in req.stores {
                let (changelog, persistent) = {
                    let s = store.lock().expect("store lock");
                    (s.changelog.clone(), s.is_persistent())
                };
                let Some((topic, partition)) = changelog else {
                    continue;
                };
                let (low, high) =
                    self.consumer
                        .fetch_watermarks(&topic, partition, WATERMARK_TIMEOUT)?;
                // A persistent store resumes from its checkpoint; anything else starts over,
                // from empty: local writes that never reached the changelog must not survive.
                let start = match req.checkpoint.0.get(name) {
                    Some(&o) if persistent && o >= low && o <= high => o,
                    _ => {
                        if persistent {
                            store.lock().expect("store lock").wipe()?;
                        }
                        low
                    }
                };
                by_store.insert(name.clone(), high);
                if start >= high {
                    continue;
                }
                let task_label = req.task.to_string();
                let remaining = self
                    .metrics
                    .restore_remaining
                    .with_label_values(&[task_label.as_str(), name.as_str()]);
                remaining.set(high - start);
                if high - start >= BULK_LOAD_RECORDS {
                    store.lock().expect("store lock").bulk_load(true)?;
                }
                slots.push(Slot {
                    task: req.task,
                    name,
                    store,
                    topic,
                    partition,
                    start,
                    high,
                    position: start,
                    buffer: Buffer::default(),
                    restored: 0,
                    writing: Duration::ZERO,
                    remaining,
                    restored_total: self.metrics.restored.with_label_values(&[name.as_str()]),
                    done: false,
                });
            }
        }
        if slots.is_empty() {
            return Ok(reached);
        }
        let mut tpl = TopicPartitionList::new();
        // topic → partition → slot.
        let mut index: HashMap<String, Vec<Option<usize>>> = HashMap::new();
        for (i, slot) in slots.iter().enumerate() {
            tpl.add_partition_offset(
                &slot.topic,
                slot.partition,
                rdkafka::Offset::Offset(slot.start),
            )?;
            let by_partition = index.entry(slot.topic.clone()).or_default();
            let p = usize::try_from(slot.partition)
                .map_err(|_| Error::Internal(format!("negative partition {}", slot.partition)))?;
            if by_partition.len() <= p {
                by_partition.resize(p + 1, None);
            }
            if by_partition[p].replace(i).is_some() {
                return Err(Error::Internal(format!(
                    "changelog {}[{}] restored twice",
                    slot.topic, slot.partition
                )));
            }
        }
        let total: i64 = slots.iter().map(|s| s.high - s.start).sum();
        tracing::info!(thread = %self.thread, tasks = tasks.len(), partitions = slots.len(),
            records = total, "restoring changelogs");
        let started = Instant::now();
        self.consumer.assign(&tpl)?;
        let read = self.read(&mut slots, &index, started);
        // Unassigned even after a failure: the next restore starts from a clean slate.
        let unassigned = self.consumer.unassign();
        let waiting = read?;
        unassigned?;
        let restored: u64 = slots.iter().map(|s| s.restored).sum();
        let writing: Duration = slots.iter().map(|s| s.writing).sum();
        tracing::info!(thread = %self.thread, tasks = tasks.len(), partitions = slots.len(),
            restored, millis = started.elapsed().as_millis() as u64,
            writing_millis = writing.as_millis() as u64,
            waiting_millis = waiting.as_millis() as u64, "changelogs restored");
        Ok(reached)
    }

    /// Polls the assigned partitions until every slot reached its end; returns the time spent
    /// waiting in polls.
    fn read(
        &self,
        slots: &mut [Slot<'_>],
        index: &HashMap<String, Vec<Option<usize>>>,
        started: Instant,
    ) -> Result<Duration> {
        let mut open = slots.len();
        let mut buffered = 0usize;
        let mut last_progress = Instant::now();
        let mut waited = Duration::ZERO;
        while open > 0 {
            let mut check_positions = false;
            let polling = Instant::now();
            let polled = self.consumer.poll(RESTORE_POLL);
            waited += polling.elapsed();
            match polled {
                Some(Ok(m)) => {
                    let Some(i) = index
                        .get(m.topic())
                        .and_then(|by_partition| by_partition.get(m.partition() as usize))
                        .copied()
                        .flatten()
                    else {
                        continue;
                    };
                    let slot = &mut slots[i];
                    if slot.done {
                        continue;
                    }
                    let offset = m.offset();
                    // A record written after the end was read is left to the task.
                    if offset < slot.high {
                        if let Some(k) = m.key() {
                            slot.buffer.push(k, m.payload());
                            buffered += 1;
                        }
                        slot.position = offset + 1;
                    } else {
                        slot.position = slot.high;
                    }
                    if slot.position >= slot.high {
                        slot.finish(&self.thread, started)?;
                        open -= 1;
                    }
                    if buffered >= RESTORE_BATCH {
                        check_positions = true;
                    }
                }
                Some(Err(e)) => return Err(e.into()),
                None => check_positions = true,
            }
            if !check_positions {
                continue;
            }
            for slot in slots.iter_mut().filter(|s| !s.done) {
                slot.flush()?;
            }
            buffered = 0;
            // Offsets up to the end may hold no record (transaction markers): the position
            // tells.
            let positions = self.consumer.position()?;
            for slot in slots.iter_mut().filter(|s| !s.done) {
                if let Some(rdkafka::Offset::Offset(p)) = positions
                    .find_partition(&slot.topic, slot.partition)
                    .map(|e| e.offset())
                    && p >= slot.high
                {
                    slot.finish(&self.thread, started)?;
                    open -= 1;
                }
            }
            if open > 0 && last_progress.elapsed() >= PROGRESS_EVERY {
                last_progress = Instant::now();
                let remaining: i64 = slots
                    .iter()
                    .filter(|s| !s.done)
                    .map(|s| s.high - s.position)
                    .sum();
                tracing::info!(thread = %self.thread, partitions = open, remaining, "restoring");
            }
        }
        Ok(waited)
    }
}

/// One changelog partition being restored into its store.
struct Slot<'a> {
    task: TaskId,
    name: &'a str,
    store: &'a SharedStore,
    topic: String,
    partition: i32,
    start: i64,
    /// Where the restore ends (the end offset when it began).
    high: i64,
    /// Next offset to read.
    position: i64,
    buffer: Buffer,
    restored: u64,
    /// Time spent writing to the store.
    writing: Duration,
    remaining: IntGauge,
    restored_total: IntCounter,
    done: bool,
}

impl Slot<'_> {
    /// Writes the buffered records to the store.
    fn flush(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        self.store
            .lock()
            .expect("store lock")
            .restore_entries(&mut self.buffer.entries())?;
        self.writing += started.elapsed();
        let n = self.buffer.len() as u64;
        self.buffer.clear();
        self.restored += n;
        self.restored_total.inc_by(n);
        self.remaining.set(self.high - self.position);
        Ok(())
    }

    fn finish(&mut self, thread: &str, started: Instant) -> Result<()> {
        self.position = self.high;
        self.flush()?;
        self.remaining.set(0);
        self.done = true;
        self.store.lock().expect("store lock").bulk_load(false)?;
        self.buffer = Buffer::default();
        tracing::info!(%thread, task = %self.task, store = %self.name, restored = self.restored,
            from = self.start, to = self.high, millis = started.elapsed().as_millis() as u64,
            "store restored");
        Ok(())
    }
}

/// Changelog records of one store awaiting their write, packed in one reused byte buffer.
#[derive(Default)]
struct Buffer {
    bytes: Vec<u8>,
    /// Per record: where its key ends in `bytes` and where its value ends (`None`: a
    /// tombstone); each record starts where the previous one ended.
    ends: Vec<(usize, Option<usize>)>,
}

impl Buffer {
    fn push(&mut self, key: &[u8], value: Option<&[u8]>) {
        self.bytes.extend_from_slice(key);
        let key_end = self.bytes.len();
        let value_end = value.map(|v| {
            self.bytes.extend_from_slice(v);
            self.bytes.len()
        });
        self.ends.push((key_end, value_end));
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    /// The records in order.
    fn entries(&self) -> impl Iterator<Item = BatchEntry<'_>> {
        let mut start = 0;
        self.ends.iter().map(move |&(key_end, value_end)| {
            let key = &self.bytes[start..key_end];
            let value = value_end.map(|end| &self.bytes[key_end..end]);
            start = value_end.unwrap_or(key_end);
            (key, value)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_buffer_gives_back_records_and_tombstones_in_order() {
        let mut b = Buffer::default();
        b.push(b"a", Some(b"1"));
        b.push(b"bb", None);
        b.push(b"", Some(b""));
        b.push(b"c", Some(b"333"));
        let got: Vec<_> = b.entries().collect();
        assert_eq!(
            got,
            vec![
                (&b"a"[..], Some(&b"1"[..])),
                (&b"bb"[..], None),
                (&b""[..], Some(&b""[..])),
                (&b"c"[..], Some(&b"333"[..])),
            ]
        );
        assert_eq!(b.len(), 4);
        b.clear();
        assert!(b.is_empty() && b.entries().next().is_none());
    }
}
