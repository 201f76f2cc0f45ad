//! ksqlDB-compatible SQL: statements parsed with `sqlparser`, planned into the same topology
//! graph as the DSL.
//!
//! [`Engine`] executes statements: `CREATE STREAM|TABLE` declares a topic's columns and
//! formats in the metastore; `CREATE … AS SELECT` and `INSERT INTO` plan the query into
//! DSL operators (`filter`, `map`, `group_by` + `aggregate`, `windowed_by`, `suppress`, joins)
//! and run it as its own [`KafkaStreams`](crate::KafkaStreams) application
//! (`streamkit-sql-<query-id>`). Rows are dynamic: a [`Row`] of [`Value`]s whose
//! [`SqlType`]s the schema gives; keys and values are read and written in the `JSON` or
//! `KAFKA` formats.
//!
//! ```
//! use streamkit::prelude::*;
//! use streamkit::sql::{Engine, Value};
//!
//! let mut engine = Engine::offline();
//! engine.execute("
//!     CREATE STREAM taps (station VARCHAR KEY, fare INT) WITH (KAFKA_TOPIC='taps', VALUE_FORMAT='JSON');
//!     CREATE TABLE fares WITH (KAFKA_TOPIC='fares') AS
//!         SELECT station, SUM(fare) AS total FROM taps GROUP BY station EMIT CHANGES;
//! ")?;
//! let d = TopologyTestDriver::new(engine.topology()?)?;
//! let taps = d.input_topic("taps", Serdes::string(), Serdes::string());
//! taps.pipe("clark".into(), r#"{"fare": 2}"#.into())?;
//! taps.pipe("clark".into(), r#"{"fare": 3}"#.into())?;
//! let out = d.output_topic("fares", Serdes::string(), Serdes::string());
//! assert_eq!(out.read_values(), vec![r#"{"TOTAL":2}"#, r#"{"TOTAL":5}"#]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod display;
mod engine;
mod expr;
mod format;
mod join;
mod parse;
mod plan;
mod pull;
mod value;

pub use display::{render_result, render_table};
pub use engine::{
    Engine, MAX_PUSH_QUERIES, PUSH_BUFFER_ROWS, PushQuery, QueryInfo, QueryResult, SourceInfo,
    StatementResult,
};
pub use format::{Column, Format, KeySerde, RowSerde};
pub use parse::{Kind, Pos};
pub use plan::WindowKind;
pub use value::{Row, SqlType, Value};

/// A SQL error, with the line and column of the offending token when known.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}{message}", pos.map(|p| format!("line {}:{}: ", p.line, p.column)).unwrap_or_default())]
pub struct SqlError {
    message: String,
    pos: Option<Pos>,
}

impl SqlError {
    /// An error at `pos`.
    pub(crate) fn at(pos: Pos, message: impl Into<String>) -> Self {
        SqlError {
            message: message.into(),
            pos: (pos.line > 0).then_some(pos),
        }
    }

    /// An error with no position.
    pub(crate) fn new(message: impl Into<String>) -> Self {
        SqlError {
            message: message.into(),
            pos: None,
        }
    }

    /// From sqlparser's error, whose message ends with "at Line: L, Column: C".
    pub(crate) fn from_parser(e: sqlparser::parser::ParserError) -> Self {
        let text = match e {
            sqlparser::parser::ParserError::TokenizerError(s)
            | sqlparser::parser::ParserError::ParserError(s) => s,
            sqlparser::parser::ParserError::RecursionLimitExceeded => {
                "statement nests too deeply".to_string()
            }
        };
        if let Some(at) = text.rfind(" at Line: ") {
            let tail = &text[at + " at Line: ".len()..];
            let mut parts = tail.split(", Column: ");
            let line = parts.next().and_then(|l| l.trim().parse().ok());
            let column = parts.next().and_then(|c| c.trim().parse().ok());
            if let (Some(line), Some(column)) = (line, column) {
                return SqlError::at(Pos { line, column }, text[..at].to_string());
            }
        }
        SqlError::new(text)
    }

    /// The message without the position.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Where in the SQL text the error is, when known.
    pub fn pos(&self) -> Option<Pos> {
        self.pos
    }
}
