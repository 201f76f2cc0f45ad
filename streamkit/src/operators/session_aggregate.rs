//! Session-window aggregation: a record within the inactivity gap of existing sessions
//! extends them, or merges them when it bridges several.

use crate::error::Result;
use crate::processor::{Data, Processor, ProcessorContext, SessionStore};
use crate::record::Change;
use crate::record::Record;
use crate::window::{SessionWindows, Window, Windowed};

use std::sync::Arc;

use super::aggregate::Fold;
use super::late::LateRecords;

/// Combines two session aggregates when a record bridges their sessions.
pub(crate) type Merger<K, A> = Arc<dyn Fn(&K, A, A) -> A + Send + Sync>;

pub(crate) struct SessionAggregate<K, V, A> {
    pub windows: SessionWindows,
    pub store_name: String,
    pub fold: Fold<K, V, A>,
    pub late: LateRecords<K, V>,
    pub merger: Merger<K, A>,
    pub store: Option<SessionStore<K, A>>,
    /// Sessions that ended longer ago than this (in stream time) are removed.
    pub retention_ms: i64,
    pub next_expiry: i64,
}

impl<K: Data, V: Data, A: Data> Processor<K, V> for SessionAggregate<K, V, A> {
    type KOut = Windowed<K>;
    type VOut = Change<A>;

    fn init(&mut self, ctx: &mut ProcessorContext<'_, Windowed<K>, Change<A>>) -> Result<()> {
        self.store = Some(ctx.session_store(&self.store_name)?);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<A>>,
        record: Record<K, V>,
    ) -> Result<()> {
        let store = self.store.as_ref().expect("initialized");
        if store.is_null_key(&record.key) {
            return super::aggregate::drop_null_key(ctx);
        }
        let ts = record.timestamp;
        let gap = self.windows.gap_ms;
        // As in Kafka Streams, a session stays open until stream time passes its end plus the
        // gap plus grace: until then a record may still extend it. A closed session is out of
        // reach (Kafka Streams' store no longer returns it), so a record near it starts anew.
        let close_time = ctx
            .stream_time()
            .saturating_sub(self.windows.grace_ms)
            .saturating_sub(gap);
        let mut overlapping = store.find_sessions(&record.key, ts - gap, ts + gap)?;
        if ctx.stream_time() != i64::MIN {
            overlapping.retain(|(w, _)| w.end > close_time);
        }
        let mut merged = Window::new(ts, ts);
        for (w, _) in &overlapping {
            merged = Window::new(merged.start.min(w.start), merged.end.max(w.end));
        }
        if ctx.stream_time() != i64::MIN && merged.end < close_time {
            return self.late.drop(ctx, &record);
        }
        // Kafka Streams' order: a record that changes a session's bounds deletes every session
        // it touches (the one keeping its bounds included) and then writes the merged one; a
        // record inside an existing session of its own instant just updates it. Each change
        // carries the end of its window as its timestamp.
        let replaces = merged != Window::new(ts, ts);
        let mut agg: Option<A> = None;
        let mut old_of_merged = None;
        for (w, a) in overlapping {
            agg = Some(match agg {
                None => a.clone(),
                Some(x) => (self.merger)(&record.key, x, a.clone()),
            });
            if !replaces {
                old_of_merged = Some(a);
            } else {
                store.put(&record.key, w, None)?;
                let gone = Windowed {
                    key: record.key.clone(),
                    window: w,
                };
                ctx.forward(
                    Record::new(
                        gone,
                        Change {
                            new: None,
                            old: Some(a),
                        },
                        w.end,
                    )
                    .with_headers(record.headers.clone()),
                )?;
            }
        }
        let new = (self.fold)(&record.key, &record.value, agg);
        store.put(&record.key, merged, Some(&new))?;
        let stream_time = ctx.stream_time();
        if stream_time >= self.next_expiry {
            store.remove_ended_before(stream_time - self.retention_ms)?;
            self.next_expiry = stream_time + self.windows.gap_ms.max(60_000);
        }
        let Record { key, headers, .. } = record;
        let windowed = Windowed {
            key,
            window: merged,
        };
        ctx.forward(Record {
            key: windowed,
            value: Change {
                new: Some(new),
                old: old_of_merged,
            },
            timestamp: merged.end,
            headers,
        })
    }
}
