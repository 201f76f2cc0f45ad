//! What executing a statement returns: status, rows, sources, queries, descriptions, and the
//! push queries' row streams.

#[allow(clippy::wildcard_imports)]
use super::*;

/// What one statement did.
#[derive(Debug, Clone)]
#[non_exhaustive]
// One per statement, matched by callers: boxing `Description`'s source would cost them an
// indirection to save bytes nobody holds for long.
#[allow(clippy::large_enum_variant)]
pub enum StatementResult {
    /// A statement that changed the metastore (`CREATE`, `DROP`, `TERMINATE`, `INSERT`).
    Status {
        /// The statement's text.
        statement: String,
        /// What happened.
        message: String,
        /// The query it started, if any.
        query_id: Option<String>,
    },
    /// `SHOW STREAMS` or `SHOW TABLES`.
    Sources {
        /// The statement's text.
        statement: String,
        /// The streams or tables.
        sources: Vec<SourceInfo>,
    },
    /// `SHOW QUERIES`.
    Queries {
        /// The statement's text.
        statement: String,
        /// The running queries.
        queries: Vec<QueryInfo>,
    },
    /// `DESCRIBE`.
    Description {
        /// The statement's text.
        statement: String,
        /// The stream or table.
        source: SourceInfo,
        /// Queries reading it.
        read_by: Vec<String>,
    },
    /// `EXPLAIN`.
    Explain {
        /// The statement's text.
        statement: String,
        /// The query's statement.
        query: String,
        /// Its topology, described.
        topology: String,
    },
    /// A pull query's rows.
    Rows {
        /// The statement's text.
        statement: String,
        /// Columns: key columns first.
        columns: Vec<Column>,
        /// The rows.
        rows: Vec<Row>,
    },
}

/// A running push query: its columns, and the rows as they come.
pub struct PushQuery {
    /// Columns: key columns first (then `WINDOWSTART`, `WINDOWEND` when windowed).
    pub columns: Vec<Column>,
    /// Rows; `None` values (deletions) are not sent. At most [`PUSH_BUFFER_ROWS`] (or the
    /// engine's [`push_limits`](Engine::push_limits)) wait here:
    /// a reader that falls further behind is dropped (the channel closes and
    /// [`overflowed`](Self::overflowed) says why), so a slow client cannot grow memory.
    pub rows: tokio::sync::mpsc::Receiver<Row>,
    pub(super) app: Arc<KafkaStreams>,
    pub(super) overflowed: Arc<std::sync::atomic::AtomicBool>,
    /// Held while the query runs: counts towards [`MAX_PUSH_QUERIES`].
    pub(super) _running: PushSlot,
}

/// Rows a push query buffers for its reader before it drops the reader.
pub const PUSH_BUFFER_ROWS: usize = 10_000;
/// Push queries an engine runs at once; another is refused until one ends.
pub const MAX_PUSH_QUERIES: usize = 32;

/// One running push query's place in its engine's count.
pub(super) struct PushSlot(pub(super) Arc<std::sync::atomic::AtomicUsize>);

impl Drop for PushSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl PushQuery {
    /// Stops the query's application and removes its state directory and (on a broker with
    /// the admin API) its internal topics and consumer group.
    pub fn close(&self) -> crate::Result<()> {
        super::queries::retire(&self.app)
    }

    /// Whether the reader fell more than [`PUSH_BUFFER_ROWS`] rows behind, so the query
    /// stopped sending (the rows channel is closed).
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(std::sync::atomic::Ordering::Acquire)
    }
}

impl Drop for PushQuery {
    fn drop(&mut self) {
        // Closing joins the app's threads: not on the (possibly async) caller's thread.
        let app = self.app.clone();
        std::thread::spawn(move || {
            if let Err(e) = super::queries::retire(&app) {
                tracing::warn!(error = %e, "closing a push query");
            }
        });
    }
}

/// What [`Engine::query`] returns.
pub enum QueryResult {
    /// A pull query's rows.
    Pull {
        /// Columns, in projection order.
        columns: Vec<Column>,
        /// The rows.
        rows: Vec<Row>,
    },
    /// A running push query.
    Push(PushQuery),
}
