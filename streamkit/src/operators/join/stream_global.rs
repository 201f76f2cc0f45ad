//! Stream-global-table joins (`KStream::join_global`, `left_join_global`): each stream record
//! maps itself to a key of the global table and looks that row up in the global store, which
//! holds every partition of the table's topic, so the two sides need no co-partitioning.

use std::sync::Arc;

use super::stream_table::LookupJoiner;
use crate::error::Result;
use crate::processor::{Data, KeyValueStore, Processor, ProcessorContext};
use crate::record::Record;

/// `(stream key, stream value) -> key of the global table`.
pub(crate) type KeyMapper<K, V, GK> = Arc<dyn Fn(&K, &V) -> GK + Send + Sync>;

pub(crate) struct StreamGlobalJoin<K, V, GK, VT, VR> {
    pub store_name: String,
    pub key_mapper: KeyMapper<K, V, GK>,
    pub joiner: LookupJoiner<K, V, VT, VR>,
    pub store: Option<KeyValueStore<GK, VT>>,
}

impl<K: Data, V: Data, GK: Data, VT: Data, VR: Data> Processor<K, V>
    for StreamGlobalJoin<K, V, GK, VT, VR>
{
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
        let global_key = (self.key_mapper)(&record.key, &record.value);
        let row = self.store.as_ref().expect("initialized").get(&global_key)?;
        match (self.joiner)(&record.key, &record.value, row.as_ref()) {
            Some(joined) => ctx.forward(record.with_value(joined)),
            None => Ok(()),
        }
    }
}
