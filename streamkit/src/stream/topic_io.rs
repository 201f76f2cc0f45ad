//! Parameter objects of the DSL: how a stream is consumed, produced and repartitioned.

use std::sync::Arc;

use crate::error_policy::DeserializationHandler;
use crate::operators::source::TimestampExtractor;
use crate::processor::Data;
use crate::serde::{Serde, SerdeRef};

/// Chooses the partition of each record a sink writes (Kafka Streams' `StreamPartitioner`):
/// `partition(topic, key, value, partition_count)`, `None` for the default (murmur2 of the
/// serialized key, as Kafka's Java clients and Kafka Streams do). Any
/// `Fn(&str, &K, &V, i32) -> Option<i32>` closure is one.
///
/// Records of one key must keep going to one partition for the topic's readers to see them
/// in order, and two topics joined must be partitioned alike: a topic written with a custom
/// partitioner is co-partitioned only with topics written with the same one (Kafka Streams
/// cannot check this, nor can streamkit).
pub trait StreamPartitioner<K, V>: Send + Sync + 'static {
    /// The partition of the record, in `0..partitions`; `None` = the default partitioning.
    fn partition(&self, topic: &str, key: &K, value: &V, partitions: i32) -> Option<i32>;
}

impl<K, V, F> StreamPartitioner<K, V> for F
where
    F: Fn(&str, &K, &V, i32) -> Option<i32> + Send + Sync + 'static,
{
    fn partition(&self, topic: &str, key: &K, value: &V, partitions: i32) -> Option<i32> {
        self(topic, key, value, partitions)
    }
}

/// A shared [`StreamPartitioner`].
pub(crate) type PartitionerRef<K, V> = Arc<dyn StreamPartitioner<K, V>>;

/// Where a source starts reading a partition for which the application has committed no
/// offset (Kafka's `auto.offset.reset`, per source: Kafka Streams'
/// `Topology.AutoOffsetReset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OffsetReset {
    /// The partition's first record.
    Earliest,
    /// The partition's end when it is assigned: only records written after.
    Latest,
}

/// How to read a topic: key and value serdes, deserialization-error policy, timestamps.
pub struct Consumed<K, V> {
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) value_serde: SerdeRef<V>,
    pub(crate) handler: Option<DeserializationHandler>,
    pub(crate) timestamp_extractor: Option<TimestampExtractor<K, V>>,
    pub(crate) name: Option<String>,
    pub(crate) offset_reset: Option<OffsetReset>,
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
            offset_reset: None,
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

    /// Where to start a partition of the topic that the application has committed no offset
    /// for (Kafka Streams' `Consumed.withOffsetResetPolicy`), overriding the application's
    /// `auto.offset.reset` (`earliest` unless set with `.set("consumer.auto.offset.reset", …)`).
    /// Once an offset is committed, the source resumes from it whatever the policy.
    /// [`Latest`](OffsetReset::Latest) starts at the partition's end when the partition is
    /// assigned. Default = the application's `auto.offset.reset`.
    ///
    /// # Examples
    ///
    /// Live positions only, none of the history, for a new application:
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("positions", Consumed::with(Serdes::string(), Serdes::string())
    ///         .with_offset_reset(OffsetReset::Latest))
    ///     .to("live", Produced::with(Serdes::string(), Serdes::string()));
    /// let topology = b.build()?;
    /// assert_eq!(topology.offset_reset("app", "positions"), Some(OffsetReset::Latest));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn with_offset_reset(mut self, reset: OffsetReset) -> Self {
        self.offset_reset = Some(reset);
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
    pub(crate) partitioner: Option<PartitionerRef<K, V>>,
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
            partitioner: None,
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

    /// Chooses each record's partition with `partitioner` (Kafka Streams'
    /// `Produced.streamPartitioner`): `(topic, key, value, partition_count) -> Some(partition)`,
    /// or `None` for the default, murmur2 of the serialized key. A partition outside the
    /// topic's is the record's processing error. See [`StreamPartitioner`] for the
    /// co-partitioning caveat.
    /// Default = murmur2 of the serialized key.
    ///
    /// # Examples
    ///
    /// Every alert to partition 0, the rest by key:
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("events", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .to("out", Produced::with(Serdes::string(), Serdes::string())
    ///         .with_partitioner(|_topic: &str, _k: &String, v: &String, _n: i32| v.starts_with("ALERT").then_some(0)));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("events", Serdes::string(), Serdes::string()).pipe("k".into(), "ALERT: fire".into())?;
    /// assert_eq!(d.output_topic("out", Serdes::string(), Serdes::string()).read_values(), vec!["ALERT: fire"]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn with_partitioner(mut self, partitioner: impl StreamPartitioner<K, V>) -> Self {
        self.partitioner = Some(Arc::new(partitioner));
        self
    }
}

/// How to repartition: serdes, the topic's name and partition count.
pub struct Repartitioned<K, V> {
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) value_serde: SerdeRef<V>,
    pub(crate) name: Option<String>,
    pub(crate) partitions: Option<i32>,
    pub(crate) partitioner: Option<PartitionerRef<K, V>>,
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
            partitioner: None,
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

    /// Chooses each record's partition of the repartition topic with `partitioner` (Kafka
    /// Streams' `Repartitioned.streamPartitioner`), `None` for the default, murmur2 of the
    /// serialized key. The records of a partition are one task's input: a partitioner that
    /// sends one key to several partitions splits its state across tasks. See
    /// [`StreamPartitioner`] for the co-partitioning caveat. Default = murmur2 of the
    /// serialized key.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
    ///     .repartition(Repartitioned::with(Serdes::string(), Serdes::i64())
    ///         .named("by-sign")
    ///         .with_partitioner(|_t: &str, _k: &String, v: &i64, n: i32| Some(if *v < 0 { 0 } else { n - 1 })))
    ///     .to("out", Produced::with(Serdes::string(), Serdes::i64()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("in", Serdes::string(), Serdes::i64()).pipe("k".into(), -4)?;
    /// assert_eq!(d.output_topic("out", Serdes::string(), Serdes::i64()).read_values(), vec![-4]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn with_partitioner(mut self, partitioner: impl StreamPartitioner<K, V>) -> Self {
        self.partitioner = Some(Arc::new(partitioner));
        self
    }
}
