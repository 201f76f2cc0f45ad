//! Table-table joins on [`KTable`]: `join`, `left_join`, `outer_join`.

use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use super::{KTable, materialize_for_lookup};
use crate::operators::join::Joiner;
use crate::operators::join::foreign_key::{
    AnswerRight, FkExtractor, LeftEvent, ResolveLeft, Response, ResponseSerde, RightEvent,
    SubscribeLeft, Subscription, SubscriptionSerde, Wrap,
};
use crate::operators::join::table_table::{TableJoinLeftSide, TableJoinMerge, TableJoinRightSide};
use crate::processor::Data;
use crate::record::Change;
use crate::serde::{SerdeRef, Serdes};
use crate::state::handle::StoreSerdes;
use crate::state::spec::{StoreKind, StoreSpec};
use crate::stream::{KStream, Materialized, Repartitioned};
use crate::topology::node::ProcessorFactory;
use crate::topology::{GraphBuilder, NodeKind};

/// The key and value serdes of a table's store.
type RowSerdes<K, V> = (SerdeRef<K>, SerdeRef<V>);

/// The key-value store holding `table`'s rows, for the other side to look rows up in (added
/// behind the table if it has none), and its serdes; reports at `build()` a table whose rows
/// cannot be looked up. Call it before adding the join's nodes, so that a store added behind
/// the table is written before they run.
fn lookup_store<K: Data, V: Data>(
    table: &KTable<K, V>,
    op: &str,
) -> (String, Option<RowSerdes<K, V>>) {
    let name = materialize_for_lookup(table, op);
    let mut g = table.graph.borrow_mut();
    let node = g.nodes[table.node].name.clone();
    let spec = g.stores.iter().find(|s| s.name == name);
    let serdes = match spec {
        Some(s) if s.kind == StoreKind::KeyValue => s
            .serdes
            .downcast_ref::<StoreSerdes<K, V>>()
            .map(|serdes| (serdes.key.clone(), serdes.value.clone())),
        _ => None,
    };
    if serdes.is_none() && spec.is_some() {
        g.errors.push(format!(
            "{op}: store {name:?} of the table produced by {node} is not a key-value store of its rows (windowed tables cannot be joined)"
        ));
    }
    (name, serdes)
}

impl<K: Data, V: Data> KTable<K, V> {
    /// Inner join with `other` on the key: the result has a row for each key present in both
    /// tables, `joiner(value, other_value)`. Each update of either side looks up the other
    /// side's current row and forwards the change of the joined row (the old result as `old`,
    /// so downstream aggregations retract it); a deletion on either side deletes the result.
    /// The result is kept in a store when `materialized` names one or gives a value serde
    /// (`Materialized::default()` keeps none). The two tables must be co-partitioned.
    ///
    /// # Examples
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
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// let names = b.table("names", Consumed::with(Serdes::string(), Serdes::string()), Materialized::named("names"));
    /// let lines = b.table("lines", Consumed::with(Serdes::string(), Serdes::string()), Materialized::named("lines"));
    /// names.left_join(&lines,
    ///         |n: &String, l: Option<&String>| format!("{n} on {}", l.map_or("-", |l| l.as_str())),
    ///         Materialized::named("drivers").value_serde(Serdes::string()))
    ///     .to_stream()
    ///     .to("drivers", Produced::with(Serdes::string(), Serdes::string()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("names", Serdes::string(), Serdes::string()).pipe("d1".into(), "Ann".into())?;
    /// d.input_topic("lines", Serdes::string(), Serdes::string()).pipe("d1".into(), "M15".into())?;
    /// assert_eq!(d.output_topic("drivers", Serdes::string(), Serdes::string()).read_values(),
    ///            vec!["Ann on -", "Ann on M15"]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
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
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// let names = b.table("names", Consumed::with(Serdes::string(), Serdes::string()), Materialized::named("names"));
    /// let lines = b.table("lines", Consumed::with(Serdes::string(), Serdes::string()), Materialized::named("lines"));
    /// names.outer_join(&lines,
    ///         |n: Option<&String>, l: Option<&String>| format!("{}/{}", n.map_or("-", |s| s.as_str()), l.map_or("-", |s| s.as_str())),
    ///         Materialized::named("drivers").value_serde(Serdes::string()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("lines", Serdes::string(), Serdes::string()).pipe("d1".into(), "M15".into())?;
    /// d.input_topic("names", Serdes::string(), Serdes::string()).pipe("d2".into(), "Bo".into())?;
    /// let drivers = d.key_value_store::<String, String>("drivers")?;
    /// assert_eq!(drivers.get(&"d1".to_string())?, Some("-/M15".to_string()));
    /// assert_eq!(drivers.get(&"d2".to_string())?, Some("Bo/-".to_string()));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
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
        let (left_store, left_serdes) = lookup_store(self, "join");
        let (right_store, _) = lookup_store(other, "join");
        let graph = self.graph.clone();
        let mut g = graph.borrow_mut();
        if !Rc::ptr_eq(&self.graph, &other.graph) {
            g.errors
                .push("join: the two tables come from different StreamsBuilders".into());
        }
        let left_key = left_serdes.map(|(k, _)| k);
        let result_store = if m.name.is_some() || m.value_serde.is_some() {
            let name = m
                .name
                .clone()
                .unwrap_or_else(|| g.generate_name("KTABLE-JOIN-STATE-STORE"));
            match (
                m.key_serde.clone().or(left_key.clone()),
                m.value_serde.clone(),
            ) {
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
            key_serde: m.key_serde.clone().or(left_key),
            value_serde: m.value_serde.clone(),
            _types: PhantomData,
        }
    }

    /// Foreign-key inner join with `other`: each row of this table points, through
    /// `foreign_key(value)`, at a row of `other` (keyed differently, partitioned differently);
    /// the result has a row for each row of this table whose foreign key names a row of
    /// `other`, `joiner(value, other_value)`, under this table's key.
    ///
    /// As in Kafka Streams, each left row subscribes to its foreign key through an internal
    /// topic keyed by the foreign key (`<name>-subscription-registration-repartition`, read
    /// next to `other`, which keeps the subscriptions in `<name>-subscription-store`); every
    /// change of a right row, and every subscription, is answered through
    /// `<name>-subscription-response-repartition`, keyed by the left key, with a hash of the
    /// left value it answers, so an answer for a value since replaced is dropped. A row whose
    /// foreign key changes unsubscribes from the old one, and its old result is replaced (or,
    /// if the new foreign key has no row, deleted); a deleted left row deletes its result at
    /// once. The result is kept in a store (`materialized` must give a value serde), so every
    /// change carries the row it replaces. `<name>` is the store's name, else generated.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// let latest = |topic: &str, store: &str| {
    ///     b.stream(topic, Consumed::with(Serdes::string(), Serdes::string()))
    ///         .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
    ///         .reduce(|_old, new| new, Materialized::named(store).in_memory())
    /// };
    /// // buses: bus id -> route id; routes: route id -> route name
    /// let buses = latest("buses", "buses-store");
    /// let routes = latest("routes", "routes-store");
    /// buses
    ///     .join_foreign_key(&routes, |route: &String| route.clone(),
    ///         |route: &String, name: &String| format!("{route}: {name}"),
    ///         Materialized::named("bus-routes").value_serde(Serdes::string()).in_memory())
    ///     .to_stream()
    ///     .to("bus-routes", Produced::with(Serdes::string(), Serdes::string()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let (bus, route) = (d.input_topic("buses", Serdes::string(), Serdes::string()),
    ///                     d.input_topic("routes", Serdes::string(), Serdes::string()));
    /// route.pipe("M15".into(), "First Avenue".into())?;
    /// bus.pipe("bus-7".into(), "M15".into())?;
    /// route.pipe("M15".into(), "1st Av".into())?;
    /// assert_eq!(d.output_topic("bus-routes", Serdes::string(), Serdes::string()).read_key_values(), vec![
    ///     ("bus-7".to_string(), "M15: First Avenue".to_string()),
    ///     ("bus-7".to_string(), "M15: 1st Av".to_string()),
    /// ]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn join_foreign_key<KO: Data, VO: Data, VR: Data, FK, F>(
        &self,
        other: &KTable<KO, VO>,
        foreign_key: FK,
        joiner: F,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR>
    where
        FK: Fn(&V) -> KO + Send + Sync + 'static,
        F: Fn(&V, &VO) -> VR + Send + Sync + 'static,
    {
        self.foreign_key_join(
            other,
            Arc::new(foreign_key),
            Joiner::Inner(Arc::new(joiner)),
            materialized,
        )
    }

    /// Foreign-key left join with `other`: like [`join_foreign_key`](Self::join_foreign_key),
    /// with a row for every row of this table, `joiner(value, None)` while its foreign key
    /// names no row of `other`.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// // buses: bus id -> route id; routes: route id -> route name
    /// let buses = b.table("buses", Consumed::with(Serdes::string(), Serdes::string()), Materialized::named("buses"));
    /// let routes = b.table("routes", Consumed::with(Serdes::string(), Serdes::string()), Materialized::named("routes"));
    /// buses.left_join_foreign_key(&routes, |route: &String| route.clone(),
    ///         |route: &String, name: Option<&String>| format!("{route}: {}", name.map_or("?", |n| n.as_str())),
    ///         Materialized::named("bus-routes").value_serde(Serdes::string()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("routes", Serdes::string(), Serdes::string()).pipe("M15".into(), "First Avenue".into())?;
    /// let bus = d.input_topic("buses", Serdes::string(), Serdes::string());
    /// bus.pipe("bus-7".into(), "M15".into())?;
    /// bus.pipe("bus-8".into(), "X99".into())?; // no such route: kept, with None
    /// let store = d.key_value_store::<String, String>("bus-routes")?;
    /// assert_eq!(store.get(&"bus-7".to_string())?, Some("M15: First Avenue".to_string()));
    /// assert_eq!(store.get(&"bus-8".to_string())?, Some("X99: ?".to_string()));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn left_join_foreign_key<KO: Data, VO: Data, VR: Data, FK, F>(
        &self,
        other: &KTable<KO, VO>,
        foreign_key: FK,
        joiner: F,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR>
    where
        FK: Fn(&V) -> KO + Send + Sync + 'static,
        F: Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
    {
        self.foreign_key_join(
            other,
            Arc::new(foreign_key),
            Joiner::Left(Arc::new(joiner)),
            materialized,
        )
    }

    fn foreign_key_join<KO: Data, VO: Data, VR: Data>(
        &self,
        other: &KTable<KO, VO>,
        foreign_key: FkExtractor<V, KO>,
        joiner: Joiner<V, VO, VR>,
        m: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        let op = "join_foreign_key";
        let (left_store, left_serdes) = lookup_store(self, op);
        let (right_store, right_serdes) = lookup_store(other, op);
        let graph = self.graph.clone();
        let mut g = graph.borrow_mut();
        if !Rc::ptr_eq(&self.graph, &other.graph) {
            g.errors.push(
                "join_foreign_key: the two tables come from different StreamsBuilders".into(),
            );
        }
        let base = m
            .name
            .clone()
            .unwrap_or_else(|| g.generate_name("KTABLE-FK-JOIN"));
        let placeholder = |g: &mut GraphBuilder, msg: Option<String>| {
            if let Some(msg) = msg {
                g.errors.push(msg);
            }
            // `build()` fails on the reported errors; this handle is never instantiated.
            KTable {
                graph: self.graph.clone(),
                node: self.node,
                store_name: None,
                emit: None,
                suppress_spec: None,
                key_serde: None,
                value_serde: None,
                _types: PhantomData,
            }
        };
        let (Some((k_serde, v_serde)), Some((ko_serde, vo_serde))) = (left_serdes, right_serdes)
        else {
            return placeholder(&mut g, None);
        };
        let Some(result_serde) = m.value_serde.clone() else {
            return placeholder(
                &mut g,
                Some(format!(
                    "{op}: the result store {base:?} needs a value serde (Materialized::value_serde)"
                )),
            );
        };
        let result_store = base.clone();
        let result_key = m.key_serde.clone().unwrap_or_else(|| k_serde.clone());
        let result_value = result_serde;
        g.add_store(StoreSpec {
            name: result_store.clone(),
            kind: StoreKind::KeyValue,
            backend: m.backend,
            logging: m.logging,
            caching: m.caching,
            serdes: Arc::new(StoreSerdes::<K, VR> {
                key: result_key.clone(),
                value: result_value.clone(),
            }),
        });
        let subscription_store = format!("{base}-subscription-store");
        g.add_store(StoreSpec {
            name: subscription_store.clone(),
            kind: StoreKind::KeyValue,
            backend: m.backend,
            logging: m.logging,
            caching: false,
            serdes: Arc::new(StoreSerdes::<Vec<u8>, Vec<u8>> {
                key: Arc::new(Serdes::bytes()),
                value: Arc::new(Serdes::bytes()),
            }),
        });

        // Left side: subscriptions out, keyed by foreign key.
        let (fk, ko, vs) = (foreign_key, ko_serde.clone(), v_serde.clone());
        let subscribe = g.add_node(
            format!("{base}-subscribe"),
            NodeKind::Processor,
            &[self.node],
            Arc::new(
                ProcessorFactory::<K, Change<V>, SubscribeLeft<K, V, KO>, _>::new(move || {
                    SubscribeLeft {
                        fk: fk.clone(),
                        fk_serde: ko.clone(),
                        value_serde: vs.clone(),
                        _types: PhantomData,
                    }
                }),
            ),
        );
        drop(g);
        let registration = KStream::<KO, Subscription<K>>::from_node(graph.clone(), subscribe)
            .repartition(Repartitioned {
                key_serde: ko_serde.clone(),
                value_serde: Arc::new(SubscriptionSerde(k_serde.clone())),
                name: Some(format!("{base}-subscription-registration")),
                partitions: None,
                partitioner: None,
            });

        // Right side: subscriptions and right rows in, answers out, keyed by the left key.
        let mut g = graph.borrow_mut();
        let wrap_subscription = g.add_node(
            format!("{base}-subscription-in"),
            NodeKind::Processor,
            &[registration.node],
            Arc::new(ProcessorFactory::<
                KO,
                Subscription<K>,
                Wrap<Subscription<K>, RightEvent<K, VO>>,
                _,
            >::new(|| Wrap(RightEvent::Subscription))),
        );
        let wrap_right = g.add_node(
            format!("{base}-right-changes"),
            NodeKind::Processor,
            &[other.node],
            Arc::new(ProcessorFactory::<
                KO,
                Change<VO>,
                Wrap<Change<VO>, RightEvent<K, VO>>,
                _,
            >::new(|| Wrap(RightEvent::Row))),
        );
        let (ko, ks, rs, ss) = (
            ko_serde,
            k_serde.clone(),
            right_store.clone(),
            subscription_store.clone(),
        );
        let answer = g.add_node(
            format!("{base}-answer"),
            NodeKind::Processor,
            &[wrap_subscription, wrap_right],
            Arc::new(ProcessorFactory::<
                KO,
                RightEvent<K, VO>,
                AnswerRight<K, KO, VO>,
                _,
            >::new(move || AnswerRight {
                fk_serde: ko.clone(),
                pk_serde: ks.clone(),
                right_store: rs.clone(),
                subscription_store: ss.clone(),
                stores: None,
            })),
        );
        g.connect_store(answer, &right_store);
        g.connect_store(answer, &subscription_store);
        drop(g);
        let response = KStream::<K, Response<VO>>::from_node(graph.clone(), answer).repartition(
            Repartitioned {
                key_serde: k_serde,
                value_serde: Arc::new(ResponseSerde(vo_serde)),
                name: Some(format!("{base}-subscription-response")),
                partitions: None,
                partitioner: None,
            },
        );

        // Left side again: answers joined with the current left row.
        let mut g = graph.borrow_mut();
        let wrap_answer = g.add_node(
            format!("{base}-response-in"),
            NodeKind::Processor,
            &[response.node],
            Arc::new(ProcessorFactory::<
                K,
                Response<VO>,
                Wrap<Response<VO>, LeftEvent<V, VO>>,
                _,
            >::new(|| Wrap(LeftEvent::Answer))),
        );
        let wrap_left = g.add_node(
            format!("{base}-left-changes"),
            NodeKind::Processor,
            &[self.node],
            Arc::new(ProcessorFactory::<
                K,
                Change<V>,
                Wrap<Change<V>, LeftEvent<V, VO>>,
                _,
            >::new(|| Wrap(LeftEvent::Row))),
        );
        let (ls, res) = (left_store.clone(), result_store.clone());
        let resolve = g.add_node(
            format!("{base}-resolve"),
            NodeKind::Processor,
            &[wrap_left, wrap_answer],
            Arc::new(ProcessorFactory::<
                K,
                LeftEvent<V, VO>,
                ResolveLeft<K, V, VO, VR>,
                _,
            >::new(move || ResolveLeft {
                joiner: joiner.clone(),
                value_serde: v_serde.clone(),
                left_store: ls.clone(),
                result_store: res.clone(),
                stores: None,
            })),
        );
        g.connect_store(resolve, &left_store);
        g.connect_store(resolve, &result_store);
        g.require_copartitioned(&[registration.node, other.node]);
        g.require_copartitioned(&[response.node, self.node]);
        drop(g);
        KTable {
            graph,
            node: resolve,
            store_name: Some(result_store),
            emit: None,
            suppress_spec: None,
            key_serde: Some(result_key),
            value_serde: Some(result_value),
            _types: PhantomData,
        }
    }
}
