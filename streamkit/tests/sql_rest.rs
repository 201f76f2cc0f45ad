//! A REST round trip with ksqlDB-shaped requests on the embedded broker: statements through
//! `POST /ksql` (with `streamsProperties`), a pull query and a push query through
//! `POST /query`, `GET /info`, and a statement error pointing at its line and column.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use streamkit::prelude::*;
use streamkit::server::ksql::{KSQL_CONTENT_TYPE, KsqlServer};
use streamkit::sql::Engine;
use streamkit::testing::EmbeddedBroker;

fn request(addr: &str, method: &str, path: &str, body: &Value) -> BufReader<TcpStream> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.to_string();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {KSQL_CONTENT_TYPE}\r\nAccept: {KSQL_CONTENT_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    BufReader::new(s)
}

/// Status, content type and the de-chunked body.
fn call(addr: &str, method: &str, path: &str, body: &Value) -> (u16, String, Value) {
    let mut r = request(addr, method, path, body);
    let mut raw = String::new();
    r.read_to_string(&mut raw).unwrap();
    let (head, rest) = raw.split_once("\r\n\r\n").unwrap();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_string)
        })
        .unwrap_or_default();
    let body = if head.to_lowercase().contains("transfer-encoding: chunked") {
        let mut out = String::new();
        let mut rest = rest;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap();
            if n == 0 {
                break;
            }
            out.push_str(&tail[..n]);
            rest = &tail[n + 2..];
        }
        out
    } else {
        rest.to_string()
    };
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (status, content_type, json)
}

fn ksql(addr: &str, sql: &str) -> (u16, Value) {
    let (status, ct, body) = call(
        addr,
        "POST",
        "/ksql",
        &json!({"ksql": sql, "streamsProperties": {"ksql.streams.auto.offset.reset": "earliest"}}),
    );
    assert_eq!(ct, KSQL_CONTENT_TYPE);
    (status, body)
}

#[test]
fn statements_pull_and_push_queries_round_trip() {
    common::init_logs();
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("taps", 2).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = StreamsConfig::new("sql")
        .embedded(&broker)
        .state_dir(dir.path())
        .commit_interval(Duration::from_millis(100));
    let server = KsqlServer::start(Engine::new(config), "127.0.0.1:0").unwrap();
    let addr = server.addr().to_string();

    let (status, _, info) = call(&addr, "GET", "/info", &json!({}));
    assert_eq!(status, 200);
    assert_eq!(info["KsqlServerInfo"]["serverStatus"], "RUNNING");

    let (status, body) = ksql(
        &addr,
        "CREATE STREAM taps (station VARCHAR KEY, fare INT) WITH (KAFKA_TOPIC='taps', VALUE_FORMAT='JSON');
         CREATE TABLE fares AS SELECT station, COUNT(*) AS n, SUM(fare) AS total FROM taps GROUP BY station EMIT CHANGES;",
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0]["@type"], "currentStatus");
    assert_eq!(body[0]["commandStatus"]["message"], "Stream created");
    assert_eq!(body[1]["commandStatus"]["queryId"], "CTAS_FARES_0");

    let taps: Vec<(String, Vec<u8>)> = [("clark", 2), ("clark", 3), ("belmont", 5)]
        .iter()
        .map(|(s, f)| (s.to_string(), format!(r#"{{"fare": {f}}}"#).into_bytes()))
        .collect();
    common::produce(broker.bootstrap_servers(), "taps", &taps);

    // Pull query: answered from the table's store once the query caught up.
    let pull =
        json!({"ksql": "SELECT * FROM fares WHERE station = 'clark';", "streamsProperties": {}});
    let deadline = Instant::now() + Duration::from_secs(60);
    let rows = loop {
        let (status, ct, body) = call(&addr, "POST", "/query", &pull);
        assert_eq!(ct, KSQL_CONTENT_TYPE);
        if status == 200 && body.as_array().unwrap().len() == 2 && body[1]["row"]["columns"][1] == 2
        {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "pull query never saw both taps: {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        rows[0]["header"]["schema"],
        "`STATION` STRING, `N` BIGINT, `TOTAL` INTEGER"
    );
    assert_eq!(rows[1]["row"]["columns"], json!(["clark", 2, 5]));
    // A key absent from the table: the header alone. Any other WHERE scans the store.
    let (_, _, none) = call(
        &addr,
        "POST",
        "/query",
        &json!({"ksql": "SELECT * FROM fares WHERE station = 'nowhere';"}),
    );
    assert_eq!(none.as_array().unwrap().len(), 1, "{none}");
    // belmont may sit on the other partition: wait until both rows are in.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (found, scan) = loop {
        let (_, _, scan) = call(
            &addr,
            "POST",
            "/query",
            &json!({"ksql": "SELECT station, total FROM fares WHERE total >= 5;"}),
        );
        let mut found: Vec<String> = scan.as_array().unwrap()[1..]
            .iter()
            .map(|r| r["row"]["columns"].to_string())
            .collect();
        found.sort();
        if found.len() == 2 || Instant::now() > deadline {
            break (found, scan);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(found, [r#"["belmont",5]"#, r#"["clark",5]"#], "{scan}");

    // Push query: rows stream as they come (from the beginning, as asked).
    let mut push = request(
        &addr,
        "POST",
        "/query",
        &json!({"ksql": "SELECT station, fare * 10 AS cents FROM taps WHERE fare > 2 EMIT CHANGES;",
                "streamsProperties": {"auto.offset.reset": "earliest"}}),
    );
    let mut seen = Vec::new();
    let mut line = String::new();
    while seen.len() < 3 {
        line.clear();
        assert!(
            push.read_line(&mut line).unwrap() > 0,
            "push stream ended early"
        );
        let trimmed = line.trim().trim_start_matches('[').trim_end_matches(',');
        if trimmed.starts_with('{') {
            seen.push(serde_json::from_str::<Value>(trimmed).unwrap());
            if seen.len() == 1 {
                // Rows produced after the query started arrive too.
                common::produce(
                    broker.bootstrap_servers(),
                    "taps",
                    &[("addison".to_string(), br#"{"fare": 7}"#.to_vec())],
                );
            }
        }
    }
    assert_eq!(
        seen[0]["header"]["schema"],
        "`STATION` STRING, `CENTS` INTEGER"
    );
    let mut rows: Vec<Value> = seen[1..]
        .iter()
        .map(|r| r["row"]["columns"].clone())
        .collect();
    while rows.len() < 3 {
        line.clear();
        push.read_line(&mut line).unwrap();
        let trimmed = line.trim().trim_end_matches(',');
        if trimmed.starts_with('{') {
            rows.push(serde_json::from_str::<Value>(trimmed).unwrap()["row"]["columns"].clone());
        }
    }
    rows.sort_by_key(|r| r.to_string());
    assert_eq!(
        rows,
        vec![
            json!(["addison", 70]),
            json!(["belmont", 50]),
            json!(["clark", 30])
        ]
    );
    drop(push);

    let (_, body) = ksql(
        &addr,
        "SHOW STREAMS; SHOW TABLES; SHOW QUERIES; DESCRIBE fares;",
    );
    assert_eq!(body[0]["streams"][0]["name"], "TAPS");
    assert_eq!(body[1]["tables"][0]["name"], "FARES");
    assert_eq!(body[1]["tables"][0]["keyFormat"], "KAFKA");
    assert_eq!(body[2]["queries"][0]["id"], "CTAS_FARES_0");
    assert_eq!(
        body[3]["sourceDescription"]["fields"][0],
        json!({"name": "STATION", "schema": {"type": "STRING", "fields": null, "memberSchema": null}, "type": "KEY"})
    );
    assert_eq!(
        body[3]["sourceDescription"]["writeQueries"][0]["id"],
        "CTAS_FARES_0"
    );

    let (status, body) = ksql(&addr, "SHOW TABLES;\nSELECT nope FROM fares;");
    assert_eq!(status, 400);
    assert_eq!(body["@type"], "statement_error");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("line 2:8: unknown column NOPE"),
        "{body}"
    );
}
