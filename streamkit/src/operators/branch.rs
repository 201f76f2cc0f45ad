//! `split().branch(..)`: route each record to the first branch whose predicate accepts it.

use std::sync::Arc;

use crate::error::Result;
use crate::processor::{Data, Processor, ProcessorContext};
use crate::record::Record;

/// A branch predicate, shared by every task.
pub(crate) type BranchPredicate<K, V> = Arc<dyn Fn(&K, &V) -> bool + Send + Sync>;

/// Branches in order: (child node name, predicate; `None` = default branch).
pub(crate) type Routes<K, V> = Arc<Vec<(String, Option<BranchPredicate<K, V>>)>>;

pub(crate) struct Branch<K, V> {
    pub branches: Routes<K, V>,
}

impl<K: Data, V: Data> Processor<K, V> for Branch<K, V> {
    type KOut = K;
    type VOut = V;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, V>,
        record: Record<K, V>,
    ) -> Result<()> {
        for (child, predicate) in self.branches.iter() {
            if predicate
                .as_ref()
                .is_none_or(|p| p(&record.key, &record.value))
            {
                return ctx.forward_to(child, record);
            }
        }
        // No branch matched and there is no default branch: the record is dropped, as in
        // Kafka Streams.
        Ok(())
    }
}
