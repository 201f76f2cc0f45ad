//! A stream thread: one consumer in the application's group, one producer, and the tasks of
//! the partitions the group assigned to it.
//!
//! The loop: poll a batch of records (borrowed from librdkafka, decoded in place), run each
//! through its task, store its offset; between batches serve delivery reports, fire
//! wall-clock punctuators and, every commit interval, flush the producer and then commit the
//! stored offsets. Offsets are only committed after the output they caused is acknowledged,
//! which is the at-least-once guarantee. On a rebalance the same flush + commit happens in
//! the revocation callback, before the partitions move.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Headers as _, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, TopicPartitionList};

use crate::config::StreamsConfig;
use crate::error::{Error, Result};
use crate::metrics::kafka::{DEFAULT_STATISTICS_INTERVAL_MS, KafkaMetrics};
use crate::metrics::{Metrics, RateMeter};
use crate::record::Headers;
use crate::runtime::TaskId;
use crate::runtime::admin::base_client_config;
use crate::runtime::context::{OutRecord, RecordCollector};
use crate::runtime::stores::{Checkpoint, Restorer, TaskStores};
use crate::runtime::task::{Task, TaskSetup};
use crate::topology::Topology;
use crate::topology::node::RawRecord;

const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);

/// What a thread tells the application about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ThreadStatus {
    Rebalancing,
    Running,
    Stopped,
}

/// Callback from a thread to its application on every status change.
pub(crate) type StatusSink = Arc<dyn Fn(usize, ThreadStatus) + Send + Sync>;

/// Records the first failed delivery; the thread turns it into an error.
#[derive(Default)]
pub(crate) struct DeliveryTracker {
    failed: AtomicBool,
    first_error: Mutex<Option<Error>>,
    /// Next offset after the last acknowledged write, per changelog topic and partition.
    changelog_offsets: Mutex<HashMap<String, HashMap<i32, i64>>>,
    /// Where librdkafka statistics go.
    kafka_metrics: Option<KafkaMetrics>,
}

impl ClientContext for DeliveryTracker {
    fn stats(&self, statistics: rdkafka::Statistics) {
        if let Some(m) = &self.kafka_metrics {
            m.report(&statistics);
        }
    }
}

impl ProducerContext for DeliveryTracker {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Ok(msg) = result {
            let topic = msg.topic();
            if topic.ends_with("-changelog") {
                let mut offsets = self.changelog_offsets.lock().expect("offsets lock");
                let by_partition = match offsets.get_mut(topic) {
                    Some(p) => p,
                    None => offsets.entry(topic.to_string()).or_default(),
                };
                let next = by_partition.entry(msg.partition()).or_insert(0);
                *next = (*next).max(msg.offset() + 1);
            }
        }
        if let Err((err, msg)) = result {
            let topic = msg.topic().to_string();
            tracing::error!(%topic, error = %err, "record not delivered");
            if let Ok(mut first) = self.first_error.lock() {
                first.get_or_insert(Error::Produce {
                    topic,
                    reason: err.to_string(),
                });
            }
            self.failed.store(true, Ordering::Release);
        }
    }
}

impl DeliveryTracker {
    fn changelog_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.changelog_offsets
            .lock()
            .ok()?
            .get(topic)?
            .get(&partition)
            .copied()
    }

    pub(crate) fn check(&self) -> Result<()> {
        if !self.failed.load(Ordering::Acquire) {
            return Ok(());
        }
        let err = self.first_error.lock().ok().and_then(|mut e| e.take());
        Err(err.unwrap_or_else(|| Error::Internal("delivery failed".into())))
    }
}

pub(crate) type Producer_ = BaseProducer<DeliveryTracker>;

/// Sends task output through the thread's producer.
pub(crate) struct ProducerCollector(pub Arc<Producer_>);

impl RecordCollector for ProducerCollector {
    fn send(&mut self, out: OutRecord<'_>) -> Result<()> {
        let mut record = BaseRecord::<[u8], [u8]>::to(out.topic).timestamp(out.timestamp);
        if let Some(k) = out.key {
            record = record.key(k);
        }
        if let Some(v) = out.value {
            record = record.payload(v);
        }
        if let Some(p) = out.partition {
            record = record.partition(p);
        }
        if !out.headers.is_empty() {
            let mut h = OwnedHeaders::new_with_capacity(out.headers.len());
            for (key, value) in out.headers.iter() {
                h = h.insert(Header { key, value });
            }
            record = record.headers(h);
        }
        loop {
            match self.0.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    // Back-pressure: serve delivery reports until librdkafka has room.
                    self.0.poll(Duration::from_millis(10));
                    record = r;
                }
                Err((e, _)) => {
                    return Err(Error::Produce {
                        topic: out.topic.to_string(),
                        reason: e.to_string(),
                    });
                }
            }
        }
    }
}

enum RebalanceEvent {
    Assigned(Vec<(String, i32)>),
    Revoked(Vec<(String, i32)>),
}

/// Consumer callbacks: commit before partitions move, queue the change for the thread.
pub(crate) struct StreamConsumerContext {
    index: usize,
    producer: Arc<Producer_>,
    events: Mutex<Vec<RebalanceEvent>>,
    has_events: AtomicBool,
    status: StatusSink,
    kafka_metrics: KafkaMetrics,
}

fn partitions(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

impl ClientContext for StreamConsumerContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        self.kafka_metrics.report(&statistics);
    }
}

impl ConsumerContext for StreamConsumerContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                (self.status)(self.index, ThreadStatus::Rebalancing);
                // Output first, then offsets: whoever gets these partitions next starts after
                // records whose results are already in Kafka.
                if let Err(e) = self.producer.flush(FLUSH_TIMEOUT) {
                    tracing::error!(error = %e, "flush before revocation failed; offsets not committed");
                } else if let Err(e) = commit(consumer) {
                    tracing::warn!(error = %e, "commit before revocation failed");
                }
                self.push(RebalanceEvent::Revoked(partitions(tpl)));
            }
            Rebalance::Assign(_) => (self.status)(self.index, ThreadStatus::Rebalancing),
            Rebalance::Error(e) => tracing::error!(error = %e, "rebalance error"),
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            self.push(RebalanceEvent::Assigned(partitions(tpl)));
        }
    }
}

impl StreamConsumerContext {
    fn push(&self, e: RebalanceEvent) {
        if let Ok(mut events) = self.events.lock() {
            events.push(e);
        }
        self.has_events.store(true, Ordering::Release);
    }
}

/// Commits the stored offsets. A commit refused because the group is moving partitions is not
/// an error: the offsets stay stored, the revocation callback commits them if it still can,
/// and otherwise the records are processed again (at-least-once allows it).
fn commit<C: ConsumerContext>(consumer: &BaseConsumer<C>) -> Result<()> {
    use RDKafkaErrorCode as C;
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) | Err(KafkaError::ConsumerCommit(C::NoOffset)) => Ok(()),
        Err(KafkaError::ConsumerCommit(
            code @ (C::RebalanceInProgress
            | C::IllegalGeneration
            | C::UnknownMemberId
            | C::NotCoordinator
            | C::CoordinatorLoadInProgress
            | C::CoordinatorNotAvailable
            | C::RequestTimedOut
            | C::State),
        )) => {
            tracing::info!(%code, "commit deferred: the group is rebalancing");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) struct ThreadArgs {
    pub index: usize,
    pub name: String,
    pub topology: Arc<Topology>,
    pub config: StreamsConfig,
    pub metrics: Metrics,
    pub shutdown: Arc<AtomicBool>,
    pub status: StatusSink,
    /// Memory shared by the RocksDB stores.
    pub rocksdb: crate::state::rocksdb::RocksDbShared,
    /// Where tasks publish their stores for interactive queries.
    pub registry: crate::runtime::stores::StoreRegistry,
    /// The global tables' stores, kept up to date by the global thread.
    pub global_stores: TaskStores,
}

pub(crate) struct StreamThread {
    consumer: BaseConsumer<StreamConsumerContext>,
    worker: Worker,
}

/// Everything but the consumer, so a borrowed message and the tasks can be used together.
struct Worker {
    restorer: ChangelogRestorer,
    args: ThreadArgs,
    app_id: Arc<str>,
    producer: Arc<Producer_>,
    tasks: BTreeMap<TaskId, Task>,
    /// topic → partition → (task, source index in the task).
    routes: HashMap<String, Vec<Option<(TaskId, usize)>>>,
    last_commit: Instant,
    rate: RateMeter,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl StreamThread {
    pub fn new(args: ThreadArgs) -> Result<Self> {
        let config = &args.config;
        let mut pc = base_client_config(config, "producer")?;
        pc.set("client.id", format!("{}-producer", args.name));
        // Kafka's Java clients partition by murmur2(key); use the same so co-partitioning holds
        // across clients.
        if !config
            .client_settings("producer")
            .contains_key("partitioner")
        {
            pc.set("partitioner", "murmur2_random");
        }
        if !config
            .client_settings("producer")
            .contains_key("enable.idempotence")
        {
            pc.set("enable.idempotence", "true");
        }
        if !config
            .client_settings("producer")
            .contains_key("statistics.interval.ms")
        {
            pc.set("statistics.interval.ms", DEFAULT_STATISTICS_INTERVAL_MS);
        }
        let producer: Arc<Producer_> = Arc::new(pc.create_with_context(DeliveryTracker {
            kafka_metrics: Some(args.metrics.kafka.clone()),
            ..DeliveryTracker::default()
        })?);

        let mut cc = base_client_config(config, "consumer")?;
        cc.set("group.id", config.application_id.as_str())
            .set("client.id", format!("{}-consumer", args.name))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("partition.assignment.strategy", "range");
        let mut defaults = vec![
            ("auto.offset.reset", "earliest"),
            ("allow.auto.create.topics", "false"),
            ("statistics.interval.ms", DEFAULT_STATISTICS_INTERVAL_MS),
        ];
        if config.embedded.is_some() {
            // The mock cluster waits a member's session timeout before finishing a rebalance
            // after someone leaves: keep it short so partitions move in seconds.
            defaults.extend([
                ("session.timeout.ms", "6000"),
                ("heartbeat.interval.ms", "1000"),
            ]);
        }
        for (k, v) in defaults {
            if !config.client_settings("consumer").contains_key(k) {
                cc.set(k, v);
            }
        }
        let context = StreamConsumerContext {
            index: args.index,
            producer: producer.clone(),
            events: Mutex::new(Vec::new()),
            has_events: AtomicBool::new(false),
            status: args.status.clone(),
            kafka_metrics: args.metrics.kafka.clone(),
        };
        let consumer: BaseConsumer<StreamConsumerContext> = cc.create_with_context(context)?;
        // Only the topics the topology reads: changelogs are internal topics too, but they are
        // read by the restore consumer, never by the group.
        let app = config.application_id.as_str();
        let names: Vec<String> = args
            .topology
            .source_topics()
            .iter()
            .map(|t| t.resolve(app))
            .collect();
        let topics: Vec<&str> = names.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        Ok(StreamThread {
            consumer,
            worker: Worker {
                restorer: ChangelogRestorer::new(&args.config, &args.name, args.metrics.clone())?,
                rate: args.metrics.rate_meter(&args.name),
                app_id: Arc::from(config.application_id.as_str()),
                args,
                producer,
                tasks: BTreeMap::new(),
                routes: HashMap::new(),
                last_commit: Instant::now(),
            },
        })
    }

    /// Runs until shutdown is requested or an error occurs; always closes its tasks and
    /// commits what it processed.
    pub fn run(mut self) -> Result<()> {
        let w = &mut self.worker;
        (w.args.status)(w.args.index, ThreadStatus::Rebalancing);
        let result = w.run_loop(&self.consumer);
        let closed = w.shutdown(&self.consumer, result.is_ok());
        (w.args.status)(w.args.index, ThreadStatus::Stopped);
        result.and(closed)
    }
}

impl Worker {
    fn run_loop(&mut self, consumer: &BaseConsumer<StreamConsumerContext>) -> Result<()> {
        let poll_timeout = self.args.config.poll_timeout;
        let max_batch = self.args.config.max_poll_records;
        while !self.args.shutdown.load(Ordering::Acquire) {
            let mut timeout = poll_timeout;
            for _ in 0..max_batch {
                let polled = consumer.poll(timeout);
                timeout = Duration::ZERO;
                if consumer.context().has_events.load(Ordering::Acquire) {
                    self.handle_rebalance(consumer.context())?;
                }
                match polled {
                    None => break,
                    Some(Ok(msg)) => self.process(consumer, &msg)?,
                    Some(Err(e)) => {
                        if is_fatal(&e) {
                            return Err(e.into());
                        }
                        tracing::warn!(error = %e, "consumer error");
                        break;
                    }
                }
            }
            self.producer.poll(Duration::ZERO);
            self.producer.context().check()?;
            let now = now_ms();
            for task in self.tasks.values_mut() {
                task.advance_wall_clock(now)?;
            }
            if self.last_commit.elapsed() >= self.args.config.commit_interval {
                self.commit(consumer)?;
            }
        }
        Ok(())
    }

    fn process(
        &mut self,
        consumer: &BaseConsumer<StreamConsumerContext>,
        msg: &BorrowedMessage<'_>,
    ) -> Result<()> {
        let route = self
            .routes
            .get(msg.topic())
            .and_then(|p| p.get(msg.partition() as usize).copied().flatten());
        let Some((task_id, source)) = route else {
            // Cannot happen with eager rebalancing; never store the offset of a record we
            // did not process.
            tracing::warn!(
                topic = msg.topic(),
                partition = msg.partition(),
                "record for a partition without a task"
            );
            return Ok(());
        };
        let mut headers = Headers::new();
        if let Some(h) = msg.headers() {
            for header in h.iter() {
                match header.value {
                    Some(v) => headers.add(header.key, v),
                    None => headers.add_null(header.key),
                };
            }
        }
        let raw = RawRecord {
            key: msg.key(),
            value: msg.payload(),
            timestamp: msg.timestamp().to_millis().unwrap_or_else(now_ms),
            headers,
        };
        let task = self
            .tasks
            .get_mut(&task_id)
            .ok_or_else(|| Error::Internal(format!("no task {task_id}")))?;
        task.process(source, msg.offset(), raw)?;
        consumer.store_offset_from_message(msg)?;
        Ok(())
    }

    fn handle_rebalance(&mut self, context: &StreamConsumerContext) -> Result<()> {
        context.has_events.store(false, Ordering::Release);
        let events = std::mem::take(
            &mut *context
                .events
                .lock()
                .map_err(|_| Error::Internal("poisoned".into()))?,
        );
        for event in events {
            match event {
                RebalanceEvent::Revoked(parts) => {
                    let ids: Vec<TaskId> = parts
                        .iter()
                        .filter_map(|(t, p)| self.task_id(t, *p))
                        .collect();
                    for id in ids {
                        if let Some(mut task) = self.tasks.remove(&id) {
                            task.close()?;
                            tracing::info!(thread = %self.args.name, task = %id, "task closed (partitions revoked)");
                        }
                    }
                    self.rebuild_routes();
                }
                RebalanceEvent::Assigned(parts) => {
                    for (topic, partition) in &parts {
                        let Some(id) = self.task_id(topic, *partition) else {
                            continue;
                        };
                        if self.tasks.contains_key(&id) {
                            continue;
                        }
                        let setup = TaskSetup {
                            app_id: self.app_id.clone(),
                            collector: Box::new(ProducerCollector(self.producer.clone())),
                            default_handler: self
                                .args
                                .config
                                .default_deserialization_handler
                                .clone(),
                            processing_handler: self.args.config.processing_error_handler,
                            metrics: self.args.metrics.task(&self.args.name, id),
                            wall_clock_ms: now_ms(),
                            registry: self.args.registry.clone(),
                            restorer: &self.restorer,
                            rocksdb: self.args.rocksdb.clone(),
                            cache_max_bytes: self.args.config.cache_max_bytes,
                            global_stores: self.args.global_stores.clone(),
                            state_dir: self
                                .args
                                .config
                                .state_dir
                                .join(&*self.app_id)
                                .join(id.to_string()),
                        };
                        self.tasks
                            .insert(id, Task::new(&self.args.topology, id, setup)?);
                        tracing::info!(thread = %self.args.name, task = %id, "task created");
                    }
                    self.rebuild_routes();
                    self.args
                        .metrics
                        .active_tasks
                        .with_label_values(&[&self.args.name])
                        .set(self.tasks.len() as i64);
                    (self.args.status)(self.args.index, ThreadStatus::Running);
                }
            }
        }
        Ok(())
    }

    fn task_id(&self, topic: &str, partition: i32) -> Option<TaskId> {
        self.args
            .topology
            .subtopology_of_topic(&self.app_id, topic)
            .map(|subtopology| TaskId {
                subtopology,
                partition,
            })
    }

    fn rebuild_routes(&mut self) {
        self.routes.clear();
        for (id, task) in &self.tasks {
            for (source, topic) in task.source_topics().enumerate() {
                let by_partition = self.routes.entry(topic.to_string()).or_default();
                let p = id.partition as usize;
                if by_partition.len() <= p {
                    by_partition.resize(p + 1, None);
                }
                by_partition[p] = Some((*id, source));
            }
        }
    }

    /// Output first, then offsets.
    fn commit(&mut self, consumer: &BaseConsumer<StreamConsumerContext>) -> Result<()> {
        let started = Instant::now();
        for task in self.tasks.values_mut() {
            task.flush()?;
        }
        self.producer.flush(FLUSH_TIMEOUT)?;
        self.producer.context().check()?;
        let tracker = self.producer.context();
        for task in self.tasks.values_mut() {
            task.changelog_written(|t, p| tracker.changelog_offset(t, p));
            task.write_checkpoint()?;
        }
        commit(consumer)?;
        self.last_commit = Instant::now();
        self.args
            .metrics
            .commit_latency
            .with_label_values(&[&self.args.name])
            .observe(started.elapsed().as_secs_f64());
        self.rate.tick();
        Ok(())
    }

    fn shutdown(
        &mut self,
        consumer: &BaseConsumer<StreamConsumerContext>,
        clean: bool,
    ) -> Result<()> {
        let mut first_err = None;
        for (id, task) in &mut self.tasks {
            if let Err(e) = task.close() {
                tracing::error!(task = %id, error = %e, "closing task failed");
                first_err.get_or_insert(e);
            }
        }
        // After a processing error, the offsets stored so far are still safe to commit: they
        // only cover records processed completely, and the flush makes their output durable.
        if let Err(e) = self.commit(consumer) {
            tracing::error!(thread = %self.args.name, error = %e, "final commit failed");
            if clean {
                first_err.get_or_insert(e);
            }
        }
        self.tasks.clear();
        self.routes.clear();
        // Dropping the consumer closes it: it leaves the group, so the partitions move now
        // rather than after the session timeout.
        first_err.map_or(Ok(()), Err)
    }
}

pub(crate) fn is_fatal(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(RDKafkaErrorCode::Fatal | RDKafkaErrorCode::Fenced)
    )
}

/// Reads changelog partitions (by assignment, outside the group) into a task's stores.
struct ChangelogRestorer {
    consumer: BaseConsumer,
    thread: String,
    metrics: Metrics,
}

const RESTORE_BATCH: usize = 10_000;
const RESTORE_POLL: Duration = Duration::from_millis(500);

impl ChangelogRestorer {
    fn new(config: &StreamsConfig, thread: &str, metrics: Metrics) -> Result<Self> {
        let mut c = base_client_config(config, "restore.consumer")?;
        c.set("group.id", format!("{}-restore", config.application_id))
            .set("client.id", format!("{thread}-restore-consumer"))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .set("auto.offset.reset", "earliest");
        Ok(ChangelogRestorer {
            consumer: c.create()?,
            thread: thread.to_string(),
            metrics,
        })
    }
}

impl Restorer for ChangelogRestorer {
    fn restore(
        &self,
        task: TaskId,
        stores: &TaskStores,
        checkpoint: &Checkpoint,
    ) -> Result<HashMap<String, i64>> {
        let mut reached = HashMap::new();
        for (name, store) in stores {
            let (changelog, persistent) = {
                let s = store.lock().expect("store lock");
                (s.changelog.clone(), s.is_persistent())
            };
            let Some((topic, partition)) = changelog else {
                continue;
            };
            let (low, high) =
                self.consumer
                    .fetch_watermarks(&topic, partition, Duration::from_secs(30))?;
            // A persistent store resumes from its checkpoint; anything else starts over, from
            // empty: local writes that never reached the changelog must not survive.
            let start = match checkpoint.0.get(name) {
                Some(&o) if persistent && o >= low && o <= high => o,
                _ => {
                    if persistent {
                        store.lock().expect("store lock").wipe()?;
                    }
                    low
                }
            };
            reached.insert(name.clone(), high);
            if start >= high {
                continue;
            }
            let started = Instant::now();
            let task_label = task.to_string();
            let remaining = self
                .metrics
                .restore_remaining
                .with_label_values(&[task_label.as_str(), name.as_str()]);
            let restored_total = self.metrics.restored.with_label_values(&[name.as_str()]);
            remaining.set(high - start);
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&topic, partition, rdkafka::Offset::Offset(start))?;
            self.consumer.assign(&tpl)?;
            let mut position = start;
            let mut batch = Vec::with_capacity(RESTORE_BATCH);
            let mut restored = 0u64;
            while position < high {
                match self.consumer.poll(RESTORE_POLL) {
                    Some(Ok(m)) => {
                        position = m.offset() + 1;
                        if let Some(k) = m.key() {
                            batch.push((k.to_vec(), m.payload().map(<[u8]>::to_vec)));
                        }
                        if batch.len() >= RESTORE_BATCH {
                            store.lock().expect("store lock").restore(&batch)?;
                            restored += batch.len() as u64;
                            restored_total.inc_by(batch.len() as u64);
                            remaining.set(high - position);
                            batch.clear();
                            tracing::info!(thread = %self.thread, %task, store = %name, position, end = high, "restoring");
                        }
                    }
                    Some(Err(e)) => return Err(e.into()),
                    None => {
                        // Offsets up to the end may hold no record (transaction markers).
                        let pos = self.consumer.position()?;
                        if let Some(rdkafka::Offset::Offset(p)) =
                            pos.find_partition(&topic, partition).map(|e| e.offset())
                            && p >= high
                        {
                            break;
                        }
                    }
                }
            }
            store.lock().expect("store lock").restore(&batch)?;
            restored += batch.len() as u64;
            restored_total.inc_by(batch.len() as u64);
            remaining.set(0);
            self.consumer.unassign()?;
            tracing::info!(thread = %self.thread, %task, store = %name, restored, from = start, to = high,
                millis = started.elapsed().as_millis() as u64, "store restored");
        }
        Ok(reached)
    }
}
