//! Grouped and windowed streams: `group_by_key` / `group_by`, then `count`, `reduce`,
//! `aggregate`, optionally over windows.

use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{KStream, Materialized, Repartitioned};
use crate::operators::aggregate::{Aggregate, Fold};
use crate::operators::late::LateRecords;
use crate::operators::session_aggregate::Merger;
use crate::operators::session_aggregate::SessionAggregate;
use crate::operators::sliding_aggregate::{SlidingAggregate, list_serde};
use crate::operators::suppress::SuppressSpec;
use crate::operators::window_aggregate::EmitConfig;
use crate::operators::window_aggregate::WindowAggregate;
use crate::processor::Data;
use crate::serde::{Serde, SerdeRef, Serdes};
use crate::state::spec::{StoreKind, StoreSpec};
use crate::table::KTable;
use crate::window::{SessionWindows, SlidingWindows, TimeWindows, Windowed};

const ONE_DAY_MS: i64 = 86_400_000;

/// Serdes (and a name for the repartition topic) used when grouping.
pub struct Grouped<K, V> {
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) value_serde: SerdeRef<V>,
    pub(crate) name: Option<String>,
}

impl<K: Data, V: Data> Grouped<K, V> {
    /// Group with these serdes (for the store and, if needed, the repartition topic).
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
    ///     .group_by_key(Grouped::with(Serdes::string(), Serdes::i64()))
    ///     .reduce(|a, b| a.max(b), Materialized::named("max"));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("in", Serdes::string(), Serdes::i64()).pipe_all([("k".to_string(), 3), ("k".to_string(), 9), ("k".to_string(), 4)])?;
    /// assert_eq!(d.key_value_store::<String, i64>("max")?.get(&"k".to_string())?, Some(9));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn with(key_serde: impl Serde<K>, value_serde: impl Serde<V>) -> Self {
        Grouped {
            key_serde: Arc::new(key_serde),
            value_serde: Arc::new(value_serde),
            name: None,
        }
    }

    /// Names the repartition topic `<application-id>-<name>-repartition`.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// use streamkit::topology::TopicName;
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .group_by(|_k: &String, v: &String| v.clone(), Grouped::with(Serdes::string(), Serdes::string()).named("by-line"))
    ///     .count(Materialized::named("per-line"));
    /// let topology = b.build()?;
    /// let topics: Vec<_> = topology.internal_topics().iter().map(|t| t.name.clone()).collect();
    /// assert!(topics.contains(&TopicName::Internal("by-line-repartition".into())));
    /// let d = TopologyTestDriver::new(topology)?;
    /// d.input_topic("in", Serdes::string(), Serdes::string()).pipe("bus-1".into(), "red".into())?;
    /// assert_eq!(d.key_value_store::<String, i64>("per-line")?.get(&"red".to_string())?, Some(1));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// A stream grouped by key, ready to aggregate.
pub struct KGroupedStream<K, V> {
    pub(crate) stream: KStream<K, V>,
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) value_serde: SerdeRef<V>,
}

impl<K: Data, V: Data> KStream<K, V> {
    /// Groups by the current key. If an upstream step changed the key (`map`, `flat_map`,
    /// `select_key`, `process`), records first go through a repartition topic so that each
    /// key is aggregated in one task.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("taps", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
    ///     .count(Materialized::named("taps-per-station").in_memory())
    ///     .to_stream()
    ///     .to("counts", Produced::with(Serdes::string(), Serdes::i64()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let input = d.input_topic("taps", Serdes::string(), Serdes::string());
    /// for s in ["clark", "addison", "clark"] { input.pipe(s.to_string(), "tap".into())?; }
    /// assert_eq!(d.output_topic("counts", Serdes::string(), Serdes::i64()).read_key_values(), vec![
    ///     ("clark".to_string(), 1), ("addison".to_string(), 1), ("clark".to_string(), 2),
    /// ]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn group_by_key(&self, grouped: Grouped<K, V>) -> KGroupedStream<K, V> {
        let stream = if self.key_changed {
            let name = match &grouped.name {
                Some(n) => n.clone(),
                None => self.graph.borrow_mut().generate_name("KSTREAM-AGGREGATE"),
            };
            let r = Repartitioned {
                key_serde: grouped.key_serde.clone(),
                value_serde: grouped.value_serde.clone(),
                name: Some(name),
                partitions: None,
                partitioner: None,
            };
            self.repartition(r)
        } else {
            self.clone()
        };
        KGroupedStream {
            stream,
            key_serde: grouped.key_serde,
            value_serde: grouped.value_serde,
        }
    }

    /// Groups by a new key computed from each record; always repartitions.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("positions", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .group_by(|_vehicle, line: &String| line.clone(), Grouped::with(Serdes::string(), Serdes::string()).named("by-line"))
    ///     .count(Materialized::named("positions-per-line").in_memory())
    ///     .to_stream()
    ///     .to("per-line", Produced::with(Serdes::string(), Serdes::i64()));
    /// let topology = b.build()?;
    /// assert_eq!(topology.subtopology_count(), 2);
    /// let d = TopologyTestDriver::new(topology)?;
    /// let input = d.input_topic("positions", Serdes::string(), Serdes::string());
    /// input.pipe("bus-1".into(), "M15".into())?;
    /// input.pipe("bus-2".into(), "M15".into())?;
    /// assert_eq!(d.output_topic("per-line", Serdes::string(), Serdes::i64()).read_values(), vec![1, 2]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn group_by<K2: Data, F>(
        &self,
        selector: F,
        grouped: Grouped<K2, V>,
    ) -> KGroupedStream<K2, V>
    where
        F: Fn(&K, &V) -> K2 + Send + Sync + 'static,
    {
        self.select_key(selector).group_by_key(grouped)
    }
}

/// One more record per key.
fn count_fold<K, V>() -> Fold<K, V, i64> {
    Arc::new(|_, _, c| c.unwrap_or(0) + 1)
}

/// The first value, then `reducer(aggregate, value)`.
fn reduce_fold<K, V: Data>(reducer: impl Fn(V, V) -> V + Send + Sync + 'static) -> Fold<K, V, V> {
    Arc::new(move |_, v, agg| match agg {
        Some(a) => reducer(a, v.clone()),
        None => v.clone(),
    })
}

/// `aggregator(key, value, aggregate)`, starting from `initializer()`.
fn aggregate_fold<K, V, A>(
    initializer: impl Fn() -> A + Send + Sync + 'static,
    aggregator: impl Fn(&K, &V, A) -> A + Send + Sync + 'static,
) -> Fold<K, V, A> {
    Arc::new(move |k, v, agg| aggregator(k, v, agg.unwrap_or_else(&initializer)))
}

/// Fills in a store's name and checks its value serde.
fn store_name(stream: &KStream<impl Data, impl Data>, name: &Option<String>) -> String {
    name.clone().unwrap_or_else(|| {
        stream
            .graph
            .borrow_mut()
            .generate_name("KSTREAM-AGGREGATE-STATE-STORE")
    })
}

/// Stands in for a missing value serde; `build()` reports the mistake first.
struct MissingSerde;

impl<A: 'static> Serde<A> for MissingSerde {
    fn serialize(&self, _: &str, _: &A, _: &mut Vec<u8>) -> Result<(), crate::SerdeError> {
        Err(crate::SerdeError::Encode("no value serde".into()))
    }
    fn deserialize(&self, _: &str, _: &[u8]) -> Result<A, crate::SerdeError> {
        Err(crate::SerdeError::Invalid("no value serde".into()))
    }
}

fn value_serde_or_error<K, A: 'static>(
    stream: &KStream<impl Data, impl Data>,
    m: &Materialized<K, A>,
    op: &str,
) -> SerdeRef<A> {
    m.value_serde.clone().unwrap_or_else(|| {
        stream.graph.borrow_mut().errors.push(format!(
            "{op}: Materialized needs a value serde (Materialized::value_serde)"
        ));
        Arc::new(MissingSerde)
    })
}

impl<K: Data, V: Data> KGroupedStream<K, V> {
    fn add_store<A: Data>(
        &self,
        name: &str,
        kind: StoreKind,
        m: &Materialized<K, A>,
        value: SerdeRef<A>,
    ) {
        let key = m
            .key_serde
            .clone()
            .unwrap_or_else(|| self.key_serde.clone());
        let spec = StoreSpec {
            name: name.to_string(),
            kind,
            backend: m.backend,
            logging: m.logging,
            caching: m.caching,
            serdes: Arc::new(crate::state::handle::StoreSerdes::<K, A> { key, value }),
        };
        self.stream.graph.borrow_mut().add_store(spec);
    }

    fn aggregate_with<A: Data>(
        &self,
        fold: Fold<K, V, A>,
        m: Materialized<K, A>,
        value: SerdeRef<A>,
    ) -> KTable<K, A> {
        let name = store_name(&self.stream, &m.name);
        let key = m
            .key_serde
            .clone()
            .unwrap_or_else(|| self.key_serde.clone());
        self.add_store(&name, StoreKind::KeyValue, &m, value.clone());
        let store_name = name.clone();
        let table = self.stream.add("KSTREAM-AGGREGATE", move || Aggregate {
            store_name: store_name.clone(),
            fold: fold.clone(),
            store: None,
        });
        self.stream
            .graph
            .borrow_mut()
            .connect_store(table.node, &name);
        KTable {
            graph: table.graph.clone(),
            node: table.node,
            store_name: Some(name),
            emit: None,
            suppress_spec: None,
            key_serde: Some(key),
            value_serde: Some(value),
            _types: PhantomData,
        }
    }

    /// Number of records per key.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("taps", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
    ///     .count(Materialized::named("taps"))
    ///     .to_stream()
    ///     .to("tap-counts", Produced::with(Serdes::string(), Serdes::i64()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let taps = d.input_topic("taps", Serdes::string(), Serdes::string());
    /// taps.pipe_all([("a".into(), "t".into()), ("b".into(), "t".into()), ("a".into(), "t".into())])?;
    /// let out = d.output_topic("tap-counts", Serdes::string(), Serdes::i64());
    /// assert_eq!(out.read_key_values(), vec![("a".to_string(), 1), ("b".to_string(), 1), ("a".to_string(), 2)]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn count(&self, materialized: Materialized<K, i64>) -> KTable<K, i64> {
        let fold = count_fold();
        let value = materialized
            .value_serde
            .clone()
            .unwrap_or_else(|| Arc::new(Serdes::i64()));
        self.aggregate_with(fold, materialized, value)
    }

    /// Combines the values of a key with `reducer(aggregate, value)`; the first value is the
    /// first aggregate.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("delays", Consumed::with(Serdes::string(), Serdes::i64()))
    ///     .group_by_key(Grouped::with(Serdes::string(), Serdes::i64()))
    ///     .reduce(|a, b| a.max(b), Materialized::named("worst-delay").in_memory())
    ///     .to_stream()
    ///     .to("worst", Produced::with(Serdes::string(), Serdes::i64()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let input = d.input_topic("delays", Serdes::string(), Serdes::i64());
    /// input.pipe_all([("M15".to_string(), 3), ("M15".to_string(), 9), ("M15".to_string(), 4)])?;
    /// assert_eq!(d.output_topic("worst", Serdes::string(), Serdes::i64()).read_values(), vec![3, 9, 9]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn reduce<F>(&self, reducer: F, materialized: Materialized<K, V>) -> KTable<K, V>
    where
        F: Fn(V, V) -> V + Send + Sync + 'static,
    {
        let fold = reduce_fold(reducer);
        let value = materialized
            .value_serde
            .clone()
            .unwrap_or_else(|| self.value_serde.clone());
        self.aggregate_with(fold, materialized, value)
    }

    /// Folds the values of a key into an aggregate starting at `initializer()`. The
    /// `Materialized` must carry the aggregate's value serde.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("delays", Consumed::with(Serdes::string(), Serdes::f64()))
    ///     .group_by_key(Grouped::with(Serdes::string(), Serdes::f64()))
    ///     .aggregate(|| (0u64, 0.0f64), |_line, d, (n, sum)| (n + 1, sum + d),
    ///         Materialized::named("delay-sums").value_serde(Serdes::json::<(u64, f64)>()).in_memory())
    ///     .to_stream()
    ///     .map_values(|(n, sum)| sum / n as f64)
    ///     .to("mean-delay", Produced::with(Serdes::string(), Serdes::f64()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let input = d.input_topic("delays", Serdes::string(), Serdes::f64());
    /// input.pipe_all([("M15".to_string(), 2.0), ("M15".to_string(), 4.0)])?;
    /// assert_eq!(d.output_topic("mean-delay", Serdes::string(), Serdes::f64()).read_values(), vec![2.0, 3.0]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn aggregate<A: Data, I, F>(
        &self,
        initializer: I,
        aggregator: F,
        materialized: Materialized<K, A>,
    ) -> KTable<K, A>
    where
        I: Fn() -> A + Send + Sync + 'static,
        F: Fn(&K, &V, A) -> A + Send + Sync + 'static,
    {
        let fold = aggregate_fold(initializer, aggregator);
        let value = value_serde_or_error(&self.stream, &materialized, "aggregate");
        self.aggregate_with(fold, materialized, value)
    }

    /// Aggregates per key and tumbling or hopping window.
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
    ///     .count(Materialized::named("per-minute"));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let taps = d.input_topic("taps", Serdes::string(), Serdes::string());
    /// taps.pipe_at("a".into(), "t".into(), 10_000)?;
    /// taps.pipe_at("a".into(), "t".into(), 70_000)?;
    /// let store = d.window_store::<String, i64>("per-minute")?;
    /// assert_eq!(store.fetch(&"a".to_string(), 0, 60_000)?, vec![(0, 1), (60_000, 1)]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn windowed_by(&self, windows: TimeWindows) -> TimeWindowedKStream<K, V> {
        TimeWindowedKStream {
            grouped: self.clone_grouped(),
            windows,
            late_topic: None,
        }
    }

    /// Aggregates per key and sliding window.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("taps", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
    ///     .windowed_by_sliding(SlidingWindows::with_time_difference(Duration::from_secs(10)))
    ///     .count(Materialized::named("within-10s"));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let taps = d.input_topic("taps", Serdes::string(), Serdes::string());
    /// taps.pipe_at("a".into(), "t".into(), 30_000)?;
    /// let store = d.window_store::<String, i64>("within-10s")?;
    /// // The window ending at the record: [20 s, 30 s].
    /// assert_eq!(store.fetch(&"a".to_string(), i64::MIN, i64::MAX)?, vec![(20_000, 1)]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn windowed_by_sliding(&self, windows: SlidingWindows) -> SlidingWindowedKStream<K, V> {
        SlidingWindowedKStream {
            grouped: self.clone_grouped(),
            windows,
            late_topic: None,
        }
    }

    /// Aggregates per key and session.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("taps", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
    ///     .windowed_by_session(SessionWindows::with_inactivity_gap(Duration::from_secs(60)))
    ///     .count(Materialized::named("visits"));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let taps = d.input_topic("taps", Serdes::string(), Serdes::string());
    /// taps.pipe_at("a".into(), "t".into(), 0)?;
    /// taps.pipe_at("a".into(), "t".into(), 30_000)?;
    /// let sessions = d.session_store::<String, i64>("visits")?.fetch(&"a".to_string())?;
    /// assert_eq!(sessions, vec![(Window::new(0, 30_000), 2)]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn windowed_by_session(&self, windows: SessionWindows) -> SessionWindowedKStream<K, V> {
        SessionWindowedKStream {
            grouped: self.clone_grouped(),
            windows,
            late_topic: None,
        }
    }

    fn clone_grouped(&self) -> KGroupedStream<K, V> {
        KGroupedStream {
            stream: self.stream.clone(),
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
        }
    }
}

fn retention(m: &Option<Duration>, at_least: i64) -> i64 {
    m.map(|d| d.as_millis() as i64)
        .unwrap_or(at_least.max(ONE_DAY_MS))
        .max(at_least)
}

/// What count, reduce and aggregate share over time, sliding and session windows, written
/// once: each windowed stream says only how it folds values into its store (`fold_into`;
/// `merger` combines two sessions' aggregates when a record bridges them, and is never called
/// for windows of a fixed length).
trait WindowedAggregation<K: Data, V: Data> {
    fn grouped(&self) -> &KGroupedStream<K, V>;

    fn fold_into<A: Data>(
        &self,
        fold: Fold<K, V, A>,
        merger: Merger<K, A>,
        m: Materialized<K, A>,
        value: SerdeRef<A>,
    ) -> KTable<Windowed<K>, A>;

    fn count_windows(&self, materialized: Materialized<K, i64>) -> KTable<Windowed<K>, i64> {
        let value = materialized
            .value_serde
            .clone()
            .unwrap_or_else(|| Arc::new(Serdes::i64()));
        self.fold_into(count_fold(), Arc::new(|_, a, b| a + b), materialized, value)
    }

    fn reduce_windows<F>(
        &self,
        reducer: F,
        materialized: Materialized<K, V>,
    ) -> KTable<Windowed<K>, V>
    where
        F: Fn(V, V) -> V + Send + Sync + 'static,
    {
        let reducer = Arc::new(reducer);
        let r = reducer.clone();
        let value = materialized
            .value_serde
            .clone()
            .unwrap_or_else(|| self.grouped().value_serde.clone());
        self.fold_into(
            reduce_fold(move |a, b| r(a, b)),
            Arc::new(move |_, a, b| reducer(a, b)),
            materialized,
            value,
        )
    }

    fn aggregate_windows<A: Data, I, F>(
        &self,
        initializer: I,
        aggregator: F,
        merger: Merger<K, A>,
        materialized: Materialized<K, A>,
    ) -> KTable<Windowed<K>, A>
    where
        I: Fn() -> A + Send + Sync + 'static,
        F: Fn(&K, &V, A) -> A + Send + Sync + 'static,
    {
        let value = value_serde_or_error(&self.grouped().stream, &materialized, "aggregate");
        self.fold_into(
            aggregate_fold(initializer, aggregator),
            merger,
            materialized,
            value,
        )
    }
}

impl<K: Data, V: Data> WindowedAggregation<K, V> for TimeWindowedKStream<K, V> {
    fn grouped(&self) -> &KGroupedStream<K, V> {
        &self.grouped
    }

    fn fold_into<A: Data>(
        &self,
        fold: Fold<K, V, A>,
        _merger: Merger<K, A>,
        m: Materialized<K, A>,
        value: SerdeRef<A>,
    ) -> KTable<Windowed<K>, A> {
        let g = &self.grouped;
        let name = store_name(&g.stream, &m.name);
        let retention_ms = retention(&m.retention, self.windows.size_ms + self.windows.grace_ms);
        g.add_store(&name, StoreKind::Window { retention_ms }, &m, value);
        let emit = Arc::new(Mutex::new(EmitConfig::default()));
        let (windows, store_name, emit2) = (self.windows, name.clone(), emit.clone());
        let key_serde = m.key_serde.clone().unwrap_or_else(|| g.key_serde.clone());
        let late = self.late();
        let table = g
            .stream
            .add("KSTREAM-WINDOWED-AGGREGATE", move || WindowAggregate {
                windows,
                retention_ms,
                store_name: store_name.clone(),
                fold: fold.clone(),
                late: late.clone(),
                emit: emit2.clone(),
                key_serde: key_serde.clone(),
                state: None,
                key_buf: Vec::new(),
            });
        g.stream.graph.borrow_mut().connect_store(table.node, &name);
        KTable {
            graph: table.graph.clone(),
            node: table.node,
            store_name: Some(name),
            emit: Some(emit),
            suppress_spec: None,
            key_serde: None,
            value_serde: None,
            _types: PhantomData,
        }
    }
}

impl<K: Data, V: Data> WindowedAggregation<K, V> for SessionWindowedKStream<K, V> {
    fn grouped(&self) -> &KGroupedStream<K, V> {
        &self.grouped
    }

    fn fold_into<A: Data>(
        &self,
        fold: Fold<K, V, A>,
        merger: Merger<K, A>,
        m: Materialized<K, A>,
        value: SerdeRef<A>,
    ) -> KTable<Windowed<K>, A> {
        let g = &self.grouped;
        let name = store_name(&g.stream, &m.name);
        let retention_ms = retention(&m.retention, self.windows.gap_ms + self.windows.grace_ms);
        let spec = SuppressSpec {
            key_serde: m.key_serde.clone().unwrap_or_else(|| g.key_serde.clone()),
            value_serde: value.clone(),
            // Kafka Streams' final session results wait for the gap too: a record up to the
            // gap after a session's end still extends it.
            grace_ms: self.windows.grace_ms + self.windows.gap_ms,
            idle_close: None,
        };
        g.add_store(&name, StoreKind::Session { retention_ms }, &m, value);
        let (windows, store_name) = (self.windows, name.clone());
        let late = self.late();
        let table = g
            .stream
            .add("KSTREAM-SESSION-AGGREGATE", move || SessionAggregate {
                windows,
                store_name: store_name.clone(),
                fold: fold.clone(),
                late: late.clone(),
                merger: merger.clone(),
                store: None,
                retention_ms,
                next_expiry: i64::MIN,
            });
        g.stream.graph.borrow_mut().connect_store(table.node, &name);
        KTable {
            graph: table.graph.clone(),
            node: table.node,
            store_name: Some(name),
            emit: None,
            suppress_spec: Some(crate::table::until_close_attach(spec)),
            key_serde: None,
            value_serde: None,
            _types: PhantomData,
        }
    }
}

impl<K: Data, V: Data> WindowedAggregation<K, V> for SlidingWindowedKStream<K, V> {
    fn grouped(&self) -> &KGroupedStream<K, V> {
        &self.grouped
    }

    fn fold_into<A: Data>(
        &self,
        fold: Fold<K, V, A>,
        _merger: Merger<K, A>,
        m: Materialized<K, A>,
        value: SerdeRef<A>,
    ) -> KTable<Windowed<K>, A> {
        let g = &self.grouped;
        let name = store_name(&g.stream, &m.name);
        let records_name = format!("{name}-records");
        let d = self.windows.time_difference_ms;
        let retention_ms = retention(&m.retention, d + self.windows.grace_ms);
        let spec = SuppressSpec {
            key_serde: m.key_serde.clone().unwrap_or_else(|| g.key_serde.clone()),
            value_serde: value.clone(),
            grace_ms: self.windows.grace_ms,
            idle_close: None,
        };
        g.add_store(&name, StoreKind::Window { retention_ms }, &m, value);
        let raw = Materialized::<K, Vec<V>> {
            name: Some(records_name.clone()),
            key_serde: m.key_serde.clone(),
            value_serde: None,
            backend: m.backend,
            logging: m.logging,
            caching: false,
            retention: None,
        };
        g.add_store(
            &records_name,
            StoreKind::Window {
                retention_ms: retention_ms + d,
            },
            &raw,
            list_serde(g.value_serde.clone()),
        );
        let (windows, store_name, rn) = (self.windows, name.clone(), records_name.clone());
        let late = self.late();
        let table = g.stream.add("KSTREAM-SLIDINGWINDOW-AGGREGATE", move || {
            SlidingAggregate {
                windows,
                retention_ms,
                store_name: store_name.clone(),
                records_store_name: rn.clone(),
                fold: fold.clone(),
                late: late.clone(),
                stores: None,
                next_expiry: i64::MIN,
            }
        });
        let mut graph = g.stream.graph.borrow_mut();
        graph.connect_store(table.node, &name);
        graph.connect_store(table.node, &records_name);
        drop(graph);
        KTable {
            graph: table.graph.clone(),
            node: table.node,
            store_name: Some(name),
            emit: None,
            suppress_spec: Some(crate::table::until_close_attach(spec)),
            key_serde: None,
            value_serde: None,
            _types: PhantomData,
        }
    }
}

/// A grouped stream over tumbling or hopping windows.
pub struct TimeWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: TimeWindows,
    late_topic: Option<String>,
}

impl<K: Data, V: Data> TimeWindowedKStream<K, V> {
    /// Also send late records (dropped because their window closed) to `topic`, serialized
    /// with the grouping's serdes, with headers naming the reason and the record's origin.
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
    ///     .late_records_to("late-taps")
    ///     .count(Materialized::named("per-minute"));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let taps = d.input_topic("taps", Serdes::string(), Serdes::string());
    /// taps.pipe_at("a".into(), "on time".into(), 61_000)?; // closes [0 s, 60 s)
    /// taps.pipe_at("a".into(), "late".into(), 5_000)?;
    /// let late = d.output_topic("late-taps", Serdes::string(), Serdes::string());
    /// assert_eq!(late.read_key_values(), vec![("a".to_string(), "late".to_string())]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn late_records_to(mut self, topic: &str) -> Self {
        self.late_topic = Some(topic.to_string());
        self
    }

    fn late(&self) -> LateRecords<K, V> {
        LateRecords {
            topic: self.late_topic.clone(),
            key_serde: self.grouped.key_serde.clone(),
            value_serde: self.grouped.value_serde.clone(),
        }
    }
    /// Records per key and window.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    /// use streamkit::window::{TimeWindows, WindowedSerde};
    /// let b = StreamsBuilder::new();
    /// b.stream("taps", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
    ///     .windowed_by(TimeWindows::tumbling(Duration::from_secs(60)))
    ///     .count(Materialized::named("taps-per-minute").in_memory())
    ///     .suppress(Suppressed::until_window_closes())
    ///     .to_stream()
    ///     .to("final-counts", Produced::with(WindowedSerde::time(Serdes::string(), 60_000), Serdes::i64()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let input = d.input_topic("taps", Serdes::string(), Serdes::string());
    /// input.pipe_at("clark".into(), "tap".into(), 1_000)?;
    /// input.pipe_at("clark".into(), "tap".into(), 59_000)?;
    /// input.pipe_at("clark".into(), "tap".into(), 61_000)?; // closes [0 s, 60 s)
    /// let out = d.output_topic("final-counts", WindowedSerde::time(Serdes::string(), 60_000), Serdes::i64());
    /// let (key, count) = out.read_key_value().unwrap();
    /// assert_eq!((key.key.as_str(), key.window.start, count), ("clark", 0, 2));
    /// assert!(out.is_empty());
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn count(&self, materialized: Materialized<K, i64>) -> KTable<Windowed<K>, i64> {
        self.count_windows(materialized)
    }

    /// Reduces the values per key and window.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("fares", Consumed::with(Serdes::string(), Serdes::i64()))
    ///     .group_by_key(Grouped::with(Serdes::string(), Serdes::i64()))
    ///     .windowed_by(TimeWindows::tumbling(Duration::from_secs(60)))
    ///     .reduce(|a, b| a + b, Materialized::named("fares-per-minute"));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let fares = d.input_topic("fares", Serdes::string(), Serdes::i64());
    /// fares.pipe_at("bus".into(), 250, 1_000)?;
    /// fares.pipe_at("bus".into(), 125, 2_000)?;
    /// fares.pipe_at("bus".into(), 250, 61_000)?;
    /// let store = d.window_store::<String, i64>("fares-per-minute")?;
    /// assert_eq!(store.fetch(&"bus".to_string(), 0, 60_000)?, vec![(0, 375), (60_000, 250)]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn reduce<F>(&self, reducer: F, materialized: Materialized<K, V>) -> KTable<Windowed<K>, V>
    where
        F: Fn(V, V) -> V + Send + Sync + 'static,
    {
        self.reduce_windows(reducer, materialized)
    }

    /// Folds the values per key and window, starting at `initializer()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("fares", Consumed::with(Serdes::string(), Serdes::i64()))
    ///     .group_by_key(Grouped::with(Serdes::string(), Serdes::i64()))
    ///     .windowed_by(TimeWindows::tumbling(Duration::from_secs(60)))
    ///     .aggregate(|| 0i64, |_k: &String, v: &i64, max: i64| max.max(*v),
    ///         Materialized::named("max-fare").value_serde(Serdes::i64()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let fares = d.input_topic("fares", Serdes::string(), Serdes::i64());
    /// fares.pipe_at("bus".into(), 250, 1_000)?;
    /// fares.pipe_at("bus".into(), 500, 2_000)?;
    /// fares.pipe_at("bus".into(), 125, 3_000)?;
    /// let store = d.window_store::<String, i64>("max-fare")?;
    /// assert_eq!(store.fetch(&"bus".to_string(), 0, 0)?, vec![(0, 500)]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn aggregate<A: Data, I, F>(
        &self,
        initializer: I,
        aggregator: F,
        materialized: Materialized<K, A>,
    ) -> KTable<Windowed<K>, A>
    where
        I: Fn() -> A + Send + Sync + 'static,
        F: Fn(&K, &V, A) -> A + Send + Sync + 'static,
    {
        // Windows of a fixed length never merge: the merger is never called.
        self.aggregate_windows(initializer, aggregator, Arc::new(|_, a, _| a), materialized)
    }
}

/// A grouped stream over session windows.
pub struct SessionWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: SessionWindows,
    late_topic: Option<String>,
}

impl<K: Data, V: Data> SessionWindowedKStream<K, V> {
    /// Also send late records (dropped because their window closed) to `topic`, serialized
    /// with the grouping's serdes, with headers naming the reason and the record's origin.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("taps", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
    ///     .windowed_by_session(SessionWindows::with_inactivity_gap(Duration::from_secs(10)))
    ///     .late_records_to("late-taps")
    ///     .count(Materialized::named("visits"));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let taps = d.input_topic("taps", Serdes::string(), Serdes::string());
    /// taps.pipe_at("a".into(), "now".into(), 100_000)?;
    /// taps.pipe_at("a".into(), "stale".into(), 1_000)?; // its session closed at 11 s
    /// let late = d.output_topic("late-taps", Serdes::string(), Serdes::string());
    /// assert_eq!(late.read_values(), vec!["stale".to_string()]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn late_records_to(mut self, topic: &str) -> Self {
        self.late_topic = Some(topic.to_string());
        self
    }

    fn late(&self) -> LateRecords<K, V> {
        LateRecords {
            topic: self.late_topic.clone(),
            key_serde: self.grouped.key_serde.clone(),
            value_serde: self.grouped.value_serde.clone(),
        }
    }
    /// Records per key and session.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    /// use streamkit::window::{SessionWindows, WindowedSerde};
    /// let b = StreamsBuilder::new();
    /// b.stream("clicks", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
    ///     // Grace keeps the first session open long enough for the late record to bridge it.
    ///     .windowed_by_session(
    ///         SessionWindows::with_inactivity_gap(Duration::from_secs(5)).grace(Duration::from_secs(10)),
    ///     )
    ///     .count(Materialized::named("sessions").in_memory())
    ///     .to_stream()
    ///     .to("session-counts", Produced::with(WindowedSerde::session(Serdes::string()), Serdes::i64()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let input = d.input_topic("clicks", Serdes::string(), Serdes::string());
    /// input.pipe_at("ann".into(), "c".into(), 0)?;
    /// input.pipe_at("ann".into(), "c".into(), 10_000)?; // a second session
    /// input.pipe_at("ann".into(), "c".into(), 5_000)?;  // bridges both: one session of 3
    /// let out = d.output_topic("session-counts", WindowedSerde::session(Serdes::string()), Serdes::i64());
    /// let last = out.read_key_values().pop().unwrap();
    /// assert_eq!((last.0.window.start, last.0.window.end, last.1), (0, 10_000, 3));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn count(&self, materialized: Materialized<K, i64>) -> KTable<Windowed<K>, i64> {
        self.count_windows(materialized)
    }

    /// Reduces the values per key and session.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("fares", Consumed::with(Serdes::string(), Serdes::i64()))
    ///     .group_by_key(Grouped::with(Serdes::string(), Serdes::i64()))
    ///     .windowed_by_session(SessionWindows::with_inactivity_gap(Duration::from_secs(10)))
    ///     .reduce(|a, b| a + b, Materialized::named("trip-fares"));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let fares = d.input_topic("fares", Serdes::string(), Serdes::i64());
    /// fares.pipe_at("card".into(), 250, 0)?;
    /// fares.pipe_at("card".into(), 100, 5_000)?;
    /// let sessions = d.session_store::<String, i64>("trip-fares")?.fetch(&"card".to_string())?;
    /// assert_eq!(sessions, vec![(Window::new(0, 5_000), 350)]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn reduce<F>(&self, reducer: F, materialized: Materialized<K, V>) -> KTable<Windowed<K>, V>
    where
        F: Fn(V, V) -> V + Send + Sync + 'static,
    {
        self.reduce_windows(reducer, materialized)
    }

    /// Folds the values per key and session; `merger` combines two sessions' aggregates when
    /// a record bridges them.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("taps", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
    ///     .windowed_by_session(SessionWindows::with_inactivity_gap(Duration::from_secs(10)))
    ///     .aggregate(String::new,
    ///         |_k: &String, v: &String, acc: String| acc + v,
    ///         |_k: &String, a: String, b: String| a + &b,
    ///         Materialized::named("trips").value_serde(Serdes::string()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let taps = d.input_topic("taps", Serdes::string(), Serdes::string());
    /// taps.pipe_at("card".into(), "a".into(), 0)?;
    /// taps.pipe_at("card".into(), "b".into(), 3_000)?;
    /// let sessions = d.session_store::<String, String>("trips")?.fetch(&"card".to_string())?;
    /// assert_eq!(sessions, vec![(Window::new(0, 3_000), "ab".to_string())]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn aggregate<A: Data, I, F, M>(
        &self,
        initializer: I,
        aggregator: F,
        merger: M,
        materialized: Materialized<K, A>,
    ) -> KTable<Windowed<K>, A>
    where
        I: Fn() -> A + Send + Sync + 'static,
        F: Fn(&K, &V, A) -> A + Send + Sync + 'static,
        M: Fn(&K, A, A) -> A + Send + Sync + 'static,
    {
        self.aggregate_windows(initializer, aggregator, Arc::new(merger), materialized)
    }
}

/// A grouped stream over sliding windows.
pub struct SlidingWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: SlidingWindows,
    late_topic: Option<String>,
}

impl<K: Data, V: Data> SlidingWindowedKStream<K, V> {
    /// Also send late records (dropped because their window closed) to `topic`, serialized
    /// with the grouping's serdes, with headers naming the reason and the record's origin.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("taps", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
    ///     .windowed_by_sliding(SlidingWindows::with_time_difference(Duration::from_secs(10)))
    ///     .late_records_to("late-taps")
    ///     .count(Materialized::named("within-10s"));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let taps = d.input_topic("taps", Serdes::string(), Serdes::string());
    /// taps.pipe_at("a".into(), "now".into(), 100_000)?;
    /// taps.pipe_at("a".into(), "stale".into(), 1_000)?;
    /// let late = d.output_topic("late-taps", Serdes::string(), Serdes::string());
    /// assert_eq!(late.read_values(), vec!["stale".to_string()]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn late_records_to(mut self, topic: &str) -> Self {
        self.late_topic = Some(topic.to_string());
        self
    }

    fn late(&self) -> LateRecords<K, V> {
        LateRecords {
            topic: self.late_topic.clone(),
            key_serde: self.grouped.key_serde.clone(),
            value_serde: self.grouped.value_serde.clone(),
        }
    }
    /// Records per key and sliding window.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    /// use streamkit::window::SlidingWindows;
    /// let b = StreamsBuilder::new();
    /// b.stream("taps", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
    ///     .windowed_by_sliding(SlidingWindows::with_time_difference(Duration::from_secs(10)))
    ///     .count(Materialized::named("taps-10s").in_memory());
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let input = d.input_topic("taps", Serdes::string(), Serdes::string());
    /// for ts in [0, 4_000, 12_000] { input.pipe_at("clark".into(), "tap".into(), ts)?; }
    /// let windows = d.window_store::<String, i64>("taps-10s")?.fetch(&"clark".to_string(), i64::MIN, i64::MAX)?;
    /// // Left windows [-10 s, 0], [-6 s, 4 s], [2 s, 12 s]; right windows [1 ms, 10.001 s]
    /// // (holds the 4 s record) and [4.001 s, 14.001 s] (holds the 12 s one).
    /// assert_eq!(windows, vec![(-10_000, 1), (-6_000, 2), (1, 1), (2_000, 2), (4_001, 1)]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn count(&self, materialized: Materialized<K, i64>) -> KTable<Windowed<K>, i64> {
        self.count_windows(materialized)
    }

    /// Reduces the values per key and sliding window.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("fares", Consumed::with(Serdes::string(), Serdes::i64()))
    ///     .group_by_key(Grouped::with(Serdes::string(), Serdes::i64()))
    ///     .windowed_by_sliding(SlidingWindows::with_time_difference(Duration::from_secs(10)))
    ///     .reduce(|a, b| a + b, Materialized::named("fares-10s"));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let fares = d.input_topic("fares", Serdes::string(), Serdes::i64());
    /// fares.pipe_at("card".into(), 250, 20_000)?;
    /// fares.pipe_at("card".into(), 100, 25_000)?;
    /// let store = d.window_store::<String, i64>("fares-10s")?;
    /// // The window [15 s, 25 s] holds both fares.
    /// assert!(store.fetch(&"card".to_string(), i64::MIN, i64::MAX)?.contains(&(15_000, 350)));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn reduce<F>(&self, reducer: F, materialized: Materialized<K, V>) -> KTable<Windowed<K>, V>
    where
        F: Fn(V, V) -> V + Send + Sync + 'static,
    {
        self.reduce_windows(reducer, materialized)
    }

    /// Folds the values per key and sliding window, starting at `initializer()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("fares", Consumed::with(Serdes::string(), Serdes::i64()))
    ///     .group_by_key(Grouped::with(Serdes::string(), Serdes::i64()))
    ///     .windowed_by_sliding(SlidingWindows::with_time_difference(Duration::from_secs(10)))
    ///     .aggregate(|| 0i64, |_k: &String, v: &i64, max: i64| max.max(*v),
    ///         Materialized::named("max-10s").value_serde(Serdes::i64()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let fares = d.input_topic("fares", Serdes::string(), Serdes::i64());
    /// fares.pipe_at("card".into(), 250, 20_000)?;
    /// fares.pipe_at("card".into(), 100, 25_000)?;
    /// let store = d.window_store::<String, i64>("max-10s")?;
    /// assert!(store.fetch(&"card".to_string(), i64::MIN, i64::MAX)?.contains(&(15_000, 250)));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn aggregate<A: Data, I, F>(
        &self,
        initializer: I,
        aggregator: F,
        materialized: Materialized<K, A>,
    ) -> KTable<Windowed<K>, A>
    where
        I: Fn() -> A + Send + Sync + 'static,
        F: Fn(&K, &V, A) -> A + Send + Sync + 'static,
    {
        // Windows of a fixed length never merge: the merger is never called.
        self.aggregate_windows(initializer, aggregator, Arc::new(|_, a, _| a), materialized)
    }
}
