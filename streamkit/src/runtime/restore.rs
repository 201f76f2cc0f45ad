//! Changelog restoration: before the tasks a thread was just assigned start processing, their
//! logged stores are brought up to the end of their changelogs.
//!
//! Every changelog partition of every task being created goes into ONE assignment of the
//! thread's restore consumer (outside the group), so librdkafka fetches them all together
//! (as Kafka Streams' restore consumer does) rather than one partition after another. Each
//! polled record is routed to its store's buffer (reused byte buffers, no allocation per
//! record); whenever `RESTORE_BATCH` records are buffered in all, the buffers go to a writer
//! thread, which writes them as one batch per store (a RocksDB `WriteBatch`) while the
//! restore thread fetches on. A partition is finished once the consumer's position reaches
//! the end offset read at the start (offsets up to it may hold no record: transaction
//! markers); the writer then ends its store's restore (reopening a bulk-loaded store for
//! processing) off the fetch path.
//!
//! A persistent store whose checkpoint lies within the changelog's `[low, high]` resumes from
//! it; any other store is wiped and restored from the beginning (`low`), so that local writes
//! that never reached the changelog do not survive.

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::time::{Duration, Instant};

use prometheus::{IntCounter, IntGauge};
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;

use crate::config::{ProcessingGuarantee, StreamsConfig};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::record::TaskId;
use crate::runtime::admin::base_client_config;
use crate::runtime::partition_map::PartitionMap;
use crate::state::backend::BatchEntry;
use crate::state::checkpoint::Checkpoint;
use crate::state::store::SharedStore;
use crate::state::store::TaskStores;

/// Records buffered (over all partitions) before they are written to their stores.
const RESTORE_BATCH: usize = 10_000;
/// How long a poll waits when nothing is fetched; the positions are checked after each such
/// poll (a partition ending in transaction markers delivers no last record).
const RESTORE_POLL: Duration = Duration::from_millis(100);
/// Bound on each end-offset query.
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a restore lets its thread serve the group consumer (see [`ChangelogRestorer::restore`]).
const KEEPALIVE_EVERY: Duration = Duration::from_secs(1);
/// Least time between two progress log lines of one restore.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Fetch settings of the restore consumer unless the application sets them
/// (`restore.consumer.<name>`): it reads whole partitions from a known start to a known end,
/// so larger fetches than a processing consumer's pay off (Kafka Streams likewise gives its
/// restore consumer its own, larger `max.poll.records`).
const FETCH_DEFAULTS: [(&str, &str); 3] = [
    // Per partition per fetch: 1 MiB by default.
    ("max.partition.fetch.bytes", "4194304"),
    // Prefetched records held for the writer: librdkafka's default (64 MiB) is what a
    // restore's peak memory is mostly made of, and more than a writer that drains the queue
    // continuously needs (8 MiB keeps two full fetches ahead of it).
    ("queued.max.messages.kbytes", "8192"),
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

/// Restores of at least this many records reopen a RocksDB store tuned for a bulk load
/// ([`TaskStore::bulk_load`](crate::state::store::TaskStore::bulk_load)) and reopen it
/// for processing at the end (on the writer thread, while the next records are fetched);
/// smaller ones are not worth the two reopens.
const BULK_LOAD_RECORDS: i64 = 20_000;

/// Reads changelog partitions (by assignment, outside the group) into tasks' stores.
pub(crate) struct ChangelogRestorer {
    consumer: BaseConsumer,
    thread: String,
    metrics: Metrics,
    /// How long a cluster that cannot be reached is waited for
    /// ([`StreamsConfig::task_timeout`]).
    task_timeout: Duration,
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
            task_timeout: config.task_timeout,
        })
    }

    /// Brings every logged store of `tasks` up to the end of its changelog partition, all
    /// partitions read through one assignment; returns what each store reached.
    pub fn restore(
        &self,
        tasks: &[RestoreRequest<'_>],
        keepalive: &mut dyn FnMut(),
    ) -> Result<Restored> {
        let mut reached: Restored = HashMap::new();
        let mut slots = Vec::new();
        let mut writes = Vec::new();
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
                let (low, high) = self.retrying(|| {
                    self.consumer
                        .fetch_watermarks(&topic, partition, WATERMARK_TIMEOUT)
                })?;
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
                    topic,
                    partition,
                    start,
                    high,
                    position: start,
                    buffer: Buffer::default(),
                    done: false,
                });
                writes.push(StoreWrite {
                    task: req.task,
                    name,
                    store,
                    start,
                    high,
                    restored: 0,
                    writing: Duration::ZERO,
                    remaining,
                    restored_total: self.metrics.restored.with_label_values(&[name.as_str()]),
                });
            }
        }
        if slots.is_empty() {
            return Ok(reached);
        }
        let mut tpl = TopicPartitionList::new();
        // Which slot reads each changelog partition.
        let mut index = PartitionMap::default();
        for (i, slot) in slots.iter().enumerate() {
            tpl.add_partition_offset(
                &slot.topic,
                slot.partition,
                rdkafka::Offset::Offset(slot.start),
            )?;
            let p = usize::try_from(slot.partition)
                .map_err(|_| Error::Internal(format!("negative partition {}", slot.partition)))?;
            if index.insert(&slot.topic, p, i).is_some() {
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
        // This thread fetches; a second one writes to the stores (and reopens them), so that
        // RocksDB's inserts overlap the next fetches instead of following them.
        let (read, written) = std::thread::scope(|scope| {
            let (to_writer, work) = mpsc::sync_channel::<Batch>(WRITES_AHEAD);
            let (recycle, recycled) = mpsc::channel::<Buffer>();
            let thread = self.thread.as_str();
            let writes = &mut writes;
            let writer = std::thread::Builder::new()
                .name(format!("{thread}-restore-writer"))
                .spawn_scoped(scope, move || {
                    write_loop(writes, &work, &recycle, thread, started)
                })
                .map_err(|e| Error::Internal(format!("cannot start the restore writer: {e}")));
            let writer = match writer {
                Ok(w) => w,
                Err(e) => return (Err(e), Ok(())),
            };
            let read = self.read(&mut slots, &index, &to_writer, &recycled, keepalive);
            drop(to_writer);
            let written = writer
                .join()
                .unwrap_or_else(|_| Err(Error::Internal("the restore writer panicked".into())));
            (read, written)
        });
        // Unassigned even after a failure: the next restore starts from a clean slate.
        let unassigned = self.consumer.unassign();
        if written.is_err() || read.is_err() {
            // Stores left in bulk-load tuning go back to processing tuning (best effort: the
            // restore's own error is the one reported).
            for w in &writes {
                if let Err(e) = w.store.lock().expect("store lock").bulk_load(false) {
                    tracing::warn!(thread = %self.thread, store = %w.name, error = %e,
                        "reopening a store for processing after a failed restore");
                }
            }
        }
        // A writer's failure ends the read early; it is the error to report.
        written?;
        let stalled = read?;
        unassigned?;
        let restored: u64 = writes.iter().map(|s| s.restored).sum();
        let writing: Duration = writes.iter().map(|s| s.writing).sum();
        tracing::info!(thread = %self.thread, tasks = tasks.len(), partitions = slots.len(),
            restored, millis = started.elapsed().as_millis() as u64,
            writing_millis = writing.as_millis() as u64,
            stalled_millis = stalled.as_millis() as u64, "changelogs restored");
        Ok(reached)
    }

    /// Runs `op` again while it fails with a non-fatal Kafka error, for up to the task
    /// timeout (a broker restarting or unreachable).
    fn retrying<T>(
        &self,
        mut op: impl FnMut() -> std::result::Result<T, rdkafka::error::KafkaError>,
    ) -> Result<T> {
        let started = Instant::now();
        loop {
            match op() {
                Ok(v) => return Ok(v),
                Err(e)
                    if !crate::runtime::thread::is_fatal(&e)
                        && started.elapsed() < self.task_timeout =>
                {
                    tracing::warn!(thread = %self.thread, error = %e, "restore: the cluster does not answer; retrying");
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Polls the assigned partitions until every slot reached its end, handing the records
    /// to the writer in batches; returns the time spent waiting for the writer. Calls
    /// `keepalive` about every [`KEEPALIVE_EVERY`], so that the thread's group consumer is
    /// polled however long the restore takes.
    fn read(
        &self,
        slots: &mut [Slot],
        index: &PartitionMap<usize>,
        to_writer: &SyncSender<Batch>,
        recycled: &Receiver<Buffer>,
        keepalive: &mut dyn FnMut(),
    ) -> Result<Duration> {
        let mut last_keepalive = Instant::now();
        let mut failing_since: Option<Instant> = None;
        let mut open = slots.len();
        let mut buffered = 0usize;
        let mut finished = Vec::new();
        let mut last_progress = Instant::now();
        let mut stalled = Duration::ZERO;
        while open > 0 {
            let mut check_positions = false;
            match self.consumer.poll(RESTORE_POLL) {
                Some(Ok(m)) => {
                    failing_since = None;
                    let Some(i) = index.get(m.topic(), m.partition()) else {
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
                        slot.done = true;
                        finished.push(i);
                        open -= 1;
                        check_positions = true;
                    }
                    if buffered >= RESTORE_BATCH {
                        check_positions = true;
                    }
                }
                Some(Err(e)) if crate::runtime::thread::is_fatal(&e) => return Err(e.into()),
                Some(Err(e)) => {
                    // A broker restarting or unreachable: librdkafka reconnects and fetches
                    // on; only an error lasting past the task timeout ends the restore.
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= self.task_timeout {
                        return Err(e.into());
                    }
                    tracing::warn!(thread = %self.thread, error = %e, "restore consumer error; retrying");
                    check_positions = true;
                }
                None => check_positions = true,
            }
            if !check_positions {
                continue;
            }
            if last_keepalive.elapsed() >= KEEPALIVE_EVERY {
                keepalive();
                last_keepalive = Instant::now();
            }
            // Offsets up to the end may hold no record (transaction markers): the position
            // tells.
            let positions = self.consumer.position()?;
            for (i, slot) in slots.iter_mut().enumerate().filter(|(_, s)| !s.done) {
                if let Some(rdkafka::Offset::Offset(p)) = positions
                    .find_partition(&slot.topic, slot.partition)
                    .map(|e| e.offset())
                    && p >= slot.high
                {
                    slot.position = slot.high;
                    slot.done = true;
                    finished.push(i);
                    open -= 1;
                }
            }
            let mut batch = Batch {
                buffers: Vec::new(),
                finished: std::mem::take(&mut finished),
            };
            for (i, slot) in slots.iter_mut().enumerate() {
                if !slot.buffer.is_empty() {
                    let fresh = recycled.try_recv().unwrap_or_default();
                    let buffer = std::mem::replace(&mut slot.buffer, fresh);
                    batch.buffers.push((i, buffer, slot.high - slot.position));
                }
            }
            buffered = 0;
            if !batch.buffers.is_empty() || !batch.finished.is_empty() {
                let sending = Instant::now();
                // A closed channel means the writer failed; its error is the one reported.
                if to_writer.send(batch).is_err() {
                    return Ok(stalled);
                }
                stalled += sending.elapsed();
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
        Ok(stalled)
    }
}

/// Batches the reader may hand over before it waits for the writer (one more is being
/// written, one being filled).
const WRITES_AHEAD: usize = 1;

/// Records read for the writer: per slot its buffer and how many records of its partition
/// were left to read after it; then the slots whose partition is fully read.
struct Batch {
    buffers: Vec<(usize, Buffer, i64)>,
    finished: Vec<usize>,
}

/// The writer's side of the restore: writes each batch to its stores, returns the emptied
/// buffers for reuse and ends each finished store's restore. Stops at the first error.
fn write_loop(
    writes: &mut [StoreWrite<'_>],
    work: &Receiver<Batch>,
    recycle: &Sender<Buffer>,
    thread: &str,
    started: Instant,
) -> Result<()> {
    for batch in work {
        for (i, mut buffer, remaining) in batch.buffers {
            writes[i].write(&buffer, remaining)?;
            buffer.clear();
            // The reader may be gone already (it failed); the buffer is then just dropped.
            let _ = recycle.send(buffer);
        }
        for i in batch.finished {
            writes[i].finish(thread, started)?;
        }
    }
    Ok(())
}

/// One changelog partition being read (the reader's side).
struct Slot {
    topic: String,
    partition: i32,
    start: i64,
    /// Where the restore ends (the end offset when it began).
    high: i64,
    /// Next offset to read.
    position: i64,
    buffer: Buffer,
    done: bool,
}

/// One store being restored (the writer's side).
struct StoreWrite<'a> {
    task: TaskId,
    name: &'a str,
    store: &'a SharedStore,
    start: i64,
    high: i64,
    restored: u64,
    /// Time spent writing to the store.
    writing: Duration,
    remaining: IntGauge,
    restored_total: IntCounter,
}

impl StoreWrite<'_> {
    /// Writes `buffer`'s records to the store; `remaining` records of the partition were
    /// still to read after them.
    fn write(&mut self, buffer: &Buffer, remaining: i64) -> Result<()> {
        let started = Instant::now();
        self.store
            .lock()
            .expect("store lock")
            .restore_entries(&mut buffer.entries())?;
        self.writing += started.elapsed();
        let n = buffer.len() as u64;
        self.restored += n;
        self.restored_total.inc_by(n);
        self.remaining.set(remaining);
        Ok(())
    }

    /// Ends the store's restore: all its records are written; a bulk-loaded store is reopened
    /// for processing.
    fn finish(&mut self, thread: &str, started: Instant) -> Result<()> {
        self.remaining.set(0);
        self.store.lock().expect("store lock").bulk_load(false)?;
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
