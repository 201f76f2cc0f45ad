//! Repartition-topic purging, as Kafka Streams does (`repartition.purge.interval.ms`).
//! Repartition topics keep their records until the application has committed past them
//! (`retention.ms=-1`: a record with an old event time, such as replayed history, must not
//! expire by time before it is read); every purge interval, after a commit, the thread
//! deletes the records of its repartition partitions below their committed offsets with
//! DeleteRecords, which keeps the topics small.

use std::future::Future;
use std::pin::Pin;

use futures_util::FutureExt;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaResult;

#[allow(clippy::wildcard_imports)]
use super::*;

/// Bound on the committed-offsets lookup a purge starts with.
const COMMITTED_TIMEOUT: Duration = Duration::from_secs(5);

type Pending = Pin<Box<dyn Future<Output = KafkaResult<TopicPartitionList>> + Send>>;

/// Deletes what a thread's application has committed past in its repartition topics.
pub(super) struct Purger {
    admin: AdminClient<DefaultClientContext>,
    /// The resolved names of the topology's repartition topics (its internal sources).
    topics: HashSet<String>,
    interval: Duration,
    last: Instant,
    /// The last DeleteRecords request, checked at the next purge.
    pending: Option<Pending>,
}

impl Purger {
    /// A purger for the topology's repartition topics; `None` when it has none, or on the
    /// embedded broker, which has no DeleteRecords.
    pub(super) fn new(config: &StreamsConfig, topology: &Topology) -> Result<Option<Self>> {
        if config.embedded.is_some() {
            return Ok(None);
        }
        let app = config.application_id.as_str();
        let topics: HashSet<String> = topology
            .source_topics()
            .into_iter()
            .filter(|t| t.is_internal())
            .map(|t| t.resolve(app))
            .collect();
        if topics.is_empty() {
            return Ok(None);
        }
        Ok(Some(Purger {
            admin: base_client_config(config, "admin")?.create()?,
            topics,
            interval: config.repartition_purge_interval,
            last: Instant::now(),
            pending: None,
        }))
    }

    /// After a commit: once per interval, deletes the records below the group's committed
    /// offsets in the repartition partitions assigned to `consumer`. Never fails the thread:
    /// a purge that does not happen only leaves records for the next one.
    pub(super) fn maybe_purge(&mut self, consumer: &BaseConsumer<StreamConsumerContext>) {
        if self.last.elapsed() < self.interval {
            return;
        }
        self.last = Instant::now();
        if let Some(previous) = self.pending.take() {
            match previous.now_or_never() {
                Some(Ok(result)) => {
                    for e in result.elements() {
                        if let Err(err) = e.error() {
                            tracing::debug!(topic = e.topic(), partition = e.partition(), error = %err, "purging a repartition partition failed");
                        }
                    }
                }
                Some(Err(e)) => tracing::debug!(error = %e, "purging repartition topics failed"),
                None => {
                    // Still running: leave it rather than pile requests up.
                    tracing::debug!("the previous repartition purge is still running");
                }
            }
        }
        let mut ours = TopicPartitionList::new();
        match consumer.assignment() {
            Ok(assignment) => {
                for e in assignment.elements() {
                    if self.topics.contains(e.topic()) {
                        ours.add_partition(e.topic(), e.partition());
                    }
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "no assignment to purge");
                return;
            }
        }
        if ours.count() == 0 {
            return;
        }
        let committed = match consumer.committed_offsets(ours, COMMITTED_TIMEOUT) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the committed offsets to purge");
                return;
            }
        };
        let mut below = TopicPartitionList::new();
        for e in committed.elements() {
            if let rdkafka::Offset::Offset(o) = e.offset()
                && o > 0
            {
                // Cannot fail: a valid offset for a partition listed once.
                let _ = below.add_partition_offset(
                    e.topic(),
                    e.partition(),
                    rdkafka::Offset::Offset(o),
                );
            }
        }
        if below.count() == 0 {
            return;
        }
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        self.pending = Some(Box::pin(self.admin.delete_records(&below, &options)));
    }
}
