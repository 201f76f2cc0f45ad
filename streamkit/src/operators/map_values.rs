//! `map_values` / `map_values_with_key`: a new value, same key (so no repartition is needed).

use std::sync::Arc;

use crate::error::Result;
use crate::processor::{Data, Processor, ProcessorContext};
use crate::record::Record;

pub(crate) struct MapValues<F>(pub Arc<F>);

impl<K: Data, V: Data, V2: Data, F> Processor<K, V> for MapValues<F>
where
    F: Fn(&K, V) -> V2 + 'static,
{
    type KOut = K;
    type VOut = V2;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, V2>,
        record: Record<K, V>,
    ) -> Result<()> {
        let Record {
            key,
            value,
            timestamp,
            headers,
        } = record;
        let value = (self.0)(&key, value);
        ctx.forward(Record {
            key,
            value,
            timestamp,
            headers,
        })
    }
}
