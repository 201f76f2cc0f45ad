//! The Cassandra sink: a topic's records upserted into an Apache Cassandra (or ScyllaDB)
//! table, at least once, through ScyllaDB's CQL driver (`scylla`). Feature `cassandra`.
//!
//! [`CassandraSink`] reads one topic with its own consumer group, like a Kafka Connect sink
//! task, and turns each record into a row: the key columns from the record key, the other
//! columns from the value. A record with a null value (a table's tombstone) deletes its row.
//!
//! **Writes before offsets.** The sink polls up to [`max_records`](CassandraSink::max_records)
//! records, collapses them per row key (the newest wins), writes the rows with prepared
//! statements in groups of [`batch_rows`](CassandraSink::batch_rows) — the rows of a group in
//! flight together, or as one `UNLOGGED BATCH` with [`cql_batches`](CassandraSink::cql_batches)
//! — waits until Cassandra has acknowledged every row at the configured consistency, and only
//! then commits the next offset of each partition it read. A crash after the writes and
//! before the commit replays those records, and a replay is harmless: a CQL `INSERT` is an
//! upsert that sets every column, so writing the same record again leaves the same row. A key
//! appears once per write (so two values of one key are never in flight together, nor in one
//! batch, where Cassandra would give both the same write timestamp and pick between them by
//! value), and groups are written one after another, so a key's newest value is written last.
//!
//! The topic is usually the output of a topology (`KStream::to` or `KTable::to_stream().to`):
//! the topology's source offsets are committed once its output is acknowledged by Kafka, and
//! the sink's once its rows are acknowledged by Cassandra, so every input record reaches the
//! table at least once.
//!
//! With [`create_keyspace`](CassandraSink::create_keyspace) and
//! [`create_table`](CassandraSink::create_table) the sink runs `CREATE KEYSPACE IF NOT EXISTS`
//! and `CREATE TABLE IF NOT EXISTS` at start, from the column types given with the columns.
//!
//! ```no_run
//! use streamkit::connect::cassandra::{CassandraSink, Cell};
//! use streamkit::prelude::*;
//!
//! # async fn run() -> streamkit::Result<()> {
//! let config = StreamsConfig::new("users").bootstrap_servers("localhost:9092");
//! CassandraSink::new("users", ["127.0.0.1:9042"], "spark_streams.created_users")
//!     .topic("created-users", Serdes::string(), Serdes::json::<serde_json::Value>())
//!     .key_columns([("id", "uuid")], |id: &String| vec![Cell::uuid_text(id)])
//!     .value_columns([("first_name", "text"), ("last_name", "text")], |u: &serde_json::Value| {
//!         vec![Cell::text_or_null(u["first_name"].as_str()), Cell::text_or_null(u["last_name"].as_str())]
//!     })
//!     .create_keyspace(1)
//!     .create_table(true)
//!     .run(&config, tokio::signal::ctrl_c())
//!     .await
//! # }
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::Consistency;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlTimestamp, CqlValue};

use crate::config::StreamsConfig;
use crate::error::{Error, Result};
use crate::runtime::admin;
use crate::serde::Serde;

/// Rows per unlogged batch.
const DEFAULT_BATCH_ROWS: usize = 50;
/// Records read before a flush (or fewer, after [`CassandraSink::linger`]).
const DEFAULT_MAX_RECORDS: usize = 2_000;
/// Attempts of a batch that fails.
const RETRIES: u32 = 6;

/// One column value of a row.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Cell {
    /// CQL `null` (the column is unset in the row).
    Null,
    /// `text`, `varchar`, `ascii`.
    Text(String),
    /// `int`.
    Int(i32),
    /// `bigint`.
    BigInt(i64),
    /// `double`.
    Double(f64),
    /// `boolean`.
    Boolean(bool),
    /// `uuid`, as its 128 bits.
    Uuid(u128),
    /// `timestamp`: milliseconds since the Unix epoch.
    Timestamp(i64),
    /// `blob`.
    Blob(Vec<u8>),
}

impl Cell {
    /// `text`, or `null` for `None`.
    pub fn text_or_null(s: Option<&str>) -> Cell {
        s.map_or(Cell::Null, |s| Cell::Text(s.to_string()))
    }

    /// A `uuid` from its text form (`8-4-4-4-12` hex digits); `null` when it is not one.
    pub fn uuid_text(s: &str) -> Cell {
        uuid::Uuid::parse_str(s).map_or(Cell::Null, |u| Cell::Uuid(u.as_u128()))
    }

    fn to_cql(&self) -> Option<CqlValue> {
        Some(match self {
            Cell::Null => return None,
            Cell::Text(s) => CqlValue::Text(s.clone()),
            Cell::Int(i) => CqlValue::Int(*i),
            Cell::BigInt(i) => CqlValue::BigInt(*i),
            Cell::Double(f) => CqlValue::Double(*f),
            Cell::Boolean(b) => CqlValue::Boolean(*b),
            Cell::Uuid(u) => CqlValue::Uuid(uuid::Uuid::from_u128(*u)),
            Cell::Timestamp(ms) => CqlValue::Timestamp(CqlTimestamp(*ms)),
            Cell::Blob(b) => CqlValue::Blob(b.clone()),
        })
    }

    /// Hashable identity of a key cell (floats by their bits).
    fn key_bytes(&self, out: &mut Vec<u8>) {
        let (tag, bytes): (u8, Vec<u8>) = match self {
            Cell::Null => (0, Vec::new()),
            Cell::Text(s) => (1, s.as_bytes().to_vec()),
            Cell::Int(i) => (2, i.to_be_bytes().to_vec()),
            Cell::BigInt(i) => (3, i.to_be_bytes().to_vec()),
            Cell::Double(f) => (4, f.to_bits().to_be_bytes().to_vec()),
            Cell::Boolean(b) => (5, vec![*b as u8]),
            Cell::Uuid(u) => (6, u.to_be_bytes().to_vec()),
            Cell::Timestamp(t) => (7, t.to_be_bytes().to_vec()),
            Cell::Blob(b) => (8, b.clone()),
        };
        out.push(tag);
        out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(&bytes);
    }
}

type Columns<T> = Arc<dyn Fn(&T) -> Vec<Cell> + Send + Sync>;

/// How far a sink has got: rows acknowledged by Cassandra and offsets committed after them.
/// Shared with the running sink ([`CassandraSink::progress`]).
#[derive(Debug, Default)]
pub struct SinkProgress {
    rows_written: AtomicU64,
    rows_deleted: AtomicU64,
    batches: AtomicU64,
    records_read: AtomicU64,
    commits: AtomicU64,
}

impl SinkProgress {
    /// Upserts acknowledged by Cassandra.
    pub fn rows_written(&self) -> u64 {
        self.rows_written.load(Ordering::Relaxed)
    }
    /// Deletes acknowledged by Cassandra.
    pub fn rows_deleted(&self) -> u64 {
        self.rows_deleted.load(Ordering::Relaxed)
    }
    /// Batches acknowledged by Cassandra.
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }
    /// Records read from the topic whose rows were then acknowledged (several records of one
    /// key make one row).
    pub fn records_read(&self) -> u64 {
        self.records_read.load(Ordering::Relaxed)
    }
    /// Offset commits made after acknowledged writes.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }
}

/// The first step of a [`CassandraSink`]: where it writes, before the topic it reads.
#[derive(Debug, Clone)]
pub struct CassandraSinkBuilder {
    name: String,
    nodes: Vec<String>,
    table: String,
}

impl CassandraSinkBuilder {
    /// Reads `topic` with these serdes (those that wrote it).
    pub fn topic<K, V>(
        self,
        topic: impl Into<String>,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
    ) -> CassandraSink<K, V> {
        CassandraSink {
            name: self.name,
            nodes: self.nodes,
            table: self.table,
            topic: topic.into(),
            key_serde: Arc::new(key_serde),
            value_serde: Arc::new(value_serde),
            key_columns: Vec::new(),
            value_columns: Vec::new(),
            key_fn: None,
            value_fn: None,
            batch_rows: DEFAULT_BATCH_ROWS,
            max_records: DEFAULT_MAX_RECORDS,
            linger: Duration::from_millis(200),
            consistency: Consistency::LocalQuorum,
            cql_batches: false,
            keyspace_replication: None,
            create_table: false,
            group_id: None,
            progress: Arc::default(),
        }
    }
}

/// Writes a topic into a Cassandra table. See the [module documentation](self).
pub struct CassandraSink<K, V> {
    name: String,
    nodes: Vec<String>,
    table: String,
    topic: String,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
    key_columns: Vec<(String, String)>,
    value_columns: Vec<(String, String)>,
    key_fn: Option<Columns<K>>,
    value_fn: Option<Columns<V>>,
    batch_rows: usize,
    max_records: usize,
    linger: Duration,
    consistency: Consistency,
    cql_batches: bool,
    keyspace_replication: Option<u32>,
    create_table: bool,
    group_id: Option<String>,
    progress: Arc<SinkProgress>,
}

impl<K, V> std::fmt::Debug for CassandraSink<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CassandraSink")
            .field("name", &self.name)
            .field("nodes", &self.nodes)
            .field("table", &self.table)
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl CassandraSink<(), ()> {
    /// A sink named `name` (its consumer group is `<name>-cassandra-sink`) writing to `table`
    /// (`keyspace.table`) of the cluster reached through `nodes` (`host:port` of one or more
    /// nodes; the driver discovers the others). Continue with
    /// [`topic`](CassandraSinkBuilder::topic).
    #[allow(clippy::new_ret_no_self)]
    pub fn new<I, S>(
        name: impl Into<String>,
        nodes: I,
        table: impl Into<String>,
    ) -> CassandraSinkBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        CassandraSinkBuilder {
            name: name.into(),
            nodes: nodes.into_iter().map(Into::into).collect(),
            table: table.into(),
        }
    }
}

impl<K: 'static, V: 'static> CassandraSink<K, V> {
    /// The primary-key columns as `(name, CQL type)`, and how a record key becomes their
    /// values, in the same order. Together they are the table's partition key. Required.
    pub fn key_columns<I, S, T>(
        mut self,
        columns: I,
        values: impl Fn(&K) -> Vec<Cell> + Send + Sync + 'static,
    ) -> Self
    where
        I: IntoIterator<Item = (S, T)>,
        S: Into<String>,
        T: Into<String>,
    {
        self.key_columns = columns
            .into_iter()
            .map(|(c, t)| (c.into(), t.into()))
            .collect();
        self.key_fn = Some(Arc::new(values));
        self
    }

    /// The other columns as `(name, CQL type)`, and how a value becomes theirs, in the same
    /// order. Required.
    pub fn value_columns<I, S, T>(
        mut self,
        columns: I,
        values: impl Fn(&V) -> Vec<Cell> + Send + Sync + 'static,
    ) -> Self
    where
        I: IntoIterator<Item = (S, T)>,
        S: Into<String>,
        T: Into<String>,
    {
        self.value_columns = columns
            .into_iter()
            .map(|(c, t)| (c.into(), t.into()))
            .collect();
        self.value_fn = Some(Arc::new(values));
        self
    }

    /// Most rows written together: in flight at once, or in one CQL batch with
    /// [`cql_batches`](Self::cql_batches). Default = 50.
    pub fn batch_rows(mut self, rows: usize) -> Self {
        self.batch_rows = rows.max(1);
        self
    }

    /// Most records read before their rows are written and their offsets committed.
    /// Default = 2000.
    pub fn max_records(mut self, records: usize) -> Self {
        self.max_records = records.max(1);
        self
    }

    /// How long the sink waits for more records before writing what it has. Default = 200 ms.
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Sends each group of rows as one `UNLOGGED BATCH` instead of concurrent single-row
    /// writes. Default = off: the rows of a group are distinct partitions, and Cassandra warns
    /// about (and coordinates expensively) batches spanning partitions; a batch saves round
    /// trips when the coordinator is far. Either way a group is acknowledged before the next.
    pub fn cql_batches(mut self, on: bool) -> Self {
        self.cql_batches = on;
        self
    }

    /// The consistency level of every write. Default = `LOCAL_QUORUM`.
    pub fn consistency(mut self, consistency: Consistency) -> Self {
        self.consistency = consistency;
        self
    }

    /// At start, `CREATE KEYSPACE IF NOT EXISTS` with `SimpleStrategy` and this replication
    /// factor. Default = off (the keyspace must exist).
    pub fn create_keyspace(mut self, replication_factor: u32) -> Self {
        self.keyspace_replication = Some(replication_factor.max(1));
        self
    }

    /// At start, `CREATE TABLE IF NOT EXISTS` from the columns and their types, the key
    /// columns as the partition key. Default = off (the table must exist).
    pub fn create_table(mut self, on: bool) -> Self {
        self.create_table = on;
        self
    }

    /// The consumer group. Default = `<name>-cassandra-sink`.
    pub fn group_id(mut self, group: impl Into<String>) -> Self {
        self.group_id = Some(group.into());
        self
    }

    /// The topic read.
    pub fn topic_name(&self) -> &str {
        &self.topic
    }

    /// How far the sink has got; the handle stays valid while and after it runs.
    pub fn progress(&self) -> Arc<SinkProgress> {
        self.progress.clone()
    }

    fn connector(&self) -> String {
        format!("cassandra sink {}", self.table)
    }

    fn config_error(&self, reason: impl Into<String>) -> Error {
        Error::Config(format!("{}: {}", self.connector(), reason.into()))
    }

    fn check(&self) -> Result<(String, String)> {
        if self.key_fn.is_none() || self.key_columns.is_empty() {
            return Err(self.config_error("key_columns(..) is required"));
        }
        if self.value_fn.is_none() || self.value_columns.is_empty() {
            return Err(self.config_error("value_columns(..) is required"));
        }
        let Some((keyspace, table)) = self.table.split_once('.') else {
            return Err(self.config_error("the table must be named keyspace.table"));
        };
        for name in [keyspace, table].into_iter().chain(
            self.key_columns
                .iter()
                .chain(&self.value_columns)
                .map(|(c, _)| c.as_str()),
        ) {
            if !is_identifier(name) {
                return Err(self.config_error(format!(
                    "{name:?} is not a plain CQL identifier (letters, digits, _)"
                )));
            }
        }
        for (c, ty) in self.key_columns.iter().chain(&self.value_columns) {
            if ty.is_empty()
                || !ty
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "<>, _".contains(ch))
            {
                return Err(self.config_error(format!("column {c}: bad type {ty:?}")));
            }
        }
        Ok((keyspace.to_string(), table.to_string()))
    }

    fn insert_cql(&self) -> String {
        let cols: Vec<&str> = self
            .key_columns
            .iter()
            .chain(&self.value_columns)
            .map(|(c, _)| c.as_str())
            .collect();
        let marks = vec!["?"; cols.len()].join(", ");
        format!(
            "INSERT INTO {} ({}) VALUES ({marks})",
            self.table,
            cols.join(", ")
        )
    }

    fn delete_cql(&self) -> String {
        let wheres: Vec<String> = self
            .key_columns
            .iter()
            .map(|(c, _)| format!("{c} = ?"))
            .collect();
        format!("DELETE FROM {} WHERE {}", self.table, wheres.join(" AND "))
    }

    /// `CREATE TABLE IF NOT EXISTS` for the columns.
    pub fn create_table_cql(&self) -> String {
        let cols: Vec<String> = self
            .key_columns
            .iter()
            .chain(&self.value_columns)
            .map(|(c, t)| format!("{c} {t}"))
            .collect();
        let keys: Vec<&str> = self.key_columns.iter().map(|(c, _)| c.as_str()).collect();
        format!(
            "CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY (({})))",
            self.table,
            cols.join(", "),
            keys.join(", ")
        )
    }

    async fn connect(&self) -> Result<Session> {
        SessionBuilder::new()
            .known_nodes(&self.nodes)
            .connection_timeout(Duration::from_secs(10))
            .build()
            .await
            .map_err(|e| Error::Connector {
                connector: self.connector(),
                reason: format!("connecting to {}: {e}", self.nodes.join(",")),
                retriable: true,
            })
    }

    /// Creates the keyspace and the table when asked to, and prepares the statements.
    async fn prepare(&self, session: &Session) -> Result<Statements> {
        let (keyspace, _) = self.check()?;
        let fail = |doing: &str, e: &dyn std::fmt::Display| Error::Connector {
            connector: self.connector(),
            reason: format!("{doing}: {e}"),
            retriable: false,
        };
        if let Some(rf) = self.keyspace_replication {
            let cql = format!(
                "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = \
                 {{'class': 'SimpleStrategy', 'replication_factor': '{rf}'}}"
            );
            session
                .query_unpaged(cql, &[])
                .await
                .map_err(|e| fail("creating the keyspace", &e))?;
        }
        if self.create_table {
            session
                .query_unpaged(self.create_table_cql(), &[])
                .await
                .map_err(|e| fail("creating the table", &e))?;
        }
        if self.keyspace_replication.is_some() || self.create_table {
            session
                .await_schema_agreement()
                .await
                .map_err(|e| fail("waiting for schema agreement", &e))?;
        }
        let mut insert = session
            .prepare(self.insert_cql())
            .await
            .map_err(|e| fail("preparing the insert", &e))?;
        let mut delete = session
            .prepare(self.delete_cql())
            .await
            .map_err(|e| fail("preparing the delete", &e))?;
        for s in [&mut insert, &mut delete] {
            // Upserts and deletes by key: a retry after a lost acknowledgement is harmless.
            s.set_is_idempotent(true);
            s.set_consistency(self.consistency);
        }
        Ok(Statements { insert, delete })
    }

    /// Reads the topic and writes its rows until `shutdown` completes (what was read by then
    /// is written and committed first). Returns an error when Cassandra keeps failing a batch
    /// (six attempts), rejects a statement, or a record does not deserialize.
    pub async fn run(
        self,
        config: &StreamsConfig,
        shutdown: impl Future<Output = impl Sized>,
    ) -> Result<()> {
        self.check()?;
        let session = self.connect().await?;
        let statements = self.prepare(&session).await?;
        tracing::info!(
            sink = %self.name, table = %self.table, topic = %self.topic, nodes = %self.nodes.join(","),
            "cassandra sink started"
        );
        let group = self
            .group_id
            .clone()
            .unwrap_or_else(|| format!("{}-cassandra-sink", self.name));
        let mut client = admin::base_client_config(config, "consumer")?;
        if !config
            .client_settings("consumer")
            .contains_key("session.timeout.ms")
        {
            // As Kafka Connect's sink tasks: a restarted sink is not kept waiting long for
            // the member it replaces to time out.
            client.set("session.timeout.ms", "10000");
        }
        let consumer: StreamConsumer = client
            .set("group.id", &group)
            .set("client.id", format!("{}-cassandra-sink", self.name))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed")
            .create()?;
        consumer.subscribe(&[&self.topic])?;
        let consumer = Arc::new(consumer);

        tokio::pin!(shutdown);
        let mut pending = Pending::default();
        let mut stopping = false;
        while !stopping {
            // Gather records until max_records, the linger time after the first, or shutdown.
            let mut deadline: Option<tokio::time::Instant> = None;
            loop {
                let linger = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = &mut shutdown => { stopping = true; break; }
                    _ = linger => break,
                    m = consumer.recv() => {
                        let m = m?;
                        self.add(&mut pending, &m)?;
                        deadline.get_or_insert_with(|| tokio::time::Instant::now() + self.linger);
                        if pending.records >= self.max_records {
                            break;
                        }
                    }
                }
            }
            if pending.records > 0 {
                let batch = std::mem::take(&mut pending);
                self.write(&session, &statements, &batch).await?;
                self.commit(&consumer, &batch.positions).await;
            }
        }
        Ok(())
    }

    fn add(&self, pending: &mut Pending, m: &rdkafka::message::BorrowedMessage<'_>) -> Result<()> {
        let at = || format!("{}[{}]@{}", m.topic(), m.partition(), m.offset());
        let key = match m.key() {
            Some(k) => self.key_serde.deserialize(m.topic(), k),
            None => self.key_serde.deserialize_null(m.topic()),
        }
        .map_err(|e| self.config_error(format!("the key of {} does not deserialize: {e}", at())))?;
        let key_cells = (self.key_fn.as_ref().expect("checked"))(&key);
        if key_cells.len() != self.key_columns.len() {
            return Err(self.config_error(format!(
                "the key mapping gave {} values for {} key columns",
                key_cells.len(),
                self.key_columns.len()
            )));
        }
        if key_cells.contains(&Cell::Null) {
            return Err(self.config_error(format!("the key of {} maps to a null key column", at())));
        }
        let row = match m.payload() {
            None => None,
            Some(v) => {
                let value = self.value_serde.deserialize(m.topic(), v).map_err(|e| {
                    self.config_error(format!("the value of {} does not deserialize: {e}", at()))
                })?;
                let cells = (self.value_fn.as_ref().expect("checked"))(&value);
                if cells.len() != self.value_columns.len() {
                    return Err(self.config_error(format!(
                        "the value mapping gave {} values for {} value columns",
                        cells.len(),
                        self.value_columns.len()
                    )));
                }
                Some(cells)
            }
        };
        let mut id = Vec::new();
        for c in &key_cells {
            c.key_bytes(&mut id);
        }
        pending.rows.insert(id, (key_cells, row));
        pending
            .positions
            .insert((m.topic().to_string(), m.partition()), m.offset() + 1);
        pending.records += 1;
        Ok(())
    }

    async fn write(
        &self,
        session: &Session,
        statements: &Statements,
        pending: &Pending,
    ) -> Result<()> {
        let mut upserts = Vec::new();
        let mut deletes = Vec::new();
        for (key, row) in pending.rows.values() {
            let key: Vec<Option<CqlValue>> = key.iter().map(Cell::to_cql).collect();
            match row {
                Some(row) => {
                    let mut values = key;
                    values.extend(row.iter().map(Cell::to_cql));
                    upserts.push(values);
                }
                None => deletes.push(key),
            }
        }
        for (statement, rows, deleting) in [
            (&statements.insert, &upserts, false),
            (&statements.delete, &deletes, true),
        ] {
            for chunk in rows.chunks(self.batch_rows) {
                if self.cql_batches {
                    let mut batch = Batch::new(BatchType::Unlogged);
                    for _ in chunk {
                        batch.append_statement(statement.clone());
                    }
                    batch.set_consistency(self.consistency);
                    batch.set_is_idempotent(true);
                    self.execute(chunk.len(), || session.batch(&batch, chunk))
                        .await?;
                } else {
                    // One write per row (each its own partition), the chunk's in flight
                    // together; distinct keys, so their order does not matter.
                    futures_util::future::try_join_all(chunk.iter().map(|row| {
                        self.execute(1, move || async move {
                            session.execute_unpaged(statement, row).await.map(|_| ())
                        })
                    }))
                    .await?;
                }
                let counter = if deleting {
                    &self.progress.rows_deleted
                } else {
                    &self.progress.rows_written
                };
                counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                self.progress.batches.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.progress
            .records_read
            .fetch_add(pending.records as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Runs `call` (writing `rows` rows), again after a retriable failure.
    async fn execute<T, F>(&self, rows: usize, call: impl Fn() -> F) -> Result<()>
    where
        F: Future<Output = std::result::Result<T, scylla::errors::ExecutionError>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let e = match call().await {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            let retriable = is_retriable(&e);
            let error = Error::Connector {
                connector: self.connector(),
                reason: format!("writing {rows} rows: {e}"),
                retriable,
            };
            if !retriable || attempt >= RETRIES {
                return Err(error);
            }
            let wait = Duration::from_millis(100 << attempt.min(5));
            tracing::warn!(error = %error, attempt, retry_in = ?wait, "cassandra write failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// Commits the next offsets after the rows are written. A failed commit (a rebalance took
    /// the partition) only means the records are written again by the next owner.
    async fn commit(
        &self,
        consumer: &Arc<StreamConsumer>,
        positions: &HashMap<(String, i32), i64>,
    ) {
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), next) in positions {
            if let Err(e) = tpl.add_partition_offset(topic, *partition, Offset::Offset(*next)) {
                tracing::warn!(error = %e, "cassandra sink: bad offset");
            }
        }
        let consumer = consumer.clone();
        let result =
            tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync)).await;
        match result {
            Ok(Ok(())) => {
                self.progress.commits.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(e)) => {
                tracing::warn!(sink = %self.name, error = %e, "offset commit failed; the records will be written again")
            }
            Err(e) => tracing::warn!(sink = %self.name, error = %e, "offset commit did not run"),
        }
    }
}

/// Whether a failed write may succeed when tried again: timeouts, unavailable replicas,
/// overload and lost connections; not a rejected statement.
fn is_retriable(e: &scylla::errors::ExecutionError) -> bool {
    use scylla::errors::{DbError, ExecutionError, RequestAttemptError};
    match e {
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(db, _)) => matches!(
            db,
            DbError::Unavailable { .. }
                | DbError::Overloaded
                | DbError::IsBootstrapping
                | DbError::WriteTimeout { .. }
                | DbError::ReadTimeout { .. }
                | DbError::ServerError
                | DbError::TruncateError
        ),
        ExecutionError::BadQuery(_) | ExecutionError::PrepareError(_) => false,
        _ => true,
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

struct Statements {
    insert: PreparedStatement,
    delete: PreparedStatement,
}

/// A row's key cells, and its value cells (`None`: delete the row).
type PendingRow = (Vec<Cell>, Option<Vec<Cell>>);

/// Records read since the last write: the newest row per key, and the next offset per
/// partition.
#[derive(Default)]
struct Pending {
    /// Key identity → (key cells, value cells or `None` for a delete).
    rows: HashMap<Vec<u8>, PendingRow>,
    positions: HashMap<(String, i32), i64>,
    records: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serde::Serdes;

    fn sink() -> CassandraSink<String, String> {
        CassandraSink::new("t", ["127.0.0.1:9042"], "ks.users")
            .topic("users", Serdes::string(), Serdes::string())
            .key_columns([("id", "uuid")], |k: &String| vec![Cell::uuid_text(k)])
            .value_columns([("name", "text"), ("age", "int")], |v: &String| {
                vec![Cell::Text(v.clone()), Cell::Int(v.len() as i32)]
            })
    }

    #[test]
    fn statements_name_the_columns_in_order() {
        let s = sink();
        assert_eq!(
            s.insert_cql(),
            "INSERT INTO ks.users (id, name, age) VALUES (?, ?, ?)"
        );
        assert_eq!(s.delete_cql(), "DELETE FROM ks.users WHERE id = ?");
        assert_eq!(
            s.create_table_cql(),
            "CREATE TABLE IF NOT EXISTS ks.users (id uuid, name text, age int, PRIMARY KEY ((id)))"
        );
    }

    #[test]
    fn check_rejects_unquoted_names_and_missing_columns() {
        assert!(sink().check().is_ok());
        let no_keyspace = CassandraSink::new("t", ["n"], "users")
            .topic("users", Serdes::string(), Serdes::string())
            .key_columns([("id", "text")], |k: &String| vec![Cell::Text(k.clone())])
            .value_columns([("v", "text")], |v: &String| vec![Cell::Text(v.clone())]);
        assert!(no_keyspace.check().is_err());
        let bad_column = sink().value_columns([("na me", "text")], |v: &String| {
            vec![Cell::Text(v.clone())]
        });
        assert!(bad_column.check().is_err());
        let no_values = CassandraSink::new("t", ["n"], "ks.users")
            .topic("users", Serdes::string(), Serdes::string())
            .key_columns([("id", "text")], |k: &String| vec![Cell::Text(k.clone())]);
        assert!(no_values.check().is_err());
    }

    #[test]
    fn uuid_text_parses_or_is_null() {
        assert_eq!(
            Cell::uuid_text("00000000-0000-0000-0000-00000000002a"),
            Cell::Uuid(42)
        );
        assert_eq!(Cell::uuid_text("not a uuid"), Cell::Null);
    }
}
