//! The thread's producer: delivery reports (a failure fails the thread unless the production
//! error handler takes it; changelog offsets are kept for checkpoints) and the collector that
//! hands task output to it.

#[allow(clippy::wildcard_imports)]
use super::*;

use crate::error_policy::{
    ProductionErrorHandler, STAGE_PRODUCTION, dead_letter_headers as h, is_record_error,
    is_size_error,
};
use crate::metrics::TaskMetrics;
use crate::metrics::names::REASON_PRODUCTION;
use crate::processor::task_state::{OutKind, Refused};

pub(super) const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a custom partitioner's first record to a topic waits for the topic's metadata.
const PARTITION_COUNT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long [`ProducerCollector::send`] waits for room in a full producer queue before it
/// gives up with an error naming the full queue: the broker has taken nothing for that long.
pub(super) const QUEUE_FULL_TIMEOUT: Duration = Duration::from_secs(60);
/// The same wait once the instance is shutting down: a queue still full after this long will
/// not drain before the close gives up on the thread.
pub(super) const QUEUE_FULL_TIMEOUT_AT_SHUTDOWN: Duration = Duration::from_secs(5);

/// The largest value a dead letter carries of a record refused for its size: a preview, well
/// under any producer's `message.max.bytes`.
pub(crate) const DEAD_LETTER_VALUE_LIMIT: usize = 4096;

/// The delivery opaque of a record the production error handler may skip: its task's id
/// packed with 1 added (0 = a record whose refusal always fails the thread: changelog
/// writes, dead letters, the global thread's output). Partitions are below 2^24.
fn skippable_opaque(task: TaskId) -> usize {
    ((task.subtopology << 24) | (task.partition as usize & 0xFF_FFFF)) + 1
}

fn task_of_opaque(opaque: usize) -> Option<TaskId> {
    let packed = opaque.checked_sub(1)?;
    Some(TaskId {
        subtopology: packed >> 24,
        partition: (packed & 0xFF_FFFF) as i32,
    })
}

/// A record whose delivery the broker refused and that the production error handler takes,
/// queued by the delivery callback for the stream thread (which must not produce from inside
/// librdkafka's callback).
#[derive(Debug)]
pub(crate) struct RefusedDelivery {
    /// The task that sent it, if known.
    pub task: Option<TaskId>,
    pub topic: String,
    pub error: String,
    pub key: Option<Vec<u8>>,
    /// The value, cut to [`DEAD_LETTER_VALUE_LIMIT`] when its size was refused.
    pub value: Option<Vec<u8>>,
    /// The original length of a value cut short.
    pub truncated: Option<usize>,
    pub timestamp: i64,
    pub headers: Headers,
}

/// Records failed deliveries: the first one that fails the thread, and the refusals the
/// production error handler takes.
#[derive(Default)]
pub(crate) struct DeliveryTracker {
    pub(super) failed: AtomicBool,
    pub(super) first_error: Mutex<Option<Error>>,
    /// Next offset after the last acknowledged write, per changelog topic and partition.
    pub(super) changelog_offsets: Mutex<HashMap<String, HashMap<i32, i64>>>,
    /// Where librdkafka statistics and errors go.
    pub(super) kafka_metrics: Option<KafkaMetrics>,
    /// Whether refused deliveries go to the production error handler (at least once with a
    /// handler other than `Fail`); under exactly-once every failed delivery aborts the
    /// transaction.
    pub(super) handles_refusals: bool,
    /// Refused deliveries the handler takes, for the stream thread to drain.
    pub(super) refused: Mutex<Vec<RefusedDelivery>>,
    pub(super) has_refused: AtomicBool,
    /// The producer's `client.id`, which labels its metrics.
    pub(super) client: String,
}

impl ClientContext for DeliveryTracker {
    fn stats(&self, statistics: rdkafka::Statistics) {
        if let Some(m) = &self.kafka_metrics {
            m.report(&statistics);
        }
    }

    /// librdkafka's global errors (a broker that cannot be reached, …): it retries on its
    /// own, and a record it gives up on fails its delivery, so they are logged and counted.
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::error!(client = %self.client, error = %error, %reason, "producer error");
        self.count_error(&error);
    }
}

impl ProducerContext for DeliveryTracker {
    type DeliveryOpaque = usize;
    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
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
            self.count_error(err);
            let topic = msg.topic().to_string();
            let code = err.rdkafka_error_code();
            if self.handles_refusals && opaque != 0 && code.is_some_and(is_record_error) {
                self.queue_refused(opaque, topic, err, msg);
                return;
            }
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
    fn queue_refused(
        &self,
        opaque: usize,
        topic: String,
        err: &KafkaError,
        msg: &BorrowedMessage<'_>,
    ) {
        let size_refused = err.rdkafka_error_code().is_some_and(is_size_error);
        let (value, truncated) = match msg.payload() {
            Some(v) if size_refused && v.len() > DEAD_LETTER_VALUE_LIMIT => {
                (Some(v[..DEAD_LETTER_VALUE_LIMIT].to_vec()), Some(v.len()))
            }
            v => (v.map(<[u8]>::to_vec), None),
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
        let refused = RefusedDelivery {
            task: task_of_opaque(opaque),
            topic,
            error: err.to_string(),
            key: msg.key().map(<[u8]>::to_vec),
            value,
            truncated,
            timestamp: msg.timestamp().to_millis().unwrap_or_else(now_ms),
            headers,
        };
        if let Ok(mut queue) = self.refused.lock() {
            queue.push(refused);
            self.has_refused.store(true, Ordering::Release);
        }
    }

    /// The refused deliveries queued since the last call.
    pub(super) fn take_refused(&self) -> Vec<RefusedDelivery> {
        if !self.has_refused.swap(false, Ordering::AcqRel) {
            return Vec::new();
        }
        self.refused
            .lock()
            .map(|mut q| std::mem::take(&mut *q))
            .unwrap_or_default()
    }

    /// Counts an error of the producer.
    pub(super) fn count_error(&self, e: &KafkaError) {
        if let Some(m) = &self.kafka_metrics {
            m.error(&self.client, OPERATION_PRODUCE, e);
        }
    }

    pub(super) fn changelog_offset(&self, topic: &str, partition: i32) -> Option<i64> {
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
    pub(super) fn reset(&self) {
        if let Ok(mut first) = self.first_error.lock() {
            first.take();
        }
        self.failed.store(false, Ordering::Release);
        self.take_refused();
    }
}

pub(crate) type ThreadProducer = BaseProducer<DeliveryTracker>;

/// Sends one task's output through the thread's producer, applying the production error
/// handler to records the producer refuses at send time.
pub(crate) struct ProducerCollector {
    producer: Arc<ThreadProducer>,
    handler: ProductionErrorHandler,
    /// The delivery opaque of this task's skippable output (0: every refusal is fatal).
    opaque: usize,
    /// Counts skipped records (`None`: nothing is skipped).
    metrics: Option<TaskMetrics>,
    /// The instance's shutdown flag: a full queue is waited on for less time once it is set.
    shutdown: Arc<AtomicBool>,
    /// Records refused at send time, for the task to dead-letter.
    refused: Vec<Refused>,
    /// How long a full queue is waited on (the shutdown's shorter wait aside).
    queue_full_timeout: Duration,
    /// Partition counts of the topics a custom partitioner wrote to, asked once each.
    partition_counts: HashMap<String, i32>,
}

impl ProducerCollector {
    /// A collector for task `task`'s output; `handler` takes the records the producer
    /// refuses (its refusals at delivery are the tracker's).
    pub(crate) fn new(
        producer: Arc<ThreadProducer>,
        handler: ProductionErrorHandler,
        task: TaskId,
        metrics: TaskMetrics,
        shutdown: Arc<AtomicBool>,
    ) -> Self {
        let skips = handler != ProductionErrorHandler::Fail;
        ProducerCollector {
            producer,
            opaque: if skips { skippable_opaque(task) } else { 0 },
            metrics: skips.then_some(metrics),
            handler,
            shutdown,
            refused: Vec::new(),
            queue_full_timeout: QUEUE_FULL_TIMEOUT,
            partition_counts: HashMap::new(),
        }
    }

    /// Waits up to `timeout` for room in a full queue (default [`QUEUE_FULL_TIMEOUT`]): a
    /// stream thread's collector waits as long as the thread rides out an unreachable broker
    /// ([`StreamsConfig::task_timeout`](crate::config::StreamsConfig::task_timeout)).
    pub(crate) fn queue_full_timeout(mut self, timeout: Duration) -> Self {
        self.queue_full_timeout = timeout;
        self
    }

    /// A collector whose every refusal fails (the global thread's).
    pub(crate) fn failing(producer: Arc<ThreadProducer>, shutdown: Arc<AtomicBool>) -> Self {
        ProducerCollector {
            producer,
            handler: ProductionErrorHandler::Fail,
            opaque: 0,
            metrics: None,
            shutdown,
            refused: Vec::new(),
            queue_full_timeout: QUEUE_FULL_TIMEOUT,
            partition_counts: HashMap::new(),
        }
    }

    /// Applies the handler to a record refused at send time; `Err` when it fails.
    fn refused(&mut self, out: &OutRecord<'_>, e: KafkaError) -> Result<()> {
        let code = e.rdkafka_error_code();
        let fatal = || Error::Produce {
            topic: out.topic.to_string(),
            reason: e.to_string(),
        };
        if out.kind != OutKind::Output || !code.is_some_and(is_record_error) {
            return Err(fatal());
        }
        let Some(metrics) = &self.metrics else {
            return Err(fatal());
        };
        match &self.handler {
            ProductionErrorHandler::Fail => Err(fatal()),
            ProductionErrorHandler::LogAndContinue => {
                tracing::warn!(topic = out.topic, error = %e, "skipping an output record the producer refused");
                metrics.dropped(REASON_PRODUCTION);
                Ok(())
            }
            ProductionErrorHandler::DeadLetter(dead_letter) => {
                // The task sends the dead letter (and counts the record) once the input
                // record's processing is over.
                let (value, truncated) = match out.value {
                    Some(v)
                        if code.is_some_and(is_size_error) && v.len() > DEAD_LETTER_VALUE_LIMIT =>
                    {
                        (Some(v[..DEAD_LETTER_VALUE_LIMIT].to_vec()), Some(v.len()))
                    }
                    v => (v.map(<[u8]>::to_vec), None),
                };
                self.refused.push(Refused {
                    dead_letter: dead_letter.clone(),
                    topic: out.topic.to_string(),
                    error: e.to_string(),
                    key: out.key.map(<[u8]>::to_vec),
                    value,
                    truncated,
                    timestamp: out.timestamp,
                    headers: out.headers.clone(),
                });
                Ok(())
            }
        }
    }
}

impl RecordCollector for ProducerCollector {
    fn send(&mut self, out: OutRecord<'_>) -> Result<()> {
        let opaque = if out.kind == OutKind::Output {
            self.opaque
        } else {
            0
        };
        let mut record = BaseRecord::<[u8], [u8], usize>::with_opaque_to(out.topic, opaque)
            .timestamp(out.timestamp);
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
        let mut full_since: Option<Instant> = None;
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    // Back-pressure: serve delivery reports until librdkafka has room, for a
                    // bounded time (the broker may be gone; the instance may be closing).
                    let since = *full_since.get_or_insert_with(Instant::now);
                    let limit = if self.shutdown.load(Ordering::Acquire) {
                        QUEUE_FULL_TIMEOUT_AT_SHUTDOWN
                    } else {
                        self.queue_full_timeout
                    };
                    if since.elapsed() >= limit {
                        return Err(Error::Produce {
                            topic: out.topic.to_string(),
                            reason: format!(
                                "the producer's queue stayed full for {limit:?} \
                                 (queue.buffering.max.messages / queue.buffering.max.kbytes): \
                                 the broker is not taking records"
                            ),
                        });
                    }
                    self.producer.poll(Duration::from_millis(10));
                    record = r;
                }
                Err((e, _)) => return self.refused(&out, e),
            }
        }
    }

    fn partition_count(&mut self, topic: &str) -> Result<i32> {
        if let Some(&n) = self.partition_counts.get(topic) {
            return Ok(n);
        }
        let error = |reason: String| Error::Produce {
            topic: topic.to_string(),
            reason,
        };
        let md = self
            .producer
            .client()
            .fetch_metadata(Some(topic), PARTITION_COUNT_TIMEOUT)
            .map_err(|e| {
                error(format!(
                    "no partition count for the stream partitioner: {e}"
                ))
            })?;
        let n = md
            .topics()
            .first()
            .filter(|t| t.error().is_none())
            .map_or(0, |t| t.partitions().len() as i32);
        if n == 0 {
            return Err(error(
                "no partition count for the stream partitioner: the topic has no partitions \
                 (does it exist?)"
                    .into(),
            ));
        }
        self.partition_counts.insert(topic.to_string(), n);
        Ok(n)
    }

    fn keeps_refused(&self) -> bool {
        matches!(self.handler, ProductionErrorHandler::DeadLetter(_))
    }

    fn take_refused(&mut self) -> Vec<Refused> {
        std::mem::take(&mut self.refused)
    }
}

impl Worker {
    /// Applies the production error handler to the deliveries the broker refused that it
    /// takes (at least once): counts each, and sends the dead letters. Returns whether it
    /// sent any, which the caller flushes before trusting the deliveries.
    pub(super) fn handle_refused_deliveries(&mut self) -> Result<bool> {
        let refused = self.producer.context().take_refused();
        if refused.is_empty() {
            return Ok(false);
        }
        let mut sent = false;
        let mut dead_letters =
            ProducerCollector::failing(self.producer.clone(), self.args.shutdown.clone());
        for r in refused {
            let metrics = r.task.map(|t| self.args.metrics.task(&self.args.name, t));
            match self
                .args
                .config
                .production_error_handler
                .dead_letter_topic()
            {
                None => {
                    tracing::warn!(thread = %self.args.name, topic = %r.topic, error = %r.error,
                        "skipping an output record the broker refused");
                }
                Some(topic) => {
                    let mut headers = r.headers;
                    headers
                        .add(h::ERROR, r.error.as_str())
                        .add(h::STAGE, STAGE_PRODUCTION)
                        .add(h::TARGET_TOPIC, r.topic.as_str());
                    if let Some(len) = r.truncated {
                        headers.add(h::TRUNCATED, len.to_string());
                    }
                    dead_letters.send(OutRecord {
                        topic,
                        partition: None,
                        key: r.key.as_deref(),
                        value: r.value.as_deref(),
                        timestamp: r.timestamp,
                        headers: &headers,
                        kind: OutKind::DeadLetter,
                    })?;
                    tracing::warn!(thread = %self.args.name, topic = %r.topic, error = %r.error,
                        dead_letter_topic = topic, "output record refused by the broker; sent a dead letter");
                    if let Some(m) = &metrics {
                        m.dead_letter.inc();
                    }
                    sent = true;
                }
            }
            if let Some(m) = &metrics {
                m.dropped(REASON_PRODUCTION);
            }
        }
        Ok(sent)
    }

    /// Flushes the producer and handles the refused deliveries the production error handler
    /// takes (their dead letters flushed too); then fails on any other failed delivery.
    pub(super) fn flush_and_check(&mut self) -> Result<()> {
        self.producer.flush(FLUSH_TIMEOUT)?;
        if self.handle_refused_deliveries()? {
            self.producer.flush(FLUSH_TIMEOUT)?;
        }
        self.producer.context().check()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    #[test]
    fn a_queue_that_stays_full_is_an_error_naming_it_not_a_spin() {
        // No broker listens there: nothing leaves the queue of one record.
        let producer: Arc<ThreadProducer> = Arc::new(
            rdkafka::ClientConfig::new()
                .set("bootstrap.servers", "127.0.0.1:1")
                .set("queue.buffering.max.messages", "1")
                .create_with_context(DeliveryTracker::default())
                .unwrap(),
        );
        let shutdown = Arc::new(AtomicBool::new(true));
        let task = TaskId {
            subtopology: 0,
            partition: 0,
        };
        let mut collector = ProducerCollector::new(
            producer,
            ProductionErrorHandler::Fail,
            task,
            Metrics::new("queue-full").task("t", task),
            shutdown,
        );
        let headers = Headers::new();
        let record = |collector: &mut ProducerCollector| {
            collector.send(OutRecord {
                topic: "out",
                partition: Some(0),
                key: Some(b"k"),
                value: Some(b"v"),
                timestamp: 0,
                headers: &headers,
                kind: OutKind::Output,
            })
        };
        record(&mut collector).unwrap();
        let started = Instant::now();
        let error = record(&mut collector).unwrap_err().to_string();
        assert!(error.contains("queue stayed full"), "{error}");
        let waited = started.elapsed();
        assert!(
            waited >= QUEUE_FULL_TIMEOUT_AT_SHUTDOWN && waited < QUEUE_FULL_TIMEOUT,
            "{waited:?}"
        );
    }

    #[test]
    fn a_task_id_survives_the_delivery_opaque() {
        for (subtopology, partition) in [(0, 0), (3, 17), (250, 0xFF_FFFF)] {
            let id = TaskId {
                subtopology,
                partition,
            };
            assert_eq!(task_of_opaque(skippable_opaque(id)), Some(id));
        }
        assert_eq!(task_of_opaque(0), None);
    }
}
