//! `flat_map_values`: zero or more values from each record, same key.

use std::sync::Arc;

use crate::error::Result;
use crate::processor::{Data, Processor, ProcessorContext};
use crate::record::Record;

pub(crate) struct FlatMapValues<F>(pub Arc<F>);

impl<K: Data, V: Data, V2: Data, I, F> Processor<K, V> for FlatMapValues<F>
where
    I: IntoIterator<Item = V2>,
    F: Fn(&K, V) -> I + 'static,
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
        for value in (self.0)(&key, value) {
            ctx.forward(Record {
                key: key.clone(),
                value,
                timestamp,
                headers: headers.clone(),
            })?;
        }
        Ok(())
    }
}
