//! Writing processed rows to PostgreSQL (`bus_traffic_processed`), idempotently.
//!
//! Each row is upserted on its natural key (`vehicle_ref`, `recorded_at`) before the
//! record counts as processed: the input offset that produced it is committed only after
//! the row is in the table, and a replay after a crash writes the same key again instead of
//! a duplicate.

use std::time::Duration;

use anyhow::Context;
use streamkit::prelude::*;
use tokio_postgres::{Client, NoTls, Statement};

use crate::clean::ProcessedRow;

/// Default table name, as in the original pipeline.
pub const TABLE: &str = "bus_traffic_processed";

/// Where rows go.
#[derive(Debug, Clone, PartialEq)]
pub struct PostgresTarget {
    /// A libpq-style URL, `postgres://user@host:port/database`.
    pub url: String,
    /// Table name (created when missing).
    pub table: String,
}

impl PostgresTarget {
    /// The default table at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        PostgresTarget {
            url: url.into(),
            table: TABLE.into(),
        }
    }
}

/// The table's columns after the key, in the order [`params`] gives them.
const COLUMNS: [(&str, &str); 30] = [
    ("recorded_at_time", "TEXT NOT NULL"),
    ("recorded_year", "INTEGER NOT NULL"),
    ("recorded_month", "INTEGER NOT NULL"),
    ("recorded_day", "INTEGER NOT NULL"),
    ("recorded_hour", "INTEGER NOT NULL"),
    ("recorded_minute", "INTEGER NOT NULL"),
    ("recorded_second", "INTEGER NOT NULL"),
    ("recorded_weekday", "INTEGER NOT NULL"),
    ("direction_ref", "INTEGER NOT NULL"),
    ("published_line_name", "TEXT NOT NULL"),
    ("origin_name", "TEXT NOT NULL"),
    ("destination_name", "TEXT NOT NULL"),
    ("origin_lat", "DOUBLE PRECISION NOT NULL"),
    ("origin_long", "DOUBLE PRECISION NOT NULL"),
    ("destination_lat", "DOUBLE PRECISION NOT NULL"),
    ("destination_long", "DOUBLE PRECISION NOT NULL"),
    ("vehicle_lat", "DOUBLE PRECISION NOT NULL"),
    ("vehicle_long", "DOUBLE PRECISION NOT NULL"),
    ("next_stop_point_name", "TEXT NOT NULL"),
    ("arrival_proximity_text", "TEXT NOT NULL"),
    ("distance_from_stop", "DOUBLE PRECISION NOT NULL"),
    ("expected_hour", "INTEGER NOT NULL"),
    ("expected_minute", "INTEGER NOT NULL"),
    ("expected_second", "INTEGER NOT NULL"),
    ("scheduled_hour", "INTEGER NOT NULL"),
    ("scheduled_minute", "INTEGER NOT NULL"),
    ("scheduled_second", "INTEGER NOT NULL"),
    ("delay", "DOUBLE PRECISION NOT NULL"),
    ("written_at", "TIMESTAMPTZ NOT NULL DEFAULT now()"),
    ("write_count", "INTEGER NOT NULL DEFAULT 1"),
];

/// Columns filled from a row (the last two are bookkeeping the database fills).
const ROW_COLUMNS: usize = 28;

/// Whether `name` can be used as a table name unquoted.
fn is_plain_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63
}

/// `CREATE TABLE IF NOT EXISTS` for `table`.
pub fn create_table_sql(table: &str) -> String {
    let columns: Vec<String> = COLUMNS
        .iter()
        .map(|(name, ty)| format!("    {name} {ty}"))
        .collect();
    format!(
        "CREATE TABLE IF NOT EXISTS {table} (\n    vehicle_ref TEXT NOT NULL,\n    recorded_at BIGINT NOT NULL,\n{},\n    PRIMARY KEY (vehicle_ref, recorded_at)\n)",
        columns.join(",\n")
    )
}

/// The upsert: a replayed row overwrites its earlier copy and counts the write.
fn upsert_sql(table: &str) -> String {
    let names: Vec<&str> = COLUMNS[..ROW_COLUMNS].iter().map(|(n, _)| *n).collect();
    let placeholders: Vec<String> = (1..=ROW_COLUMNS + 2).map(|i| format!("${i}")).collect();
    let updates: Vec<String> = names
        .iter()
        .map(|n| format!("{n} = EXCLUDED.{n}"))
        .collect();
    format!(
        "INSERT INTO {table} (vehicle_ref, recorded_at, {}) VALUES ({}) \
         ON CONFLICT (vehicle_ref, recorded_at) DO UPDATE SET {}, written_at = now(), \
         write_count = {table}.write_count + 1",
        names.join(", "),
        placeholders.join(", "),
        updates.join(", ")
    )
}

/// Connects and keeps the connection driven on `runtime`.
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

/// Creates the table when missing.
pub async fn ensure_table(client: &Client, table: &str) -> anyhow::Result<()> {
    if !is_plain_identifier(table) {
        anyhow::bail!(
            "table name {table:?} must be lowercase letters, digits and underscores (at most 63)"
        );
    }
    client
        .batch_execute(&create_table_sql(table))
        .await
        .with_context(|| format!("creating table {table}"))
}

fn params(row: &ProcessedRow) -> (Vec<i32>, Vec<f64>) {
    let ints = vec![
        row.recorded_year,
        row.recorded_month as i32,
        row.recorded_day as i32,
        row.recorded_hour as i32,
        row.recorded_minute as i32,
        row.recorded_second as i32,
        row.recorded_weekday as i32,
        row.direction as i32,
        row.expected_hour as i32,
        row.expected_minute as i32,
        row.expected_second as i32,
        row.scheduled_hour as i32,
        row.scheduled_minute as i32,
        row.scheduled_second as i32,
    ];
    let floats = vec![
        row.origin_lat,
        row.origin_lon,
        row.destination_lat,
        row.destination_lon,
        row.latitude,
        row.longitude,
        row.distance_from_stop,
        row.delay_minutes,
    ];
    (ints, floats)
}

/// Upserts one row.
pub async fn upsert(
    client: &Client,
    statement: &Statement,
    row: &ProcessedRow,
) -> anyhow::Result<()> {
    let (i, f) = params(row);
    client
        .execute(
            statement,
            &[
                &row.vehicle,
                &row.recorded_at,
                &row.recorded_at_time,
                &i[0],
                &i[1],
                &i[2],
                &i[3],
                &i[4],
                &i[5],
                &i[6],
                &i[7],
                &row.line,
                &row.origin,
                &row.destination,
                &f[0],
                &f[1],
                &f[2],
                &f[3],
                &f[4],
                &f[5],
                &row.next_stop,
                &row.proximity,
                &f[6],
                &i[8],
                &i[9],
                &i[10],
                &i[11],
                &i[12],
                &i[13],
                &f[7],
            ],
        )
        .await
        .context("upserting a processed row")?;
    Ok(())
}

/// A connection with its prepared upsert, on a runtime of its own (processors run on the
/// stream threads, outside any async runtime).
struct Writer {
    runtime: tokio::runtime::Runtime,
    client: Client,
    statement: Statement,
}

impl Writer {
    fn open(target: &PostgresTarget) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the PostgreSQL writer's runtime")?;
        let (client, statement) = runtime.block_on(async {
            let client = connect(&target.url).await?;
            ensure_table(&client, &target.table).await?;
            let statement = client
                .prepare(&upsert_sql(&target.table))
                .await
                .context("preparing the upsert")?;
            anyhow::Ok((client, statement))
        })?;
        Ok(Writer {
            runtime,
            client,
            statement,
        })
    }
}

/// How often a failed write is tried again before the application fails.
const ATTEMPTS: u32 = 5;

/// The processor writing rows: one upsert per row, before the row counts as processed.
struct PostgresWriter {
    target: PostgresTarget,
    writer: Option<Writer>,
}

impl PostgresWriter {
    fn write(&mut self, row: &ProcessedRow) -> anyhow::Result<()> {
        let mut last_error = None;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(100 << attempt));
            }
            if self.writer.as_ref().is_none_or(|w| w.client.is_closed()) {
                match Writer::open(&self.target) {
                    Ok(w) => self.writer = Some(w),
                    Err(e) => {
                        last_error = Some(e);
                        continue;
                    }
                }
            }
            let w = self.writer.as_ref().expect("opened");
            match w.runtime.block_on(upsert(&w.client, &w.statement, row)) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), attempt, "PostgreSQL write failed");
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.expect("at least one attempt"))
    }
}

impl Processor<String, ProcessedRow> for PostgresWriter {
    type KOut = String;
    type VOut = ProcessedRow;

    fn init(&mut self, _ctx: &mut ProcessorContext<'_, String, ProcessedRow>) -> Result<()> {
        self.writer = Some(
            Writer::open(&self.target).map_err(|e| streamkit::Error::custom(format!("{e:#}")))?,
        );
        Ok(())
    }

    fn process(
        &mut self,
        _ctx: &mut ProcessorContext<'_, String, ProcessedRow>,
        record: Record<String, ProcessedRow>,
    ) -> Result<()> {
        self.write(&record.value)
            .map_err(|e| streamkit::Error::custom(format!("writing to PostgreSQL: {e:#}")))
    }
}

/// Adds a node writing every row of `rows` to `target`.
pub fn write_rows(rows: &KStream<String, ProcessedRow>, target: &PostgresTarget) {
    let target = target.clone();
    rows.process(move || PostgresWriter {
        target: target.clone(),
        writer: None,
    })
    .named("postgres-sink");
}
