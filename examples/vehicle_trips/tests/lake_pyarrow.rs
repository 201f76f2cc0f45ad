//! The lake read back by an independent reader: the day's reports written through the
//! topology to landing, staging and common, the day promoted (consolidated), then read with
//! pyarrow (`scripts/test.sh`
//! installs it into `.venv/pyarrow` and exports `STREAMKIT_TEST_PYARROW`, its interpreter;
//! the test fails without it).

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;
use vehicle_trips::model::TripStatus;
use vehicle_trips::promotion::{self, CleanCounts, clean, summarise_trips};

const READER: &str = r#"
import json, sys
import pyarrow as pa
import pyarrow.dataset as ds

root = sys.argv[1]
def table(path):
    return ds.dataset(root + "/" + path, format="parquet", partitioning="hive").to_table()

out = {}
landing = table("landing/vehicle-positions")
out["landing_rows"] = landing.num_rows
out["landing_types"] = {f.name: str(f.type) for f in landing.schema}
offsets = landing.column("offset").to_pylist()
out["landing_unique_offsets"] = len(set(offsets))
out["landing_hours"] = sorted(set(landing.column("hour").to_pylist()))

staging = table("staging/vehicle_positions")
out["staging_files"] = len(ds.dataset(root + "/staging/vehicle_positions", format="parquet").files)
daily = table("staging/vehicle_positions_daily")
out["staging_daily_rows"] = daily.num_rows
out["staging_daily_equal"] = daily.drop_columns(["date"]).sort_by([("kafka_partition", "ascending"), ("kafka_offset", "ascending")]).equals(
    staging.drop_columns(["date", "hour"]).sort_by([("kafka_partition", "ascending"), ("kafka_offset", "ascending")]))
out["staging_rows"] = staging.num_rows
out["staging_types"] = {f.name: str(f.type) for f in staging.schema}
rows = staging.to_pylist()
keys = [(r["trip_id"], r["ts"]) for r in rows]
out["staging_unique_keys"] = len(set(keys))
out["staging_null_speeds"] = staging.column("speed_kmh").null_count
out["staging_states"] = sorted(set(staging.column("state").to_pylist()))

trips = table("common/trip_summaries")
out["trip_types"] = {f.name: str(f.type) for f in trips.schema}
out["trips"] = {r["trip_id"]: {"status": r["status"], "stops": r["stops"],
                "distance_m": r["distance_m"], "reports": r["reports"],
                "arrived": r["arrived_at"] is not None}
                for r in trips.to_pylist()}
out["trip_files"] = len(ds.dataset(root + "/common/trip_summaries", format="parquet").files)
trips_daily = table("common/trip_summaries_daily")
key = [("trip_id", "ascending")]
out["trips_daily_equal"] = trips_daily.sort_by(key).equals(trips.sort_by(key))
def vehicles_of(path):
    return {r["vehicle_id"]: {"trips": r["trips"], "arrived": r["arrived"],
            "distance_m": r["distance_m"], "date": str(r["date"])}
            for r in table(path).to_pylist()}
out["vehicles"] = vehicles_of("common/vehicle_daily")
out["vehicles_streaming"] = vehicles_of("common/vehicle_summaries")
print(json.dumps(out))
"#;

fn python() -> String {
    std::env::var("STREAMKIT_TEST_PYARROW").expect(
        "STREAMKIT_TEST_PYARROW must name a Python interpreter with pyarrow \
         (scripts/test.sh installs one: source scripts/lib.sh && ensure_python_pyarrow)",
    )
}

#[test]
fn pyarrow_reads_landing_staging_and_common_as_written() {
    let py = python();
    let (dir, lake) = common::temp_lake();
    let reports = common::simulated_reports();
    let mut records = common::raw(&reports);
    // A malformed value, an impossible position and a retried send (same trip and time).
    let ts = records[20].2;
    records.insert(20, ("t1".into(), "{\"oops\":".into(), ts));
    let mut far = reports[30].clone();
    far.lat = 999.0;
    records.insert(
        31,
        ("t1".into(), serde_json::to_string(&far).unwrap(), far.ts),
    );
    records.push(records[100].clone());
    common::land(&lake, &records).close().unwrap();

    let day = common::test_day();
    let report = promotion::promote(&lake, day).unwrap();
    assert_eq!(report.landing_rows, records.len());
    assert_eq!(report.dropped, 3);
    assert_eq!(report.staged_by_promotion, 0);
    assert_eq!(report.staged, reports.len());
    assert_eq!(report.trips, 6);
    assert_eq!(report.arrived, 6);
    assert_eq!(report.vehicles, 3);
    assert!(report.staging_files >= 2, "{report:?}");

    let out = Command::new(&py)
        .arg("-c")
        .arg(READER)
        .arg(dir.path().join("lake"))
        .output()
        .expect("running pyarrow");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();

    // Landing: every record as it came, each offset once, typed, in its two hours.
    assert_eq!(got["landing_rows"], records.len());
    assert_eq!(got["landing_unique_offsets"], records.len());
    assert_eq!(got["landing_types"]["offset"], "int64");
    assert_eq!(got["landing_types"]["partition"], "int32");
    assert_eq!(
        got["landing_types"]["kafka_timestamp"],
        "timestamp[ms, tz=UTC]"
    );
    assert_eq!(got["landing_types"]["value"], "string");
    assert_eq!(got["landing_hours"], serde_json::json!([10, 11]));

    // Staging as the topology wrote it, a file per landing file: the reports once each,
    // typed, a computed speed for all but each trip's first; the day's consolidated file holds
    // the same rows.
    assert_eq!(got["staging_files"], report.staging_files);
    assert_eq!(got["staging_rows"], reports.len());
    assert_eq!(got["staging_daily_rows"], reports.len());
    assert_eq!(got["staging_daily_equal"], true);
    assert_eq!(got["staging_unique_keys"], reports.len());
    assert_eq!(got["staging_null_speeds"], 6);
    assert_eq!(got["staging_types"]["ts"], "timestamp[ms, tz=UTC]");
    assert_eq!(got["staging_types"]["lat"], "double");
    assert_eq!(got["staging_types"]["kafka_offset"], "int64");
    assert_eq!(
        got["staging_states"],
        serde_json::json!(["arrived", "driving", "stopped"])
    );

    // Common as the topology wrote it, a file per arrived trip: the trips as the state
    // machine summarises the cleaned reports; the day's consolidated file holds the same.
    assert_eq!(got["trip_files"], 6);
    assert_eq!(got["trips_daily_equal"], true);
    let staged = clean(
        &lake
            .read_landing_day(vehicle_trips::topology::POSITIONS, day)
            .unwrap(),
        &mut CleanCounts::default(),
    );
    let expected = summarise_trips(&staged);
    let trips = got["trips"].as_object().unwrap();
    assert_eq!(trips.len(), expected.len());
    let mut per_vehicle: BTreeMap<&str, (i64, f64)> = BTreeMap::new();
    for t in &expected {
        let g = &trips[&t.trip_id];
        assert_eq!(g["status"], "arrived");
        assert_eq!(t.status, TripStatus::Arrived);
        assert_eq!(g["arrived"], true);
        assert_eq!(g["stops"], t.stops);
        assert_eq!(g["reports"], t.reports);
        assert!((g["distance_m"].as_f64().unwrap() - t.distance_m).abs() < 1e-6);
        let v = per_vehicle.entry(&t.vehicle_id).or_default();
        v.0 += 1;
        v.1 += t.distance_m;
    }
    assert!(expected.iter().any(|t| t.stops > 0));
    assert_eq!(got["trip_types"]["started_at"], "timestamp[ms, tz=UTC]");
    let vehicles = got["vehicles"].as_object().unwrap();
    assert_eq!(vehicles.len(), 3);
    // The daily per-vehicle summary equals the one the topology kept up to date.
    let streaming = got["vehicles_streaming"].as_object().unwrap();
    assert_eq!(streaming.len(), vehicles.len());
    for (id, v) in vehicles {
        let s = &streaming[id];
        assert_eq!(
            (&s["trips"], &s["arrived"], &s["date"]),
            (&v["trips"], &v["arrived"], &v["date"])
        );
        assert!(
            (s["distance_m"].as_f64().unwrap() - v["distance_m"].as_f64().unwrap()).abs() < 1e-6
        );
    }
    for (id, (trips, distance)) in per_vehicle {
        let g = &vehicles[id];
        assert_eq!(g["trips"], trips);
        assert_eq!(g["arrived"], trips);
        assert_eq!(g["date"], "2026-12-02");
        assert!((g["distance_m"].as_f64().unwrap() - distance).abs() < 1e-6);
    }
}
