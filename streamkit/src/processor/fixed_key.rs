//! Processors that cannot change the key ([`FixedKeyProcessor`], Kafka Streams' KIP-820),
//! run by [`KStream::process_values`](crate::stream::KStream::process_values).

use std::time::Duration;

use crate::error::Result;
use crate::processor::{
    Data, KeyValueStore, Processor, ProcessorContext, Punctuation, PunctuationType, PunctuatorId,
    SessionStore, WindowStore,
};
use crate::record::{Headers, Record, RecordMetadata, TaskId};

/// A record whose key cannot be changed: a [`FixedKeyProcessor`] receives one and forwards
/// it, or a new value, timestamp or headers on it; it cannot make one with another key.
#[derive(Debug, Clone, PartialEq)]
pub struct FixedKeyRecord<K, V> {
    record: Record<K, V>,
}

impl<K, V> FixedKeyRecord<K, V> {
    /// The key (read only).
    pub fn key(&self) -> &K {
        &self.record.key
    }

    /// The value.
    pub fn value(&self) -> &V {
        &self.record.value
    }

    /// Event time in milliseconds since the Unix epoch.
    pub fn timestamp(&self) -> i64 {
        self.record.timestamp
    }

    /// The headers.
    pub fn headers(&self) -> &Headers {
        &self.record.headers
    }

    /// The record with another value, same key.
    pub fn with_value<V2>(self, value: V2) -> FixedKeyRecord<K, V2> {
        FixedKeyRecord {
            record: self.record.with_value(value),
        }
    }

    /// The record with another timestamp.
    pub fn with_timestamp(self, timestamp: i64) -> Self {
        FixedKeyRecord {
            record: self.record.with_timestamp(timestamp),
        }
    }

    /// The record with other headers.
    pub fn with_headers(self, headers: Headers) -> Self {
        FixedKeyRecord {
            record: self.record.with_headers(headers),
        }
    }

    /// The value, consuming the record.
    pub fn into_value(self) -> V {
        self.record.value
    }
}

/// A custom operator that keeps each record's key: like [`Processor`], but it forwards
/// [`FixedKeyRecord`]s, so a stream after it needs no repartition before grouping or
/// joining. Run with [`KStream::process_values`](crate::stream::KStream::process_values).
pub trait FixedKeyProcessor<K, VIn>: 'static {
    /// Value type of the records this processor forwards.
    type VOut: Data;

    /// Called once when the task starts, before any record.
    fn init(&mut self, _ctx: &mut FixedKeyProcessorContext<'_, K, Self::VOut>) -> Result<()> {
        Ok(())
    }

    /// Called for each input record.
    fn process(
        &mut self,
        ctx: &mut FixedKeyProcessorContext<'_, K, Self::VOut>,
        record: FixedKeyRecord<K, VIn>,
    ) -> Result<()>;

    /// Called when a punctuator scheduled with [`FixedKeyProcessorContext::schedule`] fires.
    fn punctuate(
        &mut self,
        _ctx: &mut FixedKeyProcessorContext<'_, K, Self::VOut>,
        _punctuation: Punctuation,
    ) -> Result<()> {
        Ok(())
    }

    /// Called once when the task closes.
    fn close(&mut self, _ctx: &mut FixedKeyProcessorContext<'_, K, Self::VOut>) -> Result<()> {
        Ok(())
    }
}

/// What a [`FixedKeyProcessor`] can do: the [`ProcessorContext`] methods, with forwarding
/// limited to [`FixedKeyRecord`]s.
pub struct FixedKeyProcessorContext<'a, K, V> {
    ctx: ProcessorContext<'a, K, V>,
}

impl<K: Data, V: Data> FixedKeyProcessorContext<'_, K, V> {
    /// Sends a record to every child.
    pub fn forward(&mut self, record: FixedKeyRecord<K, V>) -> Result<()> {
        self.ctx.forward(record.record)
    }

    /// Sends a record to the child node called `child` only.
    pub fn forward_to(&mut self, child: &str, record: FixedKeyRecord<K, V>) -> Result<()> {
        self.ctx.forward_to(child, record.record)
    }

    /// See [`ProcessorContext::key_value_store`].
    pub fn key_value_store<SK: Data, SV: Data>(&self, name: &str) -> Result<KeyValueStore<SK, SV>> {
        self.ctx.key_value_store(name)
    }

    /// See [`ProcessorContext::window_store`].
    pub fn window_store<SK: Data, SV: Data>(&self, name: &str) -> Result<WindowStore<SK, SV>> {
        self.ctx.window_store(name)
    }

    /// See [`ProcessorContext::session_store`].
    pub fn session_store<SK: Data, SV: Data>(&self, name: &str) -> Result<SessionStore<SK, SV>> {
        self.ctx.session_store(name)
    }
}

impl<K, V> FixedKeyProcessorContext<'_, K, V> {
    /// See [`ProcessorContext::record_metadata`].
    pub fn record_metadata(&self) -> Option<&RecordMetadata> {
        self.ctx.record_metadata()
    }

    /// The application id.
    pub fn application_id(&self) -> &str {
        self.ctx.application_id()
    }

    /// The task this processor instance belongs to.
    pub fn task_id(&self) -> TaskId {
        self.ctx.task_id()
    }

    /// See [`ProcessorContext::stream_time`].
    pub fn stream_time(&self) -> i64 {
        self.ctx.stream_time()
    }

    /// See [`ProcessorContext::wall_clock_time`].
    pub fn wall_clock_time(&self) -> i64 {
        self.ctx.wall_clock_time()
    }

    /// See [`ProcessorContext::schedule`].
    pub fn schedule(&mut self, interval: Duration, kind: PunctuationType) -> PunctuatorId {
        self.ctx.schedule(interval, kind)
    }

    /// Stops a punctuator.
    pub fn cancel(&mut self, id: PunctuatorId) {
        self.ctx.cancel(id)
    }

    /// Counts a record dropped for `reason` (see [`crate::metrics::names`]).
    pub fn record_dropped(&self, reason: &str) {
        self.ctx.record_dropped(reason)
    }

    /// See [`ProcessorContext::commit`].
    pub fn commit(&mut self) {
        self.ctx.commit()
    }
}

/// Runs a [`FixedKeyProcessor`] as a [`Processor`] whose output key is its input key.
pub(crate) struct FixedKeyAdapter<P>(pub P);

fn fixed<'b, K, V>(ctx: &'b mut ProcessorContext<'_, K, V>) -> FixedKeyProcessorContext<'b, K, V> {
    FixedKeyProcessorContext {
        ctx: ProcessorContext {
            task: &mut *ctx.task,
            children: ctx.children,
            node: ctx.node,
        },
    }
}

impl<K: Data, VIn, P: FixedKeyProcessor<K, VIn>> Processor<K, VIn> for FixedKeyAdapter<P> {
    type KOut = K;
    type VOut = P::VOut;

    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, P::VOut>) -> Result<()> {
        self.0.init(&mut fixed(ctx))
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, P::VOut>,
        record: Record<K, VIn>,
    ) -> Result<()> {
        self.0.process(&mut fixed(ctx), FixedKeyRecord { record })
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, P::VOut>,
        punctuation: Punctuation,
    ) -> Result<()> {
        self.0.punctuate(&mut fixed(ctx), punctuation)
    }

    fn close(&mut self, ctx: &mut ProcessorContext<'_, K, P::VOut>) -> Result<()> {
        self.0.close(&mut fixed(ctx))
    }
}
