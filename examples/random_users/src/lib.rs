//! Random users: randomuser.me polled into Kafka as Avro, cleaned into Cassandra, counted live,
//! and a model learning gender from first name and country as the users arrive.
//!
//! A rebuild of a pipeline made of an Airflow task posting randomuser.me users to Kafka
//! (through a schema registry), a Spark Structured Streaming job writing them to Cassandra
//! (`spark_streams.created_users`) and a Django consumer training a model live and serving
//! predictions, as one program:
//!
//! - [`api`]: a local randomuser.me-compatible API (seeded), or the real one with `--api-url`;
//! - [`topology`]: the polled JSON to Avro, the Spark job's cleaning, the live aggregates;
//! - [`sink`]: the cleaned users into Cassandra through `streamkit::connect::cassandra`;
//! - [`learn`]: the live naive Bayes model, its held-out accuracy, kept in a state store;
//! - [`web`]: the page at `http://127.0.0.1:8510`: counts, age bands, the model, a form.
//!
//! [`start`] runs all of it; `cargo run -p random_users` is [`start`] plus waiting for Ctrl-C.

pub mod api;
pub mod learn;
pub mod model;
pub mod rng;
pub mod sink;
pub mod topology;
pub mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use streamkit::connect::cassandra::SinkProgress;
use streamkit::connect::http_poll::HttpPollSource;
use streamkit::prelude::*;
use streamkit::registry::{EmbeddedRegistry, RegistryConfig};
use streamkit::serde::avro::RegistryClient;
use streamkit::testing::EmbeddedBroker;
use tokio::sync::watch;

use crate::topology::{RAW_TOPIC, TopologyConfig};

/// The streaming application's id.
pub const APPLICATION_ID: &str = "random-users";

/// Command-line options.
#[derive(Clone, clap::Parser)]
#[command(
    name = "random_users",
    about = "Random users on streamkit: randomuser.me polled into Kafka as Avro, cleaned into Cassandra, live counts and a live model",
    long_about = "Starts an embedded broker and schema registry (unless --bootstrap-servers and \
                  --schema-registry name real ones), a local randomuser.me-compatible API \
                  (unless --api-url names another, e.g. https://randomuser.me/api/), polls it \
                  into `random-users-json`, writes the users as Avro to `random-users`, cleans \
                  them into `created-users` and into Cassandra's spark_streams.created_users \
                  (with --cassandra), counts them per country, gender and age band, trains a \
                  model of gender from first name and country, and serves the page at \
                  --listen until Ctrl-C."
)]
pub struct Args {
    /// Kafka brokers (`host:port,…`); without it an embedded broker is started in-process.
    #[arg(long)]
    pub bootstrap_servers: Option<String>,
    /// A Confluent-compatible schema registry (`http://host:8081`); without it an embedded
    /// registry is started on the broker.
    #[arg(long)]
    pub schema_registry: Option<String>,
    /// Where the embedded schema registry listens (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub registry_listen: String,
    /// Cassandra nodes (`host:port,…`, CQL port): write the cleaned users to --cassandra-table.
    /// Without it the Cassandra sink is off (the rest runs).
    #[arg(long, env = "RANDOM_USERS_CASSANDRA", value_delimiter = ',')]
    pub cassandra: Vec<String>,
    /// The table (`keyspace.table`) the sink writes; keyspace and table are created when
    /// missing.
    #[arg(long, default_value = sink::TABLE)]
    pub cassandra_table: String,
    /// Replication factor of the keyspace when the sink creates it.
    #[arg(long, default_value_t = 1)]
    pub cassandra_replication: u32,
    /// Poll this randomuser.me-compatible API (e.g. `https://randomuser.me/api/`) instead of the
    /// local one.
    #[arg(long)]
    pub api_url: Option<String>,
    /// Where the local API listens (without --api-url).
    #[arg(long, default_value = "127.0.0.1:8511")]
    pub api_listen: SocketAddr,
    /// The local API serves this many users in all, then none (a bounded run).
    #[arg(long)]
    pub api_max_users: Option<u64>,
    /// Users per poll (`results=`).
    #[arg(long, default_value_t = 10)]
    pub results_per_poll: usize,
    /// Milliseconds between two polls.
    #[arg(long, default_value_t = 2000)]
    pub poll_interval_ms: u64,
    /// Seed of the local API.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Where the page is served.
    #[arg(long, default_value = "127.0.0.1:8510")]
    pub listen: SocketAddr,
    /// Where streamkit's query server answers (`/stores/users-by-age-band/<band>`, …).
    #[arg(long, default_value = "127.0.0.1:8512")]
    pub query_listen: String,
    /// State directory (default: a fresh temporary directory, removed at exit). The model
    /// and the counts persist across restarts in it.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
}

impl std::fmt::Debug for Args {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Args")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("cassandra", &self.cassandra)
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

impl Args {
    /// Defaults, as with no flags.
    pub fn defaults() -> Self {
        <Args as clap::Parser>::parse_from(["random_users"])
    }
}

/// The Cassandra sink, when on: its progress and its error, if it stopped with one.
#[derive(Debug, Clone)]
pub struct SinkStatus {
    /// `host:port` of the nodes.
    pub nodes: Vec<String>,
    /// `keyspace.table`.
    pub table: String,
    /// Rows written and offsets committed.
    pub progress: Arc<SinkProgress>,
    /// Why it stopped, if it did.
    pub error: Arc<Mutex<Option<String>>>,
}

/// Everything running.
pub struct Running {
    /// The streaming application.
    pub app: Arc<KafkaStreams>,
    /// Where the page is served.
    pub addr: SocketAddr,
    /// Where the local API is served (`None` with --api-url).
    pub api_addr: Option<SocketAddr>,
    /// The URL polled.
    pub api_url: String,
    /// The query server's address.
    pub query_addr: SocketAddr,
    /// Bootstrap servers in use.
    pub bootstrap_servers: String,
    /// The schema registry's URL.
    pub registry_url: String,
    /// A client of the schema registry.
    pub registry: RegistryClient,
    /// The Cassandra sink, with --cassandra.
    pub sink: Option<SinkStatus>,
    stop_sink: watch::Sender<bool>,
    sink_task: Option<tokio::task::JoinHandle<()>>,
    runtime: Option<tokio::runtime::Runtime>,
    embedded_registry: Option<EmbeddedRegistry>,
    _temp: Option<tempfile::TempDir>,
    // Dropped last: the applications and clients close before the broker.
    _broker: Option<EmbeddedBroker>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("addr", &self.addr)
            .field("bootstrap_servers", &self.bootstrap_servers)
            .finish_non_exhaustive()
    }
}

impl Running {
    /// Polls `done` every 100 ms until it is true, the application or the sink fails, or
    /// `timeout`.
    pub fn wait_until(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&Running) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.app.error() {
                bail!("the streaming application failed: {e}");
            }
            if let Some(e) = self
                .sink
                .as_ref()
                .and_then(|s| s.error.lock().expect("sink error").clone())
            {
                bail!("the cassandra sink failed: {e}");
            }
            if done(self) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("timed out after {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the sink (after it has written and committed what it read), the servers and
    /// the application.
    pub fn shutdown(mut self) -> anyhow::Result<()> {
        let _ = self.stop_sink.send(true);
        if let (Some(rt), Some(task)) = (&self.runtime, self.sink_task.take()) {
            let _ =
                rt.block_on(async { tokio::time::timeout(Duration::from_secs(30), task).await });
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
        let closed = self
            .app
            .close()
            .context("closing the streaming application");
        if let Some(mut r) = self.embedded_registry.take() {
            r.stop();
        }
        closed
    }
}

/// Starts everything [`Args`] describes and returns once the page is being served.
pub fn start(args: &Args) -> anyhow::Result<Running> {
    start_with_broker(args, None)
}

/// [`start`] on an embedded broker the caller keeps (tests restart the application on one).
pub fn start_with_broker(args: &Args, broker: Option<&EmbeddedBroker>) -> anyhow::Result<Running> {
    let temp = tempfile::Builder::new()
        .prefix("random-users-")
        .tempdir()
        .context("creating a temporary directory")?;
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| temp.path().join("state"));
    let own_broker = match (&args.bootstrap_servers, broker) {
        (None, None) => Some(EmbeddedBroker::start().context("starting the embedded broker")?),
        _ => None,
    };
    let embedded = broker.or(own_broker.as_ref());
    let servers = match (&args.bootstrap_servers, embedded) {
        (Some(servers), _) => servers.clone(),
        (None, Some(b)) => b.bootstrap_servers().to_string(),
        (None, None) => unreachable!("no broker"),
    };
    let streams_config = |app_id: &str| {
        let c = StreamsConfig::new(app_id);
        match (&args.bootstrap_servers, embedded) {
            (None, Some(b)) => c.embedded(b),
            _ => c.bootstrap_servers(servers.as_str()),
        }
    };
    streamkit::runtime::ensure_topics(&streams_config("random-users-topics"), &topology::TOPICS)
        .context("creating the topics")?;

    let (embedded_registry, registry) = match &args.schema_registry {
        Some(url) => (
            None,
            RegistryClient::new(url).context("the schema registry client")?,
        ),
        None => {
            let config = match (&args.bootstrap_servers, embedded) {
                (None, Some(b)) => RegistryConfig::embedded(b),
                _ => RegistryConfig::new(servers.as_str()),
            };
            let registry = EmbeddedRegistry::start(config.listen(args.registry_listen.as_str()))
                .context("starting the embedded schema registry")?;
            let client = registry.client().context("the schema registry client")?;
            (Some(registry), client)
        }
    };
    let registry_url = registry.url().to_string();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("random-users-io")
        .build()
        .context("starting the runtime")?;

    // The API: local, or the one named.
    let (api_url, api_addr) = match &args.api_url {
        Some(url) => {
            tracing::info!(%url, "polling a randomuser.me API");
            (url.clone(), None)
        }
        None => {
            let listener = runtime
                .block_on(tokio::net::TcpListener::bind(args.api_listen))
                .with_context(|| format!("listening on {} (the local API)", args.api_listen))?;
            let addr = listener.local_addr()?;
            // Each run polls pages it has not polled before (ages count to the wall clock).
            let state = api::ApiState::new(args.seed)
                .first_page(model::now_ms() as u64 / 1000)
                .max_users(args.api_max_users);
            let router = api::router(state);
            runtime.spawn(async move {
                if let Err(e) = axum::serve(listener, router).await {
                    tracing::error!(error = %e, "the local API stopped");
                }
            });
            tracing::info!(%addr, "local randomuser.me-compatible API");
            (format!("http://{addr}/api/"), Some(addr))
        }
    };

    let source = HttpPollSource::new("randomuser", api_url.clone())
        .query(
            "results",
            args.results_per_poll.clamp(1, api::MAX_RESULTS).to_string(),
        )
        .interval(Duration::from_millis(args.poll_interval_ms.max(100)))
        .records_at("/results")
        .key_at("/login/uuid")
        .topic_name(RAW_TOPIC);
    let mut config = TopologyConfig::new(&registry);
    config.source = Some(source);
    let app = Arc::new(KafkaStreams::new(
        topology::topology(&config)?,
        streams_config(APPLICATION_ID)
            .commit_interval(Duration::from_millis(500))
            .state_dir(state_dir.clone())
            .query_server(args.query_listen.as_str()),
    )?);
    app.start()?;
    let query_addr = app
        .query_server_addr()
        .context("the query server did not start")?;

    let (stop_sink, stopped) = watch::channel(false);
    let (sink, sink_task) = if args.cassandra.is_empty() {
        tracing::info!(
            "no --cassandra: the Cassandra sink is off (created-users is still written to Kafka); \
             give --cassandra HOST:PORT to write {}",
            args.cassandra_table
        );
        (None, None)
    } else {
        let s = sink::cassandra_sink(
            &args.cassandra,
            &args.cassandra_table,
            args.cassandra_replication,
            &registry,
        );
        let status = SinkStatus {
            nodes: args.cassandra.clone(),
            table: args.cassandra_table.clone(),
            progress: s.progress(),
            error: Arc::default(),
        };
        let error = status.error.clone();
        let config = streams_config(APPLICATION_ID);
        let mut stopped = stopped.clone();
        let task = runtime.spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            if let Err(e) = s.run(&config, shutdown).await {
                tracing::error!(error = %e, "the cassandra sink stopped");
                *error.lock().expect("sink error") = Some(e.to_string());
            }
        });
        (Some(status), Some(task))
    };

    let state = web::WebState::new(app.clone(), sink.clone());
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(args.listen))
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let router = web::router(state);
    runtime.spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "the web server stopped");
        }
    });

    Ok(Running {
        app,
        addr,
        api_addr,
        api_url,
        query_addr,
        bootstrap_servers: servers,
        registry_url,
        registry,
        sink,
        stop_sink,
        sink_task,
        runtime: Some(runtime),
        embedded_registry,
        _temp: Some(temp),
        _broker: own_broker,
    })
}

// The example's README code blocks stay true to the flags.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
