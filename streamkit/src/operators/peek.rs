//! `peek`: look at each record (logging, metrics) and pass it on unchanged.

use std::sync::Arc;

use crate::error::Result;
use crate::processor::{Data, Processor, ProcessorContext};
use crate::record::Record;

pub(crate) struct Peek<F>(pub Arc<F>);

impl<K: Data, V: Data, F> Processor<K, V> for Peek<F>
where
    F: Fn(&K, &V) + 'static,
{
    type KOut = K;
    type VOut = V;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, V>,
        record: Record<K, V>,
    ) -> Result<()> {
        (self.0)(&record.key, &record.value);
        ctx.forward(record)
    }
}
