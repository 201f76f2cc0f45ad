//! The global thread: keeps each global table's store a full copy of its topic.
//!
//! At start it assigns itself every partition of the global tables' topics (no consumer
//! group), reads them from the beginning up to the end offsets found at start, and only then
//! do the stream threads start, so a lookup never misses a row that was in the topic before
//! the instance started. It then keeps reading, applying updates as they arrive. The topic is
//! the table's changelog: stores are rebuilt from it at every start (a persistent store is
//! emptied first, so rows deleted while the instance was down cannot survive).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers as _, Message};
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::StreamsConfig;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::record::Headers;
use crate::record::TaskId;
use crate::runtime::admin::base_client_config;
use crate::runtime::task::{Task, TaskSetup};
use crate::runtime::thread::{
    DeliveryTracker, ProducerCollector, ThreadProducer, is_fatal, now_ms,
};
use crate::state::rocksdb::RocksDbShared;
use crate::state::store::StoreRegistry;
use crate::state::store::TaskStores;
use crate::topology::Topology;
use crate::topology::node::RawRecord;

const METADATA_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) struct GlobalThreadArgs {
    pub topology: Arc<Topology>,
    pub config: StreamsConfig,
    pub metrics: Metrics,
    pub shutdown: Arc<AtomicBool>,
    pub registry: StoreRegistry,
    pub rocksdb: RocksDbShared,
    /// This instance's directory for the global stores (see [`instance_dir`]).
    pub dir: PathBuf,
}

/// A directory of its own for this instance's global stores,
/// `state_dir/<app-id>/global-<pid>-<n>`: every instance holds every global store at once
/// (two instances of a topology without task stores may share a state directory), and the
/// stores are rebuilt from their topics at each start, so nothing in it outlives the
/// instance. The instance locks it while it runs; directories nobody holds are removed.
pub(crate) fn instance_dir(config: &StreamsConfig) -> PathBuf {
    static INSTANCES: AtomicUsize = AtomicUsize::new(0);
    let app_dir = config.state_dir.join(&config.application_id);
    let pid = std::process::id();
    // Another instance's directory is removed only when nobody holds its lock: its owner is
    // gone (however it ended). A PID check would misjudge owners in other PID namespaces
    // sharing the directory.
    if let Ok(entries) = std::fs::read_dir(&app_dir) {
        for entry in entries.flatten() {
            let is_global = entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with("global-"));
            if !is_global || !entry.path().join(crate::state::dir::LOCK_FILE).exists() {
                continue;
            }
            if let Ok(Ok(_unheld)) = crate::state::dir::DirLock::try_acquire(&entry.path()) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let n = INSTANCES.fetch_add(1, Ordering::Relaxed);
    app_dir.join(format!("global-{pid}-{n}"))
}

/// Starts the global thread if the topology has global tables and waits until their stores
/// hold their topics up to the end offsets found at start. Returns the thread and the stores
/// (for the stream threads' tasks). `on_error` is called if the thread fails later.
pub(crate) fn start(
    args: GlobalThreadArgs,
    on_error: impl FnOnce(Error) + Send + 'static,
) -> Result<(Option<JoinHandle<()>>, TaskStores)> {
    if args.topology.global_subtopologies.is_empty() {
        return Ok((None, TaskStores::new()));
    }
    let name = format!("{}-GlobalStreamThread", args.config.application_id);
    let (tx, rx) = std::sync::mpsc::channel::<Result<TaskStores>>();
    let thread_name = name.clone();
    // Tasks hold `Rc`s: they are built on the thread that runs them.
    let handle = std::thread::Builder::new().name(name).spawn(move || {
        let mut global = match crate::error::catch_panic(&thread_name, || {
            GlobalThread::new(args, &thread_name)
        }) {
            Ok(g) => g,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        if let Err(e) = crate::error::catch_panic(&thread_name, || global.bootstrap()) {
            global.close();
            let _ = tx.send(Err(e));
            return;
        }
        let _ = tx.send(Ok(global.stores()));
        // A panic (a user closure of a global table's topology included) stops the instance
        // like an error.
        if let Err(e) = crate::error::catch_panic(&thread_name, || global.run()) {
            tracing::error!(thread = %thread_name, error = %e, "global thread failed; shutting the instance down");
            on_error(e);
        }
        global.close();
    })?;
    match rx.recv() {
        Ok(Ok(stores)) => Ok((Some(handle), stores)),
        Ok(Err(e)) => {
            let _ = handle.join();
            Err(e)
        }
        Err(_) => {
            let _ = handle.join();
            Err(Error::Internal("global thread died at start".into()))
        }
    }
}

struct GlobalThread {
    name: String,
    consumer: BaseConsumer,
    producer: Arc<ThreadProducer>,
    tasks: Vec<Task>,
    /// Resolved topic → (task, source index in the task).
    routes: HashMap<String, (usize, usize)>,
    /// (topic, partition, end offset at start) of every partition with records to load.
    ends: Vec<(String, i32, i64)>,
    shutdown: Arc<AtomicBool>,
    poll_timeout: Duration,
}

impl GlobalThread {
    fn new(args: GlobalThreadArgs, name: &str) -> Result<Self> {
        let config = &args.config;
        let app = config.application_id.as_str();
        // Only records that cannot be decoded are produced (to a dead-letter topic).
        let mut pc = base_client_config(config, "producer")?;
        pc.set("client.id", format!("{name}-producer"));
        let producer: Arc<ThreadProducer> =
            Arc::new(pc.create_with_context(DeliveryTracker::default())?);
        let mut cc = base_client_config(config, "global.consumer")?;
        cc.set("group.id", format!("{app}-global"))
            .set("client.id", format!("{name}-consumer"))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false");
        let consumer: BaseConsumer = cc.create()?;
        let mut tasks = Vec::new();
        let mut routes = HashMap::new();
        let cache = crate::state::cache::CacheBudget::new(config.cache_max_bytes);
        for sub in &args.topology.global_subtopologies {
            let id = TaskId {
                subtopology: sub.id,
                partition: 0,
            };
            let task = Task::new(
                &args.topology,
                id,
                TaskSetup {
                    app_id: Arc::from(app),
                    thread: Arc::from(name),
                    collector: Box::new(ProducerCollector::failing(
                        producer.clone(),
                        args.shutdown.clone(),
                    )),
                    default_handler: config.default_deserialization_handler.clone(),
                    processing_handler: config.processing_error_handler.clone(),
                    metrics: args.metrics.task(name, id),
                    wall_clock_ms: now_ms(),
                    state_dir: args.dir.join(sub.id.to_string()),
                    registry: args.registry.clone(),
                    rocksdb: args.rocksdb.clone(),
                    cache: cache.clone(),
                    global_stores: TaskStores::new(),
                },
            )?;
            for store in task.stores().values() {
                store.lock().expect("store lock").wipe()?;
            }
            for (source, topic) in task.source_topics().enumerate() {
                routes.insert(topic.to_string(), (tasks.len(), source));
            }
            tasks.push(task);
        }
        let mut tpl = TopicPartitionList::new();
        let mut ends = Vec::new();
        for topic in routes.keys() {
            let md = consumer.fetch_metadata(Some(topic), METADATA_TIMEOUT)?;
            let partitions: Vec<i32> = md
                .topics()
                .iter()
                .filter(|t| t.name() == topic)
                .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                .collect();
            if partitions.is_empty() {
                return Err(Error::MissingSourceTopics(vec![topic.clone()]));
            }
            for p in partitions {
                tpl.add_partition_offset(topic, p, Offset::Beginning)?;
                let (low, high) = consumer.fetch_watermarks(topic, p, METADATA_TIMEOUT)?;
                // An empty partition (or one whose records all expired) has nothing to load.
                if high > low {
                    ends.push((topic.clone(), p, high));
                }
            }
        }
        consumer.assign(&tpl)?;
        Ok(GlobalThread {
            name: name.to_string(),
            consumer,
            producer,
            tasks,
            routes,
            ends,
            shutdown: args.shutdown,
            poll_timeout: config.poll_timeout,
        })
    }

    fn stores(&self) -> TaskStores {
        self.tasks
            .iter()
            .flat_map(|t| t.stores().iter().map(|(n, s)| (n.clone(), s.clone())))
            .collect()
    }

    /// Reads every partition up to the end offset it had at start.
    fn bootstrap(&mut self) -> Result<()> {
        let mut behind: Vec<(String, i32, i64)> = self.ends.clone();
        let mut applied = 0u64;
        while !behind.is_empty() {
            if self.shutdown.load(Ordering::Acquire) {
                return Err(Error::IllegalState(
                    "closed while the global tables were loading".into(),
                ));
            }
            match self.consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    process(&mut self.tasks, &self.routes, &m)?;
                    applied += 1;
                }
                Some(Err(e)) if is_fatal(&e) => return Err(e.into()),
                Some(Err(e)) => {
                    tracing::warn!(thread = %self.name, error = %e, "global consumer error")
                }
                None => {}
            }
            // Offsets up to the end may hold no record (compaction, transaction markers).
            let positions = self.consumer.position()?;
            behind.retain(|(topic, partition, end)| {
                match positions
                    .find_partition(topic, *partition)
                    .map(|e| e.offset())
                {
                    Some(Offset::Offset(p)) => p < *end,
                    _ => *end > 0,
                }
            });
        }
        self.producer.flush(METADATA_TIMEOUT)?;
        self.producer.context().check()?;
        tracing::info!(thread = %self.name, records = applied, "global tables loaded");
        Ok(())
    }

    /// Keeps applying updates until shutdown.
    fn run(&mut self) -> Result<()> {
        while !self.shutdown.load(Ordering::Acquire) {
            match self.consumer.poll(self.poll_timeout) {
                Some(Ok(m)) => process(&mut self.tasks, &self.routes, &m)?,
                Some(Err(e)) if is_fatal(&e) => return Err(e.into()),
                Some(Err(e)) => {
                    tracing::warn!(thread = %self.name, error = %e, "global consumer error")
                }
                None => {}
            }
            self.producer.poll(Duration::ZERO);
            self.producer.context().check()?;
        }
        Ok(())
    }

    fn close(&mut self) {
        for task in &mut self.tasks {
            if let Err(e) = task.close() {
                tracing::error!(thread = %self.name, error = %e, "closing a global table failed");
            }
        }
        if let Err(e) = self.producer.flush(METADATA_TIMEOUT) {
            tracing::warn!(thread = %self.name, error = %e, "flushing the global thread's producer failed");
        }
    }
}

/// Applies one record of a global topic to its table.
fn process(
    tasks: &mut [Task],
    routes: &HashMap<String, (usize, usize)>,
    m: &rdkafka::message::BorrowedMessage<'_>,
) -> Result<()> {
    let Some(&(task, source)) = routes.get(m.topic()) else {
        return Ok(());
    };
    let mut headers = Headers::new();
    if let Some(h) = m.headers() {
        for header in h.iter() {
            match header.value {
                Some(v) => headers.add(header.key, v),
                None => headers.add_null(header.key),
            };
        }
    }
    let raw = RawRecord {
        key: m.key(),
        value: m.payload(),
        timestamp: m.timestamp().to_millis().unwrap_or_else(now_ms),
        headers,
    };
    tasks[task].process(source, m.offset(), raw)
}
