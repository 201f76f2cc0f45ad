//! Prometheus metrics for an application instance; names and labels live in [`names`], the
//! bridge from librdkafka's statistics callback in `kafka.rs`.
//!
//! Per thread: records processed and their rate, commit latency, active tasks. Per task:
//! records processed, process and punctuate latency, dropped records by reason, dead letters,
//! restore progress. Per processor: records received. Per store: approximate entries; per
//! instance: RocksDB memory. Per client (from librdkafka statistics, every
//! `statistics.interval.ms`, default 5 s): consumer lag per partition, broker round-trip
//! time, queue sizes. Gauges read from stores and RocksDB are refreshed at each scrape
//! ([`Metrics::encode_text`]).

pub(crate) mod kafka;
pub mod names;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use prometheus::core::Collector;
use prometheus::{
    GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

use crate::record::TaskId;
use names::*;

/// Called before every scrape to refresh gauges read from elsewhere (stores, RocksDB).
type Refresh = Arc<dyn Fn() + Send + Sync>;

/// Latency buckets from 10 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0,
];

/// The metrics of one application instance (or one test driver), in their own registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    processed: IntCounterVec,
    pub(crate) processed_rate: GaugeVec,
    process_latency: HistogramVec,
    punctuate_latency: HistogramVec,
    processor_records: IntCounterVec,
    dropped: IntCounterVec,
    dead_letter: IntCounterVec,
    pub(crate) commit_latency: HistogramVec,
    pub(crate) active_tasks: IntGaugeVec,
    pub(crate) restored: IntCounterVec,
    pub(crate) restore_remaining: IntGaugeVec,
    pub(crate) store_entries: IntGaugeVec,
    pub(crate) rocksdb_memory: IntGaugeVec,
    pub(crate) kafka: kafka::KafkaMetrics,
    refresh: Arc<Mutex<Vec<Refresh>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Registers a collector and hands it back.
pub(crate) fn register<C: Collector + Clone + 'static>(registry: &Registry, c: C) -> C {
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    c
}

impl Metrics {
    /// A fresh registry with every streamkit metric registered.
    pub fn new(application_id: &str) -> Self {
        let registry = Registry::new();
        let opts = |name: &str, help: &str| {
            Opts::new(name, help).const_label(APPLICATION_ID_LABEL, application_id)
        };
        let histogram = |name: &str, help: &str| {
            HistogramOpts::new(name, help)
                .const_label(APPLICATION_ID_LABEL, application_id)
                .buckets(LATENCY_BUCKETS.to_vec())
        };
        let r = &registry;
        let counter = |name, help, labels: &[&str]| {
            register(
                r,
                IntCounterVec::new(opts(name, help), labels).expect("valid metric"),
            )
        };
        let gauge = |name, help, labels: &[&str]| {
            register(
                r,
                IntGaugeVec::new(opts(name, help), labels).expect("valid metric"),
            )
        };
        let hist = |name, help, labels: &[&str]| {
            register(
                r,
                HistogramVec::new(histogram(name, help), labels).expect("valid metric"),
            )
        };
        Metrics {
            processed: counter(
                RECORDS_PROCESSED,
                "records processed by a task",
                &[THREAD_LABEL, TASK_LABEL],
            ),
            processed_rate: register(
                r,
                GaugeVec::new(
                    opts(
                        RECORDS_PROCESSED_RATE,
                        "records per second over the thread's last commit interval",
                    ),
                    &[THREAD_LABEL],
                )
                .expect("valid metric"),
            ),
            process_latency: hist(
                PROCESS_LATENCY,
                "time to process one input record through a task, seconds (one record in 16 is timed)",
                &[TASK_LABEL],
            ),
            punctuate_latency: hist(
                PUNCTUATE_LATENCY,
                "time a punctuator took, seconds",
                &[TASK_LABEL],
            ),
            processor_records: counter(
                PROCESSOR_RECORDS,
                "records a processor node received",
                &[TASK_LABEL, PROCESSOR_LABEL],
            ),
            dropped: counter(
                DROPPED_RECORDS,
                "records dropped, by reason",
                &[TASK_LABEL, REASON_LABEL],
            ),
            dead_letter: counter(
                DEAD_LETTER_RECORDS,
                "records sent to a dead-letter topic",
                &[TASK_LABEL],
            ),
            commit_latency: hist(COMMIT_LATENCY, "commit latency in seconds", &[THREAD_LABEL]),
            active_tasks: gauge(
                ACTIVE_TASKS,
                "tasks owned by a stream thread",
                &[THREAD_LABEL],
            ),
            restored: counter(
                RESTORED_RECORDS,
                "changelog records restored into a store",
                &[STORE_LABEL],
            ),
            restore_remaining: gauge(
                RESTORE_REMAINING,
                "changelog records left to restore",
                &[TASK_LABEL, STORE_LABEL],
            ),
            store_entries: gauge(
                STORE_ENTRIES,
                "approximate entries in a store of a task",
                &[TASK_LABEL, STORE_LABEL],
            ),
            rocksdb_memory: gauge(
                ROCKSDB_MEMORY,
                "memory of the instance's RocksDB stores, bytes",
                &[KIND_LABEL],
            ),
            kafka: kafka::KafkaMetrics::new(r, &opts),
            refresh: Arc::default(),
            registry,
        }
    }

    /// The registry, to add your own metrics or to gather.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Runs `f` before every [`encode_text`](Self::encode_text), to refresh gauges that are
    /// read rather than counted.
    pub(crate) fn on_scrape(&self, f: impl Fn() + Send + Sync + 'static) {
        self.refresh.lock().expect("refresh lock").push(Arc::new(f));
    }

    /// All metrics in the Prometheus text format (gauges read from stores refreshed first).
    pub fn encode_text(&self) -> String {
        let hooks = self.refresh.lock().expect("refresh lock").clone();
        for h in hooks {
            h();
        }
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
        self.dropped
            .collect()
            .iter()
            .flat_map(|f| f.get_metric())
            .filter(|m| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == REASON_LABEL && l.value() == reason)
            })
            .map(|m| m.get_counter().get_value() as u64)
            .sum()
    }

    /// Total records processor node `processor` received, over every task.
    pub fn processor_records(&self, processor: &str) -> u64 {
        self.processor_records
            .collect()
            .iter()
            .flat_map(|f| f.get_metric())
            .filter(|m| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == PROCESSOR_LABEL && l.value() == processor)
            })
            .map(|m| m.get_counter().get_value() as u64)
            .sum()
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
            process_latency: self.process_latency.with_label_values(&[&task]),
            punctuate_latency: self.punctuate_latency.with_label_values(&[&task]),
            processor_records: self.processor_records.clone(),
            dropped: self.dropped.clone(),
            task,
        }
    }

    /// Measures a thread's processing rate between two calls of [`RateMeter::tick`].
    pub(crate) fn rate_meter(&self, thread: &str) -> RateMeter {
        RateMeter {
            thread: thread.to_string(),
            processed: self.processed.clone(),
            gauge: self.processed_rate.with_label_values(&[thread]),
            last: None,
        }
    }
}

fn sum(vec: &IntCounterVec) -> u64 {
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
    pub process_latency: prometheus::Histogram,
    pub punctuate_latency: prometheus::Histogram,
    processor_records: IntCounterVec,
    dropped: IntCounterVec,
    task: String,
}

impl TaskMetrics {
    /// Counts a dropped record for a reason other than deserialization.
    pub fn dropped(&self, reason: &str) {
        self.dropped.with_label_values(&[&self.task, reason]).inc();
    }

    /// The counter of records processor node `name` receives in this task.
    pub fn processor(&self, name: &str) -> IntCounter {
        self.processor_records
            .with_label_values(&[&self.task, name])
    }
}

/// Records per second of one thread, computed from its tasks' counters at each tick.
pub(crate) struct RateMeter {
    thread: String,
    processed: IntCounterVec,
    gauge: prometheus::Gauge,
    last: Option<(Instant, u64)>,
}

impl RateMeter {
    /// Sets the rate since the previous tick.
    pub fn tick(&mut self) {
        let total: u64 = self
            .processed
            .collect()
            .iter()
            .flat_map(|f| f.get_metric())
            .filter(|m| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == THREAD_LABEL && l.value() == self.thread)
            })
            .map(|m| m.get_counter().get_value() as u64)
            .sum();
        let now = Instant::now();
        if let Some((then, before)) = self.last {
            let secs = now.duration_since(then).as_secs_f64();
            if secs > 0.0 {
                self.gauge.set(total.saturating_sub(before) as f64 / secs);
            }
        }
        self.last = Some((now, total));
    }
}
