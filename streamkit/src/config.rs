//! [`StreamsConfig`]: everything an application instance needs to run.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::error_policy::{DeserializationHandler, ProcessingErrorHandler, ProductionErrorHandler};
use crate::serde::avro::RegistryClient;
use crate::state::RocksDbMemory;
use crate::testing::EmbeddedBroker;

/// Delivery guarantee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProcessingGuarantee {
    /// Output and state are flushed before input offsets are committed: after a crash some
    /// records are processed again, none is lost. Default.
    #[default]
    AtLeastOnce,
    /// Kafka transactions: each stream thread has one transactional producer, and every
    /// commit interval its output records, changelog writes and input offsets
    /// (`send_offsets_to_transaction`) commit in one transaction. Consumers read committed
    /// records only. An aborted transaction resets the thread's tasks to their last committed
    /// state (stores wiped and restored from their changelogs, inputs rewound to the committed
    /// offsets); a fenced producer stops the thread with an error. The producers'
    /// `transaction.timeout.ms` defaults to 10 s, or the commit interval + 10 s when longer: a
    /// crashed instance's open transaction holds back `read_committed` readers until then.
    /// Needs a broker that implements transactions: the embedded broker does not isolate
    /// aborted records (see [`EmbeddedBroker`]).
    ExactlyOnce,
}

/// What an instance does when one of its stream threads fails with an error or panics (Kafka
/// Streams' `StreamsUncaughtExceptionHandler` responses). The global thread and the connector
/// thread always stop the instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UncaughtExceptionResponse {
    /// The instance stops: every thread closes, the state becomes
    /// [`Error`](crate::runtime::State::Error), `run()` and `close()` return the error. Default.
    #[default]
    ShutdownClient,
    /// The failed thread is replaced by a new one (a new consumer joining the group; its
    /// tasks resume from the last committed offsets, so records since are processed again).
    /// A record that fails every time makes the thread fail every time: use it for transient
    /// faults.
    ReplaceThread,
}

/// How the query server answers a key query for a partition another instance owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueryForwarding {
    /// Fetches the answer from the owner and returns it. Default.
    #[default]
    Proxy,
    /// Answers `307 Temporary Redirect` to the owner's URL.
    Redirect,
}

/// Kafka-REST-Proxy-compatible ingest on the query server (`POST /topics/{topic}` with
/// `application/vnd.kafka.{json,avro,binary}.v2+json` bodies; see [`crate::server`]), enabled
/// with [`StreamsConfig::rest_ingest`].
///
/// ```
/// use streamkit::config::{RestIngest, StreamsConfig};
/// use streamkit::serde::avro::RegistryClient;
/// let registry = RegistryClient::new("http://127.0.0.1:8081").unwrap();
/// let config = StreamsConfig::new("cta-weather")
///     .query_server("8082")
///     .rest_ingest(RestIngest::new().schema_registry(&registry).max_body_bytes(1 << 20));
/// ```
#[derive(Debug, Clone)]
pub struct RestIngest {
    pub(crate) registry: Option<RegistryClient>,
    pub(crate) max_body_bytes: usize,
}

impl Default for RestIngest {
    fn default() -> Self {
        RestIngest {
            registry: None,
            max_body_bytes: 10 << 20,
        }
    }
}

impl RestIngest {
    /// Ingest of JSON and binary records; Avro needs a
    /// [`schema_registry`](Self::schema_registry).
    pub fn new() -> Self {
        Self::default()
    }

    /// The registry Avro requests' `key_schema`/`value_schema` are registered in (subjects
    /// `<topic>-key`, `<topic>-value`) and `key_schema_id`/`value_schema_id` looked up in.
    /// Default = none: Avro requests fail with `408`/40801, as the REST Proxy does without one.
    pub fn schema_registry(mut self, registry: &RegistryClient) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// Largest request body accepted; a larger one is answered `413`. Default = 10 MiB.
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }
}

/// Configuration of an application instance. Setters consume and return the config.
///
/// Any librdkafka setting can be passed by its own name with [`set`](Self::set) (applied to
/// every client), or with a `consumer.`, `producer.` or `admin.` prefix for one kind of client,
/// as in Kafka Streams:
///
/// ```
/// use streamkit::config::StreamsConfig;
/// let config = StreamsConfig::new("cta-trains")
///     .bootstrap_servers("broker-1:9093")
///     .set("security.protocol", "SASL_SSL")
///     .set("sasl.mechanisms", "SCRAM-SHA-512")
///     .set("sasl.username", "cta")
///     .set("sasl.password", "secret")
///     .set("producer.linger.ms", "20")
///     .set("restore.consumer.fetch.max.bytes", "1048576")
///     .num_stream_threads(2);
/// assert_eq!(config.client_settings("producer").get("linger.ms").map(String::as_str), Some("20"));
/// assert_eq!(config.client_settings("consumer").get("linger.ms"), None);
/// assert!(config.client_settings("consumer").keys().all(|k| !k.contains("restore")));
/// assert!(config.client_settings("restore.consumer").contains_key("fetch.max.bytes"));
/// assert_eq!(config.client_settings("consumer").get("security.protocol").map(String::as_str), Some("SASL_SSL"));
/// ```
#[derive(Clone)]
pub struct StreamsConfig {
    pub(crate) application_id: String,
    pub(crate) bootstrap_servers: Option<String>,
    pub(crate) embedded: Option<EmbeddedBroker>,
    pub(crate) num_stream_threads: usize,
    pub(crate) commit_interval: Duration,
    pub(crate) poll_timeout: Duration,
    pub(crate) close_timeout: Duration,
    pub(crate) max_poll_records: usize,
    pub(crate) buffered_records_per_partition: usize,
    pub(crate) max_task_idle: crate::config::TaskIdle,
    pub(crate) state_dir: PathBuf,
    pub(crate) processing_guarantee: ProcessingGuarantee,
    pub(crate) default_deserialization_handler: DeserializationHandler,
    pub(crate) processing_error_handler: ProcessingErrorHandler,
    pub(crate) production_error_handler: ProductionErrorHandler,
    pub(crate) default_partitions: i32,
    pub(crate) replication_factor: i32,
    pub(crate) client: BTreeMap<String, String>,
    pub(crate) rocksdb_memory: RocksDbMemory,
    pub(crate) cache_max_bytes: usize,
    pub(crate) query_server: Option<String>,
    pub(crate) application_server: Option<String>,
    pub(crate) query_server_token: Option<String>,
    pub(crate) inter_instance_token: Option<String>,
    pub(crate) query_forwarding: QueryForwarding,
    pub(crate) rest_ingest: Option<RestIngest>,
    pub(crate) uncaught_exception_response: UncaughtExceptionResponse,
    pub(crate) max_transaction_aborts: u32,
    pub(crate) task_timeout: Duration,
    pub(crate) repartition_purge_interval: Duration,
}

/// The default [`StreamsConfig::state_dir`]: under the user's cache directory.
fn default_state_dir() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .map(|home| home.join(".cache"))
        });
    match cache {
        Some(dir) => dir.join("streamkit").join("state"),
        None => std::env::temp_dir().join("streamkit-state"),
    }
}

/// Whether a client setting holds a secret (`sasl.password`, `ssl.key.password`,
/// `sasl.jaas.config`, `sasl.oauthbearer.client.secret`, …), which `Debug` must not print.
fn is_secret_setting(key: &str) -> bool {
    const MARKERS: [&str; 6] = [
        "password",
        "secret",
        "jaas",
        "token",
        "ssl.key.pem",
        "credential",
    ];
    let key = key.to_ascii_lowercase();
    MARKERS.iter().any(|m| key.contains(m))
}

/// Prints every field, with the values of secret client settings and the query-server token
/// replaced by `<redacted>`: configs end up in logs and panic messages.
impl std::fmt::Debug for StreamsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let client: BTreeMap<&str, &str> = self
            .client
            .iter()
            .map(|(k, v)| {
                let v = if is_secret_setting(k) {
                    "<redacted>"
                } else {
                    v.as_str()
                };
                (k.as_str(), v)
            })
            .collect();
        f.debug_struct("StreamsConfig")
            .field("application_id", &self.application_id)
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("embedded", &self.embedded)
            .field("num_stream_threads", &self.num_stream_threads)
            .field("commit_interval", &self.commit_interval)
            .field("poll_timeout", &self.poll_timeout)
            .field("close_timeout", &self.close_timeout)
            .field("max_poll_records", &self.max_poll_records)
            .field(
                "buffered_records_per_partition",
                &self.buffered_records_per_partition,
            )
            .field("max_task_idle", &self.max_task_idle)
            .field("state_dir", &self.state_dir)
            .field("processing_guarantee", &self.processing_guarantee)
            .field(
                "default_deserialization_handler",
                &self.default_deserialization_handler,
            )
            .field("processing_error_handler", &self.processing_error_handler)
            .field("production_error_handler", &self.production_error_handler)
            .field("default_partitions", &self.default_partitions)
            .field("replication_factor", &self.replication_factor)
            .field("client", &client)
            .field("rocksdb_memory", &self.rocksdb_memory)
            .field("cache_max_bytes", &self.cache_max_bytes)
            .field("query_server", &self.query_server)
            .field("application_server", &self.application_server)
            .field(
                "query_server_token",
                &self.query_server_token.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "inter_instance_token",
                &self.inter_instance_token.as_ref().map(|_| "<redacted>"),
            )
            .field("query_forwarding", &self.query_forwarding)
            .field("rest_ingest", &self.rest_ingest)
            .field(
                "uncaught_exception_response",
                &self.uncaught_exception_response,
            )
            .field("max_transaction_aborts", &self.max_transaction_aborts)
            .field("task_timeout", &self.task_timeout)
            .field(
                "repartition_purge_interval",
                &self.repartition_purge_interval,
            )
            .finish()
    }
}

impl StreamsConfig {
    /// A config for `application_id`: the consumer group id, and the prefix of internal topics.
    pub fn new(application_id: impl Into<String>) -> Self {
        StreamsConfig {
            application_id: application_id.into(),
            bootstrap_servers: None,
            embedded: None,
            num_stream_threads: 1,
            commit_interval: Duration::from_secs(30),
            poll_timeout: Duration::from_millis(100),
            close_timeout: Duration::from_secs(120),
            max_poll_records: 1000,
            buffered_records_per_partition: 1000,
            max_task_idle: crate::config::TaskIdle::FetchedOnly,
            state_dir: default_state_dir(),
            processing_guarantee: ProcessingGuarantee::AtLeastOnce,
            default_deserialization_handler: DeserializationHandler::Fail,
            processing_error_handler: ProcessingErrorHandler::Fail,
            production_error_handler: ProductionErrorHandler::Fail,
            default_partitions: 1,
            replication_factor: -1,
            client: BTreeMap::new(),
            rocksdb_memory: RocksDbMemory::default(),
            cache_max_bytes: 10 << 20,
            query_server: None,
            application_server: None,
            query_server_token: None,
            inter_instance_token: None,
            query_forwarding: QueryForwarding::default(),
            rest_ingest: None,
            uncaught_exception_response: UncaughtExceptionResponse::default(),
            max_transaction_aborts: 10,
            task_timeout: Duration::from_secs(300),
            repartition_purge_interval: Duration::from_secs(30),
        }
    }

    /// The application id.
    pub fn application_id(&self) -> &str {
        &self.application_id
    }

    /// Kafka brokers, `host:port,host:port`. Required unless [`embedded`](Self::embedded).
    pub fn bootstrap_servers(mut self, servers: impl Into<String>) -> Self {
        self.bootstrap_servers = Some(servers.into());
        self
    }

    /// Runs against an in-process [`EmbeddedBroker`]; internal topics are created through it.
    pub fn embedded(mut self, broker: &EmbeddedBroker) -> Self {
        self.bootstrap_servers = Some(broker.bootstrap_servers().to_string());
        self.embedded = Some(broker.clone());
        self
    }

    /// Stream threads, each with its own consumer in the group. Default = 1.
    pub fn num_stream_threads(mut self, n: usize) -> Self {
        self.num_stream_threads = n.max(1);
        self
    }

    /// How often progress is committed (output flushed, then input offsets). Default = 30 s
    /// (Kafka Streams' at-least-once default).
    pub fn commit_interval(mut self, interval: Duration) -> Self {
        self.commit_interval = interval;
        self
    }

    /// Longest a stream thread blocks waiting for records. Default = 100 ms.
    pub fn poll_timeout(mut self, timeout: Duration) -> Self {
        self.poll_timeout = timeout;
        self
    }

    /// Longest [`KafkaStreams::close`](crate::KafkaStreams::close) waits for the
    /// stream and global threads to stop; a thread still running then is logged and left
    /// behind, and `close` returns an error. Default = 120 s.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Most records a thread processes between housekeeping steps (punctuation, commit
    /// checks, delivery reports). Default = 1000.
    pub fn max_poll_records(mut self, n: usize) -> Self {
        self.max_poll_records = n.max(1);
        self
    }

    /// Most polled records a task buffers per input partition before the partition is paused
    /// on the consumer (`buffered.records.per.partition`); it resumes once the task has
    /// processed its buffer down to this size. Default = 1000.
    pub fn buffered_records_per_partition(mut self, n: usize) -> Self {
        self.buffered_records_per_partition = n.max(1);
        self
    }

    /// `max.task.idle.ms`: how long a task with several input partitions waits for an empty
    /// partition that is caught up (no record known to be on the broker) before it processes
    /// the other partitions' records without it. A partition with records on the broker that
    /// the consumer has not delivered yet, or whose end is not known yet, is always waited
    /// for (see [`never_idle`](Self::never_idle)). Default = 0 (Kafka Streams' default).
    pub fn max_task_idle(mut self, idle: Duration) -> Self {
        self.max_task_idle = if idle.is_zero() {
            TaskIdle::FetchedOnly
        } else {
            TaskIdle::Wait(idle)
        };
        self
    }

    /// `max.task.idle.ms = -1`: a task never waits for an empty input partition; it processes
    /// the buffered records of the others in timestamp order as they come.
    pub fn never_idle(mut self) -> Self {
        self.max_task_idle = crate::config::TaskIdle::Never;
        self
    }

    /// Directory for local state (stores, checkpoints), `<dir>/<application-id>/<task>`. An
    /// instance whose topology keeps RocksDB stores locks `<dir>/<application-id>` from
    /// `start()` to `close()`: give each instance on a machine its own. Default =
    /// `$XDG_CACHE_HOME/streamkit/state`, else `~/.cache/streamkit/state` (the user's own
    /// directory, not a world-writable one), else `<tmp>/streamkit-state`.
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = dir.into();
        self
    }

    /// Delivery guarantee. Default = at least once. Under
    /// [`ExactlyOnce`](ProcessingGuarantee::ExactlyOnce) a commit interval of 100 ms is
    /// typical (Kafka Streams' default for it): output becomes visible to `read_committed`
    /// consumers only when its transaction commits.
    pub fn processing_guarantee(mut self, guarantee: ProcessingGuarantee) -> Self {
        self.processing_guarantee = guarantee;
        self
    }

    /// Policy for undecodable records on sources that set none. Default = `Fail`.
    pub fn default_deserialization_handler(mut self, handler: DeserializationHandler) -> Self {
        self.default_deserialization_handler = handler;
        self
    }

    /// Policy for records whose processing fails with an error about the record or panics
    /// (see [`ProcessingErrorHandler`]). Default = `Fail`.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// use streamkit::error_policy::{ProcessingErrorHandler, dead_letter_headers};
    ///
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
    ///     .map_values(|v: i64| 100 / v) // panics on 0
    ///     .to("out", Produced::with(Serdes::string(), Serdes::i64()));
    /// let config = StreamsConfig::new("app")
    ///     .processing_error_handler(ProcessingErrorHandler::DeadLetter("in-dlq".into()));
    /// let driver = TopologyTestDriver::with_config(b.build()?, config)?;
    /// let input = driver.input_topic("in", Serdes::string(), Serdes::i64());
    /// input.pipe_all([("a".to_string(), 4), ("b".to_string(), 0), ("c".to_string(), 5)])?;
    /// let out = driver.output_topic("out", Serdes::string(), Serdes::i64());
    /// assert_eq!(out.read_values(), vec![25, 20]);
    /// let dead = driver.output_topic("in-dlq", Serdes::string(), Serdes::i64()).read_record().unwrap();
    /// assert_eq!((dead.key.as_str(), dead.value), ("b", 0));
    /// assert!(dead.headers.last_str(dead_letter_headers::ERROR).unwrap().starts_with("panicked: "));
    /// assert_eq!(dead.headers.last_str(dead_letter_headers::STAGE), Some("processing"));
    /// assert_eq!(driver.metrics().dropped_records("error"), 1);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn processing_error_handler(mut self, handler: ProcessingErrorHandler) -> Self {
        self.processing_error_handler = handler;
        self
    }

    /// Policy for output records the producer refuses for what they are: too large or invalid
    /// (see [`ProductionErrorHandler`]; Kafka Streams' `default.production.exception.handler`).
    /// Other production errors always stop the thread. Default = `Fail`.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::config::StreamsConfig;
    /// use streamkit::error_policy::ProductionErrorHandler;
    ///
    /// // The producer refuses records over 64 KiB; the input records that made them go to
    /// // `too-large`, and processing goes on.
    /// let config = StreamsConfig::new("app")
    ///     .set("producer.message.max.bytes", "65536")
    ///     .production_error_handler(ProductionErrorHandler::DeadLetter("too-large".into()));
    /// assert_eq!(
    ///     config.client_settings("producer").get("message.max.bytes").map(String::as_str),
    ///     Some("65536")
    /// );
    /// ```
    pub fn production_error_handler(mut self, handler: ProductionErrorHandler) -> Self {
        self.production_error_handler = handler;
        self
    }

    /// Partitions of internal topics whose count no input determines. Default = 1.
    pub fn default_partitions(mut self, n: i32) -> Self {
        self.default_partitions = n.max(1);
        self
    }

    /// Replication factor of internal topics on a real cluster. Default = -1 (broker default).
    pub fn replication_factor(mut self, n: i32) -> Self {
        self.replication_factor = n;
        self
    }

    /// Memory shared by all RocksDB stores of the instance. Default = 64 MiB block cache,
    /// 32 MiB of memtables.
    pub fn rocksdb_memory(mut self, memory: RocksDbMemory) -> Self {
        self.rocksdb_memory = memory;
        self
    }

    /// Memory for the record caches of the instance's stores that enable caching
    /// ([`Materialized::with_caching_enabled`](crate::stream::Materialized::with_caching_enabled)),
    /// split evenly between the stream threads; a thread's caching stores share its part, and
    /// a cache that finds the thread's part full evicts its own least recently used entries.
    /// Default = 10 MiB (Kafka Streams' `statestore.cache.max.bytes`); 0 turns caching off.
    pub fn cache_max_bytes(mut self, bytes: usize) -> Self {
        self.cache_max_bytes = bytes;
        self
    }

    /// Serves the HTTP query server (stores, change streams, topology, health, metrics; see
    /// [`crate::server`]) on `addr`: `"8080"` binds localhost (`127.0.0.1:8080`), a host
    /// makes it explicit (`"0.0.0.0:8080"`); port 0 picks a free port (see
    /// [`KafkaStreams::query_server_addr`](crate::KafkaStreams::query_server_addr)).
    /// Default = off. Bind to a non-loopback address only with a
    /// [`query_server_token`](Self::query_server_token) or behind a trusted network.
    pub fn query_server(mut self, addr: impl Into<String>) -> Self {
        self.query_server = Some(addr.into());
        self
    }

    /// `host:port` at which other instances of the application reach this one's query
    /// server: published to the `<application-id>-instances` topic so that a query for a key
    /// another instance owns is forwarded there. Default = the query server's bound address.
    pub fn application_server(mut self, host_port: impl Into<String>) -> Self {
        self.application_server = Some(host_port.into());
        self
    }

    /// Requires `Authorization: Bearer <token>` on every query-server endpoint but `/health`.
    /// A client's token is never sent on to another instance: instances forward queries
    /// with their own credential, the [`inter_instance_token`](Self::inter_instance_token).
    /// Default = no authentication.
    pub fn query_server_token(mut self, token: impl Into<String>) -> Self {
        self.query_server_token = Some(token.into());
        self
    }

    /// The bearer token instances of this application present to each other when one
    /// forwards a query to the instance holding a key, and accept from each other besides
    /// the [`query_server_token`](Self::query_server_token). Every instance must have the
    /// same. A separate credential, so that a client's token never leaves for a host named in
    /// the `<application-id>-instances` topic (which anyone who can write to the topic can
    /// name). Without one, forwarded queries carry no credential, and an instance that
    /// requires a token refuses them. Default = none.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::config::StreamsConfig;
    ///
    /// let config = StreamsConfig::new("trips")
    ///     .query_server("0.0.0.0:8080")
    ///     .query_server_token(std::env::var("QUERY_TOKEN").unwrap_or_default())
    ///     .inter_instance_token(std::env::var("PEER_TOKEN").unwrap_or_default());
    /// ```
    pub fn inter_instance_token(mut self, token: impl Into<String>) -> Self {
        self.inter_instance_token = Some(token.into());
        self
    }

    /// How a query for a key owned by another instance is answered. Default =
    /// [`QueryForwarding::Proxy`].
    pub fn query_forwarding(mut self, forwarding: QueryForwarding) -> Self {
        self.query_forwarding = forwarding;
        self
    }

    /// What happens when a stream thread fails with an error or panics (a user closure
    /// included). Default = [`UncaughtExceptionResponse::ShutdownClient`].
    pub fn uncaught_exception_response(mut self, response: UncaughtExceptionResponse) -> Self {
        self.uncaught_exception_response = response;
        self
    }

    /// Exactly-once: how many transactions in a row a stream thread may abort (each resets
    /// its tasks and processes the same input again) before it stops with an
    /// [`Error::Transaction`](crate::Error::Transaction) naming the last cause. A permanent
    /// fault (a record the topic refuses, a denied topic) would otherwise loop forever.
    /// Default = 10.
    pub fn max_transaction_aborts(mut self, n: u32) -> Self {
        self.max_transaction_aborts = n;
        self
    }

    /// How long a stream thread rides out a broker it cannot reach (Kafka Streams'
    /// `task.timeout.ms`): at-least-once, a commit whose output the broker has not
    /// acknowledged within 10 s is postponed to the next commit interval, and the thread fails
    /// only once output has gone unacknowledged this long, naming this setting. Meanwhile
    /// processing goes on until the producer's queue is full. The producer's
    /// `message.timeout.ms` is raised to match when this is longer than its 5 minutes (unless
    /// set). Exactly-once transactions that cannot commit are aborted instead (see
    /// [`max_transaction_aborts`](Self::max_transaction_aborts)). Default = 5 min.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::config::StreamsConfig;
    ///
    /// // Ride out broker maintenance windows of up to 15 minutes.
    /// let config = StreamsConfig::new("trips").task_timeout(Duration::from_secs(15 * 60));
    /// # let _ = config;
    /// ```
    pub fn task_timeout(mut self, timeout: Duration) -> Self {
        self.task_timeout = timeout;
        self
    }

    /// How often a stream thread deletes the records of its repartition topics below the
    /// committed offsets (Kafka Streams' `repartition.purge.interval.ms`; repartition topics
    /// have no time retention, so that a record with an old event time is not deleted
    /// before it is read). Checked after each commit. Not on the embedded broker, which
    /// has no DeleteRecords. Default = 30 s.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::config::StreamsConfig;
    ///
    /// let config = StreamsConfig::new("trips").repartition_purge_interval(Duration::from_secs(5));
    /// # let _ = config;
    /// ```
    pub fn repartition_purge_interval(mut self, interval: Duration) -> Self {
        self.repartition_purge_interval = interval;
        self
    }

    /// Serves Kafka-REST-Proxy-compatible ingest (`POST /topics/{topic}`,
    /// `POST /topics/{topic}/partitions/{p}`) on the [query server](Self::query_server), which
    /// must be on too; its records are produced with the application's `producer` client
    /// settings, behind the [query server token](Self::query_server_token) when one is set.
    /// Default = off.
    pub fn rest_ingest(mut self, ingest: RestIngest) -> Self {
        self.rest_ingest = Some(ingest);
        self
    }

    /// Any librdkafka property by its own name; prefix with `consumer.`, `producer.` or
    /// `admin.` to apply it to one kind of client only.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.client.insert(key.into(), value.into());
        self
    }

    /// The librdkafka properties for one kind of client (`consumer`, `producer`, `admin`,
    /// `restore.consumer`, `global.consumer`): unprefixed settings, overridden by that kind's
    /// prefixed ones.
    pub fn client_settings(&self, kind: &str) -> BTreeMap<String, String> {
        // Longest first: `restore.consumer.x` is not a `consumer.` setting.
        const KINDS: [&str; 5] = [
            "restore.consumer.",
            "global.consumer.",
            "consumer.",
            "producer.",
            "admin.",
        ];
        let prefix = format!("{kind}.");
        let mut out: BTreeMap<String, String> = self
            .client
            .iter()
            .filter(|(k, _)| !KINDS.iter().any(|p| k.starts_with(p)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in &self.client {
            if let Some(stripped) = k.strip_prefix(&prefix) {
                out.insert(stripped.to_string(), v.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_secrets() {
        let config = StreamsConfig::new("app")
            .set("sasl.password", "hunter2")
            .set("producer.ssl.key.password", "pem-pass")
            .set(
                "sasl.jaas.config",
                "PlainLoginModule required password=\"jaas-pass\";",
            )
            .set("sasl.username", "alice")
            .query_server_token("bearer-secret");
        let printed = format!("{config:?}");
        for secret in ["hunter2", "pem-pass", "jaas-pass", "bearer-secret"] {
            assert!(!printed.contains(secret), "{secret} printed: {printed}");
        }
        assert!(
            printed.contains("alice"),
            "non-secret settings still show: {printed}"
        );
        assert!(printed.contains("<redacted>"));
    }
}

/// How long a task waits for an empty input partition (`max.task.idle.ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum TaskIdle {
    /// Wait for data known to be on the broker, then no longer (Kafka Streams' default, 0).
    #[default]
    FetchedOnly,
    /// Also wait this long for a caught-up partition to receive data.
    Wait(Duration),
    /// Never wait: process whatever is buffered (Kafka Streams' -1).
    Never,
}
