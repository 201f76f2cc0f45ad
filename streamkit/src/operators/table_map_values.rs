//! `KTable::map_values`: a new value per row, same key; both sides of each change are mapped
//! so a downstream aggregate retracts exactly what it added.

use std::sync::Arc;

use crate::error::Result;
use crate::processor::{Data, Processor, ProcessorContext};
use crate::record::Change;
use crate::record::Record;

pub(crate) struct TableMapValues<F>(pub Arc<F>);

impl<K: Data, V: Data, V2: Data, F> Processor<K, Change<V>> for TableMapValues<F>
where
    F: Fn(&K, &V) -> V2 + 'static,
{
    type KOut = K;
    type VOut = Change<V2>;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V2>>,
        record: Record<K, Change<V>>,
    ) -> Result<()> {
        let f = &self.0;
        let new = record.value.new.as_ref().map(|v| f(&record.key, v));
        let old = record.value.old.as_ref().map(|v| f(&record.key, v));
        ctx.forward(record.with_value(Change { new, old }))
    }
}
