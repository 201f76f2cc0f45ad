//! [`StreamJoined`]: serdes, names and stores of a stream-stream join.

use std::sync::Arc;

use super::StoreBackend;
use crate::processor::Data;
use crate::serde::{Serde, SerdeRef};

/// How a stream-stream join buffers its inputs: the serdes of the key and of both sides'
/// values (for the two window stores and, if a side must be repartitioned first, its
/// repartition topic), the names of its processors and stores, and the stores' backend.
///
/// The stores are `<base>-this-join-store` and `<base>-other-join-store` (one per side) and,
/// for left and outer joins, `<base>-outer-shared-join-store` (records still waiting for a
/// partner), each with a changelog topic `<application-id>-<store>-changelog`. `<base>` is
/// the [store name](Self::with_store_name), else the [name](Self::named), else a generated
/// `KSTREAM-JOIN-<n>`: name joins whose state you keep across topology changes.
pub struct StreamJoined<K, V1, V2> {
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) left_serde: SerdeRef<V1>,
    pub(crate) right_serde: SerdeRef<V2>,
    pub(crate) name: Option<String>,
    pub(crate) store_name: Option<String>,
    pub(crate) backend: StoreBackend,
    pub(crate) logging: bool,
    pub(crate) late_topic: Option<String>,
}

impl<K: Data, V1: Data, V2: Data> StreamJoined<K, V1, V2> {
    /// Serdes of the key, the left (this) stream's values and the right (other) stream's.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// let taps = b.stream("taps", Consumed::with(Serdes::string(), Serdes::string()));
    /// let fares = b.stream("fares", Consumed::with(Serdes::string(), Serdes::i64()));
    /// taps.join(&fares, |t: &String, f: &i64| format!("{t}:{f}"), JoinWindows::of(Duration::from_secs(5)),
    ///         StreamJoined::with(Serdes::string(), Serdes::string(), Serdes::i64()))
    ///     .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("taps", Serdes::string(), Serdes::string()).pipe_at("card".into(), "tap".into(), 1_000)?;
    /// d.input_topic("fares", Serdes::string(), Serdes::i64()).pipe_at("card".into(), 250, 2_000)?;
    /// assert_eq!(d.output_topic("out", Serdes::string(), Serdes::string()).read_values(), vec!["tap:250".to_string()]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn with(
        key_serde: impl Serde<K>,
        left_value_serde: impl Serde<V1>,
        right_value_serde: impl Serde<V2>,
    ) -> Self {
        StreamJoined {
            key_serde: Arc::new(key_serde),
            left_serde: Arc::new(left_value_serde),
            right_serde: Arc::new(right_value_serde),
            name: None,
            store_name: None,
            backend: StoreBackend::RocksDb,
            logging: true,
            late_topic: None,
        }
    }

    /// Names the join's processors (`<name>-join-this`, `<name>-join-other`, `<name>-join`),
    /// repartition topics (`<name>-left-repartition`, `<name>-right-repartition`) and, unless
    /// a store name is given, its stores.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// let l = b.stream("l", Consumed::with(Serdes::string(), Serdes::string()));
    /// let r = b.stream("r", Consumed::with(Serdes::string(), Serdes::string()));
    /// l.join(&r, |a: &String, b: &String| format!("{a}{b}"), JoinWindows::of(Duration::from_secs(1)),
    ///         StreamJoined::with(Serdes::string(), Serdes::string(), Serdes::string()).named("pair"))
    ///     .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// let described = b.build()?.describe().to_string();
    /// assert!(described.contains("Processor: pair-join-this"));
    /// assert!(described.contains("pair-this-join-store"));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The base name of the join's stores (and so of their changelog topics).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    /// use streamkit::topology::TopicName;
    /// let b = StreamsBuilder::new();
    /// let l = b.stream("l", Consumed::with(Serdes::string(), Serdes::string()));
    /// let r = b.stream("r", Consumed::with(Serdes::string(), Serdes::string()));
    /// l.join(&r, |a: &String, b: &String| format!("{a}{b}"), JoinWindows::of(Duration::from_secs(1)),
    ///         StreamJoined::with(Serdes::string(), Serdes::string(), Serdes::string())
    ///             .named("pair").with_store_name("pair-v2"))
    ///     .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// let topology = b.build()?;
    /// let topics: Vec<_> = topology.internal_topics().iter().map(|t| t.name.clone()).collect();
    /// assert!(topics.contains(&TopicName::Internal("pair-v2-this-join-store-changelog".into())));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn with_store_name(mut self, name: impl Into<String>) -> Self {
        self.store_name = Some(name.into());
        self
    }

    /// Keep the stores in memory instead of RocksDB (restored from the changelogs on restart).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// let l = b.stream("l", Consumed::with(Serdes::string(), Serdes::string()));
    /// let r = b.stream("r", Consumed::with(Serdes::string(), Serdes::string()));
    /// l.join(&r, |a: &String, b: &String| format!("{a}+{b}"), JoinWindows::of(Duration::from_secs(1)),
    ///         StreamJoined::with(Serdes::string(), Serdes::string(), Serdes::string()).in_memory())
    ///     .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("l", Serdes::string(), Serdes::string()).pipe_at("k".into(), "a".into(), 0)?;
    /// d.input_topic("r", Serdes::string(), Serdes::string()).pipe_at("k".into(), "b".into(), 500)?;
    /// assert_eq!(d.output_topic("out", Serdes::string(), Serdes::string()).read_values(), vec!["a+b".to_string()]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn in_memory(mut self) -> Self {
        self.backend = StoreBackend::InMemory;
        self
    }

    /// Also send late records (dropped because their join window closed) to `topic`,
    /// serialized with the side's serdes, with headers naming the reason and the record's
    /// origin. Late records are always counted.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// let l = b.stream("l", Consumed::with(Serdes::string(), Serdes::string()));
    /// let r = b.stream("r", Consumed::with(Serdes::string(), Serdes::string()));
    /// l.join(&r, |a: &String, b: &String| format!("{a}+{b}"), JoinWindows::of(Duration::from_millis(10)),
    ///         StreamJoined::with(Serdes::string(), Serdes::string(), Serdes::string()).late_records_to("late"))
    ///     .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let left = d.input_topic("l", Serdes::string(), Serdes::string());
    /// left.pipe_at("k".into(), "now".into(), 1_000)?;
    /// left.pipe_at("k".into(), "stale".into(), 100)?; // its window closed at 110
    /// assert_eq!(d.output_topic("late", Serdes::string(), Serdes::string()).read_values(), vec!["stale".to_string()]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn late_records_to(mut self, topic: impl Into<String>) -> Self {
        self.late_topic = Some(topic.into());
        self
    }

    /// No changelog topics: the buffers start empty after a restart or a move.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// let l = b.stream("l", Consumed::with(Serdes::string(), Serdes::string()));
    /// let r = b.stream("r", Consumed::with(Serdes::string(), Serdes::string()));
    /// l.join(&r, |a: &String, b: &String| format!("{a}{b}"), JoinWindows::of(Duration::from_secs(1)),
    ///         StreamJoined::with(Serdes::string(), Serdes::string(), Serdes::string()).with_logging_disabled())
    ///     .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// let topology = b.build()?;
    /// assert!(topology.internal_topics().iter().all(|t| !t.name.to_string().ends_with("-changelog")));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn with_logging_disabled(mut self) -> Self {
        self.logging = false;
        self
    }
}
