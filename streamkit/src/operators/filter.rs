//! `filter` / `filter_not`: keep the records a predicate accepts (or rejects).

use std::sync::Arc;

use crate::error::Result;
use crate::processor::{Data, Processor, ProcessorContext};
use crate::record::Record;

pub(crate) struct Filter<F> {
    pub predicate: Arc<F>,
    /// `true` for `filter_not`.
    pub negate: bool,
}

impl<K: Data, V: Data, F> Processor<K, V> for Filter<F>
where
    F: Fn(&K, &V) -> bool + 'static,
{
    type KOut = K;
    type VOut = V;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, V>,
        record: Record<K, V>,
    ) -> Result<()> {
        if (self.predicate)(&record.key, &record.value) != self.negate {
            ctx.forward(record)?;
        }
        Ok(())
    }
}
