//! The same windowed aggregation written in SQL and in the DSL gives identical output, for
//! EMIT CHANGES (every update) and EMIT FINAL (suppressed until the window closes), over a
//! shuffled feed with late records.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use streamkit::prelude::*;
use streamkit::serde::Serde;
use streamkit::sql::{Engine, KeySerde, RowSerde, SqlType};
use streamkit::window::{TimeWindows, WindowedSerde};

#[derive(Clone, Serialize, Deserialize)]
struct Tap {
    fare: i64,
}

/// (station, window start, window end, count, sum of fares)
type Out = (String, i64, i64, i64, i64);

/// A deterministic feed: 300 taps over 5 stations, timestamps jittered backwards so some
/// records arrive out of order and some after their window closed.
fn feed() -> Vec<(String, i64, i64)> {
    let mut x: u64 = 42;
    let mut next = || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        x >> 33
    };
    (0..300)
        .map(|i| {
            let station = format!("s{}", next() % 5);
            let ts = i * 1_000 - (next() % 40_000) as i64;
            (station, ts.max(0), (next() % 7) as i64 + 1)
        })
        .collect()
}

fn run_sql(emit: &str) -> Vec<Out> {
    let mut engine = Engine::offline();
    engine
        .execute(&format!(
            "CREATE STREAM taps (station VARCHAR KEY, fare BIGINT) WITH (KAFKA_TOPIC='taps', VALUE_FORMAT='JSON');
             CREATE TABLE per_minute WITH (KAFKA_TOPIC='out') AS
               SELECT station, COUNT(*) AS n, SUM(fare) AS fares FROM taps
               WINDOW TUMBLING (SIZE 60 SECONDS, GRACE PERIOD 10 SECONDS)
               GROUP BY station EMIT {emit};"
        ))
        .unwrap();
    let d = TopologyTestDriver::new(engine.topology().unwrap()).unwrap();
    let input = d.input_topic("taps", Serdes::string(), Serdes::string());
    for (station, ts, fare) in feed() {
        input
            .pipe_at(station, format!(r#"{{"fare": {fare}}}"#), ts)
            .unwrap();
    }
    let sink = engine.source("per_minute").unwrap();
    assert_eq!(sink.value()[0].ty, SqlType::BigInt);
    let key = KeySerde::new(sink.key_format(), sink.key().to_vec());
    let value = RowSerde::new(sink.value_format(), sink.value().to_vec());
    let out = d.output_topic(
        "out",
        WindowedSerde::time(key.clone(), 60_000),
        Serdes::bytes(),
    );
    out.read_key_values()
        .into_iter()
        .map(|(k, v)| {
            let row = value.deserialize("out", &v).unwrap();
            let int = |i: usize| match &row[i] {
                streamkit::sql::Value::BigInt(n) => *n,
                other => panic!("{other:?}"),
            };
            (
                k.key.to_string(),
                k.window.start,
                k.window.end,
                int(0),
                int(1),
            )
        })
        .collect()
}

fn run_dsl(suppress: bool) -> Vec<Out> {
    let b = StreamsBuilder::new();
    let table = b
        .stream(
            "taps",
            Consumed::with(Serdes::string(), Serdes::json::<Tap>()),
        )
        .group_by_key(Grouped::with(Serdes::string(), Serdes::json::<Tap>()))
        .windowed_by(TimeWindows::tumbling(Duration::from_secs(60)).grace(Duration::from_secs(10)))
        .aggregate(
            || (0i64, 0i64),
            |_, tap, (n, sum)| (n + 1, sum + tap.fare),
            Materialized::named("per-minute")
                .value_serde(Serdes::json::<(i64, i64)>())
                .in_memory(),
        );
    let table = if suppress {
        table.suppress(Suppressed::until_window_closes())
    } else {
        table
    };
    table.to_stream().to(
        "out",
        Produced::with(
            WindowedSerde::time(Serdes::string(), 60_000),
            Serdes::json::<(i64, i64)>(),
        ),
    );
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let input = d.input_topic("taps", Serdes::string(), Serdes::json::<Tap>());
    for (station, ts, fare) in feed() {
        input.pipe_at(station, Tap { fare }, ts).unwrap();
    }
    d.output_topic(
        "out",
        WindowedSerde::time(Serdes::string(), 60_000),
        Serdes::json::<(i64, i64)>(),
    )
    .read_key_values()
    .into_iter()
    .map(|(k, (n, sum))| (k.key, k.window.start, k.window.end, n, sum))
    .collect()
}

#[test]
fn windowed_count_and_sum_match_the_dsl() {
    let dsl = run_dsl(false);
    assert!(dsl.len() > 250, "every on-time tap updates a window");
    assert_eq!(run_sql("CHANGES"), dsl);

    let dsl = run_dsl(true);
    assert!(
        dsl.len() >= 5 && dsl.len() < 40,
        "one final row per closed window"
    );
    assert_eq!(run_sql("FINAL"), dsl);
}
