//! The KSQL summary (the original's `ksql.py`): its two statements, verbatim, run through
//! streamkit's SQL engine in this process and served on a ksqlDB-compatible REST endpoint.
//!
//! They count as they did in KSQL 5.x, which the original ran: the legacy `KEY='station_id'`
//! property is a hint, the `turnstile` table is keyed by the message key (the producers'
//! `{"timestamp": …}`, an implicit `ROWKEY`), so every turnstile event is a row and
//! `turnstile_summary` counts each station's entries. The dashboard's totals come from it.

use anyhow::Context;
use streamkit::prelude::*;
use streamkit::serde::avro::RegistryClient;
use streamkit::sql::Engine;

/// `ksql.py`'s `KSQL_STATEMENT`, verbatim.
pub const KSQL_STATEMENT: &str = "
CREATE TABLE turnstile (
    station_id INT,
    station_name VARCHAR,
    line VARCHAR
) WITH (
    KAFKA_TOPIC='org.chicago.cta.turnstiles',
    VALUE_FORMAT='AVRO',
    KEY='station_id'
);

CREATE TABLE turnstile_summary
WITH (VALUE_FORMAT='JSON') AS
    SELECT station_id, COUNT(station_id) AS count
    FROM turnstile
    GROUP BY station_id;
";

/// The value of a `TURNSTILE_SUMMARY` record (keyed by the station id,
/// a 4-byte integer: `KEY_FORMAT='KAFKA'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Count {
    /// `COUNT(station_id)`.
    #[serde(rename = "COUNT")]
    pub count: i64,
}

/// `sql` (e.g. [`KSQL_STATEMENT`]) in an offline engine, for the test driver.
pub fn offline(registry: &RegistryClient, sql: &str) -> anyhow::Result<Engine> {
    let mut engine = Engine::offline().schema_registry(registry.clone());
    engine.execute(sql).context("executing the statements")?;
    Ok(engine)
}

/// Runs the statements, each query as its own application against the cluster `config`
/// names. (`ksql.py` asked for `auto.offset.reset` `earliest`, which is streamkit's default;
/// passing it as a statement property would also reach the queries' producers, which
/// librdkafka warns about.)
pub fn run(config: StreamsConfig, registry: &RegistryClient) -> anyhow::Result<Engine> {
    let mut engine = Engine::new(config).schema_registry(registry.clone());
    let results = engine
        .execute(KSQL_STATEMENT)
        .context("the seed's KSQL statements")?;
    for r in results {
        if let streamkit::sql::StatementResult::Status { message, .. } = r {
            tracing::info!("ksql: {message}");
        }
    }
    Ok(engine)
}

/// Closes the engine's queries.
pub fn close(engine: &Engine) -> anyhow::Result<()> {
    for q in engine.queries() {
        if let Some(app) = q.app() {
            app.close()
                .with_context(|| format!("closing query {}", q.id()))?;
        }
    }
    Ok(())
}
