//! `suppress(Suppressed::until_time_limit(d))` on any table: each key's updates wait in a
//! changelogged buffer until `d` of stream time has passed since the first of them arrived;
//! then the latest goes downstream, as one change from the value before the first update.
//! A later update replaces the waiting one without restarting its timer.

use std::collections::BTreeSet;

use crate::error::{Result, SerdeError};
use crate::processor::{Data, KeyValueStore, Processor, ProcessorContext};
use crate::record::Change;
use crate::record::Record;
use crate::serde::table::ChangeSerde;
use crate::serde::{Serde, SerdeRef};

pub(crate) struct SuppressTimeLimit<K, V> {
    pub limit_ms: i64,
    pub store_name: String,
    pub key_serde: SerdeRef<K>,
    pub change_serde: ChangeSerde<V>,
    pub buffer: Option<KeyValueStore<Vec<u8>, Vec<u8>>>,
    /// (time of the key's first waiting update, key bytes), oldest first; rebuilt from the
    /// buffer store at init.
    pub due: BTreeSet<(i64, Vec<u8>)>,
}

/// A waiting entry: first update's time, latest update's timestamp, the change so far.
fn encode_entry<V: 'static>(
    serde: &ChangeSerde<V>,
    first: i64,
    latest: i64,
    change: &Change<V>,
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(32);
    out.extend_from_slice(&first.to_be_bytes());
    out.extend_from_slice(&latest.to_be_bytes());
    serde.serialize("", change, &mut out)?;
    Ok(out)
}

fn decode_entry<V: 'static>(serde: &ChangeSerde<V>, data: &[u8]) -> Result<(i64, i64, Change<V>)> {
    if data.len() < 16 {
        return Err(SerdeError::Invalid("truncated suppression buffer entry".into()).into());
    }
    let first = i64::from_be_bytes(data[..8].try_into().expect("8 bytes"));
    let latest = i64::from_be_bytes(data[8..16].try_into().expect("8 bytes"));
    Ok((first, latest, serde.deserialize("", &data[16..])?))
}

impl<K: Data, V: Data> Processor<K, Change<V>> for SuppressTimeLimit<K, V> {
    type KOut = K;
    type VOut = Change<V>;

    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<V>>) -> Result<()> {
        let buffer = ctx.key_value_store::<Vec<u8>, Vec<u8>>(&self.store_name)?;
        self.due.clear();
        for (key, entry) in buffer.all()? {
            let (first, _, _) = decode_entry(&self.change_serde, &entry)?;
            self.due.insert((first, key));
        }
        self.buffer = Some(buffer);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        record: Record<K, Change<V>>,
    ) -> Result<()> {
        let buffer = self.buffer.as_ref().expect("initialized");
        let mut kb = Vec::new();
        self.key_serde.serialize("", &record.key, &mut kb)?;
        let (first, change) = match buffer.get(&kb)? {
            // The change downstream sees starts from the value before the first waiting update.
            Some(entry) => {
                let (first, _, waiting) = decode_entry(&self.change_serde, &entry)?;
                let change = Change {
                    new: record.value.new,
                    old: waiting.old,
                };
                (first, change)
            }
            None => {
                self.due.insert((record.timestamp, kb.clone()));
                (record.timestamp, record.value)
            }
        };
        let entry = encode_entry(&self.change_serde, first, record.timestamp, &change)?;
        buffer.put(&kb, &entry)?;
        self.emit_due(ctx)
    }
}

impl<K: Data, V: Data> SuppressTimeLimit<K, V> {
    /// Forwards every entry whose first update is `limit` or more behind stream time.
    fn emit_due(&mut self, ctx: &mut ProcessorContext<'_, K, Change<V>>) -> Result<()> {
        let stream_time = ctx.stream_time();
        let buffer = self.buffer.as_ref().expect("initialized");
        while let Some((first, kb)) = self.due.first().cloned() {
            if first.saturating_add(self.limit_ms) > stream_time {
                break;
            }
            self.due.pop_first();
            let Some(entry) = buffer.get(&kb)? else {
                continue;
            };
            buffer.delete(&kb)?;
            let (_, latest, change) = decode_entry(&self.change_serde, &entry)?;
            if change.new.is_none() && change.old.is_none() {
                // Added and deleted while waiting: downstream never saw it.
                continue;
            }
            let key = self.key_serde.deserialize("", &kb)?;
            ctx.forward(Record::new(key, change, latest))?;
        }
        Ok(())
    }
}
