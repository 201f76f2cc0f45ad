//! The Postgres sink: a table's changes upserted into a PostgreSQL table, exactly once.
//!
//! [`KTable::to_postgres`] writes every change of the table as an upsert (`INSERT … ON
//! CONFLICT (key columns) DO UPDATE`) or, for a deleted key, a `DELETE`, collapsed per key and
//! sent in multi-row statements. At each commit of the task, **one Postgres transaction**
//! holds three things:
//!
//! 1. the rows changed since the last commit;
//! 2. the writes made since then to every state store of the sub-topology
//!    (`streamkit_state`: application, store, partition, key, value);
//! 3. the next input offset of every source partition of the task (`streamkit_offsets`:
//!    application, topic, partition, next offset).
//!
//! When the task starts (on assignment, after a crash, on another instance) it empties its
//! stores, loads them from `streamkit_state`, and the thread seeks its source partitions to
//! the offsets in `streamkit_offsets` (the beginning when there is none). Rows, store contents
//! and offsets therefore always describe the same prefix of the input: records after it are
//! processed again from a state that has not seen them, and their effects land in Postgres
//! once. The Kafka changelogs of these stores are still written but never read for this
//! task, because a changelog can run ahead of Postgres (written before a crash that lost the
//! matching Postgres commit) and replaying it would count those records twice.
//!
//! Failed Postgres calls are classified: a lost connection, a serialization failure or a
//! deadlock is retried with a fresh connection (the whole transaction is replayed; upserts and
//! offsets are absolute values, so replaying one that did commit changes nothing); anything
//! else fails the stream thread with the statement's error.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, NoTls};

use crate::error::{Error, Result};
use crate::processor::{Data, Punctuation};
use crate::record::Record;
use crate::runtime::TaskId;
use crate::runtime::context::TaskContext;
use crate::runtime::stores::TaskStores;
use crate::runtime::task::ExternalCommitter;
use crate::stream::KStream;
use crate::table::{Change, KTable};
use crate::topology::NodeKind;
use crate::topology::node::{Downstream, Instance, NodeControl, NodeFactory, erase_input};

/// Table holding, per application and source partition, the next input offset to process.
pub const OFFSETS_TABLE: &str = "streamkit_offsets";
/// Table holding the state stores of the sub-topologies that write to Postgres.
pub const STATE_TABLE: &str = "streamkit_state";

/// Rows per multi-row statement.
const DEFAULT_BATCH_ROWS: usize = 500;
/// Attempts of a commit that fails with a retriable error.
const RETRIES: u32 = 6;

/// A value bound to a column. Integers and floats are converted to the column's type
/// (`smallint`, `integer`, `bigint`, `real`, `double precision`) when they fit.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SqlValue {
    /// SQL `NULL`.
    Null,
    /// `boolean`.
    Bool(bool),
    /// Any integer column.
    Int(i64),
    /// `double precision` or `real`.
    Float(f64),
    /// `text`, `varchar`, `char`.
    Text(String),
    /// `bytea`.
    Bytes(Vec<u8>),
    /// `json` or `jsonb`.
    Json(serde_json::Value),
}

impl PartialEq for SqlValue {
    fn eq(&self, other: &Self) -> bool {
        use SqlValue::*;
        match (self, other) {
            (Null, Null) => true,
            (Bool(a), Bool(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            (Float(a), Float(b)) => a.to_bits() == b.to_bits(),
            (Text(a), Text(b)) => a == b,
            (Bytes(a), Bytes(b)) => a == b,
            (Json(a), Json(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for SqlValue {}

impl Hash for SqlValue {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        match self {
            SqlValue::Null => {}
            SqlValue::Bool(b) => b.hash(state),
            SqlValue::Int(i) => i.hash(state),
            SqlValue::Float(f) => f.to_bits().hash(state),
            SqlValue::Text(t) => t.hash(state),
            SqlValue::Bytes(b) => b.hash(state),
            SqlValue::Json(j) => j.to_string().hash(state),
        }
    }
}

macro_rules! sql_from {
    ($($t:ty => $v:ident $(as $c:ty)?),* $(,)?) => {$(
        impl From<$t> for SqlValue {
            fn from(v: $t) -> Self {
                SqlValue::$v(v $(as $c)?)
            }
        }
    )*};
}

sql_from!(bool => Bool, i16 => Int as i64, i32 => Int as i64, i64 => Int, u32 => Int as i64,
    f32 => Float as f64, f64 => Float, String => Text, Vec<u8> => Bytes, serde_json::Value => Json);

impl From<&str> for SqlValue {
    fn from(v: &str) -> Self {
        SqlValue::Text(v.to_string())
    }
}

impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(SqlValue::Null, Into::into)
    }
}

type BoxError = Box<dyn std::error::Error + Sync + Send>;

impl ToSql for SqlValue {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, BoxError> {
        let mismatch =
            || -> BoxError { format!("cannot write {self:?} into a column of type {ty}").into() };
        match self {
            SqlValue::Null => Ok(IsNull::Yes),
            SqlValue::Bool(b) => b.to_sql(ty, out),
            SqlValue::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                Type::FLOAT4 => (*i as f32).to_sql(ty, out),
                _ => Err(mismatch()),
            },
            SqlValue::Float(f) => match *ty {
                Type::FLOAT8 => f.to_sql(ty, out),
                Type::FLOAT4 => (*f as f32).to_sql(ty, out),
                _ => Err(mismatch()),
            },
            SqlValue::Text(t) => t.as_str().to_sql(ty, out),
            SqlValue::Bytes(b) => b.as_slice().to_sql(ty, out),
            SqlValue::Json(j) => j.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        // Checked per value in `to_sql`, where the variant is known.
        true
    }

    to_sql_checked!();
}

type Columns<T> = Arc<dyn Fn(&T) -> Vec<SqlValue> + Send + Sync>;

/// Where and how [`KTable::to_postgres`] writes: the connection, the table, and how a key and
/// a value become column values.
///
/// The table must exist, with a primary key or unique constraint on the key columns.
/// Streamkit creates its own two tables ([`OFFSETS_TABLE`], [`STATE_TABLE`]) when missing.
///
/// ```no_run
/// use streamkit::prelude::*;
/// use streamkit::connect::postgres::PostgresSink;
///
/// let b = StreamsBuilder::new();
/// b.stream("taps", Consumed::with(Serdes::string(), Serdes::string()))
///     .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
///     .count(Materialized::named("tap-counts"))
///     // CREATE TABLE station_taps (station text PRIMARY KEY, taps bigint NOT NULL)
///     .to_postgres(
///         PostgresSink::new("postgres://app@db/cta", "station_taps")
///             .key_columns(["station"], |station: &String| vec![station.clone().into()])
///             .value_columns(["taps"], |taps: &i64| vec![(*taps).into()]),
///     );
/// ```
pub struct PostgresSink<K, V> {
    url: String,
    table: String,
    key_columns: Vec<String>,
    value_columns: Vec<String>,
    key_fn: Option<Columns<K>>,
    value_fn: Option<Columns<V>>,
    batch_rows: usize,
}

impl<K, V> Clone for PostgresSink<K, V> {
    fn clone(&self) -> Self {
        PostgresSink {
            url: self.url.clone(),
            table: self.table.clone(),
            key_columns: self.key_columns.clone(),
            value_columns: self.value_columns.clone(),
            key_fn: self.key_fn.clone(),
            value_fn: self.value_fn.clone(),
            batch_rows: self.batch_rows,
        }
    }
}

impl<K, V> std::fmt::Debug for PostgresSink<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSink")
            .field("table", &self.table)
            .field("key_columns", &self.key_columns)
            .field("value_columns", &self.value_columns)
            .finish_non_exhaustive()
    }
}

impl<K, V> PostgresSink<K, V> {
    /// A sink writing to `table` (optionally `schema.table`) of the database at `url`
    /// (`postgres://user:password@host:port/database`, or the key=value form). No TLS.
    pub fn new(url: impl Into<String>, table: impl Into<String>) -> Self {
        PostgresSink {
            url: url.into(),
            table: table.into(),
            key_columns: Vec::new(),
            value_columns: Vec::new(),
            key_fn: None,
            value_fn: None,
            batch_rows: DEFAULT_BATCH_ROWS,
        }
    }

    /// The columns identifying a row (the table's primary key or a unique constraint), and
    /// how a record key becomes their values, in the same order. Required.
    pub fn key_columns<I, S>(
        mut self,
        columns: I,
        values: impl Fn(&K) -> Vec<SqlValue> + Send + Sync + 'static,
    ) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.key_columns = columns.into_iter().map(Into::into).collect();
        self.key_fn = Some(Arc::new(values));
        self
    }

    /// The other columns, and how a value becomes theirs, in the same order. Required.
    pub fn value_columns<I, S>(
        mut self,
        columns: I,
        values: impl Fn(&V) -> Vec<SqlValue> + Send + Sync + 'static,
    ) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.value_columns = columns.into_iter().map(Into::into).collect();
        self.value_fn = Some(Arc::new(values));
        self
    }

    /// Most rows per `INSERT` or `DELETE` statement. Default = 500.
    pub fn batch_rows(mut self, rows: usize) -> Self {
        self.batch_rows = rows.max(1);
        self
    }

    fn check(&self) -> std::result::Result<(), String> {
        if self.key_fn.is_none() || self.key_columns.is_empty() {
            return Err(format!(
                "postgres sink {}: key_columns(..) is required",
                self.table
            ));
        }
        if self.value_fn.is_none() || self.value_columns.is_empty() {
            return Err(format!(
                "postgres sink {}: value_columns(..) is required",
                self.table
            ));
        }
        for c in self.key_columns.iter().chain(&self.value_columns) {
            if c.is_empty() || c.contains('"') {
                return Err(format!(
                    "postgres sink {}: bad column name {c:?}",
                    self.table
                ));
            }
        }
        Ok(())
    }
}

impl<K: Data, V: Data> KTable<K, V> {
    /// Writes the table into a PostgreSQL table, exactly once: each commit of a task upserts
    /// the changed rows and deletes the deleted keys in one Postgres transaction that also
    /// stores the input offsets and store contents they correspond to; a restarted task
    /// resumes from those. See [`crate::connect::postgres`] for the design and
    /// [`PostgresSink`] for an example.
    ///
    /// At most one Postgres sink per sub-topology. Exactly-once holds for this sub-topology's
    /// input topics; if they are repartition topics written by another sub-topology, that one
    /// must run with [`ProcessingGuarantee::ExactlyOnce`](crate::config::ProcessingGuarantee)
    /// on a broker that implements transactions, or its replays show up as duplicates.
    pub fn to_postgres(&self, sink: PostgresSink<K, V>) {
        let mut g = self.graph.borrow_mut();
        if let Err(e) = sink.check() {
            g.errors.push(e);
        }
        let name = g.generate_name("KTABLE-POSTGRES-SINK");
        g.add_node(
            name,
            NodeKind::Processor,
            &[self.node],
            Arc::new(PostgresSinkFactory::<K, V, Change<V>> {
                sink,
                _input: PhantomData,
            }),
        );
    }
}

impl<K: Data, V: Data> KStream<K, Option<V>> {
    /// Writes a changelog stream into a PostgreSQL table, exactly once: a record with a
    /// value upserts its key's row, a record without one (a tombstone) deletes it. Same
    /// transactions, offsets and restart behaviour as [`KTable::to_postgres`].
    ///
    /// ```no_run
    /// use streamkit::prelude::*;
    /// use streamkit::connect::postgres::PostgresSink;
    ///
    /// let b = StreamsBuilder::new();
    /// // Bus positions keyed by vehicle; a null value means the bus left service.
    /// b.stream("bus-positions", Consumed::with(Serdes::string(), Serdes::option(Serdes::string())))
    ///     .to_postgres(
    ///         PostgresSink::new("postgres://app@db/cta", "bus_positions")
    ///             .key_columns(["vehicle"], |v: &String| vec![v.clone().into()])
    ///             .value_columns(["position"], |p: &String| vec![p.clone().into()]),
    ///     );
    /// ```
    pub fn to_postgres(&self, sink: PostgresSink<K, V>) {
        let mut g = self.graph.borrow_mut();
        if let Err(e) = sink.check() {
            g.errors.push(e);
        }
        let name = g.generate_name("KSTREAM-POSTGRES-SINK");
        g.add_node(
            name,
            NodeKind::Processor,
            &[self.node],
            Arc::new(PostgresSinkFactory::<K, V, Option<V>> {
                sink,
                _input: PhantomData,
            }),
        );
    }
}

/// What the sink receives: a table change or a changelog record, either giving a key's new
/// value or none (delete).
trait RowChange<V>: Data {
    fn new_value(&self) -> Option<&V>;
}

impl<V: Data> RowChange<V> for Change<V> {
    fn new_value(&self) -> Option<&V> {
        self.new.as_ref()
    }
}

impl<V: Data> RowChange<V> for Option<V> {
    fn new_value(&self) -> Option<&V> {
        self.as_ref()
    }
}

struct PostgresSinkFactory<K, V, In> {
    sink: PostgresSink<K, V>,
    _input: PhantomData<fn(In)>,
}

impl<K: Data, V: Data, In: RowChange<V>> NodeFactory for PostgresSinkFactory<K, V, In> {
    fn instantiate(
        &self,
        _name: &Arc<str>,
        _index: usize,
        app_id: &str,
        _children: &[(Arc<str>, Rc<dyn std::any::Any>)],
    ) -> Result<Instance> {
        let (Some(key_fn), Some(value_fn)) = (self.sink.key_fn.clone(), self.sink.value_fn.clone())
        else {
            return Err(Error::Topology(format!(
                "postgres sink {}: key and value columns are required",
                self.sink.table
            )));
        };
        let committer = Rc::new(RefCell::new(PostgresCommitter::new(&self.sink, app_id)?));
        let node = Rc::new(RefCell::new(SinkNode::<K, V, In> {
            committer: committer.clone(),
            key_fn,
            value_fn,
            _types: PhantomData,
        }));
        let input: Rc<RefCell<dyn Downstream<K, In>>> = node.clone();
        let committer: Rc<RefCell<dyn ExternalCommitter>> = committer;
        Ok(Instance {
            input: Some(erase_input(input)),
            control: node,
            source: None,
            committer: Some(committer),
        })
    }
}

/// The live sink of one task: maps changes to rows for its committer.
///
/// Not a [`Processor`](crate::processor::Processor) like the other built-in nodes: it is also
/// its task's external committer, which the task consults before its stores are restored and
/// at every commit — hooks the Processor API does not offer (a processor only sees records,
/// punctuations and close).
struct SinkNode<K, V, In> {
    committer: Rc<RefCell<PostgresCommitter>>,
    key_fn: Columns<K>,
    value_fn: Columns<V>,
    _types: PhantomData<fn(K, V, In)>,
}

impl<K, V: Data, In: RowChange<V>> Downstream<K, In> for SinkNode<K, V, In> {
    fn receive(&mut self, _task: &mut TaskContext, record: Record<K, In>) -> Result<()> {
        let key = (self.key_fn)(&record.key);
        let row = record.value.new_value().map(|v| (self.value_fn)(v));
        let mut committer = self.committer.borrow_mut();
        committer
            .write_row(key, row)
            .map_err(|e| e.in_node(&committer.describe()))
    }
}

impl<K, V, In> NodeControl for SinkNode<K, V, In> {
    fn init(&mut self, _task: &mut TaskContext) -> Result<()> {
        Ok(())
    }
    fn punctuate(&mut self, _task: &mut TaskContext, _p: Punctuation) -> Result<()> {
        Ok(())
    }
    fn close(&mut self, _task: &mut TaskContext) -> Result<()> {
        Ok(())
    }
}

/// Rows and store writes of one task since its last commit, and the connection they go to.
struct PostgresCommitter {
    url: String,
    table: String,
    /// The table, quoted (`"schema"."table"`).
    quoted_table: String,
    key_columns: Vec<String>,
    value_columns: Vec<String>,
    batch_rows: usize,
    app_id: String,
    task: Option<TaskId>,
    /// Key column values → new row values (`None` = delete).
    rows: HashMap<Vec<SqlValue>, Option<Vec<SqlValue>>>,
    /// Store name → key → value (`None` = delete).
    state: HashMap<String, HashMap<Vec<u8>, Option<Vec<u8>>>>,
    /// The positions stored by the last commit (an idle task does not commit again).
    committed: Vec<(String, i64)>,
    runtime: tokio::runtime::Runtime,
    client: Option<Client>,
}

fn quote_ident(name: &str) -> String {
    name.split('.')
        .map(|part| format!("\"{}\"", part.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

/// Whether a Postgres error may go away when the transaction is tried again.
fn is_retriable(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    if e.is_closed() {
        return true;
    }
    match e.code() {
        Some(code) => {
            *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
                || *code == SqlState::TOO_MANY_CONNECTIONS
                || code.code().starts_with("08")
        }
        // No SQLSTATE: the connection or the socket failed.
        None => e.as_db_error().is_none(),
    }
}

impl PostgresCommitter {
    fn new<K, V>(sink: &PostgresSink<K, V>, app_id: &str) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(PostgresCommitter {
            url: sink.url.clone(),
            table: sink.table.clone(),
            quoted_table: quote_ident(&sink.table),
            key_columns: sink.key_columns.clone(),
            value_columns: sink.value_columns.clone(),
            batch_rows: sink.batch_rows,
            app_id: app_id.to_string(),
            task: None,
            rows: HashMap::new(),
            state: HashMap::new(),
            committed: Vec::new(),
            runtime,
            client: None,
        })
    }

    fn error(&self, doing: &str, e: &tokio_postgres::Error) -> Error {
        let detail = match e.as_db_error() {
            Some(db) => format!("{} ({})", db.message(), db.code().code()),
            None => e.to_string(),
        };
        Error::Connector {
            connector: format!("postgres sink {}", self.table),
            reason: format!("{doing}: {detail}"),
            retriable: is_retriable(e),
        }
    }

    fn write_row(&mut self, key: Vec<SqlValue>, row: Option<Vec<SqlValue>>) -> Result<()> {
        if key.len() != self.key_columns.len() {
            return Err(Error::Custom(format!(
                "postgres sink {}: the key mapping gave {} values for {} key columns",
                self.table,
                key.len(),
                self.key_columns.len()
            )));
        }
        if let Some(r) = &row
            && r.len() != self.value_columns.len()
        {
            return Err(Error::Custom(format!(
                "postgres sink {}: the value mapping gave {} values for {} value columns",
                self.table,
                r.len(),
                self.value_columns.len()
            )));
        }
        self.rows.insert(key, row);
        Ok(())
    }

    /// Runs `op` with a connected client (`op` drives its futures with `this.runtime`),
    /// reconnecting and retrying while it fails with a retriable error.
    fn with_retries<T>(
        &mut self,
        doing: &str,
        mut op: impl FnMut(
            &mut Client,
            &PostgresCommitter,
        ) -> std::result::Result<T, tokio_postgres::Error>,
    ) -> Result<T> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let connected = match self.client.take() {
                Some(c) => Ok(c),
                None => self.connect(),
            };
            let e = match connected {
                Ok(mut client) => match op(&mut client, self) {
                    Ok(v) => {
                        self.client = Some(client);
                        return Ok(v);
                    }
                    Err(e) => {
                        // A failed transaction is rolled back when dropped; the connection
                        // stays usable unless it closed.
                        if !e.is_closed() {
                            self.client = Some(client);
                        }
                        e
                    }
                },
                Err(e) => e,
            };
            let error = self.error(doing, &e);
            if !is_retriable(&e) || attempt >= RETRIES {
                return Err(error);
            }
            tracing::warn!(error = %error, attempt, "postgres call failed; retrying");
            self.client = None;
            std::thread::sleep(Duration::from_millis(100 << attempt.min(5)));
        }
    }

    fn connect(&self) -> std::result::Result<Client, tokio_postgres::Error> {
        self.runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&self.url, NoTls).await?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %e, "postgres connection closed");
                }
            });
            Ok(client)
        })
    }

    /// `INSERT … VALUES (…),(…) ON CONFLICT (keys) DO UPDATE SET v = EXCLUDED.v` for `n` rows.
    fn upsert_sql(&self, n: usize) -> String {
        let cols: Vec<String> = self
            .key_columns
            .iter()
            .chain(&self.value_columns)
            .map(|c| quote_ident_one(c))
            .collect();
        let width = cols.len();
        let values: Vec<String> = (0..n)
            .map(|r| {
                let params: Vec<String> =
                    (1..=width).map(|c| format!("${}", r * width + c)).collect();
                format!("({})", params.join(","))
            })
            .collect();
        let keys: Vec<String> = self
            .key_columns
            .iter()
            .map(|c| quote_ident_one(c))
            .collect();
        let updates: Vec<String> = self
            .value_columns
            .iter()
            .map(|c| format!("{0} = EXCLUDED.{0}", quote_ident_one(c)))
            .collect();
        format!(
            "INSERT INTO {} ({}) VALUES {} ON CONFLICT ({}) DO UPDATE SET {}",
            self.quoted_table,
            cols.join(","),
            values.join(","),
            keys.join(","),
            updates.join(",")
        )
    }

    /// `DELETE … WHERE (keys) IN ((…),(…))` for `n` keys.
    fn delete_sql(&self, n: usize) -> String {
        let width = self.key_columns.len();
        let keys: Vec<String> = self
            .key_columns
            .iter()
            .map(|c| quote_ident_one(c))
            .collect();
        let tuples: Vec<String> = (0..n)
            .map(|r| {
                let params: Vec<String> =
                    (1..=width).map(|c| format!("${}", r * width + c)).collect();
                format!("({})", params.join(","))
            })
            .collect();
        format!(
            "DELETE FROM {} WHERE ({}) IN ({})",
            self.quoted_table,
            keys.join(","),
            tuples.join(",")
        )
    }
}

fn quote_ident_one(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

const CREATE_TABLES: &str = "
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

/// Serializes concurrent `CREATE TABLE IF NOT EXISTS` (which can otherwise collide).
const CREATE_LOCK: i64 = 0x0053_5452_4d4b_4954; // "STRMKIT"

impl ExternalCommitter for PostgresCommitter {
    fn describe(&self) -> String {
        format!("postgres sink {}", self.table)
    }

    fn load(
        &mut self,
        task: TaskId,
        stores: &TaskStores,
        sources: &[&str],
    ) -> Result<Vec<Option<i64>>> {
        self.task = Some(task);
        self.with_retries("creating streamkit's tables", |client, this| {
            this.runtime.block_on(async {
                let tx = client.transaction().await?;
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CREATE_LOCK])
                    .await?;
                tx.batch_execute(CREATE_TABLES).await?;
                tx.commit().await
            })
        })?;
        let partition = task.partition;
        for (name, store) in stores {
            let rows = self.with_retries("loading store contents", |client, this| {
                this.runtime.block_on(client.query(
                    "SELECT key, value FROM streamkit_state \
                     WHERE application_id = $1 AND store = $2 AND partition = $3",
                    &[&this.app_id, name, &partition],
                ))
            })?;
            let batch: Vec<(Vec<u8>, Option<Vec<u8>>)> = rows
                .iter()
                .map(|r| (r.get::<_, Vec<u8>>(0), Some(r.get::<_, Vec<u8>>(1))))
                .collect();
            let mut s = store.lock().expect("store lock");
            s.wipe()?;
            s.restore(&batch)?;
            tracing::info!(%task, store = %name, keys = batch.len(), "store loaded from postgres");
        }
        let topics: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
        let offsets = self.with_retries("loading offsets", |client, this| {
            this.runtime.block_on(client.query(
                "SELECT topic, next_offset FROM streamkit_offsets \
                 WHERE application_id = $1 AND partition = $2 AND topic = ANY($3)",
                &[&this.app_id, &partition, &topics],
            ))
        })?;
        let found: HashMap<String, i64> = offsets
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
            .collect();
        self.committed = sources
            .iter()
            .filter_map(|t| found.get(*t).map(|o| (t.to_string(), *o)))
            .collect();
        Ok(sources.iter().map(|t| found.get(*t).copied()).collect())
    }

    fn capture(&mut self, store: &str, key: &[u8], value: Option<&[u8]>) {
        let by_key = match self.state.get_mut(store) {
            Some(m) => m,
            None => self.state.entry(store.to_string()).or_default(),
        };
        by_key.insert(key.to_vec(), value.map(<[u8]>::to_vec));
    }

    fn commit(&mut self, positions: &[(String, i64)]) -> Result<()> {
        let Some(task) = self.task else {
            return Err(Error::Internal(
                "postgres sink committed before load".into(),
            ));
        };
        if self.rows.is_empty() && self.state.is_empty() && positions == self.committed {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.rows);
        let state = std::mem::take(&mut self.state);
        let (upserts, deletes): (Vec<_>, Vec<_>) = rows.iter().partition(|(_, r)| r.is_some());
        let upserts: Vec<Vec<&SqlValue>> = upserts
            .iter()
            .map(|(k, r)| k.iter().chain(r.iter().flatten()).collect())
            .collect();
        let deletes: Vec<&Vec<SqlValue>> = deletes.iter().map(|(k, _)| *k).collect();
        let partition = task.partition;
        let result = self.with_retries("committing", |client, this| {
            let (upserts, deletes, state) = (&upserts, &deletes, &state);
            this.runtime.block_on(async move {
                let tx = client.transaction().await?;
                for chunk in upserts.chunks(this.batch_rows) {
                    let sql = this.upsert_sql(chunk.len());
                    let params: Vec<&(dyn ToSql + Sync)> = chunk
                        .iter()
                        .flatten()
                        .map(|v| *v as &(dyn ToSql + Sync))
                        .collect();
                    tx.execute(&sql, &params).await?;
                }
                for chunk in deletes.chunks(this.batch_rows) {
                    let sql = this.delete_sql(chunk.len());
                    let params: Vec<&(dyn ToSql + Sync)> = chunk
                        .iter()
                        .flat_map(|k| k.iter())
                        .map(|v| v as &(dyn ToSql + Sync))
                        .collect();
                    tx.execute(&sql, &params).await?;
                }
                let put = tx
                    .prepare(
                        "INSERT INTO streamkit_state (application_id, store, partition, key, value) \
                         SELECT $1, $2, $3, k, v FROM UNNEST($4::bytea[], $5::bytea[]) AS t(k, v) \
                         ON CONFLICT (application_id, store, partition, key) DO UPDATE SET value = EXCLUDED.value",
                    )
                    .await?;
                let del = tx
                    .prepare(
                        "DELETE FROM streamkit_state WHERE application_id = $1 AND store = $2 \
                         AND partition = $3 AND key = ANY($4::bytea[])",
                    )
                    .await?;
                for (store, writes) in state {
                    let (mut keys, mut values, mut gone) = (Vec::new(), Vec::new(), Vec::new());
                    for (k, v) in writes {
                        match v {
                            Some(v) => {
                                keys.push(k.as_slice());
                                values.push(v.as_slice());
                            }
                            None => gone.push(k.as_slice()),
                        }
                    }
                    if !keys.is_empty() {
                        tx.execute(&put, &[&this.app_id, store, &partition, &keys, &values])
                            .await?;
                    }
                    if !gone.is_empty() {
                        tx.execute(&del, &[&this.app_id, store, &partition, &gone])
                            .await?;
                    }
                }
                let offsets = tx
                    .prepare(
                        "INSERT INTO streamkit_offsets (application_id, topic, partition, next_offset) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT (application_id, topic, partition) \
                         DO UPDATE SET next_offset = EXCLUDED.next_offset",
                    )
                    .await?;
                for (topic, next) in positions {
                    tx.execute(&offsets, &[&this.app_id, topic, &partition, next])
                        .await?;
                }
                tx.commit().await
            })
        });
        drop((upserts, deletes));
        if result.is_ok() {
            self.committed = positions.to_vec();
        } else {
            // Keep the work for a retry by a caller that survives the error (none today: the
            // thread stops, and the task restarts from the last commit).
            self.rows = rows;
            self.state = state;
        }
        result
    }
}
