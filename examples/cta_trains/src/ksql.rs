//! The KSQL summary (the original's `ksql.py`): its two statements, verbatim, run through
//! streamkit's SQL engine in this process and served on a ksqlDB-compatible REST endpoint.
//!
//! **What streamkit makes of them.** streamkit reads the legacy `KEY='station_id'` property
//! of a `CREATE TABLE` as "the table's key is the `station_id` column": each event replaces
//! its station's row, so `turnstile_summary` counts one row per station (`COUNT` is 1 for
//! every station with an entry). KSQL 5.x, which the original ran, kept the table keyed by
//! the message key (the producers' `{"timestamp": …}`) and took `KEY` as a hint only, so its
//! `turnstile_summary` counted the entries of each station. The dashboard therefore takes
//! its turnstile totals from [`ENTRIES_STATEMENT`], the same count over the turnstile events
//! read as a stream, and shows what `turnstile_summary` holds next to it.

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

/// The entries per station, as the original's `turnstile_summary` counted them (see the
/// [module docs](self)): the turnstile topic read as a stream.
pub const ENTRIES_STATEMENT: &str = "
CREATE STREAM turnstile_events (
    station_id INT,
    station_name VARCHAR,
    line VARCHAR
) WITH (
    KAFKA_TOPIC='org.chicago.cta.turnstiles',
    VALUE_FORMAT='AVRO'
);

CREATE TABLE turnstile_entries
WITH (VALUE_FORMAT='JSON') AS
    SELECT station_id, COUNT(station_id) AS count
    FROM turnstile_events
    GROUP BY station_id;
";

/// The value of a `TURNSTILE_SUMMARY` / `TURNSTILE_ENTRIES` record (keyed by the station id,
/// a 4-byte integer: `KEY_FORMAT='KAFKA'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Count {
    /// `COUNT(station_id)`.
    #[serde(rename = "COUNT")]
    pub count: i64,
}

/// `sql` ([`KSQL_STATEMENT`] or [`ENTRIES_STATEMENT`]) in an offline engine, for the test
/// driver. (One engine each: an offline engine plans its queries into one topology, which
/// refuses two sources of one topic.)
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
    for (what, sql) in [
        ("the seed's KSQL statements", KSQL_STATEMENT),
        ("the entries statements", ENTRIES_STATEMENT),
    ] {
        let results = engine.execute(sql).with_context(|| what.to_string())?;
        for r in results {
            if let streamkit::sql::StatementResult::Status { message, .. } = r {
                tracing::info!("ksql: {message}");
            }
        }
    }
    Ok(engine)
}

/// Closes the engine's queries.
pub fn close(engine: &Engine) -> anyhow::Result<()> {
    for q in engine.queries() {
        if let Some(app) = q.app() {
            app.close()
                .with_context(|| format!("closing query {}", q.id))?;
        }
    }
    Ok(())
}
