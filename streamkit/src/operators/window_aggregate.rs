//! Windowed aggregation over tumbling and hopping windows, with grace, late-record handling,
//! and emit-final (on window close, or on wall-clock idleness).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::Result;
use crate::processor::{
    Data, KeyValueStore, Processor, ProcessorContext, Punctuation, PunctuationType, WindowStore,
};
use crate::record::Change;
use crate::record::Record;
use crate::serde::SerdeRef;
use crate::window::{TimeWindows, Window, Windowed};

use super::aggregate::Fold;
use super::late::LateRecords;

/// How a windowed aggregation emits: on every update, or once per window when it closes.
#[derive(Debug, Clone, Default)]
pub(crate) struct EmitConfig {
    pub final_only: bool,
    pub idle_close: Option<Duration>,
    /// The store keeping how far final results were emitted.
    pub marker_store: Option<String>,
}

pub(crate) struct WindowAggregate<K, V, A> {
    pub windows: TimeWindows,
    pub retention_ms: i64,
    pub store_name: String,
    pub fold: Fold<K, V, A>,
    pub emit: Arc<Mutex<EmitConfig>>,
    pub key_serde: SerdeRef<K>,
    pub late: LateRecords<K, V>,
    pub state: Option<State<K, A>>,
    /// Scratch buffer for the current record's key bytes.
    pub key_buf: Vec<u8>,
}

pub(crate) struct State<K, A> {
    store: WindowStore<K, A>,
    config: EmitConfig,
    /// Emit-final bookkeeping: how far results were emitted, persisted in `marker`.
    marker: Option<KeyValueStore<i32, i64>>,
    emitted_until: i64,
    /// Windows not yet emitted, ordered by (end, start, key bytes).
    pending: BTreeSet<(i64, i64, Vec<u8>)>,
    next_expiry: i64,
    last_record_wall: i64,
}

impl<K: Data, V: Data, A: Data> WindowAggregate<K, V, A> {
    fn key_bytes(&self, key: &K) -> Result<Vec<u8>> {
        let mut b = Vec::new();
        self.key_serde.serialize("", key, &mut b)?;
        Ok(b)
    }

    /// Emits, in window-end order, every pending window that is closed at `close_time`.
    fn emit_closed(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<A>>,
        close_time: i64,
    ) -> Result<()> {
        let state = self.state.as_mut().expect("initialized");
        if close_time <= state.emitted_until {
            return Ok(());
        }
        while let Some(first) = state.pending.first() {
            if first.0 > close_time {
                break;
            }
            let (end, start, kb) = state.pending.pop_first().expect("non-empty");
            let key = self.key_serde.deserialize("", &kb)?;
            if let Some(value) = state.store.fetch(&key, start)? {
                let windowed = Windowed {
                    key,
                    window: Window::new(start, end),
                };
                ctx.forward(Record::new(
                    windowed,
                    Change {
                        new: Some(value),
                        old: None,
                    },
                    end - 1,
                ))?;
            }
        }
        state.emitted_until = close_time;
        if let Some(m) = &state.marker {
            m.put(&0, &close_time)?;
        }
        Ok(())
    }

    fn expire(&mut self, stream_time: i64) -> Result<()> {
        let state = self.state.as_mut().expect("initialized");
        if stream_time >= state.next_expiry {
            state
                .store
                .remove_older_than(stream_time - self.retention_ms)?;
            state.next_expiry = stream_time + self.windows.size_ms.max(60_000);
        }
        Ok(())
    }
}

impl<K: Data, V: Data, A: Data> Processor<K, V> for WindowAggregate<K, V, A> {
    type KOut = Windowed<K>;
    type VOut = Change<A>;

    fn init(&mut self, ctx: &mut ProcessorContext<'_, Windowed<K>, Change<A>>) -> Result<()> {
        let config = self.emit.lock().expect("emit config").clone();
        let store: WindowStore<K, A> = ctx.window_store(&self.store_name)?;
        let mut state = State {
            store,
            marker: None,
            emitted_until: i64::MIN,
            pending: BTreeSet::new(),
            next_expiry: i64::MIN,
            last_record_wall: ctx.wall_clock_time(),
            config,
        };
        if state.config.final_only {
            let marker: KeyValueStore<i32, i64> = ctx.key_value_store(
                state
                    .config
                    .marker_store
                    .as_deref()
                    .expect("suppress names the marker"),
            )?;
            state.emitted_until = marker.get(&0)?.unwrap_or(i64::MIN);
            // Rebuild the emission queue from the (restored) store.
            for (key, start, _) in state.store.all()? {
                let end = start + self.windows.size_ms;
                if end > state.emitted_until {
                    state.pending.insert((end, start, self.key_bytes(&key)?));
                }
            }
            state.marker = Some(marker);
            if let Some(idle) = state.config.idle_close {
                ctx.schedule(
                    (idle / 4).max(Duration::from_millis(10)),
                    PunctuationType::WallClockTime,
                );
            }
        }
        self.state = Some(state);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<A>>,
        record: Record<K, V>,
    ) -> Result<()> {
        if self.key_serde.is_null(&record.key) {
            return super::aggregate::drop_null_key(ctx);
        }
        let stream_time = ctx.stream_time();
        let grace = self.windows.grace_ms;
        let state = self.state.as_mut().expect("initialized");
        state.last_record_wall = ctx.wall_clock_time();
        // A window is closed once stream time passes its end plus grace, or once its final
        // result was emitted (which idleness may do early).
        let close_time = (stream_time - grace).max(state.emitted_until);
        let windows = self.windows;
        let mut windows = windows
            .windows_iter(record.timestamp)
            .filter(|w| w.end > close_time)
            .peekable();
        if windows.peek().is_none() {
            return self.late.drop(ctx, &record);
        }
        let final_only = state.config.final_only;
        if final_only {
            self.key_buf.clear();
            self.key_serde
                .serialize("", &record.key, &mut self.key_buf)?;
        }
        // Emitting every update: to children, if there are any.
        let forward = !final_only && ctx.has_children();
        let state = self.state.as_mut().expect("initialized");
        for w in windows {
            let old = state.store.fetch(&record.key, w.start)?;
            let old_for_change = if forward { old.clone() } else { None };
            let new = (self.fold)(&record.key, &record.value, old);
            state.store.put(&record.key, w.start, Some(&new))?;
            if final_only {
                // Most updates are of a window already waiting: no copy of the key then.
                let probe = (w.end, w.start, std::mem::take(&mut self.key_buf));
                if !state.pending.contains(&probe) {
                    state.pending.insert(probe.clone());
                }
                self.key_buf = probe.2;
            } else if forward {
                let windowed = Windowed {
                    key: record.key.clone(),
                    window: w,
                };
                let change = Change {
                    new: Some(new),
                    old: old_for_change,
                };
                ctx.forward(Record {
                    key: windowed,
                    value: change,
                    timestamp: record.timestamp,
                    headers: record.headers.clone(),
                })?;
            }
        }
        if final_only {
            self.emit_closed(ctx, stream_time - grace)?;
        }
        self.expire(stream_time)
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<A>>,
        p: Punctuation,
    ) -> Result<()> {
        let state = self.state.as_ref().expect("initialized");
        let (Some(idle), true) = (
            state.config.idle_close,
            p.kind == PunctuationType::WallClockTime,
        ) else {
            return Ok(());
        };
        let quiet = p.timestamp - state.last_record_wall;
        let stream_time = ctx.stream_time();
        if stream_time == i64::MIN || quiet < idle.as_millis() as i64 {
            return Ok(());
        }
        // The feed is idle: let stream time follow the wall clock for closing purposes.
        self.emit_closed(ctx, stream_time + quiet - self.windows.grace_ms)
    }
}
