//! End to end on the embedded broker with a real PostgreSQL server: a generated feed in,
//! exactly the expected rows in `bus_traffic_processed`, each once, with the delays the
//! generator built the feed from.

use std::collections::BTreeMap;
use std::time::Duration;

use bus_arrivals::{Args, start};

/// The server from `STREAMKIT_TEST_POSTGRES_URL`; the test fails without one.
fn postgres_url() -> String {
    std::env::var("STREAMKIT_TEST_POSTGRES_URL").expect(
        "STREAMKIT_TEST_POSTGRES_URL must name a PostgreSQL server the test may create a \
         database on (scripts/test.sh starts one), e.g. postgres://postgres@127.0.0.1:5432/postgres",
    )
}

/// The URL with its database name replaced.
fn with_database(url: &str, db: &str) -> String {
    let (base, _) = url
        .rsplit_once('/')
        .filter(|(b, _)| b.contains("://") && !b.ends_with('/'))
        .unwrap_or((url, ""));
    format!("{base}/{db}")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A fresh database of its own, so tests running in parallel do not meet.
fn fresh_database(rt: &tokio::runtime::Runtime, name: &str) -> String {
    let admin_url = postgres_url();
    rt.block_on(async {
        let client = bus_arrivals::postgres::connect(&admin_url).await.unwrap();
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .await
            .unwrap();
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
    });
    with_database(&admin_url, name)
}

type Delays = BTreeMap<(String, i64), f64>;

/// Runs the application on a generated feed of `rows` rows made with `seed`, and checks that
/// `bus_traffic_processed` then holds exactly the rows of `before` and of the feed (the
/// feed's rows with arrival times, once each, with the delays the generator built them
/// from; the feed's value where both have a key). Returns what the table holds.
fn run_and_check(
    rt: &tokio::runtime::Runtime,
    url: &str,
    rows: u64,
    seed: u64,
    before: &Delays,
) -> Delays {
    let args = Args {
        postgres_url: Some(url.to_string()),
        rows,
        seed,
        vehicles: 30,
        rate: 0.0,
        listen: "127.0.0.1:0".parse().unwrap(),
        application_id: "bus-e2e-postgres".into(),
        // No training in this test: the threshold is out of reach.
        min_train_rows: usize::MAX,
        quiet: true,
        ..Args::defaults()
    };
    let mut running = start(&args).expect("the application starts");
    let truth = running.truth.clone().expect("a generated feed");
    let this_run: Delays = truth
        .iter()
        .filter_map(|t| {
            t.delay_minutes
                .map(|d| ((t.vehicle.clone(), t.recorded_at), d))
        })
        .collect();
    let malformed = truth.iter().filter(|t| t.malformed).count();
    // The generator's shares (4% missing values, 0.5% malformed) make both kinds appear.
    assert!(
        this_run.len() as u64 > rows * 9 / 10 && this_run.len() < truth.len(),
        "{}",
        this_run.len()
    );
    assert!(malformed > 0);
    let mut expected = before.clone();
    expected.extend(this_run.iter().map(|(k, v)| (k.clone(), *v)));

    let stats = running.wait_for_replay().expect("the replay completes");
    assert_eq!(stats.rows, rows);

    let client = rt.block_on(bus_arrivals::postgres::connect(url)).unwrap();
    let table = || -> Delays {
        rt.block_on(client.query(
            "SELECT vehicle_ref, recorded_at, delay FROM bus_traffic_processed",
            &[],
        ))
        .unwrap()
        .iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect()
    };
    // Rows travel as JSON through bus-traffic-processed: serde_json's parser may be one unit
    // in the last place off.
    let same = |a: Option<&f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-9);
    let done = |t: &Delays| this_run.iter().all(|(k, d)| same(t.get(k), *d));
    running
        .wait_until(Duration::from_secs(90), |_| done(&table()))
        .unwrap_or_else(|e| {
            let t = table();
            let missing = this_run
                .iter()
                .filter(|(k, d)| !same(t.get(*k), **d))
                .count();
            panic!(
                "{e}: {missing} of {} rows missing or stale in bus_traffic_processed",
                this_run.len()
            )
        });
    // A little longer: nothing more may arrive.
    std::thread::sleep(Duration::from_millis(1_500));

    let rows = rt
        .block_on(client.query(
            "SELECT vehicle_ref, recorded_at, delay, recorded_at_time, published_line_name \
             FROM bus_traffic_processed ORDER BY vehicle_ref, recorded_at",
            &[],
        ))
        .unwrap();
    let distinct: i64 = rt
        .block_on(client.query_one(
            "SELECT count(DISTINCT (vehicle_ref, recorded_at)) FROM bus_traffic_processed",
            &[],
        ))
        .unwrap()
        .get(0);
    assert_eq!(rows.len(), expected.len(), "no duplicates, nothing missing");
    assert_eq!(distinct as usize, rows.len());
    let mut got = Delays::new();
    for r in &rows {
        let key = (r.get::<_, String>(0), r.get::<_, i64>(1));
        assert_eq!(
            r.get::<_, String>(3),
            bus_arrivals::clean::format_datetime(key.1)
        );
        assert!(!r.get::<_, String>(4).is_empty());
        got.insert(key, r.get(2));
    }
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (key, delay) in &expected {
        let stored = got[key];
        assert!(
            (stored - delay).abs() < 1e-9,
            "{key:?}: stored delay {stored}, generated {delay}"
        );
    }

    // The malformed rows went to the dead-letter topic, counted by the cleaning step.
    let counts = running
        .app
        .store::<String, bus_arrivals::topology::CleanState>(bus_arrivals::topology::CLEAN_STATE)
        .unwrap()
        .all()
        .unwrap()
        .into_iter()
        .fold((0, 0, 0), |(r, m, d), (_, s)| {
            (r + s.rows, m + s.malformed, d + s.missing_arrival)
        });
    assert_eq!(counts.1 as usize, malformed);
    assert_eq!(
        counts.0 as usize + counts.1 as usize + counts.2 as usize,
        truth.len(),
        "every row accounted for: {counts:?}"
    );
    running.shutdown().unwrap();
    got
}

#[test]
fn generated_rows_land_in_postgres_exactly_once() {
    let rt = runtime();
    let db = format!("bus_e2e_{}", std::process::id());
    let url = fresh_database(&rt, &db);
    let first = run_and_check(&rt, &url, 1_500, 7, &Delays::new());
    // A second run against the same database: a fresh embedded broker whose topics start
    // at offset 0 again, a feed with the same keys (vehicles, report times) but other
    // delays. The offsets the sink kept from the first run must not make it skip rows: every
    // row ends up with the second feed's delay.
    run_and_check(&rt, &url, 1_500, 8, &first);
    rt.block_on(async {
        let admin = bus_arrivals::postgres::connect(&postgres_url())
            .await
            .unwrap();
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .await
            .unwrap();
    });
}
