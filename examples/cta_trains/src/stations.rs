//! The stations into Kafka (the original's `producers/connector.py`, which set up Kafka
//! Connect's JDBC source): from PostgreSQL through streamkit's Postgres source, or, without a
//! database, straight from the CSV.
//!
//! The original's connector: table `stations`, `mode` `incrementing` on `stop_id`, topic
//! prefix `org.chicago.cta.`, JSON rows without schemas. The same here:
//! [`source`] reads the table into `org.chicago.cta.stations`, one JSON object of the columns
//! per row, keyed by `stop_id`; [`load_table`] first creates the table as the original's
//! database had it and loads `cta_stations.csv` into it (rows already there are kept).

use std::time::Duration;

use anyhow::Context;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use streamkit::connect::postgres_source::PostgresSource;
use tokio_postgres::NoTls;

use crate::data::Station;
use crate::model::STATIONS_TOPIC;

/// The table's name, and the topic's suffix after the prefix.
pub const TABLE: &str = "stations";
/// The source's name: its offsets topic is `<name>-postgres-source-offsets`.
pub const SOURCE_NAME: &str = "cta-stations";
/// The topic prefix of the original's connector.
pub const TOPIC_PREFIX: &str = "org.chicago.cta.";

/// Connects to PostgreSQL at `url`.
pub async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .context("connecting to PostgreSQL")?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "postgres connection closed");
        }
    });
    Ok(client)
}

/// Creates the stations table when missing and inserts the rows of `stations` it lacks;
/// returns how many were inserted.
pub async fn load_table(
    client: &tokio_postgres::Client,
    stations: &[Station],
) -> anyhow::Result<u64> {
    client
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {TABLE} (
                stop_id INTEGER PRIMARY KEY,
                direction_id VARCHAR(1) NOT NULL,
                stop_name VARCHAR(70) NOT NULL,
                station_name VARCHAR(70) NOT NULL,
                station_descriptive_name VARCHAR(200) NOT NULL,
                station_id INTEGER NOT NULL,
                \"order\" INTEGER,
                red BOOLEAN NOT NULL,
                blue BOOLEAN NOT NULL,
                green BOOLEAN NOT NULL
            )"
        ))
        .await
        .context("creating the stations table")?;
    let insert = client
        .prepare(&format!(
            "INSERT INTO {TABLE} (stop_id, direction_id, stop_name, station_name, \
             station_descriptive_name, station_id, \"order\", red, blue, green) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (stop_id) DO NOTHING"
        ))
        .await
        .context("preparing the stations insert")?;
    let mut inserted = 0;
    for s in stations {
        inserted += client
            .execute(
                &insert,
                &[
                    &s.stop_id,
                    &s.direction_id,
                    &s.stop_name,
                    &s.station_name,
                    &s.station_descriptive_name,
                    &s.station_id,
                    &s.order,
                    &s.red,
                    &s.blue,
                    &s.green,
                ],
            )
            .await
            .with_context(|| format!("inserting stop {}", s.stop_id))?;
    }
    Ok(inserted)
}

/// The Postgres source of the original's connector, polling every `poll_interval`.
pub fn source(url: &str, poll_interval: Duration) -> PostgresSource {
    PostgresSource::new(SOURCE_NAME, url)
        .table(TABLE)
        .incrementing("stop_id")
        .key_column("stop_id")
        .topic_prefix(TOPIC_PREFIX)
        .poll_interval(poll_interval)
}

/// Writes `stations` to `org.chicago.cta.stations` as the Postgres source would (JSON rows
/// keyed by `stop_id`), for runs without a database.
pub async fn produce_from_csv(servers: &str, stations: &[Station]) -> anyhow::Result<()> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .set("linger.ms", "5")
        .create()
        .context("creating the stations producer")?;
    let rows: Vec<(String, String)> = stations
        .iter()
        .map(|s| {
            Ok((
                s.stop_id.to_string(),
                serde_json::to_string(s).context("writing a station as JSON")?,
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    let sends = rows.iter().map(|(key, value)| {
        producer.send(
            FutureRecord::to(STATIONS_TOPIC).key(key).payload(value),
            Duration::from_secs(30),
        )
    });
    for delivery in futures_util::future::join_all(sends).await {
        delivery
            .map_err(|(e, _)| e)
            .context("producing a station")?;
    }
    Ok(())
}
