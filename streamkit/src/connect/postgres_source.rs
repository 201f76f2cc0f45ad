//! The Postgres source: rows of PostgreSQL tables (or of a query) produced to Kafka topics, as
//! Kafka Connect's JDBC source connector does.
//!
//! Every [`poll_interval`](PostgresSource::poll_interval) the source reads, per table, the rows
//! it has not produced yet, in batches of [`batch_rows`](PostgresSource::batch_rows), and
//! produces each row as one record to `<topic prefix><table>` (a query's rows go to the prefix
//! itself). How it finds new rows is its [`Mode`], the JDBC connector's modes:
//!
//! | mode | reads | remembers |
//! |---|---|---|
//! | [`Bulk`](Mode::Bulk) | the whole table, every poll | nothing |
//! | [`Incrementing`](Mode::Incrementing) | rows whose column (an integer that only grows, e.g. a serial id) is above the last one produced: new rows | the largest id |
//! | [`Timestamp`](Mode::Timestamp) | rows whose timestamp column is after the last one produced: new and updated rows | the latest timestamp |
//! | [`TimestampIncrementing`](Mode::TimestampIncrementing) | as `Timestamp`, with the id breaking ties between rows of the same timestamp | both |
//!
//! The timestamp modes read only rows whose timestamp is older than the database's clock minus
//! [`timestamp_delay`](PostgresSource::timestamp_delay), so a transaction still open with an
//! earlier timestamp is not overtaken (as `timestamp.delay.interval.ms`).
//!
//! **Position.** What a table's source has produced is kept in a compacted topic
//! (`<name>-postgres-source-offsets`, one record per table, keyed `{"table": …}` or
//! `{"query": …}`, as Kafka Connect keeps source offsets), written after the batch's records
//! are acknowledged: a restarted source neither re-sends nor skips rows (a crash between the
//! two re-sends that batch: at least once).
//!
//! **Rows.** A row becomes a JSON object of its columns, in column order (`timestamp` and
//! `timestamptz` as epoch milliseconds and `date` as days since the epoch, as Kafka Connect's
//! converters write them; other types as PostgreSQL's `to_jsonb` gives them), or with
//! [`avro`](PostgresSource::avro) an Avro record in the Confluent wire format whose schema is
//! derived from the columns (every field nullable; `numeric` as `double`, types without an
//! Avro counterpart as their text) and registered as `<topic>-value`. A
//! [`key_column`](PostgresSource::key_column) keys each record with that column's value as
//! text; without one records have no key. The record timestamp is the row's timestamp in the
//! timestamp modes, else the time of the poll.
//!
//! A lost connection is retried with backoff; a table that does not exist (or was dropped), a
//! missing column or a query PostgreSQL rejects stops the source with the database's error.
//!
//! ```no_run
//! use std::time::Duration;
//! use streamkit::connect::postgres_source::PostgresSource;
//! use streamkit::prelude::*;
//!
//! # async fn run() -> streamkit::Result<()> {
//! let config = StreamsConfig::new("cta").bootstrap_servers("localhost:9092");
//! PostgresSource::new("stations", "postgres://cta_admin:chicago@localhost/cta")
//!     .table("stations")
//!     .incrementing("stop_id")
//!     .topic_prefix("org.chicago.cta.")
//!     .poll_interval(Duration::from_secs(60))
//!     .run(&config, tokio::signal::ctrl_c())
//!     .await
//! # }
//! ```

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apache_avro::Schema;
use apache_avro::types::Value as AvroValue;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls};

use crate::config::StreamsConfig;
use crate::connect::state_topic::StateTopic;
use crate::error::{Error, Result};
use crate::runtime::admin;
use crate::serde::Serde;
use crate::serde::avro::{AvroGeneric, RegistryClient};

/// How long a produced record may wait for its acknowledgement.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);
/// `jsonb_build_array` takes at most 100 arguments; wider rows are built in slices.
const COLUMNS_PER_CALL: usize = 90;

/// How the source finds the rows it has not produced yet (the JDBC connector's `mode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Every row, every poll.
    Bulk,
    /// Rows whose integer column is above the largest produced so far (new rows).
    Incrementing(String),
    /// Rows whose timestamp column is after the latest produced so far (new and updated rows).
    Timestamp(String),
    /// As `Timestamp`, ordered and resumed by (timestamp, id): rows sharing a timestamp are
    /// neither skipped nor repeated.
    TimestampIncrementing {
        /// The `timestamp`/`timestamptz` column.
        timestamp: String,
        /// The integer column that breaks ties.
        incrementing: String,
    },
}

/// What the source reads: tables, or the rows of one query.
#[derive(Debug, Clone)]
enum Input {
    Tables(Vec<String>),
    Query(String),
}

/// Polls PostgreSQL tables into topics. See the [module docs](self).
#[derive(Clone)]
pub struct PostgresSource {
    name: String,
    url: String,
    input: Input,
    mode: Mode,
    topic_prefix: String,
    poll_interval: Duration,
    batch_rows: usize,
    timestamp_delay: Duration,
    key_column: Option<String>,
    avro: Option<RegistryClient>,
    max_backoff: Duration,
}

impl std::fmt::Debug for PostgresSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the URL: it may hold the password.
        f.debug_struct("PostgresSource")
            .field("name", &self.name)
            .field("input", &self.input)
            .field("mode", &self.mode)
            .field("topic_prefix", &self.topic_prefix)
            .finish_non_exhaustive()
    }
}

impl PostgresSource {
    /// A source named `name` (its offsets topic's prefix and its log lines) reading the
    /// database at `url` (`postgres://user:password@host:port/db` or `host=… user=…`). Name
    /// the tables with [`table`](Self::table) or give a [`query`](Self::query).
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> Self {
        PostgresSource {
            name: name.into(),
            url: url.into(),
            input: Input::Tables(Vec::new()),
            mode: Mode::Bulk,
            topic_prefix: String::new(),
            poll_interval: Duration::from_secs(5),
            batch_rows: 100,
            timestamp_delay: Duration::ZERO,
            key_column: None,
            avro: None,
            max_backoff: Duration::from_secs(60),
        }
    }

    /// Reads `table` (`name` or `schema.name`); repeatable, one topic per table (the JDBC
    /// connector's `table.whitelist`).
    pub fn table(mut self, table: impl Into<String>) -> Self {
        match &mut self.input {
            Input::Tables(t) => t.push(table.into()),
            Input::Query(_) => self.input = Input::Tables(vec![table.into()]),
        }
        self
    }

    /// Reads the rows of `sql` instead of tables (the JDBC connector's `query`), into the topic
    /// named by the prefix alone. The mode's columns must be columns of its result.
    pub fn query(mut self, sql: impl Into<String>) -> Self {
        self.input = Input::Query(sql.into());
        self
    }

    /// How new rows are found. Default = [`Mode::Bulk`].
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// [`Mode::Incrementing`] on `column`.
    pub fn incrementing(self, column: impl Into<String>) -> Self {
        self.mode(Mode::Incrementing(column.into()))
    }

    /// [`Mode::Timestamp`] on `column`.
    pub fn timestamp(self, column: impl Into<String>) -> Self {
        self.mode(Mode::Timestamp(column.into()))
    }

    /// [`Mode::TimestampIncrementing`] on the two columns.
    pub fn timestamp_incrementing(
        self,
        timestamp: impl Into<String>,
        incrementing: impl Into<String>,
    ) -> Self {
        self.mode(Mode::TimestampIncrementing {
            timestamp: timestamp.into(),
            incrementing: incrementing.into(),
        })
    }

    /// Prepended to each table's name to name its topic; a query's topic is the prefix.
    /// Default = empty.
    pub fn topic_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.topic_prefix = prefix.into();
        self
    }

    /// Time between the starts of two polls. Default = 5 s.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Rows read per query (a poll reads batches until it has every new row). Default = 100.
    pub fn batch_rows(mut self, rows: usize) -> Self {
        self.batch_rows = rows.max(1);
        self
    }

    /// How far behind the database's clock the timestamp modes stay. Default = 0.
    pub fn timestamp_delay(mut self, delay: Duration) -> Self {
        self.timestamp_delay = delay;
        self
    }

    /// Keys each record with this column's value as text. Default = no key.
    pub fn key_column(mut self, column: impl Into<String>) -> Self {
        self.key_column = Some(column.into());
        self
    }

    /// Writes rows as Avro with schemas registered in `registry`. Default = JSON.
    pub fn avro(mut self, registry: &RegistryClient) -> Self {
        self.avro = Some(registry.clone());
        self
    }

    /// The topics the source writes: one per table, or the prefix for a query.
    pub fn topics(&self) -> Vec<String> {
        match &self.input {
            Input::Tables(tables) => tables
                .iter()
                .map(|t| format!("{}{}", self.topic_prefix, table_name(t)))
                .collect(),
            Input::Query(_) => vec![self.topic_prefix.clone()],
        }
    }

    /// The compacted topic the source keeps its position in.
    pub fn offsets_topic(&self) -> String {
        format!("{}-postgres-source-offsets", self.name)
    }

    fn check(&self) -> Result<()> {
        let bad = |why: String| {
            Err(Error::Config(format!(
                "postgres source {}: {why}",
                self.name
            )))
        };
        match &self.input {
            Input::Tables(t) if t.is_empty() => return bad("no table and no query".into()),
            Input::Query(_) if self.topic_prefix.is_empty() => {
                return bad("a query needs a topic prefix (its topic)".into());
            }
            _ => {}
        }
        if self.topics().iter().any(|t| t.is_empty()) {
            return bad("empty topic name".into());
        }
        Ok(())
    }

    /// Polls until `shutdown` completes, producing to the cluster (or embedded broker) `config`
    /// names. Returns an error for what polling again cannot fix: a missing table or column, a
    /// query the database rejects, an unreadable offsets topic.
    pub async fn run(
        self,
        config: &StreamsConfig,
        shutdown: impl Future<Output = impl Sized>,
    ) -> Result<()> {
        self.check()?;
        {
            // Missing topics get the configured partition count (as Kafka Connect's
            // `topic.creation.default.partitions`), not whatever auto-creation gives.
            let (config, topics) = (config.clone(), self.topics());
            tokio::task::spawn_blocking(move || {
                let existing = admin::topic_partitions(&config)?;
                let missing: Vec<_> = topics
                    .into_iter()
                    .filter(|t| !existing.contains_key(t))
                    .map(|t| (t, config.default_partitions, Vec::new()))
                    .collect();
                admin::create_topics(&config, &missing)
            })
            .await
            .map_err(|e| Error::Internal(format!("postgres source topics: {e}")))??;
        }
        let (offsets_topic, records) = {
            let (config, topic) = (config.clone(), self.offsets_topic());
            tokio::task::spawn_blocking(move || {
                StateTopic::open(&config, &topic, "postgres-source")
            })
            .await
            .map_err(|e| Error::Internal(format!("postgres source offsets: {e}")))??
        };
        let mut positions = std::collections::HashMap::new();
        for (key, value) in records {
            match value {
                Some(v) => positions.insert(key, Position::parse(&v)),
                None => positions.remove(&key),
            };
        }
        let producer: FutureProducer = admin::base_client_config(config, "producer")?
            .set(
                "client.id",
                format!("{}-postgres-source-producer", self.name),
            )
            .set("enable.idempotence", "true")
            .create()?;
        let inputs: Vec<(Vec<u8>, String, String)> = match &self.input {
            Input::Tables(tables) => tables
                .iter()
                .zip(self.topics())
                .map(|(t, topic)| {
                    let key = serde_json::json!({ "table": t }).to_string().into_bytes();
                    (key, quote_table(t), topic)
                })
                .collect(),
            Input::Query(q) => vec![(
                serde_json::json!({ "query": "query" })
                    .to_string()
                    .into_bytes(),
                format!("({q})"),
                self.topic_prefix.clone(),
            )],
        };
        let mut poller = Poller {
            source: &self,
            producer,
            offsets_topic,
            client: None,
            serdes: std::collections::HashMap::new(),
        };

        tokio::pin!(shutdown);
        let mut wait = Duration::ZERO;
        let mut failures = 0u32;
        loop {
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
            let started = tokio::time::Instant::now();
            let mut outcome = Ok(());
            for (key, from, topic) in &inputs {
                let position = positions.entry(key.clone()).or_default();
                outcome = poller.poll_table(key, from, topic, position).await;
                if outcome.is_err() {
                    break;
                }
            }
            wait = match outcome {
                Ok(()) => {
                    failures = 0;
                    self.poll_interval.saturating_sub(started.elapsed())
                }
                Err(e) if e.is_retriable() => {
                    failures += 1;
                    poller.client = None;
                    let backoff = Duration::from_millis(500)
                        .saturating_mul(1 << failures.min(16))
                        .min(self.max_backoff);
                    tracing::warn!(source = %self.name, error = %e, retry_in = ?backoff, "postgres source poll failed");
                    backoff
                }
                Err(e) => {
                    tracing::error!(source = %self.name, error = %e, "postgres source stops");
                    return Err(e);
                }
            };
        }
    }
}

/// Where a table's reading stands.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Position {
    /// The largest incrementing value produced.
    incrementing: Option<i64>,
    /// The latest timestamp produced, in microseconds since the epoch.
    timestamp_us: Option<i64>,
}

impl Position {
    fn parse(bytes: &[u8]) -> Position {
        let v: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
        Position {
            incrementing: v.get("incrementing").and_then(Value::as_i64),
            timestamp_us: v.get("timestamp_us").and_then(Value::as_i64),
        }
    }

    fn to_bytes(self) -> Vec<u8> {
        serde_json::json!({
            "incrementing": self.incrementing,
            "timestamp_us": self.timestamp_us,
        })
        .to_string()
        .into_bytes()
    }
}

/// One column of the rows read, and how it is selected.
struct Column {
    name: String,
    ty: Type,
}

impl Column {
    /// The expression giving the column's value for `jsonb_build_array`.
    fn select(&self, avro: bool) -> String {
        let c = format!("src.{}", quote_ident(&self.name));
        match self.ty {
            Type::TIMESTAMP | Type::TIMESTAMPTZ => {
                format!("(extract(epoch from {c}) * 1000)::bigint")
            }
            Type::DATE => format!("({c} - DATE '1970-01-01')"),
            _ if !avro => c,
            Type::BOOL | Type::INT2 | Type::INT4 | Type::INT8 | Type::FLOAT4 | Type::FLOAT8 => c,
            Type::NUMERIC => format!("{c}::float8"),
            _ => format!("{c}::text"),
        }
    }

    /// The column's Avro type (without the null branch).
    fn avro_type(&self) -> Value {
        match self.ty {
            Type::BOOL => "boolean".into(),
            Type::INT2 | Type::INT4 => "int".into(),
            Type::INT8 => "long".into(),
            Type::FLOAT4 => "float".into(),
            Type::FLOAT8 | Type::NUMERIC => "double".into(),
            Type::TIMESTAMP | Type::TIMESTAMPTZ => {
                serde_json::json!({"type": "long", "logicalType": "timestamp-millis"})
            }
            Type::DATE => serde_json::json!({"type": "int", "logicalType": "date"}),
            _ => "string".into(),
        }
    }

    /// The column's value (from the JSON array PostgreSQL built) as Avro.
    fn avro_value(&self, v: &Value) -> std::result::Result<AvroValue, String> {
        if v.is_null() {
            return Ok(AvroValue::Union(0, Box::new(AvroValue::Null)));
        }
        let bad = || format!("column {}: unexpected value {v}", self.name);
        let inner = match self.ty {
            Type::BOOL => AvroValue::Boolean(v.as_bool().ok_or_else(bad)?),
            Type::INT2 | Type::INT4 => AvroValue::Int(
                v.as_i64()
                    .and_then(|i| i32::try_from(i).ok())
                    .ok_or_else(bad)?,
            ),
            Type::INT8 => AvroValue::Long(v.as_i64().ok_or_else(bad)?),
            Type::FLOAT4 => AvroValue::Float(v.as_f64().ok_or_else(bad)? as f32),
            Type::FLOAT8 | Type::NUMERIC => AvroValue::Double(v.as_f64().ok_or_else(bad)?),
            Type::TIMESTAMP | Type::TIMESTAMPTZ => {
                AvroValue::TimestampMillis(v.as_i64().ok_or_else(bad)?)
            }
            Type::DATE => AvroValue::Date(
                v.as_i64()
                    .and_then(|i| i32::try_from(i).ok())
                    .ok_or_else(bad)?,
            ),
            _ => AvroValue::String(match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
        };
        Ok(AvroValue::Union(1, Box::new(inner)))
    }
}

/// A row read: its columns' values, in column order.
struct Row {
    values: Vec<Value>,
    incrementing: Option<i64>,
    timestamp_us: Option<i64>,
}

struct Poller<'a> {
    source: &'a PostgresSource,
    producer: FutureProducer,
    offsets_topic: StateTopic,
    client: Option<Client>,
    /// Avro serdes by topic (their schema follows the table's columns).
    serdes: std::collections::HashMap<String, (String, Arc<AvroGeneric>)>,
}

impl Poller<'_> {
    fn error(&self, e: tokio_postgres::Error) -> Error {
        // A lost connection (no database error attached) is worth retrying; an error the
        // database answered with (no such table, bad query) is not.
        let retriable = e.as_db_error().is_none()
            || e.code().is_some_and(|c| {
                c.code().starts_with("08") || c.code().starts_with("57P") || c.code() == "40001"
            });
        let reason = match e.as_db_error() {
            Some(db) => {
                let mut r = format!("{} ({})", db.message(), db.code().code());
                if let Some(d) = db.detail() {
                    r.push_str(&format!(": {d}"));
                }
                r
            }
            None => e.to_string(),
        };
        Error::Connector {
            connector: format!("postgres source {}", self.source.name),
            reason,
            retriable,
        }
    }

    async fn client(&mut self) -> Result<&Client> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            let (client, connection) = tokio_postgres::connect(&self.source.url, NoTls)
                .await
                .map_err(|e| self.error(e))?;
            let name = self.source.name.clone();
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(source = %name, error = %e, "postgres connection closed");
                }
            });
            self.client = Some(client);
        }
        Ok(self.client.as_ref().expect("connected above"))
    }

    /// Reads and produces every new row of one table, batch by batch.
    async fn poll_table(
        &mut self,
        key: &[u8],
        from: &str,
        topic: &str,
        position: &mut Position,
    ) -> Result<()> {
        let s = self.source;
        let avro = s.avro.is_some();
        let columns: Vec<Column> = {
            let client = self.client().await?;
            let statement = client
                .prepare(&format!("SELECT * FROM {from} AS src LIMIT 0"))
                .await;
            let statement = statement.map_err(|e| self.error(e))?;
            statement
                .columns()
                .iter()
                .map(|c| Column {
                    name: c.name().to_string(),
                    ty: c.type_().clone(),
                })
                .collect()
        };
        let find = |name: &str| -> Result<usize> {
            columns
                .iter()
                .position(|c| c.name == name)
                .ok_or_else(|| Error::Connector {
                    connector: format!("postgres source {}", s.name),
                    reason: format!("{from} has no column {name:?}"),
                    retriable: false,
                })
        };
        let key_index = s.key_column.as_deref().map(find).transpose()?;
        let (ts_index, inc_column, ts_column) = match &s.mode {
            Mode::Bulk => (None, None, None),
            Mode::Incrementing(c) => (None, Some(c.as_str()), None),
            Mode::Timestamp(t) => (Some(find(t)?), None, Some(t.as_str())),
            Mode::TimestampIncrementing {
                timestamp,
                incrementing,
            } => (
                Some(find(timestamp)?),
                Some(incrementing.as_str()),
                Some(timestamp.as_str()),
            ),
        };
        if let Some(c) = inc_column {
            find(c)?;
        }
        let serde = if avro {
            Some(self.avro_serde(topic, &columns)?)
        } else {
            None
        };

        let row_expr = columns
            .chunks(COLUMNS_PER_CALL)
            .map(|chunk| {
                let args: Vec<String> = chunk.iter().map(|c| c.select(avro)).collect();
                format!("jsonb_build_array({})", args.join(", "))
            })
            .collect::<Vec<_>>()
            .join(" || ");
        let inc_expr = inc_column.map(|c| format!("src.{}::bigint", quote_ident(c)));
        let ts_us_expr = ts_column.map(|c| {
            format!(
                "(extract(epoch from src.{}) * 1000000)::bigint",
                quote_ident(c)
            )
        });
        let before_now = ts_column.map(|c| {
            format!(
                "src.{} < current_timestamp - {} * interval '1 microsecond'",
                quote_ident(c),
                s.timestamp_delay.as_micros()
            )
        });
        let select = format!(
            "SELECT ({row_expr})::text, {}, {} FROM {from} AS src",
            inc_expr.as_deref().unwrap_or("NULL::bigint"),
            ts_us_expr.as_deref().unwrap_or("NULL::bigint"),
        );
        let batch = s.batch_rows;

        loop {
            let p = *position;
            let inc_from = p.incrementing.unwrap_or(i64::MIN);
            let ts_from = p.timestamp_us.unwrap_or(i64::MIN);
            let client = self.client().await?;
            let rows = match &s.mode {
                Mode::Bulk => client.query(&select, &[]).await,
                Mode::Incrementing(_) => {
                    let inc = inc_expr.as_deref().expect("incrementing mode");
                    let sql = format!("{select} WHERE {inc} > $1 ORDER BY {inc} LIMIT {batch}");
                    client.query(&sql, &[&inc_from]).await
                }
                Mode::Timestamp(_) => {
                    // Every row of the last timestamp of the batch, or a later poll would skip
                    // the ones past the batch's end.
                    let ts = ts_us_expr.as_deref().expect("timestamp mode");
                    let now = before_now.as_deref().expect("timestamp mode");
                    let cut = format!(
                        "SELECT {ts} FROM {from} AS src WHERE {ts} > $1 AND {now} \
                         ORDER BY {ts} OFFSET {} LIMIT 1",
                        batch - 1
                    );
                    match client.query_opt(&cut, &[&ts_from]).await {
                        Ok(cut) => {
                            let until: i64 = cut.map(|r| r.get(0)).unwrap_or(i64::MAX);
                            let sql = format!(
                                "{select} WHERE {ts} > $1 AND {ts} <= $2 AND {now} ORDER BY {ts}"
                            );
                            client.query(&sql, &[&ts_from, &until]).await
                        }
                        Err(e) => Err(e),
                    }
                }
                Mode::TimestampIncrementing { .. } => {
                    let ts = ts_us_expr.as_deref().expect("timestamp mode");
                    let inc = inc_expr.as_deref().expect("incrementing mode");
                    let now = before_now.as_deref().expect("timestamp mode");
                    let sql = format!(
                        "{select} WHERE {now} AND ({ts} > $1 OR ({ts} = $1 AND {inc} > $2)) \
                         ORDER BY {ts}, {inc} LIMIT {batch}"
                    );
                    client.query(&sql, &[&ts_from, &inc_from]).await
                }
            };
            let rows = rows.map_err(|e| self.error(e))?;
            let full = rows.len() >= batch && s.mode != Mode::Bulk;
            let rows: Vec<Row> = rows
                .iter()
                .map(|r| {
                    let text: String = r.get(0);
                    let values = match serde_json::from_str(&text) {
                        Ok(Value::Array(values)) => values,
                        _ => Vec::new(),
                    };
                    Row {
                        values,
                        incrementing: r.get(1),
                        timestamp_us: r.get(2),
                    }
                })
                .collect();
            if rows.is_empty() {
                return Ok(());
            }
            let polled_at = now_ms();
            let mut outgoing = Vec::with_capacity(rows.len());
            for row in &rows {
                let key = key_index.map(|i| match &row.values[i] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                });
                let timestamp = ts_index
                    .and_then(|i| row.values[i].as_i64())
                    .unwrap_or(polled_at);
                let payload = match &serde {
                    None => json_object(&columns, &row.values),
                    Some(serde) => {
                        let fields = columns
                            .iter()
                            .zip(&row.values)
                            .map(|(c, v)| Ok((c.name.clone(), c.avro_value(v)?)))
                            .collect::<std::result::Result<Vec<_>, String>>()
                            .map_err(|reason| Error::Connector {
                                connector: format!("postgres source {}", s.name),
                                reason,
                                retriable: false,
                            })?;
                        let (topic, serde) = (topic.to_string(), serde.clone());
                        tokio::task::spawn_blocking(move || {
                            let mut out = Vec::new();
                            serde
                                .serialize(&topic, &AvroValue::Record(fields), &mut out)
                                .map(|()| out)
                        })
                        .await
                        .map_err(|e| Error::Internal(format!("avro encoding: {e}")))??
                    }
                };
                outgoing.push((key, payload, timestamp));
            }
            let sends: Vec<_> = outgoing
                .iter()
                .map(|(key, payload, timestamp)| {
                    let mut r = FutureRecord::<str, [u8]>::to(topic)
                        .payload(payload.as_slice())
                        .timestamp(*timestamp);
                    if let Some(k) = key {
                        r = r.key(k.as_str());
                    }
                    self.producer.send(r, DELIVERY_TIMEOUT)
                })
                .collect();
            for delivery in futures_util::future::join_all(sends).await {
                delivery.map_err(|(e, _)| Error::Produce {
                    topic: topic.to_string(),
                    reason: e.to_string(),
                })?;
            }
            tracing::debug!(source = %s.name, %topic, rows = rows.len(), "rows produced");
            if s.mode == Mode::Bulk {
                return Ok(());
            }
            let last = rows.last().expect("not empty");
            let next = Position {
                incrementing: last.incrementing.or(p.incrementing),
                timestamp_us: last.timestamp_us.or(p.timestamp_us),
            };
            // The position only after the rows are in Kafka: a crash in between repeats them.
            self.offsets_topic
                .append(key, Some(&next.to_bytes()))
                .await?;
            *position = next;
            if !full {
                return Ok(());
            }
        }
    }

    /// The Avro serde of a topic, with a schema of the table's current columns.
    fn avro_serde(&mut self, topic: &str, columns: &[Column]) -> Result<Arc<AvroGeneric>> {
        let fields: Vec<Value> = columns
            .iter()
            .map(|c| {
                serde_json::json!({
                    "name": avro_name(&c.name),
                    "type": ["null", c.avro_type()],
                    "default": null,
                })
            })
            .collect();
        let schema = serde_json::json!({
            "type": "record",
            "name": avro_name(table_name(topic.rsplit('.').next().unwrap_or(topic))),
            "namespace": "streamkit.connect.postgres",
            "fields": fields,
        })
        .to_string();
        if let Some((known, serde)) = self.serdes.get(topic)
            && *known == schema
        {
            return Ok(serde.clone());
        }
        let parsed = Schema::parse_str(&schema).map_err(|e| Error::Connector {
            connector: format!("postgres source {}", self.source.name),
            reason: format!("cannot derive an Avro schema from the columns: {e}"),
            retriable: false,
        })?;
        let registry = self.source.avro.as_ref().expect("avro configured");
        let serde = Arc::new(AvroGeneric::new(registry, parsed));
        self.serdes
            .insert(topic.to_string(), (schema, serde.clone()));
        Ok(serde)
    }
}

/// `{"col": value, …}` in column order.
fn json_object(columns: &[Column], values: &[Value]) -> Vec<u8> {
    let mut out = String::from("{");
    for (i, (c, v)) in columns.iter().zip(values).enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::String(c.name.clone()).to_string());
        out.push(':');
        out.push_str(&v.to_string());
    }
    out.push('}');
    out.into_bytes()
}

/// A column or table name as an Avro name (letters, digits, `_`; not starting with a digit).
fn avro_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// The table's name without its schema.
fn table_name(table: &str) -> &str {
    table.rsplit('.').next().unwrap_or(table)
}

/// `"ident"`, doubling inner quotes.
fn quote_ident(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// `schema.table` quoted part by part.
fn quote_table(table: &str) -> String {
    table
        .split('.')
        .map(quote_ident)
        .collect::<Vec<_>>()
        .join(".")
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_and_tolerate_garbage() {
        let p = Position {
            incrementing: Some(42),
            timestamp_us: Some(-5),
        };
        assert_eq!(Position::parse(&p.to_bytes()), p);
        assert_eq!(Position::parse(b"not json"), Position::default());
    }

    #[test]
    fn names_are_quoted_and_sanitized() {
        assert_eq!(
            quote_table("public.my \"t\""),
            "\"public\".\"my \"\"t\"\"\""
        );
        assert_eq!(avro_name("2nd col"), "_2nd_col");
        assert_eq!(table_name("public.stations"), "stations");
    }

    #[test]
    fn topics_follow_the_prefix() {
        let s = PostgresSource::new("n", "postgres://x")
            .table("stations")
            .table("public.lines")
            .topic_prefix("org.chicago.cta.");
        assert_eq!(
            s.topics(),
            ["org.chicago.cta.stations", "org.chicago.cta.lines"]
        );
        let q = s.query("SELECT 1").topic_prefix("all");
        assert_eq!(q.topics(), ["all"]);
        assert!(PostgresSource::new("n", "x").check().is_err());
    }

    #[test]
    fn rows_become_objects_in_column_order() {
        let columns = [
            Column {
                name: "z".into(),
                ty: Type::INT4,
            },
            Column {
                name: "a".into(),
                ty: Type::TEXT,
            },
        ];
        let values = [Value::from(1), Value::from("x\"y")];
        assert_eq!(
            String::from_utf8(json_object(&columns, &values)).unwrap(),
            r#"{"z":1,"a":"x\"y"}"#
        );
        assert_eq!(
            columns[0].avro_value(&Value::Null).unwrap(),
            AvroValue::Union(0, Box::new(AvroValue::Null))
        );
        assert!(columns[0].avro_value(&Value::from("no")).is_err());
    }
}
