//! `streamkit sql`: a file's statements run as an application on the embedded broker (its
//! table answering pull queries over REST); the prompt prints results as tables.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the process even when an assertion fails.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn post(addr: &str, path: &str, body: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/vnd.ksql.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn a_file_runs_as_an_application_until_terminated() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fares.sql");
    std::fs::write(
        &file,
        "CREATE STREAM taps (station VARCHAR KEY, fare INT)\n  WITH (KAFKA_TOPIC='taps', VALUE_FORMAT='JSON', PARTITIONS=1);\n\
         CREATE TABLE fares AS SELECT station, SUM(fare) AS total FROM taps GROUP BY station;\n",
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_streamkit"))
        .args([
            "sql",
            file.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
        ])
        .arg(dir.path().join("state"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut guard = Guard(child);
    let mut lines = BufReader::new(guard.0.stdout.take().unwrap()).lines();
    let mut next = || lines.next().expect("output").unwrap();
    let bootstrap = next()
        .strip_prefix("bootstrap.servers=")
        .unwrap()
        .to_string();
    let server = next()
        .strip_prefix("ksql.server=http://")
        .unwrap()
        .to_string();
    assert_eq!(next(), "Stream created");
    assert_eq!(next(), "Created query with ID CTAS_FARES_0");

    common::produce(
        &bootstrap,
        "taps",
        &[
            ("clark".into(), br#"{"fare": 2}"#.to_vec()),
            ("clark".into(), br#"{"fare": 5}"#.to_vec()),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let reply = post(
            &server,
            "/query",
            r#"{"ksql": "SELECT total FROM fares WHERE station = 'clark';"}"#,
        );
        if reply.contains(r#"{"row":{"columns":[7]}}"#) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the table never reached 7: {reply}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let killed = Command::new("kill")
        .args(["-TERM", &guard.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = guard.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "streamkit sql did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
}

#[test]
fn the_prompt_prints_results_as_tables_and_errors_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_streamkit"))
        .args(["sql", "--listen", "127.0.0.1:0", "--state-dir"])
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let guard = Guard(child);
    stdin
        .write_all(
            b"CREATE STREAM taps (station VARCHAR KEY, fare INT)\n  WITH (KAFKA_TOPIC='taps', VALUE_FORMAT='JSON', PARTITIONS=1);\n\
              SHOW STREAMS;\nDESCRIBE taps;\nSELECT nope\n  FROM taps EMIT CHANGES;\n",
        )
        .unwrap();
    drop(stdin);
    let mut out = String::new();
    BufReader::new(stdout).read_to_string(&mut out).unwrap();
    drop(guard);
    assert!(out.contains("Stream created"), "{out}");
    assert!(
        out.contains("| TAPS | taps        | KAFKA      | JSON         | false    |"),
        "{out}"
    );
    assert!(out.contains("| STATION | VARCHAR(STRING) (key) |"), "{out}");
    assert!(
        out.contains("error: line 1:8: unknown column NOPE"),
        "{out}"
    );
}
