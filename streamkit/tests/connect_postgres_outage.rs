//! The exactly-once Postgres sink across a database outage: a private PostgreSQL server (the
//! shared one of `scripts/test.sh` serves other tests meanwhile) is stopped with
//! `pg_ctl stop -m immediate` while a sum-per-key topology streams into it, and started again.
//! An outage shorter than `PostgresSink::retry_for` is ridden out — the application never
//! reaches `Error` and the table equals the sums computed from the input, nothing twice,
//! nothing missing; a longer one stops the application with an error naming the sink and the
//! setting, and a new instance then finishes the work exactly.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::postgres::PrivatePostgres;
use streamkit::connect::postgres::PostgresSink;
use streamkit::prelude::*;
use streamkit::testing::EmbeddedBroker;

const PARTITIONS: i32 = 4;
const STORE: &str = "outage-sums";
const KEYS: u64 = 40;

/// xorshift64*: a small seeded generator (the seed is printed).
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        println!("seed {seed}");
        Rng(seed)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// `n` readings (sensor, value) and, added to `sums`, what they sum to per sensor.
fn readings(rng: &mut Rng, n: usize, sums: &mut BTreeMap<String, i64>) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|_| {
            let key = format!("sensor-{:02}", rng.below(KEYS));
            let value = rng.below(1000) as i64 + 1;
            *sums.entry(key.clone()).or_default() += value;
            (key, value.to_be_bytes().to_vec())
        })
        .collect()
}

fn topology(input: &str, sink: PostgresSink<String, i64>) -> Topology {
    let b = StreamsBuilder::new();
    b.stream(input, Consumed::with(Serdes::string(), Serdes::i64()))
        .group_by_key(Grouped::with(Serdes::string(), Serdes::i64()))
        .reduce(|a, b| a + b, Materialized::named(STORE))
        .to_postgres(sink);
    b.build().unwrap()
}

fn sink(url: &str, table: &str) -> PostgresSink<String, i64> {
    PostgresSink::new(url, table)
        .key_columns(["sensor"], |k: &String| vec![k.clone().into()])
        .value_columns(["total"], |v: &i64| vec![(*v).into()])
}

/// One test's private server, table, broker and input topic.
struct Setup {
    pg: PrivatePostgres,
    app_id: String,
    table: String,
    input: String,
    broker: EmbeddedBroker,
}

fn setup(name: &str) -> Setup {
    common::init_logs();
    let pg = PrivatePostgres::start();
    let table = format!("{name}_sums");
    pg.execute(&format!(
        "CREATE TABLE {table} (sensor text PRIMARY KEY, total bigint NOT NULL)"
    ));
    let broker = EmbeddedBroker::start().unwrap();
    let input = format!("{name}-readings");
    broker.create_topic(&input, PARTITIONS).unwrap();
    Setup {
        pg,
        app_id: format!("{name}-app"),
        table,
        input,
        broker,
    }
}

impl Setup {
    fn app(&self, sink: PostgresSink<String, i64>, state: &std::path::Path) -> KafkaStreams {
        KafkaStreams::new(
            topology(&self.input, sink),
            StreamsConfig::new(&self.app_id)
                .embedded(&self.broker)
                .state_dir(state)
                .commit_interval(Duration::from_millis(100)),
        )
        .unwrap()
    }

    /// The sum of the next offsets stored for the application; `None` while the server is
    /// down, 0 before the first commit.
    fn stored_offsets(&self) -> Option<i64> {
        self.pg.query_i64(&format!(
            "SELECT COALESCE(SUM(next_offset), 0)::bigint FROM streamkit_offsets \
             WHERE application_id = '{}'",
            self.app_id
        ))
    }

    /// Waits (polling) until the stored offsets sum to `n`.
    fn wait_for_offsets(&self, n: i64, timeout: Duration) {
        assert!(
            common::eventually(timeout, || self.stored_offsets() == Some(n)),
            "offsets stored: {:?} (waited {timeout:?} for {n})",
            self.stored_offsets()
        );
    }

    /// Asserts that the table holds exactly `expected`.
    fn assert_table(&self, expected: &BTreeMap<String, i64>) {
        let rows = self
            .pg
            .query(&format!("SELECT sensor, total FROM {}", self.table))
            .expect("reading the table");
        let actual: BTreeMap<String, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let diff: Vec<_> = expected
            .iter()
            .filter(|(k, v)| actual.get(*k) != Some(*v))
            .map(|(k, v)| (k, *v, actual.get(k).copied()))
            .collect();
        assert!(
            diff.is_empty() && actual.len() == expected.len(),
            "the table differs from the input's sums: (key, expected, actual) {diff:?}; \
             {} rows for {} keys",
            actual.len(),
            expected.len()
        );
    }
}

/// Records whether the application ever reached `Error`.
fn watch_for_error(app: &KafkaStreams) -> Arc<Mutex<Vec<StreamsState>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    app.set_state_listener(move |_, new| record.lock().unwrap().push(new));
    seen
}

#[test]
fn a_60_second_postgres_outage_mid_stream_is_ridden_out_exactly() {
    const RECORDS: usize = 9_000;
    const CHUNK: usize = 50;
    const OUTAGE: Duration = Duration::from_secs(60);
    let t = setup("outage60");
    let mut rng = Rng::seeded();
    let mut expected = BTreeMap::new();
    let records = readings(&mut rng, RECORDS, &mut expected);

    let state = tempfile::tempdir().unwrap();
    // Default retry settings: riding out a restart is what they are for.
    let app = t.app(sink(&t.pg.url(), &t.table), state.path());
    let states = watch_for_error(&app);
    app.start().unwrap();

    // The input streams in for about 90 s: before, during and after the outage.
    let done = Arc::new(AtomicBool::new(false));
    let producer = {
        let (bootstrap, input, done) = (
            t.broker.bootstrap_servers().to_string(),
            t.input.clone(),
            done.clone(),
        );
        std::thread::spawn(move || {
            for chunk in records.chunks(CHUNK) {
                common::produce(&bootstrap, &input, chunk);
                std::thread::sleep(Duration::from_millis(500));
            }
            done.store(true, Ordering::Release);
        })
    };

    // Mid-stream: once a good part of the input is in Postgres, while more keeps coming.
    assert!(
        common::eventually(Duration::from_secs(120), || t
            .stored_offsets()
            .is_some_and(|n| n >= 1_000)),
        "offsets stored: {:?}",
        t.stored_offsets()
    );
    t.pg.stop_immediately();
    let stopped = Instant::now();
    assert!(
        !done.load(Ordering::Acquire),
        "the input ended before the outage"
    );
    println!("postgres stopped");
    assert_eq!(t.stored_offsets(), None, "the server is down");
    std::thread::sleep(OUTAGE);
    assert_eq!(
        app.state(),
        StreamsState::Running,
        "during the outage: {:?}",
        app.error()
    );
    t.pg.restart();
    println!("postgres restarted after {:?}", stopped.elapsed());

    producer.join().unwrap();
    // The sink reconnects within its backoff (5 s at most), then catches up.
    t.wait_for_offsets(RECORDS as i64, Duration::from_secs(120));
    t.assert_table(&expected);
    println!(
        "records processed: {} for {RECORDS} input records",
        app.metrics().records_processed()
    );
    assert!(
        !states.lock().unwrap().contains(&StreamsState::Error),
        "the application reached Error: {:?}; states {:?}",
        app.error(),
        states.lock().unwrap()
    );
    app.close().unwrap();
}

#[test]
fn an_outage_longer_than_retry_for_fails_naming_the_sink_and_the_setting() {
    const FIRST: usize = 500;
    const MORE: usize = 100;
    const RETRY_FOR: Duration = Duration::from_secs(5);
    const OUTAGE: Duration = Duration::from_secs(20);
    let t = setup("outage20");
    let mut rng = Rng::seeded();
    let mut expected = BTreeMap::new();
    let bootstrap = t.broker.bootstrap_servers().to_string();

    let state = tempfile::tempdir().unwrap();
    let app = t.app(
        sink(&t.pg.url(), &t.table).retry_for(RETRY_FOR),
        state.path(),
    );
    app.start().unwrap();
    common::produce(
        &bootstrap,
        &t.input,
        &readings(&mut rng, FIRST, &mut expected),
    );
    t.wait_for_offsets(FIRST as i64, Duration::from_secs(60));

    t.pg.stop_immediately();
    let stopped = Instant::now();
    // Records to commit while the server is down.
    common::produce(
        &bootstrap,
        &t.input,
        &readings(&mut rng, MORE, &mut expected),
    );
    // Not a hang: the thread gives up about RETRY_FOR after the first failed commit, well
    // within the outage.
    assert!(
        app.wait_for_state(
            StreamsState::Error,
            OUTAGE.saturating_sub(stopped.elapsed())
        ),
        "still {:?} {:?} after the server stopped",
        app.state(),
        stopped.elapsed()
    );
    let failed_after = stopped.elapsed();
    println!("failed {failed_after:?} after the server stopped");
    assert!(failed_after >= RETRY_FOR, "gave up early: {failed_after:?}");
    let err = app.close().unwrap_err().to_string();
    assert!(err.contains(&format!("postgres sink {}", t.table)), "{err}");
    assert!(err.contains("retry_for"), "{err}");
    assert!(err.contains(&format!("{RETRY_FOR:?}")), "{err}");

    std::thread::sleep(OUTAGE.saturating_sub(stopped.elapsed()));
    t.pg.restart();

    // Nothing half-done: a new instance resumes from what Postgres holds and ends exact.
    let state2 = tempfile::tempdir().unwrap();
    let again = t.app(sink(&t.pg.url(), &t.table), state2.path());
    again.start().unwrap();
    t.wait_for_offsets((FIRST + MORE) as i64, Duration::from_secs(120));
    t.assert_table(&expected);
    again.close().unwrap();
}
