//! Commits: at-least-once (flush, then commit the stored offsets) and exactly-once (send the
//! positions into the transaction and commit it; abort and reset on failure).

#[allow(clippy::wildcard_imports)]
use super::*;

/// Bound on each transactional call (init, send offsets, commit, abort).
pub(super) const TXN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an at-least-once commit waits for its output to be acknowledged before it is
/// postponed (see `Worker::flushed_or_postponed`).
pub(super) const COMMIT_FLUSH_WAIT: Duration = Duration::from_secs(10);
/// Attempts of a transaction commit that fails with a retriable error.
pub(super) const TXN_RETRIES: u32 = 5;

/// Commits explicit offsets, with the same tolerance of rebalances as [`commit`].
pub(super) fn commit_offsets(
    consumer: &BaseConsumer<StreamConsumerContext>,
    offsets: &TopicPartitionList,
) -> Result<()> {
    if offsets.count() == 0 {
        return Ok(());
    }
    let committed = consumer.commit(offsets, CommitMode::Sync);
    if let Err(e) = &committed {
        consumer.context().count_error(OPERATION_COMMIT, e);
    }
    match committed {
        Err(KafkaError::ConsumerCommit(code)) if is_rebalancing(code) => {
            tracing::info!(%code, "commit deferred: the group is rebalancing");
            Ok(())
        }
        r => r.map_err(Into::into),
    }
}

/// Errors of a commit refused because the group is moving partitions. `AssignmentLost`: the
/// member was expelled (its session expired, e.g. through a broker outage longer than the
/// session timeout) and librdkafka revokes its partitions as lost; committing them is no
/// longer this member's to do (Kafka Streams closes such tasks without a commit) and their
/// records since the last commit are processed again.
pub(super) fn is_rebalancing(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::RebalanceInProgress
            | C::AssignmentLost
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
pub(super) enum TxnFailure {
    /// Try the call again.
    Retry(KafkaError),
    /// Abort the transaction and reset the tasks to their last committed state.
    Abort(String),
    /// Stop the thread.
    Fatal(Error),
}

pub(super) fn classify_txn_error(e: KafkaError, transactional_id: &str) -> TxnFailure {
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
pub(super) fn commit(consumer: &BaseConsumer<StreamConsumerContext>) -> Result<()> {
    let committed = consumer.commit_consumer_state(CommitMode::Sync);
    match &committed {
        Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => consumer.context().count_error(OPERATION_COMMIT, e),
    }
    match committed {
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
pub(super) fn is_unreachable(code: RDKafkaErrorCode) -> bool {
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

/// The transaction timeout of a stream thread's producer: how long the coordinator lets a
/// transaction stay open before aborting it. It is also how long a crashed thread's open
/// transaction holds back `read_committed` readers of its output, changelogs and repartition
/// topics — its successor's restore and processing included, since the crashed producer's
/// transactional id is never reused to fence it. So Kafka Streams' 10 s rather than
/// librdkafka's 60 s; longer when the commit interval keeps transactions open longer, and
/// within the broker's default `transaction.max.timeout.ms` (15 min).
pub(super) fn transaction_timeout(commit_interval: Duration) -> Duration {
    (commit_interval + Duration::from_secs(10))
        .clamp(Duration::from_secs(10), Duration::from_secs(900))
}

impl Worker {
    /// Output first, then offsets. `external`: whether sinks that commit outside Kafka commit
    /// too (not after a processing error, which may have left a record half applied).
    pub(super) fn commit(
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
            if !self.flushed_or_postponed()? {
                // Retried at the next interval; offsets stay uncommitted meanwhile.
                self.last_commit = Instant::now();
                return Ok(());
            }
            self.flush_and_check()?;
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
        if let Some(purger) = &mut self.purger {
            purger.maybe_purge(consumer);
        }
        self.args
            .metrics
            .commit_latency
            .with_label_values(&[&self.args.name])
            .observe(started.elapsed().as_secs_f64());
        self.rate.tick();
        Ok(())
    }

    /// At-least-once: waits up to [`COMMIT_FLUSH_WAIT`] for the output to be acknowledged.
    /// `false`: not yet, and the broker has been unreachable for less than the
    /// [`task_timeout`](crate::config::StreamsConfig::task_timeout), so the commit is
    /// postponed; once output has gone unacknowledged that long, the error.
    fn flushed_or_postponed(&mut self) -> Result<bool> {
        let task_timeout = self.args.config.task_timeout;
        match self.producer.flush(COMMIT_FLUSH_WAIT.min(task_timeout)) {
            Ok(()) => {
                if let Some(since) = self.unacknowledged_since.take() {
                    tracing::info!(thread = %self.args.name, after = ?since.elapsed(), "output acknowledged again; committing");
                }
                Ok(true)
            }
            Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut)) => {
                let since = *self.unacknowledged_since.get_or_insert_with(Instant::now);
                let waited = since.elapsed() + COMMIT_FLUSH_WAIT.min(task_timeout);
                if waited >= task_timeout {
                    return Err(Error::Timeout(format!(
                        "output not acknowledged by the broker for {waited:?}, past the task \
                         timeout ({task_timeout:?}, StreamsConfig::task_timeout): is the cluster \
                         reachable?"
                    )));
                }
                tracing::warn!(thread = %self.args.name, unacknowledged_for = ?waited, ?task_timeout,
                    "commit postponed: the broker has not acknowledged the output (unreachable?)");
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Exactly-once commit: flushes the tasks (and `closed`, tasks already taken out of the
    /// thread), sends the consumed positions (plus `extra` ones) into the open transaction,
    /// commits it and begins the next. Returns whether it committed; `false` means the
    /// transaction was aborted and the thread's tasks were reset to the last commit.
    pub(super) fn commit_transaction(
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

    pub(super) fn try_commit_transaction(
        &self,
        consumer: &BaseConsumer<StreamConsumerContext>,
        offsets: &TopicPartitionList,
    ) -> std::result::Result<(), TxnFailure> {
        let id = self.transactional_id.as_deref().unwrap_or_default();
        let failed = |e: KafkaError| {
            self.args.metrics.kafka.error(
                &self.producer.context().client,
                OPERATION_TRANSACTION,
                &e,
            );
            classify_txn_error(e, id)
        };
        self.producer.flush(FLUSH_TIMEOUT).map_err(failed)?;
        if let Err(e) = self.producer.context().check() {
            return Err(TxnFailure::Abort(e.to_string()));
        }
        if offsets.count() > 0 {
            let metadata = consumer.group_metadata().ok_or_else(|| {
                TxnFailure::Abort("the consumer has no group metadata (not in a group)".into())
            })?;
            self.producer
                .send_offsets_to_transaction(offsets, &metadata, TXN_TIMEOUT)
                .map_err(failed)?;
        }
        self.producer
            .commit_transaction(TXN_TIMEOUT)
            .map_err(failed)
    }

    /// Aborts the open transaction, drops every task without committing anything, and
    /// rebuilds the tasks of the current assignment from their changelogs (no checkpoint, so
    /// from scratch), with the consumer rewound to the committed offsets.
    pub(super) fn abort_and_reset(
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
        self.create_tasks(consumer, &ids)?;
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
}
