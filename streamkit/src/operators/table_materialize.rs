//! Materializes a table that has no store of its own (after `filter` or `map_values`): each
//! change is written to a key-value store, which `KTable::materialize` names for queries and
//! joins look up.

use crate::error::Result;
use crate::operators::table_source::apply_row;
use crate::processor::{Data, KeyValueStore, Processor, ProcessorContext};
use crate::record::Change;
use crate::record::Record;

pub(crate) struct TableMaterialize<K, V> {
    pub store_name: String,
    pub store: Option<KeyValueStore<K, V>>,
}

impl<K: Data, V: Data> Processor<K, Change<V>> for TableMaterialize<K, V> {
    type KOut = K;
    type VOut = Change<V>;

    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<V>>) -> Result<()> {
        self.store = Some(ctx.key_value_store(&self.store_name)?);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        record: Record<K, Change<V>>,
    ) -> Result<()> {
        // The old row comes from the store, not from the change: the store is the table.
        let Record {
            key,
            value,
            timestamp,
            headers,
        } = record;
        let row = Record {
            key,
            value: value.new,
            timestamp,
            headers,
        };
        apply_row(self.store.as_ref().expect("initialized"), ctx, row)
    }
}
