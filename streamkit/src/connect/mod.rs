//! Connectors between a topology and systems other than Kafka.
//!
//! - [`postgres`]: [`KTable::to_postgres`](crate::table::KTable::to_postgres) upserts a
//!   table's changes into PostgreSQL, exactly once, with the input offsets and store contents
//!   kept in the same Postgres transactions.
//! - [`postgres_source`]: [`PostgresSource`](postgres_source::PostgresSource) polls
//!   PostgreSQL tables (or a query) into topics, as Kafka Connect's JDBC source does, its
//!   position in a compacted topic.
//! - `cassandra` (feature `cassandra`): `CassandraSink` upserts a topic's records into an
//!   Apache Cassandra table, at least once, its offsets committed after the rows are written.
//! - [`http_poll`]: [`HttpPollSource`](http_poll::HttpPollSource) polls a JSON API into a
//!   topic, with backoff, dedup of unchanged records and its progress in a compacted topic.
//!
//! A source runs on its own (`run(…)`, or the `streamkit connect` command) or inside an
//! application: [`StreamsBuilder::stream_from_connector`](crate::stream::StreamsBuilder::stream_from_connector)
//! reads the topics a [`SourceConnector`] writes, and [`KafkaStreams`](crate::KafkaStreams)
//! creates those topics, runs the connector beside the stream threads from `start()` to
//! `close()`, and stops the instance with the connector's error if it fails.

use std::future::Future;
use std::pin::Pin;

use crate::config::StreamsConfig;
use crate::error::Result;

#[cfg(feature = "cassandra")]
pub mod cassandra;
pub mod http_poll;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "postgres")]
pub mod postgres_source;
pub(crate) mod state_topic;

/// The future a [`SourceConnector`] runs as.
pub type ConnectorFuture = Pin<Box<dyn Future<Output = Result<()>> + Send>>;
/// Completes when the connector is to stop.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A source that produces into Kafka topics, run by an application beside its stream threads.
pub trait SourceConnector: Send + 'static {
    /// How logs and errors name the connector.
    fn name(&self) -> String;
    /// The topics it writes (created, when missing, before the application starts).
    fn topics(&self) -> Vec<String>;
    /// Runs until `shutdown` completes; an error stops the application.
    fn start(self: Box<Self>, config: StreamsConfig, shutdown: Shutdown) -> ConnectorFuture;
}

#[cfg(feature = "postgres")]
impl SourceConnector for postgres_source::PostgresSource {
    fn name(&self) -> String {
        format!("{self:?}")
    }

    fn topics(&self) -> Vec<String> {
        postgres_source::PostgresSource::topics(self)
    }

    fn start(self: Box<Self>, config: StreamsConfig, shutdown: Shutdown) -> ConnectorFuture {
        Box::pin(async move { self.run(&config, shutdown).await })
    }
}

impl SourceConnector for http_poll::HttpPollSource {
    fn name(&self) -> String {
        format!("{self:?}")
    }

    fn topics(&self) -> Vec<String> {
        vec![self.topic().to_string()]
    }

    fn start(self: Box<Self>, config: StreamsConfig, shutdown: Shutdown) -> ConnectorFuture {
        Box::pin(async move {
            let topic = self.topic().to_string();
            self.run(&config, &topic, shutdown).await
        })
    }
}
