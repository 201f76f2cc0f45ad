//! The public Processor API: custom operators with access to record metadata, punctuators and
//! (from the stateful layer) state stores.
//!
//! A [`Processor`] receives one [`Record`] at a time through
//! [`process`](Processor::process) and emits records downstream with
//! [`ProcessorContext::forward`]. Every built-in DSL operator (`filter`, `map`, `split`, …) is a
//! `Processor` written on this same API, in `operators/`, one file each.
//!
//! A processor instance belongs to one task (one partition of one sub-topology) and is only
//! ever called from that task's thread, so it needs no locking and need not be `Send`: the
//! DSL takes a *supplier* (a `Fn() -> P + Send + Sync`) and creates one instance per task.
//!
//! ```
//! use streamkit::prelude::*;
//!
//! /// Emits a running count per input key, and every 10 s of stream time a heartbeat.
//! #[derive(Default)]
//! struct Counter { seen: u64 }
//!
//! impl Processor<String, String> for Counter {
//!     type KOut = String;
//!     type VOut = u64;
//!     fn init(&mut self, ctx: &mut ProcessorContext<'_, String, u64>) -> Result<()> {
//!         ctx.schedule(std::time::Duration::from_secs(10), PunctuationType::StreamTime);
//!         Ok(())
//!     }
//!     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, u64>, r: Record<String, String>) -> Result<()> {
//!         self.seen += 1;
//!         ctx.forward(r.with_value(self.seen))
//!     }
//!     fn punctuate(&mut self, ctx: &mut ProcessorContext<'_, String, u64>, p: Punctuation) -> Result<()> {
//!         ctx.forward(Record::new("heartbeat".to_string(), self.seen, p.timestamp))
//!     }
//! }
//!
//! let b = StreamsBuilder::new();
//! b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
//!     .process(Counter::default)
//!     .to("out", Produced::with(Serdes::string(), Serdes::json::<u64>()));
//! let mut driver = TopologyTestDriver::new(b.build().unwrap()).unwrap();
//! let input = driver.input_topic("in", Serdes::string(), Serdes::string());
//! let output = driver.output_topic("out", Serdes::string(), Serdes::json::<u64>());
//! input.pipe_at("a".to_string(), "x".to_string(), 1_000).unwrap();
//! input.pipe_at("b".to_string(), "y".to_string(), 12_000).unwrap();
//! assert_eq!(output.read_key_values(), vec![
//!     ("a".to_string(), 1), ("heartbeat".to_string(), 1),   // first record starts stream time
//!     ("b".to_string(), 2), ("heartbeat".to_string(), 2),   // 12 s ≥ 1 s + 10 s
//! ]);
//! ```

mod fixed_key;
mod store_builder;
pub(crate) mod task_state;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

pub(crate) use fixed_key::FixedKeyAdapter;
pub use fixed_key::{FixedKeyProcessor, FixedKeyProcessorContext, FixedKeyRecord};
pub use store_builder::StoreBuilder;

pub use crate::record::Data;
pub use crate::state::{KeyValueStore, SessionStore, WindowStore};

use crate::error::Result;
use crate::record::{Record, RecordMetadata, TaskId};
use crate::state::store::SharedStore;
use task_state::{OutRecord, Schedule, TaskClock, TaskState};

/// Receives typed records from a parent node.
pub(crate) trait Downstream<K, V> {
    fn receive(&mut self, task: &mut TaskState, record: Record<K, V>) -> Result<()>;
}

/// A typed handle on a child node, with its name for `forward_to`.
pub(crate) struct Child<K, V> {
    pub name: Arc<str>,
    pub node: Rc<RefCell<dyn Downstream<K, V>>>,
}

/// A custom operator. See the [module documentation](self) for a complete example.
pub trait Processor<KIn, VIn>: 'static {
    /// Key type of the records this processor forwards.
    type KOut: Data;
    /// Value type of the records this processor forwards.
    type VOut: Data;

    /// Called once when the task starts, before any record: schedule punctuators here.
    fn init(&mut self, _ctx: &mut ProcessorContext<'_, Self::KOut, Self::VOut>) -> Result<()> {
        Ok(())
    }

    /// Called for each input record.
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Self::KOut, Self::VOut>,
        record: Record<KIn, VIn>,
    ) -> Result<()>;

    /// Called when a punctuator scheduled with [`ProcessorContext::schedule`] fires.
    fn punctuate(
        &mut self,
        _ctx: &mut ProcessorContext<'_, Self::KOut, Self::VOut>,
        _punctuation: Punctuation,
    ) -> Result<()> {
        Ok(())
    }

    /// Called once when the task closes (shutdown or partition revoked). May still forward.
    fn close(&mut self, _ctx: &mut ProcessorContext<'_, Self::KOut, Self::VOut>) -> Result<()> {
        Ok(())
    }
}

/// Which clock drives a punctuator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PunctuationType {
    /// Stream time: the largest record timestamp the task has seen. Advances only with data;
    /// the first punctuation fires with the first record.
    StreamTime,
    /// The system clock (the test driver's simulated clock under test).
    WallClockTime,
}

/// Identifies a scheduled punctuator, to tell several apart or to cancel one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PunctuatorId(pub(crate) u64);

/// One firing of a punctuator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Punctuation {
    /// Which schedule fired.
    pub id: PunctuatorId,
    /// Its clock.
    pub kind: PunctuationType,
    /// The clock's time at firing, in ms.
    pub timestamp: i64,
}

/// What a processor can do besides returning: forward records, read the current record's
/// origin, schedule punctuators.
pub struct ProcessorContext<'a, K, V> {
    pub(crate) task: &'a mut TaskState,
    pub(crate) children: &'a [Child<K, V>],
    pub(crate) node: usize,
}

impl<K: Data, V: Data> ProcessorContext<'_, K, V> {
    /// Sends a record to every child.
    pub fn forward(&mut self, record: Record<K, V>) -> Result<()> {
        let Some((last, rest)) = self.children.split_last() else {
            return Ok(());
        };
        for child in rest {
            child.node.borrow_mut().receive(self.task, record.clone())?;
        }
        last.node.borrow_mut().receive(self.task, record)
    }

    /// Sends a record to the child node called `child` only.
    pub fn forward_to(&mut self, child: &str, record: Record<K, V>) -> Result<()> {
        match self.children.iter().find(|c| &*c.name == child) {
            Some(c) => c.node.borrow_mut().receive(self.task, record),
            None => Err(crate::Error::Topology(format!(
                "no child node named {child:?}; children are {:?}",
                self.child_names().collect::<Vec<_>>()
            ))),
        }
    }

    /// Names of the child nodes, in the order they were added.
    pub fn child_names(&self) -> impl Iterator<Item = &str> {
        self.children.iter().map(|c| &*c.name)
    }
}

impl<K, V> ProcessorContext<'_, K, V> {
    /// Topic, partition and offset of the input record being processed; `None` inside a
    /// wall-clock punctuation or `init`/`close`.
    pub fn record_metadata(&self) -> Option<&RecordMetadata> {
        self.task.meta.as_ref()
    }

    /// The application id.
    pub fn application_id(&self) -> &str {
        &self.task.app_id
    }

    /// The task this processor instance belongs to.
    pub fn task_id(&self) -> TaskId {
        self.task.task_id
    }

    /// The task's stream time (largest record timestamp seen), or `i64::MIN` before any record.
    pub fn stream_time(&self) -> i64 {
        self.task.stream_time
    }

    /// Current wall-clock time in ms (the test driver's simulated clock under test).
    pub fn wall_clock_time(&self) -> i64 {
        self.task.wall_clock_ms
    }

    /// Calls this processor's [`Processor::punctuate`] every `interval` of the given clock.
    pub fn schedule(&mut self, interval: Duration, kind: PunctuationType) -> PunctuatorId {
        let id = PunctuatorId(self.task.next_schedule_id);
        self.task.next_schedule_id += 1;
        let interval_ms = (interval.as_millis() as i64).max(1);
        let next = match kind {
            PunctuationType::StreamTime => None,
            PunctuationType::WallClockTime => Some(self.task.wall_clock_ms + interval_ms),
        };
        self.task.schedules.push(Schedule {
            id,
            node: self.node,
            kind,
            interval_ms,
            next,
        });
        id
    }

    /// Stops a punctuator.
    pub fn cancel(&mut self, id: PunctuatorId) {
        self.task.schedules.retain(|s| s.id != id);
    }

    fn store(&self, name: &str) -> Result<SharedStore> {
        let allowed = self
            .task
            .node_stores
            .get(&self.node)
            .is_some_and(|s| s.iter().any(|s| s == name));
        if !allowed {
            return Err(crate::Error::Topology(format!(
                "this processor is not connected to store {name:?}; list it in process_with_stores"
            )));
        }
        self.task
            .stores
            .get(name)
            .or_else(|| self.task.global_stores.get(name))
            .cloned()
            .ok_or_else(|| crate::Error::Internal(format!("store {name:?} not opened by the task")))
    }

    /// The key-value store `name` (the processor must be connected to it). A global table's
    /// store is read-only here: its writes come from the global thread.
    pub fn key_value_store<SK: Data, SV: Data>(&self, name: &str) -> Result<KeyValueStore<SK, SV>> {
        let store = KeyValueStore::open(self.store(name)?)?;
        if self.task.stores.contains_key(name) {
            Ok(store)
        } else {
            Ok(store.read_only())
        }
    }

    /// The window store `name`.
    pub fn window_store<SK: Data, SV: Data>(&self, name: &str) -> Result<WindowStore<SK, SV>> {
        WindowStore::open(self.store(name)?)
    }

    /// The session store `name`.
    pub fn session_store<SK: Data, SV: Data>(&self, name: &str) -> Result<SessionStore<SK, SV>> {
        SessionStore::open(self.store(name)?)
    }

    /// Counts a record dropped for `reason` (see [`crate::metrics::names`]).
    pub fn record_dropped(&self, reason: &str) {
        self.task.metrics.dropped(reason);
    }

    /// Asks for a commit of this task as soon as possible after the current record (Kafka
    /// Streams' `ProcessorContext#commit`): its output is flushed, its stores' caches written
    /// out and its input offsets committed then, rather than at the next
    /// [`commit_interval`](crate::config::StreamsConfig::commit_interval). The stream thread
    /// commits after the batch of records it is processing. A request, not a commit: nothing
    /// is committed when this returns.
    ///
    /// # Examples
    ///
    /// Commit after each record marked urgent:
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// struct Urgent;
    /// impl Processor<String, String> for Urgent {
    ///     type KOut = String;
    ///     type VOut = String;
    ///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>, r: Record<String, String>) -> Result<()> {
    ///         if r.value.starts_with('!') {
    ///             ctx.commit();
    ///         }
    ///         ctx.forward(r)
    ///     }
    /// }
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .process(|| Urgent)
    ///     .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
    ///     .count(Materialized::named("counts").with_caching_enabled());
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.set_commit_every(1_000); // commit rarely, unless asked
    /// let input = d.input_topic("in", Serdes::string(), Serdes::string());
    /// input.pipe_all([("k".to_string(), "a".to_string()), ("k".to_string(), "!b".to_string())])?;
    /// // The commit wrote the cached count to the changelog.
    /// let changelog = d.output_topic("test-app-counts-changelog", Serdes::string(), Serdes::i64());
    /// assert_eq!(changelog.read_values(), vec![2]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn commit(&mut self) {
        self.task.commit_requested = true;
    }

    /// Whether a forwarded record goes anywhere (built-in operators skip building records
    /// nobody receives).
    pub(crate) fn has_children(&self) -> bool {
        !self.children.is_empty()
    }

    /// Hands a serialized record to the task's collector (the producer at run time, the test
    /// driver under test): the sealed "send to topic" of the byte-boundary nodes (sinks,
    /// dead-letter queues). Users forward; only built-in operators write bytes.
    pub(crate) fn send(&mut self, out: OutRecord<'_>) -> Result<()> {
        self.task.collector.send(out)
    }

    /// The partition count of `topic`, for a sink's custom partitioner.
    pub(crate) fn partition_count(&mut self, topic: &str) -> Result<i32> {
        self.task.collector.partition_count(topic)
    }

    /// The task's clocks, for handles that read them outside a `ProcessorContext` (Faust-style
    /// tables).
    pub(crate) fn clock(&self) -> Arc<TaskClock> {
        self.task.clock.clone()
    }

    /// The stores this node is connected to, with whether each is a global (read-only) one.
    pub(crate) fn connected_stores(&self) -> Vec<(String, SharedStore, bool)> {
        let task = &*self.task;
        task.node_stores
            .get(&self.node)
            .into_iter()
            .flatten()
            .filter_map(|name| match task.stores.get(name) {
                Some(s) => Some((name.clone(), s.clone(), false)),
                None => Some((name.clone(), task.global_stores.get(name)?.clone(), true)),
            })
            .collect()
    }
}
