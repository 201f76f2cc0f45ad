//! The warehouse end to end, on a real PostgreSQL server (`STREAMKIT_TEST_POSTGRES_URL`; the
//! tests fail without one): a simulated day loaded by the bounded batch through the
//! exactly-once Postgres sink — the station dimension and one fact row per station and hour,
//! equal to the streaming topology's hours — a second load of the same day changing nothing;
//! then the whole program, whose scheduler loads yesterday at start, and a day loaded by hand.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bike_stations::batch::{self, Cluster};
use bike_stations::model::{DAY_MS, format_date, now_ms};
use bike_stations::topology::{self, BatchConfig, STATIONS_TOPIC};
use bike_stations::{Args, BATCH_LOOKBACK, city, produce, run_batch_day, start};
use streamkit::prelude::*;
use streamkit::testing::EmbeddedBroker;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Every fact row, as text, keyed by (station key, hour start).
fn facts(rt: &tokio::runtime::Runtime, url: &str) -> BTreeMap<(String, i64), Vec<String>> {
    rt.block_on(async {
        let c = batch::connect(url).await.unwrap();
        c.query(
            "SELECT contract || ':' || station_number, hour_start_ms, samples::text, bikes_sum::text, \
             stands_sum::text, min_bikes::text, max_bikes::text, last_bikes::text, last_stands::text, \
             empty_samples::text, full_samples::text, closed_samples::text, bikes_taken::text, \
             bikes_returned::text, last_update_ms::text, round(mean_bikes::numeric, 6)::text, \
             to_char(hour_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') \
             FROM station_hourly_facts",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let values: Vec<String> = (2..17).map(|i| r.get::<_, String>(i)).collect();
            ((r.get(0), r.get(1)), values)
        })
        .collect()
    })
}

#[test]
fn a_day_is_loaded_once_into_the_dimension_and_the_hourly_facts() {
    let rt = runtime();
    let url = common::fresh_database(&format!("bike_wh_{}", std::process::id()));
    let day = common::test_day();
    let records = common::day_records(day);
    let broker = EmbeddedBroker::start().unwrap();
    let cluster = Cluster {
        servers: broker.bootstrap_servers().to_string(),
        embedded: Some(broker.clone()),
    };
    streamkit::runtime::ensure_topics(
        &StreamsConfig::new("topics").embedded(&broker),
        &topology::TOPICS,
    )
    .unwrap();
    produce(&cluster.servers, &records).unwrap();
    let config = BatchConfig {
        day,
        lookback: BATCH_LOOKBACK,
        postgres_url: Some(url.clone()),
    };
    let dir = tempfile::tempdir().unwrap();
    let report = batch::run(&cluster, &config, dir.path(), Duration::from_secs(120)).unwrap();
    assert!(report.loaded);

    // The fact table: one row per station and hour of the day, equal to the streaming hours.
    let streaming = common::streaming_hours(&records, day);
    let rows = facts(&rt, &url);
    assert_eq!(rows.len(), streaming.len());
    assert_eq!(report.facts, streaming.len());
    for (k, a) in &streaming {
        let row = rows
            .get(k)
            .unwrap_or_else(|| panic!("no fact row for {k:?}"));
        let want: Vec<String> = [
            a.samples,
            a.bikes_sum,
            a.stands_sum,
            a.bikes_min,
            a.bikes_max,
            a.last_bikes,
            a.last_stands,
            a.empty_samples,
            a.full_samples,
            a.closed_samples,
            a.taken,
            a.returned,
            a.last_at,
        ]
        .iter()
        .map(|v| v.to_string())
        .collect();
        assert_eq!(&row[..13], &want[..], "{k:?}");
        assert_eq!(row[13], format!("{:.6}", a.mean_bikes()), "{k:?}");
        assert!(row[14].starts_with("2026-12-02 "), "{}", row[14]);
    }

    // The dimension: every station of the contract, with its name and position.
    let dim = rt.block_on(async {
        let c = batch::connect(&url).await.unwrap();
        c.query(
            "SELECT station_number, name, lat, lng, bike_stands FROM station_dim \
             WHERE contract = 'bruxelles' ORDER BY station_number",
            &[],
        )
        .await
        .unwrap()
    });
    let specs = city::stations();
    assert_eq!(dim.len(), specs.len());
    for (row, spec) in dim.iter().zip(&specs) {
        assert_eq!(row.get::<_, i32>(0) as i64, spec.number);
        assert!(
            row.get::<_, String>(1).ends_with(&spec.name.to_uppercase()),
            "{}",
            row.get::<_, String>(1)
        );
        assert_eq!(row.get::<_, f64>(2), spec.position.lat);
        assert_eq!(row.get::<_, f64>(3), spec.position.lng);
        assert_eq!(row.get::<_, i32>(4) as i64, spec.bike_stands);
    }

    // The load is recorded, and the sink's offsets are at the end of what it read.
    let (loads, offset) = rt.block_on(async {
        let c = batch::connect(&url).await.unwrap();
        let loads: Vec<(String, i32)> = c
            .query("SELECT day::text, facts FROM warehouse_loads", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let offset: i64 = c
            .query_one(
                "SELECT next_offset FROM streamkit_offsets WHERE application_id = $1 AND topic = $2",
                &[&report.application_id, &STATIONS_TOPIC],
            )
            .await
            .unwrap()
            .get(0);
        (loads, offset)
    });
    assert_eq!(loads, [("2026-12-02".to_string(), streaming.len() as i32)]);
    assert_eq!(offset, records.len() as i64);

    // Loading the day again (a fresh state directory, as after a crash) changes nothing.
    let dir2 = tempfile::tempdir().unwrap();
    let again = batch::run(&cluster, &config, dir2.path(), Duration::from_secs(120)).unwrap();
    assert_eq!(again.facts, report.facts);
    assert_eq!(
        facts(&rt, &url),
        rows,
        "a second load leaves every row as it was"
    );
}

#[test]
fn the_program_loads_yesterday_at_start_and_a_day_by_hand() {
    let rt = runtime();
    let url = common::fresh_database(&format!("bike_prog_{}", std::process::id()));
    let args = Args {
        postgres_url: Some(url.clone()),
        listen: "127.0.0.1:0".parse().unwrap(),
        api_listen: "127.0.0.1:0".parse().unwrap(),
        query_listen: "127.0.0.1:0".into(),
        poll_interval_secs: 1,
        ..Args::defaults()
    };
    let running = start(&args).expect("the program starts");
    assert!(
        running.history_records > 1000,
        "{}",
        running.history_records
    );
    running
        .wait_until(Duration::from_secs(120), |r| {
            !r.batches.lock().unwrap().is_empty()
        })
        .unwrap();
    let yesterday = format_date(now_ms().div_euclid(DAY_MS) - 1);
    {
        let log = running.batches.lock().unwrap();
        let report = log[0].as_ref().expect("yesterday's load");
        assert_eq!(report.day, yesterday);
        assert!(report.loaded);
        assert!(report.facts > 500, "{} station-hours", report.facts);
    }
    let (facts, loads) = rt.block_on(async {
        let c = batch::connect(&url).await.unwrap();
        let facts: i64 = c
            .query_one(
                "SELECT count(*) FROM station_hourly_facts WHERE hour_start::date = $1::text::date",
                &[&yesterday],
            )
            .await
            .unwrap()
            .get(0);
        (facts, batch::loaded_days(&c).await.unwrap())
    });
    assert!(facts > 500);
    assert_eq!(loads, std::slice::from_ref(&yesterday));

    // The live side meanwhile: the latest state of every station, through the query server.
    running
        .wait_until(Duration::from_secs(60), |r| {
            r.app
                .store::<String, bike_stations::model::StationTrack>(topology::TRACKS)
                .and_then(|s| s.all())
                .is_ok_and(|all| all.len() == 50)
        })
        .unwrap();
    let (status, body) = common::get(running.query_addr, "/stores/stations/bruxelles:3");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("JARDIN AUX FLEURS"), "{body}");
    running.shutdown().unwrap();

    // By hand, for a date: on the embedded broker its simulated records are written first.
    let report = run_batch_day(
        &Args {
            postgres_url: Some(url.clone()),
            ..Args::defaults()
        },
        "2026-11-28",
    )
    .unwrap();
    assert!(report.loaded);
    assert!(report.facts > 500, "{}", report.facts);
    let loads = rt.block_on(async {
        let c = batch::connect(&url).await.unwrap();
        batch::loaded_days(&c).await.unwrap()
    });
    assert_eq!(loads, ["2026-11-28".to_string(), yesterday]);
}
