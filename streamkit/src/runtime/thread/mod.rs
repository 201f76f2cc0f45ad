//! A stream thread: one consumer in the application's group, one producer, and the tasks of
//! the partitions the group assigned to it.
//!
//! The loop: poll a batch of records (borrowed from librdkafka, decoded in place), run each
//! through its task, store its offset — or, for a task with several input partitions, queue
//! it in the task and, after the batch, process the task's queued records lowest timestamp
//! first while the task may (see `partition_group`); between batches serve delivery reports, fire
//! wall-clock punctuators and, every commit interval, flush the producer and then commit the
//! stored offsets. Offsets are only committed after the output they caused is acknowledged,
//! which is the at-least-once guarantee. On a rebalance the same flush + commit happens in
//! the revocation callback, before the partitions move.
//!
//! Under exactly-once the producer is transactional: a transaction is open at all times, and
//! a commit sends the consumed positions into it (`send_offsets_to_transaction`) and commits
//! it, then begins the next. A transaction that must be aborted resets every task of the
//! thread (stores wiped and restored from their changelogs, consumer rewound to the committed
//! offsets); a fenced producer fails the thread.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Headers as _, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::{ClientContext, TopicPartitionList};

use crate::config::{ProcessingGuarantee, StreamsConfig};
use crate::error::{Error, Result};
use crate::error_policy::ProductionErrorHandler;
use crate::metrics::kafka::{DEFAULT_STATISTICS_INTERVAL_MS, KafkaMetrics};
use crate::metrics::names::{
    OPERATION_COMMIT, OPERATION_CONSUME, OPERATION_PRODUCE, OPERATION_TRANSACTION,
};
use crate::metrics::{Metrics, RateMeter};
use crate::processor::task_state::{OutRecord, RecordCollector};
use crate::record::Headers;
use crate::record::TaskId;
use crate::runtime::admin::base_client_config;
use crate::runtime::partition_group::Lag;
use crate::runtime::partition_map::PartitionMap;
use crate::runtime::restore::ChangelogRestorer;
use crate::runtime::task::{OpenedTask, Task, TaskSetup};
use crate::state::cache::CacheBudget;
use crate::state::checkpoint::Checkpoint;
use crate::state::store::TaskStores;
use crate::topology::Topology;
use crate::topology::node::RawRecord;

mod commit;
mod lag;
mod producer;
mod purge;
mod rebalance;

use commit::{TXN_TIMEOUT, TxnFailure, classify_txn_error, commit, transaction_timeout};
use lag::LagProbe;
use producer::FLUSH_TIMEOUT;
pub(crate) use producer::{DeliveryTracker, ProducerCollector, ThreadProducer};
use rebalance::{Position, StreamConsumerContext, positions_of};

/// What a thread tells the application about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ThreadStatus {
    Rebalancing,
    Running,
    Stopped,
}

/// Callback from a thread to its application on every status change.
pub(crate) type StatusSink = Arc<dyn Fn(usize, ThreadStatus) + Send + Sync>;

/// Where each input partition's records go: topic → partition → (task, source index in the
/// task).
type Routes = PartitionMap<(TaskId, usize)>;

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
    pub registry: crate::state::store::StoreRegistry,
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
    /// The record-cache budget of this thread's stores: the instance's
    /// `cache_max_bytes` split evenly between its threads.
    cache_budget: Arc<CacheBudget>,
    args: ThreadArgs,
    app_id: Arc<str>,
    producer: Arc<ThreadProducer>,
    tasks: BTreeMap<TaskId, Task>,
    /// topic → partition → (task, source index in the task).
    routes: Routes,
    last_commit: Instant,
    /// At-least-once: since when a commit has found output the broker did not acknowledge.
    unacknowledged_since: Option<Instant>,
    rate: RateMeter,
    /// `transactional.id` of the producer under exactly-once.
    transactional_id: Option<String>,
    /// Partitions just moved to the offsets an external committer keeps: a record polled
    /// together with their assignment came from the old position and is dropped.
    seeked: HashSet<(String, i32)>,
    /// Exactly-once: the positions last committed, so that a commit sends only those that
    /// moved (an idle commit interval sends no offsets).
    committed_positions: HashMap<(String, i32), i64>,
    /// Partitions paused on the consumer because their task's buffer is full.
    paused: HashSet<(String, i32)>,
    /// Where empty input partitions end, to tell whether a task must wait for them.
    lag: LagProbe,
    /// Exactly-once: transactions aborted since the last one that committed.
    aborts_in_a_row: u32,
    /// Deletes committed records from the repartition topics (none on the embedded broker).
    purger: Option<purge::Purger>,
}

/// A random number (std's per-process hash keys, mixed with the clock and process id).
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// Whether `msg` may carry headers: `false` only when the record's header count is known to be
/// zero without asking librdkafka, whose `headers()` allocates (and frees) a parse buffer
/// for every record with a header block — and a v2 record always has one, if only its
/// count. That was ≈15 % of the stream thread's time in a passthrough.
///
/// In a v2 record (`Records` format, Kafka ≥ 0.11) the header count, a zig-zag varint that is
/// the single byte 0 for none, directly follows the value's bytes; librdkafka hands the
/// value as a pointer into the fetched batch. Only v2 batches carry a partition leader
/// epoch (librdkafka gives -1 for the older formats, where the byte after the value belongs
/// to the next record), and an empty value may point at a static empty string, so the byte
/// is read only for a non-empty value of a record with a leader epoch; otherwise librdkafka
/// parses as before.
#[allow(unsafe_code)]
fn may_have_headers(msg: &BorrowedMessage<'_>) -> bool {
    if msg.payload().is_none_or(<[u8]>::is_empty) {
        return true;
    }
    // SAFETY: `msg.ptr()` is the live message `msg` borrows; the call only reads it.
    let epoch = unsafe { rdkafka::bindings::rd_kafka_message_leader_epoch(msg.ptr()) };
    if epoch < 0 {
        return true;
    }
    // SAFETY: a consumed record of a v2 batch (leader epoch ≥ 0) with a non-empty value:
    // librdkafka's v2 reader (`rd_kafka_msgset_reader_msg_v2`) reads the value and then the
    // header block from one contiguous buffer that the message keeps alive, so the byte
    // after the value is the first byte of the header block, inside the record.
    // The byte is read through librdkafka's own payload pointer (not the borrowed slice,
    // whose bounds end at the value).
    let header_count = unsafe {
        let m = &*msg.ptr();
        *m.payload.cast::<u8>().cast_const().add(m.len)
    };
    header_count != 0
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
        let producer_client = format!("{}-producer", args.name);
        pc.set("client.id", &producer_client);
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
        let exactly_once = config.processing_guarantee == ProcessingGuarantee::ExactlyOnce;
        // EOS v2: one transactional producer per thread. The id only has to be unique among
        // live producers (zombies are fenced through the consumer group generation that
        // send_offsets_to_transaction carries), so it includes a per-start random part, as
        // Kafka Streams' process id.
        let transactional_id = exactly_once.then(|| {
            format!(
                "{}-{:016x}-{}",
                config.application_id,
                random_u64(),
                args.index + 1
            )
        });
        if let Some(id) = &transactional_id {
            pc.set("transactional.id", id);
            if !config
                .client_settings("producer")
                .contains_key("transaction.timeout.ms")
            {
                pc.set(
                    "transaction.timeout.ms",
                    transaction_timeout(config.commit_interval)
                        .as_millis()
                        .to_string(),
                );
            }
        }
        if !config
            .client_settings("producer")
            .contains_key("statistics.interval.ms")
        {
            pc.set("statistics.interval.ms", DEFAULT_STATISTICS_INTERVAL_MS);
        }
        let producer: Arc<ThreadProducer> = Arc::new(pc.create_with_context(DeliveryTracker {
            kafka_metrics: Some(args.metrics.kafka.clone()),
            // Under exactly-once a refused delivery makes the transaction abortable.
            handles_refusals: !exactly_once
                && config.production_error_handler != ProductionErrorHandler::Fail,
            client: producer_client,
            ..DeliveryTracker::default()
        })?);
        if let Some(id) = &transactional_id {
            producer.init_transactions(TXN_TIMEOUT).map_err(|e| {
                match classify_txn_error(e, id) {
                    TxnFailure::Fatal(e) => e,
                    TxnFailure::Retry(e) => e.into(),
                    TxnFailure::Abort(reason) => Error::Transaction {
                        transactional_id: id.clone(),
                        reason,
                    },
                }
            })?;
            producer.begin_transaction()?;
            tracing::info!(thread = %args.name, transactional_id = %id, "transactional producer ready");
        }

        let mut cc = base_client_config(config, "consumer")?;
        let consumer_client = format!("{}-consumer", args.name);
        cc.set("group.id", config.application_id.as_str())
            .set("client.id", &consumer_client)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("partition.assignment.strategy", "range");
        let mut defaults = vec![
            ("auto.offset.reset", "earliest"),
            ("allow.auto.create.topics", "false"),
            ("statistics.interval.ms", DEFAULT_STATISTICS_INTERVAL_MS),
        ];
        if exactly_once {
            defaults.push(("isolation.level", "read_committed"));
        }
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
            events: Mutex::new(Vec::new()),
            has_events: AtomicBool::new(false),
            unassign_pending: AtomicBool::new(false),
            in_poll: AtomicBool::new(false),
            status: args.status.clone(),
            exactly_once,
            kafka_metrics: args.metrics.kafka.clone(),
            client: consumer_client,
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
        let lag = LagProbe {
            refresh: args.config.poll_timeout,
            reset_latest: matches!(
                args.config
                    .client_settings("consumer")
                    .get("auto.offset.reset")
                    .map(String::as_str),
                Some("latest" | "largest" | "end")
            ),
            ends: HashMap::new(),
            starts: HashMap::new(),
        };
        let purger = purge::Purger::new(config, &args.topology)?;
        Ok(StreamThread {
            consumer,
            worker: Worker {
                restorer: ChangelogRestorer::new(&args.config, &args.name, args.metrics.clone())?,
                cache_budget: CacheBudget::new(
                    config.cache_max_bytes / config.num_stream_threads.max(1),
                ),
                rate: args.metrics.rate_meter(&args.name),
                app_id: Arc::from(config.application_id.as_str()),
                args,
                producer,
                tasks: BTreeMap::new(),
                routes: Routes::default(),
                last_commit: Instant::now(),
                unacknowledged_since: None,
                transactional_id,
                seeked: HashSet::new(),
                committed_positions: HashMap::new(),
                aborts_in_a_row: 0,
                paused: HashSet::new(),
                lag,
                purger,
            },
        })
    }

    /// Runs until shutdown is requested or an error occurs; always closes its tasks and
    /// commits what it processed.
    pub fn run(mut self) -> Result<()> {
        let w = &mut self.worker;
        (w.args.status)(w.args.index, ThreadStatus::Rebalancing);
        let result = w.run_loop(&self.consumer).map_err(|e| match e {
            // A commit or fetch failing on an unknown topic may be a deleted source: name it.
            Error::Kafka(k) => w
                .unavailable_source(&self.consumer, &k)
                .unwrap_or(Error::Kafka(k)),
            e => e,
        });
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
                consumer.context().in_poll.store(true, Ordering::Release);
                let polled = consumer.poll(timeout);
                consumer.context().in_poll.store(false, Ordering::Release);
                timeout = Duration::ZERO;
                let mut just_seeked = HashSet::new();
                if consumer.context().has_events.load(Ordering::Acquire) {
                    self.handle_rebalance(consumer)?;
                    just_seeked = std::mem::take(&mut self.seeked);
                }
                match polled {
                    None => break,
                    Some(Ok(msg))
                        if !just_seeked.is_empty()
                            && just_seeked
                                .contains(&(msg.topic().to_string(), msg.partition())) =>
                    {
                        continue;
                    }
                    Some(Ok(msg)) => self.process(consumer, &msg)?,
                    Some(Err(e)) => {
                        consumer.context().count_error(OPERATION_CONSUME, &e);
                        if is_fatal(&e) {
                            return Err(e.into());
                        }
                        if let Some(err) = self.unavailable_source(consumer, &e) {
                            return Err(err);
                        }
                        tracing::warn!(error = %e, "consumer error");
                        break;
                    }
                }
            }
            self.process_buffered(consumer)?;
            self.producer.poll(Duration::ZERO);
            self.handle_refused_deliveries()?;
            if let Err(e) = self.producer.context().check() {
                let Some(id) = self.transactional_id.clone() else {
                    return Err(e);
                };
                // A failed delivery makes the transaction abortable: start over from the
                // last commit rather than fail.
                tracing::warn!(thread = %self.args.name, error = %e, "delivery failed inside a transaction; aborting it");
                self.abort_and_reset(consumer, &id, &e.to_string())?;
                continue;
            }
            let now = now_ms();
            for task in self.tasks.values_mut() {
                task.advance_wall_clock(now)?;
            }
            // A processor's `ProcessorContext::commit` asks for a commit now, as in Kafka
            // Streams (which commits the requesting tasks; every task is committed here).
            let requested = self
                .tasks
                .values_mut()
                .fold(false, |any, t| t.take_commit_request() | any);
            if requested || self.last_commit.elapsed() >= self.args.config.commit_interval {
                self.commit(consumer, true)?;
            }
        }
        Ok(())
    }

    /// A source topic deleted or denied to the application stops the thread with an error
    /// naming it, as Kafka Streams fails with `MissingSourceTopicException` or
    /// `TopicAuthorizationException`: otherwise the consumer reports the error and polls on,
    /// and the application sits in `Running` with nothing to do. The consumer's error names
    /// no topic, so the cluster is asked for each source by name: only a topic it reports
    /// missing or denied stops the thread (the start checked that every source existed).
    fn unavailable_source(
        &self,
        consumer: &BaseConsumer<StreamConsumerContext>,
        e: &KafkaError,
    ) -> Option<Error> {
        use RDKafkaErrorCode as C;
        if !matches!(
            e.rdkafka_error_code(),
            Some(
                C::UnknownTopicOrPartition
                    | C::UnknownTopic
                    | C::UnknownTopicId
                    | C::TopicAuthorizationFailed
            )
        ) {
            return None;
        }
        let sources: Vec<String> = self
            .args
            .topology
            .source_topics()
            .into_iter()
            .map(|t| t.resolve(&self.app_id))
            .collect();
        // A cluster that cannot answer (a broker restarting) proves nothing: poll on.
        crate::runtime::admin::unavailable_topics(consumer, &sources).unwrap_or_else(|err| {
            tracing::debug!(error = %err, "cannot check the source topics");
            None
        })
    }

    fn process(
        &mut self,
        consumer: &BaseConsumer<StreamConsumerContext>,
        msg: &BorrowedMessage<'_>,
    ) -> Result<()> {
        let route = self.routes.get(msg.topic(), msg.partition());
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
        if may_have_headers(msg)
            && let Some(h) = msg.headers()
        {
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
        if task.unbuffered() {
            // One input partition: nothing to order, process it as it comes.
            task.process(source, msg.offset(), raw)?;
            consumer.store_offset_from_message(msg)?;
            return Ok(());
        }
        let buffered = task.buffer(source, msg.offset(), raw);
        if buffered > self.args.config.buffered_records_per_partition {
            let key = (msg.topic().to_string(), msg.partition());
            if !self.paused.contains(&key) {
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition(&key.0, key.1);
                consumer.pause(&tpl)?;
                self.paused.insert(key);
            }
        }
        Ok(())
    }

    /// Processes the tasks' buffered records, each task taking the head with the lowest
    /// timestamp across its partitions while it may (see `PartitionGroup::next`), storing
    /// each processed record's offset; resumes partitions whose buffer drained.
    fn process_buffered(&mut self, consumer: &BaseConsumer<StreamConsumerContext>) -> Result<()> {
        let idle = self.args.config.max_task_idle;
        let limit = self.args.config.buffered_records_per_partition;
        let now = Instant::now();
        let Worker {
            tasks,
            paused,
            lag: probe,
            ..
        } = self;
        // The consumer's positions, asked for once and only if some task has an empty input.
        let mut positions: Option<HashMap<(String, i32), i64>> = None;
        for (id, task) in tasks.iter_mut() {
            if task.unbuffered() {
                continue;
            }
            let topics: Vec<Arc<str>> = task.source_topics().cloned().collect();
            let partition = id.partition;
            let mut lag = |source: usize| {
                let topic: &str = &topics[source];
                let known = positions.get_or_insert_with(|| {
                    consumer
                        .position()
                        .map(|p| {
                            positions_of(&p)
                                .into_iter()
                                .map(|(t, p, o)| ((t, p), o))
                                .collect()
                        })
                        .unwrap_or_default()
                });
                let position = known.get(&(topic.to_string(), partition)).copied();
                probe.lag(consumer, topic, partition, position)
            };
            while let Some((source, offset)) = task.process_next(idle, now, &mut lag)? {
                consumer.store_offset(&topics[source], partition, offset)?;
            }
            if paused.is_empty() {
                continue;
            }
            let mut resume = TopicPartitionList::new();
            for (source, topic) in topics.iter().enumerate() {
                let key = (topic.to_string(), partition);
                if task.buffered(source) <= limit && paused.remove(&key) {
                    resume.add_partition(topic, partition);
                }
            }
            if resume.count() > 0 {
                consumer.resume(&resume)?;
            }
        }
        Ok(())
    }

    /// Resumes every partition this thread paused (errors ignored: a partition that is no
    /// longer assigned needs nothing).
    fn resume_all(&mut self, consumer: &BaseConsumer<StreamConsumerContext>) {
        if self.paused.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for (topic, partition) in self.paused.drain() {
            tpl.add_partition(&topic, partition);
        }
        if let Err(e) = consumer.resume(&tpl) {
            tracing::debug!(error = %e, "resuming paused partitions");
        }
    }

    /// The next offset to commit for `topic`/`partition` given the consumer's `position`: the
    /// first buffered record when its task holds unprocessed ones (everything before it was
    /// processed), the position otherwise.
    fn processed_position(&self, topic: &str, partition: i32, position: i64) -> i64 {
        self.routes
            .get(topic, partition)
            .and_then(|(id, source)| self.tasks.get(&id)?.buffered_head(source))
            .unwrap_or(position)
    }

    fn task_dir(&self, id: TaskId) -> std::path::PathBuf {
        self.args
            .config
            .state_dir
            .join(&*self.app_id)
            .join(id.to_string())
    }

    /// Creates tasks: opens each, restores all their logged stores together (one changelog
    /// assignment), then initializes each; a task starts processing only once restored.
    fn create_tasks(
        &mut self,
        consumer: &BaseConsumer<StreamConsumerContext>,
        ids: &[TaskId],
    ) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut opened: Vec<OpenedTask> = Vec::with_capacity(ids.len());
        for &id in ids {
            opened.push(self.open_task(id)?);
        }
        let requests: Vec<_> = opened
            .iter()
            .filter_map(OpenedTask::restore_request)
            .collect();
        let mut restored = self
            .restorer
            .restore(&requests, &mut || keep_group_alive(consumer))?;
        drop(requests);
        for task in opened {
            let id = task.id();
            let task = task.start(restored.remove(&id).unwrap_or_default())?;
            if self.transactional_id.is_some() {
                // From here on the local stores run ahead of what is committed: a crash must
                // not find a checkpoint, so that the stores are wiped and restored from the
                // committed changelog. The checkpoint comes back when the task closes after
                // a commit.
                Checkpoint::remove(&self.task_dir(id))?;
            }
            self.tasks.insert(id, task);
            tracing::info!(thread = %self.args.name, task = %id, "task created");
        }
        Ok(())
    }

    /// Opens task `id`, waiting while another stream thread of this process still holds its
    /// stores: with eager rebalancing the group can hand a task to a second thread before the
    /// thread that had it has handled its revocation and closed it. Kafka Streams likewise
    /// retries a task whose state directory another thread still locks.
    fn open_task(&self, id: TaskId) -> Result<OpenedTask> {
        let deadline = Instant::now() + TASK_LOCK_TIMEOUT;
        loop {
            match Task::open(&self.args.topology, id, self.task_setup(id)) {
                Err(e) if Instant::now() < deadline && is_held_by_this_process(&e) => {
                    tracing::debug!(thread = %self.args.name, task = %id, "task stores still open in another thread; waiting");
                    std::thread::sleep(Duration::from_millis(20));
                }
                r => return r,
            }
        }
    }

    fn task_setup(&self, id: TaskId) -> TaskSetup {
        TaskSetup {
            app_id: self.app_id.clone(),
            thread: Arc::from(self.args.name.as_str()),
            collector: Box::new(
                ProducerCollector::new(
                    self.producer.clone(),
                    self.args.config.production_error_handler.clone(),
                    id,
                    self.args.metrics.task(&self.args.name, id),
                    self.args.shutdown.clone(),
                )
                .queue_full_timeout(self.args.config.task_timeout),
            ),
            default_handler: self.args.config.default_deserialization_handler.clone(),
            processing_handler: self.args.config.processing_error_handler.clone(),
            metrics: self.args.metrics.task(&self.args.name, id),
            wall_clock_ms: now_ms(),
            registry: self.args.registry.clone(),
            rocksdb: self.args.rocksdb.clone(),
            cache: self.cache_budget.clone(),
            global_stores: self.args.global_stores.clone(),
            state_dir: self.task_dir(id),
        }
    }

    /// Moves the source partitions of a task with an external committer to the offsets it
    /// keeps (the beginning when it has none).
    fn seek_external(
        &mut self,
        consumer: &BaseConsumer<StreamConsumerContext>,
        id: TaskId,
    ) -> Result<()> {
        let Some(starts) = self.tasks.get(&id).and_then(Task::external_start) else {
            return Ok(());
        };
        let mut tpl = TopicPartitionList::new();
        for (topic, next) in &starts {
            let offset = next.map_or(rdkafka::Offset::Beginning, rdkafka::Offset::Offset);
            tpl.add_partition_offset(topic, id.partition, offset)?;
            self.seeked.insert((topic.to_string(), id.partition));
        }
        for e in consumer.seek_partitions(tpl, TXN_TIMEOUT)?.elements() {
            if let Err(err) = e.error() {
                return Err(Error::Internal(format!(
                    "cannot seek {}[{}] to the offset its sink committed: {err}",
                    e.topic(),
                    e.partition()
                )));
            }
        }
        tracing::info!(thread = %self.args.name, task = %id, ?starts, "sources moved to the offsets committed with the sink");
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
                self.routes
                    .insert(topic, id.partition as usize, (*id, source));
            }
        }
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
        if let Some(id) = self.transactional_id.clone() {
            // Exactly-once: after an error the open transaction may hold part of a record's
            // effects, so it is aborted; otherwise it commits and the checkpoints are written.
            let committed = if clean && first_err.is_none() {
                match self.commit_transaction(consumer, &[], &mut Vec::new()) {
                    Ok(committed) => committed,
                    Err(e) => {
                        tracing::error!(thread = %self.args.name, error = %e, "final commit failed");
                        first_err.get_or_insert(e);
                        false
                    }
                }
            } else {
                if let Err(e) = self.producer.abort_transaction(TXN_TIMEOUT) {
                    tracing::warn!(thread = %self.args.name, transactional_id = %id, error = %e, "abort at shutdown failed");
                }
                false
            };
            if committed {
                for task in self.tasks.values() {
                    if let Err(e) = task.write_checkpoint() {
                        first_err.get_or_insert(e);
                    }
                }
            }
        } else if let Err(e) = self.commit(consumer, clean && first_err.is_none()) {
            // After a processing error, the offsets stored so far are still safe to commit:
            // they only cover records processed completely, and the flush makes their output
            // durable.
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

/// How long a task waits for another thread of this process to close its stores.
const TASK_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether opening a store failed because this process still has it open (RocksDB's lock).
/// Serves the group consumer while a restore keeps the thread out of its run loop: librdkafka
/// counts the time between two polls against `max.poll.interval.ms` and leaves the group when
/// it runs out, so a restore longer than that would get the member evicted and start a
/// rebalance (and, on a store too large to restore in time, again and again). A record the
/// poll returns is handed back by seeking its partition to it; rebalance events are queued
/// and handled once the restore is over.
fn keep_group_alive(consumer: &BaseConsumer<StreamConsumerContext>) {
    match consumer.poll(Duration::ZERO) {
        Some(Ok(msg)) => {
            let (topic, partition, offset) =
                (msg.topic().to_string(), msg.partition(), msg.offset());
            drop(msg);
            if let Err(e) = consumer.seek(
                &topic,
                partition,
                rdkafka::Offset::Offset(offset),
                Duration::ZERO,
            ) {
                tracing::debug!(%topic, partition, error = %e, "seeking back after a keep-alive poll");
            }
        }
        Some(Err(e)) => tracing::debug!(error = %e, "consumer error during a restore"),
        None => {}
    }
}

fn is_held_by_this_process(e: &Error) -> bool {
    e.to_string().contains("lock hold by current process")
}

pub(crate) fn is_fatal(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(RDKafkaErrorCode::Fatal | RDKafkaErrorCode::Fenced)
    )
}
