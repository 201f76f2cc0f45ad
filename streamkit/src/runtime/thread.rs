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
use crate::metrics::kafka::{DEFAULT_STATISTICS_INTERVAL_MS, KafkaMetrics};
use crate::metrics::{Metrics, RateMeter};
use crate::record::Headers;
use crate::runtime::TaskId;
use crate::runtime::admin::base_client_config;
use crate::runtime::context::{OutRecord, RecordCollector};
use crate::runtime::partition_group::Lag;
use crate::runtime::partition_map::PartitionMap;
use crate::runtime::restore::ChangelogRestorer;
use crate::runtime::stores::{Checkpoint, TaskStores};
use crate::runtime::task::{OpenedTask, Task, TaskSetup};
use crate::state::cache::CacheBudget;
use crate::topology::Topology;
use crate::topology::node::RawRecord;

const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on each transactional call (init, send offsets, commit, abort).
const TXN_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on the broker queries telling whether an empty input partition has records pending
/// (a query that fails or times out counts as "pending": the task waits and asks again).
const LAG_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts of a transaction commit that fails with a retriable error.
const TXN_RETRIES: u32 = 5;

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

    /// Forgets failed deliveries (after the transaction holding them was aborted).
    fn reset(&self) {
        if let Ok(mut first) = self.first_error.lock() {
            first.take();
        }
        self.failed.store(false, Ordering::Release);
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

/// Where each input partition's records go: topic → partition → (task, source index in the
/// task).
type Routes = PartitionMap<(TaskId, usize)>;

/// (topic, partition, next offset to consume).
type Position = (String, i32, i64);

enum RebalanceEvent {
    Assigned(Vec<(String, i32)>),
    /// The revoked partitions, and (exactly-once) the positions reached on them, which the
    /// thread commits in its transaction after the callback.
    Revoked(Vec<(String, i32)>, Vec<Position>),
}

/// Consumer callbacks: commit before partitions move, queue the change for the thread.
pub(crate) struct StreamConsumerContext {
    index: usize,
    events: Mutex<Vec<RebalanceEvent>>,
    has_events: AtomicBool,
    status: StatusSink,
    /// Exactly-once: offsets are committed by the thread's transaction, not here.
    exactly_once: bool,
    /// At least once: partitions were revoked and the thread has yet to unassign them, after
    /// closing their tasks, flushing their output and committing their offsets (the group
    /// waits for the unassign, so the commit still belongs to the current generation).
    unassign_pending: AtomicBool,
    /// The thread is inside its run loop's `poll`, so it handles the rebalance events right
    /// after: only then may an unassign wait for it. A revocation served anywhere else (the
    /// consumer closing, dropped by a failing thread) unassigns at once.
    in_poll: AtomicBool,
    kafka_metrics: KafkaMetrics,
}

fn partitions(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

/// The valid offsets of a position list.
fn positions_of(tpl: &TopicPartitionList) -> Vec<Position> {
    tpl.elements()
        .iter()
        .filter_map(|e| match e.offset() {
            rdkafka::Offset::Offset(o) => Some((e.topic().to_string(), e.partition(), o)),
            _ => None,
        })
        .collect()
}

impl ClientContext for StreamConsumerContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        self.kafka_metrics.report(&statistics);
    }
}

impl ConsumerContext for StreamConsumerContext {
    /// rdkafka's default, minus its `rd_kafka_rebalance_protocol()` call: the group always
    /// uses the eager `range` assignor (set in `StreamThread::new`), so the assignment is
    /// replaced whole. That call, like `rd_kafka_assign()` and a commit, is a request to the
    /// consumer group's handler that waits without a timeout, and a rebalance event served
    /// while the consumer closes (in its drop) can arrive after the handler terminated: the
    /// request is then never answered and the thread hangs (librdkafka issues #4041, #4884).
    /// Once the group is closed there is nothing left to commit or unassign, so nothing is
    /// asked of it.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let rebalance = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => Rebalance::Assign(tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => Rebalance::Revoke(tpl),
            other => Rebalance::Error(KafkaError::Rebalance(other.into())),
        };
        if consumer.closed() {
            tracing::debug!(
                thread = self.index,
                "rebalance event after the consumer closed; ignored"
            );
            self.post_rebalance(consumer, &rebalance);
            return;
        }
        self.pre_rebalance(consumer, &rebalance);
        if consumer.closed() {
            tracing::debug!(
                thread = self.index,
                "consumer closed during the rebalance callback; not unassigning"
            );
        } else {
            let done = match &rebalance {
                Rebalance::Assign(tpl) => consumer.assign(tpl),
                // At least once: the thread unassigns once the revoked tasks are closed, their
                // output flushed and checked, and their offsets committed (`handle_rebalance`);
                // librdkafka lets the group wait for that call.
                Rebalance::Revoke(_)
                    if !self.exactly_once && self.in_poll.load(Ordering::Acquire) =>
                {
                    self.unassign_pending.store(true, Ordering::Release);
                    Ok(())
                }
                _ => consumer.unassign(),
            };
            if let Err(e) = done {
                tracing::error!(error = %e, "applying the rebalance failed");
            }
        }
        self.post_rebalance(consumer, &rebalance);
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                (self.status)(self.index, ThreadStatus::Rebalancing);
                if self.exactly_once {
                    // The positions are gone once the partitions are unassigned: keep them
                    // for the transaction the thread commits after this callback.
                    let positions = consumer
                        .position()
                        .map(|p| positions_of(&p))
                        .unwrap_or_default();
                    self.push(RebalanceEvent::Revoked(partitions(tpl), positions));
                    return;
                }
                // The thread closes the tasks, flushes, checks and commits, then unassigns.
                self.push(RebalanceEvent::Revoked(partitions(tpl), Vec::new()));
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

/// Commits explicit offsets, with the same tolerance of rebalances as [`commit`].
fn commit_offsets<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    offsets: &TopicPartitionList,
) -> Result<()> {
    if offsets.count() == 0 {
        return Ok(());
    }
    match consumer.commit(offsets, CommitMode::Sync) {
        Err(KafkaError::ConsumerCommit(code)) if is_rebalancing(code) => {
            tracing::info!(%code, "commit deferred: the group is rebalancing");
            Ok(())
        }
        r => r.map_err(Into::into),
    }
}

fn is_rebalancing(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::RebalanceInProgress
            | C::IllegalGeneration
            | C::UnknownMemberId
            | C::NotCoordinator
            | C::CoordinatorLoadInProgress
            | C::CoordinatorNotAvailable
            | C::RequestTimedOut
            | C::State
    )
}

/// How a failed transactional call is handled.
enum TxnFailure {
    /// Try the call again.
    Retry(KafkaError),
    /// Abort the transaction and reset the tasks to their last committed state.
    Abort(String),
    /// Stop the thread.
    Fatal(Error),
}

fn classify_txn_error(e: KafkaError, transactional_id: &str) -> TxnFailure {
    let KafkaError::Transaction(rde) = &e else {
        // A flush that timed out: the transaction cannot be trusted to hold every record.
        return TxnFailure::Abort(e.to_string());
    };
    use RDKafkaErrorCode as C;
    let fatal = |reason: String| Error::Transaction {
        transactional_id: transactional_id.to_string(),
        reason,
    };
    let code = rde.code();
    if matches!(
        code,
        C::Fenced | C::ProducerFenced | C::InvalidProducerEpoch
    ) {
        return TxnFailure::Fatal(Error::ProducerFenced {
            transactional_id: transactional_id.to_string(),
            reason: rde.to_string(),
        });
    }
    if rde.is_fatal() || code == C::TransactionalIdAuthorizationFailed {
        TxnFailure::Fatal(fatal(rde.to_string()))
    } else if rde.txn_requires_abort() {
        TxnFailure::Abort(rde.to_string())
    } else if rde.is_retriable() {
        TxnFailure::Retry(e)
    } else {
        TxnFailure::Fatal(fatal(rde.to_string()))
    }
}

/// Commits the stored offsets. A commit refused because the group is moving partitions is not
/// an error: the offsets stay stored, the revocation callback commits them if it still can,
/// and otherwise the records are processed again (at-least-once allows it). Nor is a commit
/// the cluster cannot take right now (its coordinator restarting or unreachable): the offsets
/// stay stored and the next commit carries them, as Kafka Streams retries a commit that timed
/// out at the next interval.
fn commit<C: ConsumerContext>(consumer: &BaseConsumer<C>) -> Result<()> {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(()),
        Err(KafkaError::ConsumerCommit(code)) if is_rebalancing(code) => {
            tracing::info!(%code, "commit deferred: the group is rebalancing");
            Ok(())
        }
        Err(KafkaError::ConsumerCommit(code)) if is_unreachable(code) => {
            tracing::warn!(%code, "commit deferred: the group coordinator is unreachable");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Errors of a cluster that is down or moving its coordinator, which pass.
fn is_unreachable(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::WaitingForCoordinator
            | C::BrokerTransportFailure
            | C::AllBrokersDown
            | C::OperationTimedOut
            | C::NetworkException
            | C::NotEnoughReplicas
            | C::NotEnoughReplicasAfterAppend
    )
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
    /// The record-cache budget of this thread's stores: the instance's
    /// `cache_max_bytes` split evenly between its threads.
    cache_budget: Arc<CacheBudget>,
    args: ThreadArgs,
    app_id: Arc<str>,
    producer: Arc<Producer_>,
    tasks: BTreeMap<TaskId, Task>,
    /// topic → partition → (task, source index in the task).
    routes: Routes,
    last_commit: Instant,
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
}

/// Tells whether an input partition has records on the broker that the consumer has not
/// delivered: its end offset (the last stable offset under `read_committed`), asked of the
/// broker at most once per `refresh` while the partition looks caught up, against the
/// consumer's position (which also moves past transaction markers).
struct LagProbe {
    refresh: Duration,
    /// Whether a partition without a committed offset starts at its end.
    reset_latest: bool,
    /// (topic, partition) → (end offset, when it was asked).
    ends: HashMap<(String, i32), (i64, Instant)>,
    /// (topic, partition) → where the consumer started, for a partition it has delivered
    /// nothing from since its assignment (or a seek).
    starts: HashMap<(String, i32), i64>,
}

impl LagProbe {
    /// Forgets every start (after an assignment change or a seek).
    fn reset(&mut self) {
        self.starts.clear();
        self.ends.clear();
    }

    /// Whether `topic`/`partition`, at consumer position `position` (`None` when nothing was
    /// delivered from it since its assignment), has records on the broker still to deliver.
    fn lag(
        &mut self,
        consumer: &BaseConsumer<StreamConsumerContext>,
        topic: &str,
        partition: i32,
        position: Option<i64>,
    ) -> Lag {
        let key = (topic.to_string(), partition);
        let position = match position {
            Some(p) => p,
            None => match self.start(consumer, &key) {
                Some(p) => p,
                None => return Lag::Pending,
            },
        };
        if let Some(&(end, asked)) = self.ends.get(&key) {
            if position < end {
                return Lag::Pending;
            }
            if asked.elapsed() < self.refresh {
                return Lag::Zero;
            }
        }
        match consumer.fetch_watermarks(topic, partition, LAG_TIMEOUT) {
            Ok((_, end)) => {
                self.ends.insert(key, (end, Instant::now()));
                if position < end {
                    Lag::Pending
                } else {
                    Lag::Zero
                }
            }
            Err(e) => {
                tracing::debug!(%topic, partition, error = %e, "end offset unknown; waiting");
                Lag::Pending
            }
        }
    }

    /// Where the consumer started reading `key`: its committed offset, or the reset policy's
    /// end of the partition.
    fn start(
        &mut self,
        consumer: &BaseConsumer<StreamConsumerContext>,
        key: &(String, i32),
    ) -> Option<i64> {
        if let Some(&s) = self.starts.get(key) {
            return Some(s);
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&key.0, key.1);
        let committed = consumer.committed_offsets(tpl, LAG_TIMEOUT).ok()?;
        let start = match committed.find_partition(&key.0, key.1)?.offset() {
            rdkafka::Offset::Offset(o) => o,
            _ => {
                let (low, high) = consumer.fetch_watermarks(&key.0, key.1, LAG_TIMEOUT).ok()?;
                if self.reset_latest { high } else { low }
            }
        };
        self.starts.insert(key.clone(), start);
        Some(start)
    }
}

/// The transaction timeout of a stream thread's producer: how long the coordinator lets a
/// transaction stay open before aborting it. It is also how long a crashed thread's open
/// transaction holds back `read_committed` readers of its output, changelogs and repartition
/// topics — its successor's restore and processing included, since the crashed producer's
/// transactional id is never reused to fence it. So Kafka Streams' 10 s rather than
/// librdkafka's 60 s; longer when the commit interval keeps transactions open longer, and
/// within the broker's default `transaction.max.timeout.ms` (15 min).
fn transaction_timeout(commit_interval: Duration) -> Duration {
    (commit_interval + Duration::from_secs(10))
        .clamp(Duration::from_secs(10), Duration::from_secs(900))
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
        let producer: Arc<Producer_> = Arc::new(pc.create_with_context(DeliveryTracker {
            kafka_metrics: Some(args.metrics.kafka.clone()),
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
                transactional_id,
                seeked: HashSet::new(),
                committed_positions: HashMap::new(),
                aborts_in_a_row: 0,
                paused: HashSet::new(),
                lag,
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
            if self.last_commit.elapsed() >= self.args.config.commit_interval {
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

    fn handle_rebalance(&mut self, consumer: &BaseConsumer<StreamConsumerContext>) -> Result<()> {
        self.lag.reset();
        let context = consumer.context();
        context.has_events.store(false, Ordering::Release);
        let events = std::mem::take(
            &mut *context
                .events
                .lock()
                .map_err(|_| Error::Internal("poisoned".into()))?,
        );
        for event in events {
            match event {
                RebalanceEvent::Revoked(parts, positions) => {
                    // The consumer's positions include records still buffered in the
                    // tasks: commit only up to the first unprocessed one.
                    let positions: Vec<Position> = positions
                        .into_iter()
                        .map(|(t, p, o)| {
                            let o = self.processed_position(&t, p, o);
                            (t, p, o)
                        })
                        .collect();
                    let revoked: HashSet<(String, i32)> = parts.iter().cloned().collect();
                    if self.paused.iter().any(|k| revoked.contains(k)) {
                        let mut tpl = TopicPartitionList::new();
                        for key in self.paused.iter().filter(|k| revoked.contains(k)) {
                            tpl.add_partition(&key.0, key.1);
                        }
                        self.paused.retain(|k| !revoked.contains(k));
                        if let Err(e) = consumer.resume(&tpl) {
                            tracing::debug!(error = %e, "resuming revoked partitions");
                        }
                    }
                    let ids: Vec<TaskId> = parts
                        .iter()
                        .filter_map(|(t, p)| self.task_id(t, *p))
                        .collect();
                    let mut closed = Vec::new();
                    for id in ids {
                        if let Some(mut task) = self.tasks.remove(&id) {
                            task.close()?;
                            tracing::info!(thread = %self.args.name, task = %id, "task closed (partitions revoked)");
                            closed.push(task);
                        }
                    }
                    self.rebuild_routes();
                    if self.transactional_id.is_none() {
                        // The same sequence as a periodic commit: the closed tasks flushed their
                        // caches (above), then their output is flushed and every delivery
                        // checked, then the external commits, then the input offsets — so
                        // whoever gets these partitions next starts after records whose
                        // results are in Kafka. Only then are the partitions unassigned.
                        let flushed = self
                            .producer
                            .flush(FLUSH_TIMEOUT)
                            .map_err(Error::from)
                            .and_then(|()| self.producer.context().check());
                        let committed = flushed.and_then(|()| {
                            for task in &mut closed {
                                task.commit_external()?;
                            }
                            commit(consumer)
                        });
                        if consumer
                            .context()
                            .unassign_pending
                            .swap(false, Ordering::AcqRel)
                            && let Err(e) = consumer.unassign()
                        {
                            tracing::warn!(error = %e, "unassigning revoked partitions failed");
                        }
                        committed?;
                    }
                    if self.transactional_id.is_some() {
                        // The closed tasks' last output is in the open transaction: commit it
                        // with the positions reached before the partitions were unassigned.
                        // Their checkpoints are written only once that succeeded.
                        if self.commit_transaction(consumer, &positions, &mut closed)? {
                            for task in &mut closed {
                                task.write_checkpoint()?;
                            }
                        }
                    }
                }
                RebalanceEvent::Assigned(parts) => {
                    let mut ids = Vec::new();
                    for (topic, partition) in &parts {
                        let Some(id) = self.task_id(topic, *partition) else {
                            continue;
                        };
                        if !self.tasks.contains_key(&id) && !ids.contains(&id) {
                            ids.push(id);
                        }
                    }
                    // The new tasks' stores are restored together, then the tasks start.
                    self.create_tasks(&ids)?;
                    for id in ids {
                        self.seek_external(consumer, id)?;
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

    fn task_dir(&self, id: TaskId) -> std::path::PathBuf {
        self.args
            .config
            .state_dir
            .join(&*self.app_id)
            .join(id.to_string())
    }

    /// Creates tasks: opens each, restores all their logged stores together (one changelog
    /// assignment), then initializes each; a task starts processing only once restored.
    fn create_tasks(&mut self, ids: &[TaskId]) -> Result<()> {
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
        let mut restored = self.restorer.restore(&requests)?;
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
            collector: Box::new(ProducerCollector(self.producer.clone())),
            default_handler: self.args.config.default_deserialization_handler.clone(),
            processing_handler: self.args.config.processing_error_handler,
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

    /// Output first, then offsets. `external`: whether sinks that commit outside Kafka commit
    /// too (not after a processing error, which may have left a record half applied).
    fn commit(
        &mut self,
        consumer: &BaseConsumer<StreamConsumerContext>,
        external: bool,
    ) -> Result<()> {
        let started = Instant::now();
        if self.transactional_id.is_some() {
            self.commit_transaction(consumer, &[], &mut Vec::new())?;
        } else {
            for task in self.tasks.values_mut() {
                task.flush()?;
            }
            self.producer.flush(FLUSH_TIMEOUT)?;
            self.producer.context().check()?;
            if external {
                for task in self.tasks.values_mut() {
                    task.commit_external()?;
                }
            }
            let tracker = self.producer.context();
            for task in self.tasks.values_mut() {
                task.changelog_written(|t, p| tracker.changelog_offset(t, p));
                task.write_checkpoint()?;
            }
            commit(consumer)?;
        }
        self.last_commit = Instant::now();
        self.args
            .metrics
            .commit_latency
            .with_label_values(&[&self.args.name])
            .observe(started.elapsed().as_secs_f64());
        self.rate.tick();
        Ok(())
    }

    /// Exactly-once commit: flushes the tasks (and `closed`, tasks already taken out of the
    /// thread), sends the consumed positions (plus `extra` ones) into the open transaction,
    /// commits it and begins the next. Returns whether it committed; `false` means the
    /// transaction was aborted and the thread's tasks were reset to the last commit.
    fn commit_transaction(
        &mut self,
        consumer: &BaseConsumer<StreamConsumerContext>,
        extra: &[Position],
        closed: &mut [Task],
    ) -> Result<bool> {
        let id = self
            .transactional_id
            .clone()
            .ok_or_else(|| Error::Internal("transaction without a transactional id".into()))?;
        for task in self.tasks.values_mut().chain(closed.iter_mut()) {
            task.flush()?;
        }
        let mut offsets = TopicPartitionList::new();
        let mut moved = Vec::new();
        for (topic, partition, offset) in consumer
            .position()
            .map(|p| positions_of(&p))?
            .into_iter()
            .chain(extra.iter().cloned())
        {
            let offset = self.processed_position(&topic, partition, offset);
            let key = (topic, partition);
            if self.committed_positions.get(&key) != Some(&offset) {
                offsets.add_partition_offset(&key.0, partition, rdkafka::Offset::Offset(offset))?;
                moved.push((key, offset));
            }
        }
        let mut attempt = 0;
        loop {
            let failure = match self.try_commit_transaction(consumer, &offsets) {
                Ok(()) => break,
                Err(f) => f,
            };
            match failure {
                TxnFailure::Retry(e) if attempt + 1 < TXN_RETRIES => {
                    attempt += 1;
                    tracing::warn!(thread = %self.args.name, error = %e, attempt, "transaction commit failed; retrying");
                    std::thread::sleep(Duration::from_millis(200 * u64::from(attempt)));
                }
                TxnFailure::Retry(e) => {
                    return Err(Error::Transaction {
                        transactional_id: id,
                        reason: format!("commit still failing after {TXN_RETRIES} attempts: {e}"),
                    });
                }
                TxnFailure::Fatal(e) => return Err(e),
                TxnFailure::Abort(reason) => {
                    tracing::warn!(thread = %self.args.name, transactional_id = %id, %reason,
                        "transaction aborted; resetting the thread's tasks to their last committed state");
                    self.abort_and_reset(consumer, &id, &reason)?;
                    return Ok(false);
                }
            }
        }
        // Progress: input offsets committed (a transaction without offsets proves nothing).
        if !moved.is_empty() {
            self.aborts_in_a_row = 0;
        }
        self.committed_positions.extend(moved);
        let tracker = self.producer.context();
        for task in self.tasks.values_mut().chain(closed.iter_mut()) {
            task.changelog_written(|t, p| tracker.changelog_offset(t, p));
            task.commit_external()?;
        }
        if self.args.config.embedded.is_some() {
            // The embedded broker acknowledges transactional offset commits without storing
            // them; commit the same offsets plainly so that a restart resumes here. Never on
            // a real broker, where the transaction stored them (tests/kafka_exactly_once.rs
            // checks that no offset is committed twice there).
            commit_offsets(consumer, &offsets)?;
        }
        self.producer
            .begin_transaction()
            .map_err(|e| Error::Transaction {
                transactional_id: id,
                reason: e.to_string(),
            })?;
        Ok(true)
    }

    fn try_commit_transaction(
        &self,
        consumer: &BaseConsumer<StreamConsumerContext>,
        offsets: &TopicPartitionList,
    ) -> std::result::Result<(), TxnFailure> {
        let id = self.transactional_id.as_deref().unwrap_or_default();
        self.producer
            .flush(FLUSH_TIMEOUT)
            .map_err(|e| classify_txn_error(e, id))?;
        if let Err(e) = self.producer.context().check() {
            return Err(TxnFailure::Abort(e.to_string()));
        }
        if offsets.count() > 0 {
            let metadata = consumer.group_metadata().ok_or_else(|| {
                TxnFailure::Abort("the consumer has no group metadata (not in a group)".into())
            })?;
            self.producer
                .send_offsets_to_transaction(offsets, &metadata, TXN_TIMEOUT)
                .map_err(|e| classify_txn_error(e, id))?;
        }
        self.producer
            .commit_transaction(TXN_TIMEOUT)
            .map_err(|e| classify_txn_error(e, id))
    }

    /// Aborts the open transaction, drops every task without committing anything, and
    /// rebuilds the tasks of the current assignment from their changelogs (no checkpoint, so
    /// from scratch), with the consumer rewound to the committed offsets.
    fn abort_and_reset(
        &mut self,
        consumer: &BaseConsumer<StreamConsumerContext>,
        transactional_id: &str,
        why: &str,
    ) -> Result<()> {
        // The same input processed again hits the same fault when it is permanent (a record
        // the topic refuses, an authorization error): stop instead of looping forever.
        self.aborts_in_a_row += 1;
        let limit = self.args.config.max_transaction_aborts;
        if self.aborts_in_a_row > limit {
            let _ = self.producer.abort_transaction(TXN_TIMEOUT);
            return Err(Error::Transaction {
                transactional_id: transactional_id.to_string(),
                reason: format!(
                    "aborted {limit} times in a row without a commit in between, last because: \
                     {why}; a fault that processing the same input again cannot fix, so the \
                     thread stops (StreamsConfig::max_transaction_aborts)"
                ),
            });
        }
        if let Err(e) = self.producer.abort_transaction(TXN_TIMEOUT) {
            return Err(match classify_txn_error(e, transactional_id) {
                TxnFailure::Fatal(e) => e,
                TxnFailure::Retry(e) => Error::Transaction {
                    transactional_id: transactional_id.to_string(),
                    reason: format!("abort failed: {e}"),
                },
                TxnFailure::Abort(reason) => Error::Transaction {
                    transactional_id: transactional_id.to_string(),
                    reason: format!("abort failed: {reason}"),
                },
            });
        }
        self.producer.context().reset();
        self.committed_positions.clear();
        // The tasks and their buffers go; the consumer is rewound below.
        self.resume_all(consumer);
        self.lag.reset();
        let ids: Vec<TaskId> = self.tasks.keys().copied().collect();
        for (id, mut task) in std::mem::take(&mut self.tasks) {
            task.abandon();
            Checkpoint::remove(&self.task_dir(id))?;
        }
        self.routes.clear();
        self.producer
            .begin_transaction()
            .map_err(|e| Error::Transaction {
                transactional_id: transactional_id.to_string(),
                reason: e.to_string(),
            })?;
        let assignment = consumer.assignment()?;
        if assignment.count() == 0 {
            return Ok(());
        }
        self.create_tasks(&ids)?;
        self.rebuild_routes();
        let committed = consumer.committed_offsets(assignment, TXN_TIMEOUT)?;
        let mut rewind = TopicPartitionList::new();
        for e in committed.elements() {
            let offset = match e.offset() {
                rdkafka::Offset::Offset(o) => rdkafka::Offset::Offset(o),
                _ => rdkafka::Offset::Beginning,
            };
            rewind.add_partition_offset(e.topic(), e.partition(), offset)?;
        }
        for e in consumer.seek_partitions(rewind, TXN_TIMEOUT)?.elements() {
            if let Err(err) = e.error() {
                return Err(Error::Internal(format!(
                    "cannot rewind {}[{}] after an aborted transaction: {err}",
                    e.topic(),
                    e.partition()
                )));
            }
        }
        for id in ids {
            self.seek_external(consumer, id)?;
        }
        // No record is in hand here: the seeks' version barrier discards anything fetched
        // from the old positions.
        self.seeked.clear();
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
fn is_held_by_this_process(e: &Error) -> bool {
    e.to_string().contains("lock hold by current process")
}

pub(crate) fn is_fatal(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(RDKafkaErrorCode::Fatal | RDKafkaErrorCode::Fenced)
    )
}
