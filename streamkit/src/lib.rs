//! # streamkit
//!
//! Kafka Streams–style stateful stream processing for Rust: describe a topology with a typed
//! DSL, test it without a broker, run it against any Kafka-protocol cluster with
//! consumer-group scaling and at-least-once or exactly-once delivery, and write tables into
//! PostgreSQL exactly once.
//!
//! ```
//! use streamkit::prelude::*;
//!
//! let builder = StreamsBuilder::new();
//! builder
//!     .stream("bus-delays", Consumed::with(Serdes::string(), Serdes::f64()))
//!     .filter(|_line, minutes| *minutes > 5.0)
//!     .map_values(|minutes| format!("{minutes:.0} min late"))
//!     .to("late-buses", Produced::with(Serdes::string(), Serdes::string()));
//!
//! let driver = TopologyTestDriver::new(builder.build()?)?;
//! let input = driver.input_topic("bus-delays", Serdes::string(), Serdes::f64());
//! input.pipe("M15".to_string(), 7.5)?;
//! input.pipe("B63".to_string(), 1.0)?;
//! let output = driver.output_topic("late-buses", Serdes::string(), Serdes::string());
//! assert_eq!(output.read_key_values(), vec![("M15".to_string(), "8 min late".to_string())]);
//! # Ok::<(), streamkit::Error>(())
//! ```
//!
//! The modules, in the order a record meets them:
//! - [`serde`] — how bytes become typed keys and values;
//! - [`stream`] — the typed DSL ([`StreamsBuilder`](stream::StreamsBuilder), [`KStream`](stream::KStream)),
//!   windowed stream-stream joins included;
//! - [`table`] — [`KTable`](table::KTable), the changelog view of a topic or stream (filter,
//!   map, regroup and aggregate with retraction, join from a stream, table-table and
//!   foreign-key joins), and [`GlobalKTable`](table::GlobalKTable), a full copy of a topic on
//!   every instance; and the Faust-style layer: [`FaustTable`](table::FaustTable) /
//!   [`Table`](table::Table), a dict-like changelogged table used from processors, with
//!   windowed variants read with `now()`, `current()` and `delta(d)`;
//! - [`agent`] — Faust-style agents: an async function over a typed stream, with tables;
//! - [`processor`] — the Processor API that custom and built-in operators are written on;
//! - [`state`] — RocksDB stores, their memory budget and durability;
//! - [`topology`] — the graph the DSL builds, and `describe()`;
//! - [`runtime`] — [`KafkaStreams`], stream threads, tasks, commits;
//! - [`config`] — [`StreamsConfig`](config::StreamsConfig);
//! - [`connect`] — connectors to other systems: the exactly-once Postgres sink;
//! - [`metrics`] — Prometheus metrics;
//! - [`server`] — the HTTP query server: stores, change streams, topology, health, metrics,
//!   and (opt-in) Kafka-REST-Proxy-compatible ingest;
//! - [`registry`] — an embedded Confluent-compatible schema registry (Avro serdes are in
//!   [`serde::avro`]);
//! - [`sql`] — ksqlDB-compatible SQL planned into the same topologies, with a ksqlDB-style
//!   REST server in [`server::ksql`];
//! - [`window`] — tumbling, hopping, sliding and session windows, join windows, windowed keys;
//! - [`testing`] — [`TopologyTestDriver`](testing::TopologyTestDriver) and the embedded broker.

#![deny(missing_docs)]

pub mod agent;
pub mod config;
pub mod connect;
mod error;
pub mod error_policy;
pub mod kafka_streams;
pub mod metrics;
mod operators;
pub mod prelude;
pub mod processor;
pub mod record;
#[cfg(feature = "server")]
pub mod registry;
pub mod runtime;
pub mod serde;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "sql")]
pub mod sql;
pub mod state;
pub mod stream;
pub mod table;
pub mod testing;
pub mod topology;
pub mod window;

pub use error::{Error, ErrorKind, Result, SerdeError};
pub use kafka_streams::KafkaStreams;

/// The user guide's pages (`docs/src/`, an mdBook), compiled and run as doc tests so that the
/// book stays true: `cargo test --doc` runs every Rust snippet of every page listed here
/// (`streamkit/tests/docs_book.rs` checks that every page with Rust in it is listed).
#[cfg(all(doctest, feature = "sql", feature = "server", feature = "postgres"))]
mod book {
    macro_rules! pages {
        ($($name:ident = $path:literal;)*) => {
            $(
                #[doc = include_str!(concat!("../../docs/src/", $path))]
                struct $name;
            )*
        };
    }
    pages! {
        Introduction = "introduction.md";
        GettingStarted = "getting-started.md";
        Concepts = "concepts.md";
        Dsl = "dsl.md";
        StateStores = "state-stores.md";
        Windows = "windows.md";
        Joins = "joins.md";
        ExactlyOnce = "exactly-once.md";
        QueryServer = "query-server.md";
        Sql = "sql.md";
        Faust = "faust.md";
        Avro = "avro.md";
        Connectors = "connectors.md";
        Testing = "testing.md";
        Operations = "operations.md";
        MigrateKafkaStreams = "migrate-kafka-streams.md";
        MigrateFaust = "migrate-faust.md";
        MigrateKsqldb = "migrate-ksqldb.md";
    }
}
