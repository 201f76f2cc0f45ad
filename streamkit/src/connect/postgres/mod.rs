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
//! Failed Postgres calls are classified. A refused or lost connection, a server starting up
//! or shutting down, a serialization failure, a deadlock or a statement timeout is retried on
//! a fresh connection, backing off exponentially, for up to [`PostgresSink::retry_for`]
//! (2 min); then the stream thread fails with an error naming the sink and that setting. The
//! whole transaction is replayed: upserts and offsets are absolute values, so replaying one
//! that did commit (its acknowledgement lost with the connection) changes nothing. Anything
//! else fails the stream thread with the statement's error. Connecting is bounded by
//! [`PostgresSink::connect_timeout`], statements by the session's
//! [`PostgresSink::statement_timeout`], and TCP keepalives notice a connection whose server
//! vanished. The stream thread waits while a commit is retried, so a database restart delays
//! processing but neither loses nor repeats a row.

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
use crate::processor::Downstream;
use crate::processor::task_state::TaskState;
use crate::processor::{Data, Punctuation};
use crate::record::Change;
use crate::record::Record;
use crate::record::TaskId;
use crate::state::store::TaskStores;
use crate::stream::KStream;
use crate::table::KTable;
use crate::topology::NodeKind;
use crate::topology::node::ExternalCommitter;
use crate::topology::node::{Instance, NodeControl, NodeFactory, erase_input};

mod commit;
mod node;
mod value;

use commit::{ClientSettings, PostgresCommitter};
use node::PostgresSinkFactory;
pub use value::SqlValue;

/// Table holding, per application and source partition, the next input offset to process.
pub const OFFSETS_TABLE: &str = "streamkit_offsets";
/// Table holding the state stores of the sub-topologies that write to Postgres.
pub const STATE_TABLE: &str = "streamkit_state";

/// Rows per multi-row statement.
const DEFAULT_BATCH_ROWS: usize = 500;
/// How long retriable failures are retried: longer than a database restart takes.
const DEFAULT_RETRY_FOR: Duration = Duration::from_secs(120);
/// First and longest wait between two attempts.
const DEFAULT_BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// TCP keepalives: first probe after this much silence, then one every
/// [`KEEPALIVE_INTERVAL`], [`KEEPALIVE_RETRIES`] of them unanswered close the connection, so a
/// server that vanished without closing it is noticed within about 25 s.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_RETRIES: u32 = 3;

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
    retry_for: Duration,
    backoff: (Duration, Duration),
    /// `None`: the URL's `connect_timeout`, else the default.
    connect_timeout: Option<Duration>,
    /// `None`: the URL's `options`' `statement_timeout`, else the default.
    statement_timeout: Option<Duration>,
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
            retry_for: self.retry_for,
            backoff: self.backoff,
            connect_timeout: self.connect_timeout,
            statement_timeout: self.statement_timeout,
        }
    }
}

impl<K, V> std::fmt::Debug for PostgresSink<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSink")
            .field("table", &self.table)
            .field("key_columns", &self.key_columns)
            .field("value_columns", &self.value_columns)
            .field("retry_for", &self.retry_for)
            .field("connect_timeout", &self.connect_timeout)
            .field("statement_timeout", &self.statement_timeout)
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
            retry_for: DEFAULT_RETRY_FOR,
            backoff: DEFAULT_BACKOFF,
            connect_timeout: None,
            statement_timeout: None,
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

    /// How long the sink retries a call that fails in a way that may go away — a refused or
    /// lost connection, a server starting up or shutting down, a serialization failure, a
    /// deadlock, no answer in time — reconnecting after each failure, before it gives up and
    /// fails the stream thread with an error naming the sink and this setting. The stream
    /// thread waits meanwhile: a commit (or the load of a starting task) goes through once the
    /// database is back, exactly once. Keep it well under the consumer's
    /// `max.poll.interval.ms` (5 min), or the group evicts the waiting member.
    /// Default = 2 min.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::connect::postgres::PostgresSink;
    ///
    /// // Ride out database failovers of up to 3 minutes.
    /// let sink = PostgresSink::new("postgres://app@db/cta", "station_taps")
    ///     .key_columns(["station"], |s: &String| vec![s.clone().into()])
    ///     .value_columns(["taps"], |n: &i64| vec![(*n).into()])
    ///     .retry_for(Duration::from_secs(180));
    /// # let _ = sink;
    /// ```
    pub fn retry_for(mut self, window: Duration) -> Self {
        self.retry_for = window;
        self
    }

    /// First and longest wait between two attempts of a failing call; the wait doubles per
    /// failure in a row. Default = 100 ms and 5 s.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::connect::postgres::PostgresSink;
    ///
    /// // Reconnect at most 2 s after the database is back.
    /// let sink = PostgresSink::new("postgres://app@db/cta", "station_taps")
    ///     .key_columns(["station"], |s: &String| vec![s.clone().into()])
    ///     .value_columns(["taps"], |n: &i64| vec![(*n).into()])
    ///     .retry_backoff(Duration::from_millis(50), Duration::from_secs(2));
    /// # let _ = sink;
    /// ```
    pub fn retry_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff = (initial, max.max(initial));
        self
    }

    /// How long connecting may take (TCP connect, then the server's startup and
    /// authentication) before the attempt counts as failed and is retried. Default = the
    /// URL's `connect_timeout` if it has one, else 10 s.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::connect::postgres::PostgresSink;
    ///
    /// let sink = PostgresSink::new("postgres://app@db/cta", "station_taps")
    ///     .key_columns(["station"], |s: &String| vec![s.clone().into()])
    ///     .value_columns(["taps"], |n: &i64| vec![(*n).into()])
    ///     .connect_timeout(Duration::from_secs(3));
    /// # let _ = sink;
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// The sessions' `statement_timeout` (sent as the startup option
    /// `-c statement_timeout=…`): the server cancels a statement running longer (SQLSTATE
    /// 57014), and the transaction is retried like a lost connection — most often it waited
    /// for the row locks of a transaction whose connection is going away. A statement that is
    /// simply slower fails the same way every time, until [`retry_for`](Self::retry_for) runs
    /// out: raise this when loading a large store takes longer. A transaction not finished
    /// within twice this time (a server that stopped answering) is abandoned with its
    /// connection and retried. `Duration::ZERO` turns both off. Default = the
    /// `statement_timeout` in the URL's `options` if any, else 30 s.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamkit::connect::postgres::PostgresSink;
    ///
    /// // Stores of millions of keys take a while to load when a task starts.
    /// let sink = PostgresSink::new("postgres://app@db/cta", "station_taps")
    ///     .key_columns(["station"], |s: &String| vec![s.clone().into()])
    ///     .value_columns(["taps"], |n: &i64| vec![(*n).into()])
    ///     .statement_timeout(Duration::from_secs(120));
    /// # let _ = sink;
    /// ```
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = Some(timeout);
        self
    }

    /// The connection settings: the URL's, with the sink's timeouts and keepalives.
    fn client_config(&self) -> std::result::Result<ClientSettings, String> {
        let mut config: tokio_postgres::Config = self.url.parse().map_err(|e| {
            format!(
                "postgres sink {}: the connection URL is not valid: {e}",
                self.table
            )
        })?;
        let connect_timeout = self
            .connect_timeout
            .or(config.get_connect_timeout().copied())
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        config.connect_timeout(connect_timeout);
        let options = config.get_options().unwrap_or_default().to_string();
        let statement_timeout = match self.statement_timeout {
            Some(t) => Some(t),
            // The URL's own setting stays (and is enforced by the server only).
            None if options.contains("statement_timeout") => None,
            None => Some(DEFAULT_STATEMENT_TIMEOUT),
        };
        if let Some(t) = statement_timeout {
            // A later `-c` overrides an earlier one.
            let setting = format!("-c statement_timeout={}", t.as_millis());
            config.options(if options.is_empty() {
                setting
            } else {
                format!("{options} {setting}")
            });
        }
        if config.get_keepalives() {
            // Unless the URL chose its own (the idle time's default is 2 h).
            if config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
                config.keepalives_idle(KEEPALIVE_IDLE);
            }
            if config.get_keepalives_interval().is_none() {
                config.keepalives_interval(KEEPALIVE_INTERVAL);
            }
            if config.get_keepalives_retries().is_none() {
                config.keepalives_retries(KEEPALIVE_RETRIES);
            }
        }
        Ok(ClientSettings {
            config,
            connect_timeout,
            answer_timeout: statement_timeout
                .filter(|t| !t.is_zero())
                .map(|t| t.saturating_mul(2)),
            retry_for: self.retry_for,
            backoff: self.backoff,
        })
    }

    fn check(&self) -> std::result::Result<(), String> {
        self.client_config()?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(url: &str) -> PostgresSink<String, i64> {
        PostgresSink::new(url, "t")
    }

    #[test]
    fn defaults_add_timeouts_and_keepalives_to_the_url() {
        let s = sink("postgres://app@db/cta").client_config().unwrap();
        assert_eq!(s.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(
            s.config.get_connect_timeout(),
            Some(&DEFAULT_CONNECT_TIMEOUT)
        );
        assert_eq!(s.config.get_options(), Some("-c statement_timeout=30000"));
        assert_eq!(s.answer_timeout, Some(Duration::from_secs(60)));
        assert_eq!(s.config.get_keepalives_idle(), KEEPALIVE_IDLE);
        assert_eq!(s.config.get_keepalives_interval(), Some(KEEPALIVE_INTERVAL));
        assert_eq!(s.config.get_keepalives_retries(), Some(KEEPALIVE_RETRIES));
        assert_eq!(s.retry_for, DEFAULT_RETRY_FOR);
    }

    #[test]
    fn the_urls_own_settings_stay_unless_the_builder_sets_them() {
        let url = "postgres://app@db/cta?connect_timeout=3&keepalives_idle=60\
                   &options=-c%20search_path%3Dx%20-c%20statement_timeout%3D5000";
        let s = sink(url).client_config().unwrap();
        assert_eq!(s.connect_timeout, Duration::from_secs(3));
        assert_eq!(
            s.config.get_options(),
            Some("-c search_path=x -c statement_timeout=5000")
        );
        assert_eq!(s.answer_timeout, None);
        assert_eq!(s.config.get_keepalives_idle(), Duration::from_secs(60));

        let s = sink(url)
            .connect_timeout(Duration::from_secs(1))
            .statement_timeout(Duration::from_millis(1500))
            .client_config()
            .unwrap();
        assert_eq!(s.connect_timeout, Duration::from_secs(1));
        // A later `-c` wins.
        assert_eq!(
            s.config.get_options(),
            Some("-c search_path=x -c statement_timeout=5000 -c statement_timeout=1500")
        );
        assert_eq!(s.answer_timeout, Some(Duration::from_secs(3)));

        let s = sink("postgres://app@db/cta")
            .statement_timeout(Duration::ZERO)
            .client_config()
            .unwrap();
        assert_eq!(s.config.get_options(), Some("-c statement_timeout=0"));
        assert_eq!(s.answer_timeout, None);
    }

    #[test]
    fn a_bad_url_is_an_error_naming_the_sink() {
        let err = sink("postgres://app@db:notaport/cta")
            .client_config()
            .err()
            .unwrap();
        assert!(err.contains("postgres sink t"), "{err}");
        assert!(err.contains("URL"), "{err}");
    }
}
