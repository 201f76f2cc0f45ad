//! Per-task state shared by every node of a task while it processes: record origin, clocks,
//! punctuation schedules, and the collector that sinks write to.

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::Result;
use crate::metrics::TaskMetrics;
use crate::processor::{PunctuationType, PunctuatorId};
use crate::record::{Headers, RecordMetadata};
use crate::runtime::TaskId;
use crate::runtime::handler::DeserializationHandler;
use crate::runtime::stores::TaskStores;

/// Where sinks hand serialized records: the Kafka producer at runtime, memory under test.
pub(crate) trait RecordCollector {
    /// Sends one record. `partition: None` lets the producer's partitioner choose (murmur2 of
    /// the key, as Kafka's Java clients do).
    fn send(&mut self, out: OutRecord<'_>) -> Result<()>;
}

/// A serialized output record.
pub(crate) struct OutRecord<'a> {
    pub topic: &'a str,
    pub partition: Option<i32>,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub timestamp: i64,
    pub headers: &'a Headers,
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
pub(crate) struct TaskContext {
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
}
