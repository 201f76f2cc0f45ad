//! Bus arrivals: the New York MTA bus feed, end to end on streamkit.
//!
//! A rebuild of a Kafka + Spark + PostgreSQL + scikit-learn + Streamlit pipeline as one
//! streamkit application:
//!
//! - [`feed`]: the 17-column feed format and a generator of realistic feeds;
//! - [`producer`]: replays any such CSV (the real MTA files too) into `bus-positions`;
//! - [`clean`] and [`topology`]: parse, clean and compute delays; dead letters; per-line
//!   statistics in hopping windows; the latest state of each vehicle; a training sample;
//! - [`postgres`]: processed rows into `bus_traffic_processed` through streamkit's
//!   exactly-once Postgres sink;
//! - [`model`]: a random forest of the delay, retrained in the background, against a
//!   per-line-mean baseline;
//! - [`web`]: the page at `http://127.0.0.1:8501`.
//!
//! [`start`] runs all of it; `cargo run --release -p bus_arrivals` is [`start`] plus waiting
//! for Ctrl-C.

pub mod clean;
pub mod feed;
pub mod model;
pub mod postgres;
pub mod producer;
pub mod topology;
pub mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use streamkit::prelude::*;
use streamkit::testing::EmbeddedBroker;

use crate::clean::ProcessedRow;
use crate::feed::FeedOptions;
use crate::model::{SharedModel, TrainOptions};
use crate::postgres::PostgresTarget;
use crate::producer::{ReplayOptions, ReplayStats, Throttle};
use crate::topology::{TRAINING_SAMPLE, TopologyConfig};

/// The topics the application reads and writes, with their partition counts.
const TOPICS: [(&str, i32); 4] = [
    (topology::POSITIONS, 2),
    (topology::DEAD_LETTERS, 1),
    (topology::PROCESSED, 2),
    (topology::LINE_DELAYS, 1),
];

/// Command-line options.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "bus_arrivals",
    about = "Bus arrivals on streamkit: replay a bus-position feed, clean it, store it, predict delays, serve a page",
    long_about = "Starts an embedded broker (unless --bootstrap-servers is given), generates a \
                  realistic MTA bus feed (unless --input names a CSV), replays it into \
                  `bus-positions`, runs the streamkit topology (cleaning, dead letters, per-line \
                  delay windows, latest vehicle states, PostgreSQL when --postgres-url is given), \
                  trains a random-forest delay model in the background and serves the page at \
                  --listen until Ctrl-C."
)]
pub struct Args {
    /// Kafka brokers (`host:port,…`); without it an embedded broker is started in-process.
    #[arg(long)]
    pub bootstrap_servers: Option<String>,
    /// Also write processed rows to PostgreSQL, e.g. `postgres://user:pw@localhost:5432/db`.
    /// The URL may hold a password: `--help` does not print the environment's value.
    #[arg(long, env = "BUS_ARRIVALS_POSTGRES_URL", hide_env_values = true)]
    pub postgres_url: Option<String>,
    /// Table for processed rows (created when missing).
    #[arg(long, default_value = postgres::TABLE)]
    pub postgres_table: String,
    /// Replay this CSV (the 17 MTA columns, e.g. a downloaded `mta_1706.csv`) instead of a
    /// generated feed.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Write a generated feed to this file and exit.
    #[arg(long, conflicts_with = "input")]
    pub generate: Option<PathBuf>,
    /// Rows of the generated feed.
    #[arg(long, default_value_t = 20_000)]
    pub rows: u64,
    /// Buses in the generated feed.
    #[arg(long, default_value_t = 60)]
    pub vehicles: u32,
    /// Seed of the generated feed.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Rows per second to replay; 0 = as fast as possible.
    #[arg(long, default_value_t = 400.0)]
    pub rate: f64,
    /// Stop replaying after this many rows.
    #[arg(long)]
    pub limit: Option<u64>,
    /// Where the page is served.
    #[arg(long, default_value = "127.0.0.1:8501")]
    pub listen: SocketAddr,
    /// Application id: the consumer group and the prefix of internal topics.
    #[arg(long, default_value = "bus-arrivals")]
    pub application_id: String,
    /// State directory (default: a fresh temporary directory, removed at exit).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Serve the application's stores, `/health` and `/metrics` over HTTP at this address
    /// (streamkit's query server), e.g. `0.0.0.0:8080`; off by default.
    #[arg(long)]
    pub query_server: Option<String>,
    /// `host:port` at which other instances of the application reach this one's query server,
    /// so that a query for a key another instance owns is forwarded there (default: the query
    /// server's bound address).
    #[arg(long, requires = "query_server")]
    pub application_server: Option<String>,
    /// Rows in the training sample before the first training.
    #[arg(long, default_value_t = 1_000)]
    pub min_train_rows: usize,
    /// Trees in the random forest.
    #[arg(long, default_value_t = 30)]
    pub trees: usize,
    /// Largest depth of a tree.
    #[arg(long, default_value_t = 10)]
    pub max_depth: u16,
    /// Seconds between trainings.
    #[arg(long, default_value_t = 30)]
    pub retrain_secs: u64,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl Args {
    /// Defaults, as with no flags.
    pub fn defaults() -> Self {
        <Args as clap::Parser>::parse_from(["bus_arrivals"])
    }
}

/// A running application: broker (when embedded), replay, topology, trainer and page.
pub struct Running {
    /// The streamkit application.
    pub app: Arc<KafkaStreams>,
    /// The model the trainer keeps up to date.
    pub model: SharedModel,
    /// Where the page is served.
    pub addr: SocketAddr,
    /// Bootstrap servers in use.
    pub bootstrap_servers: String,
    /// The feed being replayed.
    pub feed: PathBuf,
    /// What the generator wrote, when the feed was generated.
    pub truth: Option<Vec<feed::TruthRow>>,
    /// Rows replayed so far.
    pub replayed: Arc<AtomicU64>,
    replay: Option<std::thread::JoinHandle<anyhow::Result<ReplayStats>>>,
    trainer: Option<std::thread::JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    runtime: Option<tokio::runtime::Runtime>,
    server: Option<tokio::task::JoinHandle<()>>,
    _temp: Option<tempfile::TempDir>,
    // Dropped last: the application and clients close before the broker.
    _broker: Option<EmbeddedBroker>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("addr", &self.addr)
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("feed", &self.feed)
            .finish_non_exhaustive()
    }
}

impl Running {
    /// Whether the replay thread has finished (successfully or not).
    pub fn replay_finished(&self) -> bool {
        self.replay.as_ref().is_none_or(|h| h.is_finished())
    }

    /// Waits for the replay to end and returns what it sent.
    pub fn wait_for_replay(&mut self) -> anyhow::Result<ReplayStats> {
        match self.replay.take() {
            Some(h) => h
                .join()
                .map_err(|_| anyhow::anyhow!("the replay thread panicked"))?,
            None => bail!("the replay was already waited for"),
        }
    }

    /// Polls `done` every 100 ms until it is true, the application fails, or `timeout`.
    pub fn wait_until(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&Running) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.app.error() {
                bail!("the application failed: {e}");
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

    /// Stops the replay, the trainer and the page, and closes the application.
    pub fn shutdown(mut self) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.server.take() {
            h.abort();
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
        let replay = self.replay.take().map(|h| h.join());
        if let Some(h) = self.trainer.take() {
            let _ = h.join();
        }
        self.app.close().context("closing the application")?;
        if let Some(Ok(Err(e))) = replay {
            return Err(e.context("replaying the feed"));
        }
        Ok(())
    }
}

fn create_topics(embedded: Option<&EmbeddedBroker>, servers: &str) -> anyhow::Result<()> {
    // Only what is missing: a cluster without the admin API (such as `streamkit broker`, whose
    // topics are created with `--topic`) works when the topics exist.
    let config = StreamsConfig::new("topic-setup");
    let config = match embedded {
        Some(broker) => config.embedded(broker),
        None => config.bootstrap_servers(servers),
    };
    streamkit::runtime::ensure_topics(&config, &TOPICS).context("creating the topics")
}

/// Starts everything [`Args`] describes and returns once the page is being served.
pub fn start(args: &Args) -> anyhow::Result<Running> {
    let temp = tempfile::Builder::new()
        .prefix("bus-arrivals-")
        .tempdir()
        .context("creating a temporary directory")?;
    let embedded = match args.bootstrap_servers {
        Some(_) => None,
        None => Some(EmbeddedBroker::start().context("starting the embedded broker")?),
    };
    let servers = match (&args.bootstrap_servers, &embedded) {
        (Some(servers), _) => servers.clone(),
        (None, Some(broker)) => broker.bootstrap_servers().to_string(),
        (None, None) => unreachable!("no broker"),
    };
    create_topics(embedded.as_ref(), &servers)?;

    let (feed_path, truth) = match &args.input {
        Some(path) => (path.clone(), None),
        None => {
            let path = temp.path().join("feed.csv");
            let truth = feed::generate_file(&path, &feed_options(args))?;
            tracing::info!(rows = args.rows, path = %path.display(), "generated a feed");
            (path, Some(truth))
        }
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("bus-web")
        .build()
        .context("starting the web runtime")?;

    let postgres = match &args.postgres_url {
        Some(url) => {
            let target = PostgresTarget {
                url: url.clone(),
                table: args.postgres_table.clone(),
            };
            // Before the tasks start: a bad URL fails here, clearly. The sink needs the
            // table to exist. On a fresh embedded broker the topics start again at offset 0,
            // so input offsets the sink kept from an earlier run no longer mean anything.
            runtime.block_on(async {
                let client = postgres::connect(&target.url).await?;
                postgres::ensure_table(&client, &target.table).await?;
                if embedded.is_some() {
                    postgres::forget_sink_progress(&client, &args.application_id).await?;
                }
                anyhow::Ok(())
            })?;
            Some(target)
        }
        None => None,
    };

    let config = TopologyConfig {
        postgres,
        ..TopologyConfig::default()
    };
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| temp.path().join("state"));
    let streams_config = StreamsConfig::new(args.application_id.as_str())
        .commit_interval(Duration::from_millis(500))
        .state_dir(state_dir);
    let streams_config = match &embedded {
        Some(broker) => streams_config.embedded(broker),
        None => streams_config.bootstrap_servers(servers.as_str()),
    };
    let streams_config = match &args.query_server {
        Some(addr) => streams_config.query_server(addr.as_str()),
        None => streams_config,
    };
    let streams_config = match &args.application_server {
        Some(host_port) => streams_config.application_server(host_port.as_str()),
        None => streams_config,
    };
    let app = Arc::new(KafkaStreams::new(
        topology::topology(&config)?,
        streams_config,
    )?);
    app.start()?;

    let stop = Arc::new(AtomicBool::new(false));
    let replayed = Arc::new(AtomicU64::new(0));
    let replay = producer::spawn_replay(
        feed_path.clone(),
        servers.clone(),
        topology::POSITIONS.to_string(),
        ReplayOptions {
            rate: (args.rate > 0.0).then_some(args.rate),
            progress: !args.quiet,
            limit: args.limit,
            throttle: embedded.as_ref().map(|_| {
                let app = app.clone();
                Throttle {
                    max_ahead: EMBEDDED_MAX_AHEAD,
                    consumed: Arc::new(move || rows_consumed(&app)),
                }
            }),
        },
        stop.clone(),
        replayed.clone(),
    );

    let model = SharedModel::default();
    let trainer_app = app.clone();
    let trainer = model::spawn_trainer(
        TrainOptions {
            min_rows: args.min_train_rows,
            trees: args.trees,
            max_depth: args.max_depth,
            retrain_every: Duration::from_secs(args.retrain_secs),
            ..TrainOptions::default()
        },
        model.clone(),
        stop.clone(),
        move || training_rows(&trainer_app),
    );

    let state = web::WebState::new(app.clone(), model.clone(), replayed.clone());
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(args.listen))
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let router = web::router(state.clone());
    let server = runtime.spawn(async move {
        web::spawn_sampler(state);
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "the web server stopped");
        }
    });

    Ok(Running {
        app,
        model,
        addr,
        bootstrap_servers: servers,
        feed: feed_path,
        truth,
        replayed,
        replay: Some(replay),
        trainer: Some(trainer),
        stop,
        runtime: Some(runtime),
        server: Some(server),
        _temp: Some(temp),
        _broker: embedded,
    })
}

/// The generator's options from the command line.
pub fn feed_options(args: &Args) -> FeedOptions {
    FeedOptions {
        rows: args.rows,
        vehicles: args.vehicles,
        seed: args.seed,
        ..FeedOptions::default()
    }
}

/// How far the replay may run ahead of the application on the embedded broker, which keeps
/// only the last few MiB of each partition (see [`Throttle`]).
const EMBEDDED_MAX_AHEAD: u64 = 20_000;

/// Feed rows the cleaning step has consumed (cleaned, dropped or dead-lettered), over the
/// tasks of this instance.
pub fn rows_consumed(app: &KafkaStreams) -> u64 {
    app.store::<String, topology::CleanState>(topology::CLEAN_STATE)
        .and_then(|s| s.all())
        .map(|all| {
            all.iter()
                .map(|(_, s)| s.rows + s.malformed + s.missing_arrival)
                .sum()
        })
        .unwrap_or(0)
}

/// The rows of the training sample, from every task of this instance.
pub fn training_rows(app: &KafkaStreams) -> anyhow::Result<Vec<ProcessedRow>> {
    let store = app.store::<i64, ProcessedRow>(TRAINING_SAMPLE)?;
    Ok(store.all()?.into_iter().map(|(_, row)| row).collect())
}

// The example's README code blocks stay true to the flags.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
