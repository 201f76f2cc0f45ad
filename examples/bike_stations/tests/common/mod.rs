//! What the tests share: stations in a given state, a simulated day, the streaming topology's
//! final hourly results for it, plain HTTP and the PostgreSQL URL.
#![allow(dead_code, reason = "each test binary uses a part")]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bike_stations::city;
use bike_stations::model::{Availability, DAY_MS, HOUR_MS, Station, parse_date};
use bike_stations::topology::{self, STATION_HOURLY_TOPIC, STATIONS_TOPIC, StreamingConfig};
use streamkit::prelude::*;
use streamkit::window::{Windowed, WindowedSerde};

/// Station `number` of the simulated contract with `bikes` bikes at `t`.
pub fn station(number: i64, bikes: i64, t: i64) -> Station {
    let spec = &city::stations()[(number - 1) as usize];
    spec.to_station(bikes, true, t)
}

/// The same, closed.
pub fn closed(number: i64, t: i64) -> Station {
    let spec = &city::stations()[(number - 1) as usize];
    spec.to_station(0, false, t)
}

/// The day the batch tests load: Wednesday 2026-12-02 (days since the epoch).
pub fn test_day() -> i64 {
    parse_date("2026-12-02").unwrap()
}

/// The simulated records from `day − 30 h` (before what the batch reads) to `day end + 1 h`
/// (seed 7).
pub fn day_records(day: i64) -> Vec<Station> {
    let from = day * DAY_MS - 30 * HOUR_MS;
    bike_stations::simulation::history(7, 1, from, (day + 1) * DAY_MS + HOUR_MS).1
}

/// Final hourly results of the streaming topology over `records` (piped in order with their
/// `last_update` as timestamp, then three hours of wall-clock quiet), keyed by (station, hour
/// start), for the hours of `day`.
pub fn streaming_hours(records: &[Station], day: i64) -> BTreeMap<(String, i64), Availability> {
    let d =
        TopologyTestDriver::new(topology::streaming(&StreamingConfig::default()).unwrap()).unwrap();
    let input = d.input_topic(STATIONS_TOPIC, Serdes::string(), Serdes::json::<Station>());
    for s in records {
        input.pipe_at(s.key(), s.clone(), s.last_update).unwrap();
    }
    // The night is quiet: the last hours close on wall-clock idleness, as they do live.
    d.advance_wall_clock_time(std::time::Duration::from_secs(3 * 3600))
        .unwrap();
    let out = d.output_topic(
        STATION_HOURLY_TOPIC,
        WindowedSerde::time(Serdes::string(), HOUR_MS),
        Serdes::json::<Availability>(),
    );
    let (from, to) = (day * DAY_MS, (day + 1) * DAY_MS);
    let hours: BTreeMap<(String, i64), Availability> = out
        .read_key_values()
        .into_iter()
        .filter(|(w, _): &(Windowed<String>, Availability)| (from..to).contains(&w.window.start))
        .map(|(w, a)| ((w.key, w.window.start), a))
        .collect();
    d.close().unwrap();
    hours
}

/// A plain HTTP/1.1 GET; returns the status code and the body.
pub fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    // Chunked bodies: good enough to search in.
    (status, body.to_string())
}

/// The server from `STREAMKIT_TEST_POSTGRES_URL`; the test fails without one.
pub fn postgres_url() -> String {
    std::env::var("STREAMKIT_TEST_POSTGRES_URL").expect(
        "STREAMKIT_TEST_POSTGRES_URL must name a PostgreSQL server the test may create a \
         database on (scripts/test.sh starts one), e.g. postgres://postgres@127.0.0.1:5432/postgres",
    )
}

/// The URL with its database name replaced.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, _) = url
        .rsplit_once('/')
        .filter(|(b, _)| b.contains("://") && !b.ends_with('/'))
        .unwrap_or((url, ""));
    format!("{base}/{db}")
}

/// A fresh database named `name` on the test server (dropped first if it exists); its URL.
pub fn fresh_database(name: &str) -> String {
    let url = postgres_url();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connecting to STREAMKIT_TEST_POSTGRES_URL");
        tokio::spawn(conn);
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .unwrap();
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
    });
    with_database(&url, name)
}

/// The UTC offset (hours) that puts the simulated city at about 15:00 local time now: tests
/// that need riders see the afternoon's traffic whatever the hour they run at.
pub fn afternoon_utc_offset_hours() -> i64 {
    let hour_utc = bike_stations::model::now_ms()
        .div_euclid(HOUR_MS)
        .rem_euclid(24);
    (15 - hour_utc).rem_euclid(24)
}
