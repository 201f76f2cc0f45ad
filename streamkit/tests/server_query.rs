//! The query server against two running instances on the embedded broker: every key is
//! answered by either instance (forwarded to its owner when needed), ranges page through an
//! instance's partitions, changes arrive as server-sent events, and the other endpoints answer.

mod common;
#[path = "common/http.rs"]
mod http;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;
use streamkit::config::QueryForwarding;
use streamkit::prelude::*;
use streamkit::testing::EmbeddedBroker;
use streamkit::window::TimeWindows;

const TOKEN: &str = "s3cret";
/// What instances present to each other; never the client's token.
const PEER_TOKEN: &str = "peer-s3cret";
const LINES: usize = 10;

fn topology() -> Topology {
    let b = StreamsBuilder::new();
    let grouped = b
        .stream("trips", Consumed::with(Serdes::string(), Serdes::string()))
        .group_by_key(Grouped::with(Serdes::string(), Serdes::string()));
    grouped.count(Materialized::named("trips-per-line"));
    grouped
        .windowed_by(TimeWindows::tumbling(Duration::from_secs(60)))
        .count(Materialized::named("trips-per-minute"));
    b.build().unwrap()
}

fn instance(broker: &EmbeddedBroker, dir: &std::path::Path, fw: QueryForwarding) -> KafkaStreams {
    let config = StreamsConfig::new("query-app")
        .query_forwarding(fw)
        .embedded(broker)
        .state_dir(dir)
        .commit_interval(Duration::from_millis(100))
        .query_server("127.0.0.1:0")
        .query_server_token(TOKEN)
        .inter_instance_token(PEER_TOKEN);
    let app = KafkaStreams::new(topology(), config).unwrap();
    app.start().unwrap();
    app
}

fn line(i: usize) -> String {
    format!("L{i}")
}

#[test]
fn two_instances_answer_queries_for_each_others_keys() {
    common::init_logs();
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("trips", 2).unwrap();
    let servers = broker.bootstrap_servers().to_string();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // a proxies queries for b's keys; b redirects queries for a's keys.
    let a = instance(&broker, da.path(), QueryForwarding::Proxy);
    let b = instance(&broker, db.path(), QueryForwarding::Redirect);
    assert!(
        common::wait_stable(&[&a, &b], Duration::from_secs(1), Duration::from_secs(60)),
        "a={:?} {:?} b={:?} {:?}",
        a.state(),
        a.error(),
        b.state(),
        b.error()
    );
    let (addr_a, addr_b) = (
        a.query_server_addr().unwrap().to_string(),
        b.query_server_addr().unwrap().to_string(),
    );

    // Line i has i + 1 trips.
    let records: Vec<(String, Vec<u8>)> = (0..LINES)
        .flat_map(|i| (0..=i).map(move |t| (line(i), format!("trip-{t}").into_bytes())))
        .collect();
    common::produce(&servers, "trips", &records);

    // Every key through instance a: the owner's answer, whichever instance that is.
    let mut served_by = BTreeMap::new();
    let all_counted = common::eventually(Duration::from_secs(60), || {
        (0..LINES).all(|i| {
            let r = http::get(
                &addr_a,
                &format!("/stores/trips-per-line/{}", line(i)),
                Some(TOKEN),
            );
            if r.status != 200 || r.json()["value"] != (i + 1) as u64 {
                return false;
            }
            assert_eq!(r.json()["key"], line(i));
            served_by.insert(
                line(i),
                r.header("x-streamkit-served-by").unwrap().to_string(),
            );
            true
        })
    });
    assert!(all_counted, "not every line counted through a");
    let owners: BTreeSet<&String> = served_by.values().collect();
    assert_eq!(
        owners,
        BTreeSet::from([&addr_a, &addr_b]),
        "a answered some keys itself and forwarded the others to b: {served_by:?}"
    );
    // Through b: its own keys answered, a's redirected to a.
    for i in 0..LINES {
        let path = format!("/stores/trips-per-line/{}", line(i));
        let mut r = http::get(&addr_b, &path, Some(TOKEN));
        if served_by[&line(i)] == addr_a {
            assert_eq!(r.status, 307, "{}", r.body);
            let location = r.header("location").unwrap().to_string();
            assert_eq!(location, format!("http://{addr_a}{path}"));
            r = http::get(&addr_a, &path, Some(TOKEN));
        }
        assert_eq!(
            (r.status, r.json()["value"].clone()),
            (200, Value::from(i + 1))
        );
    }
    let missing = http::get(&addr_a, "/stores/trips-per-line/nowhere", Some(TOKEN));
    assert_eq!(missing.status, 404, "{}", missing.body);
    let unknown = http::get(&addr_a, "/stores/no-such-store/x", Some(TOKEN));
    assert_eq!(unknown.status, 404);

    // Window fetch by key and time range: the windows of line 3 sum to its 4 trips.
    let r = http::get(
        &addr_a,
        &format!("/stores/trips-per-minute/L3?from=0&to={}", i64::MAX),
        Some(TOKEN),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let windows = r.json()["windows"].as_array().unwrap().clone();
    assert!(!windows.is_empty());
    let total: u64 = windows.iter().map(|w| w["value"].as_u64().unwrap()).sum();
    assert_eq!(total, 4, "{windows:?}");
    let r = http::get(
        &addr_a,
        "/stores/trips-per-minute/L3?from=0&to=1",
        Some(TOKEN),
    );
    assert_eq!(r.json()["windows"], Value::Array(vec![]));

    // Ranges page through each instance's own partitions; together they hold every line.
    let mut ranged = BTreeMap::new();
    for addr in [&addr_a, &addr_b] {
        let mut after = String::new();
        loop {
            let r = http::get(
                addr,
                &format!("/stores/trips-per-line?limit=3{after}"),
                Some(TOKEN),
            );
            assert_eq!(r.status, 200, "{}", r.body);
            let page = r.json();
            let entries = page["entries"].as_array().unwrap();
            assert!(entries.len() <= 3);
            for e in entries {
                let key = e["key"].as_str().unwrap().to_string();
                assert!(ranged.insert(key, e["value"].as_u64().unwrap()).is_none());
            }
            match page["next"].as_str() {
                Some(next) => after = format!("&after={next}"),
                None => break,
            }
        }
    }
    let expected: BTreeMap<String, u64> = (0..LINES).map(|i| (line(i), (i + 1) as u64)).collect();
    assert_eq!(ranged, expected);
    // Or the whole application's through one instance, merged in key order.
    let (mut all, mut after) = (Vec::new(), String::new());
    loop {
        let r = http::get(
            &addr_a,
            &format!("/stores/trips-per-line?scope=all&limit=4{after}"),
            Some(TOKEN),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        let page = r.json();
        for e in page["entries"].as_array().unwrap() {
            all.push((
                e["key"].as_str().unwrap().to_string(),
                e["value"].as_u64().unwrap(),
            ));
        }
        match page["next"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => break,
        }
    }
    assert_eq!(
        all,
        expected.into_iter().collect::<Vec<_>>(),
        "every line once, in key order"
    );
    let r = http::get(&addr_a, "/stores/trips-per-line?from=L2&to=L4", Some(TOKEN));
    for e in r.json()["entries"].as_array().unwrap() {
        let k = e["key"].as_str().unwrap();
        assert!(("L2"..="L4").contains(&k), "{k}");
    }

    // A push query: the owner of L0 streams its next update.
    let owner = &served_by[&line(0)];
    let mut events = http::events(owner, "/stores/trips-per-line/changes?key=L0", Some(TOKEN));
    assert_eq!(events.status, 200);
    // The subscription is registered once the response head is out; produce after it.
    common::produce(&servers, "trips", &[(line(0), b"late-trip".to_vec())]);
    let change = events
        .next_matching("change", Duration::from_secs(30), |v| v["value"] == 2)
        .expect("a change event for L0");
    assert_eq!(change["key"], "L0");

    // The rest of the endpoints.
    let stores = http::get(&addr_a, "/stores", Some(TOKEN)).json();
    let kinds: BTreeMap<&str, &str> = stores["stores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        BTreeMap::from([
            ("trips-per-line", "key_value"),
            ("trips-per-minute", "window")
        ])
    );
    let text = http::get(&addr_a, "/topology", Some(TOKEN)).body;
    assert_eq!(text, a.topology().describe().to_string());
    let mermaid = http::get(&addr_a, "/topology?format=mermaid", Some(TOKEN)).body;
    assert!(
        mermaid.starts_with("flowchart TD") && mermaid.contains("trips-per-line"),
        "{mermaid}"
    );
    let dot = http::get(&addr_a, "/topology?format=dot", Some(TOKEN)).body;
    assert!(dot.starts_with("digraph topology"), "{dot}");
    let instances = http::get(&addr_a, "/instances", Some(TOKEN)).json();
    let known: BTreeSet<&str> = instances["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["application_server"].as_str().unwrap())
        .collect();
    assert_eq!(known, BTreeSet::from([addr_a.as_str(), addr_b.as_str()]));
    let metrics = http::get(&addr_a, "/metrics", Some(TOKEN));
    assert!(metrics.body.contains("streamkit_records_processed_total"));

    // Bearer auth on everything but /health.
    assert_eq!(http::get(&addr_a, "/stores", None).status, 401);
    assert_eq!(http::get(&addr_a, "/metrics", Some("wrong")).status, 401);
    let health = http::get(&addr_a, "/health", None);
    assert_eq!(
        (health.status, health.json()["state"].as_str()),
        (200, Some("Running"))
    );

    a.close().unwrap();
    b.close().unwrap();
}

/// A host named in the instances topic gets the instances' credential on the queries
/// forwarded to it, never the token the client sent.
#[test]
fn forwarded_queries_carry_the_instances_credential_not_the_clients_token() {
    use std::io::{BufRead, BufReader, Write};

    common::init_logs();
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("trips", 2).unwrap();
    let servers = broker.bootstrap_servers().to_string();
    let dir = tempfile::tempdir().unwrap();
    let a = instance(&broker, dir.path(), QueryForwarding::Proxy);
    assert!(
        common::wait_stable(&[&a], Duration::from_secs(1), Duration::from_secs(60)),
        "{:?} {:?}",
        a.state(),
        a.error()
    );
    let addr_a = a.query_server_addr().unwrap().to_string();

    // A host that records the headers of every request it gets, named in the instances
    // topic as an instance of the application.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let fake = listener.local_addr().unwrap().to_string();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<String>>();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                headers.push(line.trim_end().to_string());
            }
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
            );
            if tx.send(headers).is_err() {
                return;
            }
        }
    });
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let entry = serde_json::json!({
        "application_server": fake,
        "stores": {"trips-per-line": [0, 1]},
        "assigned_ms": now,
        "heartbeat_ms": now,
        "state": "Running",
    });
    common::produce(
        &servers,
        "query-app-instances",
        &[(fake.clone(), entry.to_string().into_bytes())],
    );

    // An application-wide range asks every instance the directory knows for its part.
    let mut seen = None;
    let asked = common::eventually(Duration::from_secs(30), || {
        let _ = http::get(&addr_a, "/stores/trips-per-line?scope=all", Some(TOKEN));
        seen = rx.try_recv().ok();
        seen.is_some()
    });
    assert!(asked, "the forged instance was never asked for its part");
    let headers = seen.unwrap();
    let auth: Vec<&String> = headers
        .iter()
        .filter(|h| h.to_ascii_lowercase().starts_with("authorization:"))
        .collect();
    assert_eq!(
        auth,
        [&format!("authorization: Bearer {PEER_TOKEN}")],
        "{headers:?}"
    );
    assert!(
        !headers
            .iter()
            .any(|h| h.contains(TOKEN) && !h.contains(PEER_TOKEN)),
        "the client's token reached the other host: {headers:?}"
    );

    // The instances' credential is accepted like the client token; other tokens are not.
    let r = http::get(&addr_a, "/stores", Some(PEER_TOKEN));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = http::get(&addr_a, "/stores", Some("guess"));
    assert_eq!(r.status, 401, "{}", r.body);
    a.close().unwrap();
}
