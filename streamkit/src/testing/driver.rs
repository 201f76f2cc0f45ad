//! [`TopologyTestDriver`]: runs a topology without a broker, deterministically.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::config::StreamsConfig;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::processor::Data;
use crate::processor::task_state::{OutRecord, RecordCollector};
use crate::record::TaskId;
use crate::record::{Headers, Record};
use crate::runtime::task::{Task, TaskSetup};
use crate::serde::{Serde, SerdeRef, decode, encode};
use crate::state::rocksdb::RocksDbShared;
use crate::state::store::StoreRegistry;
use crate::state::store::TaskStores;
use crate::table::{ReadOnlyKeyValueStore, ReadOnlySessionStore, ReadOnlyWindowStore};
use crate::topology::Topology;
use crate::topology::node::RawRecord;

/// A record as the driver stores it: bytes, as they would sit in a Kafka topic.
#[derive(Debug, Clone)]
struct StoredRecord {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    timestamp: i64,
    headers: Headers,
}

type Captured = Rc<RefCell<Vec<(String, StoredRecord)>>>;

struct Capture(Captured);

impl RecordCollector for Capture {
    fn send(&mut self, out: OutRecord<'_>) -> Result<()> {
        self.0.borrow_mut().push((
            out.topic.to_string(),
            StoredRecord {
                key: out.key.map(<[u8]>::to_vec),
                value: out.value.map(<[u8]>::to_vec),
                timestamp: out.timestamp,
                headers: out.headers.clone(),
            },
        ));
        Ok(())
    }
}

struct Inner {
    app_id: Arc<str>,
    tasks: Vec<Task>,
    /// Resolved topic → (task, source index).
    routes: HashMap<String, (usize, usize)>,
    captured: Captured,
    outputs: HashMap<String, VecDeque<StoredRecord>>,
    offsets: HashMap<String, i64>,
    wall_clock_ms: i64,
    commit_every: usize,
    since_commit: usize,
    /// A processor asked for a commit while the current input record was processed.
    commit_requested: bool,
}

impl Inner {
    /// Feeds one record to the task reading `topic`, then every record it produced to the
    /// tasks reading those topics (repartition topics), breadth first, like a broker would.
    fn pipe(&mut self, topic: &str, record: StoredRecord) -> Result<()> {
        self.process_one(topic, &record)?;
        // Allocates nothing unless the topology feeds itself.
        let mut pending = VecDeque::new();
        self.drain(&mut pending);
        loop {
            while let Some((topic, record)) = pending.pop_front() {
                self.process_one(&topic, &record)?;
                self.drain(&mut pending);
            }
            // A processor asked for a commit (`ProcessorContext::commit`): made once the
            // record has gone through every sub-topology, as a stream thread commits after
            // its batch.
            if !std::mem::take(&mut self.commit_requested) {
                return Ok(());
            }
            self.since_commit = 0;
            for t in &mut self.tasks {
                t.flush_caches()?;
            }
            self.drain(&mut pending);
        }
    }

    /// Processes one record of `topic` in the task reading it, then commits if it is time.
    fn process_one(&mut self, topic: &str, record: &StoredRecord) -> Result<()> {
        let Some(&(task, source)) = self.routes.get(topic) else {
            return Err(Error::Config(format!(
                "topic {topic} is not read by the topology"
            )));
        };
        let offset = match self.offsets.get_mut(topic) {
            Some(o) => o,
            None => self.offsets.entry(topic.to_string()).or_insert(0),
        };
        let this_offset = *offset;
        *offset += 1;
        let raw = RawRecord {
            key: record.key.as_deref(),
            value: record.value.as_deref(),
            timestamp: record.timestamp,
            headers: record.headers.clone(),
        };
        self.tasks[task].process(source, this_offset, raw)?;
        // Like Kafka Streams' driver, commit after every record by default: caches are
        // written out.
        self.since_commit += 1;
        self.commit_requested |= self.tasks[task].take_commit_request();
        if self.since_commit >= self.commit_every {
            self.since_commit = 0;
            for t in &mut self.tasks {
                t.flush_caches()?;
            }
        }
        Ok(())
    }

    /// Moves captured output to the output queues, queueing records for topics the topology
    /// reads itself.
    fn drain(&mut self, pending: &mut VecDeque<(String, StoredRecord)>) {
        let mut captured = self.captured.borrow_mut();
        if captured.is_empty() {
            return;
        }
        for (topic, record) in captured.drain(..) {
            if self.routes.contains_key(&topic) {
                pending.push_back((topic.clone(), record.clone()));
            }
            match self.outputs.get_mut(&topic) {
                Some(queue) => queue.push_back(record),
                None => self.outputs.entry(topic).or_default().push_back(record),
            }
        }
    }

    fn advance(&mut self, by: Duration) -> Result<()> {
        self.wall_clock_ms += by.as_millis() as i64;
        let mut pending = VecDeque::new();
        for t in 0..self.tasks.len() {
            self.tasks[t].advance_wall_clock(self.wall_clock_ms)?;
            self.drain(&mut pending);
        }
        while let Some((topic, record)) = pending.pop_front() {
            self.pipe(&topic, record)?;
        }
        Ok(())
    }
}

/// Runs a [`Topology`] in-process with no broker: records piped into [`TestInputTopic`]s are
/// processed synchronously, output lands in [`TestOutputTopic`]s, repartition topics are fed
/// back in, and wall-clock time only moves when you call
/// [`advance_wall_clock_time`](Self::advance_wall_clock_time). Every sub-topology runs as the
/// task for partition 0; records piped into a global table's topic update its store, which
/// every task reads.
///
/// ```
/// use streamkit::prelude::*;
/// use streamkit::error_policy::{DeserializationHandler, dead_letter_headers};
///
/// let b = StreamsBuilder::new();
/// b.stream("in", Consumed::with(Serdes::string(), Serdes::i64())
///         .on_deserialization_error(DeserializationHandler::DeadLetter("in-dlq".into())))
///     .to("out", Produced::with(Serdes::string(), Serdes::i64()));
/// let driver = TopologyTestDriver::new(b.build()?)?;
/// driver.input_topic("in", Serdes::string(), Serdes::string()).pipe("k".into(), "not a long".into())?;
/// let dead = driver.output_topic("in-dlq", Serdes::string(), Serdes::string()).read_record().unwrap();
/// assert_eq!(dead.value, "not a long");
/// assert_eq!(dead.headers.last_str(dead_letter_headers::TOPIC), Some("in"));
/// assert_eq!(driver.metrics().dropped_records("deserialization"), 1);
/// # Ok::<(), streamkit::Error>(())
/// ```
pub struct TopologyTestDriver {
    inner: Rc<RefCell<Inner>>,
    metrics: Metrics,
    registry: StoreRegistry,
    /// This driver's own state directory, removed on drop.
    state_root: std::path::PathBuf,
    /// The tasks' ids, to take their stores out of the registry on drop.
    task_ids: Vec<TaskId>,
}

impl Drop for TopologyTestDriver {
    fn drop(&mut self) {
        // Stores close before their directory goes: RocksDB flushes on close, and a flush into
        // a removed directory fails and is retried for seconds.
        if let Ok(mut inner) = self.inner.try_borrow_mut() {
            inner.tasks.clear();
        }
        for id in &self.task_ids {
            self.registry.unregister(*id);
        }
        let _ = std::fs::remove_dir_all(&self.state_root);
    }
}

impl TopologyTestDriver {
    /// A driver with application id `test-app` and wall clock at 0.
    pub fn new(topology: Topology) -> Result<Self> {
        Self::with_config(topology, StreamsConfig::new("test-app"))
    }

    /// A driver using `config`'s application id and default deserialization handler.
    pub fn with_config(topology: Topology, config: StreamsConfig) -> Result<Self> {
        let app_id: Arc<str> = Arc::from(config.application_id.as_str());
        let metrics = Metrics::new(&app_id);
        let captured: Captured = Rc::default();
        let registry = StoreRegistry::default();
        let rocksdb = RocksDbShared::new(config.rocksdb_memory);
        let cache = crate::state::cache::CacheBudget::new(config.cache_max_bytes);
        static DRIVERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = DRIVERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let state_root = config
            .state_dir
            .join(&*app_id)
            .join(format!("driver-{}-{n}", std::process::id()));
        let mut tasks = Vec::new();
        let mut task_ids = Vec::new();
        let mut routes = HashMap::new();
        // Global tables' tasks first: every other task reads their stores.
        let mut global_stores = TaskStores::new();
        let ids = topology
            .global_subtopologies
            .iter()
            .chain(&topology.subtopologies)
            .map(|s| s.id)
            .collect::<Vec<_>>();
        for sub in ids {
            let id = TaskId {
                subtopology: sub,
                partition: 0,
            };
            let task = Task::new(
                &topology,
                id,
                TaskSetup {
                    app_id: app_id.clone(),
                    thread: Arc::from("test-driver"),
                    collector: Box::new(Capture(captured.clone())),
                    default_handler: config.default_deserialization_handler.clone(),
                    processing_handler: config.processing_error_handler.clone(),
                    metrics: metrics.task("test-driver", id),
                    wall_clock_ms: 0,
                    state_dir: state_root.join(id.to_string()),
                    registry: registry.clone(),
                    rocksdb: rocksdb.clone(),
                    cache: cache.clone(),
                    global_stores: global_stores.clone(),
                },
            )?;
            if sub >= topology.subtopology_count() {
                global_stores.extend(task.stores().iter().map(|(n, s)| (n.clone(), s.clone())));
            }
            for (source, topic) in task.source_topics().enumerate() {
                routes.insert(topic.to_string(), (tasks.len(), source));
            }
            tasks.push(task);
            task_ids.push(id);
        }
        let mut inner = Inner {
            app_id,
            tasks,
            routes,
            captured,
            outputs: HashMap::new(),
            offsets: HashMap::new(),
            wall_clock_ms: 0,
            commit_every: 1,
            since_commit: 0,
            commit_requested: false,
        };
        // Output of `init` (rare, but allowed).
        let mut pending = VecDeque::new();
        inner.drain(&mut pending);
        for (topic, record) in pending {
            inner.pipe(&topic, record)?;
        }
        Ok(TopologyTestDriver {
            inner: Rc::new(RefCell::new(inner)),
            metrics,
            registry,
            state_root,
            task_ids,
        })
    }

    /// A handle to pipe typed records into `topic`. Internal topics take their resolved name
    /// (`<application-id>-<name>`).
    pub fn input_topic<K: Data, V: Data>(
        &self,
        topic: &str,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
    ) -> TestInputTopic<K, V> {
        TestInputTopic {
            inner: self.inner.clone(),
            topic: topic.to_string(),
            key_serde: Arc::new(key_serde),
            value_serde: Arc::new(value_serde),
            next_timestamp: RefCell::new(0),
            _types: PhantomData,
        }
    }

    /// A handle to read typed records the topology wrote to `topic`.
    pub fn output_topic<K: Data, V: Data>(
        &self,
        topic: &str,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
    ) -> TestOutputTopic<K, V> {
        TestOutputTopic {
            inner: self.inner.clone(),
            topic: topic.to_string(),
            key_serde: Arc::new(key_serde),
            value_serde: Arc::new(value_serde),
        }
    }

    /// Commits (writes record caches out) every `n` input records instead of after each one,
    /// as a running application does between commit intervals. Default = 1.
    pub fn set_commit_every(&self, n: usize) {
        self.inner.borrow_mut().commit_every = n.max(1);
    }

    /// Moves the simulated wall clock forward and fires due wall-clock punctuators.
    pub fn advance_wall_clock_time(&self, by: Duration) -> Result<()> {
        self.inner.borrow_mut().advance(by)
    }

    /// The simulated wall clock, in ms.
    pub fn wall_clock_time(&self) -> i64 {
        self.inner.borrow().wall_clock_ms
    }

    /// Every topic the topology wrote to so far (internal ones included).
    pub fn produced_topic_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.inner.borrow().outputs.keys().cloned().collect();
        names.sort();
        names
    }

    /// Reads the key-value store `name` directly.
    pub fn key_value_store<K: Data, V: Data>(
        &self,
        name: &str,
    ) -> Result<ReadOnlyKeyValueStore<K, V>> {
        ReadOnlyKeyValueStore::open(&self.registry, name)
    }

    /// Reads the window store `name` directly.
    pub fn window_store<K: Data, V: Data>(&self, name: &str) -> Result<ReadOnlyWindowStore<K, V>> {
        ReadOnlyWindowStore::open(&self.registry, name)
    }

    /// Reads the session store `name` directly.
    pub fn session_store<K: Data, V: Data>(
        &self,
        name: &str,
    ) -> Result<ReadOnlySessionStore<K, V>> {
        ReadOnlySessionStore::open(&self.registry, name)
    }

    /// The driver's metrics (records processed, dropped by reason, dead-lettered).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The application id in use.
    pub fn application_id(&self) -> String {
        self.inner.borrow().app_id.to_string()
    }

    /// Calls `close` on every processor (they may still emit records).
    pub fn close(self) -> Result<()> {
        let mut inner = self.inner.borrow_mut();
        for t in &mut inner.tasks {
            t.close()?;
        }
        Ok(())
    }
}

/// Pipes typed records into one topic of a [`TopologyTestDriver`].
pub struct TestInputTopic<K, V> {
    inner: Rc<RefCell<Inner>>,
    topic: String,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
    next_timestamp: RefCell<i64>,
    _types: PhantomData<fn(K, V)>,
}

impl<K: Data, V: Data> TestInputTopic<K, V> {
    /// Pipes a record stamped with the topic's current time (0 unless a record with a
    /// timestamp was piped: the latest timestamp piped is reused).
    pub fn pipe(&self, key: K, value: V) -> Result<()> {
        let ts = *self.next_timestamp.borrow();
        self.pipe_record(Record::new(key, value, ts))
    }

    /// Pipes a record with an event timestamp in ms.
    pub fn pipe_at(&self, key: K, value: V, timestamp: i64) -> Result<()> {
        self.pipe_record(Record::new(key, value, timestamp))
    }

    /// Pipes a full record (headers included).
    pub fn pipe_record(&self, record: Record<K, V>) -> Result<()> {
        *self.next_timestamp.borrow_mut() = record.timestamp;
        let (mut k, mut v) = (Vec::new(), Vec::new());
        let has_key = encode(&*self.key_serde, &self.topic, &record.key, &mut k)?;
        let has_value = encode(&*self.value_serde, &self.topic, &record.value, &mut v)?;
        let stored = StoredRecord {
            key: has_key.then_some(k),
            value: has_value.then_some(v),
            timestamp: record.timestamp,
            headers: record.headers,
        };
        self.inner.borrow_mut().pipe(&self.topic, stored)
    }

    /// Pipes raw bytes (for malformed input); `None` is Kafka null.
    pub fn pipe_raw(&self, key: Option<&[u8]>, value: Option<&[u8]>, timestamp: i64) -> Result<()> {
        let stored = StoredRecord {
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            timestamp,
            headers: Headers::new(),
        };
        self.inner.borrow_mut().pipe(&self.topic, stored)
    }

    /// Pipes records in order.
    pub fn pipe_all(&self, records: impl IntoIterator<Item = (K, V)>) -> Result<()> {
        records.into_iter().try_for_each(|(k, v)| self.pipe(k, v))
    }
}

/// Reads typed records a topology wrote to one topic, oldest first. Reading consumes.
/// Decoding failures panic with the topic and error: this is test tooling.
pub struct TestOutputTopic<K, V> {
    inner: Rc<RefCell<Inner>>,
    topic: String,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
}

impl<K: Data, V: Data> TestOutputTopic<K, V> {
    /// The next record, or `None` if none is waiting.
    pub fn read_record(&self) -> Option<Record<K, V>> {
        let stored = self
            .inner
            .borrow_mut()
            .outputs
            .get_mut(&self.topic)?
            .pop_front()?;
        let key = decode(&*self.key_serde, &self.topic, stored.key.as_deref())
            .unwrap_or_else(|e| panic!("cannot decode a key of {}: {e}", self.topic));
        let value = decode(&*self.value_serde, &self.topic, stored.value.as_deref())
            .unwrap_or_else(|e| panic!("cannot decode a value of {}: {e}", self.topic));
        Some(Record {
            key,
            value,
            timestamp: stored.timestamp,
            headers: stored.headers,
        })
    }

    /// The next (key, value).
    pub fn read_key_value(&self) -> Option<(K, V)> {
        self.read_record().map(|r| (r.key, r.value))
    }

    /// The next value.
    pub fn read_value(&self) -> Option<V> {
        self.read_record().map(|r| r.value)
    }

    /// Every waiting record.
    pub fn read_records(&self) -> Vec<Record<K, V>> {
        std::iter::from_fn(|| self.read_record()).collect()
    }

    /// Every waiting (key, value).
    pub fn read_key_values(&self) -> Vec<(K, V)> {
        std::iter::from_fn(|| self.read_key_value()).collect()
    }

    /// Every waiting value.
    pub fn read_values(&self) -> Vec<V> {
        std::iter::from_fn(|| self.read_value()).collect()
    }

    /// Number of records waiting.
    pub fn queue_size(&self) -> usize {
        self.inner
            .borrow()
            .outputs
            .get(&self.topic)
            .map_or(0, VecDeque::len)
    }

    /// Whether no record is waiting.
    pub fn is_empty(&self) -> bool {
        self.queue_size() == 0
    }
}
