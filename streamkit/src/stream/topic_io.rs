//! Parameter objects of the DSL: how a stream is consumed, produced and repartitioned.

use std::sync::Arc;

use crate::error_policy::DeserializationHandler;
use crate::operators::source::TimestampExtractor;
use crate::processor::Data;
use crate::serde::{Serde, SerdeRef};

/// How to read a topic: key and value serdes, deserialization-error policy, timestamps.
pub struct Consumed<K, V> {
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) value_serde: SerdeRef<V>,
    pub(crate) handler: Option<DeserializationHandler>,
    pub(crate) timestamp_extractor: Option<TimestampExtractor<K, V>>,
    pub(crate) name: Option<String>,
}

impl<K: Data, V: Data> Consumed<K, V> {
    /// Reads keys and values with these serdes.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
    ///     .map_values(|v: i64| v * 2)
    ///     .to("out", Produced::with(Serdes::string(), Serdes::i64()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("in", Serdes::string(), Serdes::i64()).pipe("k".into(), 21)?;
    /// assert_eq!(d.output_topic("out", Serdes::string(), Serdes::i64()).read_values(), vec![42]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn with(key_serde: impl Serde<K>, value_serde: impl Serde<V>) -> Self {
        Consumed {
            key_serde: Arc::new(key_serde),
            value_serde: Arc::new(value_serde),
            handler: None,
            timestamp_extractor: None,
            name: None,
        }
    }

    /// What to do with records that cannot be deserialized. Default = the application's
    /// [`default_deserialization_handler`](crate::config::StreamsConfig::default_deserialization_handler),
    /// itself `Fail` by default.
    ///
    /// # Examples
    ///
    /// Skip records whose value is not a long, and go on:
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::i64())
    ///         .on_deserialization_error(DeserializationHandler::LogAndContinue))
    ///     .to("out", Produced::with(Serdes::string(), Serdes::i64()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("in", Serdes::string(), Serdes::string()).pipe("k".into(), "oops".into())?;
    /// d.input_topic("in", Serdes::string(), Serdes::i64()).pipe("k".into(), 7)?;
    /// assert_eq!(d.output_topic("out", Serdes::string(), Serdes::i64()).read_values(), vec![7]);
    /// assert_eq!(d.metrics().dropped_records("deserialization"), 1);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn on_deserialization_error(mut self, handler: DeserializationHandler) -> Self {
        self.handler = Some(handler);
        self
    }

    /// Event time from the record's contents: `f(key, value, kafka_timestamp) -> ms`.
    /// Default = the Kafka record timestamp.
    ///
    /// # Examples
    ///
    /// Event time taken from the value instead of the Kafka timestamp:
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::i64())
    ///         .with_timestamp_extractor(|_k: &String, v: &i64, _kafka_ts| *v))
    ///     .to("out", Produced::with(Serdes::string(), Serdes::i64()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("in", Serdes::string(), Serdes::i64()).pipe_at("k".into(), 5_000, 1)?;
    /// let out = d.output_topic("out", Serdes::string(), Serdes::i64()).read_record().unwrap();
    /// assert_eq!(out.timestamp, 5_000);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn with_timestamp_extractor(
        mut self,
        f: impl Fn(&K, &V, i64) -> i64 + Send + Sync + 'static,
    ) -> Self {
        self.timestamp_extractor = Some(Arc::new(f));
        self
    }

    /// Names the source node. Default = `KSTREAM-SOURCE-<n>`.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::string()).named("read-in"))
    ///     .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// assert!(b.build()?.describe().to_string().contains("Source: read-in (topics: [in])"));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// How to write a topic: key and value serdes and the sink's name.
pub struct Produced<K, V> {
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) value_serde: SerdeRef<V>,
    pub(crate) name: Option<String>,
}

impl<K: Data, V: Data> Produced<K, V> {
    /// Writes keys and values with these serdes.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .map_values(|v: String| v.len() as i64)
    ///     .to("lengths", Produced::with(Serdes::string(), Serdes::i64()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("in", Serdes::string(), Serdes::string()).pipe("k".into(), "abc".into())?;
    /// let out = d.output_topic("lengths", Serdes::string(), Serdes::i64());
    /// assert_eq!(out.read_key_values(), vec![("k".to_string(), 3)]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn with(key_serde: impl Serde<K>, value_serde: impl Serde<V>) -> Self {
        Produced {
            key_serde: Arc::new(key_serde),
            value_serde: Arc::new(value_serde),
            name: None,
        }
    }

    /// Names the sink node. Default = `KSTREAM-SINK-<n>`.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .to("out", Produced::with(Serdes::string(), Serdes::string()).named("write-out"));
    /// assert!(b.build()?.describe().to_string().contains("Sink: write-out (topic: out)"));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// How to repartition: serdes, the topic's name and partition count.
pub struct Repartitioned<K, V> {
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) value_serde: SerdeRef<V>,
    pub(crate) name: Option<String>,
    pub(crate) partitions: Option<i32>,
}

impl<K: Data, V: Data> Repartitioned<K, V> {
    /// Writes and reads the repartition topic with these serdes.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
    ///     .select_key(|_, v: &i64| v.to_string())
    ///     .repartition(Repartitioned::with(Serdes::string(), Serdes::i64()))
    ///     .to("out", Produced::with(Serdes::string(), Serdes::i64()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("in", Serdes::string(), Serdes::i64()).pipe("k".into(), 9)?;
    /// let out = d.output_topic("out", Serdes::string(), Serdes::i64());
    /// assert_eq!(out.read_key_values(), vec![("9".to_string(), 9)]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn with(key_serde: impl Serde<K>, value_serde: impl Serde<V>) -> Self {
        Repartitioned {
            key_serde: Arc::new(key_serde),
            value_serde: Arc::new(value_serde),
            name: None,
            partitions: None,
        }
    }

    /// The topic is `<application-id>-<name>-repartition`. Default name =
    /// `KSTREAM-REPARTITION-<n>`; give a name so the topic survives topology changes.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// use streamkit::topology::TopicName;
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .repartition(Repartitioned::with(Serdes::string(), Serdes::string()).named("by-line"))
    ///     .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// let topology = b.build()?;
    /// let names: Vec<_> = topology.internal_topics().iter().map(|t| t.name.clone()).collect();
    /// assert!(names.contains(&TopicName::Internal("by-line-repartition".into())));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Partition count of the topic. Default = the partition count of the sub-topology's
    /// input topics.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .repartition(Repartitioned::with(Serdes::string(), Serdes::string()).named("by-line").partitions(6))
    ///     .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// let topology = b.build()?;
    /// let topic = topology.internal_topics().iter().find(|t| t.name.is_internal()).unwrap();
    /// assert_eq!(topic.partitions, Some(6));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn partitions(mut self, n: i32) -> Self {
        self.partitions = Some(n);
        self
    }
}
