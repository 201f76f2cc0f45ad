//! The daily batch (the original's Spark ETL at 05:00): the [`batch`](crate::topology::batch)
//! topology run **bounded** over one day's records, then stopped.
//!
//! streamkit applications run until closed, so the bound is set up here:
//!
//! 1. where to start: the first offset at or after `day − lookback` (`offsets_for_times`; the
//!    embedded broker cannot look offsets up by time, so there it is the beginning and the
//!    topology's time filter does the rest);
//! 2. where to stop: the first offset after `day end + grace`, or the end of the partition
//!    when nothing that late has arrived yet;
//! 3. the application, id `bike-stations-batch-YYYY-MM-DD`, starts there: with a warehouse
//!    the sink keeps its offsets in Postgres (`streamkit_offsets`), so the start offset is
//!    written there before the first run of the day; without one it is committed for the
//!    group;
//! 4. it is stopped once its committed position has reached the stop offset (and, with a
//!    warehouse, the dimension's sub-topology has read everything the first one wrote).
//!
//! Loading a day twice changes nothing: the second run finds its offsets at the end already.
//! `warehouse_loads` records each day loaded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use streamkit::prelude::*;
use streamkit::testing::EmbeddedBroker;
use streamkit::window::Windowed;
use tokio_postgres::{Client, NoTls};

use crate::model::{Availability, format_date};
use crate::topology::{self, BatchConfig, DIM_TABLE, FACTS_TABLE, GRACE, STATIONS_TOPIC};

/// The tables of the warehouse (created when missing).
pub const WAREHOUSE_DDL: &str = "
CREATE TABLE IF NOT EXISTS station_dim (
    contract text NOT NULL,
    station_number integer NOT NULL,
    name text NOT NULL,
    address text NOT NULL,
    lat double precision NOT NULL,
    lng double precision NOT NULL,
    banking boolean NOT NULL,
    bonus boolean NOT NULL,
    bike_stands integer NOT NULL,
    last_update_ms bigint NOT NULL,
    PRIMARY KEY (contract, station_number)
);
CREATE TABLE IF NOT EXISTS station_hourly_facts (
    contract text NOT NULL,
    station_number integer NOT NULL,
    hour_start_ms bigint NOT NULL,
    hour_start timestamptz GENERATED ALWAYS AS (to_timestamp(hour_start_ms / 1000.0)) STORED,
    samples integer NOT NULL,
    mean_bikes double precision NOT NULL,
    min_bikes integer NOT NULL,
    max_bikes integer NOT NULL,
    mean_stands double precision NOT NULL,
    bikes_sum bigint NOT NULL,
    stands_sum bigint NOT NULL,
    last_bikes integer NOT NULL,
    last_stands integer NOT NULL,
    empty_samples integer NOT NULL,
    full_samples integer NOT NULL,
    closed_samples integer NOT NULL,
    bikes_taken integer NOT NULL,
    bikes_returned integer NOT NULL,
    last_update_ms bigint NOT NULL,
    PRIMARY KEY (contract, station_number, hour_start_ms)
);
CREATE TABLE IF NOT EXISTS warehouse_loads (
    day date PRIMARY KEY,
    loaded_at timestamptz NOT NULL DEFAULT now(),
    facts integer NOT NULL,
    stations integer NOT NULL,
    records_read bigint NOT NULL
);
-- The sink's own tables, as it creates them: the batch seeds its start offset there.
CREATE TABLE IF NOT EXISTS streamkit_offsets (
    application_id text NOT NULL,
    topic text NOT NULL,
    partition integer NOT NULL,
    next_offset bigint NOT NULL,
    PRIMARY KEY (application_id, topic, partition)
);
CREATE TABLE IF NOT EXISTS streamkit_state (
    application_id text NOT NULL,
    store text NOT NULL,
    partition integer NOT NULL,
    key bytea NOT NULL,
    value bytea NOT NULL,
    PRIMARY KEY (application_id, store, partition, key)
);";

/// The cluster the batch reads.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// Bootstrap servers.
    pub servers: String,
    /// The embedded broker, when that is what runs.
    pub embedded: Option<EmbeddedBroker>,
}

impl Cluster {
    fn config(&self, app_id: &str) -> StreamsConfig {
        let c = StreamsConfig::new(app_id);
        match &self.embedded {
            Some(b) => c.embedded(b),
            None => c.bootstrap_servers(self.servers.as_str()),
        }
    }

    fn consumer(&self, group: &str) -> anyhow::Result<BaseConsumer> {
        Ok(ClientConfig::new()
            .set("bootstrap.servers", &self.servers)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()?)
    }
}

/// What one batch run did.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchReport {
    /// The day, `YYYY-MM-DD`.
    pub day: String,
    /// The application id the run used.
    pub application_id: String,
    /// Offsets read: from (inclusive) to (exclusive), of the one partition.
    pub offsets: (i64, i64),
    /// Station-hours of the day (rows of the fact table for it).
    pub facts: usize,
    /// Stations seen that day.
    pub stations: usize,
    /// Bikes taken over the day, all stations.
    pub bikes_taken: i64,
    /// Hourly availability per station, as the batch computed it (from its store).
    pub hours: Vec<(Windowed<String>, Availability)>,
    /// Whether it loaded a warehouse.
    pub loaded: bool,
}

/// The application id of the batch for `day`.
pub fn application_id(day: i64) -> String {
    format!("bike-stations-batch-{}", format_date(day))
}

/// Connects, driving the connection on the current tokio runtime.
pub async fn connect(url: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("connecting to PostgreSQL at {}", redact(url)))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::error!(error = %e, "PostgreSQL connection closed");
        }
    });
    Ok(client)
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let user_info = &url[scheme + 3..at];
            match user_info.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Creates the warehouse's tables when missing.
pub async fn ensure_warehouse(client: &Client) -> anyhow::Result<()> {
    client
        .batch_execute("SELECT pg_advisory_lock(7361)")
        .await?;
    let r = client.batch_execute(WAREHOUSE_DDL).await;
    client
        .batch_execute("SELECT pg_advisory_unlock(7361)")
        .await?;
    r.context("creating the warehouse tables")
}

/// The days already loaded, `YYYY-MM-DD`.
pub async fn loaded_days(client: &Client) -> anyhow::Result<Vec<String>> {
    Ok(client
        .query("SELECT day::text FROM warehouse_loads ORDER BY day", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

fn offset_for(consumer: &BaseConsumer, ts: i64, fallback: i64) -> anyhow::Result<i64> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(STATIONS_TOPIC, 0, Offset::Offset(ts))?;
    let found = consumer.offsets_for_times(tpl, Duration::from_secs(30))?;
    let e = found
        .find_partition(STATIONS_TOPIC, 0)
        .context("no answer for the stations partition")?;
    Ok(match e.offset() {
        Offset::Offset(o) => o,
        _ => fallback,
    })
}

/// Runs the batch for `config.day` to the end of that day's records and stops. The topics
/// must exist.
pub fn run(
    cluster: &Cluster,
    config: &BatchConfig,
    state_dir: &std::path::Path,
    timeout: Duration,
) -> anyhow::Result<BatchReport> {
    run_until(cluster, config, state_dir, timeout, &AtomicBool::new(false))
}

/// [`run`], given up (with an error, the application closed) once `stop` is set: what was
/// committed stays, and the next run of the day goes on from there.
pub fn run_until(
    cluster: &Cluster,
    config: &BatchConfig,
    state_dir: &std::path::Path,
    timeout: Duration,
    stop_flag: &AtomicBool,
) -> anyhow::Result<BatchReport> {
    let app_id = application_id(config.day);
    let day = format_date(config.day);
    let (_, day_end) = config.day_range();
    // The topics exist: the caller created them (on the embedded broker a second
    // `ensure_topics` fails, as it cannot tell which exist).
    let consumer = cluster.consumer(&app_id)?;
    let (low, high) = consumer.fetch_watermarks(STATIONS_TOPIC, 0, Duration::from_secs(30))?;
    let (start, stop) = if cluster.embedded.is_some() {
        (low, high)
    } else {
        let start = offset_for(&consumer, config.read_from(), high)?;
        let stop = offset_for(&consumer, day_end + GRACE.as_millis() as i64, high)?;
        (start, stop)
    };
    tracing::info!(%day, start, stop, "daily batch: reading offsets {start}..{stop} of {STATIONS_TOPIC}");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let pg = match &config.postgres_url {
        Some(url) => Some(rt.block_on(async {
            let client = connect(url).await?;
            ensure_warehouse(&client).await?;
            client
                .execute(
                    "INSERT INTO streamkit_offsets (application_id, topic, partition, next_offset) \
                     VALUES ($1, $2, 0, $3) ON CONFLICT DO NOTHING",
                    &[&app_id, &STATIONS_TOPIC, &start],
                )
                .await?;
            anyhow::Ok(client)
        })?),
        None => {
            let committed = consumer.committed(Duration::from_secs(30))?;
            let has = committed
                .find_partition(STATIONS_TOPIC, 0)
                .is_some_and(|e| matches!(e.offset(), Offset::Offset(_)));
            if !has {
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition_offset(STATIONS_TOPIC, 0, Offset::Offset(start))?;
                consumer.commit(&tpl, rdkafka::consumer::CommitMode::Sync)?;
            }
            None
        }
    };

    let app = KafkaStreams::new(
        topology::batch(config)?,
        cluster
            .config(&app_id)
            .commit_interval(Duration::from_millis(300))
            .state_dir(state_dir.join(&app_id)),
    )?;
    app.start()?;
    let deadline = Instant::now() + timeout;
    let done = loop {
        if let Some(e) = app.error() {
            break Err(anyhow::anyhow!("the batch application failed: {e}"));
        }
        let reached = match &pg {
            Some(client) => rt.block_on(caught_up_postgres(client, &consumer, &app_id, stop)),
            None => caught_up_group(&consumer, stop),
        };
        match reached {
            Ok(true) => break Ok(()),
            Ok(false) => {}
            Err(e) => break Err(e.context("reading the batch's progress")),
        }
        if stop_flag.load(Ordering::Relaxed) {
            break Err(anyhow::anyhow!("the batch for {day} was stopped"));
        }
        if Instant::now() >= deadline {
            break Err(anyhow::anyhow!(
                "the batch for {day} did not finish in {timeout:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // The hours as the batch's store holds them, once its task is assigned (a second run of
    // a day already loaded is done before that: its store is loaded from Postgres).
    let hours = loop {
        match (&done, read_hours(&app, config)) {
            (Err(_), _) => break Ok(Vec::new()),
            (Ok(()), Ok(h)) => break Ok(h),
            (Ok(()), Err(e)) if Instant::now() >= deadline || app.error().is_some() => {
                break Err(e);
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    let closed = app.close();
    done?;
    closed.context("closing the batch application")?;
    let hours = hours?;

    let mut report = BatchReport {
        day: day.clone(),
        application_id: app_id,
        offsets: (start, stop),
        facts: hours.len(),
        stations: hours
            .iter()
            .map(|(w, _)| w.key.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        bikes_taken: hours.iter().map(|(_, a)| a.taken).sum(),
        hours,
        loaded: pg.is_some(),
    };
    if let Some(client) = &pg {
        let (facts, stations) = rt.block_on(async {
            let (from, to) = config.day_range();
            let facts: i64 = client
                .query_one(
                    &format!(
                        "SELECT count(*) FROM {FACTS_TABLE} WHERE hour_start_ms >= $1 AND hour_start_ms < $2"
                    ),
                    &[&from, &to],
                )
                .await?
                .get(0);
            let stations: i64 = client
                .query_one(
                    &format!(
                        "SELECT count(*) FROM {DIM_TABLE} WHERE last_update_ms >= $1"
                    ),
                    &[&from],
                )
                .await?
                .get(0);
            client
                .execute(
                    "INSERT INTO warehouse_loads (day, facts, stations, records_read) \
                     VALUES ($1::text::date, $2, $3, $4) ON CONFLICT (day) DO UPDATE SET \
                     loaded_at = now(), facts = EXCLUDED.facts, stations = EXCLUDED.stations, \
                     records_read = EXCLUDED.records_read",
                    &[&day, &(facts as i32), &(stations as i32), &(stop - start)],
                )
                .await?;
            anyhow::Ok((facts, stations))
        })?;
        report.facts = facts as usize;
        report.stations = report.stations.max(stations as usize);
    }
    Ok(report)
}

/// With a warehouse: the sink's offsets in Postgres have reached `stop` for the stations
/// topic, and the end of the internal topic the dimension's sub-topology reads.
async fn caught_up_postgres(
    client: &Client,
    consumer: &BaseConsumer,
    app_id: &str,
    stop: i64,
) -> anyhow::Result<bool> {
    let rows = client
        .query(
            "SELECT topic, partition, next_offset FROM streamkit_offsets WHERE application_id = $1",
            &[&app_id],
        )
        .await?;
    let offsets: HashMap<(String, i32), i64> = rows
        .iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect();
    let source = offsets
        .get(&(STATIONS_TOPIC.to_string(), 0))
        .copied()
        .unwrap_or(-1);
    if source < stop {
        return Ok(false);
    }
    // The dimension's sub-topology reads what the first one wrote: all of it.
    let dim = dim_topic(app_id);
    let Ok((_, high)) = consumer.fetch_watermarks(&dim, 0, Duration::from_secs(30)) else {
        return Ok(false);
    };
    let next = offsets.get(&(dim, 0)).copied().unwrap_or(0);
    Ok(next >= high)
}

/// The internal topic the dimension's sub-topology reads.
pub fn dim_topic(app_id: &str) -> String {
    format!("{app_id}-station-dim-repartition")
}

/// Without a warehouse: the group's committed offset has reached `stop`.
fn caught_up_group(consumer: &BaseConsumer, stop: i64) -> anyhow::Result<bool> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(STATIONS_TOPIC, 0);
    let committed = consumer.committed_offsets(tpl, Duration::from_secs(30))?;
    Ok(
        match committed
            .find_partition(STATIONS_TOPIC, 0)
            .map(|e| e.offset())
        {
            Some(Offset::Offset(o)) => o >= stop,
            _ => false,
        },
    )
}

fn read_hours(
    app: &KafkaStreams,
    config: &BatchConfig,
) -> anyhow::Result<Vec<(Windowed<String>, Availability)>> {
    let (from, to) = config.day_range();
    let store = app.window_store::<String, Availability>(topology::STATION_HOURLY)?;
    let mut hours: Vec<_> = store
        .all()?
        .into_iter()
        .filter(|(_, start, _)| (from..to).contains(start))
        .map(|(key, start, a)| {
            (
                Windowed {
                    key,
                    window: streamkit::window::Window::new(start, start + crate::model::HOUR_MS),
                },
                a,
            )
        })
        .collect();
    hours.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(hours)
}

/// Fails unless `day` is a `YYYY-MM-DD` date.
pub fn parse_day(day: &str) -> anyhow::Result<i64> {
    match crate::model::parse_date(day) {
        Some(d) => Ok(d),
        None => bail!("{day:?} is not a YYYY-MM-DD date"),
    }
}
