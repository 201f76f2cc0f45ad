//! `map`: a new key and value from each record.

use std::sync::Arc;

use crate::error::Result;
use crate::processor::{Data, Processor, ProcessorContext};
use crate::record::Record;

pub(crate) struct Map<F>(pub Arc<F>);

impl<K: Data, V: Data, K2: Data, V2: Data, F> Processor<K, V> for Map<F>
where
    F: Fn(K, V) -> (K2, V2) + 'static,
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
        let (key, value) = (self.0)(key, value);
        ctx.forward(Record {
            key,
            value,
            timestamp,
            headers,
        })
    }
}
