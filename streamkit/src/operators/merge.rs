//! `merge`: one node with two parents that passes every record on.

use crate::error::Result;
use crate::processor::{Data, Processor, ProcessorContext};
use crate::record::Record;

pub(crate) struct PassThrough;

impl<K: Data, V: Data> Processor<K, V> for PassThrough {
    type KOut = K;
    type VOut = V;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, V>,
        record: Record<K, V>,
    ) -> Result<()> {
        ctx.forward(record)
    }
}
