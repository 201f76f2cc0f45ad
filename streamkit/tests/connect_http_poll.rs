//! The HTTP polling source against a local API that fails, rate-limits, sends garbage and
//! repeats itself: every change arrives once, across a restart of the source.

mod common;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use streamkit::connect::http_poll::HttpPollSource;
use streamkit::prelude::*;
use streamkit::testing::EmbeddedBroker;

/// One scripted answer: status, `Retry-After` seconds, body.
type Answer = (u16, Option<u64>, String);
/// One request seen: when, its query string's `apiKey`, its `X-Client` header.
type Seen = (Instant, Option<String>, Option<String>);

#[derive(Clone, Default)]
struct Api {
    /// Answers still to give; the last one repeats forever.
    script: Arc<Mutex<VecDeque<Answer>>>,
    /// When each request came, its query string's `apiKey` and its `X-Client` header.
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Api {
    fn then(&self, answers: impl IntoIterator<Item = Answer>) {
        self.script.lock().unwrap().extend(answers);
    }

    fn requests(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn remaining(&self) -> usize {
        self.script.lock().unwrap().len()
    }
}

async fn answer(
    State(api): State<Api>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let client = headers
        .get("x-client")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    api.seen
        .lock()
        .unwrap()
        .push((Instant::now(), q.get("apiKey").cloned(), client));
    let (status, retry_after, body) = {
        let mut script = api.script.lock().unwrap();
        if script.len() > 1 {
            script.pop_front().unwrap()
        } else {
            script.front().cloned().expect("a scripted answer")
        }
    };
    let mut response = (StatusCode::from_u16(status).unwrap(), body).into_response();
    if let Some(s) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", s.to_string().parse().unwrap());
    }
    response
}

fn serve(api: Api) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let app = axum::Router::new()
                .route("/vls/v1/stations", axum::routing::get(answer))
                .route("/api/", axum::routing::get(answer))
                .with_state(api);
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    addr
}

fn station(number: i64, bikes: i64, last_update: i64) -> Value {
    json!({"number": number, "contract_name": "dublin", "name": format!("S{number}"),
           "available_bikes": bikes, "last_update": last_update})
}

fn ok(stations: &[Value]) -> Answer {
    (200, None, Value::Array(stations.to_vec()).to_string())
}

/// Runs `source` until `done` holds (checked every 20 ms) or 30 s pass, then stops it.
fn run_until(source: HttpPollSource, config: &StreamsConfig, topic: &str, done: impl Fn() -> bool) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let stop = async {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !done() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        source
            .run(config, topic, stop)
            .await
            .expect("the source runs");
    });
}

#[test]
fn every_change_arrives_once_through_failures_rate_limits_and_a_restart() {
    common::init_logs();
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("stations", 1).unwrap();
    let config = StreamsConfig::new("bikes").embedded(&broker);
    let api = Api::default();
    let v1 = [
        station(1, 5, 1_000),
        station(2, 7, 1_000),
        station(3, 0, 1_000),
    ];
    let v2 = [
        station(1, 5, 1_000),
        station(2, 6, 2_000),
        station(3, 0, 1_000),
    ];
    api.then([
        (500, None, "oops".to_string()),
        (429, Some(1), "slow down".to_string()),
        (200, None, "not json".to_string()),
        (200, None, format!("[{}]", "x".repeat(20_000))),
        ok(&v1),
        ok(&v1),
        ok(&v2),
    ]);
    let addr = serve(api.clone());
    let source = || {
        HttpPollSource::new("jcdecaux", format!("http://{addr}/vls/v1/stations"))
            .query("contract", "dublin")
            .query("apiKey", "k3y")
            .interval(Duration::from_millis(100))
            .backoff(Duration::from_millis(50), Duration::from_millis(200))
            .max_body_bytes(10_000)
            .key_at("/number")
            .timestamp_at("/last_update")
            .dedup(true)
    };

    let first = source();
    let metrics = first.metrics().clone();
    run_until(first, &config, "stations", || {
        api.remaining() == 1 && metrics.unchanged.get() >= 3 + 3 + 3
    });

    let errors = |reason: &str| metrics.errors.with_label_values(&[reason]).get();
    assert_eq!(
        (errors("status"), errors("rate_limited"), errors("body")),
        (1, 1, 2),
        "a 500, a 429, a bad and a too large body"
    );
    assert_eq!(
        metrics.records.get(),
        4,
        "v1's three stations, then v2's one change"
    );
    assert!(metrics.last_success.get() > 1_600_000_000);
    let seen = api.seen.lock().unwrap().clone();
    assert!(seen.iter().all(|(_, key, _)| key.as_deref() == Some("k3y")));
    let after_429 = seen[2].0 - seen[1].0;
    assert!(
        after_429 >= Duration::from_secs(1),
        "Retry-After honoured: {after_429:?}"
    );

    let read = common::read_until(
        broker.bootstrap_servers(),
        "stations",
        Duration::from_secs(10),
        |r| r.len() >= 4,
    );
    let got: Vec<(String, i64)> = read
        .iter()
        .map(|r| {
            let v: Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
            (
                r.key_str().to_string(),
                v["available_bikes"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("1".into(), 5),
            ("2".into(), 7),
            ("3".into(), 0),
            ("2".into(), 6)
        ]
    );

    // A new source of the same name reads its progress back: v2 again is nothing new, v3's
    // change to station 3 is.
    let v3 = [
        station(1, 5, 1_000),
        station(2, 6, 2_000),
        station(3, 4, 3_000),
    ];
    api.then([ok(&v2), ok(&v3)]);
    api.script.lock().unwrap().pop_front(); // v2, the answer that was repeating
    let requests_before = api.requests();
    let second = source();
    let metrics = second.metrics().clone();
    run_until(second, &config, "stations", || {
        api.remaining() == 1
            && metrics.unchanged.get() >= 3 + 3
            && api.requests() > requests_before + 2
    });
    assert_eq!(metrics.records.get(), 1, "only station 3 changed");
    let read = common::read_until(
        broker.bootstrap_servers(),
        "stations",
        Duration::from_secs(10),
        |r| r.len() >= 5,
    );
    assert_eq!(read.len(), 5);
    assert_eq!(read[4].key_str(), "3");
    let last: Value = serde_json::from_slice(read[4].value.as_deref().unwrap()).unwrap();
    assert_eq!(last["available_bikes"], 4);
}

#[test]
fn without_dedup_every_poll_produces_the_records_at_a_pointer_with_its_headers() {
    common::init_logs();
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("users", 1).unwrap();
    let config = StreamsConfig::new("users").embedded(&broker);
    let api = Api::default();
    let users = json!({"results": [
        {"login": {"uuid": "u-1"}, "name": {"first": "Ada"}, "registered": {"date": "2007-07-09T05:51:59.390Z"}},
        {"login": {"uuid": "u-2"}, "name": {"first": "Bo"}, "registered": {"date": "2010-01-01T00:00:00Z"}},
    ], "info": {"results": 2}});
    api.then([(200, None, users.to_string())]);
    let addr = serve(api.clone());
    let source = HttpPollSource::new("randomuser", format!("http://{addr}/api/"))
        .query("results", "2")
        .header("X-Client", "streamkit-test")
        .interval(Duration::from_millis(50))
        .records_at("/results")
        .key_at("/login/uuid");
    let metrics = source.metrics().clone();
    run_until(source, &config, "users", || metrics.records.get() >= 6);

    let produced = metrics.records.get();
    assert_eq!(produced % 2, 0, "two records a poll");
    assert_eq!(metrics.errors.with_label_values(&["status"]).get(), 0);
    let read = common::read_all(broker.bootstrap_servers(), "users", Duration::from_secs(10));
    assert_eq!(
        read.len() as u64,
        produced,
        "the topic holds what the metric counts"
    );
    let keys: Vec<&str> = read.iter().map(|r| r.key_str()).collect();
    assert_eq!(keys[..4], ["u-1", "u-2", "u-1", "u-2"]);
    let seen = api.seen.lock().unwrap();
    assert!(
        seen.iter()
            .all(|(_, _, client)| client.as_deref() == Some("streamkit-test"))
    );
}

#[test]
fn a_url_that_cannot_be_parsed_is_an_error_not_a_retry_loop() {
    let broker = EmbeddedBroker::start().unwrap();
    let config = StreamsConfig::new("bad").embedded(&broker);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt
        .block_on(HttpPollSource::new("bad", "not a url").run(
            &config,
            "t",
            std::future::pending::<()>(),
        ))
        .unwrap_err();
    assert!(err.to_string().contains("bad url"), "{err}");
}
