//! Sliding-window aggregation (Kafka Streams `SlidingWindows` semantics): windows of a fixed
//! time difference `d`, both ends inclusive, whose bounds are defined by the records.
//!
//! Each record at `t` defines its *left* window `[t - d, t]`, and a *right* window
//! `[t + 1, t + 1 + d]` once a later record falls into it. A window's aggregate is recomputed
//! from the key's raw records (kept in a second store, `<store>-records`, with its own
//! changelog) whenever a record inside it arrives, so out-of-order records land in exactly
//! the windows that contain them. Unlike Kafka Streams, windows of records earlier than `d`
//! after the epoch are not clamped to start at 0.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::error::Result;
use crate::processor::{Data, Processor, ProcessorContext, WindowStore};
use crate::record::Change;
use crate::record::Record;
use crate::serde::{Serde, SerdeError, SerdeRef};
use crate::window::{SlidingWindows, Window, Windowed};

use super::aggregate::Fold;
use super::late::LateRecords;

/// The aggregates by window start, and the raw values by record time.
pub(crate) type Stores<K, V, A> = (WindowStore<K, A>, WindowStore<K, Vec<V>>);

pub(crate) struct SlidingAggregate<K, V, A> {
    pub windows: SlidingWindows,
    pub retention_ms: i64,
    pub store_name: String,
    pub records_store_name: String,
    pub fold: Fold<K, V, A>,
    pub late: LateRecords<K, V>,
    pub stores: Option<Stores<K, V, A>>,
    pub next_expiry: i64,
}

impl<K: Data, V: Data, A: Data> Processor<K, V> for SlidingAggregate<K, V, A> {
    type KOut = Windowed<K>;
    type VOut = Change<A>;

    fn init(&mut self, ctx: &mut ProcessorContext<'_, Windowed<K>, Change<A>>) -> Result<()> {
        self.stores = Some((
            ctx.window_store(&self.store_name)?,
            ctx.window_store(&self.records_store_name)?,
        ));
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<A>>,
        record: Record<K, V>,
    ) -> Result<()> {
        if self
            .stores
            .as_ref()
            .expect("initialized")
            .0
            .is_null_key(&record.key)
        {
            return super::aggregate::drop_null_key(ctx);
        }
        let (d, grace) = (self.windows.time_difference_ms, self.windows.grace_ms);
        let stream_time = ctx.stream_time();
        let t = record.timestamp;
        // Kafka Streams' rule: a record is late only when every window it could fall into is
        // closed, the last of them ending at `t + d`; otherwise it lands in the open ones.
        if t + d < stream_time.saturating_sub(grace) {
            return self.late.drop(ctx, &record);
        }
        let (aggs, raw) = self.stores.as_ref().expect("initialized");
        let mut at_t = raw.fetch(&record.key, t)?.unwrap_or_default();
        at_t.push(record.value.clone());
        raw.put(&record.key, t, Some(&at_t))?;

        // Raw records that can share a window with this one.
        let nearby = raw.fetch_range(&record.key, t - 2 * d - 1, t + 2 * d + 1)?;
        let times: Vec<i64> = nearby.iter().map(|(ts, _)| *ts).collect();
        let mut starts = BTreeSet::from([t - d]);
        for &r in &times {
            if r >= t && r <= t + d {
                starts.insert(r - d); // left window of a later record contains t
            }
            if r >= t - d - 1 && r < t {
                starts.insert(r + 1); // right window of an earlier record now holds t
            }
        }
        if times.iter().any(|&r| r > t && r <= t + 1 + d) {
            starts.insert(t + 1);
        }
        // (start, aggregate, old aggregate, largest timestamp in the window)
        let mut updated = Vec::with_capacity(starts.len());
        for s in starts {
            let e = s + d;
            if e < stream_time.saturating_sub(grace) {
                continue; // closed windows never change
            }
            let mut agg: Option<A> = None;
            let mut max_ts = i64::MIN;
            for (ts, values) in nearby.iter().filter(|(ts, _)| *ts >= s && *ts <= e) {
                max_ts = max_ts.max(*ts);
                for v in values {
                    agg = Some((self.fold)(&record.key, v, agg));
                }
            }
            let Some(new) = agg else { continue };
            let old = aggs.fetch(&record.key, s)?;
            aggs.put(&record.key, s, Some(&new))?;
            updated.push((s, new, old, max_ts));
        }
        // Kafka Streams' order: the windows that existed, latest start first, then the new
        // ones: the previous record's right window, this record's left window, its right one.
        let rank = |(s, _, old, _): &(i64, A, Option<A>, i64)| match (old.is_some(), *s) {
            (true, s) => (0, -s),
            (false, s) if s == t - d => (2, 0),
            (false, s) if s == t + 1 => (3, 0),
            (false, s) => (1, s),
        };
        updated.sort_by_key(rank);
        for (s, new, old, max_ts) in updated {
            let windowed = Windowed {
                key: record.key.clone(),
                window: Window::new(s, s + d),
            };
            // Each window carries the largest timestamp of its records, as in Kafka Streams.
            ctx.forward(Record {
                key: windowed,
                value: Change {
                    new: Some(new),
                    old,
                },
                timestamp: max_ts,
                headers: record.headers.clone(),
            })?;
        }
        if stream_time >= self.next_expiry {
            aggs.remove_older_than(stream_time - self.retention_ms)?;
            raw.remove_older_than(stream_time - self.retention_ms - d)?;
            self.next_expiry = stream_time + d.max(60_000);
        }
        Ok(())
    }
}

/// A list of values, each length-prefixed (u32 big-endian), after a u32 count.
pub(crate) struct ListSerde<V>(pub SerdeRef<V>);

impl<V: 'static> Serde<Vec<V>> for ListSerde<V> {
    fn serialize(&self, topic: &str, values: &Vec<V>, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        let count = u32::try_from(values.len())
            .map_err(|_| SerdeError::Encode("more than 2^32 values in a list".into()))?;
        out.extend_from_slice(&count.to_be_bytes());
        // Each value into a cleared buffer of its own, as the `Serde` contract promises.
        let mut buf = Vec::new();
        for v in values {
            buf.clear();
            self.0.serialize(topic, v, &mut buf)?;
            let len = u32::try_from(buf.len())
                .map_err(|_| SerdeError::Encode("value longer than 4 GiB".into()))?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&buf);
        }
        Ok(())
    }

    fn deserialize(&self, topic: &str, data: &[u8]) -> Result<Vec<V>, SerdeError> {
        let short = || SerdeError::Invalid("truncated value list".into());
        let u32_at = |pos: usize| -> Result<usize, SerdeError> {
            let b = data.get(pos..pos + 4).ok_or_else(short)?;
            Ok(u32::from_be_bytes(b.try_into().expect("4 bytes")) as usize)
        };
        let count = u32_at(0)?;
        let mut pos = 4;
        let mut out = Vec::with_capacity(count.min(1024));
        for _ in 0..count {
            let len = u32_at(pos)?;
            pos += 4;
            let item = data.get(pos..pos + len).ok_or_else(short)?;
            out.push(self.0.deserialize(topic, item)?);
            pos += len;
        }
        Ok(out)
    }
}

/// Shares one serde between the aggregate store and the list store.
pub(crate) fn list_serde<V: 'static>(inner: SerdeRef<V>) -> SerdeRef<Vec<V>> {
    Arc::new(ListSerde(inner))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serde::Serdes;

    #[test]
    fn value_lists_round_trip_and_reject_truncation() {
        let s = ListSerde::<String>(Arc::new(Serdes::string()));
        let mut buf = Vec::new();
        let values = vec!["a".to_string(), String::new(), "ccc".to_string()];
        s.serialize("t", &values, &mut buf).unwrap();
        assert_eq!(s.deserialize("t", &buf).unwrap(), values);
        assert!(s.deserialize("t", &buf[..buf.len() - 1]).is_err());
        assert!(s.deserialize("t", &[0, 0]).is_err());
    }
}
