//! A task's input buffers: one queue of polled records per source partition, and the choice
//! of the next record to process by lowest timestamp across them (Kafka Streams'
//! `PartitionGroup` / `RecordQueue`).

use std::collections::VecDeque;
use std::time::Instant;

use crate::config::TaskIdle;
use crate::record::Headers;

/// A polled record waiting in its partition's queue: an owned copy of the Kafka record, with
/// the timestamp it is ordered by (extracted when it was buffered).
#[derive(Debug)]
pub(crate) struct BufferedRecord {
    pub offset: i64,
    /// The timestamp the record is ordered by (the source's extractor applied when it has
    /// one; the Kafka timestamp otherwise, also for records that cannot be deserialized).
    pub order_ts: i64,
    /// The Kafka record timestamp.
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Headers,
}

/// What is known about the records of an empty partition that are still on the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lag {
    /// The broker has records the consumer has not delivered yet.
    Pending,
    /// Everything the broker had was delivered.
    Zero,
}

/// Per-source record queues of one task. The source index is the task's.
#[derive(Debug)]
pub(crate) struct PartitionGroup {
    queues: Vec<VecDeque<BufferedRecord>>,
    /// Per source: since when it has been empty with zero lag (the idle deadline's start).
    idle_since: Vec<Option<Instant>>,
    /// Records buffered across the queues.
    buffered: usize,
}

impl PartitionGroup {
    pub fn new(sources: usize) -> Self {
        PartitionGroup {
            queues: (0..sources).map(|_| VecDeque::new()).collect(),
            idle_since: vec![None; sources],
            buffered: 0,
        }
    }

    /// Number of sources.
    pub fn sources(&self) -> usize {
        self.queues.len()
    }

    /// Records buffered for `source`.
    pub fn len(&self, source: usize) -> usize {
        self.queues[source].len()
    }

    /// Offset of the first buffered record of `source`.
    pub fn head_offset(&self, source: usize) -> Option<i64> {
        self.queues[source].front().map(|r| r.offset)
    }

    /// Whether no record is buffered.
    pub fn is_empty(&self) -> bool {
        self.buffered == 0
    }

    pub fn push(&mut self, source: usize, record: BufferedRecord) {
        self.queues[source].push_back(record);
        self.idle_since[source] = None;
        self.buffered += 1;
    }

    /// The next record to process, if the task may process now: the head with the lowest
    /// timestamp (ties: the lower source index). With an empty partition, whether the task
    /// processes depends on `idle` and on that partition's `lag(source)`, as in Kafka Streams
    /// 3.x: data known to be on the broker, or an unknown end, is always waited for (unless
    /// `TaskIdle::Never`); a caught-up partition is waited for up to `TaskIdle::Wait`.
    pub fn next(
        &mut self,
        idle: TaskIdle,
        now: Instant,
        mut lag: impl FnMut(usize) -> Lag,
    ) -> Option<(usize, BufferedRecord)> {
        if self.buffered == 0 {
            return None;
        }
        if idle != TaskIdle::Never {
            for source in 0..self.queues.len() {
                if !self.queues[source].is_empty() {
                    continue;
                }
                match lag(source) {
                    Lag::Pending => {
                        self.idle_since[source] = None;
                        return None;
                    }
                    Lag::Zero => {
                        let since = *self.idle_since[source].get_or_insert(now);
                        if let TaskIdle::Wait(d) = idle
                            && now < since + d
                        {
                            return None;
                        }
                    }
                }
            }
        }
        let source = self
            .queues
            .iter()
            .enumerate()
            .filter_map(|(i, q)| q.front().map(|r| (r.order_ts, i)))
            .min()?
            .1;
        let record = self.queues[source].pop_front()?;
        self.buffered -= 1;
        Some((source, record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rec(offset: i64, ts: i64) -> BufferedRecord {
        BufferedRecord {
            offset,
            order_ts: ts,
            timestamp: ts,
            key: None,
            value: None,
            headers: Headers::new(),
        }
    }

    fn drain(g: &mut PartitionGroup, idle: TaskIdle, now: Instant) -> Vec<(usize, i64)> {
        let mut out = Vec::new();
        while let Some((s, r)) = g.next(idle, now, |_| Lag::Zero) {
            out.push((s, r.offset));
        }
        out
    }

    #[test]
    fn lowest_head_timestamp_first_ties_by_source() {
        let mut g = PartitionGroup::new(3);
        for (o, ts) in [(0, 50), (1, 60), (2, 10)] {
            g.push(0, rec(o, ts));
        }
        for (o, ts) in [(0, 20), (1, 55), (2, 70)] {
            g.push(1, rec(o, ts));
        }
        g.push(2, rec(0, 20));
        let order = drain(&mut g, TaskIdle::FetchedOnly, Instant::now());
        // Heads compete, not whole queues: source 0's record at ts 10 waits behind its 50, 60
        // (a partition's own order is never changed).
        assert_eq!(
            order,
            vec![(1, 0), (2, 0), (0, 0), (1, 1), (0, 1), (0, 2), (1, 2)]
        );
        assert!(g.is_empty());
    }

    #[test]
    fn empty_partition_with_pending_records_blocks() {
        let now = Instant::now();
        let mut g = PartitionGroup::new(2);
        g.push(0, rec(0, 100));
        assert!(
            g.next(TaskIdle::FetchedOnly, now, |_| Lag::Pending)
                .is_none()
        );
        assert!(
            g.next(TaskIdle::Wait(Duration::from_secs(1)), now, |_| {
                Lag::Pending
            })
            .is_none()
        );
        // -1: never waits.
        let (s, r) = g.next(TaskIdle::Never, now, |_| Lag::Pending).unwrap();
        assert_eq!((s, r.offset), (0, 0));
        assert!(g.next(TaskIdle::Never, now, |_| Lag::Pending).is_none());
    }

    #[test]
    fn caught_up_partition_is_waited_for_up_to_the_idle_time() {
        let start = Instant::now();
        let mut g = PartitionGroup::new(2);
        g.push(1, rec(0, 100));
        // Default: a caught-up empty partition does not hold the task back.
        let mut d = PartitionGroup::new(2);
        d.push(1, rec(0, 100));
        assert!(
            d.next(TaskIdle::FetchedOnly, start, |_| Lag::Zero)
                .is_some()
        );

        let idle = TaskIdle::Wait(Duration::from_millis(50));
        assert!(g.next(idle, start, |_| Lag::Zero).is_none());
        assert!(
            g.next(idle, start + Duration::from_millis(49), |_| Lag::Zero)
                .is_none()
        );
        // Pending data resets the deadline.
        assert!(
            g.next(idle, start + Duration::from_millis(60), |_| Lag::Pending)
                .is_none()
        );
        let later = start + Duration::from_millis(70);
        assert!(g.next(idle, later, |_| Lag::Zero).is_none());
        let r = g.next(idle, later + Duration::from_millis(50), |_| Lag::Zero);
        assert_eq!(r.map(|(s, r)| (s, r.offset)), Some((1, 0)));
    }
}
