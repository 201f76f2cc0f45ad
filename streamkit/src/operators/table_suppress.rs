//! `suppress(Suppressed::until_time_limit(d))` on any table: each key's updates wait in a
//! changelogged buffer until `d` of stream time has passed since the first of them arrived;
//! then the latest goes downstream, as one change from the value before the first update.
//! A later update replaces the waiting one without restarting its timer. A bounded buffer
//! (`with_max_records`, `with_max_bytes`) emits its oldest keys early or fails when full.

use std::collections::BTreeSet;

use crate::error::{Error, Result, SerdeError};
use crate::processor::{Data, KeyValueStore, Processor, ProcessorContext};
use crate::record::Change;
use crate::record::Record;
use crate::serde::table::ChangeSerde;
use crate::serde::{Serde, SerdeRef};
use crate::table::{BufferLimits, WhenFull};

pub(crate) struct SuppressTimeLimit<K, V> {
    pub limit_ms: i64,
    pub store_name: String,
    pub key_serde: SerdeRef<K>,
    pub change_serde: ChangeSerde<V>,
    pub buffer: Option<KeyValueStore<Vec<u8>, Vec<u8>>>,
    /// (time of the key's first waiting update, key bytes), oldest first; rebuilt from the
    /// buffer store at init.
    pub due: BTreeSet<(i64, Vec<u8>)>,
    /// The suppression node's name, for the buffer-full error.
    pub name: String,
    pub limits: Option<BufferLimits>,
    /// Serialized size of the buffer (keys plus entries); rebuilt at init.
    pub bytes: usize,
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
        self.bytes = 0;
        for (key, entry) in buffer.all()? {
            let (first, _, _) = decode_entry(&self.change_serde, &entry)?;
            self.bytes += key.len() + entry.len();
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
                self.bytes -= kb.len() + entry.len();
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
        self.bytes += kb.len() + entry.len();
        buffer.put(&kb, &entry)?;
        self.emit_due(ctx)?;
        self.enforce_limits(ctx)
    }
}

impl<K: Data, V: Data> SuppressTimeLimit<K, V> {
    /// Forwards every entry whose first update is `limit` or more behind stream time.
    fn emit_due(&mut self, ctx: &mut ProcessorContext<'_, K, Change<V>>) -> Result<()> {
        let stream_time = ctx.stream_time();
        while let Some((first, _)) = self.due.first() {
            if first.saturating_add(self.limit_ms) > stream_time {
                break;
            }
            self.emit_oldest(ctx)?;
        }
        Ok(())
    }

    /// Removes the oldest waiting entry from the buffer and forwards it.
    fn emit_oldest(&mut self, ctx: &mut ProcessorContext<'_, K, Change<V>>) -> Result<()> {
        let buffer = self.buffer.as_ref().expect("initialized");
        let Some((_, kb)) = self.due.pop_first() else {
            return Ok(());
        };
        let Some(entry) = buffer.get(&kb)? else {
            return Ok(());
        };
        buffer.delete(&kb)?;
        self.bytes -= kb.len() + entry.len();
        let (_, latest, change) = decode_entry(&self.change_serde, &entry)?;
        if change.new.is_none() && change.old.is_none() {
            // Added and deleted while waiting: downstream never saw it.
            return Ok(());
        }
        let key = self.key_serde.deserialize("", &kb)?;
        ctx.forward(Record::new(key, change, latest))
    }

    /// The limit the buffer exceeds, if any, as `setting = value (now n)`.
    fn exceeded(&self) -> Option<String> {
        let limits = self.limits.as_ref()?;
        match (limits.max_records, limits.max_bytes) {
            (Some(max), _) if self.due.len() > max => Some(format!(
                "max_records = {max} (buffer holds {})",
                self.due.len()
            )),
            (_, Some(max)) if self.bytes > max => {
                Some(format!("max_bytes = {max} (buffer holds {})", self.bytes))
            }
            _ => None,
        }
    }

    /// Brings a bounded buffer back within its limits: emits the oldest keys early, or fails.
    fn enforce_limits(&mut self, ctx: &mut ProcessorContext<'_, K, Change<V>>) -> Result<()> {
        while let Some(limit) = self.exceeded() {
            let when_full = self.limits.as_ref().map(|l| l.when_full);
            if when_full == Some(WhenFull::ShutDown) {
                return Err(Error::Custom(format!(
                    "suppression {} is full: its buffer exceeds {limit}; shut_down_when_full \
                     stops the application (raise the limit or use emit_early_when_full)",
                    self.name
                )));
            }
            self.emit_oldest(ctx)?;
        }
        Ok(())
    }
}
