//! The committer: one Postgres transaction per task commit holding the changed rows, the
//! store writes and the input offsets; and the load of a task's stores and offsets at start.

#[allow(clippy::wildcard_imports)]
use super::*;

/// How the committer connects, and how long it keeps trying.
pub(super) struct ClientSettings {
    /// The URL's settings with the sink's connect timeout, statement timeout and keepalives.
    pub(super) config: tokio_postgres::Config,
    pub(super) connect_timeout: Duration,
    /// How long one transaction may go unfinished before it is abandoned (`None`: forever).
    pub(super) answer_timeout: Option<Duration>,
    pub(super) retry_for: Duration,
    pub(super) backoff: (Duration, Duration),
}

/// Why one attempt of a call failed.
enum Failure {
    /// Connecting failed.
    Connect(tokio_postgres::Error),
    /// A statement failed.
    Statement(tokio_postgres::Error),
    /// No answer within the time a setting allows.
    NoAnswer {
        waited: Duration,
        setting: &'static str,
    },
}

impl Failure {
    fn is_retriable(&self) -> bool {
        match self {
            // Refused, reset, timed out, or the server starting up or shutting down; but not
            // a refused login or a missing database.
            Failure::Connect(e) => e.as_db_error().is_none() || is_retriable(e),
            Failure::Statement(e) => is_retriable(e),
            Failure::NoAnswer { .. } => true,
        }
    }

    /// Whether the connection is still usable after this failure.
    fn keeps_connection(&self) -> bool {
        matches!(self, Failure::Statement(e) if !e.is_closed())
    }

    fn detail(&self) -> String {
        match self {
            Failure::Connect(e) | Failure::Statement(e) => match e.as_db_error() {
                Some(db) => format!("{} ({})", db.message(), db.code().code()),
                None => match std::error::Error::source(e) {
                    Some(cause) => format!("{e}: {cause}"),
                    None => e.to_string(),
                },
            },
            Failure::NoAnswer { waited, setting } => {
                format!("no answer from the server within {waited:?} (PostgresSink::{setting})")
            }
        }
    }
}

/// Rows and store writes of one task since its last commit, and the connection they go to.
pub(super) struct PostgresCommitter {
    pub(super) settings: ClientSettings,
    pub(super) table: String,
    /// The table, quoted (`"schema"."table"`).
    pub(super) quoted_table: String,
    pub(super) key_columns: Vec<String>,
    pub(super) value_columns: Vec<String>,
    pub(super) batch_rows: usize,
    pub(super) app_id: String,
    pub(super) task: Option<TaskId>,
    /// Key column values → new row values (`None` = delete).
    pub(super) rows: HashMap<Vec<SqlValue>, Option<Vec<SqlValue>>>,
    /// Store name → key → value (`None` = delete).
    pub(super) state: HashMap<String, HashMap<Vec<u8>, Option<Vec<u8>>>>,
    /// The positions stored by the last commit (an idle task does not commit again).
    pub(super) committed: Vec<(String, i64)>,
    pub(super) runtime: tokio::runtime::Runtime,
    pub(super) client: Option<Session>,
}

/// A connection: the client, and the task driving its socket, stopped with it so that a
/// connection abandoned to a hung server does not linger.
pub(super) struct Session {
    client: Client,
    driver: tokio::task::AbortHandle,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

pub(super) fn quote_ident(name: &str) -> String {
    name.split('.')
        .map(|part| format!("\"{}\"", part.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

/// Whether a Postgres error may go away when the transaction is tried again.
pub(super) fn is_retriable(e: &tokio_postgres::Error) -> bool {
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
                // `statement_timeout`: most often a wait for the locks of a transaction whose
                // connection is going away (one abandoned to a network fault).
                || *code == SqlState::QUERY_CANCELED
                || code.code().starts_with("08")
        }
        // No SQLSTATE: the socket failed (an I/O error), or the client refused a value or a
        // row (a conversion error, which another attempt would repeat).
        None => std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()),
    }
}

impl PostgresCommitter {
    pub(super) fn new<K, V>(sink: &PostgresSink<K, V>, app_id: &str) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(PostgresCommitter {
            settings: sink.client_config().map_err(Error::Topology)?,
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

    fn error(&self, doing: &str, failure: &Failure) -> Error {
        Error::Connector {
            connector: self.describe(),
            reason: format!("{doing}: {}", failure.detail()),
            retriable: failure.is_retriable(),
        }
    }

    pub(super) fn write_row(
        &mut self,
        key: Vec<SqlValue>,
        row: Option<Vec<SqlValue>>,
    ) -> Result<()> {
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

    /// Runs `op` with a connected client, reconnecting and retrying while it fails with a
    /// retriable error, for up to `retry_for` after the first failure. Each attempt replays
    /// the whole of `op`: its writes must be absolute (upserts, offsets), so that an attempt
    /// whose commit went through unacknowledged changes nothing when replayed.
    fn with_retries<T>(
        &mut self,
        doing: &str,
        mut op: impl AsyncFnMut(
            &mut Client,
            &PostgresCommitter,
        ) -> std::result::Result<T, tokio_postgres::Error>,
    ) -> Result<T> {
        let mut failures: u32 = 0;
        let mut first_failure: Option<std::time::Instant> = None;
        loop {
            let connected = match self.client.take() {
                Some(c) => Ok(c),
                None => self.connect(),
            };
            let failure = match connected {
                Ok(mut session) => {
                    let this = &*self;
                    let attempt = op(&mut session.client, this);
                    let outcome = this.runtime.block_on(async {
                        let Some(limit) = this.settings.answer_timeout else {
                            return attempt.await.map_err(Failure::Statement);
                        };
                        match tokio::time::timeout(limit, attempt).await {
                            Ok(done) => done.map_err(Failure::Statement),
                            Err(_) => Err(Failure::NoAnswer {
                                waited: limit,
                                setting: "statement_timeout, twice",
                            }),
                        }
                    });
                    match outcome {
                        Ok(v) => {
                            if let Some(since) = first_failure {
                                tracing::info!(sink = %self.describe(), doing, after = ?since.elapsed(),
                                    "postgres call succeeded after retries");
                            }
                            self.client = Some(session);
                            return Ok(v);
                        }
                        Err(failure) => {
                            // A failed transaction is rolled back when dropped; the connection
                            // stays usable unless it closed. One that hung is dropped.
                            if failure.keeps_connection() {
                                self.client = Some(session);
                            }
                            failure
                        }
                    }
                }
                Err(failure) => failure,
            };
            let error = self.error(doing, &failure);
            if !failure.is_retriable() {
                return Err(error);
            }
            let since = *first_failure.get_or_insert_with(std::time::Instant::now);
            let Some(left) = self.settings.retry_for.checked_sub(since.elapsed()) else {
                return Err(Error::Connector {
                    connector: self.describe(),
                    reason: format!(
                        "{doing}: still failing after retrying for {:.1?} \
                         (PostgresSink::retry_for = {:?}): {}",
                        since.elapsed(),
                        self.settings.retry_for,
                        failure.detail()
                    ),
                    retriable: true,
                });
            };
            // The last attempt comes as the window closes.
            let (initial, max) = self.settings.backoff;
            let wait = initial
                .saturating_mul(1 << failures.min(16))
                .min(max)
                .min(left);
            failures += 1;
            tracing::warn!(error = %error, failures, ?wait, "postgres call failed; retrying");
            self.client = None;
            std::thread::sleep(wait);
        }
    }

    fn connect(&self) -> std::result::Result<Session, Failure> {
        let limit = self.settings.connect_timeout;
        self.runtime.block_on(async {
            // tokio-postgres bounds the TCP connect only; this bounds the startup and
            // authentication too (a server that accepts but does not answer).
            let connected = tokio::time::timeout(limit, self.settings.config.connect(NoTls))
                .await
                .map_err(|_| Failure::NoAnswer {
                    waited: limit,
                    setting: "connect_timeout",
                })?;
            let (client, connection) = connected.map_err(Failure::Connect)?;
            let driver = tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %e, "postgres connection closed");
                }
            });
            Ok(Session {
                client,
                driver: driver.abort_handle(),
            })
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

pub(super) fn quote_ident_one(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub(super) const CREATE_TABLES: &str = "
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
pub(super) const CREATE_LOCK: i64 = 0x0053_5452_4d4b_4954; // "STRMKIT"

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
        self.with_retries("creating streamkit's tables", async |client, _| {
            let tx = client.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CREATE_LOCK])
                .await?;
            tx.batch_execute(CREATE_TABLES).await?;
            tx.commit().await
        })?;
        let partition = task.partition;
        for (name, store) in stores {
            let rows = self.with_retries("loading store contents", async |client, this| {
                client
                    .query(
                        "SELECT key, value FROM streamkit_state \
                         WHERE application_id = $1 AND store = $2 AND partition = $3",
                        &[&this.app_id, name, &partition],
                    )
                    .await
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
        let offsets = self.with_retries("loading offsets", async |client, this| {
            client
                .query(
                    "SELECT topic, next_offset FROM streamkit_offsets \
                     WHERE application_id = $1 AND partition = $2 AND topic = ANY($3)",
                    &[&this.app_id, &partition, &topics],
                )
                .await
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
        let result = self.with_retries("committing", async |client, this| {
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
            for (store, writes) in &state {
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
