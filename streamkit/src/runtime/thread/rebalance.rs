//! Rebalances: the consumer context that turns librdkafka's callbacks into events (with the
//! revocation commit), and the thread's handling of assigned and revoked partitions.

#[allow(clippy::wildcard_imports)]
use super::*;

use crate::stream::OffsetReset;

/// How long the committed offsets and end offsets of newly assigned partitions of sources
/// with their own offset reset policy are waited for.
const OFFSET_RESET_TIMEOUT: Duration = Duration::from_secs(30);

/// (topic, partition, next offset to consume).
pub(super) type Position = (String, i32, i64);

pub(super) enum RebalanceEvent {
    Assigned(Vec<(String, i32)>),
    /// The revoked partitions, and (exactly-once) the positions reached on them, which the
    /// thread commits in its transaction after the callback.
    Revoked(Vec<(String, i32)>, Vec<Position>),
}

/// Consumer callbacks: commit before partitions move, queue the change for the thread.
pub(crate) struct StreamConsumerContext {
    pub(super) index: usize,
    pub(super) events: Mutex<Vec<RebalanceEvent>>,
    pub(super) has_events: AtomicBool,
    pub(super) status: StatusSink,
    /// Exactly-once: offsets are committed by the thread's transaction, not here.
    pub(super) exactly_once: bool,
    /// At least once: partitions were revoked and the thread has yet to unassign them, after
    /// closing their tasks, flushing their output and committing their offsets (the group
    /// waits for the unassign, so the commit still belongs to the current generation).
    pub(super) unassign_pending: AtomicBool,
    /// The thread is inside its run loop's `poll`, so it handles the rebalance events right
    /// after: only then may an unassign wait for it. A revocation served anywhere else (the
    /// consumer closing, dropped by a failing thread) unassigns at once.
    pub(super) in_poll: AtomicBool,
    pub(super) kafka_metrics: KafkaMetrics,
    /// The consumer's `client.id`, which labels its metrics.
    pub(super) client: String,
}

pub(super) fn partitions(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

/// The valid offsets of a position list.
pub(super) fn positions_of(tpl: &TopicPartitionList) -> Vec<Position> {
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
    /// Counts an error the consumer reported while doing `operation`.
    pub(super) fn count_error(&self, operation: &str, e: &KafkaError) {
        self.kafka_metrics.error(&self.client, operation, e);
    }

    fn push(&self, e: RebalanceEvent) {
        if let Ok(mut events) = self.events.lock() {
            events.push(e);
        }
        self.has_events.store(true, Ordering::Release);
    }
}

impl Worker {
    pub(super) fn handle_rebalance(
        &mut self,
        consumer: &BaseConsumer<StreamConsumerContext>,
    ) -> Result<()> {
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
                        let flushed = self.flush_and_check();
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
                    self.apply_offset_resets(consumer, &parts)?;
                    // The new tasks' stores are restored together, then the tasks start.
                    self.create_tasks(consumer, &ids)?;
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

    /// Moves the newly assigned partitions of sources with their own `auto.offset.reset`
    /// ([`Consumed::with_offset_reset`](crate::stream::Consumed::with_offset_reset)) that
    /// have no committed offset to their policy's start: the consumer's one
    /// `auto.offset.reset` serves the other sources. `Latest` seeks to the end offset read
    /// now rather than to librdkafka's symbolic end, which it resolves later, when records
    /// written meanwhile would be skipped.
    fn apply_offset_resets(
        &mut self,
        consumer: &BaseConsumer<StreamConsumerContext>,
        parts: &[(String, i32)],
    ) -> Result<()> {
        let topology = &self.args.topology;
        let with_policy: Vec<(&String, i32, OffsetReset)> = parts
            .iter()
            .filter_map(|(t, p)| Some((t, *p, topology.offset_reset(&self.app_id, t)?)))
            .collect();
        if with_policy.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for (t, p, _) in &with_policy {
            tpl.add_partition(t, *p);
        }
        let committed = consumer.committed_offsets(tpl, OFFSET_RESET_TIMEOUT)?;
        let mut seek = TopicPartitionList::new();
        for (topic, partition, reset) in with_policy {
            let has_commit = committed
                .find_partition(topic, partition)
                .is_some_and(|e| matches!(e.offset(), rdkafka::Offset::Offset(_)));
            if has_commit {
                continue;
            }
            let offset = match reset {
                OffsetReset::Earliest => rdkafka::Offset::Beginning,
                OffsetReset::Latest => {
                    let (_, high) =
                        consumer.fetch_watermarks(topic, partition, OFFSET_RESET_TIMEOUT)?;
                    rdkafka::Offset::Offset(high)
                }
            };
            tracing::info!(thread = %self.args.name, %topic, partition, ?reset, "no committed offset: starting at the source's offset reset policy");
            seek.add_partition_offset(topic, partition, offset)?;
            self.seeked.insert((topic.clone(), partition));
        }
        if seek.count() == 0 {
            return Ok(());
        }
        for e in consumer
            .seek_partitions(seek, OFFSET_RESET_TIMEOUT)?
            .elements()
        {
            if let Err(err) = e.error() {
                return Err(Error::Internal(format!(
                    "cannot seek {}[{}] to its offset reset policy's start: {err}",
                    e.topic(),
                    e.partition()
                )));
            }
        }
        Ok(())
    }
}
