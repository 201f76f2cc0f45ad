//! Processed rows into PostgreSQL (`bus_traffic_processed`) through streamkit's Postgres sink.
//!
//! A sub-topology of its own reads the rows back from `bus-traffic-processed` and hands them
//! to [`KStream::to_postgres`](streamkit::stream::KStream): each commit of its task upserts
//! the rows on their natural key (`vehicle_ref`, `recorded_at`) in one Postgres transaction
//! together with the input offsets they came from. The table therefore holds each row once,
//! after crashes and restarts too, and a row that reaches the topic twice (the cleaning
//! step is at-least-once) lands on the same key.

use anyhow::Context;
use streamkit::connect::postgres::{OFFSETS_TABLE, PostgresSink, STATE_TABLE, SqlValue};
use streamkit::prelude::*;
use tokio_postgres::{Client, NoTls};

use crate::clean::ProcessedRow;
use crate::topology::PROCESSED;

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

/// The table's columns after the key, in the order [`row_values`] gives them.
const COLUMNS: [(&str, &str); 28] = [
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
];

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

/// The values of a row for the columns after the key, in [`COLUMNS`] order.
fn row_values(row: &ProcessedRow) -> Vec<SqlValue> {
    vec![
        row.recorded_at_time.clone().into(),
        row.recorded_year.into(),
        row.recorded_month.into(),
        row.recorded_day.into(),
        row.recorded_hour.into(),
        row.recorded_minute.into(),
        row.recorded_second.into(),
        row.recorded_weekday.into(),
        row.direction.into(),
        row.line.clone().into(),
        row.origin.clone().into(),
        row.destination.clone().into(),
        row.origin_lat.into(),
        row.origin_lon.into(),
        row.destination_lat.into(),
        row.destination_lon.into(),
        row.latitude.into(),
        row.longitude.into(),
        row.next_stop.clone().into(),
        row.proximity.clone().into(),
        row.distance_from_stop.into(),
        row.expected_hour.into(),
        row.expected_minute.into(),
        row.expected_second.into(),
        row.scheduled_hour.into(),
        row.scheduled_minute.into(),
        row.scheduled_second.into(),
        row.delay_minutes.into(),
    ]
}

/// Adds a sub-topology that reads the processed rows back from their topic and writes them
/// to `target` through streamkit's Postgres sink, keyed by (`vehicle_ref`, `recorded_at`).
pub fn write_rows(builder: &StreamsBuilder, target: &PostgresTarget) {
    let names: Vec<&str> = COLUMNS.iter().map(|(n, _)| *n).collect();
    builder
        .stream(
            PROCESSED,
            Consumed::with(Serdes::string(), Serdes::json::<ProcessedRow>())
                .named("processed-for-postgres"),
        )
        .map(|_vehicle, row| ((row.vehicle.clone(), row.recorded_at), Some(row)))
        .named("postgres-key")
        .to_postgres(
            PostgresSink::new(target.url.clone(), target.table.clone())
                .key_columns(
                    ["vehicle_ref", "recorded_at"],
                    |(vehicle, at): &(String, i64)| vec![vehicle.clone().into(), (*at).into()],
                )
                .value_columns(names, row_values),
        );
}

/// Forgets the input offsets and store contents the sink kept in the database for
/// `application_id`: for a fresh (embedded) broker, whose topics start again at offset 0.
pub async fn forget_sink_progress(client: &Client, application_id: &str) -> anyhow::Result<()> {
    for table in [OFFSETS_TABLE, STATE_TABLE] {
        let exists: Option<String> = client
            .query_one("SELECT to_regclass($1)::text", &[&table])
            .await?
            .get(0);
        if exists.is_some() {
            client
                .execute(
                    &format!("DELETE FROM {table} WHERE application_id = $1"),
                    &[&application_id],
                )
                .await
                .with_context(|| format!("clearing {table}"))?;
        }
    }
    Ok(())
}
