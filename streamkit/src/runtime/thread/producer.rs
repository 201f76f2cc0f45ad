//! The thread's producer: delivery reports (the first failure fails the thread, changelog
//! offsets are kept for checkpoints) and the collector that hands task output to it.

#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);
/// Records the first failed delivery; the thread turns it into an error.
#[derive(Default)]
pub(crate) struct DeliveryTracker {
    pub(super) failed: AtomicBool,
    pub(super) first_error: Mutex<Option<Error>>,
    /// Next offset after the last acknowledged write, per changelog topic and partition.
    pub(super) changelog_offsets: Mutex<HashMap<String, HashMap<i32, i64>>>,
    /// Where librdkafka statistics and errors go.
    pub(super) kafka_metrics: Option<KafkaMetrics>,
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
            self.count_error(err);
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
    }
}

pub(crate) type ThreadProducer = BaseProducer<DeliveryTracker>;

/// Sends task output through the thread's producer.
pub(crate) struct ProducerCollector(pub Arc<ThreadProducer>);

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
