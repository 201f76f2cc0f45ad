//! `KStream::to_table`: each record is a row of the table (`None` deletes its key).

use std::marker::PhantomData;

use crate::error::Result;
use crate::operators::table_source::apply_row;
use crate::processor::{Data, KeyValueStore, Processor, ProcessorContext};
use crate::record::{Change, Record};

pub(crate) struct ToTable<K, V, VT> {
    pub store_name: String,
    pub store: Option<KeyValueStore<K, VT>>,
    pub _in: PhantomData<fn(V)>,
}

impl<K: Data, V: Data + Into<Option<VT>>, VT: Data> Processor<K, V> for ToTable<K, V, VT> {
    type KOut = K;
    type VOut = Change<VT>;

    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<VT>>) -> Result<()> {
        self.store = Some(ctx.key_value_store(&self.store_name)?);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VT>>,
        record: Record<K, V>,
    ) -> Result<()> {
        let row = Record {
            key: record.key,
            value: record.value.into(),
            timestamp: record.timestamp,
            headers: record.headers,
        };
        apply_row(self.store.as_ref().expect("initialized"), ctx, row)
    }
}
