//! [`KafkaStreams`]: an application instance — its threads, state machine and lifecycle.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::StreamsConfig;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::processor::Data;
use crate::runtime::admin::prepare_topics;
use crate::runtime::thread::{StatusSink, StreamThread, ThreadArgs, ThreadStatus};
use crate::state::rocksdb::RocksDbShared;
use crate::state::store::StoreRegistry;
use crate::table::{ReadOnlyKeyValueStore, ReadOnlySessionStore, ReadOnlyWindowStore};
use crate::topology::Topology;

use crate::runtime::{State, StateListener};

struct Shared {
    state: Mutex<State>,
    listener: Mutex<Option<StateListener>>,
    threads: Mutex<Vec<ThreadStatus>>,
    error: Mutex<Option<Error>>,
    shutdown: Arc<AtomicBool>,
}

impl Shared {
    fn transition(&self, next: State) -> bool {
        let old = {
            let mut s = self.state.lock().expect("state lock");
            if !s.can_become(next) {
                return false;
            }
            std::mem::replace(&mut *s, next)
        };
        tracing::info!(from = ?old, to = ?next, "state change");
        let listener = self.listener.lock().expect("listener lock").clone();
        if let Some(l) = listener {
            l(old, next);
        }
        true
    }

    fn on_thread_status(&self, index: usize, status: ThreadStatus) {
        let all_running = {
            let mut threads = self.threads.lock().expect("threads lock");
            threads[index] = status;
            threads.iter().all(|s| *s == ThreadStatus::Running)
        };
        if self.shutdown.load(Ordering::Acquire) {
            return;
        }
        match status {
            ThreadStatus::Rebalancing => {
                self.transition(State::Rebalancing);
            }
            ThreadStatus::Running if all_running => {
                self.transition(State::Running);
            }
            _ => {}
        }
    }
}

/// The running query server: [`crate::server`]'s handle (nothing to hold without the `server`
/// feature, where configuring one is an error at start).
#[cfg(feature = "server")]
type QueryServer = crate::server::ServerHandle;
#[cfg(not(feature = "server"))]
type QueryServer = std::convert::Infallible;

/// A running streamkit application instance.
///
/// # Examples
///
/// ```no_run
/// use streamkit::prelude::*;
/// # async fn run() -> Result<()> {
/// let builder = StreamsBuilder::new();
/// builder
///     .stream("bus-positions", Consumed::with(Serdes::string(), Serdes::string()))
///     .filter(|_, v| !v.is_empty())
///     .to("bus-positions-clean", Produced::with(Serdes::string(), Serdes::string()));
/// let config = StreamsConfig::new("bus-cleaner").bootstrap_servers("localhost:9092");
/// let app = KafkaStreams::new(builder.build()?, config)?;
/// app.run().await // until SIGINT/SIGTERM, then a graceful close
/// # }
/// ```
pub struct KafkaStreams {
    topology: Arc<Topology>,
    config: StreamsConfig,
    metrics: Metrics,
    shared: Arc<Shared>,
    handles: Arc<Mutex<Vec<JoinHandle<()>>>>,
    registry: StoreRegistry,
    rocksdb: RocksDbShared,
    /// Where this instance keeps its global tables' stores; removed at close.
    global_dir: std::path::PathBuf,
    #[cfg_attr(
        not(feature = "server"),
        allow(dead_code, reason = "no server to hold")
    )]
    server: Mutex<Option<QueryServer>>,
    /// Locks on the state directories this instance uses, held from `start()` to `close()`.
    dir_locks: Mutex<Vec<crate::state::dir::DirLock>>,
}

impl std::fmt::Debug for KafkaStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaStreams")
            .field("application_id", &self.config.application_id)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl KafkaStreams {
    /// An instance in state [`State::Created`]. Checks the configuration.
    ///
    /// # Examples
    ///
    /// A topology run on the embedded broker, started, running and closed:
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    /// use streamkit::testing::EmbeddedBroker;
    ///
    /// let broker = EmbeddedBroker::start()?;
    /// broker.create_topic("bus-delays", 1)?;
    /// broker.create_topic("late-buses", 1)?;
    /// let dir = tempfile::tempdir().unwrap();
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream("bus-delays", Consumed::with(Serdes::string(), Serdes::f64()))
    ///     .filter(|_line, minutes| *minutes > 5.0)
    ///     .to("late-buses", Produced::with(Serdes::string(), Serdes::f64()));
    /// let config = StreamsConfig::new("late-buses").embedded(&broker).state_dir(dir.path());
    /// let app = KafkaStreams::new(builder.build()?, config)?;
    /// assert_eq!(app.state(), StreamsState::Created);
    /// app.start()?;
    /// assert!(app.wait_for_state(StreamsState::Running, Duration::from_secs(30)));
    /// app.close()?;
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn new(topology: Topology, config: StreamsConfig) -> Result<Self> {
        if config.bootstrap_servers.is_none() {
            return Err(Error::Config(
                "bootstrap_servers is not set (or use StreamsConfig::embedded)".into(),
            ));
        }
        if config.application_id.is_empty()
            || !config
                .application_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(Error::Config(format!(
                "application id {:?} must be non-empty and use only letters, digits, '.', '_' and '-'",
                config.application_id
            )));
        }
        if config.rest_ingest.is_some() && config.query_server.is_none() {
            return Err(Error::Config(
                "rest_ingest is served by the query server: set StreamsConfig::query_server too"
                    .into(),
            ));
        }
        let metrics = Metrics::new(&config.application_id);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::Created),
            listener: Mutex::new(None),
            threads: Mutex::new(vec![ThreadStatus::Rebalancing; config.num_stream_threads]),
            error: Mutex::new(None),
            shutdown: Arc::new(AtomicBool::new(false)),
        });
        let registry = StoreRegistry::default();
        let rocksdb = RocksDbShared::new(config.rocksdb_memory);
        refresh_on_scrape(&metrics, &registry, &rocksdb);
        Ok(KafkaStreams {
            topology: Arc::new(topology),
            metrics,
            shared,
            handles: Arc::default(),
            registry,
            rocksdb,
            global_dir: crate::runtime::global::instance_dir(&config),
            server: Mutex::new(None),
            dir_locks: Mutex::new(Vec::new()),
            config,
        })
    }

    /// Calls `listener(old, new)` on every state change (from the thread causing it).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    /// use streamkit::testing::EmbeddedBroker;
    ///
    /// let broker = EmbeddedBroker::start()?;
    /// broker.create_topic("in", 1)?;
    /// let dir = tempfile::tempdir().unwrap();
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// let app = KafkaStreams::new(b.build()?, StreamsConfig::new("listened").embedded(&broker).state_dir(dir.path()))?;
    /// let changes = Arc::new(Mutex::new(Vec::new()));
    /// let seen = changes.clone();
    /// app.set_state_listener(move |old, new| seen.lock().unwrap().push((old, new)));
    /// app.start()?;
    /// assert!(app.wait_for_state(StreamsState::Running, Duration::from_secs(30)));
    /// app.close()?;
    /// let changes = changes.lock().unwrap();
    /// assert!(changes.iter().any(|&(_, new)| new == StreamsState::Running));
    /// assert_eq!(changes.last(), Some(&(StreamsState::PendingShutdown, StreamsState::NotRunning)));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn set_state_listener(&self, listener: impl Fn(State, State) + Send + Sync + 'static) {
        *self.shared.listener.lock().expect("listener lock") = Some(Arc::new(listener));
    }

    /// The current state.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    /// use streamkit::testing::EmbeddedBroker;
    ///
    /// let broker = EmbeddedBroker::start()?;
    /// broker.create_topic("in", 1)?;
    /// let dir = tempfile::tempdir().unwrap();
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// let app = KafkaStreams::new(b.build()?, StreamsConfig::new("stateful").embedded(&broker).state_dir(dir.path()))?;
    /// assert_eq!(app.state(), StreamsState::Created);
    /// app.start()?;
    /// assert!(app.wait_for_state(StreamsState::Running, Duration::from_secs(30)));
    /// app.close()?;
    /// assert_eq!(app.state(), StreamsState::NotRunning);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn state(&self) -> State {
        *self.shared.state.lock().expect("state lock")
    }

    /// The error that stopped the instance, if one did.
    ///
    /// # Examples
    ///
    /// A record that cannot be deserialized stops the instance (the default handler is `Fail`):
    ///
    /// ```
    /// use std::time::Duration;
    /// use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    /// use streamkit::prelude::*;
    /// use streamkit::testing::EmbeddedBroker;
    ///
    /// let broker = EmbeddedBroker::start()?;
    /// broker.create_topic("fares", 1)?;
    /// let dir = tempfile::tempdir().unwrap();
    /// let b = StreamsBuilder::new();
    /// b.stream("fares", Consumed::with(Serdes::string(), Serdes::i64()))
    ///     .to("fares-copy", Produced::with(Serdes::string(), Serdes::i64()));
    /// let app = KafkaStreams::new(b.build()?, StreamsConfig::new("strict").embedded(&broker).state_dir(dir.path()))?;
    /// app.start()?;
    /// assert!(app.wait_for_state(StreamsState::Running, Duration::from_secs(30)));
    /// assert_eq!(app.error(), None);
    /// let producer: BaseProducer = rdkafka::ClientConfig::new()
    ///     .set("bootstrap.servers", broker.bootstrap_servers()).create().unwrap();
    /// producer.send(BaseRecord::<str, str>::to("fares").key("bus").payload("not a long")).map_err(|(e, _)| e).unwrap();
    /// producer.flush(Duration::from_secs(30)).unwrap();
    /// assert!(app.wait_for_state(StreamsState::Error, Duration::from_secs(30)));
    /// assert!(app.error().is_some());
    /// assert!(app.close().is_err());
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn error(&self) -> Option<String> {
        self.shared
            .error
            .lock()
            .expect("error lock")
            .as_ref()
            .map(ToString::to_string)
    }

    /// The instance's metrics.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    /// use streamkit::prelude::*;
    /// use streamkit::testing::EmbeddedBroker;
    ///
    /// let broker = EmbeddedBroker::start()?;
    /// broker.create_topic("in", 1)?;
    /// let dir = tempfile::tempdir().unwrap();
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// let app = KafkaStreams::new(b.build()?, StreamsConfig::new("measured").embedded(&broker).state_dir(dir.path()))?;
    /// app.start()?;
    /// assert!(app.wait_for_state(StreamsState::Running, Duration::from_secs(30)));
    /// let producer: BaseProducer = rdkafka::ClientConfig::new()
    ///     .set("bootstrap.servers", broker.bootstrap_servers()).create().unwrap();
    /// for _ in 0..3 {
    ///     producer.send(BaseRecord::<str, str>::to("in").key("k").payload("v")).map_err(|(e, _)| e).unwrap();
    /// }
    /// producer.flush(Duration::from_secs(30)).unwrap();
    /// let deadline = Instant::now() + Duration::from_secs(30);
    /// while app.metrics().records_processed() < 3 {
    ///     assert!(Instant::now() < deadline, "records not processed");
    ///     std::thread::sleep(Duration::from_millis(50));
    /// }
    /// app.close()?;
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// A read-only view of key-value store `name` over this instance's tasks.
    ///
    /// # Examples
    ///
    /// Taps counted on the embedded broker, read back while the application runs:
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    /// use streamkit::prelude::*;
    /// use streamkit::testing::EmbeddedBroker;
    ///
    /// let broker = EmbeddedBroker::start()?;
    /// broker.create_topic("taps", 1)?;
    /// let dir = tempfile::tempdir().unwrap();
    /// let b = StreamsBuilder::new();
    /// b.stream("taps", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
    ///     .count(Materialized::named("taps"));
    /// let app = KafkaStreams::new(b.build()?, StreamsConfig::new("tap-counter").embedded(&broker).state_dir(dir.path()))?;
    /// app.start()?;
    /// assert!(app.wait_for_state(StreamsState::Running, Duration::from_secs(30)));
    /// let producer: BaseProducer = rdkafka::ClientConfig::new()
    ///     .set("bootstrap.servers", broker.bootstrap_servers()).create().unwrap();
    /// for _ in 0..2 {
    ///     producer.send(BaseRecord::<str, str>::to("taps").key("clark").payload("tap")).map_err(|(e, _)| e).unwrap();
    /// }
    /// producer.flush(Duration::from_secs(30)).unwrap();
    /// let deadline = Instant::now() + Duration::from_secs(30);
    /// while app.store::<String, i64>("taps").and_then(|s| s.get(&"clark".to_string())).ok().flatten() != Some(2) {
    ///     assert!(Instant::now() < deadline, "count not reached");
    ///     std::thread::sleep(Duration::from_millis(50));
    /// }
    /// app.close()?;
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn store<K: Data, V: Data>(&self, name: &str) -> Result<ReadOnlyKeyValueStore<K, V>> {
        ReadOnlyKeyValueStore::open(&self.registry, name)
    }

    /// A read-only view of window store `name` over this instance's tasks.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    /// use streamkit::prelude::*;
    /// use streamkit::testing::EmbeddedBroker;
    ///
    /// let broker = EmbeddedBroker::start()?;
    /// broker.create_topic("taps", 1)?;
    /// let dir = tempfile::tempdir().unwrap();
    /// let b = StreamsBuilder::new();
    /// b.stream("taps", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
    ///     .windowed_by(TimeWindows::tumbling(Duration::from_secs(60)))
    ///     .count(Materialized::named("per-minute"));
    /// let app = KafkaStreams::new(b.build()?, StreamsConfig::new("per-minute").embedded(&broker).state_dir(dir.path()))?;
    /// app.start()?;
    /// assert!(app.wait_for_state(StreamsState::Running, Duration::from_secs(30)));
    /// let producer: BaseProducer = rdkafka::ClientConfig::new()
    ///     .set("bootstrap.servers", broker.bootstrap_servers()).create().unwrap();
    /// for ts in [1_000, 2_000, 61_000] {
    ///     producer.send(BaseRecord::<str, str>::to("taps").key("clark").payload("tap").timestamp(ts))
    ///         .map_err(|(e, _)| e).unwrap();
    /// }
    /// producer.flush(Duration::from_secs(30)).unwrap();
    /// let deadline = Instant::now() + Duration::from_secs(30);
    /// loop {
    ///     let windows = app.window_store::<String, i64>("per-minute")
    ///         .and_then(|s| s.fetch(&"clark".to_string(), 0, 60_000));
    ///     if let Ok(w) = windows && w == vec![(0, 2), (60_000, 1)] { break; }
    ///     assert!(Instant::now() < deadline, "windows not counted");
    ///     std::thread::sleep(Duration::from_millis(50));
    /// }
    /// app.close()?;
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn window_store<K: Data, V: Data>(&self, name: &str) -> Result<ReadOnlyWindowStore<K, V>> {
        ReadOnlyWindowStore::open(&self.registry, name)
    }

    /// A read-only view of session store `name` over this instance's tasks.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    /// use streamkit::prelude::*;
    /// use streamkit::testing::EmbeddedBroker;
    ///
    /// let broker = EmbeddedBroker::start()?;
    /// broker.create_topic("taps", 1)?;
    /// let dir = tempfile::tempdir().unwrap();
    /// let b = StreamsBuilder::new();
    /// b.stream("taps", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
    ///     .windowed_by_session(SessionWindows::with_inactivity_gap(Duration::from_secs(60)))
    ///     .count(Materialized::named("visits"));
    /// let app = KafkaStreams::new(b.build()?, StreamsConfig::new("visits").embedded(&broker).state_dir(dir.path()))?;
    /// app.start()?;
    /// assert!(app.wait_for_state(StreamsState::Running, Duration::from_secs(30)));
    /// let producer: BaseProducer = rdkafka::ClientConfig::new()
    ///     .set("bootstrap.servers", broker.bootstrap_servers()).create().unwrap();
    /// for ts in [1_000, 30_000] {
    ///     producer.send(BaseRecord::<str, str>::to("taps").key("card").payload("tap").timestamp(ts))
    ///         .map_err(|(e, _)| e).unwrap();
    /// }
    /// producer.flush(Duration::from_secs(30)).unwrap();
    /// let deadline = Instant::now() + Duration::from_secs(30);
    /// loop {
    ///     let sessions = app.session_store::<String, i64>("visits").and_then(|s| s.fetch(&"card".to_string()));
    ///     if let Ok(s) = sessions && s == vec![(Window::new(1_000, 30_000), 2)] { break; }
    ///     assert!(Instant::now() < deadline, "session not counted");
    ///     std::thread::sleep(Duration::from_millis(50));
    /// }
    /// app.close()?;
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn session_store<K: Data, V: Data>(
        &self,
        name: &str,
    ) -> Result<ReadOnlySessionStore<K, V>> {
        ReadOnlySessionStore::open(&self.registry, name)
    }

    /// The address the query server listens on, once [`start`](Self::start) bound it (see
    /// [`StreamsConfig::query_server`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    /// use streamkit::testing::EmbeddedBroker;
    ///
    /// let broker = EmbeddedBroker::start()?;
    /// broker.create_topic("in", 1)?;
    /// let dir = tempfile::tempdir().unwrap();
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// let config = StreamsConfig::new("queried").embedded(&broker).state_dir(dir.path())
    ///     .query_server("127.0.0.1:0"); // any free port
    /// let app = KafkaStreams::new(b.build()?, config)?;
    /// assert_eq!(app.query_server_addr(), None);
    /// app.start()?;
    /// let addr = app.query_server_addr().expect("bound at start");
    /// assert!(addr.ip().is_loopback() && addr.port() != 0);
    /// app.close()?;
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn query_server_addr(&self) -> Option<std::net::SocketAddr> {
        #[cfg(feature = "server")]
        return self
            .server
            .lock()
            .expect("server lock")
            .as_ref()
            .map(|s| s.addr);
        #[cfg(not(feature = "server"))]
        None
    }

    /// The topology being run.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// use streamkit::testing::EmbeddedBroker;
    /// use streamkit::topology::TopicName;
    ///
    /// let broker = EmbeddedBroker::start()?;
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// let app = KafkaStreams::new(b.build()?, StreamsConfig::new("described").embedded(&broker))?;
    /// assert_eq!(app.topology().source_topics(), vec![TopicName::External("in".into())]);
    /// assert!(app.topology().describe().to_string().contains("(topic: out)"));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Checks source topics, creates internal topics, checks co-partitioning and starts the
    /// stream threads. Returns once they run; processing starts when the group assigns
    /// partitions ([`State::Running`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    /// use streamkit::testing::EmbeddedBroker;
    ///
    /// let broker = EmbeddedBroker::start()?;
    /// broker.create_topic("in", 1)?;
    /// let dir = tempfile::tempdir().unwrap();
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// let app = KafkaStreams::new(b.build()?, StreamsConfig::new("started").embedded(&broker).state_dir(dir.path()))?;
    /// app.start()?;
    /// assert!(app.start().is_err()); // only once
    /// assert!(app.wait_for_state(StreamsState::Running, Duration::from_secs(30)));
    /// app.close()?;
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn start(&self) -> Result<()> {
        if self.state() != State::Created {
            return Err(Error::IllegalState(format!(
                "start() in state {:?}",
                self.state()
            )));
        }
        if let Err(e) = self.lock_state_dirs() {
            self.shared.transition(State::Error);
            return Err(e);
        }
        if let Err(e) = create_connector_topics(&self.config, &self.topology)
            .and_then(|()| prepare_topics(&self.config, &self.topology))
        {
            self.shared.transition(State::Error);
            return Err(e);
        }
        #[cfg(not(feature = "server"))]
        if self.config.query_server.is_some() {
            self.shared.transition(State::Error);
            return Err(Error::Config(
                "a query server is configured, but streamkit was built without its `server` feature"
                    .into(),
            ));
        }
        #[cfg(feature = "server")]
        if self.config.query_server.is_some() {
            let shared = self.shared.clone();
            let started = crate::server::start(crate::server::ServerArgs {
                config: self.config.clone(),
                topology: self.topology.clone(),
                registry: self.registry.clone(),
                metrics: self.metrics.clone(),
                state: Arc::new(move || *shared.state.lock().expect("state lock")),
            });
            match started {
                Ok(s) => *self.server.lock().expect("server lock") = Some(s),
                Err(e) => {
                    self.shared.transition(State::Error);
                    return Err(e);
                }
            }
        }
        self.shared.transition(State::Rebalancing);
        // Global tables are loaded before any stream thread processes a record.
        let shared = self.shared.clone();
        let global = crate::runtime::global::start(
            crate::runtime::global::GlobalThreadArgs {
                topology: self.topology.clone(),
                config: self.config.clone(),
                metrics: self.metrics.clone(),
                shutdown: self.shared.shutdown.clone(),
                registry: self.registry.clone(),
                rocksdb: self.rocksdb.clone(),
                dir: self.global_dir.clone(),
            },
            move |e| {
                shared.error.lock().expect("error lock").get_or_insert(e);
                shared.shutdown.store(true, Ordering::Release);
                shared.transition(State::Error);
            },
        );
        let global_stores = match global {
            Ok((handle, stores)) => {
                if let Some(h) = handle {
                    self.handles.lock().expect("handles lock").push(h);
                }
                stores
            }
            Err(e) => {
                self.fail(Error::Config(format!("cannot load the global tables: {e}")));
                let _ = self.close();
                return Err(e);
            }
        };
        let spawner = Arc::new(ThreadSpawner {
            topology: self.topology.clone(),
            config: self.config.clone(),
            metrics: self.metrics.clone(),
            shared: self.shared.clone(),
            registry: self.registry.clone(),
            rocksdb: self.rocksdb.clone(),
            global_stores,
            handles: self.handles.clone(),
            started: std::sync::atomic::AtomicUsize::new(0),
        });
        for index in 0..self.config.num_stream_threads {
            if let Err(e) = spawner.spawn(index) {
                self.fail(Error::Config(format!("cannot create stream thread: {e}")));
                let _ = self.close();
                return Err(e);
            }
        }
        self.start_connectors()
    }

    /// Locks `state_dir/<application-id>` when the topology keeps RocksDB stores (two
    /// instances sharing it would open each other's stores), and this instance's global store
    /// directory (so no other instance reaps it).
    fn lock_state_dirs(&self) -> Result<()> {
        let persistent = self
            .topology
            .subtopologies
            .iter()
            .flat_map(|s| &s.stores)
            .any(|s| s.backend == crate::state::StoreBackend::RocksDb);
        let mut locks = self.dir_locks.lock().expect("dir locks lock");
        if persistent {
            let app_dir = self.config.state_dir.join(&self.config.application_id);
            locks.push(crate::state::dir::DirLock::acquire(&app_dir)?);
        }
        if !self.topology.global_subtopologies.is_empty() {
            locks.push(crate::state::dir::DirLock::acquire(&self.global_dir)?);
        }
        Ok(())
    }

    /// Runs the topology's source connectors on a thread of their own until shutdown; the
    /// first one to fail stops the instance with its error.
    fn start_connectors(&self) -> Result<()> {
        let connectors =
            std::mem::take(&mut *self.topology.connectors.lock().expect("connectors lock"));
        if connectors.is_empty() {
            return Ok(());
        }
        let (shared, config) = (self.shared.clone(), self.config.clone());
        let name = format!("{}-connectors", self.config.application_id);
        let thread_name = name.clone();
        let handle = std::thread::Builder::new().name(name).spawn(move || {
            let run = || run_connectors(connectors, &shared, &config);
            if let Err(e) = crate::error::catch_panic(&thread_name, run) {
                shared.error.lock().expect("error lock").get_or_insert(e);
                shared.shutdown.store(true, Ordering::Release);
                shared.transition(State::Error);
            }
        })?;
        self.handles.lock().expect("handles lock").push(handle);
        Ok(())
    }

    fn fail(&self, e: Error) {
        self.shared
            .error
            .lock()
            .expect("error lock")
            .get_or_insert(e);
        self.shared.shutdown.store(true, Ordering::Release);
        self.shared.transition(State::Error);
    }

    /// Stops processing: every thread closes its tasks, flushes output, commits its offsets and
    /// leaves the group. Blocks until done, but at most the configured
    /// [`close_timeout`](StreamsConfig::close_timeout). Returns the error that stopped the
    /// instance, if one did.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    /// use streamkit::testing::EmbeddedBroker;
    ///
    /// let broker = EmbeddedBroker::start()?;
    /// broker.create_topic("in", 1)?;
    /// let dir = tempfile::tempdir().unwrap();
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// let app = KafkaStreams::new(b.build()?, StreamsConfig::new("closed").embedded(&broker).state_dir(dir.path()))?;
    /// app.start()?;
    /// assert!(app.wait_for_state(StreamsState::Running, Duration::from_secs(30)));
    /// app.close()?;
    /// assert_eq!(app.state(), StreamsState::NotRunning);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn close(&self) -> Result<()> {
        self.close_timeout(self.config.close_timeout)
    }

    /// [`close`](Self::close), waiting at most `timeout` for the threads to stop (Kafka
    /// Streams' `close(Duration)`). A thread still running then is logged by name and left
    /// behind (its partitions move once its consumer leaves the group or its session times
    /// out; what it processed but did not commit is processed again, so nothing is lost), the
    /// state stays `PendingShutdown` and an [`Error::IllegalState`] is returned.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    /// use streamkit::testing::EmbeddedBroker;
    ///
    /// let broker = EmbeddedBroker::start()?;
    /// broker.create_topic("in", 1)?;
    /// let dir = tempfile::tempdir().unwrap();
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// let app = KafkaStreams::new(b.build()?, StreamsConfig::new("closed-in-time").embedded(&broker).state_dir(dir.path()))?;
    /// app.start()?;
    /// assert!(app.wait_for_state(StreamsState::Running, Duration::from_secs(30)));
    /// app.close_timeout(Duration::from_secs(30))?;
    /// assert_eq!(app.state(), StreamsState::NotRunning);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn close_timeout(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        self.shared.shutdown.store(true, Ordering::Release);
        self.shared.transition(State::PendingShutdown);
        let handles: Vec<_> = self
            .handles
            .lock()
            .expect("handles lock")
            .drain(..)
            .collect();
        let mut stuck = Vec::new();
        for h in handles {
            while !h.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if h.is_finished() {
                let _ = h.join();
            } else {
                let name = h.thread().name().unwrap_or("unnamed").to_string();
                tracing::error!(thread = %name, ?timeout, "thread did not stop within the close timeout; leaving it behind");
                stuck.push(name);
            }
        }
        #[cfg(feature = "server")]
        if let Some(mut server) = self.server.lock().expect("server lock").take() {
            server.stop();
        }
        if !stuck.is_empty() {
            // The global stores may still be in use by a thread left behind: keep them.
            return Err(Error::IllegalState(format!(
                "close timed out after {timeout:?}; threads still running: {}",
                stuck.join(", ")
            )));
        }
        // Global stores are rebuilt at every start: nothing to keep.
        if let Err(e) = std::fs::remove_dir_all(&self.global_dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %self.global_dir.display(), error = %e, "cannot remove the global stores' directory");
        }
        // Every thread is gone: the directories are free for another instance.
        self.dir_locks.lock().expect("dir locks lock").clear();
        self.shared.transition(State::NotRunning);
        match self.shared.error.lock().expect("error lock").take() {
            Some(e) => {
                // Keep reporting the state as Error.
                *self.shared.state.lock().expect("state lock") = State::Error;
                Err(e)
            }
            None => Ok(()),
        }
    }

    /// Deletes this application's local state directory (`state_dir/<application-id>`): its
    /// stores and checkpoints, so the next start rebuilds them from the changelogs (Kafka
    /// Streams' `cleanUp()`). Only before [`start`](Self::start) or after
    /// [`close`](Self::close); refused while another instance, in this process or another,
    /// holds the directory. The broker side (internal topics, committed offsets) is reset
    /// by [`reset_application`](crate::runtime::reset_application).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    /// use streamkit::testing::EmbeddedBroker;
    ///
    /// let broker = EmbeddedBroker::start()?;
    /// broker.create_topic("in", 1)?;
    /// let dir = tempfile::tempdir().unwrap();
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
    ///     .count(Materialized::named("counts"));
    /// let config = StreamsConfig::new("cleaned").embedded(&broker).state_dir(dir.path());
    /// let app = KafkaStreams::new(b.build()?, config)?;
    /// app.start()?;
    /// assert!(app.wait_for_state(StreamsState::Running, Duration::from_secs(30)));
    /// assert!(app.cleanup().is_err(), "not while it runs");
    /// app.close()?;
    /// app.cleanup()?;
    /// assert!(!dir.path().join("cleaned").exists());
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn cleanup(&self) -> Result<()> {
        let state = self.state();
        if !matches!(state, State::Created | State::NotRunning | State::Error)
            || !self.handles.lock().expect("handles lock").is_empty()
            || !self.dir_locks.lock().expect("dir locks lock").is_empty()
        {
            return Err(Error::IllegalState(format!(
                "cleanup needs a closed instance (state {state:?}): call close() first"
            )));
        }
        crate::runtime::delete_local_state(&self.config)
    }

    /// The resolved names of the topology's internal topics (changelogs, repartition
    /// topics), and the query server's instances topic when it has one.
    pub(crate) fn internal_topic_names(&self) -> Vec<String> {
        let app = self.config.application_id.as_str();
        let mut names: Vec<String> = self
            .topology
            .internal_topics()
            .iter()
            .map(|t| t.name.resolve(app))
            .collect();
        if self.config.query_server.is_some() {
            names.push(format!("{app}-instances"));
        }
        names
    }

    /// The configuration this instance runs with.
    pub(crate) fn config(&self) -> &StreamsConfig {
        &self.config
    }

    /// Blocks until the state is `target` (true) or `timeout` passes (false).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::prelude::*;
    /// use streamkit::testing::EmbeddedBroker;
    ///
    /// let broker = EmbeddedBroker::start()?;
    /// broker.create_topic("in", 1)?;
    /// let dir = tempfile::tempdir().unwrap();
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// let app = KafkaStreams::new(b.build()?, StreamsConfig::new("waited").embedded(&broker).state_dir(dir.path()))?;
    /// // Not started: never Running.
    /// assert!(!app.wait_for_state(StreamsState::Running, Duration::from_millis(100)));
    /// app.start()?;
    /// assert!(app.wait_for_state(StreamsState::Running, Duration::from_secs(30)));
    /// app.close()?;
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn wait_for_state(&self, target: State, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.state() == target {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.state() == target
    }

    /// Starts, runs until SIGINT or SIGTERM (or a thread fails), then closes gracefully.
    ///
    /// # Examples
    ///
    /// `run` returns when the application stops; here a record that cannot be deserialized stops
    /// it (the default handler is `Fail`) and `run` returns that error:
    ///
    /// ```
    /// use std::time::Duration;
    /// use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    /// use streamkit::prelude::*;
    /// use streamkit::testing::EmbeddedBroker;
    ///
    /// let broker = EmbeddedBroker::start()?;
    /// broker.create_topic("fares", 1)?;
    /// let producer: BaseProducer = rdkafka::ClientConfig::new()
    ///     .set("bootstrap.servers", broker.bootstrap_servers()).create().unwrap();
    /// producer.send(BaseRecord::<str, str>::to("fares").key("bus").payload("not a long")).map_err(|(e, _)| e).unwrap();
    /// producer.flush(Duration::from_secs(30)).unwrap();
    /// let dir = tempfile::tempdir().unwrap();
    /// let b = StreamsBuilder::new();
    /// b.stream("fares", Consumed::with(Serdes::string(), Serdes::i64()))
    ///     .to("fares-copy", Produced::with(Serdes::string(), Serdes::i64()));
    /// let app = KafkaStreams::new(b.build()?, StreamsConfig::new("runner").embedded(&broker).state_dir(dir.path()))?;
    /// let result = tokio::runtime::Runtime::new().unwrap().block_on(app.run());
    /// assert!(result.is_err());
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub async fn run(self) -> Result<()> {
        self.start()?;
        let shared = self.shared.clone();
        let failed = async move {
            while !shared.shutdown.load(Ordering::Acquire) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        #[cfg(unix)]
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, closing"),
            _ = terminate => tracing::info!("SIGTERM received, closing"),
            _ = failed => {}
        }
        tokio::task::spawn_blocking(move || self.close())
            .await
            .map_err(|e| Error::Internal(format!("close task: {e}")))?
    }
}

/// Store sizes and RocksDB memory are read, not counted: refresh them at each scrape.
fn refresh_on_scrape(metrics: &Metrics, registry: &StoreRegistry, rocksdb: &RocksDbShared) {
    use crate::metrics::names::*;
    let (m, registry, rocksdb) = (metrics.clone(), registry.clone(), rocksdb.clone());
    metrics.on_scrape(move || {
        m.store_entries.reset();
        for name in registry.names() {
            for (task, store) in registry.get_by_task(&name) {
                let len = store.lock().expect("store lock").approximate_len();
                m.store_entries
                    .with_label_values(&[task.to_string().as_str(), name.as_str()])
                    .set(len as i64);
            }
        }
        let (cache, pinned, buffers) = rocksdb.usage();
        for (kind, bytes) in [
            (ROCKSDB_BLOCK_CACHE, cache),
            (ROCKSDB_BLOCK_CACHE_PINNED, pinned),
            (ROCKSDB_WRITE_BUFFERS, buffers),
        ] {
            m.rocksdb_memory
                .with_label_values(&[kind])
                .set(bytes as i64);
        }
    });
}

impl Drop for KafkaStreams {
    fn drop(&mut self) {
        if !self.handles.lock().map(|h| h.is_empty()).unwrap_or(true) {
            let _ = self.close();
        }
    }
}

/// Creates the topics the topology's source connectors write, when missing, so the stream
/// threads find them (as a Kafka Connect worker creates its connectors' topics).
fn create_connector_topics(config: &StreamsConfig, topology: &Topology) -> Result<()> {
    if topology.connector_topics.is_empty() {
        return Ok(());
    }
    let existing = crate::runtime::admin::topic_partitions(config)?;
    let missing: Vec<_> = topology
        .connector_topics
        .iter()
        .filter(|t| !existing.contains_key(*t))
        .map(|t| (t.clone(), config.default_partitions, Vec::new()))
        .collect();
    crate::runtime::admin::create_topics(config, &missing)
}

/// Starts stream threads: at start, and in place of one that failed when the configured
/// [`UncaughtExceptionResponse`](crate::config::UncaughtExceptionResponse) says so.
struct ThreadSpawner {
    topology: Arc<Topology>,
    config: StreamsConfig,
    metrics: Metrics,
    shared: Arc<Shared>,
    registry: StoreRegistry,
    rocksdb: RocksDbShared,
    global_stores: crate::state::store::TaskStores,
    handles: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// Threads started so far: names run on (`StreamThread-3` replaces a failed one of two).
    started: std::sync::atomic::AtomicUsize,
}

impl ThreadSpawner {
    /// Starts the stream thread for status slot `index`; returns once it is created (its
    /// consumer and producer exist) or failed to be.
    fn spawn(self: &Arc<Self>, index: usize) -> Result<()> {
        let number = self.started.fetch_add(1, Ordering::AcqRel) + 1;
        let name = format!("{}-StreamThread-{number}", self.config.application_id);
        let shared = self.shared.clone();
        let status: StatusSink = Arc::new(move |i, s| shared.on_thread_status(i, s));
        let args = ThreadArgs {
            index,
            name: name.clone(),
            topology: self.topology.clone(),
            config: self.config.clone(),
            metrics: self.metrics.clone(),
            shutdown: self.shared.shutdown.clone(),
            status,
            registry: self.registry.clone(),
            rocksdb: self.rocksdb.clone(),
            global_stores: self.global_stores.clone(),
        };
        // Tasks hold `Rc`s: the thread's state is built on the thread itself.
        let (created_tx, created_rx) = std::sync::mpsc::channel::<Result<()>>();
        let spawner = self.clone();
        let thread_name = name.clone();
        let handle = std::thread::Builder::new().name(name).spawn(move || {
            let thread = match crate::error::catch_panic(&thread_name, || StreamThread::new(args)) {
                Ok(t) => {
                    let _ = created_tx.send(Ok(()));
                    t
                }
                Err(e) => {
                    let _ = created_tx.send(Err(e));
                    return;
                }
            };
            // A panic, in a user closure or in streamkit, is a failure of the thread like an
            // error: never a thread silently gone while the instance reports itself healthy.
            if let Err(e) = crate::error::catch_panic(&thread_name, move || thread.run()) {
                spawner.failed(index, &thread_name, e);
            }
        })?;
        let created = created_rx
            .recv()
            .unwrap_or_else(|_| Err(Error::Internal("stream thread died at start".into())));
        if let Err(e) = created {
            let _ = handle.join();
            return Err(e);
        }
        self.handles.lock().expect("handles lock").push(handle);
        Ok(())
    }

    /// Called by a stream thread that failed: replaces it, or stops the instance.
    fn failed(self: &Arc<Self>, index: usize, thread: &str, e: Error) {
        use crate::config::UncaughtExceptionResponse;
        let mut e = e;
        if self.config.uncaught_exception_response == UncaughtExceptionResponse::ReplaceThread
            && !self.shared.shutdown.load(Ordering::Acquire)
        {
            tracing::error!(%thread, error = %e, "stream thread failed; replacing it");
            match self.spawn(index) {
                Ok(()) => return,
                Err(again) => {
                    tracing::error!(%thread, error = %again, "cannot replace the failed stream thread");
                    e = again;
                }
            }
        }
        tracing::error!(%thread, error = %e, "stream thread failed; shutting the instance down");
        self.shared
            .error
            .lock()
            .expect("error lock")
            .get_or_insert(e);
        self.shared.shutdown.store(true, Ordering::Release);
        self.shared.transition(State::Error);
    }
}

/// Runs the connectors on a runtime of their own until the instance shuts down or one fails.
fn run_connectors(
    connectors: Vec<Box<dyn crate::connect::SourceConnector>>,
    shared: &Shared,
    config: &StreamsConfig,
) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("streamkit-connector")
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let runs = connectors.into_iter().map(|c| {
            let name = c.name();
            let flag = shared.shutdown.clone();
            let shutdown: crate::connect::Shutdown = Box::pin(async move {
                while !flag.load(Ordering::Acquire) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            });
            let run = c.start(config.clone(), shutdown);
            async move {
                run.await.map_err(|e| {
                    tracing::error!(connector = %name, error = %e, "source connector failed; shutting the instance down");
                    e
                })
            }
        });
        futures_util::future::try_join_all(runs).await.map(drop)
    })
}
