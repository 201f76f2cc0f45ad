//! The lake in Azure Blob Storage (the seed's Azure Data Lake), against Azurite, the Azure
//! Storage emulator: `scripts/test.sh` starts one (scripts/lib.sh: start_throwaway_azurite,
//! from npm) with the container `streamkit-test` and exports `STREAMKIT_TEST_AZURITE` and
//! `AZURITE_BLOB_STORAGE_URL`; the test fails without them.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use vehicle_trips::lake::{Lake, LandingRow, from_parquet};
use vehicle_trips::model::{DAY_MS, HOUR_MS, TripState, now_ms, parse_date};
use vehicle_trips::promotion;
use vehicle_trips::topology::{POSITIONS, TRIPS};
use vehicle_trips::{Args, start};

fn azurite() -> Vec<(String, String)> {
    let url = std::env::var("STREAMKIT_TEST_AZURITE").expect(
        "STREAMKIT_TEST_AZURITE must name an Azurite blob endpoint with a container \
         streamkit-test (scripts/test.sh starts one: source scripts/lib.sh && start_throwaway_azurite)",
    );
    // object_store's emulator mode finds Azurite there.
    assert_eq!(
        std::env::var("AZURITE_BLOB_STORAGE_URL").ok().as_deref(),
        Some(url.as_str()),
        "AZURITE_BLOB_STORAGE_URL must be STREAMKIT_TEST_AZURITE (start_throwaway_azurite exports both)"
    );
    vec![("azure_storage_use_emulator".into(), "true".into())]
}

fn unique_prefix() -> String {
    format!("vehicle-trips-{}-{}", std::process::id(), now_ms())
}

#[test]
fn landing_in_azure_blob_storage_writes_each_range_once() {
    let options = azurite();
    let lake = Lake::open_with(
        &format!("az://streamkit-test/{}/unit", unique_prefix()),
        &options,
    )
    .unwrap();
    let day = parse_date("2026-12-02").unwrap();
    let rows: Vec<LandingRow> = (0..10)
        .map(|i| LandingRow {
            partition: 1,
            offset: 100 + i,
            timestamp: day * DAY_MS + 13 * HOUR_MS - 5 * 60_000 + i * 60_000,
            key: Some("t1".into()),
            value: Some(format!("{{\"i\":{i}}}")),
        })
        .collect();
    assert_eq!(lake.landed_up_to(POSITIONS, 1).unwrap(), -1);
    let written = lake.land(POSITIONS, &rows).unwrap();
    assert_eq!(written.len(), 2, "{written:?}");
    // Create-if-absent on Blob Storage too: the same range is not written again.
    assert!(lake.land(POSITIONS, &rows).unwrap().is_empty());
    assert_eq!(lake.landed_up_to(POSITIONS, 1).unwrap(), 109);
    assert_eq!(lake.read_landing_day(POSITIONS, day).unwrap(), rows);
}

#[test]
fn the_program_lands_and_promotes_into_azure_blob_storage() {
    let options = azurite();
    let lake_url = format!("az://streamkit-test/{}/app", unique_prefix());
    let running = start(&Args {
        listen: "127.0.0.1:0".parse().unwrap(),
        query_listen: "127.0.0.1:0".into(),
        tick_ms: 20,
        demo_vehicles: 2,
        land_every_secs: 1,
        lake: Some(lake_url.clone()),
        lake_options: options.clone(),
        ..Args::defaults()
    })
    .expect("the program starts");
    assert_eq!(running.lake.url(), lake_url);
    // Some landings while running…
    running
        .wait_until(Duration::from_secs(60), |r| {
            r.lake.landing_files(POSITIONS).map_or(0, |f| f.len()) >= 2
        })
        .unwrap();
    // The fleet stops; once the topology has taken every report sent, closing lands the rest.
    let mut running = running;
    running.stop_fleet();
    let sent = running.reports_sent.load(Ordering::Relaxed) as usize;
    running
        .wait_until(Duration::from_secs(60), |r| {
            let taken: u64 = r
                .app
                .store::<String, TripState>(TRIPS)
                .and_then(|s| s.all())
                .unwrap_or_default()
                .iter()
                .map(|(_, t)| t.reports + t.ignored)
                .sum();
            taken as usize >= sent
        })
        .unwrap();
    let lake = running.lake.clone();
    running.shutdown().unwrap();

    let files = lake.landing_files(POSITIONS).unwrap();
    let mut landed = 0;
    let mut days = std::collections::BTreeSet::new();
    for (path, range) in &files {
        assert!(
            path.starts_with("landing/vehicle-positions/date="),
            "{path}"
        );
        let date = &path["landing/vehicle-positions/date=".len()..][..10];
        days.insert(parse_date(date).unwrap());
        let rows: usize = from_parquet(lake.get(path).unwrap())
            .unwrap()
            .iter()
            .map(|b| b.num_rows())
            .sum();
        assert!(rows as i64 <= range.last - range.first + 1);
        landed += rows;
    }
    assert_eq!(landed, sent, "every report sent landed once");

    // The daily job, from and into Blob Storage, read back by a second client.
    let mut staged = 0;
    let mut trips = 0;
    for &day in &days {
        let report = promotion::promote(&lake, day).unwrap();
        assert_eq!(report.dropped, 0);
        assert_eq!(
            report.staged_by_promotion, 0,
            "the topology staged every landing file"
        );
        assert_eq!(report.staging_files, report.landing_files);
        staged += report.staged;
        trips += report.trips;
    }
    assert_eq!(staged, sent);
    let other = Lake::open_with(&lake_url, &options).unwrap();
    // The trips the topology summarised at their arrival, consolidated per day.
    let streamed = other.list("common/trip_summaries").unwrap();
    assert!(
        streamed.iter().all(|f| f.contains("/trip-")),
        "{streamed:?}"
    );
    // (The daily scheduler may have promoted yesterday, empty, at start: a catch-up.)
    let summaries: Vec<String> = other
        .list("common/trip_summaries_daily")
        .unwrap()
        .into_iter()
        .filter(|f| {
            days.iter()
                .any(|&d| f.contains(&format!("date={}", vehicle_trips::model::format_date(d))))
        })
        .collect();
    assert_eq!(summaries.len(), days.len(), "{summaries:?}");
    let rows: usize = summaries
        .iter()
        .map(|f| {
            from_parquet(other.get(f).unwrap())
                .unwrap()
                .iter()
                .map(|b| b.num_rows())
                .sum::<usize>()
        })
        .sum();
    assert_eq!(rows, trips);
    let in_days = |f: &String| {
        days.iter()
            .any(|&d| f.contains(&format!("date={}", vehicle_trips::model::format_date(d))))
    };
    assert_eq!(streamed.iter().filter(|f| in_days(f)).count(), trips);
    assert_eq!(
        other.list("staging/vehicle_positions").unwrap().len(),
        files.len()
    );
}
