//! What the end-to-end tests share: a short simulation's arguments, plain HTTP, and the
//! checks that the dashboard's stores hold exactly what the simulation produced.
#![allow(dead_code, reason = "each test binary uses a part")]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use cta_trains::dashboard::{self, StoreContents};
use cta_trains::{Args, Running};

/// One simulated hour from Monday 03:00 (about 5 000 riders, 900 arrivals, two weather
/// readings), as fast as the broker takes it, every server on a free port.
pub fn short_run() -> Args {
    Args {
        time_scale: 0.0,
        start: "2018-10-01 03:00".into(),
        hours: 1.0,
        listen: "127.0.0.1:0".parse().unwrap(),
        registry_listen: "127.0.0.1:0".into(),
        rest_proxy_listen: "127.0.0.1:0".into(),
        ksql_listen: "127.0.0.1:0".into(),
        quiet: true,
        ..Args::defaults()
    }
}

/// A plain HTTP/1.1 request; returns the status code and the body.
pub fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/vnd.ksql.v1+json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
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
    (status, body.to_string())
}

/// What the dashboard's stores should hold once the simulation's records are consumed:
/// each train at its last station and direction, the entries per station, the last weather.
pub fn converged(running: &Running) -> Result<(), String> {
    let stores = running.stores();
    let detail = running.stats.detail.lock().unwrap().clone();
    let trains: BTreeMap<String, String> = stores
        .arrivals
        .iter()
        .map(|(k, t)| (k.clone(), t.train_id.clone()))
        .collect();
    let want: BTreeMap<String, String> = detail
        .trains
        .iter()
        .map(|(id, s)| {
            (
                dashboard::arrival_key(s.line.as_str(), s.station_id, &s.direction),
                id.clone(),
            )
        })
        .collect();
    if trains != want {
        return Err(format!("trains: {trains:?}\nwant {want:?}"));
    }
    let entries: BTreeMap<i32, u64> = stores
        .summary
        .iter()
        .map(|(k, c)| (*k, c.count as u64))
        .collect();
    if entries != detail.entries_per_station {
        let missing: u64 =
            detail.entries_per_station.values().sum::<u64>() - entries.values().sum::<u64>();
        return Err(format!("{missing} turnstile entries not counted yet"));
    }
    let weather = stores
        .weather
        .as_ref()
        .map(|w| (w.temperature, w.status.clone()));
    let want = detail
        .last_weather
        .as_ref()
        .map(|w| (w.temperature, w.status.as_str().to_string()));
    if weather.is_none() || weather != want {
        return Err(format!("weather {weather:?}, want {want:?}"));
    }
    Ok(())
}

/// Waits until [`converged`], failing with what is still missing.
pub fn wait_converged(running: &Running) {
    let mut last = String::new();
    running
        .wait_until(Duration::from_secs(90), |r| match converged(r) {
            Ok(()) => true,
            Err(e) => {
                last = e;
                false
            }
        })
        .unwrap_or_else(|e| panic!("{e}: {last}"));
}

/// The stores' stations per line, in the page's order.
pub fn stations_by_line(stores: &StoreContents) -> Vec<(String, Vec<i32>)> {
    stores
        .snapshot()
        .lines
        .into_iter()
        .map(|l| (l.line, l.stations.iter().map(|s| s.station_id).collect()))
        .collect()
}
