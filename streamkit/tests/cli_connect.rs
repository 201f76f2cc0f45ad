//! `streamkit connect postgres-source` and `streamkit connect http-poll` run a source on their
//! own embedded broker (printed as `bootstrap.servers=`), produce what they read, stop on
//! SIGTERM, and refuse an incomplete command line with a clear message.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio_postgres::NoTls;

/// Kills the process even when an assertion fails.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn postgres_url() -> String {
    std::env::var("STREAMKIT_TEST_POSTGRES_URL").expect(
        "STREAMKIT_TEST_POSTGRES_URL is not set: this test needs a PostgreSQL server \
         (scripts/test.sh starts a throwaway one and sets it)",
    )
}

fn sql(statements: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&postgres_url(), NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client.batch_execute(statements).await.unwrap();
    });
}

/// Starts `streamkit connect …` and returns it with the broker address it printed.
fn start(args: &[&str]) -> (Guard, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_streamkit"))
        .arg("connect")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start streamkit connect");
    let stdout = child.stdout.take().unwrap();
    let first = BufReader::new(stdout).lines().next().unwrap().unwrap();
    let bootstrap = first
        .strip_prefix("bootstrap.servers=")
        .unwrap_or_else(|| panic!("first line: {first}"))
        .to_string();
    (Guard(child), bootstrap)
}

/// Sends SIGTERM and expects a clean exit within 30 s.
fn sigterm_and_wait(mut guard: Guard) {
    let killed = Command::new("kill")
        .args(["-TERM", &guard.0.id().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success(), "kill -TERM failed");
    let exited = common::eventually(Duration::from_secs(30), || {
        matches!(guard.0.try_wait(), Ok(Some(_)))
    });
    assert!(exited, "no exit within 30 s of SIGTERM");
    let status = guard.0.wait().unwrap();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn postgres_source_command_produces_the_table_and_stops_on_sigterm() {
    let t = format!("cli_pgsrc_{}", std::process::id());
    sql(&format!(
        "DROP TABLE IF EXISTS {t};
         CREATE TABLE {t} (stop_id int PRIMARY KEY, stop_name text);
         INSERT INTO {t} VALUES (30001, 'Austin'), (30002, 'Harlem');"
    ));
    let url = postgres_url();
    let (guard, bootstrap) = start(&[
        "postgres-source",
        "--url",
        &url,
        "--table",
        &t,
        "--mode",
        "incrementing",
        "--incrementing-column",
        "stop_id",
        "--key-column",
        "stop_id",
        "--topic-prefix",
        "org.chicago.cta.",
        "--poll-interval-ms",
        "200",
    ]);
    let topic = format!("org.chicago.cta.{t}");
    assert!(common::eventually(
        Duration::from_secs(30),
        || common::record_count(&bootstrap, &topic) >= 2
    ));
    let read = common::read_until(&bootstrap, &topic, Duration::from_secs(30), |r| {
        r.len() >= 2
    });
    assert_eq!(read.len(), 2);
    assert_eq!(read[0].key_str(), "30001");
    assert_eq!(
        read[0].value_str(),
        r#"{"stop_id":30001,"stop_name":"Austin"}"#
    );
    sigterm_and_wait(guard);
    sql(&format!("DROP TABLE {t};"));
}

#[test]
fn connect_commands_name_what_is_missing() {
    let out = Command::new(env!("CARGO_BIN_EXE_streamkit"))
        .args([
            "connect",
            "postgres-source",
            "--url",
            "postgres://nobody@127.0.0.1:1/x",
            "--table",
            "t",
            "--mode",
            "timestamp",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--mode timestamp needs --timestamp-column"),
        "{err}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_streamkit"))
        .args(["connect", "http-poll", "--url", "http://127.0.0.1:1/"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--topic"));
}

#[test]
fn http_poll_command_produces_the_records_of_a_local_api() {
    // A one-route API on a background runtime.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        let app = axum::Router::new().route(
            "/stations",
            axum::routing::get(|| async {
                axum::Json(serde_json::json!({"data": [
                    {"number": 7, "bikes": 3},
                    {"number": 9, "bikes": 0}
                ]}))
            }),
        );
        axum::serve(listener, app).await.unwrap();
    });
    let url = format!("http://{addr}/stations");
    let (guard, bootstrap) = start(&[
        "http-poll",
        "--url",
        &url,
        "--topic",
        "stations",
        "--records-at",
        "/data",
        "--key-at",
        "/number",
        "--dedup",
        "--interval-ms",
        "200",
    ]);
    assert!(common::eventually(
        Duration::from_secs(30),
        || common::record_count(&bootstrap, "stations") >= 2
    ));
    let read = common::read_until(&bootstrap, "stations", Duration::from_secs(30), |r| {
        r.len() >= 2
    });
    assert_eq!(read.len(), 2);
    // Dedup: later polls of the same data add nothing.
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(common::record_count(&bootstrap, "stations"), 2);
    let mut keys: Vec<&str> = read.iter().map(|r| r.key_str()).collect();
    keys.sort();
    assert_eq!(keys, ["7", "9"]);
    sigterm_and_wait(guard);
}
