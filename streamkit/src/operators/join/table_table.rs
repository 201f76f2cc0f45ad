//! Table-table joins (inner, left, outer): each side's update looks up the other side's
//! current row and forwards the change of the joined row, old result retracted.

use std::marker::PhantomData;

use super::Joiner;
use crate::error::Result;
use crate::processor::{Data, KeyValueStore, Processor, ProcessorContext};
use crate::record::Change;
use crate::record::Record;

/// The joined row for a left and a right row, either possibly missing; `None` when the join
/// has no row for them (the key is absent from, or deleted in, the result).
fn joined<V1, V2, VR>(joiner: &Joiner<V1, V2, VR>, l: Option<&V1>, r: Option<&V2>) -> Option<VR> {
    match (l, r) {
        (Some(l), Some(r)) => Some(joiner.both(l, r)),
        (Some(l), None) => joiner.left_only(l),
        (None, Some(r)) => joiner.right_only(r),
        (None, None) => None,
    }
}

/// Sends `Change { new, old }` of the joined row unless the key is in neither.
fn forward_change<K: Data, VR: Data>(
    ctx: &mut ProcessorContext<'_, K, Change<VR>>,
    record: Record<K, ()>,
    new: Option<VR>,
    old: Option<VR>,
) -> Result<()> {
    if new.is_none() && old.is_none() {
        return Ok(());
    }
    ctx.forward(record.with_value(Change { new, old }))
}

/// Updates of the left table, joined with the right table's store.
pub(crate) struct TableJoinLeftSide<K, V1, V2, VR> {
    pub joiner: Joiner<V1, V2, VR>,
    pub right_store: String,
    pub right: Option<KeyValueStore<K, V2>>,
}

impl<K: Data, V1: Data, V2: Data, VR: Data> Processor<K, Change<V1>>
    for TableJoinLeftSide<K, V1, V2, VR>
{
    type KOut = K;
    type VOut = Change<VR>;

    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<VR>>) -> Result<()> {
        self.right = Some(ctx.key_value_store(&self.right_store)?);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VR>>,
        record: Record<K, Change<V1>>,
    ) -> Result<()> {
        let right = self.right.as_ref().expect("initialized").get(&record.key)?;
        let new = joined(&self.joiner, record.value.new.as_ref(), right.as_ref());
        let old = joined(&self.joiner, record.value.old.as_ref(), right.as_ref());
        forward_change(ctx, record.with_value(()), new, old)
    }
}

/// Updates of the right table, joined with the left table's store.
pub(crate) struct TableJoinRightSide<K, V1, V2, VR> {
    pub joiner: Joiner<V1, V2, VR>,
    pub left_store: String,
    pub left: Option<KeyValueStore<K, V1>>,
}

impl<K: Data, V1: Data, V2: Data, VR: Data> Processor<K, Change<V2>>
    for TableJoinRightSide<K, V1, V2, VR>
{
    type KOut = K;
    type VOut = Change<VR>;

    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<VR>>) -> Result<()> {
        self.left = Some(ctx.key_value_store(&self.left_store)?);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VR>>,
        record: Record<K, Change<V2>>,
    ) -> Result<()> {
        let left = self.left.as_ref().expect("initialized").get(&record.key)?;
        let new = joined(&self.joiner, left.as_ref(), record.value.new.as_ref());
        let old = joined(&self.joiner, left.as_ref(), record.value.old.as_ref());
        forward_change(ctx, record.with_value(()), new, old)
    }
}

/// Where both sides' results meet; writes the joined rows to the result's store, if any.
pub(crate) struct TableJoinMerge<K, VR> {
    pub store_name: Option<String>,
    pub store: Option<KeyValueStore<K, VR>>,
    pub _types: PhantomData<fn() -> (K, VR)>,
}

impl<K: Data, VR: Data> Processor<K, Change<VR>> for TableJoinMerge<K, VR> {
    type KOut = K;
    type VOut = Change<VR>;

    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<VR>>) -> Result<()> {
        self.store = self
            .store_name
            .as_deref()
            .map(|s| ctx.key_value_store(s))
            .transpose()?;
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VR>>,
        record: Record<K, Change<VR>>,
    ) -> Result<()> {
        if let Some(store) = &self.store {
            match &record.value.new {
                Some(v) => store.put(&record.key, v)?,
                None => store.delete(&record.key)?,
            }
        }
        ctx.forward(record)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn show(v: Option<&&str>) -> String {
        v.map_or("null".to_string(), |s| s.to_string())
    }

    /// Kafka Streams' rules: an inner join has a row only when both sides do, a left join
    /// whenever the left side does, an outer join whenever either does.
    #[test]
    fn joined_rows_follow_the_join_kind() {
        let inner: Joiner<&str, &str, String> = Joiner::Inner(Arc::new(|l, r| format!("{l}-{r}")));
        let left: Joiner<&str, &str, String> =
            Joiner::Left(Arc::new(|l, r| format!("{l}-{}", show(r))));
        let outer: Joiner<&str, &str, String> =
            Joiner::Outer(Arc::new(|l, r| format!("{}-{}", show(l), show(r))));
        type Case<'a> = (Option<&'a str>, Option<&'a str>, [Option<&'a str>; 3]);
        let cases: [Case<'_>; 4] = [
            (
                Some("A"),
                Some("a"),
                [Some("A-a"), Some("A-a"), Some("A-a")],
            ),
            (Some("A"), None, [None, Some("A-null"), Some("A-null")]),
            (None, Some("a"), [None, None, Some("null-a")]),
            (None, None, [None, None, None]),
        ];
        for (l, r, want) in cases {
            let got = [&inner, &left, &outer].map(|j| joined(j, l.as_ref(), r.as_ref()));
            let want = want.map(|w| w.map(str::to_string));
            assert_eq!(got, want, "{l:?} {r:?}");
        }
    }
}
