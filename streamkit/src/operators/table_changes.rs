//! Table updates leaving the table layer: as a stream of new values, with deletions, or
//! unchanged.

use crate::processor::{Data, Processor, ProcessorContext};
use crate::record::{Change, Record};

/// `KTable::to_stream`: each update's new value; deletions are dropped.
pub(crate) struct ToStream;

impl<K: Data, V: Data> Processor<K, Change<V>> for ToStream {
    type KOut = K;
    type VOut = V;
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, V>,
        r: Record<K, Change<V>>,
    ) -> crate::Result<()> {
        let Record {
            key,
            value,
            timestamp,
            headers,
        } = r;
        match value.new {
            Some(v) => ctx.forward(Record {
                key,
                value: v,
                timestamp,
                headers,
            }),
            None => Ok(()),
        }
    }
}

/// Forwards table updates unchanged (the node a suppression or a sink hangs off).
pub(crate) struct PassChanges;

impl<K: Data, V: Data> Processor<K, Change<V>> for PassChanges {
    type KOut = K;
    type VOut = Change<V>;
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        r: Record<K, Change<V>>,
    ) -> crate::Result<()> {
        ctx.forward(r)
    }
}

/// `KTable::to_change_stream`: each update's new value, `None` for a deletion.
pub(crate) struct ToChangeStream;

impl<K: Data, V: Data> Processor<K, Change<V>> for ToChangeStream {
    type KOut = K;
    type VOut = Option<V>;
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Option<V>>,
        r: Record<K, Change<V>>,
    ) -> crate::Result<()> {
        let new = r.value.new.clone();
        ctx.forward(r.with_value(new))
    }
}
