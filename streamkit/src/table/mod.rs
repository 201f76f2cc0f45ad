//! Tables: [`KTable`], a changelog view of a topic or stream where each key has one current
//! value, and [`GlobalKTable`], a full copy of a topic on every instance.
//!
//! Records flowing out of a table operator carry a `Change`: the key's new value (`None` =
//! deleted) and the value it replaces, so downstream table aggregations can retract the old
//! value. A table read from a topic ([`StreamsBuilder::table`](crate::stream::StreamsBuilder::table))
//! treats a null value as a tombstone that deletes its key. `filter`, `filter_not` and
//! `map_values` apply to both sides of every change; [`KTable::group_by`] sends the old row as
//! a retraction and the new one as an addition through a repartition topic, so `count`,
//! `reduce` and `aggregate` over a table stay equal to a recomputation from its rows.
//!
//! [`KTable::to_stream`] forwards the new value of each update and skips deletions (a typed
//! `V` has no null); [`KTable::to_change_stream`] forwards `Option<V>` with `None` for each
//! deletion, which a sink with [`Serdes::option`](crate::serde::Serdes::option) writes as a
//! tombstone, as Kafka Streams' `toStream()` does.
//!
//! Faust-style tables live here too: [`FaustTable`] declares a dict-like changelogged table
//! that processors and [agents](crate::agent) use through a [`Table`] handle, and
//! [`WindowedFaustTable`] a windowed one read with `now()`, `current()` and `delta(d)`.

mod faust;
mod faust_windowed;
mod global;
mod grouped;
mod join;

use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use crate::state::{ReadOnlyKeyValueStore, ReadOnlySessionStore, ReadOnlyWindowStore};
pub use faust::{FaustTable, Table};
pub use faust_windowed::{RelativeTo, WindowSet, WindowedFaustTable, WindowedTable};
pub use global::GlobalKTable;
pub(crate) use global::global_table;
pub use grouped::KGroupedTable;

use crate::operators::suppress::{SuppressSpec, SuppressUntilClose};
use crate::operators::table_changes::{PassChanges, ToChangeStream, ToStream};
use crate::operators::table_filter::TableFilter;
use crate::operators::table_group_by::TableGroupBy;
use crate::operators::table_map_values::TableMapValues;
use crate::operators::table_materialize::TableMaterialize;
use crate::operators::table_source::TableSource;
use crate::operators::table_suppress::SuppressTimeLimit;
use crate::operators::to_table::ToTable;
use crate::operators::window_aggregate::EmitConfig;
use crate::processor::{Data, Processor, StoreBuilder};
use crate::record::Change;
use crate::serde::{SerdeRef, Serdes};
use crate::state::handle::StoreSerdes;
use crate::state::spec::{StoreKind, StoreSpec};
use crate::stream::{Consumed, Grouped, KStream, Materialized, Repartitioned, StreamsBuilder};
use crate::topology::node::ProcessorFactory;
use crate::topology::{GraphBuilder, NodeKind, TopicName};
use crate::window::Windowed;

/// A table: the latest value per key. Read from a topic with
/// [`StreamsBuilder::table`](crate::stream::StreamsBuilder::table) or produced by an
/// aggregation; see the [module documentation](self).
pub struct KTable<K, V> {
    pub(crate) graph: Rc<RefCell<GraphBuilder>>,
    pub(crate) node: usize,
    pub(crate) store_name: Option<String>,
    /// Set for time-windowed aggregations, whose results `suppress` can hold back.
    pub(crate) emit: Option<Arc<Mutex<EmitConfig>>>,
    /// Set for session and sliding aggregations: adds a suppression buffer after the
    /// aggregation.
    pub(crate) suppress_spec: Option<SuppressAttach>,
    /// Serdes of the rows, when known: a table without a store needs them to get one.
    pub(crate) key_serde: Option<SerdeRef<K>>,
    pub(crate) value_serde: Option<SerdeRef<V>>,
    pub(crate) _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for KTable<K, V> {
    fn clone(&self) -> Self {
        KTable {
            graph: self.graph.clone(),
            node: self.node,
            store_name: self.store_name.clone(),
            emit: self.emit.clone(),
            suppress_spec: self.suppress_spec.clone(),
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
            _types: PhantomData,
        }
    }
}

/// When a suppressed windowed table emits.
#[derive(Debug, Clone, Default)]
pub struct Suppressed {
    idle_close: Option<Duration>,
    time_limit: Option<Duration>,
    name: Option<String>,
    max_records: Option<usize>,
    max_bytes: Option<usize>,
    when_full: Option<WhenFull>,
}

/// What a suppression with a bounded buffer does when the buffer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WhenFull {
    EmitEarly,
    ShutDown,
}

/// The buffer bounds of an [`Suppressed::until_time_limit`] suppression.
#[derive(Debug, Clone)]
pub(crate) struct BufferLimits {
    pub max_records: Option<usize>,
    pub max_bytes: Option<usize>,
    pub when_full: WhenFull,
}

impl Suppressed {
    /// Emit each window once, with its final value, when stream time passes its end plus
    /// grace (Kafka Streams' `Suppressed.untilWindowCloses`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("taps", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
    ///     .windowed_by(TimeWindows::tumbling(Duration::from_secs(60)))
    ///     .count(Materialized::named("per-minute"))
    ///     .suppress(Suppressed::until_window_closes())
    ///     .to_stream()
    ///     .map(|k, n| (k.key, n))
    ///     .to("final", Produced::with(Serdes::string(), Serdes::i64()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let taps = d.input_topic("taps", Serdes::string(), Serdes::string());
    /// taps.pipe_at("a".into(), "t".into(), 1_000)?;
    /// taps.pipe_at("a".into(), "t".into(), 2_000)?;
    /// let out = d.output_topic("final", Serdes::string(), Serdes::i64());
    /// assert!(out.is_empty());
    /// taps.pipe_at("b".into(), "t".into(), 60_000)?; // stream time reaches the window's end
    /// assert_eq!(out.read_key_values(), vec![("a".to_string(), 2)]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn until_window_closes() -> Self {
        Suppressed::default()
    }

    /// For any table: hold each key's updates until `limit` of stream time has passed since
    /// the first of them, then emit the latest, as one change from the value before the first
    /// (Kafka Streams' `Suppressed.untilTimeLimit` with an unbounded buffer). A later update
    /// replaces the waiting one without restarting its timer. The buffer is a changelogged
    /// store, so waiting updates survive a restart.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.table("positions", Consumed::with(Serdes::string(), Serdes::string()), Materialized::named("positions"))
    ///     .suppress(Suppressed::until_time_limit(Duration::from_secs(10)))
    ///     .to_stream()
    ///     .to("positions-every-10s", Produced::with(Serdes::string(), Serdes::string()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let input = d.input_topic("positions", Serdes::string(), Serdes::string());
    /// input.pipe_at("bus-1".into(), "1st Ave".into(), 0)?;
    /// input.pipe_at("bus-1".into(), "2nd Ave".into(), 4_000)?;
    /// input.pipe_at("bus-2".into(), "Main St".into(), 10_000)?; // 10 s after bus-1's first
    /// let out = d.output_topic("positions-every-10s", Serdes::string(), Serdes::string());
    /// assert_eq!(out.read_key_values(), vec![("bus-1".to_string(), "2nd Ave".to_string())]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn until_time_limit(limit: Duration) -> Self {
        Suppressed {
            time_limit: Some(limit),
            ..Suppressed::default()
        }
    }

    /// Names the suppression node of [`until_time_limit`](Self::until_time_limit); its buffer
    /// store (and changelog) is `<name>-buffer`. Default = a generated name, which changes
    /// when the topology does.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    /// use streamkit::topology::TopicName;
    /// let b = StreamsBuilder::new();
    /// b.table("positions", Consumed::with(Serdes::string(), Serdes::string()), Materialized::named("positions"))
    ///     .suppress(Suppressed::until_time_limit(Duration::from_secs(10)).named("throttle"))
    ///     .to_stream()
    ///     .to("throttled", Produced::with(Serdes::string(), Serdes::string()));
    /// let topology = b.build()?;
    /// let topics: Vec<_> = topology.internal_topics().iter().map(|t| t.name.clone()).collect();
    /// assert!(topics.contains(&TopicName::Internal("throttle-buffer-changelog".into())));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Also close windows when no record arrived for `idle` of wall-clock time: stream time is
    /// then taken to advance with the wall clock, so a quiet feed (buses at night) still gets
    /// its final results. Works after tumbling, hopping, session and sliding aggregations; an
    /// update of a window already emitted this way is dropped. Neither Kafka Streams, ksqlDB
    /// nor Quix Streams offer this.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("arrivals", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
    ///     .windowed_by(TimeWindows::tumbling(Duration::from_secs(60)))
    ///     .count(Materialized::named("per-minute"))
    ///     .suppress(Suppressed::until_window_closes().close_when_idle(Duration::from_secs(30)))
    ///     .to_stream()
    ///     .map(|k, n| (k.key, n))
    ///     .to("final", Produced::with(Serdes::string(), Serdes::i64()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("arrivals", Serdes::string(), Serdes::string()).pipe_at("M15".into(), "bus".into(), 1_000)?;
    /// let out = d.output_topic("final", Serdes::string(), Serdes::i64());
    /// // No more records: after 70 s of quiet, stream time counts as 71 s and [0, 60 s) closes.
    /// d.advance_wall_clock_time(Duration::from_secs(70))?;
    /// assert_eq!(out.read_key_values(), vec![("M15".to_string(), 1)]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn close_when_idle(mut self, idle: Duration) -> Self {
        self.idle_close = Some(idle);
        self
    }

    /// Bounds the buffer of [`until_time_limit`](Self::until_time_limit) to `n` waiting keys
    /// (Kafka Streams' `BufferConfig.maxRecords`). What happens when it is full: see
    /// [`emit_early_when_full`](Self::emit_early_when_full) (the default) and
    /// [`shut_down_when_full`](Self::shut_down_when_full). Default = unbounded.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.table("positions", Consumed::with(Serdes::string(), Serdes::string()), Materialized::named("positions"))
    ///     .suppress(Suppressed::until_time_limit(Duration::from_secs(10)).with_max_records(1))
    ///     .to_stream()
    ///     .to("throttled", Produced::with(Serdes::string(), Serdes::string()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let input = d.input_topic("positions", Serdes::string(), Serdes::string());
    /// input.pipe_at("bus-1".into(), "1st Ave".into(), 0)?;
    /// input.pipe_at("bus-2".into(), "Main St".into(), 1_000)?; // full: bus-1 goes out early
    /// let out = d.output_topic("throttled", Serdes::string(), Serdes::string());
    /// assert_eq!(out.read_key_values(), vec![("bus-1".to_string(), "1st Ave".to_string())]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn with_max_records(mut self, n: usize) -> Self {
        self.max_records = Some(n);
        self
    }

    /// Bounds the buffer of [`until_time_limit`](Self::until_time_limit) to `b` bytes of
    /// serialized keys and entries (Kafka Streams' `BufferConfig.maxBytes`). Default =
    /// unbounded.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.table("positions", Consumed::with(Serdes::string(), Serdes::string()), Materialized::named("positions"))
    ///     .suppress(Suppressed::until_time_limit(Duration::from_secs(10)).with_max_bytes(1 << 20))
    ///     .to_stream()
    ///     .to("throttled", Produced::with(Serdes::string(), Serdes::string()));
    /// TopologyTestDriver::new(b.build()?)?;
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn with_max_bytes(mut self, b: usize) -> Self {
        self.max_bytes = Some(b);
        self
    }

    /// When the bounded buffer is full, emit the oldest waiting keys before their time
    /// (Kafka Streams' `emitEarlyWhenFull`, its default for `untilTimeLimit`). Not allowed
    /// with [`until_window_closes`](Self::until_window_closes), which promises one result
    /// per window: `build()` reports it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.table("positions", Consumed::with(Serdes::string(), Serdes::string()), Materialized::named("positions"))
    ///     .suppress(
    ///         Suppressed::until_time_limit(Duration::from_secs(10))
    ///             .with_max_records(1_000)
    ///             .emit_early_when_full(),
    ///     )
    ///     .to_stream()
    ///     .to("throttled", Produced::with(Serdes::string(), Serdes::string()));
    /// TopologyTestDriver::new(b.build()?)?;
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn emit_early_when_full(mut self) -> Self {
        self.when_full = Some(WhenFull::EmitEarly);
        self
    }

    /// When the bounded buffer is full, fail the application with an error naming the
    /// suppression and the limit (Kafka Streams' `shutDownWhenFull`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.table("positions", Consumed::with(Serdes::string(), Serdes::string()), Materialized::named("positions"))
    ///     .suppress(
    ///         Suppressed::until_time_limit(Duration::from_secs(10))
    ///             .with_max_records(1)
    ///             .shut_down_when_full()
    ///             .named("throttle"),
    ///     )
    ///     .to_stream()
    ///     .to("throttled", Produced::with(Serdes::string(), Serdes::string()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let input = d.input_topic("positions", Serdes::string(), Serdes::string());
    /// input.pipe_at("bus-1".into(), "1st Ave".into(), 0)?;
    /// let err = input.pipe_at("bus-2".into(), "Main St".into(), 1_000).unwrap_err();
    /// assert!(err.to_string().contains("max_records = 1"));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn shut_down_when_full(mut self) -> Self {
        self.when_full = Some(WhenFull::ShutDown);
        self
    }
}

/// Declares a key-value store for table rows: the `Materialized` name (else a generated one),
/// its serdes (else `key`/`value`), backend and logging. Reports missing serdes at `build()`.
pub(crate) fn add_table_store<K: Data, V: Data>(
    g: &mut GraphBuilder,
    m: &Materialized<K, V>,
    key: Option<SerdeRef<K>>,
    value: Option<SerdeRef<V>>,
    default_name: impl FnOnce(&mut GraphBuilder) -> String,
    op: &str,
) -> String {
    let name = m.name.clone().unwrap_or_else(|| default_name(g));
    let key = m.key_serde.clone().or(key);
    let value = m.value_serde.clone().or(value);
    let (Some(key), Some(value)) = (key, value) else {
        g.errors.push(format!(
            "{op}: store {name:?} needs key and value serdes (Materialized::with)"
        ));
        return name;
    };
    g.add_store(StoreSpec {
        name: name.clone(),
        kind: StoreKind::KeyValue,
        backend: m.backend,
        logging: m.logging,
        caching: m.caching,
        serdes: Arc::new(StoreSerdes::<K, V> { key, value }),
    });
    name
}

/// The key-value store holding `table`'s current rows, for a join to look rows up in: the
/// table's own store, or else a store added behind the table the first time it is needed
/// (one per table, shared by every join on it). Reports a table with neither a store nor the
/// serdes to build one at `build()`, naming `op`.
pub(crate) fn materialize_for_lookup<K: Data, V: Data>(table: &KTable<K, V>, op: &str) -> String {
    let mut g = table.graph.borrow_mut();
    if let Some(name) = &table.store_name {
        let windowed = g
            .stores
            .iter()
            .any(|s| &s.name == name && s.kind != StoreKind::KeyValue);
        if windowed {
            g.errors.push(format!(
                "{op}: table {name:?} is windowed; lookups need a key-value table"
            ));
        }
        return name.clone();
    }
    if let Some(name) = g.materialized.get(&table.node) {
        return name.clone();
    }
    if table.value_serde.is_none() {
        let node = g.nodes[table.node].name.clone();
        g.errors.push(format!(
            "{op}: the table produced by {node} has no store and no value serde to build one; \
             call materialize(Materialized::named(..).value_serde(..)) on it first"
        ));
    }
    let store = add_table_store(
        &mut g,
        &Materialized::default(),
        table.key_serde.clone(),
        table.value_serde.clone(),
        |g| g.generate_name("KTABLE-MATERIALIZE-STATE-STORE"),
        op,
    );
    let node = add_materialize_node::<K, V>(&mut g, table.node, &store);
    g.materialized.insert(table.node, store.clone());
    g.materialized.insert(node, store.clone());
    store
}

fn add_materialize_node<K: Data, V: Data>(
    g: &mut GraphBuilder,
    parent: usize,
    store: &str,
) -> usize {
    let name = g.generate_name("KTABLE-MATERIALIZE");
    let store_name = store.to_string();
    let factory = Arc::new(
        ProcessorFactory::<K, Change<V>, TableMaterialize<K, V>, _>::new(move || {
            TableMaterialize {
                store_name: store_name.clone(),
                store: None,
            }
        }),
    );
    let node = g.add_node(name, NodeKind::Processor, &[parent], factory);
    g.connect_store(node, store);
    node
}

/// The nodes behind [`StreamsBuilder::table`]: a source decoding null values as deletions, and
/// a node writing the rows to the table's store.
pub(crate) fn source_table<K: Data, V: Data>(
    builder: &StreamsBuilder,
    topic: &str,
    consumed: Consumed<K, V>,
    materialized: Materialized<K, V>,
) -> KTable<K, V> {
    let (key_serde, value_serde) = (consumed.key_serde.clone(), consumed.value_serde.clone());
    let source = builder.add_source(
        vec![TopicName::External(topic.to_string())],
        nullable_consumed(consumed),
    );
    let mut g = builder.graph.borrow_mut();
    let store = add_table_store(
        &mut g,
        &materialized,
        Some(key_serde.clone()),
        Some(value_serde.clone()),
        |g| g.generate_name(&format!("{topic}-STATE-STORE")),
        "table",
    );
    let name = g.generate_name("KTABLE-SOURCE");
    let store_name = store.clone();
    let factory = Arc::new(ProcessorFactory::<K, Option<V>, TableSource<K, V>, _>::new(
        move || TableSource {
            store_name: store_name.clone(),
            store: None,
        },
    ));
    let node = g.add_node(name, NodeKind::Processor, &[source.node], factory);
    g.connect_store(node, &store);
    drop(g);
    KTable::from_node(
        builder.graph.clone(),
        node,
        Some(store),
        Some(materialized.key_serde.unwrap_or(key_serde)),
        Some(materialized.value_serde.unwrap_or(value_serde)),
    )
}

/// The table behind `KStream::to_table`: each record of `stream` is a row (`None` deletes
/// it), written to a store named by `materialized`, whose serdes are required (a stream does
/// not know its serdes). A stream whose key may have changed is repartitioned first, so
/// that every row of a key lands in one task, as Kafka Streams' `toTable` does.
pub(crate) fn stream_table<K, V, VT>(
    stream: &KStream<K, V>,
    materialized: Materialized<K, VT>,
) -> KTable<K, VT>
where
    K: Data,
    V: Data + Into<Option<VT>>,
    VT: Data,
{
    if stream.key_changed {
        let (Some(ks), Some(vs)) = (
            materialized.key_serde.clone(),
            materialized.value_serde.clone(),
        ) else {
            stream.graph.borrow_mut().errors.push(
                "to_table: a stream whose key changed is repartitioned first, which needs \
                 key and value serdes (Materialized::with)"
                    .into(),
            );
            return add_to_table(stream, materialized);
        };
        let base = stream.graph.borrow_mut().generate_name("KSTREAM-TOTABLE");
        let rows = stream
            .map_values(Into::<Option<VT>>::into)
            .repartition(Repartitioned {
                key_serde: ks,
                value_serde: Arc::new(crate::serde::table::NullableSerde(vs)),
                name: Some(base),
                partitions: None,
                partitioner: None,
            });
        return add_to_table(&rows, materialized);
    }
    add_to_table(stream, materialized)
}

fn add_to_table<K, V, VT>(
    stream: &KStream<K, V>,
    materialized: Materialized<K, VT>,
) -> KTable<K, VT>
where
    K: Data,
    V: Data + Into<Option<VT>>,
    VT: Data,
{
    let mut g = stream.graph.borrow_mut();
    let store = add_table_store(
        &mut g,
        &materialized,
        None,
        None,
        |g| g.generate_name("KSTREAM-TOTABLE-STATE-STORE"),
        "to_table",
    );
    let name = g.generate_name("KSTREAM-TOTABLE");
    let store_name = store.clone();
    let factory = Arc::new(ProcessorFactory::<K, V, ToTable<K, V, VT>, _>::new(
        move || ToTable {
            store_name: store_name.clone(),
            store: None,
            _in: PhantomData,
        },
    ));
    let node = g.add_node(name, NodeKind::Processor, &[stream.node], factory);
    g.connect_store(node, &store);
    drop(g);
    KTable::from_node(
        stream.graph.clone(),
        node,
        Some(store),
        materialized.key_serde,
        materialized.value_serde,
    )
}

/// `consumed` for a table topic: null values decode to `None` (tombstones); the timestamp
/// extractor sees the other values, and a tombstone keeps its Kafka timestamp.
pub(crate) fn nullable_consumed<K: Data, V: Data>(
    consumed: Consumed<K, V>,
) -> Consumed<K, Option<V>> {
    let extractor = consumed.timestamp_extractor.map(|f| {
        let f: crate::operators::source::TimestampExtractor<K, Option<V>> =
            Arc::new(move |k: &K, v: &Option<V>, ts: i64| match v {
                Some(v) => f(k, v, ts),
                None => ts,
            });
        f
    });
    Consumed {
        key_serde: consumed.key_serde,
        value_serde: Arc::new(crate::serde::table::NullableSerde(consumed.value_serde)),
        handler: consumed.handler,
        timestamp_extractor: extractor,
        name: consumed.name,
        offset_reset: consumed.offset_reset,
    }
}

impl<K: Data, V: Data> KTable<K, V> {
    /// A table handle on `node` (whose records are `Change<V>`).
    pub(crate) fn from_node(
        graph: Rc<RefCell<GraphBuilder>>,
        node: usize,
        store_name: Option<String>,
        key_serde: Option<SerdeRef<K>>,
        value_serde: Option<SerdeRef<V>>,
    ) -> Self {
        KTable {
            graph,
            node,
            store_name,
            emit: None,
            suppress_spec: None,
            key_serde,
            value_serde,
            _types: PhantomData,
        }
    }

    /// Adds a processor node fed by this table's changes.
    fn add<P, F>(&self, prefix: &str, supplier: F) -> usize
    where
        P: Processor<K, Change<V>>,
        F: Fn() -> P + Send + Sync + 'static,
    {
        let mut g = self.graph.borrow_mut();
        let name = g.generate_name(prefix);
        let factory = Arc::new(ProcessorFactory::<K, Change<V>, P, F>::new(supplier));
        g.add_node(name, NodeKind::Processor, &[self.node], factory)
    }

    /// Renames the node that produced this table (call it right after creating the node).
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.table("prices", Consumed::with(Serdes::string(), Serdes::i64()), Materialized::named("prices"))
    ///     .filter(|_, cents| *cents > 0)
    ///     .named("priced-only")
    ///     .to_stream()
    ///     .to("priced", Produced::with(Serdes::string(), Serdes::i64()));
    /// assert!(b.build()?.describe().to_string().contains("Processor: priced-only"));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn named(self, name: &str) -> Self {
        self.graph.borrow_mut().rename(self.node, name);
        self
    }

    /// The stream of the table's updates: the new value of each. Deletions are not
    /// forwarded (see [`to_change_stream`](Self::to_change_stream) for a stream with them).
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.table("prices", Consumed::with(Serdes::string(), Serdes::i64()), Materialized::named("prices"))
    ///     .to_stream()
    ///     .to("price-updates", Produced::with(Serdes::string(), Serdes::i64()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let prices = d.input_topic("prices", Serdes::string(), Serdes::option(Serdes::i64()));
    /// prices.pipe("tea".into(), Some(3))?;
    /// prices.pipe("tea".into(), None)?; // a tombstone: deleted from the table, not forwarded
    /// prices.pipe("tea".into(), Some(4))?;
    /// assert_eq!(d.output_topic("price-updates", Serdes::string(), Serdes::i64()).read_values(), vec![3, 4]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn to_stream(&self) -> KStream<K, V> {
        let node = self.add("KTABLE-TOSTREAM", || ToStream);
        KStream::from_node(self.graph.clone(), node)
    }

    /// The stream of the table's updates with deletions: `Some(new value)` for an update,
    /// `None` for a deletion. A sink with [`Serdes::option`](crate::serde::Serdes::option)
    /// writes `None` as a Kafka tombstone, so the output topic is itself a table's changelog
    /// (Kafka Streams' `toStream()`, which forwards null for deletions).
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.table("prices", Consumed::with(Serdes::string(), Serdes::i64()), Materialized::named("prices"))
    ///     .filter(|_, price| *price < 10)
    ///     .to_change_stream()
    ///     .to("cheap", Produced::with(Serdes::string(), Serdes::option(Serdes::i64())));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let prices = d.input_topic("prices", Serdes::string(), Serdes::option(Serdes::i64()));
    /// prices.pipe("tea".into(), Some(3))?;
    /// prices.pipe("tea".into(), Some(12))?; // no longer cheap: deleted downstream
    /// let cheap = d.output_topic("cheap", Serdes::string(), Serdes::option(Serdes::i64()));
    /// assert_eq!(cheap.read_values(), vec![Some(3), None]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn to_change_stream(&self) -> KStream<K, Option<V>> {
        let node = self.add("KTABLE-TOSTREAM", || ToChangeStream);
        KStream::from_node(self.graph.clone(), node)
    }

    /// The rows for which `predicate(key, value)` is true. A row that stops matching leaves
    /// the filtered table (downstream sees a deletion). The result has no store of its own;
    /// [`materialize`](Self::materialize) gives it one.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.table("stock", Consumed::with(Serdes::string(), Serdes::i64()), Materialized::named("stock"))
    ///     .filter(|_item, n| *n > 0)
    ///     .materialize(Materialized::named("in-stock"));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let stock = d.input_topic("stock", Serdes::string(), Serdes::i64());
    /// stock.pipe_all([("tea".to_string(), 5), ("mugs".to_string(), 2), ("tea".to_string(), 0)])?;
    /// assert_eq!(d.key_value_store::<String, i64>("in-stock")?.all()?, vec![("mugs".to_string(), 2)]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn filter<F>(&self, predicate: F) -> KTable<K, V>
    where
        F: Fn(&K, &V) -> bool + Send + Sync + 'static,
    {
        self.filter_with(predicate, false)
    }

    /// The rows for which `predicate(key, value)` is false.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.table("stock", Consumed::with(Serdes::string(), Serdes::i64()), Materialized::named("stock"))
    ///     .filter_not(|_item, n| *n > 0)
    ///     .to_stream()
    ///     .to("sold-out", Produced::with(Serdes::string(), Serdes::i64()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("stock", Serdes::string(), Serdes::i64())
    ///     .pipe_all([("tea".to_string(), 5), ("tea".to_string(), 0)])?;
    /// assert_eq!(d.output_topic("sold-out", Serdes::string(), Serdes::i64()).read_key_values(),
    ///            vec![("tea".to_string(), 0)]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn filter_not<F>(&self, predicate: F) -> KTable<K, V>
    where
        F: Fn(&K, &V) -> bool + Send + Sync + 'static,
    {
        self.filter_with(predicate, true)
    }

    fn filter_with<F>(&self, predicate: F, negate: bool) -> KTable<K, V>
    where
        F: Fn(&K, &V) -> bool + Send + Sync + 'static,
    {
        let predicate = Arc::new(predicate);
        let node = self.add("KTABLE-FILTER", move || TableFilter {
            predicate: predicate.clone(),
            negate,
        });
        KTable::from_node(
            self.graph.clone(),
            node,
            None,
            self.key_serde.clone(),
            self.value_serde.clone(),
        )
    }

    /// A new value for every row, same key; the old and new side of each change are both
    /// mapped. The result has no store and no value serde: to join it or query it,
    /// [`materialize`](Self::materialize) it with a value serde.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.table("prices", Consumed::with(Serdes::string(), Serdes::i64()), Materialized::named("prices"))
    ///     .map_values(|cents| format!("${}.{:02}", cents / 100, cents % 100))
    ///     .to_stream()
    ///     .to("labels", Produced::with(Serdes::string(), Serdes::string()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("prices", Serdes::string(), Serdes::i64()).pipe("tea".into(), 250)?;
    /// assert_eq!(d.output_topic("labels", Serdes::string(), Serdes::string()).read_values(), vec!["$2.50"]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn map_values<V2: Data, F>(&self, mapper: F) -> KTable<K, V2>
    where
        F: Fn(&V) -> V2 + Send + Sync + 'static,
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
    /// b.table("prices", Consumed::with(Serdes::string(), Serdes::i64()), Materialized::named("prices"))
    ///     .map_values_with_key(|item: &String, cents: &i64| format!("{item}: {cents}c"))
    ///     .to_stream()
    ///     .to("labels", Produced::with(Serdes::string(), Serdes::string()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("prices", Serdes::string(), Serdes::i64()).pipe("tea".into(), 250)?;
    /// assert_eq!(d.output_topic("labels", Serdes::string(), Serdes::string()).read_values(), vec!["tea: 250c"]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn map_values_with_key<V2: Data, F>(&self, mapper: F) -> KTable<K, V2>
    where
        F: Fn(&K, &V) -> V2 + Send + Sync + 'static,
    {
        let mapper = Arc::new(mapper);
        let node = self.add("KTABLE-MAPVALUES", move || TableMapValues(mapper.clone()));
        KTable::from_node(self.graph.clone(), node, None, self.key_serde.clone(), None)
    }

    /// Writes the table's rows to a key-value store named by `materialized` (serdes default
    /// to the table's), for interactive queries and joins. Changes pass through unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// let cheap = b.table("prices", Consumed::with(Serdes::string(), Serdes::i64()), Materialized::named("prices"))
    ///     .filter(|_, cents| *cents < 300)
    ///     .materialize(Materialized::named("cheap"));
    /// assert_eq!(cheap.queryable_store_name(), Some("cheap"));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let prices = d.input_topic("prices", Serdes::string(), Serdes::i64());
    /// prices.pipe("tea".into(), 250)?;
    /// prices.pipe("cake".into(), 450)?;
    /// assert_eq!(d.key_value_store::<String, i64>("cheap")?.all()?, vec![("tea".to_string(), 250)]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn materialize(&self, materialized: Materialized<K, V>) -> KTable<K, V> {
        let mut g = self.graph.borrow_mut();
        let store = add_table_store(
            &mut g,
            &materialized,
            self.key_serde.clone(),
            self.value_serde.clone(),
            |g| g.generate_name("KTABLE-MATERIALIZE-STATE-STORE"),
            "materialize",
        );
        let node = add_materialize_node::<K, V>(&mut g, self.node, &store);
        g.materialized.insert(node, store.clone());
        drop(g);
        KTable::from_node(
            self.graph.clone(),
            node,
            Some(store),
            materialized.key_serde.or_else(|| self.key_serde.clone()),
            materialized
                .value_serde
                .or_else(|| self.value_serde.clone()),
        )
    }

    /// Groups the rows by a new key: `selector(key, value)` gives each row's group key and
    /// the value to aggregate. Rows go through a repartition topic
    /// (`<application-id>-<name>-repartition`, named by [`Grouped::named`]); when a row
    /// changes, its old value is retracted from its old group and its new value added to its
    /// new group, so the aggregates of [`KGroupedTable`] always equal a recomputation from
    /// the table's current rows.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// // Which line each bus is on now; how many buses each line has.
    /// b.table("bus-line", Consumed::with(Serdes::string(), Serdes::string()), Materialized::named("bus-line"))
    ///     .group_by(|_bus, line| (line.clone(), ()), Grouped::with(Serdes::string(), Serdes::unit()).named("by-line"))
    ///     .count(Materialized::named("buses-per-line"))
    ///     .to_stream()
    ///     .to("line-sizes", Produced::with(Serdes::string(), Serdes::i64()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let buses = d.input_topic("bus-line", Serdes::string(), Serdes::option(Serdes::string()));
    /// buses.pipe("bus-1".into(), Some("M15".into()))?;
    /// buses.pipe("bus-2".into(), Some("M15".into()))?;
    /// buses.pipe("bus-1".into(), Some("B63".into()))?; // moves: M15 loses one, B63 gains one
    /// buses.pipe("bus-2".into(), None)?;                // leaves service
    /// let counts = d.key_value_store::<String, i64>("buses-per-line")?;
    /// assert_eq!(counts.get(&"M15".to_string())?, Some(0));
    /// assert_eq!(counts.get(&"B63".to_string())?, Some(1));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn group_by<K2, V2, F>(
        &self,
        selector: F,
        grouped: Grouped<K2, V2>,
    ) -> KGroupedTable<K2, V2>
    where
        K2: Data + PartialEq,
        V2: Data,
        F: Fn(&K, &V) -> (K2, V2) + Send + Sync + 'static,
    {
        let selector = Arc::new(selector);
        let node = self.add("KTABLE-SELECT", move || TableGroupBy(selector.clone()));
        let name = match &grouped.name {
            Some(n) => n.clone(),
            None => self.graph.borrow_mut().generate_name("KTABLE-AGGREGATE"),
        };
        let selected = KStream::<K2, Change<V2>>::from_node(self.graph.clone(), node);
        let change_serde: SerdeRef<Change<V2>> = Arc::new(crate::serde::table::ChangeSerde(
            grouped.value_serde.clone(),
        ));
        let repartitioned = selected.repartition(Repartitioned {
            key_serde: grouped.key_serde.clone(),
            value_serde: change_serde,
            name: Some(name),
            partitions: None,
            partitioner: None,
        });
        KGroupedTable {
            graph: self.graph.clone(),
            node: repartitioned.node,
            key_serde: grouped.key_serde,
            value_serde: grouped.value_serde,
        }
    }

    /// The name of the store holding the table, for interactive queries; `None` for a table
    /// derived with `filter` or `map_values` (see [`materialize`](Self::materialize)).
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// let prices = b.table("prices", Consumed::with(Serdes::string(), Serdes::i64()), Materialized::named("prices"));
    /// assert_eq!(prices.queryable_store_name(), Some("prices"));
    /// // A filtered table has no store of its own until materialized.
    /// assert_eq!(prices.filter(|_, c| *c > 0).queryable_store_name(), None);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn queryable_store_name(&self) -> Option<&str> {
        self.store_name.as_deref()
    }
}

/// Adds the suppression buffer node after a session or sliding aggregation:
/// `(graph, parent node, buffer store name, close_when_idle) -> node`. Made by the
/// aggregation, where the windowed key's inner type is known.
pub(crate) type SuppressAttach =
    Arc<dyn Fn(&mut GraphBuilder, usize, &str, Option<Duration>) -> usize + Send + Sync>;

/// The [`SuppressAttach`] of a session or sliding aggregation with this spec.
pub(crate) fn until_close_attach<K: Data, V: Data>(spec: SuppressSpec<K, V>) -> SuppressAttach {
    Arc::new(move |g, parent, buffer, idle_close| {
        g.add_store(StoreBuilder::key_value(buffer, Serdes::bytes(), Serdes::bytes()).spec);
        let name = g.generate_name("KTABLE-SUPPRESS");
        let spec = SuppressSpec {
            idle_close,
            ..spec.clone()
        };
        let store_name = buffer.to_string();
        let factory = Arc::new(ProcessorFactory::<
            Windowed<K>,
            Change<V>,
            SuppressUntilClose<K, V>,
            _,
        >::new(move || SuppressUntilClose {
            spec: spec.clone(),
            store_name: store_name.clone(),
            buffer: None,
            emitted_until: i64::MIN,
            last_record_wall: 0,
        }));
        let node = g.add_node(name, NodeKind::Processor, &[parent], factory);
        g.connect_store(node, buffer);
        node
    })
}

impl<K: Data, V: Data> KTable<K, V> {
    /// Holds updates back as [`Suppressed`] says: after a windowed aggregation (directly),
    /// [`Suppressed::until_window_closes`] emits each window once; on any table,
    /// [`Suppressed::until_time_limit`] emits each key at most once per period.
    ///
    /// # Examples
    ///
    /// One final count per key and minute, once the window has closed:
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    ///
    /// let b = StreamsBuilder::new();
    /// b.stream("taps", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
    ///     .windowed_by(TimeWindows::tumbling(Duration::from_secs(60)))
    ///     .count(Materialized::named("taps-per-minute"))
    ///     .suppress(Suppressed::until_window_closes())
    ///     .to_stream()
    ///     .map(|k, n| (format!("{}@{}", k.key, k.window.start), n))
    ///     .to("final-counts", Produced::with(Serdes::string(), Serdes::i64()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let taps = d.input_topic("taps", Serdes::string(), Serdes::string());
    /// taps.pipe_at("clark".into(), "tap".into(), 10_000)?;
    /// taps.pipe_at("clark".into(), "tap".into(), 20_000)?;
    /// let out = d.output_topic("final-counts", Serdes::string(), Serdes::i64());
    /// assert!(out.read_key_values().is_empty()); // the minute is still open
    /// taps.pipe_at("clark".into(), "tap".into(), 61_000)?; // closes it
    /// assert_eq!(out.read_key_values(), vec![("clark@0".to_string(), 2)]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn suppress(&self, suppressed: Suppressed) -> KTable<K, V> {
        let mut g = self.graph.borrow_mut();
        let unsuppressed = g.nodes[self.node].children.is_empty();
        let base = self.store_name.clone().unwrap_or_else(|| "window".into());
        let bounded = suppressed.max_records.is_some() || suppressed.max_bytes.is_some();
        if suppressed.time_limit.is_none() {
            match suppressed.when_full {
                Some(WhenFull::EmitEarly) => g.errors.push(
                    "suppress(until_window_closes) cannot emit_early_when_full: it promises one \
                     final result per window (use shut_down_when_full or an unbounded buffer)"
                        .into(),
                ),
                _ if bounded => g.errors.push(
                    "suppress(until_window_closes): with_max_records and with_max_bytes are not \
                     supported yet; its buffer is unbounded"
                        .into(),
                ),
                _ => {}
            }
        }
        let limits = bounded.then(|| BufferLimits {
            max_records: suppressed.max_records,
            max_bytes: suppressed.max_bytes,
            when_full: suppressed.when_full.unwrap_or(WhenFull::EmitEarly),
        });
        let node = match (suppressed.time_limit, &self.emit, &self.suppress_spec) {
            (Some(limit), _, _) => self.suppress_time_limit(&mut g, limit, suppressed.name, limits),
            (None, Some(emit), _) if unsuppressed => {
                // Tumbling and hopping windows: the aggregation emits final results itself.
                let marker = format!("{base}-emitted");
                let mut e = emit.lock().expect("emit config");
                e.final_only = true;
                e.idle_close = suppressed.idle_close;
                e.marker_store = Some(marker.clone());
                g.add_store(StoreBuilder::key_value(&marker, Serdes::i32(), Serdes::i64()).spec);
                g.connect_store(self.node, &marker);
                let name = g.generate_name("KTABLE-SUPPRESS");
                let factory = Arc::new(ProcessorFactory::<K, Change<V>, PassChanges, _>::new(
                    || PassChanges,
                ));
                g.add_node(name, NodeKind::Processor, &[self.node], factory)
            }
            (None, None, Some(attach)) if unsuppressed => attach(
                &mut g,
                self.node,
                &format!("{base}-suppress-buffer"),
                suppressed.idle_close,
            ),
            _ => {
                g.errors.push("suppress(until_window_closes) must directly follow a windowed aggregation (count, reduce or aggregate after windowed_by)".into());
                let name = g.generate_name("KTABLE-SUPPRESS");
                let factory = Arc::new(ProcessorFactory::<K, Change<V>, PassChanges, _>::new(
                    || PassChanges,
                ));
                g.add_node(name, NodeKind::Processor, &[self.node], factory)
            }
        };
        KTable {
            graph: self.graph.clone(),
            node,
            store_name: self.store_name.clone(),
            emit: None,
            suppress_spec: None,
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
            _types: PhantomData,
        }
    }

    fn suppress_time_limit(
        &self,
        g: &mut GraphBuilder,
        limit: Duration,
        name: Option<String>,
        limits: Option<BufferLimits>,
    ) -> usize {
        let name = name.unwrap_or_else(|| g.generate_name("KTABLE-SUPPRESS"));
        let buffer = format!("{name}-buffer");
        let (Some(key_serde), Some(value_serde)) =
            (self.key_serde.clone(), self.value_serde.clone())
        else {
            let node = g.nodes[self.node].name.clone();
            g.errors.push(format!(
                "suppress(until_time_limit): the table produced by {node} has no serdes for the \
                 buffer; call materialize(Materialized::named(..).value_serde(..)) on it first"
            ));
            let factory = Arc::new(ProcessorFactory::<K, Change<V>, PassChanges, _>::new(
                || PassChanges,
            ));
            return g.add_node(name, NodeKind::Processor, &[self.node], factory);
        };
        g.add_store(StoreBuilder::key_value(&buffer, Serdes::bytes(), Serdes::bytes()).spec);
        let limit_ms = i64::try_from(limit.as_millis()).unwrap_or(i64::MAX);
        let store_name = buffer.clone();
        let node_name = name.clone();
        let factory = Arc::new(
            ProcessorFactory::<K, Change<V>, SuppressTimeLimit<K, V>, _>::new(move || {
                SuppressTimeLimit {
                    limit_ms,
                    store_name: store_name.clone(),
                    key_serde: key_serde.clone(),
                    change_serde: crate::serde::table::ChangeSerde(value_serde.clone()),
                    buffer: None,
                    due: Default::default(),
                    name: node_name.clone(),
                    limits: limits.clone(),
                    bytes: 0,
                }
            }),
        );
        let node = g.add_node(name, NodeKind::Processor, &[self.node], factory);
        g.connect_store(node, &buffer);
        node
    }
}
