//! What the tests share: a simulated day of trips, a lake in a temporary directory fed
//! through the topology in the test driver, plain HTTP.
#![allow(dead_code, reason = "each test binary uses a part")]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use streamkit::prelude::*;
use vehicle_trips::lake::Lake;
use vehicle_trips::model::{DAY_MS, HOUR_MS, VehicleEvent, parse_date};
use vehicle_trips::roads::Graph;
use vehicle_trips::simulation::Fleet;
use vehicle_trips::topology::{self, TopologyConfig};

/// The day the lake tests fill: 2026-12-02.
pub fn test_day() -> i64 {
    parse_date("2026-12-02").unwrap()
}

/// Three vehicles driving two trips each, starting at 10:59:00 on the test day (so their
/// reports span two hours), in the order they were sent.
pub fn simulated_reports() -> Vec<VehicleEvent> {
    let start = test_day() * DAY_MS + 11 * HOUR_MS - 60_000;
    let mut fleet = Fleet::new(Arc::new(Graph::bundled()), 11, start);
    let plan = [
        ("Taxi 1", "sol", ["atocha", "colon"]),
        ("Bus 27", "espana", ["retiro", "palacio"]),
        ("Van", "toledo", ["bilbao", "latina"]),
    ];
    let mut ids = Vec::new();
    for (name, at, _) in &plan {
        ids.push(fleet.add_vehicle(name, at).unwrap());
    }
    let mut next = [0usize; 3];
    let mut out = Vec::new();
    loop {
        for (i, (_, _, dests)) in plan.iter().enumerate() {
            let idle = fleet.vehicles()[i].trip.is_none();
            if idle && next[i] < dests.len() {
                fleet.start_trip(&ids[i], None, dests[next[i]]).unwrap();
                next[i] += 1;
            }
        }
        let e = fleet.tick();
        if e.is_empty() {
            break;
        }
        out.extend(e);
    }
    out
}

/// A lake in a fresh temporary directory.
pub fn temp_lake() -> (tempfile::TempDir, Arc<Lake>) {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().join("lake").to_str().unwrap()).unwrap();
    (dir, Arc::new(lake))
}

/// Pipes `values` (raw, as sent) with keys and timestamps through the topology landing into
/// `lake`, then lets the landing punctuator run; returns the driver.
pub fn land(lake: &Arc<Lake>, records: &[(String, String, i64)]) -> TopologyTestDriver {
    let config = TopologyConfig {
        lake: Some(lake.clone()),
        land_every: Duration::from_secs(5),
        land_max_rows: 500,
    };
    let d = TopologyTestDriver::new(topology::topology(&config).unwrap()).unwrap();
    let input = d.input_topic(topology::POSITIONS, Serdes::string(), Serdes::string());
    for (k, v, ts) in records {
        input.pipe_at(k.clone(), v.clone(), *ts).unwrap();
    }
    d.advance_wall_clock_time(Duration::from_secs(6)).unwrap();
    d
}

/// Reports as raw records (key, JSON, timestamp).
pub fn raw(reports: &[VehicleEvent]) -> Vec<(String, String, i64)> {
    reports
        .iter()
        .map(|e| (e.trip_id.clone(), serde_json::to_string(e).unwrap(), e.ts))
        .collect()
}

/// A plain HTTP/1.1 request; returns the status code and the body.
pub fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // Up to the body's length when the server says it (Chromium's DevTools server keeps the
    // connection open), else to the end.
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = s.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            });
            if length.is_some_and(|len| body.len() >= len) {
                break;
            }
        }
    }
    let response = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}
