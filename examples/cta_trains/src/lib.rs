//! CTA train status: the Chicago Transit Authority pipeline of producers, REST proxy, JDBC
//! source, Faust, KSQL and a dashboard, rebuilt on streamkit as one program.
//!
//! - [`data`]: the CTA stations and ridership tables the example ships;
//! - [`simulation`]: trains along the red, blue and green lines, turnstile entries and the
//!   hourly weather, as Avro events (the [`weather`] station posts over HTTP to the REST
//!   proxy);
//! - [`stations`]: the stations table loaded into PostgreSQL and read by the Postgres source
//!   (or straight from the CSV without a database);
//! - [`faust`]: the Faust-style stations transform;
//! - [`ksql`]: the original's two KSQL statements, verbatim;
//! - [`dashboard`] and [`web`]: the stores and the live page at `http://127.0.0.1:8888`.
//!
//! [`start`] runs all of it; `cargo run -p cta_trains --release` is [`start`] plus waiting for
//! Ctrl-C.

pub mod clock;
pub mod dashboard;
pub mod data;
pub mod faust;
pub mod ksql;
pub mod model;
pub mod rng;
pub mod simulation;
pub mod stations;
pub mod weather;
pub mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use streamkit::config::RestIngest;
use streamkit::prelude::*;
use streamkit::registry::{EmbeddedRegistry, RegistryConfig};
use streamkit::serde::avro::RegistryClient;
use streamkit::server::ksql::KsqlServer;
use streamkit::sql::Engine;
use streamkit::testing::EmbeddedBroker;

use crate::dashboard::StoreContents;
use crate::simulation::{SimOptions, SimStats, Simulation, Targets};

/// The topics the programs share, with their partition counts (one each: a line's arrivals
/// and the table the Faust agent writes are read in order).
const TOPICS: [(&str, i32); 5] = [
    (model::STATIONS_TOPIC, 1),
    (model::STATIONS_TABLE_TOPIC, 1),
    (model::ARRIVALS_TOPIC, 1),
    (model::TURNSTILES_TOPIC, 1),
    (model::WEATHER_TOPIC, 1),
];

/// Command-line options.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "cta_trains",
    about = "CTA train status on streamkit: simulated trains, turnstiles and weather, stations from PostgreSQL, a Faust-style transform, the KSQL summary and a live dashboard",
    long_about = "Starts an embedded broker and schema registry (unless --bootstrap-servers and \
                  --schema-registry name real ones), loads the stations into Kafka (from \
                  PostgreSQL through the Postgres source with --postgres-url, else straight from \
                  the CSV), runs the Faust-style stations transform, the KSQL statements and the \
                  dashboard's consumer, simulates trains, turnstiles and hourly weather (posted \
                  over HTTP to the REST-proxy-compatible ingest) and serves the dashboard at \
                  --listen until Ctrl-C."
)]
pub struct Args {
    /// Kafka brokers (`host:port,…`); without it an embedded broker is started in-process.
    #[arg(long)]
    pub bootstrap_servers: Option<String>,
    /// A Confluent-compatible schema registry (`http://host:8081`); without it an embedded
    /// one is started, keeping its schemas in the cluster's `_schemas` topic.
    #[arg(long)]
    pub schema_registry: Option<String>,
    /// Where the embedded schema registry listens (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub registry_listen: String,
    /// Read the stations from this PostgreSQL database through the Postgres source, e.g.
    /// `postgres://cta_admin:chicago@localhost:5432/cta` (the `stations` table is created
    /// and loaded from the CSV when missing). The URL may hold a password: `--help` does not
    /// print the environment's value.
    #[arg(long, env = "CTA_TRAINS_POSTGRES_URL", hide_env_values = true)]
    pub postgres_url: Option<String>,
    /// Seconds between two polls of the stations table.
    #[arg(long, default_value_t = 10)]
    pub poll_interval_secs: u64,
    /// Where the dashboard is served.
    #[arg(long, default_value = "127.0.0.1:8888")]
    pub listen: SocketAddr,
    /// Where the REST-proxy-compatible ingest (and the query server) listens; the weather
    /// station posts here.
    #[arg(long, default_value = "127.0.0.1:8082")]
    pub rest_proxy_listen: String,
    /// Where the ksqlDB-compatible REST API listens.
    #[arg(long, default_value = "127.0.0.1:8088")]
    pub ksql_listen: String,
    /// Simulated seconds per real second (60: a simulated minute per second); 0 simulates as
    /// fast as the broker takes the records.
    #[arg(long, default_value_t = 60.0)]
    pub time_scale: f64,
    /// The simulated start, `YYYY-MM-DD HH:MM` Chicago time (the ridership tables are of
    /// October 2018).
    #[arg(long, default_value = "2018-10-01 05:00")]
    pub start: String,
    /// Simulated hours to run; 0 runs until Ctrl-C. The dashboard stays up after the end.
    #[arg(long, default_value_t = 24.0)]
    pub hours: f64,
    /// Trains on each line.
    #[arg(long, default_value_t = 10)]
    pub trains_per_line: u32,
    /// Minutes from one station to the next.
    #[arg(long, default_value_t = 2)]
    pub minutes_between_stations: u32,
    /// Seed of the simulation.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// State directory (default: a fresh temporary directory, removed at exit).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
}

impl Args {
    /// Defaults, as with no flags.
    pub fn defaults() -> Self {
        <Args as clap::Parser>::parse_from(["cta_trains"])
    }

    /// The simulation's options from the command line.
    pub fn sim_options(&self) -> anyhow::Result<SimOptions> {
        let start = clock::parse(&self.start)
            .with_context(|| format!("--start {:?} is not YYYY-MM-DD HH:MM", self.start))?;
        if !(self.hours >= 0.0 && self.time_scale >= 0.0) {
            bail!("--hours and --time-scale must not be negative");
        }
        Ok(SimOptions {
            start,
            minutes: (self.hours * 60.0).round() as u64,
            time_scale: self.time_scale,
            trains_per_line: self.trains_per_line.max(1),
            minutes_between_stations: self.minutes_between_stations.max(1),
            seed: self.seed,
            progress: !self.quiet,
            ..SimOptions::default()
        })
    }
}

/// Where the stations came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StationsFrom {
    /// PostgreSQL, through the Postgres source.
    Postgres,
    /// `data/cta_stations.csv`, produced directly.
    Csv,
}

/// Everything running: broker and registry (when embedded), the stations source, the Faust
/// transform, the KSQL queries, the dashboard application and page, and the simulation.
pub struct Running {
    /// The dashboard's consumer application.
    pub dashboard: Arc<KafkaStreams>,
    /// The Faust-style transform.
    pub faust: Arc<KafkaStreams>,
    /// The SQL engine running the KSQL statements.
    pub engine: Arc<Mutex<Engine>>,
    /// Where the page is served.
    pub addr: SocketAddr,
    /// The REST proxy's URL (the dashboard application's query server).
    pub rest_proxy: String,
    /// The ksqlDB-compatible REST API's address.
    pub ksql_addr: SocketAddr,
    /// The schema registry's URL.
    pub registry_url: String,
    /// A client of the schema registry.
    pub registry: RegistryClient,
    /// Bootstrap servers in use.
    pub bootstrap_servers: String,
    /// Where the stations came from.
    pub stations_from: StationsFrom,
    /// What the simulation has done.
    pub stats: Arc<SimStats>,
    sim: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
    stop: Arc<AtomicBool>,
    source: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<streamkit::Result<()>>,
    )>,
    ksql: Option<KsqlServer>,
    runtime: Option<tokio::runtime::Runtime>,
    server: Option<tokio::task::JoinHandle<()>>,
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
            .field("registry_url", &self.registry_url)
            .field("rest_proxy", &self.rest_proxy)
            .finish_non_exhaustive()
    }
}

impl Running {
    /// Waits for the simulation to end (its minutes done, every record acknowledged).
    pub fn wait_for_simulation(&mut self) -> anyhow::Result<()> {
        match self.sim.take() {
            Some(h) => h
                .join()
                .map_err(|_| anyhow::anyhow!("the simulation thread panicked"))?,
            None => bail!("the simulation was already waited for"),
        }
    }

    /// The dashboard's stores now.
    pub fn stores(&self) -> StoreContents {
        StoreContents::read(&self.dashboard)
    }

    /// Polls `done` every 100 ms until it is true, an application fails, or `timeout`.
    pub fn wait_until(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&Running) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            for (name, app) in [("dashboard", &self.dashboard), ("faust", &self.faust)] {
                if let Some(e) = app.error() {
                    bail!("the {name} application failed: {e}");
                }
            }
            if let Some(e) = self
                .engine
                .lock()
                .expect("engine lock")
                .queries()
                .find_map(|q| {
                    q.app()
                        .and_then(|a| a.error())
                        .map(|e| (q.id().to_string(), e))
                })
            {
                bail!("query {} failed: {}", e.0, e.1);
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

    /// Stops the simulation, the page, the source and every application.
    pub fn shutdown(mut self) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        let sim = self.sim.take().map(|h| h.join());
        if let Some(h) = self.server.take() {
            h.abort();
        }
        let source = match (self.source.take(), &self.runtime) {
            (Some((stop, handle)), Some(rt)) => {
                let _ = stop.send(());
                Some(rt.block_on(handle))
            }
            _ => None,
        };
        if let Some(mut k) = self.ksql.take() {
            k.stop();
        }
        let mut first_error: Option<anyhow::Error> = None;
        let mut note = |r: anyhow::Result<()>| {
            if let Err(e) = r
                && first_error.is_none()
            {
                first_error = Some(e);
            }
        };
        note(
            self.dashboard
                .close()
                .context("closing the dashboard application"),
        );
        note(ksql::close(&self.engine.lock().expect("engine lock")));
        note(self.faust.close().context("closing the Faust transform"));
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
        if let Some(mut r) = self.embedded_registry.take() {
            r.stop();
        }
        match sim {
            Some(Ok(Err(e))) => note(Err(e.context("the simulation"))),
            Some(Err(_)) => note(Err(anyhow::anyhow!("the simulation thread panicked"))),
            _ => {}
        }
        match source {
            Some(Ok(Err(e))) => note(Err(anyhow::Error::new(e).context("the Postgres source"))),
            Some(Err(e)) => note(Err(anyhow::anyhow!("the Postgres source task: {e}"))),
            _ => {}
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Starts everything [`Args`] describes and returns once the page is being served.
pub fn start(args: &Args) -> anyhow::Result<Running> {
    let sim_options = args.sim_options()?;
    let temp = tempfile::Builder::new()
        .prefix("cta-trains-")
        .tempdir()
        .context("creating a temporary directory")?;
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| temp.path().join("state"));
    let embedded = match args.bootstrap_servers {
        Some(_) => None,
        None => Some(EmbeddedBroker::start().context("starting the embedded broker")?),
    };
    let servers = match (&args.bootstrap_servers, &embedded) {
        (Some(servers), _) => servers.clone(),
        (None, Some(broker)) => broker.bootstrap_servers().to_string(),
        (None, None) => unreachable!("no broker"),
    };
    let streams_config = |app_id: &str| {
        let c = StreamsConfig::new(app_id)
            .commit_interval(Duration::from_millis(500))
            .state_dir(state_dir.clone());
        match &embedded {
            Some(broker) => c.embedded(broker),
            None => c.bootstrap_servers(servers.as_str()),
        }
    };
    streamkit::runtime::ensure_topics(&streams_config("cta-topics"), &TOPICS)
        .context("creating the topics")?;

    let (embedded_registry, registry) = match &args.schema_registry {
        Some(url) => (
            None,
            RegistryClient::new(url).context("the schema registry client")?,
        ),
        None => {
            let config = match &embedded {
                Some(broker) => RegistryConfig::embedded(broker),
                None => RegistryConfig::new(servers.as_str()),
            };
            let registry = EmbeddedRegistry::start(config.listen(args.registry_listen.as_str()))
                .context("starting the embedded schema registry")?;
            let client = registry.client().context("the schema registry client")?;
            (Some(registry), client)
        }
    };
    let registry_url = registry.url().to_string();
    let serdes = model::Serdes::new(&registry);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("cta-io")
        .build()
        .context("starting the runtime")?;

    // The stations into `org.chicago.cta.stations`: the connector of the original.
    let stations = data::stations()?;
    let (stations_from, source) = match &args.postgres_url {
        Some(url) => {
            let inserted = runtime.block_on(async {
                let client = stations::connect(url).await?;
                stations::load_table(&client, &stations).await
            })?;
            tracing::info!(
                inserted,
                rows = stations.len(),
                "stations table ready in PostgreSQL; the Postgres source reads it into {}",
                model::STATIONS_TOPIC
            );
            let source = stations::source(url, Duration::from_secs(args.poll_interval_secs.max(1)));
            let config = streams_config("cta-connect");
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let handle = runtime.spawn(async move { source.run(&config, rx).await });
            (StationsFrom::Postgres, Some((tx, handle)))
        }
        None => {
            tracing::info!(
                rows = stations.len(),
                "no --postgres-url: the stations come straight from data/cta_stations.csv into {}",
                model::STATIONS_TOPIC
            );
            runtime.block_on(stations::produce_from_csv(&servers, &stations))?;
            (StationsFrom::Csv, None)
        }
    };

    let faust = Arc::new(KafkaStreams::new(
        faust::topology()?,
        streams_config(faust::APPLICATION_ID),
    )?);
    faust.start()?;

    let engine = ksql::run(streams_config("cta-ksql"), &registry)?;
    let ksql = KsqlServer::start(engine, &args.ksql_listen)
        .with_context(|| format!("serving the ksql API on {}", args.ksql_listen))?;
    let ksql_addr = ksql.addr();
    let engine = ksql.engine();

    let dashboard = Arc::new(KafkaStreams::new(
        dashboard::topology(&serdes)?,
        streams_config(dashboard::APPLICATION_ID)
            .commit_interval(Duration::from_millis(200))
            .query_server(args.rest_proxy_listen.as_str())
            .rest_ingest(RestIngest::new().schema_registry(&registry)),
    )?);
    dashboard.start()?;
    let rest_proxy = format!(
        "http://{}",
        dashboard
            .query_server_addr()
            .context("the dashboard's query server did not start")?
    );

    let stats = Arc::new(SimStats::default());
    let stations_note = match stations_from {
        StationsFrom::Postgres => format!(
            "PostgreSQL table {} through the Postgres source (incrementing on stop_id)",
            stations::TABLE
        ),
        StationsFrom::Csv => "data/cta_stations.csv (no --postgres-url)".to_string(),
    };
    let state = web::WebState::new(dashboard.clone(), stats.clone(), stations_note);
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(args.listen))
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let router = web::router(state);
    let server = runtime.spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "the web server stopped");
        }
    });

    let simulation = Simulation::new(
        sim_options,
        &stations,
        &data::ridership()?,
        data::ridership_curve()?,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let sim = simulation::spawn(
        simulation,
        Targets {
            bootstrap_servers: servers.clone(),
            serdes,
            rest_proxy: rest_proxy.clone(),
        },
        stats.clone(),
        stop.clone(),
    );

    Ok(Running {
        dashboard,
        faust,
        engine,
        addr,
        rest_proxy,
        ksql_addr,
        registry_url,
        registry,
        bootstrap_servers: servers,
        stations_from,
        stats,
        sim: Some(sim),
        stop,
        source,
        ksql: Some(ksql),
        runtime: Some(runtime),
        server: Some(server),
        embedded_registry,
        _temp: Some(temp),
        _broker: embedded,
    })
}

// The example's README code blocks stay true to the flags.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
