//! Crash test of the exactly-once Postgres sink: a child process runs a sum-per-key topology
//! into Postgres while the input streams in from an embedded broker that lives in this
//! (parent) process; the child is killed with SIGKILL at several seeded random points and
//! restarted each time. At the end the Postgres table must equal the sums computed here from
//! the input: nothing counted twice, nothing missing.
//!
//! The child is this test binary run again with this same test selected and
//! `STREAMKIT_CRASH_CHILD` set, which makes the test run the child's part instead. `STREAMKIT_CRASH_SEED` replays a run; the seed is printed.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use streamkit::connect::postgres::PostgresSink;
use streamkit::prelude::*;
use streamkit::testing::EmbeddedBroker;
use tokio_postgres::NoTls;

const INPUT: &str = "crash-readings";
const PARTITIONS: i32 = 4;
const STORE: &str = "crash-sums";
const RECORDS: usize = 6000;
const KEYS: usize = 40;
const KILLS: usize = 4;
/// The line a child prints once it owns its partitions.
const RUNNING: &str = "crash-child: running";

fn postgres_url() -> String {
    std::env::var("STREAMKIT_TEST_POSTGRES_URL").expect(
        "STREAMKIT_TEST_POSTGRES_URL is not set: this test needs a PostgreSQL server \
         (scripts/test.sh starts a throwaway one and sets it)",
    )
}

/// xorshift64*: a small seeded generator, so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn topology(url: &str, table: &str) -> Topology {
    let b = StreamsBuilder::new();
    b.stream(INPUT, Consumed::with(Serdes::string(), Serdes::i64()))
        .group_by_key(Grouped::with(Serdes::string(), Serdes::i64()))
        .reduce(|a, b| a + b, Materialized::named(STORE))
        .to_postgres(
            PostgresSink::new(url, table)
                .key_columns(["sensor"], |k: &String| vec![k.clone().into()])
                .value_columns(["total"], |v: &i64| vec![(*v).into()]),
        );
    b.build().unwrap()
}

/// The child: runs the topology until killed (or until its parent is gone).
fn crash_child_process() {
    common::init_logs();
    let env = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} not set"));
    let parent = std::os::unix::process::parent_id();
    let config = StreamsConfig::new(env("STREAMKIT_CRASH_APP"))
        .bootstrap_servers(env("STREAMKIT_CRASH_BOOTSTRAP"))
        .state_dir(env("STREAMKIT_CRASH_STATE"))
        .commit_interval(Duration::from_millis(50))
        // A killed member stays in the group until its session times out; keep that short
        // so the restarted child gets the partitions quickly, but above the mock's 3 s
        // initial rebalance delay, or a first member times out while it waits to join.
        .set("consumer.session.timeout.ms", "4000")
        .set("consumer.heartbeat.interval.ms", "500");
    let app = KafkaStreams::new(
        topology(&postgres_url(), &env("STREAMKIT_CRASH_TABLE")),
        config,
    )
    .unwrap();
    let announced = AtomicBool::new(false);
    app.set_state_listener(move |_, new| {
        if new == StreamsState::Running && !announced.swap(true, Ordering::AcqRel) {
            println!("{RUNNING}");
        }
    });
    app.start().unwrap();
    while std::os::unix::process::parent_id() == parent {
        assert!(app.error().is_none(), "{:?}", app.error());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts a child; the receiver gets a message once the child is running.
fn spawn_child(
    bootstrap: &str,
    app: &str,
    table: &str,
    state: &std::path::Path,
) -> (Child, std::sync::mpsc::Receiver<()>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "postgres_sink_survives_sigkill_exactly",
            "--exact",
            "--nocapture",
        ])
        .env("STREAMKIT_CRASH_CHILD", "1")
        .env("STREAMKIT_CRASH_BOOTSTRAP", bootstrap)
        .env("STREAMKIT_CRASH_APP", app)
        .env("STREAMKIT_CRASH_TABLE", table)
        .env("STREAMKIT_CRASH_STATE", state)
        .env("STREAMKIT_TEST_POSTGRES_URL", postgres_url())
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "streamkit=warn".into()),
        )
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawning the child process");
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains(RUNNING) {
                let _ = tx.send(());
            }
            println!("  child: {line}");
        }
    });
    (child, rx)
}

/// Kills the child on drop, so a failing assertion leaves no process behind.
struct Guard(Option<Child>);

impl Guard {
    fn sigkill(&mut self) {
        if let Some(mut c) = self.0.take() {
            c.kill().unwrap(); // SIGKILL on Unix
            c.wait().unwrap();
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.sigkill();
    }
}

#[test]
fn postgres_sink_survives_sigkill_exactly() {
    if std::env::var_os("STREAMKIT_CRASH_CHILD").is_some() {
        return crash_child_process();
    }
    common::init_logs();
    let url = postgres_url();
    let seed = std::env::var("STREAMKIT_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("crash test seed: STREAMKIT_CRASH_SEED={seed}");
    eprintln!("crash test seed: STREAMKIT_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let run = format!("{}_{}", std::process::id(), seed % 1_000_000);
    let (app, table) = (format!("crash-app-{run}"), format!("crash_sums_{run}"));

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&url, NoTls).await.unwrap();
        tokio::spawn(conn);
        client
    });
    rt.block_on(db.batch_execute(&format!(
        "CREATE TABLE {table} (sensor text PRIMARY KEY, total bigint NOT NULL)"
    )))
    .unwrap();
    let stored_offsets = || -> i64 {
        rt.block_on(db.query(
            "SELECT COALESCE(SUM(next_offset), 0)::bigint FROM streamkit_offsets \
             WHERE application_id = $1",
            &[&app],
        ))
        .map(|r| r[0].get::<_, i64>(0))
        .unwrap_or(0)
    };

    // The broker outlives every child. No admin API: create the internal topic here too.
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic(INPUT, PARTITIONS).unwrap();
    broker
        .create_topic(&format!("{app}-{STORE}-changelog"), PARTITIONS)
        .unwrap();
    let bootstrap = broker.bootstrap_servers().to_string();
    let state = tempfile::tempdir().unwrap();

    // The input streams in over ~36 s while children come and go.
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    let mut records = Vec::with_capacity(RECORDS);
    for _ in 0..RECORDS {
        let key = format!("sensor-{:02}", rng.below(KEYS as u64));
        let value = rng.below(1000) as i64 + 1;
        *expected.entry(key.clone()).or_default() += value;
        records.push((key, value.to_be_bytes().to_vec()));
    }
    let done = Arc::new(AtomicBool::new(false));
    let producer = {
        let (bootstrap, done) = (bootstrap.clone(), done.clone());
        std::thread::spawn(move || {
            // About as long as the kills take (each restart waits ~7 s for the group).
            for chunk in records.chunks(RECORDS / 80) {
                common::produce(&bootstrap, INPUT, chunk);
                std::thread::sleep(Duration::from_millis(450));
            }
            done.store(true, Ordering::Release);
        })
    };

    let mut child = Guard(None);
    for kill in 1..=KILLS {
        let (c, running) = spawn_child(&bootstrap, &app, &table, state.path());
        child.0 = Some(c);
        // Killed at a random point while processing and committing, timed from the moment it
        // owns its partitions: joining takes ~7 s on the mock cluster (the killed member must
        // time out first), and a kill before that exercises nothing.
        running
            .recv_timeout(Duration::from_secs(30))
            .expect("the child did not start running within 30 s");
        let after = Duration::from_millis(rng.below(2500));
        std::thread::sleep(after);
        println!(
            "kill {kill}/{KILLS} after {after:?}: {} offsets stored",
            stored_offsets()
        );
        child.sigkill();
    }
    producer.join().unwrap();
    assert!(done.load(Ordering::Acquire));

    child.0 = Some(spawn_child(&bootstrap, &app, &table, state.path()).0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while stored_offsets() < RECORDS as i64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        stored_offsets(),
        RECORDS as i64,
        "the last child did not catch up (seed {seed})"
    );
    child.sigkill();

    let rows = rt
        .block_on(db.query(&format!("SELECT sensor, total FROM {table}"), &[]))
        .unwrap();
    let actual: BTreeMap<String, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let diff: Vec<_> = expected
        .iter()
        .filter(|(k, v)| actual.get(*k) != Some(*v))
        .map(|(k, v)| (k, *v, actual.get(k).copied()))
        .collect();
    assert!(
        diff.is_empty() && actual.len() == expected.len(),
        "postgres differs from the input's sums (seed {seed}): (key, expected, actual) {diff:?}"
    );
}
