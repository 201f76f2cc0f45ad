//! [`Materialized`]: how an aggregation's state store is built.

use crate::state::StoreBackend;
use std::sync::Arc;
use std::time::Duration;

use crate::processor::Data;
use crate::serde::{Serde, SerdeRef};

/// How to materialize an aggregation: the store's name (which names its changelog topic
/// `<application-id>-<name>-changelog`), serdes, backend, changelog and retention.
///
/// Name every store you care about: an unnamed store gets a generated name that changes when
/// the topology changes, and with it the changelog topic.
pub struct Materialized<K, V> {
    pub(crate) name: Option<String>,
    pub(crate) key_serde: Option<SerdeRef<K>>,
    pub(crate) value_serde: Option<SerdeRef<V>>,
    pub(crate) backend: StoreBackend,
    pub(crate) logging: bool,
    pub(crate) caching: bool,
    pub(crate) retention: Option<Duration>,
}

impl<K: Data, V: Data> Default for Materialized<K, V> {
    fn default() -> Self {
        Materialized {
            name: None,
            key_serde: None,
            value_serde: None,
            backend: StoreBackend::RocksDb,
            logging: true,
            caching: false,
            retention: None,
        }
    }
}

impl<K: Data, V: Data> Materialized<K, V> {
    /// A store called `name`.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("taps", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
    ///     .count(Materialized::named("tap-counts"));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("taps", Serdes::string(), Serdes::string()).pipe("clark".into(), "tap".into())?;
    /// assert_eq!(d.key_value_store::<String, i64>("tap-counts")?.get(&"clark".to_string())?, Some(1));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn named(name: impl Into<String>) -> Self {
        Materialized {
            name: Some(name.into()),
            ..Self::default()
        }
    }

    /// An unnamed store with these serdes (a generated name is used).
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
    ///     .group_by_key(Grouped::with(Serdes::string(), Serdes::i64()))
    ///     .aggregate(|| 0i64, |_k: &String, v: &i64, sum: i64| sum + v,
    ///         Materialized::with(Serdes::string(), Serdes::i64()))
    ///     .to_stream()
    ///     .to("sums", Produced::with(Serdes::string(), Serdes::i64()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("in", Serdes::string(), Serdes::i64()).pipe_all([("a".to_string(), 2), ("a".to_string(), 3)])?;
    /// assert_eq!(d.output_topic("sums", Serdes::string(), Serdes::i64()).read_values(), vec![2, 5]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn with(key_serde: impl Serde<K>, value_serde: impl Serde<V>) -> Self {
        Self::default()
            .key_serde(key_serde)
            .value_serde(value_serde)
    }

    /// Key serde of the store and changelog. Default = the grouping's key serde.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
    ///     .count(Materialized::named("counts").key_serde(Serdes::string()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("in", Serdes::string(), Serdes::string()).pipe("k".into(), "v".into())?;
    /// assert_eq!(d.key_value_store::<String, i64>("counts")?.get(&"k".to_string())?, Some(1));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn key_serde(mut self, serde: impl Serde<K>) -> Self {
        self.key_serde = Some(Arc::new(serde));
        self
    }

    /// Value serde of the store and changelog. Required unless the operator knows its value
    /// type's serde (count uses i64).
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
    ///     .aggregate(Vec::new, |_k: &String, v: &String, mut seen: Vec<String>| { seen.push(v.clone()); seen },
    ///         Materialized::named("seen").value_serde(Serdes::json::<Vec<String>>()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("in", Serdes::string(), Serdes::string()).pipe_all([("k".into(), "a".into()), ("k".into(), "b".into())])?;
    /// let store = d.key_value_store::<String, Vec<String>>("seen")?;
    /// assert_eq!(store.get(&"k".to_string())?, Some(vec!["a".to_string(), "b".to_string()]));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn value_serde(mut self, serde: impl Serde<V>) -> Self {
        self.value_serde = Some(Arc::new(serde));
        self
    }

    /// Keep the store in memory instead of RocksDB.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
    ///     .count(Materialized::named("counts").in_memory());
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("in", Serdes::string(), Serdes::string()).pipe_all([("k".into(), "a".into()), ("k".into(), "b".into())])?;
    /// assert_eq!(d.key_value_store::<String, i64>("counts")?.get(&"k".to_string())?, Some(2));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn in_memory(mut self) -> Self {
        self.backend = StoreBackend::InMemory;
        self
    }

    /// No changelog topic: the store is not restored after a crash or rebalance.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
    ///     .count(Materialized::named("scratch").with_logging_disabled());
    /// let topology = b.build()?;
    /// assert!(topology.internal_topics().iter().all(|t| t.name.to_string() != "scratch-changelog"));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn with_logging_disabled(mut self) -> Self {
        self.logging = false;
        self
    }

    /// Cache the store's updates between commits (Kafka Streams' record cache): the store and
    /// its changelog get one write per key and commit. Updates downstream are still forwarded
    /// one per record (Kafka Streams also collapses those). Default = off: every update is
    /// written.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
    ///     .count(Materialized::named("counts").with_caching_enabled());
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.set_commit_every(3); // as if three records arrived within one commit interval
    /// let input = d.input_topic("in", Serdes::string(), Serdes::string());
    /// input.pipe_all([("k".into(), "a".into()), ("k".into(), "b".into()), ("k".into(), "c".into())])?;
    /// // The three updates of the key collapse into one changelog write at the commit.
    /// let changelog = d.output_topic("test-app-counts-changelog", Serdes::string(), Serdes::i64());
    /// assert_eq!(changelog.read_values(), vec![3]);
    /// assert_eq!(d.key_value_store::<String, i64>("counts")?.get(&"k".to_string())?, Some(3));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn with_caching_enabled(mut self) -> Self {
        self.caching = true;
        self
    }

    /// How long windows are kept (windowed stores). Default = window size + grace, at least
    /// one day, as in Kafka Streams.
    ///
    /// # Examples
    ///
    /// The changelog of a windowed store keeps records a day longer than the store:
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
    ///     .windowed_by(TimeWindows::tumbling(Duration::from_secs(60)))
    ///     .count(Materialized::named("per-minute").with_retention(Duration::from_secs(3_600)));
    /// let topology = b.build()?;
    /// let changelog = topology.internal_topics().iter()
    ///     .find(|t| t.name.to_string().contains("per-minute-changelog")).unwrap();
    /// assert!(changelog.config.contains(&("retention.ms".to_string(), (3_600_000 + 86_400_000).to_string())));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = Some(retention);
        self
    }
}
