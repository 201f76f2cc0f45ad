//! The whole program with a real PostgreSQL server and the embedded schema registry: the
//! stations table created and loaded in Postgres, read by the Postgres source (incrementing on
//! `stop_id`) through the Faust-style transform onto the dashboard; a simulated hour of
//! arrivals, turnstile entries and weather (posted to the REST-proxy ingest) ending in the
//! dashboard's stores exactly as produced; the KSQL tables answering on the ksqlDB API; a
//! station added to the database reaching the live page's event stream.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use cta_trains::model::{self, TransformedStation};
use cta_trains::{Args, StationsFrom, data, faust, start, stations};

/// The server from `STREAMKIT_TEST_POSTGRES_URL`; the test fails without one.
fn postgres_url() -> String {
    std::env::var("STREAMKIT_TEST_POSTGRES_URL").expect(
        "STREAMKIT_TEST_POSTGRES_URL must name a PostgreSQL server the test may create a \
         database on (scripts/test.sh starts one), e.g. postgres://postgres@127.0.0.1:5432/postgres",
    )
}

/// The URL with its database name replaced.
fn with_database(url: &str, db: &str) -> String {
    let (base, _) = url
        .rsplit_once('/')
        .filter(|(b, _)| b.contains("://") && !b.ends_with('/'))
        .unwrap_or((url, ""));
    format!("{base}/{db}")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Reads the page's event stream until `want` appears in it (or fails after `timeout`).
fn read_events_until(stream: &mut TcpStream, seen: &mut String, want: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 64 * 1024];
    while !seen.contains(want) {
        assert!(
            Instant::now() < deadline,
            "{want:?} not in the page's events after {timeout:?}"
        );
        match stream.read(&mut buf) {
            Ok(0) => panic!("the event stream ended"),
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("reading the event stream: {e}"),
        }
    }
}

#[test]
fn stations_from_postgres_and_a_simulated_hour_reach_the_dashboard() {
    let rt = runtime();
    let db = format!("cta_e2e_{}", std::process::id());
    let admin_url = postgres_url();
    rt.block_on(async {
        let admin = stations::connect(&admin_url).await.unwrap();
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
            .await
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .await
            .unwrap();
    });
    let url = with_database(&admin_url, &db);

    let args = Args {
        postgres_url: Some(url.clone()),
        poll_interval_secs: 1,
        ..common::short_run()
    };
    let mut running = start(&args).expect("the application starts");
    assert_eq!(running.stations_from, StationsFrom::Postgres);
    let client = rt.block_on(stations::connect(&url)).unwrap();
    let rows: i64 = rt
        .block_on(client.query_one("SELECT count(*) FROM stations", &[]))
        .unwrap()
        .get(0);
    assert_eq!(rows, 230, "the CSV loaded into the stations table");

    running.wait_for_simulation().expect("the simulation runs");
    assert!(
        running
            .stats
            .finished
            .load(std::sync::atomic::Ordering::Relaxed)
    );
    common::wait_converged(&running);

    // Every station of the three lines, in order, came through Postgres and the transform.
    let routes = data::routes(&data::stations().unwrap());
    let want: Vec<(String, Vec<i32>)> = routes
        .iter()
        .map(|r| {
            (
                r.line.as_str().to_string(),
                r.stations.iter().map(|s| s.station_id).collect(),
            )
        })
        .collect();
    assert_eq!(common::stations_by_line(&running.stores()), want);
    let table = running
        .faust
        .store::<i32, TransformedStation>(faust::TABLE)
        .unwrap()
        .all()
        .unwrap();
    assert_eq!(table.len(), 33 + 33 + 28 - 2);

    // The producers' schemas, and the weather station's (registered by the REST ingest), are
    // in the registry under the topics' subjects.
    for (subject, schema) in [
        (
            format!("{}-value", model::ARRIVALS_TOPIC),
            model::ARRIVAL_VALUE_SCHEMA,
        ),
        (
            format!("{}-value", model::TURNSTILES_TOPIC),
            model::TURNSTILE_VALUE_SCHEMA,
        ),
        (
            format!("{}-value", model::WEATHER_TOPIC),
            model::WEATHER_VALUE_SCHEMA,
        ),
    ] {
        running
            .registry
            .lookup(&subject, &model::schema(schema))
            .unwrap_or_else(|e| panic!("{subject}: {e}"));
    }

    // The KSQL summary answers pull queries on the ksqlDB API, counting every entry.
    let clark_lake = running.stats.detail.lock().unwrap().entries_per_station[&40380];
    let (status, body) = common::http(
        running.ksql_addr,
        "POST",
        "/query",
        Some(r#"{"ksql": "SELECT * FROM turnstile_summary WHERE station_id = 40380;"}"#),
    );
    assert_eq!(status, 200, "{body}");
    let rows: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        rows[1]["row"]["columns"],
        serde_json::json!([40380, clark_lake]),
        "{body}"
    );

    // A station added to the table while everything runs: the source picks it up
    // (incrementing on stop_id), the transform gives it its line, the live page shows it.
    let mut events = TcpStream::connect(running.addr).unwrap();
    events
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    write!(
        events,
        "GET /events HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
        running.addr
    )
    .unwrap();
    let mut seen = String::new();
    read_events_until(
        &mut events,
        &mut seen,
        "event: body",
        Duration::from_secs(20),
    );
    assert!(seen.contains("Ashland/63rd") && !seen.contains("Streamkit Junction"));
    rt.block_on(client.execute(
        "INSERT INTO stations VALUES (40001, 'S', 'Streamkit Junction (63rd-bound)', \
         'Streamkit Junction', 'Streamkit Junction (Green Line)', 49999, 28, false, false, true)",
        &[],
    ))
    .unwrap();
    read_events_until(
        &mut events,
        &mut seen,
        "data-station-id=\"49999\" data-order=\"28\"",
        Duration::from_secs(30),
    );
    let green = common::stations_by_line(&running.stores())
        .into_iter()
        .find(|(l, _)| l == "green")
        .unwrap()
        .1;
    assert_eq!(green.last(), Some(&49999));
    drop(events);

    running.shutdown().unwrap();
    rt.block_on(async {
        let admin = stations::connect(&admin_url).await.unwrap();
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .await
            .unwrap();
    });
}
