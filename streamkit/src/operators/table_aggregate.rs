//! `count` / `reduce` / `aggregate` on a grouped table: each group's aggregate in a key-value
//! store; a change subtracts the row's old value and adds its new one.

use std::sync::Arc;

use crate::error::Result;
use crate::processor::{Data, KeyValueStore, Processor, ProcessorContext};
use crate::record::Change;
use crate::record::Record;

/// `(key, value, aggregate or None before the group's first value) -> aggregate`.
pub(crate) type TableFold<K, V, A> = Arc<dyn Fn(&K, &V, Option<A>) -> A + Send + Sync>;

/// Retracts a value: `(key, value, aggregate) -> aggregate`; `None` when there is nothing to
/// retract from (a reduce whose group is empty).
pub(crate) type TableRetract<K, V, A> = Arc<dyn Fn(&K, &V, Option<A>) -> Option<A> + Send + Sync>;

pub(crate) struct TableAggregate<K, V, A> {
    pub store_name: String,
    pub adder: TableFold<K, V, A>,
    pub subtractor: TableRetract<K, V, A>,
    pub store: Option<KeyValueStore<K, A>>,
}

impl<K: Data, V: Data, A: Data> Processor<K, Change<V>> for TableAggregate<K, V, A> {
    type KOut = K;
    type VOut = Change<A>;

    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<A>>) -> Result<()> {
        self.store = Some(ctx.key_value_store(&self.store_name)?);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<A>>,
        record: Record<K, Change<V>>,
    ) -> Result<()> {
        let store = self.store.as_ref().expect("initialized");
        let old = store.get(&record.key)?;
        let mut agg = old.clone();
        if let Some(v) = &record.value.old {
            agg = (self.subtractor)(&record.key, v, agg);
        }
        if let Some(v) = &record.value.new {
            agg = Some((self.adder)(&record.key, v, agg));
        }
        let Some(new) = agg else {
            return Ok(());
        };
        store.put(&record.key, &new)?;
        ctx.forward(record.with_value(Change {
            new: Some(new),
            old,
        }))
    }
}
