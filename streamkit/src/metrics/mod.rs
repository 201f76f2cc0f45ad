//! Prometheus metrics for an application instance; names and labels live in [`names`].

pub mod names;

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

use crate::runtime::TaskId;
use names::*;

/// The metrics of one application instance (or one test driver), in their own registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    processed: IntCounterVec,
    dropped: IntCounterVec,
    dead_letter: IntCounterVec,
    pub(crate) commit_latency: HistogramVec,
    pub(crate) active_tasks: IntGaugeVec,
    pub(crate) restored: IntCounterVec,
    pub(crate) restore_remaining: IntGaugeVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A fresh registry with every streamkit metric registered.
    pub fn new(application_id: &str) -> Self {
        let registry = Registry::new();
        let constant = |o: Opts| o.const_label(APPLICATION_ID_LABEL, application_id);
        let processed = IntCounterVec::new(
            constant(Opts::new(RECORDS_PROCESSED, "records processed by a task")),
            &[THREAD_LABEL, TASK_LABEL],
        )
        .expect("valid metric");
        let dropped = IntCounterVec::new(
            constant(Opts::new(DROPPED_RECORDS, "records dropped, by reason")),
            &[TASK_LABEL, REASON_LABEL],
        )
        .expect("valid metric");
        let dead_letter = IntCounterVec::new(
            constant(Opts::new(
                DEAD_LETTER_RECORDS,
                "records sent to a dead-letter topic",
            )),
            &[TASK_LABEL],
        )
        .expect("valid metric");
        let commit_latency = HistogramVec::new(
            HistogramOpts::new(COMMIT_LATENCY, "commit latency in seconds")
                .const_label(APPLICATION_ID_LABEL, application_id),
            &[THREAD_LABEL],
        )
        .expect("valid metric");
        let active_tasks = IntGaugeVec::new(
            constant(Opts::new(ACTIVE_TASKS, "tasks owned by a stream thread")),
            &[THREAD_LABEL],
        )
        .expect("valid metric");
        let restored = IntCounterVec::new(
            constant(Opts::new(
                RESTORED_RECORDS,
                "changelog records restored into a store",
            )),
            &[STORE_LABEL],
        )
        .expect("valid metric");
        let restore_remaining = IntGaugeVec::new(
            constant(Opts::new(
                RESTORE_REMAINING,
                "changelog records left to restore",
            )),
            &[TASK_LABEL, STORE_LABEL],
        )
        .expect("valid metric");
        registry
            .register(Box::new(restored.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(restore_remaining.clone()))
            .expect("unique metric");
        for c in [&processed, &dropped, &dead_letter] {
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
        }
        registry
            .register(Box::new(commit_latency.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(active_tasks.clone()))
            .expect("unique metric");
        Metrics {
            registry,
            processed,
            dropped,
            dead_letter,
            commit_latency,
            active_tasks,
            restored,
            restore_remaining,
        }
    }

    /// The registry, to add your own metrics or to gather.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// All metrics in the Prometheus text format.
    pub fn encode_text(&self) -> String {
        let mut out = String::new();
        prometheus::TextEncoder::new()
            .encode_utf8(&self.registry.gather(), &mut out)
            .expect("text encoding of gathered metrics");
        out
    }

    /// Total records processed, over every task.
    pub fn records_processed(&self) -> u64 {
        sum(&self.processed)
    }

    /// Total records dropped for `reason` (see the `REASON_*` constants in [`names`]).
    pub fn dropped_records(&self, reason: &str) -> u64 {
        let mut total = 0;
        for family in self.registry.gather() {
            if family.name() != DROPPED_RECORDS {
                continue;
            }
            for m in family.get_metric() {
                if m.get_label()
                    .iter()
                    .any(|l| l.name() == REASON_LABEL && l.value() == reason)
                {
                    total += m.get_counter().get_value() as u64;
                }
            }
        }
        total
    }

    /// Total changelog records restored into stores.
    pub fn restored_records(&self) -> u64 {
        sum(&self.restored)
    }

    /// Total records sent to dead-letter topics.
    pub fn dead_letter_records(&self) -> u64 {
        sum(&self.dead_letter)
    }

    pub(crate) fn task(&self, thread: &str, task: TaskId) -> TaskMetrics {
        let task = task.to_string();
        TaskMetrics {
            processed: self.processed.with_label_values(&[thread, &task]),
            dropped_deserialization: self
                .dropped
                .with_label_values(&[&task, REASON_DESERIALIZATION]),
            dead_letter: self.dead_letter.with_label_values(&[&task]),
            dropped: self.dropped.clone(),
            task,
        }
    }
}

fn sum(vec: &IntCounterVec) -> u64 {
    use prometheus::core::Collector;
    vec.collect()
        .iter()
        .flat_map(|f| f.get_metric())
        .map(|m| m.get_counter().get_value() as u64)
        .sum()
}

/// A task's counters, resolved once so the hot path only increments.
#[derive(Clone)]
pub(crate) struct TaskMetrics {
    pub processed: IntCounter,
    pub dropped_deserialization: IntCounter,
    pub dead_letter: IntCounter,
    dropped: IntCounterVec,
    task: String,
}

impl TaskMetrics {
    /// Counts a dropped record for a reason other than deserialization.
    pub fn dropped(&self, reason: &str) {
        self.dropped.with_label_values(&[&self.task, reason]).inc();
    }
}
