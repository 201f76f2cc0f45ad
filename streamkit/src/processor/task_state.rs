//! Per-task state shared by every node of a task while it processes: record origin, clocks,
//! punctuation schedules, and the collector that sinks write to.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::error::Result;
use crate::error_policy::DeserializationHandler;
use crate::metrics::TaskMetrics;
use crate::processor::{PunctuationType, PunctuatorId};
use crate::record::TaskId;
use crate::record::{Headers, RecordMetadata};
use crate::state::store::TaskStores;

/// Where sinks hand serialized records: the Kafka producer at runtime, memory under test.
pub(crate) trait RecordCollector {
    /// Sends one record. `partition: None` lets the producer's partitioner choose (murmur2 of
    /// the key, as Kafka's Java clients do).
    fn send(&mut self, out: OutRecord<'_>) -> Result<()>;

    /// The partition count of `topic`, for a custom partitioner. The test driver's topics
    /// have one partition.
    fn partition_count(&mut self, topic: &str) -> Result<i32> {
        let _ = topic;
        Ok(1)
    }

    /// Whether records the producer refuses at send time are kept for the task to
    /// dead-letter ([`take_refused`](Self::take_refused)). Asked once, when the task starts.
    fn keeps_refused(&self) -> bool {
        false
    }

    /// The records refused at send time since the last call that the production error
    /// handler sends to its dead-letter topic.
    fn take_refused(&mut self) -> Vec<Refused> {
        Vec::new()
    }
}

/// What an output record is, which decides whether the production error handler may skip it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutKind {
    /// Output of a sink (an output or repartition topic, late records): may be skipped.
    Output,
    /// A store's changelog write: never skipped, or the store and its changelog would
    /// disagree.
    Changelog,
    /// A dead letter: never skipped (nor dead-lettered again).
    DeadLetter,
}

/// A serialized output record.
pub(crate) struct OutRecord<'a> {
    pub topic: &'a str,
    pub partition: Option<i32>,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub timestamp: i64,
    pub headers: &'a Headers,
    pub kind: OutKind,
}

/// An output record the producer refused at send time, kept for a dead letter.
#[derive(Debug, Clone)]
pub(crate) struct Refused {
    /// The dead-letter topic.
    pub dead_letter: String,
    /// The topic the record was for.
    pub topic: String,
    /// The producer's error.
    pub error: String,
    /// The refused record, for a refusal with no input record in hand (a punctuator): its
    /// value cut short when its size was refused (`truncated` = the original length).
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub truncated: Option<usize>,
    pub timestamp: i64,
    pub headers: Headers,
}

/// A registered punctuator.
pub(crate) struct Schedule {
    pub id: PunctuatorId,
    pub node: usize,
    pub kind: PunctuationType,
    pub interval_ms: i64,
    /// Next firing time; `None` for a stream-time schedule before the first record.
    pub next: Option<i64>,
}

/// The state a task's nodes share.
pub(crate) struct TaskState {
    pub app_id: Arc<str>,
    pub task_id: TaskId,
    pub meta: Option<RecordMetadata>,
    pub stream_time: i64,
    pub wall_clock_ms: i64,
    pub schedules: Vec<Schedule>,
    pub next_schedule_id: u64,
    pub collector: Box<dyn RecordCollector>,
    pub default_deserialization_handler: DeserializationHandler,
    pub metrics: TaskMetrics,
    pub stores: TaskStores,
    /// Global tables' stores (owned by the global thread; processors only read them).
    pub global_stores: TaskStores,
    /// Node index → names of the stores it may use.
    pub node_stores: HashMap<usize, Vec<String>>,
    /// The current record's event time and the wall clock, shared with handles (Faust-style
    /// tables) that read them outside a `ProcessorContext`.
    pub clock: Arc<TaskClock>,
    /// The processor node running (its index in the topology), [`NO_NODE`] outside any: each
    /// node sets it around its `process` and puts the caller's back after, so that after a
    /// panic, which skips the restore, it names the node that panicked.
    pub current_node: usize,
    /// Set by [`ProcessorContext::commit`](crate::processor::ProcessorContext::commit): the
    /// thread (or the test driver) commits the task as soon as the current record is done.
    pub commit_requested: bool,
}

/// [`TaskState::current_node`] when no processor node is running (a source decoding).
pub(crate) const NO_NODE: usize = usize::MAX;

/// The clocks of a task as handles opened from it see them.
#[derive(Debug)]
pub(crate) struct TaskClock {
    event_time: AtomicI64,
    max_event_time: AtomicI64,
    wall_clock: AtomicI64,
}

impl TaskClock {
    pub fn new(wall_clock_ms: i64) -> Self {
        TaskClock {
            event_time: AtomicI64::new(i64::MIN),
            max_event_time: AtomicI64::new(i64::MIN),
            wall_clock: AtomicI64::new(wall_clock_ms),
        }
    }

    /// Event time of the record being processed (the last one seen, between records);
    /// `i64::MIN` before the first.
    pub fn event_time(&self) -> i64 {
        self.event_time.load(Ordering::Relaxed)
    }

    pub fn set_event_time(&self, ts: i64) {
        self.event_time.store(ts, Ordering::Relaxed);
        self.max_event_time.fetch_max(ts, Ordering::Relaxed);
    }

    /// The largest event time seen (the task's stream time as its sources see it).
    pub fn max_event_time(&self) -> i64 {
        self.max_event_time.load(Ordering::Relaxed)
    }

    /// Wall-clock time in ms (simulated under the test driver).
    pub fn wall_clock(&self) -> i64 {
        self.wall_clock.load(Ordering::Relaxed)
    }

    pub fn set_wall_clock(&self, ms: i64) {
        self.wall_clock.store(ms, Ordering::Relaxed);
    }
}
