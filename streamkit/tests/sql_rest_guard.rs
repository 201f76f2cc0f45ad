//! The SQL REST server's request guard: a bearer token when configured, loopback `Host` names
//! on a loopback address, no foreign `Origin`, JSON content types only, and `streamsProperties`
//! limited to what ksqlDB lets a request set (no `producer.bootstrap.servers`, no
//! `plugin.library.paths`).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};
use streamkit::prelude::*;
use streamkit::server::ksql::{KSQL_CONTENT_TYPE, KsqlServer};
use streamkit::sql::Engine;
use streamkit::testing::EmbeddedBroker;

/// Sends one request with exactly `headers` (besides Content-Length and Connection); returns
/// the status and the JSON body.
fn send(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, rest) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let json = serde_json::from_str(rest.trim()).unwrap_or(Value::Null);
    (status, json)
}

fn server(token: Option<&str>) -> (EmbeddedBroker, tempfile::TempDir, KsqlServer) {
    common::init_logs();
    let broker = EmbeddedBroker::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = StreamsConfig::new("sql-guard")
        .embedded(&broker)
        .state_dir(dir.path());
    if let Some(t) = token {
        config = config.query_server_token(t);
    }
    let server = KsqlServer::start(Engine::new(config), "127.0.0.1:0").unwrap();
    (broker, dir, server)
}

fn list_streams(properties: Value) -> String {
    json!({"ksql": "LIST STREAMS;", "streamsProperties": properties}).to_string()
}

#[test]
fn requests_need_json_content_a_loopback_host_and_no_foreign_origin() {
    let (_broker, _dir, server) = server(None);
    let addr = server.addr().to_string();
    let body = list_streams(json!({}));
    let ok = [("Host", addr.as_str()), ("Content-Type", KSQL_CONTENT_TYPE)];
    let (status, reply) = send(&addr, "POST", "/ksql", &ok, &body);
    assert_eq!(status, 200, "{reply}");

    let localhost = format!("localhost:{}", server.addr().port());
    let (status, _) = send(
        &addr,
        "POST",
        "/ksql",
        &[
            ("Host", localhost.as_str()),
            ("Content-Type", "application/json; charset=utf-8"),
        ],
        &body,
    );
    assert_eq!(status, 200, "application/json and localhost are accepted");

    // What a cross-site HTML form can send without a preflight.
    for ct in ["text/plain", "application/x-www-form-urlencoded"] {
        let (status, reply) = send(
            &addr,
            "POST",
            "/ksql",
            &[("Host", addr.as_str()), ("Content-Type", ct)],
            &body,
        );
        assert_eq!(status, 415, "{ct}: {reply}");
        assert_eq!(reply["error_code"], 41500);
    }
    let (status, _) = send(&addr, "POST", "/ksql", &[("Host", addr.as_str())], &body);
    assert_eq!(status, 415, "no content type");

    // DNS rebinding: a page on evil.example resolved to 127.0.0.1 sends its own host name.
    let (status, reply) = send(
        &addr,
        "POST",
        "/ksql",
        &[
            ("Host", "evil.example:8088"),
            ("Content-Type", KSQL_CONTENT_TYPE),
        ],
        &body,
    );
    assert_eq!(status, 403, "{reply}");
    assert!(reply["message"].as_str().unwrap().contains("evil.example"));
    let (status, _) = send(&addr, "GET", "/info", &[], "");
    assert_eq!(status, 403, "a request without Host is refused too");

    let (status, reply) = send(
        &addr,
        "POST",
        "/ksql",
        &[
            ("Host", addr.as_str()),
            ("Origin", "http://evil.example"),
            ("Content-Type", KSQL_CONTENT_TYPE),
        ],
        &body,
    );
    assert_eq!(status, 403, "{reply}");
    let own = format!("http://{addr}");
    let (status, _) = send(
        &addr,
        "POST",
        "/ksql",
        &[
            ("Host", addr.as_str()),
            ("Origin", own.as_str()),
            ("Content-Type", KSQL_CONTENT_TYPE),
        ],
        &body,
    );
    assert_eq!(status, 200, "the server's own origin is accepted");
}

#[test]
fn streams_properties_are_allow_listed() {
    let (_broker, _dir, server) = server(None);
    let addr = server.addr().to_string();
    let headers = [("Host", addr.as_str()), ("Content-Type", KSQL_CONTENT_TYPE)];
    for (key, value) in [
        ("producer.bootstrap.servers", "attacker:9092"),
        ("ksql.streams.plugin.library.paths", "/tmp/evil.so"),
        ("bootstrap.servers", "attacker:9092"),
    ] {
        let (status, reply) = send(
            &addr,
            "POST",
            "/ksql",
            &headers,
            &list_streams(json!({ key: value })),
        );
        assert_eq!(status, 400, "{key}: {reply}");
        let message = reply["message"].as_str().unwrap();
        assert!(
            message.contains(key) && message.contains("auto.offset.reset"),
            "{message}"
        );
        // Push queries take properties too.
        let (status, reply) = send(
            &addr,
            "POST",
            "/query",
            &headers,
            &json!({"ksql": "SELECT * FROM nowhere EMIT CHANGES;", "streamsProperties": {key: value}})
                .to_string(),
        );
        assert_eq!(status, 400, "{key}: {reply}");
        assert!(reply["message"].as_str().unwrap().contains(key), "{reply}");
    }
    let (status, reply) = send(
        &addr,
        "POST",
        "/ksql",
        &headers,
        &list_streams(json!({"auto.offset.reset": "sideways"})),
    );
    assert_eq!(status, 400, "{reply}");
    for props in [
        json!({"ksql.streams.auto.offset.reset": "earliest"}),
        json!({"auto.offset.reset": "latest"}),
        // ksqlDB server settings are ignored, as before.
        json!({"ksql.query.pull.table.scan.enabled": "true"}),
    ] {
        let (status, reply) = send(&addr, "POST", "/ksql", &headers, &list_streams(props));
        assert_eq!(status, 200, "{reply}");
    }
}

#[test]
fn a_configured_token_is_required_on_every_endpoint() {
    let (_broker, _dir, server) = server(Some("s3cret"));
    let addr = server.addr().to_string();
    let body = list_streams(json!({}));
    for (method, path) in [("GET", "/info"), ("POST", "/ksql"), ("POST", "/query")] {
        for auth in [None, Some("Bearer wrong"), Some("s3cret")] {
            let mut headers = vec![("Host", addr.as_str()), ("Content-Type", KSQL_CONTENT_TYPE)];
            if let Some(a) = auth {
                headers.push(("Authorization", a));
            }
            let (status, reply) = send(&addr, method, path, &headers, &body);
            assert_eq!(status, 401, "{method} {path} with {auth:?}: {reply}");
            assert_eq!(reply["error_code"], 40100);
        }
    }
    let headers = [
        ("Host", addr.as_str()),
        ("Content-Type", KSQL_CONTENT_TYPE),
        ("Authorization", "Bearer s3cret"),
    ];
    let (status, reply) = send(&addr, "GET", "/info", &headers, "");
    assert_eq!(status, 200, "{reply}");
    let (status, reply) = send(&addr, "POST", "/ksql", &headers, &body);
    assert_eq!(status, 200, "{reply}");
}

#[test]
fn sql_help_does_not_print_the_token_from_the_environment() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_streamkit"))
        .args(["sql", "--help"])
        .env("STREAMKIT_SQL_TOKEN", "TOKEN-FROM-ENV")
        .output()
        .expect("run streamkit sql --help");
    assert!(out.status.success(), "{out:?}");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("STREAMKIT_SQL_TOKEN"), "{help}");
    assert!(!help.contains("TOKEN-FROM-ENV"), "{help}");
}
