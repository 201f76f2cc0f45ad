//! The typed DSL: [`StreamsBuilder`] and [`KStream`].
//!
//! Every method adds a node to the builder's graph and returns a new stream handle; a handle
//! can be used several times to fan a stream out. Each method's example runs through the
//! [`TopologyTestDriver`](crate::testing::TopologyTestDriver).

pub(crate) mod grouped;
mod join;
mod joined;
mod materialized;
mod table_joins;
pub(crate) mod topic_io;

use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

pub use crate::state::StoreBackend;
pub use grouped::{
    Grouped, KGroupedStream, SessionWindowedKStream, SlidingWindowedKStream, TimeWindowedKStream,
};
pub use joined::StreamJoined;
pub use materialized::Materialized;
pub use topic_io::{Consumed, OffsetReset, Produced, Repartitioned, StreamPartitioner};

use crate::error::Result;
use crate::operators::branch::{Branch, BranchPredicate};
use crate::operators::filter::Filter;
use crate::operators::flat_map::FlatMap;
use crate::operators::flat_map_values::FlatMapValues;
use crate::operators::foreach::Foreach;
use crate::operators::map::Map;
use crate::operators::map_values::MapValues;
use crate::operators::merge::PassThrough;
use crate::operators::peek::Peek;
use crate::operators::select_key::SelectKey;
use crate::operators::sink::{Sink, SinkTopic};
use crate::operators::source::SourceFactory;
use crate::processor::{Data, Processor};
use crate::topology::node::ProcessorFactory;
use crate::topology::{GraphBuilder, InternalTopic, NodeKind, TopicName, Topology};

/// Builds a [`Topology`] with the typed DSL.
///
/// # Examples
///
/// ```
/// use streamkit::prelude::*;
///
/// let builder = StreamsBuilder::new();
/// builder
///     .stream("words", Consumed::with(Serdes::string(), Serdes::string()))
///     .map_values(|v: String| v.to_uppercase())
///     .to("shouted", Produced::with(Serdes::string(), Serdes::string()));
/// let topology = builder.build()?;
/// assert!(topology.describe().to_string().contains("Sink: KSTREAM-SINK-0000000002 (topic: shouted)"));
/// # Ok::<(), streamkit::Error>(())
/// ```
#[derive(Default)]
pub struct StreamsBuilder {
    pub(crate) graph: Rc<RefCell<GraphBuilder>>,
}

impl StreamsBuilder {
    /// An empty builder.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// let topology = b.build()?;
    /// assert_eq!(topology.subtopology_count(), 1);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// A stream of the records of `topic`.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
    ///     .filter(|_, v| *v > 0)
    ///     .to("positive", Produced::with(Serdes::string(), Serdes::i64()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("in", Serdes::string(), Serdes::i64()).pipe_all([("a".to_string(), -1), ("b".to_string(), 4)])?;
    /// assert_eq!(d.output_topic("positive", Serdes::string(), Serdes::i64()).read_key_values(), vec![("b".to_string(), 4)]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn stream<K: Data, V: Data>(&self, topic: &str, consumed: Consumed<K, V>) -> KStream<K, V> {
        self.stream_from(&[topic], consumed)
    }

    /// A stream of the records of several topics (one source node), e.g. all lines' feeds.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream_from(&["red", "blue"], Consumed::with(Serdes::string(), Serdes::i32()))
    ///     .to("all", Produced::with(Serdes::string(), Serdes::i32()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("red", Serdes::string(), Serdes::i32()).pipe("a".into(), 1)?;
    /// d.input_topic("blue", Serdes::string(), Serdes::i32()).pipe("b".into(), 2)?;
    /// let out = d.output_topic("all", Serdes::string(), Serdes::i32());
    /// assert_eq!(out.read_values(), vec![1, 2]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn stream_from<K: Data, V: Data>(
        &self,
        topics: &[&str],
        consumed: Consumed<K, V>,
    ) -> KStream<K, V> {
        let topics = topics
            .iter()
            .map(|t| TopicName::External(t.to_string()))
            .collect();
        self.add_source(topics, consumed)
    }

    /// Runs `connector` beside the application's stream threads (from
    /// [`KafkaStreams::start`](crate::KafkaStreams::start) to `close`) and streams
    /// the records it writes: a Postgres table or a polled API as a source of the topology.
    /// The connector's topics are created when missing; its failure stops the application.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use streamkit::connect::postgres_source::PostgresSource;
    /// use streamkit::prelude::*;
    /// let builder = StreamsBuilder::new();
    /// let stations = PostgresSource::new("stations", "postgres://localhost/cta")
    ///     .table("stations")
    ///     .incrementing("stop_id")
    ///     .key_column("stop_id")
    ///     .topic_prefix("org.chicago.cta.");
    /// builder
    ///     .stream_from_connector(stations, Consumed::with(Serdes::string(), Serdes::json::<serde_json::Value>()))
    ///     .to("stations-copy", Produced::with(Serdes::string(), Serdes::json()));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn stream_from_connector<K: Data, V: Data>(
        &self,
        connector: impl crate::connect::SourceConnector,
        consumed: Consumed<K, V>,
    ) -> KStream<K, V> {
        let topics: Vec<TopicName> = connector
            .topics()
            .into_iter()
            .map(TopicName::External)
            .collect();
        self.graph.borrow_mut().connectors.push(Box::new(connector));
        self.add_source(topics, consumed)
    }

    pub(crate) fn add_source<K: Data, V: Data>(
        &self,
        topics: Vec<TopicName>,
        consumed: Consumed<K, V>,
    ) -> KStream<K, V> {
        let mut g = self.graph.borrow_mut();
        let name = consumed
            .name
            .clone()
            .unwrap_or_else(|| g.generate_name("KSTREAM-SOURCE"));
        let factory = SourceFactory {
            key_serde: consumed.key_serde,
            value_serde: consumed.value_serde,
            handler: consumed.handler,
            timestamp_extractor: consumed.timestamp_extractor,
        };
        if let Some(reset) = consumed.offset_reset {
            for t in &topics {
                g.offset_resets.insert(t.clone(), reset);
            }
        }
        let node = g.add_node(name, NodeKind::Source { topics }, &[], Arc::new(factory));
        KStream::new(self.graph.clone(), node)
    }

    /// A table of the records of `topic`, read as a changelog: the latest value per key, a
    /// null value (a tombstone) deleting the key. Rows are kept in a key-value store named by
    /// `materialized` (serdes default to `consumed`'s), with its own changelog topic, and
    /// each update flows on as a change (new and old value). Values that cannot be
    /// decoded go to `consumed`'s deserialization handler, as for streams.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.table("stations", Consumed::with(Serdes::string(), Serdes::string()), Materialized::named("stations"));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let stations = d.input_topic("stations", Serdes::string(), Serdes::option(Serdes::string()));
    /// stations.pipe("40380".into(), Some("Clark/Lake".into()))?;
    /// stations.pipe("41320".into(), Some("Belmont".into()))?;
    /// stations.pipe("40380".into(), Some("Clark/Lake (Blue)".into()))?;
    /// stations.pipe("41320".into(), None)?; // tombstone
    /// let store = d.key_value_store::<String, String>("stations")?;
    /// assert_eq!(store.all()?, vec![("40380".to_string(), "Clark/Lake (Blue)".to_string())]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn table<K: Data, V: Data>(
        &self,
        topic: &str,
        consumed: Consumed<K, V>,
        materialized: Materialized<K, V>,
    ) -> crate::table::KTable<K, V> {
        crate::table::source_table(self, topic, consumed, materialized)
    }

    /// A [`GlobalKTable`](crate::table::GlobalKTable) of `topic`: every partition, on every
    /// instance, kept by the global thread in a store named by `materialized` (no changelog:
    /// the topic is one). A null value deletes its key.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// let stations = b.global_table("stations", Consumed::with(Serdes::string(), Serdes::string()),
    ///     Materialized::named("stations"));
    /// assert_eq!(stations.queryable_store_name(), "stations");
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("stations", Serdes::string(), Serdes::string()).pipe("40380".into(), "Clark/Lake".into())?;
    /// assert_eq!(d.key_value_store::<String, String>("stations")?.get(&"40380".into())?, Some("Clark/Lake".into()));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn global_table<K: Data, V: Data>(
        &self,
        topic: &str,
        consumed: Consumed<K, V>,
        materialized: Materialized<K, V>,
    ) -> crate::table::GlobalKTable<K, V> {
        crate::table::global_table(self, topic, consumed, materialized)
    }

    /// Declares a state store for processors added with
    /// [`KStream::process_with_stores`]. See [`StoreBuilder`](crate::processor::StoreBuilder).
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// use streamkit::processor::{KeyValueStore, StoreBuilder};
    ///
    /// struct Total { store: Option<KeyValueStore<String, i64>> }
    /// impl Processor<String, i64> for Total {
    ///     type KOut = String;
    ///     type VOut = i64;
    ///     fn init(&mut self, ctx: &mut ProcessorContext<'_, String, i64>) -> Result<()> {
    ///         self.store = Some(ctx.key_value_store("totals")?);
    ///         Ok(())
    ///     }
    ///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, i64>, r: Record<String, i64>) -> Result<()> {
    ///         let store = self.store.as_ref().unwrap();
    ///         let total = store.get(&r.key)?.unwrap_or(0) + r.value;
    ///         store.put(&r.key, &total)?;
    ///         ctx.forward(r.with_value(total))
    ///     }
    /// }
    ///
    /// let b = StreamsBuilder::new();
    /// b.add_state_store(StoreBuilder::key_value("totals", Serdes::string(), Serdes::i64()));
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
    ///     .process_with_stores(|| Total { store: None }, &["totals"]);
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("in", Serdes::string(), Serdes::i64()).pipe_all([("a".to_string(), 2), ("a".to_string(), 3)])?;
    /// assert_eq!(d.key_value_store::<String, i64>("totals")?.get(&"a".to_string())?, Some(5));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn add_state_store(&self, store: crate::processor::StoreBuilder) {
        self.graph.borrow_mut().add_store(store.spec);
    }

    /// Freezes the graph into a [`Topology`]; reports naming conflicts and dangling parts.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// let topology = b.build()?;
    /// assert!(topology.describe().to_string().contains("(topic: out)"));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn build(self) -> Result<Topology> {
        let graph = std::mem::take(&mut *self.graph.borrow_mut());
        graph.build()
    }
}

/// A typed stream of records: an unbounded sequence of independent events.
pub struct KStream<K, V> {
    pub(crate) graph: Rc<RefCell<GraphBuilder>>,
    pub(crate) node: usize,
    /// Whether a step since the last repartition may have changed keys (grouping must
    /// repartition first).
    pub(crate) key_changed: bool,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for KStream<K, V> {
    fn clone(&self) -> Self {
        KStream {
            graph: self.graph.clone(),
            node: self.node,
            key_changed: self.key_changed,
            _types: PhantomData,
        }
    }
}

impl<K: Data, V: Data> KStream<K, V> {
    fn new(graph: Rc<RefCell<GraphBuilder>>, node: usize) -> Self {
        KStream {
            graph,
            node,
            key_changed: false,
            _types: PhantomData,
        }
    }

    pub(crate) fn from_node(graph: Rc<RefCell<GraphBuilder>>, node: usize) -> Self {
        Self::new(graph, node)
    }

    fn with_key_changed<K2, V2>(mut s: KStream<K2, V2>, changed: bool) -> KStream<K2, V2> {
        s.key_changed = changed;
        s
    }

    /// Adds a processor node fed by this stream.
    fn add<P, F>(&self, prefix: &str, supplier: F) -> KStream<P::KOut, P::VOut>
    where
        P: Processor<K, V>,
        F: Fn() -> P + Send + Sync + 'static,
    {
        let mut g = self.graph.borrow_mut();
        let name = g.generate_name(prefix);
        let factory = Arc::new(ProcessorFactory::<K, V, P, F>::new(supplier));
        let node = g.add_node(name, NodeKind::Processor, &[self.node], factory);
        let mut out = KStream::new(self.graph.clone(), node);
        out.key_changed = self.key_changed;
        out
    }

    /// Renames the node that produced this stream (call it right after creating the node).
    /// Stable names keep internal topics, stores and metrics labels stable across changes.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .filter(|_, v| !v.is_empty()).named("drop-empty")
    ///     .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// assert!(b.build()?.describe().to_string().contains("Processor: drop-empty"));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn named(self, name: &str) -> Self {
        self.graph.borrow_mut().rename(self.node, name);
        self
    }

    /// Keeps the records for which `predicate(key, value)` is true.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
    ///     .filter(|_k, v| *v > 0)
    ///     .to("out", Produced::with(Serdes::string(), Serdes::i64()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let input = d.input_topic("in", Serdes::string(), Serdes::i64());
    /// input.pipe("a".into(), 5)?;
    /// input.pipe("b".into(), -1)?;
    /// let out = d.output_topic("out", Serdes::string(), Serdes::i64());
    /// assert_eq!(out.read_key_values(), vec![("a".to_string(), 5)]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn filter<F>(&self, predicate: F) -> KStream<K, V>
    where
        F: Fn(&K, &V) -> bool + Send + Sync + 'static,
    {
        let predicate = Arc::new(predicate);
        self.add("KSTREAM-FILTER", move || Filter {
            predicate: predicate.clone(),
            negate: false,
        })
    }

    /// Drops the records for which `predicate(key, value)` is true.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
    ///     .filter_not(|_k, v| *v > 0)
    ///     .to("out", Produced::with(Serdes::string(), Serdes::i64()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let input = d.input_topic("in", Serdes::string(), Serdes::i64());
    /// input.pipe("a".into(), 5)?;
    /// input.pipe("b".into(), -1)?;
    /// let out = d.output_topic("out", Serdes::string(), Serdes::i64());
    /// assert_eq!(out.read_key_values(), vec![("b".to_string(), -1)]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn filter_not<F>(&self, predicate: F) -> KStream<K, V>
    where
        F: Fn(&K, &V) -> bool + Send + Sync + 'static,
    {
        let predicate = Arc::new(predicate);
        self.add("KSTREAM-FILTER", move || Filter {
            predicate: predicate.clone(),
            negate: true,
        })
    }

    /// A new key and value for each record. Changing the key means records of one key may
    /// now sit in several partitions: [`repartition`](Self::repartition) before grouping.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .map(|k, v| (v, k.len() as i64))
    ///     .to("out", Produced::with(Serdes::string(), Serdes::i64()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("in", Serdes::string(), Serdes::string()).pipe("abc".into(), "x".into())?;
    /// let out = d.output_topic("out", Serdes::string(), Serdes::i64());
    /// assert_eq!(out.read_key_value(), Some(("x".to_string(), 3)));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn map<K2: Data, V2: Data, F>(&self, mapper: F) -> KStream<K2, V2>
    where
        F: Fn(K, V) -> (K2, V2) + Send + Sync + 'static,
    {
        let mapper = Arc::new(mapper);
        Self::with_key_changed(self.add("KSTREAM-MAP", move || Map(mapper.clone())), true)
    }

    /// A new value for each record; the key is kept, so no repartition is ever needed.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
    ///     .map_values(|v| v * 2)
    ///     .to("out", Produced::with(Serdes::string(), Serdes::i64()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("in", Serdes::string(), Serdes::i64()).pipe("a".into(), 21)?;
    /// let out = d.output_topic("out", Serdes::string(), Serdes::i64());
    /// assert_eq!(out.read_value(), Some(42));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn map_values<V2: Data, F>(&self, mapper: F) -> KStream<K, V2>
    where
        F: Fn(V) -> V2 + Send + Sync + 'static,
    {
        self.map_values_with_key(move |_k, v| mapper(v))
    }

    /// Like [`map_values`](Self::map_values), with read access to the key.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
    ///     .map_values_with_key(|k, v| format!("{k}={v}"))
    ///     .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("in", Serdes::string(), Serdes::i64()).pipe("a".into(), 1)?;
    /// let out = d.output_topic("out", Serdes::string(), Serdes::string());
    /// assert_eq!(out.read_value(), Some("a=1".to_string()));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn map_values_with_key<V2: Data, F>(&self, mapper: F) -> KStream<K, V2>
    where
        F: Fn(&K, V) -> V2 + Send + Sync + 'static,
    {
        let mapper = Arc::new(mapper);
        self.add("KSTREAM-MAPVALUES", move || MapValues(mapper.clone()))
    }

    /// Zero or more (key, value) pairs for each record.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .flat_map(|_k, line: String| {
    ///         line.split_whitespace().map(|w| (w.to_string(), 1i64)).collect::<Vec<_>>()
    ///     })
    ///     .to("out", Produced::with(Serdes::string(), Serdes::i64()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("in", Serdes::string(), Serdes::string()).pipe("l1".into(), "to be".into())?;
    /// let out = d.output_topic("out", Serdes::string(), Serdes::i64());
    /// assert_eq!(out.read_key_values(), vec![("to".to_string(), 1), ("be".to_string(), 1)]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn flat_map<K2: Data, V2: Data, I, F>(&self, mapper: F) -> KStream<K2, V2>
    where
        I: IntoIterator<Item = (K2, V2)> + 'static,
        F: Fn(K, V) -> I + Send + Sync + 'static,
    {
        let mapper = Arc::new(mapper);
        Self::with_key_changed(
            self.add("KSTREAM-FLATMAP", move || FlatMap(mapper.clone())),
            true,
        )
    }

    /// Zero or more values for each record, each with the record's key.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .flat_map_values(|csv: String| csv.split(',').map(str::to_string).collect::<Vec<_>>())
    ///     .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("in", Serdes::string(), Serdes::string()).pipe("k".into(), "a,b".into())?;
    /// let out = d.output_topic("out", Serdes::string(), Serdes::string());
    /// assert_eq!(out.read_key_values(), vec![("k".to_string(), "a".to_string()), ("k".to_string(), "b".to_string())]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn flat_map_values<V2: Data, I, F>(&self, mapper: F) -> KStream<K, V2>
    where
        I: IntoIterator<Item = V2> + 'static,
        F: Fn(V) -> I + Send + Sync + 'static,
    {
        let mapper = Arc::new(move |_k: &K, v: V| mapper(v));
        self.add("KSTREAM-FLATMAPVALUES", move || {
            FlatMapValues(mapper.clone())
        })
    }

    /// A new key computed from each record; the value is kept.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::unit(), Serdes::string()))
    ///     .select_key(|_k, v: &String| v.split(':').next().unwrap_or_default().to_string())
    ///     .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("in", Serdes::unit(), Serdes::string()).pipe((), "M15:late".into())?;
    /// let out = d.output_topic("out", Serdes::string(), Serdes::string());
    /// assert_eq!(out.read_key_value(), Some(("M15".to_string(), "M15:late".to_string())));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn select_key<K2: Data, F>(&self, selector: F) -> KStream<K2, V>
    where
        F: Fn(&K, &V) -> K2 + Send + Sync + 'static,
    {
        let selector = Arc::new(selector);
        Self::with_key_changed(
            self.add("KSTREAM-KEY-SELECT", move || SelectKey(selector.clone())),
            true,
        )
    }

    /// Calls `action` on each record and passes it on unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, atomic::{AtomicUsize, Ordering}};
    /// use streamkit::prelude::*;
    /// let seen = Arc::new(AtomicUsize::new(0));
    /// let counter = seen.clone();
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .peek(move |_, _| { counter.fetch_add(1, Ordering::Relaxed); })
    ///     .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("in", Serdes::string(), Serdes::string()).pipe("k".into(), "v".into())?;
    /// assert_eq!(seen.load(Ordering::Relaxed), 1);
    /// assert_eq!(d.output_topic("out", Serdes::string(), Serdes::string()).queue_size(), 1);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn peek<F>(&self, action: F) -> KStream<K, V>
    where
        F: Fn(&K, &V) + Send + Sync + 'static,
    {
        let action = Arc::new(action);
        self.add("KSTREAM-PEEK", move || Peek(action.clone()))
    }

    /// Calls `action` on each record; ends the stream.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use streamkit::prelude::*;
    /// let sum = Arc::new(Mutex::new(0));
    /// let total = sum.clone();
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
    ///     .foreach(move |_, v| *total.lock().unwrap() += v);
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let input = d.input_topic("in", Serdes::string(), Serdes::i64());
    /// input.pipe("a".into(), 2)?;
    /// input.pipe("b".into(), 3)?;
    /// assert_eq!(*sum.lock().unwrap(), 5);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn foreach<F>(&self, action: F)
    where
        F: Fn(&K, &V) + Send + Sync + 'static,
    {
        let action = Arc::new(action);
        self.add("KSTREAM-FOREACH", move || Foreach(action.clone()));
    }

    /// Routes each record to the first branch whose predicate accepts it. Branch streams are
    /// named `<prefix><branch>`; the prefix defaults to the split node's name and `-`.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// let branches = b
    ///     .stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
    ///     .split()
    ///     .branch("late", |_, delay| *delay > 5)
    ///     .branch("on-time", |_, delay| *delay >= 0)
    ///     .default_branch("early");
    /// branches["late"].to("late", Produced::with(Serdes::string(), Serdes::i64()));
    /// branches["early"].to("early", Produced::with(Serdes::string(), Serdes::i64()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let input = d.input_topic("in", Serdes::string(), Serdes::i64());
    /// for (bus, delay) in [("a", 9), ("b", 1), ("c", -2)] {
    ///     input.pipe(bus.to_string(), delay)?;
    /// }
    /// assert_eq!(d.output_topic("late", Serdes::string(), Serdes::i64()).read_values(), vec![9]);
    /// assert_eq!(d.output_topic("early", Serdes::string(), Serdes::i64()).read_values(), vec![-2]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn split(&self) -> Split<K, V> {
        Split {
            stream: self.clone(),
            prefix: None,
            branches: Vec::new(),
        }
    }

    /// Like [`split`](Self::split), with a prefix for the split node and branch names.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// let branches = b
    ///     .stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
    ///     .split_named("delay-")
    ///     .branch("late", |_, d| *d > 5)
    ///     .no_default_branch();
    /// branches["late"].to("late", Produced::with(Serdes::string(), Serdes::i64()));
    /// let text = b.build()?.describe().to_string();
    /// assert!(text.contains("Processor: delay (stores: [])"));
    /// assert!(text.contains("Processor: delay-late"));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn split_named(&self, prefix: &str) -> Split<K, V> {
        Split {
            stream: self.clone(),
            prefix: Some(prefix.to_string()),
            branches: Vec::new(),
        }
    }

    /// One stream with the records of both (no order between them is implied).
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// let red = b.stream("red", Consumed::with(Serdes::string(), Serdes::i32()));
    /// let blue = b.stream("blue", Consumed::with(Serdes::string(), Serdes::i32()));
    /// red.merge(&blue).to("all", Produced::with(Serdes::string(), Serdes::i32()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("red", Serdes::string(), Serdes::i32()).pipe("r".into(), 1)?;
    /// d.input_topic("blue", Serdes::string(), Serdes::i32()).pipe("b".into(), 2)?;
    /// assert_eq!(d.output_topic("all", Serdes::string(), Serdes::i32()).read_values(), vec![1, 2]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn merge(&self, other: &KStream<K, V>) -> KStream<K, V> {
        let mut g = self.graph.borrow_mut();
        if !Rc::ptr_eq(&self.graph, &other.graph) {
            g.errors
                .push("merge: the two streams come from different StreamsBuilders".into());
        }
        let name = g.generate_name("KSTREAM-MERGE");
        let factory = Arc::new(ProcessorFactory::<K, V, PassThrough, _>::new(|| {
            PassThrough
        }));
        let node = g.add_node(name, NodeKind::Processor, &[self.node, other.node], factory);
        Self::with_key_changed(
            KStream::new(self.graph.clone(), node),
            self.key_changed || other.key_changed,
        )
    }

    /// Writes every record to `topic`.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .to("out", Produced::with(Serdes::string(), Serdes::string()).named("write-out"));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("in", Serdes::string(), Serdes::string()).pipe_at("k".into(), "v".into(), 42)?;
    /// let r = d.output_topic("out", Serdes::string(), Serdes::string()).read_record().unwrap();
    /// assert_eq!((r.key.as_str(), r.value.as_str(), r.timestamp), ("k", "v", 42));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn to(&self, topic: &str, produced: Produced<K, V>) {
        self.add_sink(
            SinkTopic::Fixed(TopicName::External(topic.to_string())),
            produced,
        );
    }

    /// Writes each record to the topic `extractor(key, value)` names.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("positions", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .to_topic_by(|line, _| format!("line-{line}"), Produced::with(Serdes::string(), Serdes::string()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("positions", Serdes::string(), Serdes::string()).pipe("M15".into(), "p".into())?;
    /// assert_eq!(d.output_topic("line-M15", Serdes::string(), Serdes::string()).read_values(), vec!["p"]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn to_topic_by<F>(&self, extractor: F, produced: Produced<K, V>)
    where
        F: Fn(&K, &V) -> String + Send + Sync + 'static,
    {
        self.add_sink(SinkTopic::PerRecord(Arc::new(extractor)), produced);
    }

    fn add_sink(&self, topic: SinkTopic<K, V>, produced: Produced<K, V>) -> usize {
        let mut g = self.graph.borrow_mut();
        let name = produced
            .name
            .clone()
            .unwrap_or_else(|| g.generate_name("KSTREAM-SINK"));
        let kind = NodeKind::Sink {
            topic: match &topic {
                SinkTopic::Fixed(t) => Some(t.clone()),
                SinkTopic::PerRecord(_) => None,
            },
        };
        let (ks, vs, partitioner) = (
            produced.key_serde,
            produced.value_serde,
            produced.partitioner,
        );
        let supplier =
            move || Sink::new(topic.clone(), ks.clone(), vs.clone(), partitioner.clone());
        let factory = Arc::new(ProcessorFactory::<K, V, Sink<K, V>, _>::new(supplier));
        g.add_node(name, kind, &[self.node], factory)
    }

    /// Sends the records through an internal topic `<application-id>-<name>-repartition`
    /// (created by the runtime) so that all records of a key land in one partition, and thus
    /// one task. Starts a new sub-topology.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .select_key(|_, v: &String| v.clone())
    ///     .repartition(Repartitioned::with(Serdes::string(), Serdes::string()).named("by-value"))
    ///     .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// let topology = b.build()?;
    /// assert_eq!(topology.subtopology_count(), 2);
    /// let d = TopologyTestDriver::new(topology)?;
    /// d.input_topic("in", Serdes::string(), Serdes::string()).pipe("k".into(), "v".into())?;
    /// assert_eq!(d.output_topic("out", Serdes::string(), Serdes::string()).read_key_value(),
    ///            Some(("v".to_string(), "v".to_string())));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn repartition(&self, repartitioned: Repartitioned<K, V>) -> KStream<K, V> {
        let base = match &repartitioned.name {
            Some(n) => n.clone(),
            None => self.graph.borrow_mut().generate_name("KSTREAM-REPARTITION"),
        };
        let topic = TopicName::Internal(format!("{base}-repartition"));
        self.graph.borrow_mut().internal_topics.push(InternalTopic {
            name: topic.clone(),
            partitions: repartitioned.partitions,
            // Kafka Streams' repartition-topic configs: no time retention (a record with an
            // old event time must not expire before it is read); the stream threads delete
            // what is committed with DeleteRecords (`runtime/thread/purge.rs`).
            config: vec![
                ("cleanup.policy".into(), "delete".into()),
                ("segment.bytes".into(), "52428800".into()),
                ("retention.ms".into(), "-1".into()),
            ],
        });
        let (ks, vs) = (
            repartitioned.key_serde.clone(),
            repartitioned.value_serde.clone(),
        );
        let sink = self.add_sink(
            SinkTopic::Fixed(topic.clone()),
            Produced {
                key_serde: ks,
                value_serde: vs,
                name: None,
                partitioner: repartitioned.partitioner.clone(),
            },
        );
        self.graph
            .borrow_mut()
            .rename(sink, &format!("{base}-repartition-sink"));
        let builder = StreamsBuilder {
            graph: self.graph.clone(),
        };
        let consumed = Consumed {
            key_serde: repartitioned.key_serde,
            value_serde: repartitioned.value_serde,
            handler: None,
            timestamp_extractor: None,
            name: Some(format!("{base}-repartition-source")),
            offset_reset: None,
        };
        builder.add_source(vec![topic], consumed)
    }

    /// Runs a custom [`Processor`] on each record. `supplier` is called once per task.
    /// See [`processor`](crate::processor) for a complete example with punctuators.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// struct Dedup { last: Option<String> }
    /// impl Processor<String, String> for Dedup {
    ///     type KOut = String;
    ///     type VOut = String;
    ///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>, r: Record<String, String>) -> Result<()> {
    ///         if self.last.as_ref() != Some(&r.value) {
    ///             self.last = Some(r.value.clone());
    ///             ctx.forward(r)?;
    ///         }
    ///         Ok(())
    ///     }
    /// }
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .process(|| Dedup { last: None })
    ///     .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let input = d.input_topic("in", Serdes::string(), Serdes::string());
    /// for v in ["a", "a", "b", "a"] { input.pipe("k".into(), v.into())?; }
    /// assert_eq!(d.output_topic("out", Serdes::string(), Serdes::string()).read_values(), vec!["a", "b", "a"]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn process<P, S>(&self, supplier: S) -> KStream<P::KOut, P::VOut>
    where
        P: Processor<K, V>,
        S: Fn() -> P + Send + Sync + 'static,
    {
        Self::with_key_changed(self.add("KSTREAM-PROCESSOR", supplier), true)
    }

    /// Like [`process`](Self::process), with access to the named stores (declared with
    /// [`StreamsBuilder::add_state_store`]). See [`StoreBuilder`](crate::processor::StoreBuilder)
    /// for an example.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// use streamkit::processor::{KeyValueStore, StoreBuilder};
    ///
    /// /// Forwards only the first record of each key.
    /// struct FirstSeen { seen: Option<KeyValueStore<String, i64>> }
    /// impl Processor<String, String> for FirstSeen {
    ///     type KOut = String;
    ///     type VOut = String;
    ///     fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> Result<()> {
    ///         self.seen = Some(ctx.key_value_store("seen")?);
    ///         Ok(())
    ///     }
    ///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>, r: Record<String, String>) -> Result<()> {
    ///         let seen = self.seen.as_ref().unwrap();
    ///         if seen.get(&r.key)?.is_none() {
    ///             seen.put(&r.key, &r.timestamp)?;
    ///             ctx.forward(r)?;
    ///         }
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let b = StreamsBuilder::new();
    /// b.add_state_store(StoreBuilder::key_value("seen", Serdes::string(), Serdes::i64()).in_memory());
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .process_with_stores(|| FirstSeen { seen: None }, &["seen"])
    ///     .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let input = d.input_topic("in", Serdes::string(), Serdes::string());
    /// for (k, v) in [("a", "1"), ("a", "2"), ("b", "3")] { input.pipe(k.into(), v.into())?; }
    /// assert_eq!(d.output_topic("out", Serdes::string(), Serdes::string()).read_values(), vec!["1", "3"]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn process_with_stores<P, S>(
        &self,
        supplier: S,
        stores: &[&str],
    ) -> KStream<P::KOut, P::VOut>
    where
        P: Processor<K, V>,
        S: Fn() -> P + Send + Sync + 'static,
    {
        let out = Self::with_key_changed(self.add("KSTREAM-PROCESSOR", supplier), true);
        let mut g = self.graph.borrow_mut();
        for s in stores {
            g.connect_store(out.node, s);
        }
        drop(g);
        out
    }

    /// Runs a custom [`FixedKeyProcessor`](crate::processor::FixedKeyProcessor) on each
    /// record (Kafka Streams' `processValues`, KIP-820): like [`process`](Self::process),
    /// but the processor forwards [`FixedKeyRecord`](crate::processor::FixedKeyRecord)s, which
    /// keep their input key, so grouping or joining downstream needs no repartition.
    /// `supplier` is called once per task.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// /// Numbers each key's records.
    /// #[derive(Default)]
    /// struct Sequence { next: std::collections::HashMap<String, i64> }
    /// impl FixedKeyProcessor<String, String> for Sequence {
    ///     type VOut = String;
    ///     fn process(&mut self, ctx: &mut FixedKeyProcessorContext<'_, String, String>,
    ///                r: FixedKeyRecord<String, String>) -> Result<()> {
    ///         let n = self.next.entry(r.key().clone()).or_insert(0);
    ///         *n += 1;
    ///         let numbered = format!("{n}: {}", r.value());
    ///         ctx.forward(r.with_value(numbered))
    ///     }
    /// }
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .process_values(Sequence::default)
    ///     .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
    ///     .count(Materialized::named("counts"));
    /// let topology = b.build()?;
    /// assert_eq!(topology.subtopology_count(), 1); // no repartition before the count
    /// let d = TopologyTestDriver::new(topology)?;
    /// d.input_topic("in", Serdes::string(), Serdes::string())
    ///     .pipe_all([("a".to_string(), "x".to_string()), ("a".to_string(), "y".to_string())])?;
    /// assert_eq!(d.key_value_store::<String, i64>("counts")?.get(&"a".to_string())?, Some(2));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn process_values<P, S>(&self, supplier: S) -> KStream<K, P::VOut>
    where
        P: crate::processor::FixedKeyProcessor<K, V>,
        S: Fn() -> P + Send + Sync + 'static,
    {
        // The key is the input's: the stream keeps this one's repartition requirement.
        self.add("KSTREAM-PROCESSVALUES", move || {
            crate::processor::FixedKeyAdapter(supplier())
        })
    }

    /// Like [`process_values`](Self::process_values), with access to the named stores
    /// (declared with [`StreamsBuilder::add_state_store`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// use streamkit::processor::{KeyValueStore, StoreBuilder};
    ///
    /// /// Replaces each value by the key's running total.
    /// struct Total { store: Option<KeyValueStore<String, i64>> }
    /// impl FixedKeyProcessor<String, i64> for Total {
    ///     type VOut = i64;
    ///     fn init(&mut self, ctx: &mut FixedKeyProcessorContext<'_, String, i64>) -> Result<()> {
    ///         self.store = Some(ctx.key_value_store("totals")?);
    ///         Ok(())
    ///     }
    ///     fn process(&mut self, ctx: &mut FixedKeyProcessorContext<'_, String, i64>,
    ///                r: FixedKeyRecord<String, i64>) -> Result<()> {
    ///         let store = self.store.as_ref().unwrap();
    ///         let total = store.get(r.key())?.unwrap_or(0) + r.value();
    ///         store.put(r.key(), &total)?;
    ///         ctx.forward(r.with_value(total))
    ///     }
    /// }
    ///
    /// let b = StreamsBuilder::new();
    /// b.add_state_store(StoreBuilder::key_value("totals", Serdes::string(), Serdes::i64()));
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
    ///     .process_values_with_stores(|| Total { store: None }, &["totals"])
    ///     .to("out", Produced::with(Serdes::string(), Serdes::i64()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("in", Serdes::string(), Serdes::i64()).pipe_all([("a".to_string(), 2), ("a".to_string(), 3)])?;
    /// assert_eq!(d.output_topic("out", Serdes::string(), Serdes::i64()).read_values(), vec![2, 5]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn process_values_with_stores<P, S>(
        &self,
        supplier: S,
        stores: &[&str],
    ) -> KStream<K, P::VOut>
    where
        P: crate::processor::FixedKeyProcessor<K, V>,
        S: Fn() -> P + Send + Sync + 'static,
    {
        let out = self.process_values(supplier);
        let mut g = self.graph.borrow_mut();
        for s in stores {
            g.connect_store(out.node, s);
        }
        drop(g);
        out
    }

    /// The stream's records as the updates of a table (Kafka Streams' `toTable`): the
    /// latest value per key, kept in a key-value store named by `materialized` with its own
    /// changelog topic, as for [`StreamsBuilder::table`]. A stream of `Option` values
    /// deletes a key with `None` (a null value, as read with
    /// [`Serdes::option`](crate::serde::Serdes::option)); any other stream only upserts.
    ///
    /// `materialized` needs key and value serdes ([`Materialized::with`], or
    /// [`named`](Materialized::named) then [`key_serde`](Materialized::key_serde) and
    /// [`value_serde`](Materialized::value_serde)): a stream does not know its serdes. A
    /// stream whose key may have changed (after `select_key`, `map`, `process`, …) is
    /// repartitioned first, through an internal `KSTREAM-TOTABLE-<n>-repartition` topic, so
    /// that all the rows of a key reach one task.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("positions", Consumed::with(Serdes::string(), Serdes::option(Serdes::string())))
    ///     .to_table(Materialized::named("last-position").key_serde(Serdes::string()).value_serde(Serdes::string()))
    ///     .to_stream()
    ///     .to("moves", Produced::with(Serdes::string(), Serdes::string()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let input = d.input_topic("positions", Serdes::string(), Serdes::option(Serdes::string()));
    /// input.pipe("train-1".into(), Some("Clark/Lake".into()))?;
    /// input.pipe("train-2".into(), Some("Belmont".into()))?;
    /// input.pipe("train-1".into(), Some("Washington".into()))?;
    /// input.pipe("train-2".into(), None)?; // out of service: deleted
    /// let store = d.key_value_store::<String, String>("last-position")?;
    /// assert_eq!(store.all()?, vec![("train-1".to_string(), "Washington".to_string())]);
    /// assert_eq!(d.output_topic("moves", Serdes::string(), Serdes::string()).read_values(),
    ///            vec!["Clark/Lake", "Belmont", "Washington"]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn to_table<VT: Data>(
        &self,
        materialized: Materialized<K, VT>,
    ) -> crate::table::KTable<K, VT>
    where
        V: Into<Option<VT>>,
    {
        crate::table::stream_table(self, materialized)
    }
}

/// A split in progress: add branches, then finish with
/// [`default_branch`](Split::default_branch) or [`no_default_branch`](Split::no_default_branch).
pub struct Split<K, V> {
    stream: KStream<K, V>,
    prefix: Option<String>,
    branches: Vec<(String, Option<BranchPredicate<K, V>>)>,
}

impl<K: Data, V: Data> Split<K, V> {
    /// Adds a branch for the records `predicate` accepts (and no earlier branch took).
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// let branches = b.stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
    ///     .split()
    ///     .branch("even", |_, v| v % 2 == 0)
    ///     .branch("odd", |_, _| true)
    ///     .no_default_branch();
    /// branches["even"].to("even", Produced::with(Serdes::string(), Serdes::i64()));
    /// branches["odd"].to("odd", Produced::with(Serdes::string(), Serdes::i64()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("in", Serdes::string(), Serdes::i64()).pipe_all((1..=4).map(|i| ("k".to_string(), i)))?;
    /// assert_eq!(d.output_topic("even", Serdes::string(), Serdes::i64()).read_values(), vec![2, 4]);
    /// assert_eq!(d.output_topic("odd", Serdes::string(), Serdes::i64()).read_values(), vec![1, 3]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn branch<F>(mut self, name: &str, predicate: F) -> Self
    where
        F: Fn(&K, &V) -> bool + Send + Sync + 'static,
    {
        self.branches
            .push((name.to_string(), Some(Arc::new(predicate))));
        self
    }

    /// Finishes with a branch for the records no predicate accepted.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// let branches = b.stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
    ///     .split()
    ///     .branch("big", |_, v| *v >= 100)
    ///     .default_branch("small");
    /// branches["small"].to("small", Produced::with(Serdes::string(), Serdes::i64()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("in", Serdes::string(), Serdes::i64()).pipe_all([("k".to_string(), 500), ("k".to_string(), 7)])?;
    /// assert_eq!(d.output_topic("small", Serdes::string(), Serdes::i64()).read_values(), vec![7]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn default_branch(mut self, name: &str) -> Branches<K, V> {
        self.branches.push((name.to_string(), None));
        self.finish()
    }

    /// Finishes; records no predicate accepts are dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// let branches = b.stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
    ///     .split()
    ///     .branch("big", |_, v| *v >= 100)
    ///     .no_default_branch();
    /// branches["big"].to("big", Produced::with(Serdes::string(), Serdes::i64()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("in", Serdes::string(), Serdes::i64()).pipe_all([("k".to_string(), 500), ("k".to_string(), 7)])?;
    /// // 7 matched no branch and was dropped.
    /// assert_eq!(d.output_topic("big", Serdes::string(), Serdes::i64()).read_values(), vec![500]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn no_default_branch(self) -> Branches<K, V> {
        self.finish()
    }

    fn finish(self) -> Branches<K, V> {
        let graph = self.stream.graph.clone();
        let split_name = graph.borrow_mut().generate_name("KSTREAM-BRANCH");
        let prefix = self
            .prefix
            .clone()
            .unwrap_or_else(|| format!("{split_name}-"));
        let node_names: Vec<String> = self
            .branches
            .iter()
            .map(|(n, _)| format!("{prefix}{n}"))
            .collect();
        let routes: Arc<Vec<_>> = Arc::new(
            node_names
                .iter()
                .cloned()
                .zip(self.branches.iter().map(|(_, p)| p.clone()))
                .collect(),
        );
        let split = self.stream.add("KSTREAM-BRANCH", move || Branch {
            branches: routes.clone(),
        });
        let split = match &self.prefix {
            Some(p) => split.named(p.trim_end_matches('-')),
            None => split.named(&split_name),
        };
        let streams = self
            .branches
            .iter()
            .zip(node_names)
            .map(|((name, _), node_name)| {
                (
                    name.clone(),
                    split
                        .add("KSTREAM-BRANCHCHILD", || PassThrough)
                        .named(&node_name),
                )
            })
            .collect();
        Branches { streams }
    }
}

/// The streams of a [`split`](KStream::split), by branch name (without prefix).
pub struct Branches<K, V> {
    streams: Vec<(String, KStream<K, V>)>,
}

impl<K, V> Branches<K, V> {
    /// The branch called `name`.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// let branches = b.stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
    ///     .split()
    ///     .branch("neg", |_, v| *v < 0)
    ///     .default_branch("rest");
    /// assert!(branches.get("missing").is_none());
    /// branches.get("neg").unwrap().to("neg", Produced::with(Serdes::string(), Serdes::i64()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("in", Serdes::string(), Serdes::i64()).pipe_all([("k".to_string(), -3), ("k".to_string(), 3)])?;
    /// assert_eq!(d.output_topic("neg", Serdes::string(), Serdes::i64()).read_values(), vec![-3]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn get(&self, name: &str) -> Option<&KStream<K, V>> {
        self.streams.iter().find(|(n, _)| n == name).map(|(_, s)| s)
    }

    /// Branch names and streams in the order the branches were added.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// let branches = b.stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
    ///     .split()
    ///     .branch("neg", |_, v| *v < 0)
    ///     .default_branch("rest")
    ///     .into_vec();
    /// let names: Vec<&str> = branches.iter().map(|(n, _)| n.as_str()).collect();
    /// assert_eq!(names, ["neg", "rest"]);
    /// for (name, stream) in &branches {
    ///     stream.to(name, Produced::with(Serdes::string(), Serdes::i64()));
    /// }
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("in", Serdes::string(), Serdes::i64()).pipe_all([("k".to_string(), -3), ("k".to_string(), 3)])?;
    /// assert_eq!(d.output_topic("rest", Serdes::string(), Serdes::i64()).read_values(), vec![3]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn into_vec(self) -> Vec<(String, KStream<K, V>)> {
        self.streams
    }
}

impl<K, V> std::ops::Index<&str> for Branches<K, V> {
    type Output = KStream<K, V>;
    fn index(&self, name: &str) -> &KStream<K, V> {
        self.get(name)
            .unwrap_or_else(|| panic!("no branch named {name:?}"))
    }
}
