//! `KTable::filter` / `filter_not`: a table holding only the rows a predicate accepts. A row
//! that stops matching is forwarded as a deletion, so downstream tables drop it too.

use std::sync::Arc;

use crate::error::Result;
use crate::processor::{Data, Processor, ProcessorContext};
use crate::record::Change;
use crate::record::Record;

pub(crate) struct TableFilter<F> {
    pub predicate: Arc<F>,
    /// `true` for `filter_not`.
    pub negate: bool,
}

impl<K: Data, V: Data, F> Processor<K, Change<V>> for TableFilter<F>
where
    F: Fn(&K, &V) -> bool + 'static,
{
    type KOut = K;
    type VOut = Change<V>;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        record: Record<K, Change<V>>,
    ) -> Result<()> {
        let Record {
            key,
            value,
            timestamp,
            headers,
        } = record;
        let keep = |v: Option<V>| v.filter(|v| (self.predicate)(&key, v) != self.negate);
        let (new, old) = (keep(value.new), keep(value.old));
        if new.is_none() && old.is_none() {
            // The row was and stays outside the filtered table.
            return Ok(());
        }
        ctx.forward(Record {
            key,
            value: Change { new, old },
            timestamp,
            headers,
        })
    }
}
