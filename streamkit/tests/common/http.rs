//! A minimal blocking HTTP/1.1 client for the query-server tests (GET only; reads to EOF or,
//! for event streams, line by line).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A response with a decoded body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }
}

fn send(addr: &str, path: &str, token: Option<&str>) -> BufReader<TcpStream> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    BufReader::new(s)
}

fn read_head(r: &mut BufReader<TcpStream>) -> (u16, Vec<(String, String)>) {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    (status, headers)
}

/// `GET http://{addr}{path}`, with a bearer token if given.
pub fn get(addr: &str, path: &str, token: Option<&str>) -> Response {
    let mut r = send(addr, path, token);
    let (status, headers) = read_head(&mut r);
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).unwrap();
            let n = usize::from_str_radix(size.trim(), 16).unwrap();
            if n == 0 {
                break;
            }
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).unwrap();
            body.extend_from_slice(&chunk[..n]);
        }
    } else {
        r.read_to_end(&mut body).unwrap();
    }
    Response {
        status,
        headers,
        body: String::from_utf8(body).unwrap(),
    }
}

/// An open server-sent-event stream.
pub struct Events {
    reader: BufReader<TcpStream>,
    pub status: u16,
}

/// Opens `GET {path}` as an event stream.
pub fn events(addr: &str, path: &str, token: Option<&str>) -> Events {
    let mut reader = send(addr, path, token);
    let (status, _) = read_head(&mut reader);
    Events { reader, status }
}

impl Events {
    /// The `data:` of the next event named `name` for which `want` holds, within `timeout`.
    pub fn next_matching(
        &mut self,
        name: &str,
        timeout: Duration,
        want: impl Fn(&serde_json::Value) -> bool,
    ) -> Option<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        let mut event = String::new();
        let mut line = String::new();
        while Instant::now() < deadline {
            line.clear();
            // Chunk-size lines and blank lines are skipped; only `event:`/`data:` matter.
            if self.reader.read_line(&mut line).unwrap_or(0) == 0 {
                return None;
            }
            let l = line.trim_end();
            if let Some(e) = l.strip_prefix("event:") {
                event = e.trim().to_string();
            } else if let Some(d) = l.strip_prefix("data:")
                && event == name
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(d.trim())
                && want(&v)
            {
                return Some(v);
            }
        }
        None
    }
}

/// Sum of the samples of `metric` (exact name, without suffix) whose labels include every
/// `key="value"` pair in `labels`, in a Prometheus text scrape.
pub fn metric_sum(scrape: &str, metric: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (name, rest) = series.split_once('{').unwrap_or((series, ""));
            (name == metric
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))))
            .then(|| value.parse::<f64>().ok())
            .flatten()
        })
        .sum()
}
