//! `foreach`: a terminal action on each record.

use std::sync::Arc;

use crate::error::Result;
use crate::processor::{Data, Processor, ProcessorContext};
use crate::record::Record;

pub(crate) struct Foreach<F>(pub Arc<F>);

impl<K: Data, V: Data, F> Processor<K, V> for Foreach<F>
where
    F: Fn(&K, &V) + 'static,
{
    type KOut = ();
    type VOut = ();

    fn process(
        &mut self,
        _ctx: &mut ProcessorContext<'_, (), ()>,
        record: Record<K, V>,
    ) -> Result<()> {
        (self.0)(&record.key, &record.value);
        Ok(())
    }
}
