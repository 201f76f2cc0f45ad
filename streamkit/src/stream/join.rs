//! Stream-stream joins on [`KStream`]: `join`, `left_join`, `outer_join` within
//! [`JoinWindows`].

use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use super::{KStream, Repartitioned, StreamJoined};
use crate::operators::join::Joiner;
use crate::operators::join::stream_stream::{
    JoinSide, JoinSpec, StreamStreamJoin, TagLeft, TagRight,
};
use crate::operators::late::LateRecords;
use crate::operators::sliding_aggregate::list_serde;
use crate::processor::Data;
use crate::serde::Serdes;
use crate::state::handle::StoreSerdes;
use crate::state::spec::{StoreKind, StoreSpec};
use crate::topology::NodeKind;
use crate::topology::node::ProcessorFactory;
use crate::window::JoinWindows;

impl<K: Data, V: Data> KStream<K, V> {
    /// Inner join with `other` on the key, within `windows`: each pair of records of one key
    /// whose timestamps are close enough (`other`'s at most `before` earlier or `after`
    /// later) gives `joiner(value, other_value)`, at the later of the two timestamps.
    ///
    /// Both inputs wait in changelogged window stores (see [`StreamJoined`]) for partners;
    /// records arriving after their window closed (stream time past their window's end plus
    /// grace) are dropped and counted as late. The two inputs must be co-partitioned, which
    /// the application checks when it starts; an input whose key an upstream step changed
    /// is repartitioned first (`<name>-left-repartition`, `<name>-right-repartition`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// let arrivals = b.stream("arrivals", Consumed::with(Serdes::string(), Serdes::string()));
    /// let departures = b.stream("departures", Consumed::with(Serdes::string(), Serdes::string()));
    /// arrivals
    ///     .join(&departures, |a: &String, d: &String| format!("{a}->{d}"),
    ///         JoinWindows::of(Duration::from_secs(60)),
    ///         StreamJoined::with(Serdes::string(), Serdes::string(), Serdes::string()).named("dwell"))
    ///     .to("dwell", Produced::with(Serdes::string(), Serdes::string()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("arrivals", Serdes::string(), Serdes::string()).pipe_at("bus-7".into(), "in".into(), 1_000)?;
    /// d.input_topic("departures", Serdes::string(), Serdes::string()).pipe_at("bus-7".into(), "out".into(), 45_000)?;
    /// let r = d.output_topic("dwell", Serdes::string(), Serdes::string()).read_record().unwrap();
    /// assert_eq!((r.key.as_str(), r.value.as_str(), r.timestamp), ("bus-7", "in->out", 45_000));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn join<V2: Data, VR: Data, F>(
        &self,
        other: &KStream<K, V2>,
        joiner: F,
        windows: JoinWindows,
        joined: StreamJoined<K, V, V2>,
    ) -> KStream<K, VR>
    where
        F: Fn(&V, &V2) -> VR + Send + Sync + 'static,
    {
        self.join_with(other, Joiner::Inner(Arc::new(joiner)), windows, joined)
    }

    /// Left join with `other` within `windows`: like [`join`](Self::join), and a record of
    /// this stream that met no partner gives `joiner(value, None)` once its window has closed
    /// (stream time past its timestamp plus `after` plus grace), at its own timestamp. It
    /// waits in a changelogged store until then, so no `None` result is emitted for a record
    /// that later finds a partner (Kafka Streams 3.1+ semantics).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// let arrivals = b.stream("arrivals", Consumed::with(Serdes::string(), Serdes::string()));
    /// let departures = b.stream("departures", Consumed::with(Serdes::string(), Serdes::string()));
    /// arrivals
    ///     .left_join(&departures,
    ///         |a: &String, d: Option<&String>| format!("{a}->{}", d.map_or("?", |d| d.as_str())),
    ///         JoinWindows::of(Duration::from_millis(10)),
    ///         StreamJoined::with(Serdes::string(), Serdes::string(), Serdes::string()))
    ///     .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let arr = d.input_topic("arrivals", Serdes::string(), Serdes::string());
    /// let out = d.output_topic("out", Serdes::string(), Serdes::string());
    /// arr.pipe_at("bus-1".into(), "in".into(), 100)?;
    /// assert!(out.is_empty()); // a partner may still come until 110
    /// arr.pipe_at("bus-2".into(), "in".into(), 111)?; // stream time 111 closes bus-1's window
    /// assert_eq!(out.read_key_values(), vec![("bus-1".to_string(), "in->?".to_string())]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn left_join<V2: Data, VR: Data, F>(
        &self,
        other: &KStream<K, V2>,
        joiner: F,
        windows: JoinWindows,
        joined: StreamJoined<K, V, V2>,
    ) -> KStream<K, VR>
    where
        F: Fn(&V, Option<&V2>) -> VR + Send + Sync + 'static,
    {
        self.join_with(other, Joiner::Left(Arc::new(joiner)), windows, joined)
    }

    /// Outer join with `other` within `windows`: like [`left_join`](Self::left_join), and
    /// likewise for records of `other` without a partner: `joiner(None, Some(other_value))`
    /// once their window (`before` past their timestamp, plus grace) has closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// let left = b.stream("l", Consumed::with(Serdes::string(), Serdes::i64()));
    /// let right = b.stream("r", Consumed::with(Serdes::string(), Serdes::i64()));
    /// left.outer_join(&right,
    ///         |l: Option<&i64>, r: Option<&i64>| format!("{l:?}/{r:?}"),
    ///         JoinWindows::of(Duration::from_millis(5)),
    ///         StreamJoined::with(Serdes::string(), Serdes::i64(), Serdes::i64()))
    ///     .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let (l, r) = (d.input_topic("l", Serdes::string(), Serdes::i64()), d.input_topic("r", Serdes::string(), Serdes::i64()));
    /// r.pipe_at("a".into(), 1, 0)?;
    /// l.pipe_at("b".into(), 2, 3)?;
    /// l.pipe_at("a".into(), 3, 4)?;   // meets r's 1 (4 - 0 <= 5)
    /// r.pipe_at("c".into(), 4, 20)?;  // closes b's window
    /// assert_eq!(d.output_topic("out", Serdes::string(), Serdes::string()).read_values(),
    ///            vec!["Some(3)/Some(1)", "Some(2)/None"]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn outer_join<V2: Data, VR: Data, F>(
        &self,
        other: &KStream<K, V2>,
        joiner: F,
        windows: JoinWindows,
        joined: StreamJoined<K, V, V2>,
    ) -> KStream<K, VR>
    where
        F: Fn(Option<&V>, Option<&V2>) -> VR + Send + Sync + 'static,
    {
        self.join_with(other, Joiner::Outer(Arc::new(joiner)), windows, joined)
    }

    fn join_with<V2: Data, VR: Data>(
        &self,
        other: &KStream<K, V2>,
        joiner: Joiner<V, V2, VR>,
        windows: JoinWindows,
        joined: StreamJoined<K, V, V2>,
    ) -> KStream<K, VR> {
        let graph = self.graph.clone();
        if !Rc::ptr_eq(&self.graph, &other.graph) {
            graph
                .borrow_mut()
                .errors
                .push("join: the two streams come from different StreamsBuilders".into());
        }
        let base = joined
            .name
            .clone()
            .unwrap_or_else(|| graph.borrow_mut().generate_name("KSTREAM-JOIN"));
        // Records of one key must meet in one task: repartition a side whose key changed.
        let left = if self.key_changed {
            self.repartition(Repartitioned {
                key_serde: joined.key_serde.clone(),
                value_serde: joined.left_serde.clone(),
                name: Some(format!("{base}-left")),
                partitions: None,
                partitioner: None,
            })
        } else {
            self.clone()
        };
        let right = if other.key_changed {
            other.repartition(Repartitioned {
                key_serde: joined.key_serde.clone(),
                value_serde: joined.right_serde.clone(),
                name: Some(format!("{base}-right")),
                partitions: None,
                partitioner: None,
            })
        } else {
            other.clone()
        };
        let store_base = joined.store_name.clone().unwrap_or_else(|| base.clone());
        let left_store = format!("{store_base}-this-join-store");
        let right_store = format!("{store_base}-other-join-store");
        let outer_store = joiner
            .keeps_left()
            .then(|| format!("{store_base}-outer-shared-join-store"));
        let left_list = list_serde(joined.left_serde.clone());
        let right_list = list_serde(joined.right_serde.clone());
        let window_kind = StoreKind::Window {
            retention_ms: windows.retention_ms(),
        };

        let mut g = graph.borrow_mut();
        g.add_store(StoreSpec {
            name: left_store.clone(),
            kind: window_kind,
            backend: joined.backend,
            logging: joined.logging,
            caching: false,
            serdes: Arc::new(StoreSerdes::<K, Vec<V>> {
                key: joined.key_serde.clone(),
                value: left_list.clone(),
            }),
        });
        g.add_store(StoreSpec {
            name: right_store.clone(),
            kind: window_kind,
            backend: joined.backend,
            logging: joined.logging,
            caching: false,
            serdes: Arc::new(StoreSerdes::<K, Vec<V2>> {
                key: joined.key_serde.clone(),
                value: right_list.clone(),
            }),
        });
        if let Some(name) = &outer_store {
            g.add_store(StoreSpec {
                name: name.clone(),
                kind: StoreKind::KeyValue,
                backend: joined.backend,
                logging: joined.logging,
                caching: false,
                serdes: Arc::new(StoreSerdes::<Vec<u8>, Vec<u8>> {
                    key: Arc::new(Serdes::bytes()),
                    value: Arc::new(Serdes::bytes()),
                }),
            });
        }
        let (this_name, other_name) = match &joined.name {
            Some(n) => (format!("{n}-join-this"), format!("{n}-join-other")),
            None => (
                g.generate_name("KSTREAM-JOINTHIS"),
                g.generate_name("KSTREAM-JOINOTHER"),
            ),
        };
        let join_name = match &joined.name {
            Some(n) => format!("{n}-join"),
            None => base,
        };
        let tag_left = g.add_node(
            this_name,
            NodeKind::Processor,
            &[left.node],
            Arc::new(ProcessorFactory::<K, V, TagLeft<V2>, _>::new(|| {
                TagLeft(PhantomData)
            })),
        );
        let tag_right = g.add_node(
            other_name,
            NodeKind::Processor,
            &[right.node],
            Arc::new(ProcessorFactory::<K, V2, TagRight<V>, _>::new(|| {
                TagRight(PhantomData)
            })),
        );
        let spec = Arc::new(JoinSpec {
            windows,
            joiner,
            left_store: left_store.clone(),
            right_store: right_store.clone(),
            outer_store: outer_store.clone(),
            key_serde: joined.key_serde.clone(),
            left_list,
            right_list,
            late_left: LateRecords {
                topic: joined.late_topic.clone(),
                key_serde: joined.key_serde.clone(),
                value_serde: joined.left_serde.clone(),
            },
            late_right: LateRecords {
                topic: joined.late_topic.clone(),
                key_serde: joined.key_serde.clone(),
                value_serde: joined.right_serde.clone(),
            },
        });
        let join = g.add_node(
            join_name,
            NodeKind::Processor,
            &[tag_left, tag_right],
            Arc::new(ProcessorFactory::<
                K,
                JoinSide<V, V2>,
                StreamStreamJoin<K, V, V2, VR>,
                _,
            >::new(move || StreamStreamJoin {
                spec: spec.clone(),
                state: None,
            })),
        );
        g.connect_store(join, &left_store);
        g.connect_store(join, &right_store);
        if let Some(name) = &outer_store {
            g.connect_store(join, name);
        }
        g.require_copartitioned(&[left.node, right.node]);
        drop(g);
        KStream::new(graph, join)
    }
}
