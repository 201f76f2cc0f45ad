//! `flat_map`: zero or more (key, value) pairs from each record.

use std::sync::Arc;

use crate::error::Result;
use crate::processor::{Data, Processor, ProcessorContext};
use crate::record::Record;

pub(crate) struct FlatMap<F>(pub Arc<F>);

impl<K: Data, V: Data, K2: Data, V2: Data, I, F> Processor<K, V> for FlatMap<F>
where
    I: IntoIterator<Item = (K2, V2)>,
    F: Fn(K, V) -> I + 'static,
{
    type KOut = K2;
    type VOut = V2;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K2, V2>,
        record: Record<K, V>,
    ) -> Result<()> {
        let Record {
            key,
            value,
            timestamp,
            headers,
        } = record;
        for (key, value) in (self.0)(key, value) {
            ctx.forward(Record {
                key,
                value,
                timestamp,
                headers: headers.clone(),
            })?;
        }
        Ok(())
    }
}
