//! The node behind `StreamsBuilder::table` and `global_table`: writes each update of a table
//! topic to the table's key-value store (a null value deletes the key) and forwards the change.

use crate::error::Result;
use crate::processor::{Data, KeyValueStore, Processor, ProcessorContext};
use crate::record::Change;
use crate::record::Record;

pub(crate) struct TableSource<K, V> {
    pub store_name: String,
    pub store: Option<KeyValueStore<K, V>>,
}

impl<K: Data, V: Data> Processor<K, Option<V>> for TableSource<K, V> {
    type KOut = K;
    type VOut = Change<V>;

    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<V>>) -> Result<()> {
        self.store = Some(ctx.key_value_store(&self.store_name)?);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        record: Record<K, Option<V>>,
    ) -> Result<()> {
        apply_row(self.store.as_ref().expect("initialized"), ctx, record)
    }
}

/// Writes a row (`None` deletes it) to a table's store and forwards the change with the row it
/// replaced. Shared by tables read from topics and tables materialized downstream.
pub(crate) fn apply_row<K: Data, V: Data>(
    store: &KeyValueStore<K, V>,
    ctx: &mut ProcessorContext<'_, K, Change<V>>,
    record: Record<K, Option<V>>,
) -> Result<()> {
    let old = store.get(&record.key)?;
    match &record.value {
        Some(v) => store.put(&record.key, v)?,
        // Deleting a key the table does not hold changes nothing: nothing to forward.
        None if old.is_none() => return Ok(()),
        None => store.delete(&record.key)?,
    }
    let (key, new) = (record.key, record.value);
    ctx.forward(Record {
        key,
        value: Change { new, old },
        timestamp: record.timestamp,
        headers: record.headers,
    })
}
