//! [`KGroupedTable`]: a table regrouped by [`KTable::group_by`](super::KTable::group_by),
//! ready for `count`, `reduce` or `aggregate` with retraction.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use super::{KTable, add_table_store};
use crate::operators::table_aggregate::{TableAggregate, TableFold, TableRetract};
use crate::processor::Data;
use crate::record::Change;
use crate::serde::{SerdeRef, Serdes};
use crate::stream::Materialized;
use crate::topology::node::ProcessorFactory;
use crate::topology::{GraphBuilder, NodeKind};

/// A table regrouped by a new key. Every aggregation takes an *adder* (a row joins the group)
/// and a *subtractor* (a row leaves it, or its old value is replaced), so an update to a row
/// retracts its old value before adding the new one. A group whose rows all left keeps its
/// aggregate (0 for `count`), as in Kafka Streams.
pub struct KGroupedTable<K, V> {
    pub(crate) graph: Rc<RefCell<GraphBuilder>>,
    /// The repartition source, whose records are `Change<V>`.
    pub(crate) node: usize,
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) value_serde: SerdeRef<V>,
}

impl<K: Data, V: Data> KGroupedTable<K, V> {
    fn aggregate_with<A: Data>(
        &self,
        adder: TableFold<K, V, A>,
        subtractor: TableRetract<K, V, A>,
        m: Materialized<K, A>,
        value: Option<SerdeRef<A>>,
        op: &str,
    ) -> KTable<K, A> {
        let mut g = self.graph.borrow_mut();
        let store = add_table_store(
            &mut g,
            &m,
            Some(self.key_serde.clone()),
            value.clone(),
            |g| g.generate_name("KTABLE-AGGREGATE-STATE-STORE"),
            op,
        );
        let name = g.generate_name("KTABLE-AGGREGATE");
        let store_name = store.clone();
        let factory = Arc::new(
            ProcessorFactory::<K, Change<V>, TableAggregate<K, V, A>, _>::new(move || {
                TableAggregate {
                    store_name: store_name.clone(),
                    adder: adder.clone(),
                    subtractor: subtractor.clone(),
                    store: None,
                }
            }),
        );
        let node = g.add_node(name, NodeKind::Processor, &[self.node], factory);
        g.connect_store(node, &store);
        drop(g);
        KTable::from_node(
            self.graph.clone(),
            node,
            Some(store),
            Some(m.key_serde.unwrap_or_else(|| self.key_serde.clone())),
            m.value_serde.or(value),
        )
    }

    /// Number of rows per group.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// // Which line each bus is on now; how many buses each line has.
    /// b.table("bus-line", Consumed::with(Serdes::string(), Serdes::string()), Materialized::named("bus-line"))
    ///     .group_by(|_bus, line| (line.clone(), ()), Grouped::with(Serdes::string(), Serdes::unit()))
    ///     .count(Materialized::named("buses-per-line"));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let buses = d.input_topic("bus-line", Serdes::string(), Serdes::string());
    /// buses.pipe("bus-1".into(), "M15".into())?;
    /// buses.pipe("bus-2".into(), "M15".into())?;
    /// buses.pipe("bus-1".into(), "B63".into())?; // moves: M15 loses one
    /// let counts = d.key_value_store::<String, i64>("buses-per-line")?;
    /// assert_eq!(counts.get(&"M15".to_string())?, Some(1));
    /// assert_eq!(counts.get(&"B63".to_string())?, Some(1));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn count(&self, materialized: Materialized<K, i64>) -> KTable<K, i64> {
        self.aggregate_with(
            Arc::new(|_, _, c| c.unwrap_or(0) + 1),
            Arc::new(|_, _, c| Some(c.unwrap_or(0) - 1)),
            materialized,
            Some(Arc::new(Serdes::i64())),
            "count",
        )
    }

    /// Combines the rows of a group: `adder(aggregate, value)` when a row joins (the first
    /// value is the first aggregate), `subtractor(aggregate, value)` when it leaves.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// // Total seats per line, from each bus's (line, seats).
    /// b.table("buses", Consumed::with(Serdes::string(), Serdes::json::<(String, i64)>()), Materialized::named("buses"))
    ///     .group_by(|_bus, (line, seats)| (line.clone(), *seats), Grouped::with(Serdes::string(), Serdes::i64()))
    ///     .reduce(|a, b| a + b, |a, b| a - b, Materialized::named("seats-per-line"));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let buses = d.input_topic("buses", Serdes::string(), Serdes::json::<(String, i64)>());
    /// buses.pipe("bus-1".into(), ("M15".into(), 40))?;
    /// buses.pipe("bus-2".into(), ("M15".into(), 60))?;
    /// buses.pipe("bus-1".into(), ("M15".into(), 45))?; // an update: 40 out, 45 in
    /// assert_eq!(d.key_value_store::<String, i64>("seats-per-line")?.get(&"M15".into())?, Some(105));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn reduce<FA, FS>(
        &self,
        adder: FA,
        subtractor: FS,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V>
    where
        FA: Fn(V, V) -> V + Send + Sync + 'static,
        FS: Fn(V, V) -> V + Send + Sync + 'static,
    {
        self.aggregate_with(
            Arc::new(move |_, v: &V, agg| match agg {
                Some(a) => adder(a, v.clone()),
                None => v.clone(),
            }),
            Arc::new(move |_, v: &V, agg: Option<V>| agg.map(|a| subtractor(a, v.clone()))),
            materialized,
            Some(self.value_serde.clone()),
            "reduce",
        )
    }

    /// Folds the rows of a group into an aggregate starting at `initializer()`:
    /// `adder(key, value, aggregate)` when a row joins, `subtractor(key, value, aggregate)`
    /// when it leaves. The `Materialized` must carry the aggregate's value serde.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// // Buses per line, as a sorted list, from each bus's current line.
    /// b.table("bus-line", Consumed::with(Serdes::string(), Serdes::string()), Materialized::named("bus-line"))
    ///     .group_by(|bus, line| (line.clone(), bus.clone()), Grouped::with(Serdes::string(), Serdes::string()))
    ///     .aggregate(
    ///         Vec::<String>::new,
    ///         |_line, bus, mut buses| { buses.push(bus.clone()); buses.sort(); buses },
    ///         |_line, bus, mut buses| { buses.retain(|b| b != bus); buses },
    ///         Materialized::named("line-buses").value_serde(Serdes::json::<Vec<String>>()),
    ///     );
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let buses = d.input_topic("bus-line", Serdes::string(), Serdes::string());
    /// buses.pipe("bus-2".into(), "M15".into())?;
    /// buses.pipe("bus-1".into(), "M15".into())?;
    /// buses.pipe("bus-2".into(), "B63".into())?;
    /// let lines = d.key_value_store::<String, Vec<String>>("line-buses")?;
    /// assert_eq!(lines.get(&"M15".into())?, Some(vec!["bus-1".to_string()]));
    /// assert_eq!(lines.get(&"B63".into())?, Some(vec!["bus-2".to_string()]));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn aggregate<A: Data, I, FA, FS>(
        &self,
        initializer: I,
        adder: FA,
        subtractor: FS,
        materialized: Materialized<K, A>,
    ) -> KTable<K, A>
    where
        I: Fn() -> A + Send + Sync + 'static,
        FA: Fn(&K, &V, A) -> A + Send + Sync + 'static,
        FS: Fn(&K, &V, A) -> A + Send + Sync + 'static,
    {
        let init = Arc::new(initializer);
        let init2 = init.clone();
        self.aggregate_with(
            Arc::new(move |k, v, agg| adder(k, v, agg.unwrap_or_else(|| init()))),
            Arc::new(move |k, v, agg| Some(subtractor(k, v, agg.unwrap_or_else(|| init2())))),
            materialized,
            None,
            "aggregate",
        )
    }
}
