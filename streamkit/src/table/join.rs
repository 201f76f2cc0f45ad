//! Table-table joins on [`KTable`]: `join`, `left_join`, `outer_join`.

use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use super::{Change, KTable};
use crate::operators::join::Joiner;
use crate::operators::join::table_table::{TableJoinLeftSide, TableJoinMerge, TableJoinRightSide};
use crate::processor::{Data, StoreSerdes};
use crate::serde::SerdeRef;
use crate::stream::Materialized;
use crate::topology::node::ProcessorFactory;
use crate::topology::{GraphBuilder, NodeKind, StoreKind, StoreSpec};

/// The key-value store holding `table`'s rows, for the other side to look rows up in, and its
/// key serde; reports at `build()` a table without one.
fn lookup_store<K: Data, V: Data>(
    g: &mut GraphBuilder,
    table: &KTable<K, V>,
    op: &str,
) -> (String, Option<SerdeRef<K>>) {
    let node = g.nodes[table.node].name.clone();
    let Some(name) = table.store_name.clone() else {
        g.errors.push(format!(
            "{op}: the table produced by {node} has no store to look its rows up in"
        ));
        return (String::new(), None);
    };
    let spec = g.stores.iter().find(|s| s.name == name);
    let key = match spec {
        Some(s) if s.kind == StoreKind::KeyValue => s
            .serdes
            .downcast_ref::<StoreSerdes<K, V>>()
            .map(|serdes| serdes.key.clone()),
        _ => None,
    };
    if key.is_none() {
        g.errors.push(format!(
            "{op}: store {name:?} of the table produced by {node} is not a key-value store of its rows (windowed tables cannot be joined)"
        ));
    }
    (name, key)
}

impl<K: Data, V: Data> KTable<K, V> {
    /// Inner join with `other` on the key: the result has a row for each key present in both
    /// tables, `joiner(value, other_value)`. Each update of either side looks up the other
    /// side's current row and forwards the change of the joined row (the old result as `old`,
    /// so downstream aggregations retract it); a deletion on either side deletes the result.
    /// The result is kept in a store when `materialized` names one or gives a value serde
    /// (`Materialized::default()` keeps none). The two tables must be co-partitioned.
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// let latest = |topic: &str, store: &str| {
    ///     b.stream(topic, Consumed::with(Serdes::string(), Serdes::string()))
    ///         .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
    ///         .reduce(|_old, new| new, Materialized::named(store).in_memory())
    /// };
    /// let names = latest("names", "names-store");
    /// let lines = latest("lines", "lines-store");
    /// names
    ///     .join(&lines, |n: &String, l: &String| format!("{n} on {l}"),
    ///         Materialized::named("drivers").value_serde(Serdes::string()).in_memory())
    ///     .to_stream()
    ///     .to("drivers", Produced::with(Serdes::string(), Serdes::string()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("names", Serdes::string(), Serdes::string()).pipe("d1".into(), "Ann".into())?;
    /// d.input_topic("lines", Serdes::string(), Serdes::string()).pipe("d1".into(), "M15".into())?;
    /// d.input_topic("lines", Serdes::string(), Serdes::string()).pipe("d1".into(), "B63".into())?;
    /// assert_eq!(d.output_topic("drivers", Serdes::string(), Serdes::string()).read_values(),
    ///            vec!["Ann on M15", "Ann on B63"]);
    /// assert_eq!(d.key_value_store::<String, String>("drivers")?.get(&"d1".to_string())?,
    ///            Some("Ann on B63".to_string()));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn join<V2: Data, VR: Data, F>(
        &self,
        other: &KTable<K, V2>,
        joiner: F,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR>
    where
        F: Fn(&V, &V2) -> VR + Send + Sync + 'static,
    {
        self.join_tables(other, Joiner::Inner(Arc::new(joiner)), materialized)
    }

    /// Left join with `other`: a row for each key of this table, `joiner(value, other_value)`
    /// with `None` while `other` has no row for the key. See [`join`](Self::join).
    pub fn left_join<V2: Data, VR: Data, F>(
        &self,
        other: &KTable<K, V2>,
        joiner: F,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR>
    where
        F: Fn(&V, Option<&V2>) -> VR + Send + Sync + 'static,
    {
        self.join_tables(other, Joiner::Left(Arc::new(joiner)), materialized)
    }

    /// Outer join with `other`: a row for each key of either table, with `None` for the side
    /// that has no row. See [`join`](Self::join).
    pub fn outer_join<V2: Data, VR: Data, F>(
        &self,
        other: &KTable<K, V2>,
        joiner: F,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR>
    where
        F: Fn(Option<&V>, Option<&V2>) -> VR + Send + Sync + 'static,
    {
        self.join_tables(other, Joiner::Outer(Arc::new(joiner)), materialized)
    }

    fn join_tables<V2: Data, VR: Data>(
        &self,
        other: &KTable<K, V2>,
        joiner: Joiner<V, V2, VR>,
        m: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        let graph = self.graph.clone();
        let mut g = graph.borrow_mut();
        if !Rc::ptr_eq(&self.graph, &other.graph) {
            g.errors
                .push("join: the two tables come from different StreamsBuilders".into());
        }
        let (left_store, left_key) = lookup_store(&mut g, self, "join");
        let (right_store, _) = lookup_store(&mut g, other, "join");
        let result_store = if m.name.is_some() || m.value_serde.is_some() {
            let name = m
                .name
                .clone()
                .unwrap_or_else(|| g.generate_name("KTABLE-JOIN-STATE-STORE"));
            match (m.key_serde.clone().or(left_key), m.value_serde.clone()) {
                (Some(key), Some(value)) => g.add_store(StoreSpec {
                    name: name.clone(),
                    kind: StoreKind::KeyValue,
                    backend: m.backend,
                    logging: m.logging,
                    caching: m.caching,
                    serdes: Arc::new(StoreSerdes::<K, VR> { key, value }),
                }),
                _ => g.errors.push(format!(
                    "join: store {name:?} needs a value serde (Materialized::value_serde)"
                )),
            }
            Some(name)
        } else {
            None
        };
        let this_name = g.generate_name("KTABLE-JOINTHIS");
        let other_name = g.generate_name("KTABLE-JOINOTHER");
        let merge_name = g.generate_name("KTABLE-MERGE");
        let (j1, rs) = (joiner.clone(), right_store.clone());
        let this = g.add_node(
            this_name,
            NodeKind::Processor,
            &[self.node],
            Arc::new(ProcessorFactory::<
                K,
                Change<V>,
                TableJoinLeftSide<K, V, V2, VR>,
                _,
            >::new(move || TableJoinLeftSide {
                joiner: j1.clone(),
                right_store: rs.clone(),
                right: None,
            })),
        );
        g.connect_store(this, &right_store);
        let (j2, ls) = (joiner, left_store.clone());
        let that = g.add_node(
            other_name,
            NodeKind::Processor,
            &[other.node],
            Arc::new(ProcessorFactory::<
                K,
                Change<V2>,
                TableJoinRightSide<K, V, V2, VR>,
                _,
            >::new(move || TableJoinRightSide {
                joiner: j2.clone(),
                left_store: ls.clone(),
                left: None,
            })),
        );
        g.connect_store(that, &left_store);
        let store_name = result_store.clone();
        let merge = g.add_node(
            merge_name,
            NodeKind::Processor,
            &[this, that],
            Arc::new(
                ProcessorFactory::<K, Change<VR>, TableJoinMerge<K, VR>, _>::new(move || {
                    TableJoinMerge {
                        store_name: store_name.clone(),
                        store: None,
                        _types: PhantomData,
                    }
                }),
            ),
        );
        if let Some(s) = &result_store {
            g.connect_store(merge, s);
        }
        g.require_copartitioned(&[self.node, other.node]);
        drop(g);
        KTable {
            graph,
            node: merge,
            store_name: result_store,
            emit: None,
            suppress_spec: None,
            _types: PhantomData,
        }
    }
}
