//! Vehicle trips: vehicles and trips created on a web page drive a bundled road graph and
//! report every second to Kafka; a streamkit topology keeps the trip-state table and writes a
//! Parquet data lake — raw reports to landing, cleaned ones to staging, trip and vehicle
//! summaries to common — which a daily job consolidates day by day.
//!
//! A rebuild of a pipeline made of a FastAPI web app, Kafka, Spark Structured Streaming into an
//! Azure Data Lake (containers landing, staging, common) and an Airflow DAG, as one program:
//!
//! - [`roads`] and [`simulation`]: the road graph with fastest routes, and the fleet driving it;
//! - [`model`]: the reports and the trip state machine (speeds, stops, arrivals, ETA);
//! - [`topology`]: the streaming job — trip-state table, transitions, landing, staging, common;
//! - [`lake`]: the lake on `object_store` (local, Azure Blob, S3), Parquet, landing named by
//!   partition and offset range;
//! - [`promotion`]: the cleaning and the summaries the topology writes, and the daily bounded
//!   run consolidating a day of staging and common;
//! - [`web`]: the page at `http://127.0.0.1:8505` with a live map over a WebSocket.
//!
//! [`start`] runs all of it; `cargo run -p vehicle_trips` is [`start`] plus waiting for Ctrl-C.

pub mod lake;
pub mod model;
pub mod promotion;
pub mod rng;
pub mod roads;
pub mod simulation;
pub mod topology;
pub mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use streamkit::prelude::*;
use streamkit::testing::EmbeddedBroker;

use crate::lake::Lake;
use crate::model::{DAY_MS, format_date, now_ms, parse_date};
use crate::promotion::PromotionReport;
use crate::roads::Graph;
use crate::simulation::Fleet;
use crate::topology::{POSITIONS, TopologyConfig};

/// The streaming application's id.
pub const APPLICATION_ID: &str = "vehicle-trips";

/// Where in the lake the fleet keeps the number of its next trip, so that a restarted program
/// never reuses a trip id (reports of the earlier trip would be taken for late ones of the new).
pub const TRIP_COUNTER: &str = "_fleet/next_trip";

/// Command-line options.
#[derive(Clone, clap::Parser)]
#[command(
    name = "vehicle_trips",
    about = "Vehicle trips on streamkit: vehicles and trips from a web page, a trip-state table, a Parquet data lake (landing, staging, common) and a live map",
    long_about = "Starts an embedded broker (unless --bootstrap-servers is given), the simulated \
                  fleet (with --demo-vehicles driving on their own), the streaming topology \
                  (trip-state table, transitions, the lake's landing, staging and common), the daily promotion \
                  at --promote-at, and serves the page at --listen until Ctrl-C. With \
                  --promote-day it only promotes that day of --lake and exits."
)]
pub struct Args {
    /// Kafka brokers (`host:port,…`); without it an embedded broker is started in-process.
    #[arg(long)]
    pub bootstrap_servers: Option<String>,
    /// A librdkafka setting for every client, `KEY=VALUE` (repeatable), or for one kind with a
    /// `consumer.`, `producer.` or `admin.` prefix: e.g. `security.protocol=SASL_SSL`,
    /// `consumer.session.timeout.ms=10000`.
    #[arg(long = "kafka-option", value_parser = parse_option)]
    pub kafka_options: Vec<(String, String)>,
    /// The data lake: a directory or `file://` URL, `az://container/path` or
    /// `https://account.blob.core.windows.net/container/path` (Azure Blob Storage; credentials
    /// from `AZURE_STORAGE_*`), or `s3://bucket/path` (credentials from `AWS_*`). Default: a
    /// fresh temporary directory, removed at exit, as the embedded broker's data is.
    #[arg(long)]
    pub lake: Option<String>,
    /// An `object_store` setting for an Azure or S3 lake, `KEY=VALUE` (repeatable), e.g.
    /// `azure_storage_use_emulator=true` for Azurite or `aws_endpoint=http://…` for MinIO.
    #[arg(long = "lake-option", value_parser = parse_option)]
    pub lake_options: Vec<(String, String)>,
    /// Where the page is served.
    #[arg(long, default_value = "127.0.0.1:8505")]
    pub listen: SocketAddr,
    /// Where streamkit's query server answers (`/stores/trip-state/t1`, …).
    #[arg(long, default_value = "127.0.0.1:8506")]
    pub query_listen: String,
    /// Milliseconds of real time per simulated second (each vehicle reports once per
    /// simulated second; less than 1000 runs the city faster than the clock).
    #[arg(long, default_value_t = 1000)]
    pub tick_ms: u64,
    /// Vehicles that drive trips to random places on their own (0: only what the page asks).
    #[arg(long, default_value_t = 3)]
    pub demo_vehicles: usize,
    /// Seconds between two landings of the buffered reports into the lake.
    #[arg(long, default_value_t = 10)]
    pub land_every_secs: u64,
    /// When the daily promotion of the day before runs, `HH:MM` UTC.
    #[arg(long, default_value = "02:00")]
    pub promote_at: String,
    /// Promote this day (`YYYY-MM-DD`) of --lake (stage landing files without a staging file,
    /// consolidate the day's staging and common files) and exit.
    #[arg(long)]
    pub promote_day: Option<String>,
    /// Seed of the simulation.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// State directory (default: a fresh temporary directory, removed at exit).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
}

fn parse_option(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

impl std::fmt::Debug for Args {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Args")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("lake", &self.lake)
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

impl Args {
    /// Defaults, as with no flags.
    pub fn defaults() -> Self {
        <Args as clap::Parser>::parse_from(["vehicle_trips"])
    }

    fn promote_minute(&self) -> anyhow::Result<i64> {
        let (h, m) = self
            .promote_at
            .split_once(':')
            .and_then(|(h, m)| Some((h.parse::<i64>().ok()?, m.parse::<i64>().ok()?)))
            .filter(|(h, m)| (0..24).contains(h) && (0..60).contains(m))
            .with_context(|| format!("--promote-at {:?} is not HH:MM", self.promote_at))?;
        Ok(h * 60 + m)
    }
}

/// The promotions run so far, newest last.
pub type PromotionLog = Arc<Mutex<Vec<Result<PromotionReport, String>>>>;

/// Everything running.
pub struct Running {
    /// The streaming application.
    pub app: Arc<KafkaStreams>,
    /// Where the page is served.
    pub addr: SocketAddr,
    /// The query server's address.
    pub query_addr: SocketAddr,
    /// Bootstrap servers in use.
    pub bootstrap_servers: String,
    /// The lake.
    pub lake: Arc<Lake>,
    /// The fleet.
    pub fleet: Arc<Mutex<Fleet>>,
    /// Reports sent to Kafka so far.
    pub reports_sent: Arc<AtomicU64>,
    /// The promotions run.
    pub promotions: PromotionLog,
    fleet_thread: Option<std::thread::JoinHandle<()>>,
    fleet_stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    runtime: Option<tokio::runtime::Runtime>,
    _temp: Option<tempfile::TempDir>,
    // Dropped last: the application and clients close before the broker.
    _broker: Option<EmbeddedBroker>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("addr", &self.addr)
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("lake", &self.lake.url())
            .finish_non_exhaustive()
    }
}

impl Running {
    /// Polls `done` every 50 ms until it is true, the application fails, or `timeout`.
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
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the fleet: no more reports once this returns (every one sent is acknowledged),
    /// while the rest keeps running.
    pub fn stop_fleet(&mut self) {
        self.fleet_stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.fleet_thread.take() {
            let _ = h.join();
        }
    }

    /// Stops the fleet, the scheduler, the servers and the application (landing what waits).
    pub fn shutdown(mut self) -> anyhow::Result<()> {
        self.stop_fleet();
        self.stop.store(true, Ordering::Relaxed);
        for h in self.threads.drain(..) {
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

/// Promotes one day by hand (`--promote-day`).
pub fn run_promote_day(args: &Args, day: &str) -> anyhow::Result<PromotionReport> {
    let day = parse_date(day).with_context(|| format!("{day:?} is not YYYY-MM-DD"))?;
    let url = args
        .lake
        .as_deref()
        .context("--promote-day needs --lake (the default lake lives only as long as a run)")?;
    let lake = Lake::open_with(url, &args.lake_options)?;
    promotion::promote(&lake, day)
}

/// A client of `kind` (`producer`, `consumer`): `--kafka-option`s without a prefix and those
/// with its prefix, as streamkit's own clients take them.
fn client_config(servers: &str, options: &[(String, String)], kind: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", servers);
    for (k, v) in options {
        match k.split_once('.') {
            Some((prefix, key)) if prefix == kind => {
                c.set(key, v);
            }
            Some(("producer" | "consumer" | "admin", _)) => {}
            _ => {
                c.set(k, v);
            }
        }
    }
    c
}

/// Refuses a lake whose landing files hold offsets the topic does not have yet: it was
/// written from another cluster (or an earlier embedded broker), and its file names would
/// hide this cluster's records.
fn check_lake_matches_topic(
    lake: &Lake,
    servers: &str,
    options: &[(String, String)],
) -> anyhow::Result<()> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = client_config(servers, options, "consumer").create()?;
    for p in 0..topology::PARTITIONS {
        let landed = lake.landed_up_to(POSITIONS, p)?;
        if landed < 0 {
            continue;
        }
        let (_, high) = c.fetch_watermarks(POSITIONS, p, Duration::from_secs(30))?;
        if landed >= high {
            bail!(
                "the lake {} holds offsets up to {landed} of {POSITIONS} partition {p}, but the topic ends at {high}: it was filled from another cluster (an embedded broker starts empty each run); give a fresh --lake",
                lake.url()
            );
        }
    }
    Ok(())
}

/// Starts everything [`Args`] describes and returns once the page is being served.
pub fn start(args: &Args) -> anyhow::Result<Running> {
    let promote_minute = args.promote_minute()?;
    let temp = tempfile::Builder::new()
        .prefix("vehicle-trips-")
        .tempdir()
        .context("creating a temporary directory")?;
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| temp.path().join("state"));
    let (servers, broker) = match &args.bootstrap_servers {
        Some(s) => (s.clone(), None),
        None => {
            let b = EmbeddedBroker::start().context("starting the embedded broker")?;
            (b.bootstrap_servers().to_string(), Some(b))
        }
    };
    let config = |id: &str| {
        let mut c = StreamsConfig::new(id);
        for (k, v) in &args.kafka_options {
            c = c.set(k, v);
        }
        match &broker {
            Some(b) => c.embedded(b),
            None => c.bootstrap_servers(servers.as_str()),
        }
    };
    streamkit::runtime::ensure_topics(&config("vehicle-trips-topics"), &topology::TOPICS)
        .context("creating the topics")?;

    let lake = Arc::new(match &args.lake {
        Some(url) => {
            let lake = Lake::open_with(url, &args.lake_options)?;
            check_lake_matches_topic(&lake, &servers, &args.kafka_options)?;
            lake
        }
        None => Lake::open(temp.path().join("lake").to_str().context("temp path")?)?,
    });
    tracing::info!(lake = %lake.url(), "the data lake");

    let app = Arc::new(KafkaStreams::new(
        topology::topology(&TopologyConfig {
            lake: Some(lake.clone()),
            land_every: Duration::from_secs(args.land_every_secs.max(1)),
            land_max_rows: 10_000,
        })?,
        config(APPLICATION_ID)
            .commit_interval(Duration::from_millis(500))
            .state_dir(state_dir)
            .query_server(args.query_listen.as_str()),
    )?);
    app.start()?;
    let query_addr = app
        .query_server_addr()
        .context("the query server did not start")?;

    let graph = Arc::new(Graph::bundled());
    // Trip numbers go on after the last run's, kept in the lake beside the data they name.
    let next_trip = match lake.exists(TRIP_COUNTER)? {
        true => {
            let text = lake.get(TRIP_COUNTER)?;
            std::str::from_utf8(&text)
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
                .with_context(|| format!("{TRIP_COUNTER} in the lake holds no trip number"))?
        }
        false => 1,
    };
    let counter_lake = lake.clone();
    let fleet = Arc::new(Mutex::new(
        Fleet::new(graph.clone(), args.seed, now_ms()).with_trip_counter(
            next_trip,
            Box::new(move |n| {
                counter_lake
                    .put(TRIP_COUNTER, n.to_string().into())
                    .map_err(|e| format!("{e:#}"))
            }),
        ),
    ));
    {
        let mut f = fleet.lock().expect("fleet");
        for i in 0..args.demo_vehicles {
            let place = graph.places[(i * 5) % graph.places.len()].id;
            f.add_vehicle(&format!("Demo {}", i + 1), place)
                .map_err(anyhow::Error::msg)?;
        }
    }

    let stop = Arc::new(AtomicBool::new(false));
    let reports_sent = Arc::new(AtomicU64::new(0));
    let promotions: PromotionLog = Arc::default();
    let producer: BaseProducer = client_config(&servers, &args.kafka_options, "producer")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .context("creating the vehicles' producer")?;
    let mut threads = Vec::new();
    let fleet_stop = Arc::new(AtomicBool::new(false));
    let fleet_thread = {
        let (fleet, stop, sent) = (fleet.clone(), fleet_stop.clone(), reports_sent.clone());
        let (tick, demo, seed) = (
            Duration::from_millis(args.tick_ms.max(1)),
            args.demo_vehicles,
            args.seed,
        );
        std::thread::Builder::new()
            .name("fleet".into())
            .spawn(move || drive(&fleet, &producer, tick, demo, seed, &sent, &stop))?
    };
    {
        let (lake, log, stop) = (lake.clone(), promotions.clone(), stop.clone());
        threads.push(
            std::thread::Builder::new()
                .name("daily-promotion".into())
                .spawn(move || schedule(&lake, promote_minute, &log, &stop))?,
        );
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("vehicle-web")
        .build()
        .context("starting the runtime")?;
    let state = web::WebState {
        app: app.clone(),
        fleet: fleet.clone(),
        lake: lake.clone(),
        promotions: promotions.clone(),
        tick: Duration::from_millis(args.tick_ms.max(1)),
    };
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
        query_addr,
        bootstrap_servers: servers,
        lake,
        fleet,
        reports_sent,
        promotions,
        fleet_thread: Some(fleet_thread),
        fleet_stop,
        threads,
        stop,
        runtime: Some(runtime),
        _temp: Some(temp),
        _broker: broker,
    })
}

/// The fleet's clock: one simulated second per `tick`, every report sent to Kafka (key: the
/// trip, timestamp: the report's). Demo vehicles (the first `demo`) pick a new destination a
/// few seconds after arriving.
fn drive(
    fleet: &Mutex<Fleet>,
    producer: &BaseProducer,
    tick: Duration,
    demo: usize,
    seed: u64,
    sent: &AtomicU64,
    stop: &AtomicBool,
) {
    let mut rng = rng::Rng::new(seed ^ 0x5eed);
    let mut idle = vec![0u32; demo];
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let events = {
            let mut f = fleet.lock().expect("fleet");
            for (i, idle_s) in idle.iter_mut().enumerate() {
                let Some(v) = f.vehicles().get(i) else {
                    continue;
                };
                if v.trip.is_some() {
                    continue;
                }
                *idle_s += 1;
                if *idle_s >= 3 {
                    *idle_s = 0;
                    let (id, here) = (v.id.clone(), v.place);
                    let n = f.graph().places.len() as u64;
                    let mut to = rng.below(n) as usize;
                    if to == here {
                        to = (to + 1) % n as usize;
                    }
                    let to = f.graph().places[to].id;
                    if let Err(e) = f.start_trip(&id, None, to) {
                        tracing::warn!(error = %e, "a demo trip");
                    }
                }
            }
            f.tick()
        };
        for e in &events {
            let value = match serde_json::to_string(e) {
                Ok(v) => v,
                Err(err) => {
                    tracing::error!(error = %err, "encoding a report");
                    continue;
                }
            };
            let mut record = BaseRecord::to(POSITIONS)
                .key(&e.trip_id)
                .payload(&value)
                .timestamp(e.ts);
            loop {
                match producer.send(record) {
                    Ok(()) => {
                        sent.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    Err((err, r)) => {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        tracing::warn!(error = %err, "sending a report; retrying");
                        record = r;
                        producer.poll(Duration::from_millis(50));
                    }
                }
            }
        }
        producer.poll(Duration::ZERO);
        next += tick;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
    let _ = producer.flush(Duration::from_secs(10));
}

/// The daily promotion: each day at `minute` (UTC) the day before, unless the lake says it was
/// promoted already.
fn schedule(lake: &Lake, minute: i64, log: &PromotionLog, stop: &AtomicBool) {
    // Yesterday first: at once if today's time has passed (a catch-up), else at the time.
    let mut next_day = now_ms().div_euclid(DAY_MS) - 1;
    while !stop.load(Ordering::Relaxed) {
        let due = (next_day + 1) * DAY_MS + minute * 60_000;
        if now_ms() >= due {
            match promotion::promoted(lake, next_day) {
                Ok(Some(_)) => {}
                _ => {
                    let r = promotion::promote(lake, next_day);
                    match &r {
                        Ok(rep) => tracing::info!(
                            day = %rep.day, staged = rep.staged, trips = rep.trips,
                            "daily promotion done"
                        ),
                        Err(e) => {
                            tracing::error!(day = %format_date(next_day), error = %format!("{e:#}"), "daily promotion failed")
                        }
                    }
                    log.lock()
                        .expect("promotion log")
                        .push(r.map_err(|e| format!("{e:#}")));
                }
            }
            next_day += 1;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

// The example's README code blocks stay true to the flags.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
