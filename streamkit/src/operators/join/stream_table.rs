//! Stream-table joins (`KStream::join_table`, `left_join_table`): each stream record looks up
//! the table's current row for its key in the table's store; table updates emit nothing.

use std::sync::Arc;

use crate::error::Result;
use crate::processor::{Data, KeyValueStore, Processor, ProcessorContext};
use crate::record::Record;

/// `(key, stream value, table row) -> joined value`, `None` to emit nothing (an inner join
/// without a row).
pub(crate) type LookupJoiner<K, V, VT, VR> =
    Arc<dyn Fn(&K, &V, Option<&VT>) -> Option<VR> + Send + Sync>;

pub(crate) struct StreamTableJoin<K, V, VT, VR> {
    pub store_name: String,
    pub joiner: LookupJoiner<K, V, VT, VR>,
    pub store: Option<KeyValueStore<K, VT>>,
}

impl<K: Data, V: Data, VT: Data, VR: Data> Processor<K, V> for StreamTableJoin<K, V, VT, VR> {
    type KOut = K;
    type VOut = VR;

    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, VR>) -> Result<()> {
        self.store = Some(ctx.key_value_store(&self.store_name)?);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, VR>,
        record: Record<K, V>,
    ) -> Result<()> {
        let row = self.store.as_ref().expect("initialized").get(&record.key)?;
        match (self.joiner)(&record.key, &record.value, row.as_ref()) {
            Some(joined) => ctx.forward(record.with_value(joined)),
            None => Ok(()),
        }
    }
}
