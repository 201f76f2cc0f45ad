//! `suppress(until_window_closes)` after session and sliding aggregations: the latest value of
//! each window waits in a changelogged buffer store until stream time closes the window, then
//! goes downstream once. (Tumbling and hopping aggregations emit final results themselves.)
//! With `close_when_idle`, stream time follows the wall clock while no record arrives.

use std::time::Duration;

use crate::error::Result;
use crate::processor::{
    Data, KeyValueStore, Processor, ProcessorContext, Punctuation, PunctuationType,
};
use crate::record::Change;
use crate::record::Record;
use crate::serde::SerdeRef;
use crate::state::codec;
use crate::window::{Window, Windowed};

/// What the buffer needs to know about the windows it holds.
pub(crate) struct SuppressSpec<K, V> {
    pub key_serde: SerdeRef<K>,
    pub value_serde: SerdeRef<V>,
    /// A window leaves the buffer once stream time reaches `end + grace_ms` (Kafka Streams'
    /// suppression buffer evicts a window whose end is at most stream time minus grace, for
    /// every kind of window).
    pub grace_ms: i64,
    /// `close_when_idle`: after this much wall-clock quiet, stream time counts as advancing
    /// with the wall clock.
    pub idle_close: Option<Duration>,
}

impl<K, V> Clone for SuppressSpec<K, V> {
    fn clone(&self) -> Self {
        SuppressSpec {
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
            grace_ms: self.grace_ms,
            idle_close: self.idle_close,
        }
    }
}

pub(crate) struct SuppressUntilClose<K, V> {
    pub spec: SuppressSpec<K, V>,
    pub store_name: String,
    pub buffer: Option<KeyValueStore<Vec<u8>, Vec<u8>>>,
    /// The largest window end emitted early by idleness; persisted in the buffer under the
    /// empty key (which sorts first and is never a window). A later update of such a window
    /// is dropped: its final result is out.
    pub emitted_until: i64,
    pub last_record_wall: i64,
}

/// The buffer key of `emitted_until`.
const EMITTED_UNTIL: &[u8] = &[];

impl<K: Data, V: Data> SuppressUntilClose<K, V> {
    /// Buffer keys sort by window end, then key bytes, then start (Kafka Streams' buffer
    /// order: time, then the serialized windowed key): closed windows come first.
    fn buffer_key(&self, key: &Windowed<K>) -> Result<Vec<u8>> {
        let mut kb = Vec::new();
        self.spec.key_serde.serialize("", &key.key, &mut kb)?;
        let mut out = Vec::with_capacity(16 + kb.len());
        out.extend_from_slice(&codec::time(key.window.end));
        out.extend_from_slice(&kb);
        out.extend_from_slice(&codec::time(key.window.start));
        Ok(out)
    }

    /// Emits every buffered window whose end is at most `last_closed`.
    fn emit_closed(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<V>>,
        last_closed: i64,
    ) -> Result<()> {
        let buffer = self.buffer.as_ref().expect("initialized");
        // Every key whose 8-byte end prefix is at most `last_closed` sorts below this bound.
        let bound = codec::time(last_closed.saturating_add(1)).to_vec();
        for (k, v) in buffer.range(&Vec::new(), &bound)? {
            if k.len() < 16 || k[..8] == bound[..] {
                continue;
            }
            let end = codec::read_time(&k[..8]);
            let start = codec::read_time(&k[k.len() - 8..]);
            let key = self.spec.key_serde.deserialize("", &k[8..k.len() - 8])?;
            if v.len() < 8 {
                return Err(crate::error::Error::Internal(
                    "corrupt value in a suppression buffer".into(),
                ));
            }
            let timestamp = codec::read_time(&v[..8]);
            let value = self.spec.value_serde.deserialize("", &v[8..])?;
            buffer.delete(&k)?;
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
                timestamp,
            ))?;
        }
        Ok(())
    }
}

impl<K: Data, V: Data> Processor<Windowed<K>, Change<V>> for SuppressUntilClose<K, V> {
    type KOut = Windowed<K>;
    type VOut = Change<V>;

    fn init(&mut self, ctx: &mut ProcessorContext<'_, Windowed<K>, Change<V>>) -> Result<()> {
        let buffer: KeyValueStore<Vec<u8>, Vec<u8>> = ctx.key_value_store(&self.store_name)?;
        self.emitted_until = match buffer.get(&EMITTED_UNTIL.to_vec())? {
            Some(v) if v.len() == 8 => codec::read_time(&v),
            _ => i64::MIN,
        };
        self.buffer = Some(buffer);
        self.last_record_wall = ctx.wall_clock_time();
        if let Some(idle) = self.spec.idle_close {
            ctx.schedule(
                (idle / 4).max(Duration::from_millis(10)),
                PunctuationType::WallClockTime,
            );
        }
        Ok(())
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<V>>,
        p: Punctuation,
    ) -> Result<()> {
        let (Some(idle), PunctuationType::WallClockTime) = (self.spec.idle_close, p.kind) else {
            return Ok(());
        };
        let quiet = p.timestamp - self.last_record_wall;
        let stream_time = ctx.stream_time();
        if stream_time == i64::MIN || quiet < idle.as_millis() as i64 {
            return Ok(());
        }
        // The feed is idle: let stream time follow the wall clock for closing purposes.
        let last_closed = stream_time.saturating_add(quiet) - self.spec.grace_ms;
        if last_closed > self.emitted_until {
            self.emitted_until = last_closed;
            let buffer = self.buffer.as_ref().expect("initialized");
            buffer.put(&EMITTED_UNTIL.to_vec(), &codec::time(last_closed).to_vec())?;
        }
        self.emit_closed(ctx, last_closed)
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<V>>,
        record: Record<Windowed<K>, Change<V>>,
    ) -> Result<()> {
        self.last_record_wall = ctx.wall_clock_time();
        if record.key.window.end <= self.emitted_until {
            // Closed by idleness and emitted: its final result is out.
            return Ok(());
        }
        let bk = self.buffer_key(&record.key)?;
        let buffer = self.buffer.as_ref().expect("initialized");
        match &record.value.new {
            Some(v) => {
                // The update's timestamp, then the value: a final result keeps the timestamp
                // of the window's last update, as in Kafka Streams.
                let mut vb = codec::time(record.timestamp).to_vec();
                self.spec.value_serde.serialize("", v, &mut vb)?;
                buffer.put(&bk, &vb)?;
            }
            // A session merged into another: it will never close on its own.
            None => buffer.delete(&bk)?,
        }
        let stream_time = ctx.stream_time();
        if stream_time == i64::MIN {
            return Ok(());
        }
        self.emit_closed(ctx, stream_time - self.spec.grace_ms)
    }
}
