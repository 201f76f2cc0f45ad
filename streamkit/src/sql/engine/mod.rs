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
use crate::KafkaStreams;
use crate::config::StreamsConfig;
use crate::stream::StreamsBuilder;
use crate::topology::Topology;

mod catalog;
mod queries;
mod results;
mod statements;

use catalog::application_id;
pub use catalog::{QueryInfo, SourceInfo};
pub(crate) use queries::query_sources;
use queries::{client_properties, partitions};
use results::PushSlot;
pub use results::{MAX_PUSH_QUERIES, PUSH_BUFFER_ROWS, PushQuery, QueryResult, StatementResult};

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
    #[cfg_attr(
        not(feature = "server"),
        allow(dead_code, reason = "the query server reads it")
    )]
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
    ///
    /// # Examples
    ///
    /// Statements planned offline and run through the test driver:
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// use streamkit::sql::{Engine, StatementResult};
    ///
    /// let mut engine = Engine::offline();
    /// let results = engine.execute(
    ///     "CREATE STREAM taps (station VARCHAR KEY, fare INT)
    ///          WITH (KAFKA_TOPIC='taps', VALUE_FORMAT='JSON');
    ///      CREATE TABLE fares WITH (KAFKA_TOPIC='fares') AS
    ///          SELECT station, SUM(fare) AS total FROM taps GROUP BY station EMIT CHANGES;",
    /// )?;
    /// assert_eq!(results.len(), 2);
    /// assert!(matches!(&results[0], StatementResult::Status { .. }));
    /// let d = TopologyTestDriver::new(engine.topology()?)?;
    /// let taps = d.input_topic("taps", Serdes::string(), Serdes::string());
    /// taps.pipe("clark".into(), r#"{"fare": 2}"#.into())?;
    /// taps.pipe("clark".into(), r#"{"fare": 3}"#.into())?;
    /// let fares = d.output_topic("fares", Serdes::string(), Serdes::string());
    /// assert_eq!(fares.read_values(), vec![r#"{"TOTAL":2}"#, r#"{"TOTAL":5}"#]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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
        match statement {
            Statement::CreateSource {
                kind,
                name,
                columns,
                props,
                if_not_exists,
            } => self.create_source(text, pos, kind, name, columns, props, if_not_exists),
            Statement::CreateAs {
                kind,
                name,
                props,
                query,
            } => self.create_as(text, pos, kind, name, props, query),
            Statement::InsertInto { target, query } => self.insert_into(text, pos, target, query),
            Statement::Select(query) => self.select(text, pos, query),
            Statement::Drop {
                kind,
                name,
                if_exists,
                delete_topic,
            } => self.drop_source(text, pos, kind, name, if_exists, delete_topic),
            Statement::Show(what) => self.show(text, pos, what),
            Statement::Describe { name, .. } => self.describe(text, pos, name),
            Statement::Explain(target) => self.explain(text, pos, *target),
            Statement::Terminate(id) => self.terminate_statement(text, pos, id),
        }
    }
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
