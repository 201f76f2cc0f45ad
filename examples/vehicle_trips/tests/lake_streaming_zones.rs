//! The streaming topology writing staging and common (through the test driver, into a lake
//! in a temporary directory), exactly once across a replay, and the daily promotion
//! consolidating what it wrote.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampMillisecondType};
use arrow_array::{Array, RecordBatch};
use vehicle_trips::lake::{Lake, from_parquet};
use vehicle_trips::model::{TripState, TripStatus};
use vehicle_trips::promotion::{self, read_batches, summarise_vehicles, trip_rows};
use vehicle_trips::topology::TRIPS;

/// A staging row as compared here: partition, offset, trip, time, computed speed.
type Row = (i32, i64, String, i64, Option<f64>);

fn staging_rows(batches: &[RecordBatch]) -> Vec<Row> {
    let mut out = Vec::new();
    for b in batches {
        let p = b["kafka_partition"].as_primitive::<Int32Type>();
        let o = b["kafka_offset"].as_primitive::<Int64Type>();
        let trip = b["trip_id"].as_string::<i32>();
        let ts = b["ts"].as_primitive::<TimestampMillisecondType>();
        let speed = b["speed_kmh"].as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            out.push((
                p.value(i),
                o.value(i),
                trip.value(i).to_string(),
                ts.value(i),
                (!speed.is_null(i)).then(|| speed.value(i)),
            ));
        }
    }
    out
}

/// The day's reports with a malformed value, an impossible position and a retried send.
fn records() -> (usize, Vec<(String, String, i64)>) {
    let reports = common::simulated_reports();
    let mut records = common::raw(&reports);
    let ts = records[20].2;
    records.insert(20, ("t1".into(), "{\"oops\":".into(), ts));
    let mut far = reports[30].clone();
    far.lat = 999.0;
    records.insert(
        31,
        ("t1".into(), serde_json::to_string(&far).unwrap(), far.ts),
    );
    records.push(records[100].clone());
    (reports.len(), records)
}

fn file_names(lake: &Lake, dir: &str) -> BTreeSet<String> {
    lake.list(dir)
        .unwrap()
        .into_iter()
        .map(|f| f[dir.len()..].to_string())
        .collect()
}

/// What the streaming job wrote, checked; returns the trip-state table's trips.
fn check_streaming_zones(lake: &Lake, reports: usize, trips_in_table: &[TripState]) {
    // Staging: one file per landing file, same hour and name.
    let landing = file_names(lake, "landing/vehicle-positions");
    let staging = file_names(lake, "staging/vehicle_positions");
    assert!(!landing.is_empty());
    assert_eq!(staging, landing);
    // Each report once across the files (the retried send, in a later file, dropped), a
    // speed for all but each trip's first report (across files).
    let rows = staging_rows(&read_batches(lake, "staging/vehicle_positions").unwrap());
    assert_eq!(rows.len(), reports);
    let keys: BTreeSet<(&str, i64)> = rows.iter().map(|r| (r.2.as_str(), r.3)).collect();
    assert_eq!(keys.len(), reports);
    assert_eq!(rows.iter().filter(|r| r.4.is_none()).count(), 6);

    // Common: a file per arrived trip, as the trip-state table has it.
    let trips = trip_rows(&read_batches(lake, "common/trip_summaries").unwrap()).unwrap();
    assert_eq!(trips.len(), 6);
    assert_eq!(trips_in_table.len(), 6);
    for t in &trips {
        let s = trips_in_table
            .iter()
            .find(|s| s.trip_id == t.trip_id)
            .unwrap();
        assert_eq!(t.status, TripStatus::Arrived);
        assert_eq!(
            (
                t.vehicle_id.as_str(),
                t.started_at,
                t.arrived_at,
                t.reports,
                t.stops
            ),
            (
                s.vehicle_id.as_str(),
                s.started_at,
                s.arrived_at,
                s.reports,
                s.stops
            )
        );
        assert!((t.distance_m - s.distance_m).abs() < 1e-9);
        assert_eq!(
            promotion::trip_summary_path(s),
            format!(
                "common/trip_summaries/date=2026-12-02/trip-{}.parquet",
                s.trip_id
            )
        );
    }
    assert!(trips.iter().any(|t| t.stops > 0));
    // A file per vehicle and day: its arrived trips.
    let vehicles = vehicle_rows(&read_batches(lake, "common/vehicle_summaries").unwrap());
    let expected = summarise_vehicles(&trips);
    assert_eq!(vehicles.len(), 3);
    assert_eq!(vehicles.len(), expected.len());
    for v in &expected {
        let (trips, arrived, distance) = vehicles[&v.vehicle_id];
        assert_eq!((trips, arrived), (v.trips, v.arrived));
        assert_eq!(trips, 2);
        assert!((distance - v.distance_m).abs() < 1e-6);
    }
}

/// vehicle → (trips, arrived, distance).
fn vehicle_rows(batches: &[RecordBatch]) -> BTreeMap<String, (i64, i64, f64)> {
    let mut out = BTreeMap::new();
    for b in batches {
        let id = b["vehicle_id"].as_string::<i32>();
        let trips = b["trips"].as_primitive::<Int64Type>();
        let arrived = b["arrived"].as_primitive::<Int64Type>();
        let distance = b["distance_m"].as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            let prev = out.insert(
                id.value(i).to_string(),
                (trips.value(i), arrived.value(i), distance.value(i)),
            );
            assert!(prev.is_none(), "vehicle {} twice", id.value(i));
        }
    }
    out
}

fn table_trips(d: &streamkit::prelude::TopologyTestDriver) -> Vec<TripState> {
    d.key_value_store::<String, TripState>(TRIPS)
        .unwrap()
        .all()
        .unwrap()
        .into_iter()
        .map(|(_, t)| t)
        .collect()
}

#[test]
fn the_topology_writes_staging_and_common() {
    let (_dir, lake) = common::temp_lake();
    let (reports, records) = records();
    let d = common::land(&lake, &records);
    let trips = table_trips(&d);
    d.close().unwrap();
    check_streaming_zones(&lake, reports, &trips);
}

#[test]
fn a_replay_from_an_older_commit_duplicates_no_staging_or_common_file() {
    let (_dir, lake) = common::temp_lake();
    let (reports, records) = records();
    let first = records.len() * 2 / 3;
    common::land(&lake, &records[..first]).close().unwrap();
    let staged_first = file_names(&lake, "staging/vehicle_positions");
    let arrived_first = file_names(&lake, "common/trip_summaries");
    assert!(!staged_first.is_empty());
    assert!(
        !arrived_first.is_empty() && arrived_first.len() < 6,
        "{arrived_first:?}"
    );
    // A crash: everything again from offset 0, in a fresh driver with its stores lost.
    let d = common::land(&lake, &records);
    let trips = table_trips(&d);
    d.close().unwrap();
    assert!(staged_first.is_subset(&file_names(&lake, "staging/vehicle_positions")));
    check_streaming_zones(&lake, reports, &trips);
}

#[test]
fn the_daily_promotion_consolidates_what_streaming_wrote() {
    let (_dir, lake) = common::temp_lake();
    let (reports, records) = records();
    common::land(&lake, &records).close().unwrap();
    let day = common::test_day();
    let streaming_staging =
        staging_rows(&read_batches(&lake, "staging/vehicle_positions").unwrap());
    let streaming_trips = read_batches(&lake, "common/trip_summaries/date=2026-12-02").unwrap();
    let streaming_vehicles =
        vehicle_rows(&read_batches(&lake, "common/vehicle_summaries/date=2026-12-02").unwrap());

    let report = promotion::promote(&lake, day).unwrap();
    assert_eq!(report.day, "2026-12-02");
    assert_eq!(report.landing_rows, records.len());
    assert_eq!(report.landing_files, report.staging_files);
    assert_eq!(report.staged_by_promotion, 0);
    assert_eq!(report.staged, reports);
    assert_eq!(report.dropped, 3);
    assert_eq!((report.trips, report.arrived, report.vehicles), (6, 6, 3));

    // The day's staging in one file: the union of the streaming files.
    let daily = read_batches(&lake, "staging/vehicle_positions_daily/date=2026-12-02").unwrap();
    assert_eq!(
        lake.list("staging/vehicle_positions_daily").unwrap(),
        ["staging/vehicle_positions_daily/date=2026-12-02/part-0.parquet"]
    );
    assert_eq!(staging_rows(&daily), streaming_staging);
    // The trips in one file: the streaming summaries, the same rows.
    let daily_trips = read_batches(&lake, "common/trip_summaries_daily/date=2026-12-02").unwrap();
    assert_eq!(
        trip_rows(&daily_trips).unwrap().len(),
        trip_rows(&streaming_trips).unwrap().len()
    );
    let rows = |b: &[RecordBatch]| {
        let mut v: Vec<String> = trip_rows(b)
            .unwrap()
            .iter()
            .map(|t| format!("{t:?}"))
            .collect();
        v.sort();
        v
    };
    assert_eq!(rows(&daily_trips), rows(&streaming_trips));
    // The vehicles of the day: as streaming left them.
    let daily_vehicles =
        vehicle_rows(&read_batches(&lake, "common/vehicle_daily/date=2026-12-02").unwrap());
    assert_eq!(daily_vehicles.len(), streaming_vehicles.len());
    for (id, (trips, arrived, distance)) in &streaming_vehicles {
        let d = daily_vehicles[id];
        assert_eq!((d.0, d.1), (*trips, *arrived));
        assert!((d.2 - distance).abs() < 1e-6);
    }

    // Again: the same files, the same report.
    let files = lake.list("").unwrap();
    assert_eq!(promotion::promote(&lake, day).unwrap(), report);
    assert_eq!(lake.list("").unwrap(), files);
    assert_eq!(promotion::promoted(&lake, day).unwrap(), Some(report));
}

#[test]
fn the_daily_promotion_stages_a_landing_file_streaming_did_not() {
    let (_dir, lake) = common::temp_lake();
    let (reports, records) = records();
    common::land(&lake, &records).close().unwrap();
    // A crash between a landing file and its staging file.
    let staging = lake.list("staging/vehicle_positions").unwrap();
    let lost = &staging[staging.len() / 2];
    let lost_rows = staging_rows(&from_parquet(lake.get(lost).unwrap()).unwrap());
    lake.delete(lost).unwrap();
    assert!(!lake.exists(lost).unwrap());

    let report = promotion::promote(&lake, common::test_day()).unwrap();
    assert_eq!(report.staged_by_promotion, 1);
    assert!(lake.exists(lost).unwrap());
    // Cleaned on its own: the same reports, each trip's first in the file without a speed.
    let again = staging_rows(&from_parquet(lake.get(lost).unwrap()).unwrap());
    let key = |r: &Row| (r.0, r.1);
    assert_eq!(
        again.iter().map(key).collect::<Vec<_>>(),
        lost_rows.iter().map(key).collect::<Vec<_>>()
    );
    assert_eq!(report.staged, reports);
    assert_eq!(
        staging_rows(&read_batches(&lake, "staging/vehicle_positions_daily").unwrap()).len(),
        reports
    );
}
