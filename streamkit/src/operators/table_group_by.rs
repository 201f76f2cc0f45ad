//! `KTable::group_by`: re-keys each change for a table aggregation. The old row is sent as a
//! retraction to its old group and the new row as an addition to its new group (one record
//! when both fall in the same group), through a repartition topic.

use std::sync::Arc;

use crate::error::Result;
use crate::processor::{Data, Processor, ProcessorContext};
use crate::record::Change;
use crate::record::Record;

pub(crate) struct TableGroupBy<F>(pub Arc<F>);

impl<K: Data, V: Data, K2: Data + PartialEq, V2: Data, F> Processor<K, Change<V>>
    for TableGroupBy<F>
where
    F: Fn(&K, &V) -> (K2, V2) + 'static,
{
    type KOut = K2;
    type VOut = Change<V2>;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K2, Change<V2>>,
        record: Record<K, Change<V>>,
    ) -> Result<()> {
        let f = &self.0;
        let old = record.value.old.as_ref().map(|v| f(&record.key, v));
        let new = record.value.new.as_ref().map(|v| f(&record.key, v));
        let send = |ctx: &mut ProcessorContext<'_, K2, Change<V2>>, key: K2, change| {
            ctx.forward(Record {
                key,
                value: change,
                timestamp: record.timestamp,
                headers: record.headers.clone(),
            })
        };
        match (old, new) {
            (Some((ok, ov)), Some((nk, nv))) if ok == nk => send(
                ctx,
                nk,
                Change {
                    new: Some(nv),
                    old: Some(ov),
                },
            ),
            (old, new) => {
                // Retraction first: an aggregate never holds a row twice.
                if let Some((ok, ov)) = old {
                    send(
                        ctx,
                        ok,
                        Change {
                            new: None,
                            old: Some(ov),
                        },
                    )?;
                }
                if let Some((nk, nv)) = new {
                    send(
                        ctx,
                        nk,
                        Change {
                            new: Some(nv),
                            old: None,
                        },
                    )?;
                }
                Ok(())
            }
        }
    }
}
