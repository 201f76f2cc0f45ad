//! `aggregate` / `count` / `reduce` on a grouped stream: one running value per key, kept in a
//! key-value store, every update forwarded as a table change.

use std::sync::Arc;

use crate::error::Result;
use crate::processor::{Data, KeyValueStore, Processor, ProcessorContext};
use crate::record::Change;
use crate::record::Record;

/// Folds a value into the aggregate: `(key, value, aggregate or None for the first) -> aggregate`.
pub(crate) type Fold<K, V, A> = Arc<dyn Fn(&K, &V, Option<A>) -> A + Send + Sync>;

pub(crate) struct Aggregate<K, V, A> {
    pub store_name: String,
    pub fold: Fold<K, V, A>,
    pub store: Option<KeyValueStore<K, A>>,
}

impl<K: Data, V: Data, A: Data> Processor<K, V> for Aggregate<K, V, A> {
    type KOut = K;
    type VOut = Change<A>;

    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<A>>) -> Result<()> {
        self.store = Some(ctx.key_value_store(&self.store_name)?);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<A>>,
        record: Record<K, V>,
    ) -> Result<()> {
        let store = self.store.as_ref().expect("initialized");
        let old = store.get(&record.key)?;
        let new = (self.fold)(&record.key, &record.value, old.clone());
        store.put(&record.key, &new)?;
        let Record {
            key,
            timestamp,
            headers,
            ..
        } = record;
        ctx.forward(Record {
            key,
            value: Change {
                new: Some(new),
                old,
            },
            timestamp,
            headers,
        })
    }
}
