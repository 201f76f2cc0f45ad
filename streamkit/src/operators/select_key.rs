//! `select_key`: a new key computed from the record, same value.

use std::sync::Arc;

use crate::error::Result;
use crate::processor::{Data, Processor, ProcessorContext};
use crate::record::Record;

pub(crate) struct SelectKey<F>(pub Arc<F>);

impl<K: Data, V: Data, K2: Data, F> Processor<K, V> for SelectKey<F>
where
    F: Fn(&K, &V) -> K2 + 'static,
{
    type KOut = K2;
    type VOut = V;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K2, V>,
        record: Record<K, V>,
    ) -> Result<()> {
        let key = (self.0)(&record.key, &record.value);
        ctx.forward(record.with_key(key))
    }
}
