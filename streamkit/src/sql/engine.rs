//! [`Engine`]: executes statements, keeps the metastore of streams, tables and queries, and
//! runs each persistent query as its own [`KafkaStreams`] application.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::format::{Column, Format};
use super::parse::{self, ExplainTarget, Kind, Parsed, Pos, Property, Query, Statement};
use super::plan::{self, Planned, Qid, RowSink, WindowKind};
use super::value::{Row, Value};
use super::{SqlError, expr};
use crate::config::StreamsConfig;
use crate::runtime::KafkaStreams;
use crate::stream::StreamsBuilder;
use crate::topology::Topology;

/// A declared stream or table.
#[derive(Debug, Clone)]
pub struct SourceInfo {
    /// Its name.
    pub name: String,
    /// Stream or table.
    pub kind: Kind,
    /// The Kafka topic.
    pub topic: String,
    /// Key columns.
    pub key: Vec<Column>,
    /// Value columns.
    pub value: Vec<Column>,
    /// `KEY_FORMAT`.
    pub key_format: Format,
    /// `VALUE_FORMAT`.
    pub value_format: Format,
    /// The legacy `KEY='col'` property on a stream: the key column also sits in the value,
    /// at this index.
    pub key_in_value: Option<usize>,
    /// The legacy `KEY='col'` property on a table, naming `col`: as in KSQL 5 the property is
    /// a hint only, the table is keyed by the message key (the string column `ROWKEY`) and
    /// `col` stays a value column.
    pub key_hint: Option<String>,
    /// `TIMESTAMP='col'`: index of the value column holding the event time (ms).
    pub timestamp: Option<usize>,
    /// How the key is windowed, for windowed tables.
    pub window: Option<WindowKind>,
    /// The statement that declared it.
    pub statement: String,
    /// The query writing it, for `CREATE … AS SELECT`.
    pub writer: Option<String>,
    /// The store holding it, for pull queries.
    pub store: Option<String>,
    /// The schema registry its `AVRO` key or value goes through.
    pub registry: Option<crate::serde::avro::RegistryClient>,
}

impl SourceInfo {
    /// The value columns as they are on the topic (the key column too under `KEY='col'`).
    pub fn read_columns(&self) -> Vec<Column> {
        let mut v = self.value.clone();
        if let (Some(k), [key]) = (self.key_in_value, self.key.as_slice()) {
            v.insert(k.min(v.len()), key.clone());
        }
        v
    }
}

/// A persistent query.
#[derive(Clone)]
pub struct QueryInfo {
    /// Its id, `CSAS_<NAME>_<n>`, `CTAS_<NAME>_<n>` or `INSERTQUERY_<n>`.
    pub id: String,
    /// The statement that started it.
    pub statement: String,
    /// The stream or table it writes.
    pub sink: String,
    /// Its topology, described.
    pub topology: String,
    query: Query,
    app: Option<Arc<KafkaStreams>>,
}

impl std::fmt::Debug for QueryInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryInfo")
            .field("id", &self.id)
            .field("sink", &self.sink)
            .finish()
    }
}

impl QueryInfo {
    /// The application running it (`None` in offline mode).
    pub fn app(&self) -> Option<&Arc<KafkaStreams>> {
        self.app.as_ref()
    }

    /// The application id it runs under.
    pub fn application_id(&self) -> String {
        application_id(&self.id)
    }
}

fn application_id(qid: &str) -> String {
    format!("streamkit-sql-{}", qid.to_lowercase())
}

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
    app: Arc<KafkaStreams>,
    overflowed: Arc<std::sync::atomic::AtomicBool>,
    /// Held while the query runs: counts towards [`MAX_PUSH_QUERIES`].
    _running: PushSlot,
}

/// Rows a push query buffers for its reader before it drops the reader.
pub const PUSH_BUFFER_ROWS: usize = 10_000;
/// Push queries an engine runs at once; another is refused until one ends.
pub const MAX_PUSH_QUERIES: usize = 32;

/// One running push query's place in its engine's count.
struct PushSlot(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for PushSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl PushQuery {
    /// Stops the query's application.
    pub fn close(&self) -> crate::Result<()> {
        self.app.close()
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
            if let Err(e) = app.close() {
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

enum Mode {
    /// Queries are planned on demand into one topology for the test driver.
    Offline,
    /// Each query runs as a `KafkaStreams` app configured from this template.
    Live(Box<StreamsConfig>),
}

/// Executes SQL statements.
///
/// [`Engine::offline`] plans every persistent query into one topology (see
/// [`topology`](Engine::topology)) for the [`TopologyTestDriver`](crate::testing::TopologyTestDriver);
/// [`Engine::new`] starts each query as its own application against a cluster.
pub struct Engine {
    mode: Mode,
    sources: BTreeMap<String, SourceInfo>,
    queries: BTreeMap<String, QueryInfo>,
    next_query: usize,
    transient: usize,
    /// Client settings for the queries the current statements start (`streamsProperties`).
    properties: BTreeMap<String, String>,
    /// Push queries running now.
    pushing: Arc<std::sync::atomic::AtomicUsize>,
    /// At most this many push queries at once, each buffering at most `push_buffer` rows.
    max_pushing: usize,
    push_buffer: usize,
    /// Where `AVRO` keys and values find their schemas.
    registry: Option<crate::serde::avro::RegistryClient>,
}

fn prop<'a>(props: &'a [Property], name: &str) -> Option<&'a Property> {
    props.iter().find(|p| p.name == name)
}

fn format_prop(p: Option<&Property>, default: Format) -> Result<Format, SqlError> {
    match p {
        None => Ok(default),
        Some(p) => match p.value.to_uppercase().as_str() {
            "JSON" => Ok(Format::Json),
            "KAFKA" => Ok(Format::Kafka),
            "AVRO" => Ok(Format::Avro),
            "PROTOBUF" | "JSON_SR" | "DELIMITED" => Err(SqlError::at(
                p.pos,
                format!(
                    "{} format {} is not supported yet (JSON, KAFKA and AVRO are)",
                    p.name, p.value
                ),
            )),
            other => Err(SqlError::at(p.pos, format!("unknown format {other}"))),
        },
    }
}

const KNOWN_PROPS: &[&str] = &[
    "KAFKA_TOPIC",
    "VALUE_FORMAT",
    "KEY_FORMAT",
    "FORMAT",
    "PARTITIONS",
    "REPLICAS",
    "TIMESTAMP",
    "TIMESTAMP_FORMAT",
    "KEY",
    "WRAP_SINGLE_VALUE",
];

fn check_props(props: &[Property]) -> Result<(), SqlError> {
    for p in props {
        if !KNOWN_PROPS.contains(&p.name.as_str()) {
            return Err(SqlError::at(p.pos, format!("unknown property {}", p.name)));
        }
    }
    Ok(())
}

impl Engine {
    /// An engine whose queries run against the cluster `config` names (bootstrap servers or
    /// embedded broker, state directory, client settings); each query gets its own
    /// application id, `streamkit-sql-<query id>`.
    pub fn new(config: StreamsConfig) -> Self {
        let mut config = config;
        config.query_server = None;
        Engine::with_mode(Mode::Live(Box::new(config)))
    }

    /// How many push queries may run at once (default [`MAX_PUSH_QUERIES`]) and how many
    /// rows each buffers for a slow reader before dropping it (default [`PUSH_BUFFER_ROWS`]).
    pub fn push_limits(mut self, queries: usize, buffered_rows: usize) -> Self {
        self.max_pushing = queries;
        self.push_buffer = buffered_rows.max(1);
        self
    }

    /// An engine that runs nothing: queries are planned into [`topology`](Engine::topology).
    pub fn offline() -> Self {
        Engine::with_mode(Mode::Offline)
    }

    /// The bearer token the engine's REST server requires (the application config's
    /// [`query_server_token`](StreamsConfig::query_server_token)); `None` offline or unset.
    pub(crate) fn token(&self) -> Option<String> {
        match &self.mode {
            Mode::Live(config) => config.query_server_token.clone(),
            Mode::Offline => None,
        }
    }

    fn with_mode(mode: Mode) -> Self {
        Engine {
            mode,
            sources: BTreeMap::new(),
            queries: BTreeMap::new(),
            next_query: 0,
            transient: 0,
            pushing: Arc::default(),
            max_pushing: MAX_PUSH_QUERIES,
            push_buffer: PUSH_BUFFER_ROWS,
            properties: BTreeMap::new(),
            registry: None,
        }
    }

    /// The schema registry `VALUE_FORMAT='AVRO'` and `KEY_FORMAT='AVRO'` read and write
    /// through: `CREATE … AS SELECT` registers its output's schema there. Default: none, and
    /// the `AVRO` format fails.
    pub fn schema_registry(mut self, registry: crate::serde::avro::RegistryClient) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Every persistent query planned into one topology (offline mode; also works live,
    /// for inspection).
    pub fn topology(&self) -> crate::Result<Topology> {
        let b = StreamsBuilder::new();
        let lookup = |n: &str| self.sources.get(n).cloned();
        let shared = plan::SharedSources::default();
        for q in self.queries.values() {
            let planned = plan::plan(
                &b,
                &lookup,
                &q.query,
                Qid {
                    id: &q.id,
                    memory: matches!(self.mode, Mode::Offline),
                    shared: Some(&shared),
                },
            )
            .map_err(|e| crate::Error::Config(e.to_string()))?;
            let sink = &self.sources[&q.sink];
            planned.to_topic(sink);
        }
        b.build()
    }

    /// A declared stream or table.
    pub fn source(&self, name: &str) -> Option<&SourceInfo> {
        self.sources.get(&name.to_uppercase())
    }

    /// Every declared stream and table, by name.
    pub fn sources(&self) -> impl Iterator<Item = &SourceInfo> {
        self.sources.values()
    }

    /// The running persistent queries.
    pub fn queries(&self) -> impl Iterator<Item = &QueryInfo> {
        self.queries.values()
    }

    /// Executes every statement in `sql` in order; stops at the first error.
    pub fn execute(&mut self, sql: &str) -> Result<Vec<StatementResult>, SqlError> {
        self.execute_with(sql, &BTreeMap::new()).map_err(|(_, e)| e)
    }

    /// Executes every statement in `sql` in order, starting queries with `properties` as
    /// client settings (ksqlDB's `streamsProperties`; a `ksql.streams.` prefix is removed,
    /// other `ksql.` settings are ignored, and of the rest only `auto.offset.reset` may be
    /// set per request: others are an error). On error, returns the results of the statements
    /// that succeeded and the error.
    #[allow(clippy::type_complexity)]
    pub fn execute_with(
        &mut self,
        sql: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<Vec<StatementResult>, (Vec<StatementResult>, SqlError)> {
        let parsed = parse::parse(sql).map_err(|e| (Vec::new(), e))?;
        self.properties = client_properties(properties).map_err(|e| (Vec::new(), e))?;
        let mut out = Vec::new();
        for p in parsed {
            match self.execute_parsed(p) {
                Ok(r) => out.push(r),
                Err(e) => {
                    self.properties.clear();
                    return Err((out, e));
                }
            }
        }
        self.properties.clear();
        Ok(out)
    }

    fn execute_parsed(&mut self, p: Parsed) -> Result<StatementResult, SqlError> {
        let Parsed {
            statement,
            text,
            pos,
        } = p;
        let status = |message: String, query_id: Option<String>| StatementResult::Status {
            statement: text.clone(),
            message,
            query_id,
        };
        match statement {
            Statement::CreateSource {
                kind,
                name,
                columns,
                props,
                if_not_exists,
            } => {
                if self.sources.contains_key(&name) {
                    if if_not_exists {
                        return Ok(status(
                            format!("{} {name} already exists", kind.name()),
                            None,
                        ));
                    }
                    return Err(SqlError::at(pos, format!("{name} already exists")));
                }
                let info = self.declare(kind, &name, columns, &props, &text, pos)?;
                self.sources.insert(name.clone(), info);
                Ok(status(
                    format!(
                        "{} created",
                        if kind == Kind::Stream {
                            "Stream"
                        } else {
                            "Table"
                        }
                    ),
                    None,
                ))
            }
            Statement::CreateAs {
                kind,
                name,
                props,
                query,
            } => {
                if self.sources.contains_key(&name) {
                    return Err(SqlError::at(pos, format!("{name} already exists")));
                }
                check_props(&props)?;
                let qid = format!(
                    "{}_{}_{}",
                    if kind == Kind::Stream { "CSAS" } else { "CTAS" },
                    name,
                    self.next_query
                );
                let planned = self.plan_query(&query, &qid)?;
                if planned.kind != kind {
                    return Err(SqlError::at(
                        pos,
                        format!(
                            "the query produces a {}; use CREATE {}",
                            planned.kind.name(),
                            planned.kind.name()
                        ),
                    ));
                }
                let first = self.first_source(&query)?;
                let topic = prop(&props, "KAFKA_TOPIC")
                    .map(|p| p.value.clone())
                    .unwrap_or_else(|| name.clone());
                let value_format = format_prop(
                    prop(&props, "VALUE_FORMAT").or(prop(&props, "FORMAT")),
                    first.value_format,
                )?;
                let key_format = format_prop(
                    prop(&props, "KEY_FORMAT").or(prop(&props, "FORMAT")),
                    first.key_format,
                )?;
                let partitions = partitions(&props)?;
                let info = SourceInfo {
                    name: name.clone(),
                    kind,
                    topic: topic.clone(),
                    key: planned.key.clone(),
                    value: planned.value.clone(),
                    key_format,
                    value_format,
                    key_in_value: None,
                    key_hint: None,
                    timestamp: None,
                    window: planned.window,
                    statement: text.clone(),
                    writer: Some(qid.clone()),
                    store: planned.store.clone(),
                    registry: self.registry.clone(),
                };
                let q = self.start(&qid, &text, &name, query, &info, partitions, &first)?;
                self.sources.insert(name.clone(), info);
                self.queries.insert(qid.clone(), q);
                self.next_query += 1;
                Ok(status(format!("Created query with ID {qid}"), Some(qid)))
            }
            Statement::InsertInto { target, query } => {
                let sink = self
                    .sources
                    .get(&target)
                    .cloned()
                    .ok_or_else(|| SqlError::at(pos, format!("{target} does not exist")))?;
                if sink.kind != Kind::Stream {
                    return Err(SqlError::at(pos, "INSERT INTO needs a stream"));
                }
                let qid = format!("INSERTQUERY_{}", self.next_query);
                let planned = self.plan_query(&query, &qid)?;
                let names = |c: &[Column]| {
                    c.iter()
                        .map(|c| (c.name.clone(), c.ty.clone()))
                        .collect::<Vec<_>>()
                };
                if planned.kind != Kind::Stream
                    || names(&planned.value) != names(&sink.value)
                    || names(&planned.key) != names(&sink.key)
                {
                    return Err(SqlError::at(
                        pos,
                        format!("the query's columns do not match {target}'s"),
                    ));
                }
                let first = self.first_source(&query)?;
                let q = self.start(&qid, &text, &target, query, &sink, None, &first)?;
                self.queries.insert(qid.clone(), q);
                self.next_query += 1;
                Ok(status(format!("Created query with ID {qid}"), Some(qid)))
            }
            Statement::Select(query) => {
                if query.emit.is_some() {
                    return Err(SqlError::at(
                        pos,
                        "push queries (EMIT CHANGES) stream their rows: send them to /query",
                    ));
                }
                let (columns, rows) = self.pull(&query, pos)?;
                Ok(StatementResult::Rows {
                    statement: text,
                    columns,
                    rows,
                })
            }
            Statement::Drop {
                kind,
                name,
                if_exists,
                delete_topic,
            } => {
                let Some(src) = self.sources.get(&name) else {
                    if if_exists {
                        return Ok(status(format!("{name} does not exist"), None));
                    }
                    return Err(SqlError::at(pos, format!("{name} does not exist")));
                };
                if src.kind != kind {
                    return Err(SqlError::at(
                        pos,
                        format!("{name} is a {}, not a {}", src.kind.name(), kind.name()),
                    ));
                }
                let readers = self.readers(&name);
                if let Some(q) = readers.first() {
                    return Err(SqlError::at(
                        pos,
                        format!("cannot drop {name}: query {q} reads it; TERMINATE it first"),
                    ));
                }
                if delete_topic {
                    return Err(SqlError::at(pos, "DELETE TOPIC is not supported yet"));
                }
                // The query writing it stops with it, as in ksqlDB.
                let writers: Vec<String> = self
                    .queries
                    .values()
                    .filter(|q| q.sink == name)
                    .map(|q| q.id.clone())
                    .collect();
                for w in writers {
                    self.terminate(&w)?;
                }
                self.sources.remove(&name);
                Ok(status(format!("Source `{name}` was dropped"), None))
            }
            Statement::Show(what) => match what.as_str() {
                "STREAMS" | "TABLES" => Ok(StatementResult::Sources {
                    statement: text,
                    sources: self
                        .sources
                        .values()
                        .filter(|s| (s.kind == Kind::Stream) == (what == "STREAMS"))
                        .cloned()
                        .collect(),
                }),
                "QUERIES" => Ok(StatementResult::Queries {
                    statement: text,
                    queries: self.queries.values().cloned().collect(),
                }),
                _ => Err(SqlError::at(
                    pos,
                    format!("SHOW {what} is not supported yet"),
                )),
            },
            Statement::Describe { name, .. } => {
                let source = self
                    .sources
                    .get(&name)
                    .cloned()
                    .ok_or_else(|| SqlError::at(pos, format!("{name} does not exist")))?;
                Ok(StatementResult::Description {
                    statement: text,
                    read_by: self.readers(&name),
                    source,
                })
            }
            Statement::Explain(target) => match *target {
                ExplainTarget::Query(id) => {
                    let q = self
                        .queries
                        .get(&id)
                        .ok_or_else(|| SqlError::at(pos, format!("query {id} does not exist")))?;
                    Ok(StatementResult::Explain {
                        statement: text,
                        query: q.statement.clone(),
                        topology: q.topology.clone(),
                    })
                }
                ExplainTarget::Statement(
                    Statement::CreateAs { query, .. }
                    | Statement::InsertInto { query, .. }
                    | Statement::Select(query),
                ) => {
                    let b = StreamsBuilder::new();
                    let lookup = |n: &str| self.sources.get(n).cloned();
                    let planned = plan::plan(
                        &b,
                        &lookup,
                        &query,
                        Qid {
                            id: "EXPLAIN",
                            memory: false,
                            shared: None,
                        },
                    )?;
                    planned.to_fn(Arc::new(|_, _, _| {}));
                    let topology = b
                        .build()
                        .map_err(|e| SqlError::at(pos, e.to_string()))?
                        .describe()
                        .to_string();
                    Ok(StatementResult::Explain {
                        query: text.clone(),
                        statement: text,
                        topology,
                    })
                }
                ExplainTarget::Statement(_) => {
                    Err(SqlError::at(pos, "EXPLAIN takes a query or a query id"))
                }
            },
            Statement::Terminate(id) => {
                let ids: Vec<String> = if id == "ALL" {
                    self.queries.keys().cloned().collect()
                } else if self.queries.contains_key(&id) {
                    vec![id]
                } else {
                    return Err(SqlError::at(pos, format!("query {id} does not exist")));
                };
                for id in &ids {
                    self.terminate(id)?;
                }
                Ok(status(
                    format!("Query terminated: {}", ids.join(", ")),
                    None,
                ))
            }
        }
    }

    fn terminate(&mut self, id: &str) -> Result<(), SqlError> {
        if let Some(q) = self.queries.remove(id)
            && let Some(app) = q.app
        {
            app.close()
                .map_err(|e| SqlError::new(format!("stopping {id}: {e}")))?;
        }
        Ok(())
    }

    /// Queries reading `name`.
    fn readers(&self, name: &str) -> Vec<String> {
        self.queries
            .values()
            .filter(|q| query_sources(&q.query).iter().any(|s| s == name))
            .map(|q| q.id.clone())
            .collect()
    }

    fn first_source(&self, query: &Query) -> Result<SourceInfo, SqlError> {
        let names = query_sources(query);
        names
            .first()
            .and_then(|n| self.sources.get(n))
            .cloned()
            .ok_or_else(|| SqlError::new("the query reads no known source"))
    }

    fn plan_query(&self, query: &Query, qid: &str) -> Result<Planned, SqlError> {
        let b = StreamsBuilder::new();
        let lookup = |n: &str| self.sources.get(n).cloned();
        plan::plan(
            &b,
            &lookup,
            query,
            Qid {
                id: qid,
                memory: false,
                shared: None,
            },
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn start(
        &self,
        qid: &str,
        text: &str,
        sink_name: &str,
        query: Query,
        sink: &SourceInfo,
        partitions: Option<i32>,
        first: &SourceInfo,
    ) -> Result<QueryInfo, SqlError> {
        let b = StreamsBuilder::new();
        let lookup = |n: &str| self.sources.get(n).cloned();
        let planned = plan::plan(
            &b,
            &lookup,
            &query,
            Qid {
                id: qid,
                memory: false,
                shared: None,
            },
        )?;
        planned.to_topic(sink);
        let topology = b
            .build()
            .map_err(|e| SqlError::new(format!("{qid}: {e}")))?;
        let described = topology.describe().to_string();
        let app = match &self.mode {
            Mode::Offline => None,
            Mode::Live(template) => {
                let mut config = (**template).clone();
                config.application_id = application_id(qid);
                for (k, v) in &self.properties {
                    config = config.set(k.clone(), v.clone());
                }
                let existing = crate::runtime::admin::topic_partitions(&config)
                    .map_err(|e| SqlError::new(format!("{qid}: {e}")))?;
                if !existing.contains_key(&sink.topic) {
                    let n = partitions
                        .or_else(|| existing.get(&first.topic).copied())
                        .unwrap_or(1);
                    crate::runtime::admin::create_topics(
                        &config,
                        &[(sink.topic.clone(), n, Vec::new())],
                    )
                    .map_err(|e| SqlError::new(format!("creating topic {}: {e}", sink.topic)))?;
                }
                let app = KafkaStreams::new(topology, config)
                    .map_err(|e| SqlError::new(format!("{qid}: {e}")))?;
                app.start()
                    .map_err(|e| SqlError::new(format!("{qid}: {e}")))?;
                Some(Arc::new(app))
            }
        };
        Ok(QueryInfo {
            id: qid.to_string(),
            statement: text.to_string(),
            sink: sink_name.to_string(),
            topology: described,
            query,
            app,
        })
    }

    /// Declares a stream or table over a topic.
    fn declare(
        &self,
        kind: Kind,
        name: &str,
        columns: Vec<parse::ColumnDef>,
        props: &[Property],
        text: &str,
        pos: Pos,
    ) -> Result<SourceInfo, SqlError> {
        check_props(props)?;
        let topic = prop(props, "KAFKA_TOPIC")
            .ok_or_else(|| SqlError::at(pos, "WITH (KAFKA_TOPIC='…') is required"))?
            .value
            .clone();
        let value_format = format_prop(
            prop(props, "VALUE_FORMAT").or(prop(props, "FORMAT")),
            Format::Json,
        )
        .and_then(|f| {
            if prop(props, "VALUE_FORMAT").is_none() && prop(props, "FORMAT").is_none() {
                Err(SqlError::at(pos, "WITH (VALUE_FORMAT='…') is required"))
            } else {
                Ok(f)
            }
        })?;
        let key_format = format_prop(
            prop(props, "KEY_FORMAT").or(prop(props, "FORMAT")),
            Format::Kafka,
        )?;
        // As ksqlDB does: with no columns listed, an Avro source's value columns come from
        // the latest schema registered for its topic.
        let inferred = match (&self.registry, columns.is_empty(), value_format) {
            (Some(r), true, Format::Avro) => super::format::avro_columns(r, &topic)
                .map_err(|e| SqlError::at(pos, e.to_string()))?,
            _ => Vec::new(),
        };
        if columns.is_empty() && inferred.is_empty() {
            return Err(SqlError::at(
                pos,
                "columns are required (schema inference needs VALUE_FORMAT='AVRO' and a registry)",
            ));
        }
        let mut key = Vec::new();
        let mut value = Vec::new();
        for c in &columns {
            let col = Column {
                name: c.name.clone(),
                ty: expr::sql_type(&c.ty, c.pos)?,
            };
            if key
                .iter()
                .chain(&value)
                .any(|x: &Column| x.name == col.name)
            {
                return Err(SqlError::at(
                    c.pos,
                    format!("duplicate column {}", col.name),
                ));
            }
            if c.key {
                key.push(col);
            } else {
                value.push(col);
            }
        }
        value.extend(inferred);
        if kind == Kind::Table && key.is_empty() && prop(props, "KEY").is_none() {
            return Err(SqlError::at(pos, "a table needs a PRIMARY KEY column"));
        }
        let mut key_in_value = None;
        let mut key_hint = None;
        let mut key_format = key_format;
        if let Some(p) = prop(props, "KEY") {
            if !key.is_empty() {
                return Err(SqlError::at(p.pos, "KEY='…' conflicts with the KEY column"));
            }
            let wanted = p.value.trim_matches('`').to_uppercase();
            let idx = value.iter().position(|c| c.name == wanted).ok_or_else(|| {
                SqlError::at(p.pos, format!("KEY names an unknown column {}", p.value))
            })?;
            if kind == Kind::Table {
                // KSQL 5 semantics: one row per message key, whatever `col` holds; a table
                // re-keyed by `col` would keep one row per station of the CTA turnstile
                // events (keyed by time) instead of one per entry.
                if let Some(f) = prop(props, "KEY_FORMAT") {
                    return Err(SqlError::at(
                        f.pos,
                        "a table with KEY='…' is keyed by its message key as a string \
                         (ROWKEY); KEY_FORMAT does not apply (declare a PRIMARY KEY column \
                         instead)",
                    ));
                }
                if value.iter().any(|c| c.name == super::format::ROWKEY) {
                    return Err(SqlError::at(
                        p.pos,
                        "a table with KEY='…' has the key column ROWKEY; rename the ROWKEY column",
                    ));
                }
                key_hint = Some(wanted);
                key_format = Format::Kafka;
                key.push(super::format::rowkey_column());
            } else {
                key_in_value = Some(idx);
                key.push(value.remove(idx));
            }
        }
        if key_format == Format::Kafka && key.len() > 1 {
            return Err(SqlError::at(
                pos,
                "several key columns need KEY_FORMAT='JSON'",
            ));
        }
        let read = {
            let mut v = value.clone();
            if let Some(k) = key_in_value {
                v.insert(k, key[0].clone());
            }
            v
        };
        if value_format == Format::Kafka && read.len() != 1 {
            return Err(SqlError::at(
                pos,
                "VALUE_FORMAT='KAFKA' holds exactly one value column",
            ));
        }
        let timestamp = match prop(props, "TIMESTAMP") {
            None => None,
            Some(p) => {
                let wanted = p.value.to_uppercase();
                let idx = read.iter().position(|c| c.name == wanted).ok_or_else(|| {
                    SqlError::at(
                        p.pos,
                        format!("TIMESTAMP names an unknown value column {}", p.value),
                    )
                })?;
                if !matches!(read[idx].ty, super::SqlType::BigInt | super::SqlType::Int) {
                    return Err(SqlError::at(
                        p.pos,
                        "TIMESTAMP needs a BIGINT column of epoch milliseconds",
                    ));
                }
                Some(idx)
            }
        };
        if let Mode::Live(template) = &self.mode {
            let existing = crate::runtime::admin::topic_partitions(template)
                .map_err(|e| SqlError::new(e.to_string()))?;
            if !existing.contains_key(&topic) {
                match partitions(props)? {
                    Some(n) => crate::runtime::admin::create_topics(
                        template,
                        &[(topic.clone(), n, Vec::new())],
                    )
                    .map_err(|e| SqlError::new(format!("creating topic {topic}: {e}")))?,
                    None => {
                        return Err(SqlError::at(
                            pos,
                            format!("topic {topic} does not exist; give PARTITIONS to create it"),
                        ));
                    }
                }
            }
        }
        Ok(SourceInfo {
            name: name.to_string(),
            kind,
            topic,
            key,
            value,
            key_format,
            value_format,
            key_in_value,
            key_hint,
            timestamp,
            window: None,
            statement: text.to_string(),
            writer: None,
            store: None,
            registry: self.registry.clone(),
        })
    }

    /// Answers a pull query from the materialized table's store.
    fn pull(&self, query: &Query, pos: Pos) -> Result<(Vec<Column>, Vec<Row>), SqlError> {
        let names = query_sources(query);
        let [name] = names.as_slice() else {
            return Err(SqlError::at(pos, "pull queries read one table"));
        };
        let src = self
            .sources
            .get(name)
            .ok_or_else(|| SqlError::at(pos, format!("{name} does not exist")))?;
        let (Some(store), Some(writer)) = (&src.store, &src.writer) else {
            return Err(SqlError::at(
                pos,
                format!(
                    "{name} is not materialized: pull queries read tables created with CREATE TABLE … AS SELECT"
                ),
            ));
        };
        if src.window.is_some() {
            return Err(SqlError::at(
                pos,
                "pull queries over windowed tables are not supported yet",
            ));
        }
        let app = self
            .queries
            .get(writer)
            .and_then(|q| q.app.clone())
            .ok_or_else(|| SqlError::at(pos, "the table's query is not running"))?;
        let kv = app
            .store::<Value, Row>(store)
            .map_err(|e| SqlError::at(pos, e.to_string()))?;
        // `WHERE key = literal` is a point lookup; anything else scans the store.
        let rows = match super::pull::key_lookup(query, src) {
            Some(key) => kv
                .get(&key)
                .map_err(|e| SqlError::at(pos, e.to_string()))?
                .map(|row| vec![(key, row)])
                .unwrap_or_default(),
            None => kv.all().map_err(|e| SqlError::at(pos, e.to_string()))?,
        };
        // Plan the projection and filter over the stored rows as a one-off table scan.
        super::pull::answer(query, src, rows)
    }

    /// Runs a query as ksqlDB's `/query` endpoint does: a pull query (`SELECT … FROM table
    /// [WHERE …]`) is answered at once; a push query (`… EMIT CHANGES`) starts streaming.
    pub fn query(
        &mut self,
        sql: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<QueryResult, SqlError> {
        let p = parse_one(sql, "send one query")?;
        match &p.statement {
            Statement::Select(q) if q.emit.is_some() => {
                Ok(QueryResult::Push(self.push(sql, properties)?))
            }
            Statement::Select(q) => {
                let (columns, rows) = self.pull(q, p.pos)?;
                Ok(QueryResult::Pull { columns, rows })
            }
            _ => Err(SqlError::at(
                p.pos,
                "expected a SELECT; send other statements to /ksql",
            )),
        }
    }

    /// Starts a push query (`SELECT … EMIT CHANGES`): a transient application whose rows
    /// arrive on the returned channel. `properties` are passed to the application's
    /// clients (for example `auto.offset.reset`).
    pub fn push(
        &mut self,
        sql: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<PushQuery, SqlError> {
        let p = parse_one(sql, "a push query is one statement")?;
        let properties = client_properties(properties)?;
        let Statement::Select(query) = p.statement else {
            return Err(SqlError::at(p.pos, "expected SELECT … EMIT CHANGES"));
        };
        let Mode::Live(template) = &self.mode else {
            return Err(SqlError::new("push queries need a live engine"));
        };
        use std::sync::atomic::Ordering as AtomicOrdering;
        let max = self.max_pushing;
        if self.pushing.fetch_add(1, AtomicOrdering::AcqRel) >= max {
            self.pushing.fetch_sub(1, AtomicOrdering::AcqRel);
            return Err(SqlError::new(format!(
                "{max} push queries are running: close one before starting another"
            )));
        }
        let slot = PushSlot(self.pushing.clone());
        self.transient += 1;
        let qid = format!("transient_{}_{}", std::process::id(), self.transient);
        let b = StreamsBuilder::new();
        let lookup = |n: &str| self.sources.get(n).cloned();
        let planned = plan::plan(
            &b,
            &lookup,
            &query,
            Qid {
                id: &qid,
                memory: false,
                shared: None,
            },
        )?;
        let buffer = self.push_buffer;
        let (tx, rx) = tokio::sync::mpsc::channel(buffer);
        // Dropped (closing the channel) when the reader falls too far behind.
        let tx = Mutex::new(Some(tx));
        let overflowed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let overflow = overflowed.clone();
        let windowed = planned.window.is_some();
        let limit = planned.limit;
        let sent = Arc::new(Mutex::new(0usize));
        let sink: RowSink = Arc::new(move |key, window, row| {
            let Some(row) = row else { return };
            let mut n = sent.lock().expect("counter");
            if limit.is_some_and(|l| *n >= l) {
                return;
            }
            *n += 1;
            let mut out = match key {
                Value::Null => Vec::new(),
                Value::Struct(fields) => fields.into_iter().map(|(_, v)| v).collect(),
                k => vec![k],
            };
            if let Some((s, e)) = window {
                out.push(Value::BigInt(s));
                out.push(Value::BigInt(e));
            }
            out.extend(row);
            let mut tx = tx.lock().expect("push sender");
            if let Some(sender) = tx.as_ref()
                && let Err(tokio::sync::mpsc::error::TrySendError::Full(_)) = sender.try_send(out)
            {
                tracing::warn!(
                    rows = buffer,
                    "a push query's reader fell too far behind; dropping it"
                );
                overflow.store(true, std::sync::atomic::Ordering::Release);
                *tx = None;
            }
        });
        planned.to_fn(sink);
        let mut columns = planned.key.clone();
        if windowed {
            for n in ["WINDOWSTART", "WINDOWEND"] {
                columns.push(Column {
                    name: n.into(),
                    ty: super::SqlType::BigInt,
                });
            }
        }
        columns.extend(planned.value.clone());
        let topology = b.build().map_err(|e| SqlError::new(e.to_string()))?;
        let mut config = (**template).clone();
        config.application_id = application_id(&qid);
        // Push queries start at the end of their sources unless told otherwise, as in ksqlDB.
        config = config
            .commit_interval(Duration::from_millis(100))
            .set("consumer.auto.offset.reset", "latest");
        for (k, v) in &properties {
            config = config.set(k.clone(), v.clone());
        }
        let app = KafkaStreams::new(topology, config).map_err(|e| SqlError::new(e.to_string()))?;
        app.start().map_err(|e| SqlError::new(e.to_string()))?;
        Ok(PushQuery {
            columns,
            rows: rx,
            app: Arc::new(app),
            overflowed,
            _running: slot,
        })
    }
}

/// The `streamsProperties` a request may set (after a `ksql.streams.` prefix is removed), as
/// in ksqlDB, which takes a short list per request. Anything else could point a query's
/// clients at another cluster (`producer.bootstrap.servers`) or load a shared library
/// (`plugin.library.paths`), so it is refused rather than passed to librdkafka.
const REQUEST_PROPERTIES: [&str; 1] = ["auto.offset.reset"];

/// ksqlDB `streamsProperties` as client settings: the allow-listed ones, checked; other `ksql.`
/// settings are ignored (they tune ksqlDB's server, which this is not); anything else is an
/// error naming the property.
fn client_properties(
    props: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, SqlError> {
    let mut out = BTreeMap::new();
    for (k, v) in props {
        let key = k.strip_prefix("ksql.streams.").unwrap_or(k);
        if key.starts_with("ksql.") {
            continue;
        }
        if !REQUEST_PROPERTIES.contains(&key) {
            return Err(SqlError::new(format!(
                "streamsProperties: {k} cannot be set per request (allowed: {})",
                REQUEST_PROPERTIES.join(", ")
            )));
        }
        if key == "auto.offset.reset" && !matches!(v.as_str(), "earliest" | "latest") {
            return Err(SqlError::new(format!(
                "streamsProperties: {k} must be earliest or latest, not {v:?}"
            )));
        }
        // A consumer setting: given to the query's consumers only (librdkafka warns when a
        // producer is handed a consumer property).
        out.insert(format!("consumer.{key}"), v.clone());
    }
    Ok(out)
}

fn partitions(props: &[Property]) -> Result<Option<i32>, SqlError> {
    prop(props, "PARTITIONS")
        .map(|p| {
            p.value
                .parse::<i32>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| SqlError::at(p.pos, "PARTITIONS needs a positive number"))
        })
        .transpose()
}

/// Names of the sources a query reads (FROM, then JOINs).
pub(crate) fn query_sources(query: &Query) -> Vec<String> {
    let mut out = Vec::new();
    if let sqlparser::ast::SetExpr::Select(s) = query.select.body.as_ref() {
        for f in &s.from {
            for r in std::iter::once(&f.relation).chain(f.joins.iter().map(|j| &j.relation)) {
                if let sqlparser::ast::TableFactor::Table { name, .. } = r
                    && let Ok(n) = parse::object_name(name)
                {
                    out.push(n);
                }
            }
        }
    }
    out
}

/// Parses `sql` as exactly one statement; `what` is the error for any other count.
fn parse_one(sql: &str, what: &str) -> Result<parse::Parsed, SqlError> {
    let mut parsed = parse::parse(sql)?;
    if parsed.len() != 1 {
        return Err(SqlError::new(what));
    }
    Ok(parsed.remove(0))
}

#[cfg(test)]
mod property_tests {
    use super::*;

    #[test]
    fn request_properties_reach_only_the_consumers() {
        let props = BTreeMap::from([(
            "ksql.streams.auto.offset.reset".to_string(),
            "earliest".to_string(),
        )]);
        let out = client_properties(&props).unwrap();
        assert_eq!(
            out,
            BTreeMap::from([(
                "consumer.auto.offset.reset".to_string(),
                "earliest".to_string()
            )])
        );
        let config = out.iter().fold(StreamsConfig::new("q"), |c, (k, v)| {
            c.set(k.clone(), v.clone())
        });
        assert!(
            !config
                .client_settings("producer")
                .contains_key("auto.offset.reset")
        );
        assert_eq!(
            config
                .client_settings("consumer")
                .get("auto.offset.reset")
                .map(String::as_str),
            Some("earliest")
        );
    }
}
