//! Lag probes: whether an empty input partition has records on the broker, which decides
//! how long a task with several inputs waits for it.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Bound on the broker queries telling whether an empty input partition has records pending
/// (a query that fails or times out counts as "pending": the task waits and asks again).
pub(super) const LAG_TIMEOUT: Duration = Duration::from_secs(5);
/// Tells whether an input partition has records on the broker that the consumer has not
/// delivered: its end offset (the last stable offset under `read_committed`), asked of the
/// broker at most once per `refresh` while the partition looks caught up, against the
/// consumer's position (which also moves past transaction markers).
pub(super) struct LagProbe {
    pub(super) refresh: Duration,
    /// Whether a partition without a committed offset starts at its end.
    pub(super) reset_latest: bool,
    /// (topic, partition) → (end offset, when it was asked).
    pub(super) ends: HashMap<(String, i32), (i64, Instant)>,
    /// (topic, partition) → where the consumer started, for a partition it has delivered
    /// nothing from since its assignment (or a seek).
    pub(super) starts: HashMap<(String, i32), i64>,
}

impl LagProbe {
    /// Forgets every start (after an assignment change or a seek).
    pub(super) fn reset(&mut self) {
        self.starts.clear();
        self.ends.clear();
    }

    /// Whether `topic`/`partition`, at consumer position `position` (`None` when nothing was
    /// delivered from it since its assignment), has records on the broker still to deliver.
    pub(super) fn lag(
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
