//! Bike stations: JCDecaux's station availability, streaming and daily batch on one
//! streamkit topology, with a live map.
//!
//! A rebuild of a pipeline made of a Python polling loop, Kafka, Spark Structured Streaming,
//! a daily Spark ETL into SQL Server and a Streamlit dashboard, as one program:
//!
//! - [`city`], [`simulation`] and [`api`]: a local JCDecaux-compatible API over a simulated
//!   contract (daily curves, commuter flows, empty and full stations, closures);
//! - [`topology`]: the streaming job (latest state per station, trend alerts, city totals,
//!   tumbling and hopping windows that close at night on wall-clock idleness) and the daily
//!   batch, built from the same steps;
//! - [`batch`]: the batch run bounded over one day's records into the PostgreSQL warehouse;
//! - [`web`]: the dashboard at `http://127.0.0.1:8501`.
//!
//! [`start`] runs all of it; `cargo run --release -p bike_stations` is [`start`] plus waiting
//! for Ctrl-C.

pub mod api;
pub mod batch;
pub mod city;
pub mod model;
pub mod rng;
pub mod simulation;
pub mod topology;
pub mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use streamkit::connect::http_poll::HttpPollSource;
use streamkit::prelude::*;
use streamkit::testing::EmbeddedBroker;

use crate::batch::{BatchReport, Cluster};
use crate::model::{DAY_MS, HOUR_MS, Station, format_date, now_ms};
use crate::simulation::Simulation;
use crate::topology::{BatchConfig, STATIONS_TOPIC, StreamingConfig};

/// The real JCDecaux API.
pub const JCDECAUX_URL: &str = "https://api.jcdecaux.com/vls/v1/stations";
/// The key the local API accepts.
pub const LOCAL_API_KEY: &str = "local";
/// The streaming application's id.
pub const APPLICATION_ID: &str = "bike-stations";

/// Command-line options.
#[derive(Clone, clap::Parser)]
#[command(
    name = "bike_stations",
    about = "Bike stations on streamkit: JCDecaux availability polled into Kafka, live windows and alerts, a daily batch into PostgreSQL, a live map",
    long_about = "Starts an embedded broker (unless --bootstrap-servers is given), a local \
                  JCDecaux-compatible API over a simulated Brussels (unless --api-key is given: \
                  then the real API), writes the simulated history since yesterday, polls the \
                  API into `bike-stations`, runs the streaming topology, loads yesterday into the \
                  warehouse (with --postgres-url) and again every day at --batch-at, and serves \
                  the map at --listen until Ctrl-C. With --batch-day it only loads that day."
)]
pub struct Args {
    /// Kafka brokers (`host:port,…`); without it an embedded broker is started in-process.
    #[arg(long)]
    pub bootstrap_servers: Option<String>,
    /// The warehouse, e.g. `postgres://user:pw@localhost:5432/bikes`. It may hold a password:
    /// `--help` does not print the environment's value.
    #[arg(long, env = "BIKE_STATIONS_POSTGRES_URL", hide_env_values = true)]
    pub postgres_url: Option<String>,
    /// A JCDecaux API key: poll the real API (`--api-url`) instead of the local simulation.
    #[arg(long, env = "JCDECAUX_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// The contract (city) to poll.
    #[arg(long, default_value = city::CONTRACT)]
    pub contract: String,
    /// The API polled with --api-key.
    #[arg(long, default_value = JCDECAUX_URL)]
    pub api_url: String,
    /// Where the local API listens (without --api-key).
    #[arg(long, default_value = "127.0.0.1:8502")]
    pub api_listen: SocketAddr,
    /// Seconds between two polls.
    #[arg(long, default_value_t = 10)]
    pub poll_interval_secs: u64,
    /// Simulated history written before the live feed starts: from this many hours before
    /// yesterday 00:00 UTC until now (0: none; the daily batch reads 24 hours before its day).
    #[arg(long, default_value_t = 24)]
    pub history_lookback_hours: u64,
    /// Close windows after this many seconds without a record (the feed is quiet at night).
    #[arg(long, default_value_t = 120)]
    pub idle_close_secs: u64,
    /// When the daily batch loads the day before, `HH:MM` UTC.
    #[arg(long, default_value = "05:00")]
    pub batch_at: String,
    /// Load this day (`YYYY-MM-DD`) into the warehouse and exit.
    #[arg(long)]
    pub batch_day: Option<String>,
    /// Seed of the simulation.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Local time of the simulated city: UTC plus this many hours (1: Brussels in winter).
    /// Another value runs the city's day at another hour of the clock, e.g. `--utc-offset-hours
    /// 13` shows the afternoon's traffic at 02:00 UTC.
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    pub utc_offset_hours: i64,
    /// Where the page is served.
    #[arg(long, default_value = "127.0.0.1:8501")]
    pub listen: SocketAddr,
    /// Where streamkit's query server answers (`/stores/stations/bruxelles:1`, …).
    #[arg(long, default_value = "127.0.0.1:8503")]
    pub query_listen: String,
    /// State directory (default: a fresh temporary directory, removed at exit).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
}

impl std::fmt::Debug for Args {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Neither the key nor the URL: they are secrets.
        f.debug_struct("Args")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("contract", &self.contract)
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

impl Args {
    /// Defaults, as with no flags.
    pub fn defaults() -> Self {
        <Args as clap::Parser>::parse_from(["bike_stations"])
    }

    fn batch_minute(&self) -> anyhow::Result<i64> {
        let (h, m) = self
            .batch_at
            .split_once(':')
            .and_then(|(h, m)| Some((h.parse::<i64>().ok()?, m.parse::<i64>().ok()?)))
            .filter(|(h, m)| (0..24).contains(h) && (0..60).contains(m))
            .with_context(|| format!("--batch-at {:?} is not HH:MM", self.batch_at))?;
        Ok(h * 60 + m)
    }
}

/// How far before a day the batch reads: the state each station starts the day in (bikes
/// taken and returned are differences from the station's previous record). A station silent
/// for longer starts the day without one, and its first record counts nothing taken or
/// returned.
pub const BATCH_LOOKBACK: Duration = Duration::from_secs(24 * 3600);

/// The batches run so far, newest last.
pub type BatchLog = Arc<Mutex<Vec<Result<BatchReport, String>>>>;

/// Everything running.
pub struct Running {
    /// The streaming application.
    pub app: Arc<KafkaStreams>,
    /// Where the page is served.
    pub addr: SocketAddr,
    /// Where the local API is served (`None` with the real API).
    pub api_addr: Option<SocketAddr>,
    /// The URL polled.
    pub api_url: String,
    /// The query server's address.
    pub query_addr: SocketAddr,
    /// Bootstrap servers in use.
    pub bootstrap_servers: String,
    /// The simulation behind the local API.
    pub simulation: Option<Arc<Mutex<Simulation>>>,
    /// Records of simulated history written at start.
    pub history_records: usize,
    /// The daily batches run.
    pub batches: BatchLog,
    scheduler: Option<std::thread::JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    runtime: Option<tokio::runtime::Runtime>,
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
    /// Polls `done` every 100 ms until it is true, the application fails, or `timeout`.
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
            if done(self) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("timed out after {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the scheduler, the servers and the application.
    pub fn shutdown(mut self) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.scheduler.take() {
            let _ = h.join();
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
        self.app
            .close()
            .context("closing the streaming application")
    }
}

fn cluster(args: &Args) -> anyhow::Result<Cluster> {
    Ok(match &args.bootstrap_servers {
        Some(servers) => Cluster {
            servers: servers.clone(),
            embedded: None,
        },
        None => {
            let broker = EmbeddedBroker::start().context("starting the embedded broker")?;
            Cluster {
                servers: broker.bootstrap_servers().to_string(),
                embedded: Some(broker),
            }
        }
    })
}

fn streams_config(cluster: &Cluster, app_id: &str) -> StreamsConfig {
    let c = StreamsConfig::new(app_id);
    match &cluster.embedded {
        Some(b) => c.embedded(b),
        None => c.bootstrap_servers(cluster.servers.as_str()),
    }
}

/// Writes `records` to the stations topic as the polling source would (key `contract:number`,
/// JSON value, timestamp `last_update`), waiting for every acknowledgement.
pub fn produce(servers: &str, records: &[Station]) -> anyhow::Result<()> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "20")
        .create()?;
    for s in records {
        let key = s.key();
        let value = serde_json::to_string(s)?;
        let mut record = BaseRecord::to(STATIONS_TOPIC)
            .key(&key)
            .payload(&value)
            .partition(0)
            .timestamp(s.last_update);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((e, r)) => {
                    if !matches!(
                        e.rdkafka_error_code(),
                        Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                    ) {
                        bail!("producing history: {e}");
                    }
                    record = r;
                    producer.poll(Duration::from_millis(50));
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer
        .flush(Duration::from_secs(60))
        .context("flushing history")?;
    Ok(())
}

fn topic_is_empty(cluster: &Cluster) -> anyhow::Result<bool> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &cluster.servers)
        .create()?;
    let (low, high) = c.fetch_watermarks(STATIONS_TOPIC, 0, Duration::from_secs(30))?;
    Ok(high <= low)
}

/// Loads one day by hand (`--batch-day`): on the embedded broker, the simulated records of
/// that day (and the lookback before it) are written first.
pub fn run_batch_day(args: &Args, day: &str) -> anyhow::Result<BatchReport> {
    let day = batch::parse_day(day)?;
    let cluster = cluster(args)?;
    streamkit::runtime::ensure_topics(&streams_config(&cluster, "bike-topics"), &topology::TOPICS)
        .context("creating the topics")?;
    if cluster.embedded.is_some() {
        let from = day * DAY_MS - BATCH_LOOKBACK.as_millis() as i64;
        let (_, records) = simulation::history(
            args.seed,
            args.utc_offset_hours,
            from,
            (day + 1) * DAY_MS + HOUR_MS,
        );
        produce(&cluster.servers, &records)?;
        tracing::info!(records = records.len(), day = %format_date(day), "embedded broker: wrote the simulated records of the day");
    }
    if args.postgres_url.is_none() {
        tracing::info!(
            "no --postgres-url: the batch runs, bounded, and loads nothing; its totals are logged"
        );
    }
    let temp = tempfile::tempdir()?;
    batch::run(
        &cluster,
        &BatchConfig {
            day,
            lookback: BATCH_LOOKBACK,
            postgres_url: args.postgres_url.clone(),
        },
        args.state_dir.as_deref().unwrap_or(temp.path()),
        Duration::from_secs(600),
    )
}

/// Starts everything [`Args`] describes and returns once the page is being served.
pub fn start(args: &Args) -> anyhow::Result<Running> {
    let batch_minute = args.batch_minute()?;
    let temp = tempfile::Builder::new()
        .prefix("bike-stations-")
        .tempdir()
        .context("creating a temporary directory")?;
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| temp.path().join("state"));
    let cluster = cluster(args)?;
    streamkit::runtime::ensure_topics(&streams_config(&cluster, "bike-topics"), &topology::TOPICS)
        .context("creating the topics")?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("bike-io")
        .build()
        .context("starting the runtime")?;

    if let Some(url) = &args.postgres_url {
        runtime.block_on(async {
            let client = batch::connect(url).await?;
            batch::ensure_warehouse(&client).await
        })?;
        tracing::info!(url = %batch::redact(url), "warehouse ready: station_dim, station_hourly_facts, warehouse_loads");
    } else {
        tracing::info!(
            "no --postgres-url: the daily batch still runs, bounded, over yesterday's records, but loads no warehouse (its totals are logged and shown on the page)"
        );
    }

    // The API: local simulation, with the history since yesterday, or the real one.
    let now = now_ms();
    let (api_url, api_key, api_addr, simulation, history_records) = match &args.api_key {
        Some(key) => {
            tracing::info!(url = %args.api_url, contract = %args.contract, "polling the real JCDecaux API");
            (args.api_url.clone(), key.clone(), None, None, 0)
        }
        None => {
            let today = now.div_euclid(DAY_MS);
            let from = (today - 1) * DAY_MS - args.history_lookback_hours as i64 * HOUR_MS;
            let (sim, records) = if args.history_lookback_hours > 0 && topic_is_empty(&cluster)? {
                let (sim, records) =
                    simulation::history(args.seed, args.utc_offset_hours, from, now);
                produce(&cluster.servers, &records)?;
                tracing::info!(
                    records = records.len(),
                    since = %model::format_time(from),
                    "wrote the simulated history (what polling since then would have produced)"
                );
                (sim, records.len())
            } else {
                (
                    Simulation::new(args.seed, now).with_utc_offset_hours(args.utc_offset_hours),
                    0,
                )
            };
            let state = api::ApiState::new(sim, LOCAL_API_KEY);
            let sim = state.simulation();
            let listener = runtime
                .block_on(tokio::net::TcpListener::bind(args.api_listen))
                .with_context(|| format!("listening on {} (the local API)", args.api_listen))?;
            let addr = listener.local_addr()?;
            let router = api::router(state);
            runtime.spawn(async move {
                if let Err(e) = axum::serve(listener, router).await {
                    tracing::error!(error = %e, "the local API stopped");
                }
            });
            tracing::info!(%addr, contract = city::CONTRACT, "local JCDecaux-compatible API");
            (
                format!("http://{addr}/vls/v1/stations"),
                LOCAL_API_KEY.to_string(),
                Some(addr),
                Some(sim),
                records,
            )
        }
    };

    let source = HttpPollSource::new("jcdecaux", api_url.clone())
        .query("contract", args.contract.clone())
        .query("apiKey", api_key)
        .interval(Duration::from_secs(args.poll_interval_secs.max(1)))
        .key_with(|r| {
            Some(model::station_key(
                r.get("contract_name")?.as_str()?,
                r.get("number")?.as_i64()?,
            ))
        })
        .timestamp_at("/last_update")
        .dedup(true)
        .topic_name(STATIONS_TOPIC);
    let app = Arc::new(KafkaStreams::new(
        topology::streaming(&StreamingConfig {
            source: Some(source),
            idle_close: Duration::from_secs(args.idle_close_secs.max(1)),
        })?,
        streams_config(&cluster, APPLICATION_ID)
            .commit_interval(Duration::from_millis(500))
            .state_dir(state_dir.clone())
            .query_server(args.query_listen.as_str()),
    )?);
    app.start()?;
    let query_addr = app
        .query_server_addr()
        .context("the query server did not start")?;

    let batches: BatchLog = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let scheduler = {
        let (cluster, batches, stop) = (cluster.clone(), batches.clone(), stop.clone());
        let postgres_url = args.postgres_url.clone();
        let dir = state_dir.join("batch");
        std::thread::Builder::new()
            .name("daily-batch".into())
            .spawn(move || schedule(&cluster, postgres_url, &dir, batch_minute, &batches, &stop))?
    };

    let state = web::WebState::new(app.clone(), batches.clone(), args.postgres_url.is_some());
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
        bootstrap_servers: cluster.servers.clone(),
        simulation,
        history_records,
        batches,
        scheduler: Some(scheduler),
        stop,
        runtime: Some(runtime),
        _temp: Some(temp),
        _broker: cluster.embedded,
    })
}

/// The scheduler: yesterday at once (unless the warehouse has it), then each day at
/// `batch_minute` (UTC) the day before.
fn schedule(
    cluster: &Cluster,
    postgres_url: Option<String>,
    dir: &std::path::Path,
    batch_minute: i64,
    log: &BatchLog,
    stop: &AtomicBool,
) {
    let run_day = |day: i64| {
        let config = BatchConfig {
            day,
            lookback: BATCH_LOOKBACK,
            postgres_url: postgres_url.clone(),
        };
        let r = batch::run_until(cluster, &config, dir, Duration::from_secs(1800), stop);
        match &r {
            Ok(rep) => tracing::info!(
                day = %rep.day, facts = rep.facts, stations = rep.stations,
                bikes_taken = rep.bikes_taken, loaded = rep.loaded,
                "daily batch done ({} station-hours{})",
                rep.facts,
                if rep.loaded { " in the warehouse" } else { ", no warehouse" }
            ),
            Err(e) => tracing::error!(error = %format!("{e:#}"), "daily batch failed"),
        }
        log.lock()
            .expect("batch log")
            .push(r.map_err(|e| format!("{e:#}")));
    };
    let mut next_day = now_ms().div_euclid(DAY_MS) - 1;
    let already = postgres_url.as_ref().and_then(|url| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        rt.block_on(async {
            let c = batch::connect(url).await.ok()?;
            batch::loaded_days(&c).await.ok()
        })
    });
    if !already.is_some_and(|days| days.contains(&format_date(next_day))) {
        run_day(next_day);
    }
    next_day += 1;
    while !stop.load(Ordering::Relaxed) {
        // Day `next_day` is loaded at batch_minute of the day after.
        let due = (next_day + 1) * DAY_MS + batch_minute * 60_000;
        if now_ms() >= due {
            run_day(next_day);
            next_day += 1;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

// The example's README code blocks stay true to the flags.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
