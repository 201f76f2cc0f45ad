//! The whole program on the embedded broker: vehicles and trips created over the JSON API
//! drive, the trip-state table (and the query server) follows them to their arrival, every
//! report lands in the lake, and promoting the day puts the trip in staging and common.

mod common;

use std::time::Duration;

use vehicle_trips::lake::from_parquet;
use vehicle_trips::model::{DAY_MS, TripState, TripStatus, format_date};
use vehicle_trips::topology::{POSITIONS, TRIPS};
use vehicle_trips::{Args, start};

fn args(lake: &std::path::Path) -> Args {
    Args {
        listen: "127.0.0.1:0".parse().unwrap(),
        query_listen: "127.0.0.1:0".into(),
        tick_ms: 20,
        demo_vehicles: 0,
        land_every_secs: 1,
        lake: Some(lake.to_str().unwrap().to_string()),
        ..Args::defaults()
    }
}

fn trip(r: &vehicle_trips::Running, id: &str) -> Option<TripState> {
    r.app
        .store::<String, TripState>(TRIPS)
        .ok()?
        .get(&id.to_string())
        .ok()?
}

#[test]
fn a_trip_created_on_the_api_drives_arrives_lands_and_is_promoted() {
    let dir = tempfile::tempdir().unwrap();
    let lake_dir = dir.path().join("lake");
    let running = start(&args(&lake_dir)).expect("the program starts");
    let addr = running.addr;

    let (status, body) = common::request(
        addr,
        "POST",
        "/api/vehicles",
        r#"{"name":"Taxi 7","place":"sol"}"#,
    );
    assert_eq!(status, 201, "{body}");
    assert!(body.contains("\"v1\""), "{body}");
    let (status, body) = common::request(
        addr,
        "POST",
        "/api/vehicles",
        r#"{"name":"Nowhere","place":"atlantis"}"#,
    );
    assert_eq!(status, 400, "{body}");

    let (status, body) = common::request(
        addr,
        "POST",
        "/api/trips",
        r#"{"vehicle_id":"v1","destination":"mayor"}"#,
    );
    assert_eq!(status, 201, "{body}");
    let route: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(route["trip_id"], "t1");
    assert_eq!(route["route"], serde_json::json!(["sol", "mayor"]));
    assert_eq!(route["roads"], serde_json::json!(["Calle Mayor"]));
    let (status, body) = common::request(
        addr,
        "POST",
        "/api/trips",
        r#"{"vehicle_id":"v1","destination":"atocha"}"#,
    );
    assert_eq!(status, 400, "one trip at a time: {body}");

    running
        .wait_until(Duration::from_secs(60), |r| {
            trip(r, "t1").is_some_and(|t| t.status == TripStatus::Arrived)
        })
        .unwrap();
    let t = trip(&running, "t1").unwrap();
    assert_eq!(
        (t.origin.as_str(), t.destination.as_str()),
        ("sol", "mayor")
    );
    assert!(
        t.distance_m > 300.0 && t.distance_m < 400.0,
        "{}",
        t.distance_m
    );
    assert!(
        t.max_speed_kmh > 15.0 && t.max_speed_kmh <= 30.5,
        "{}",
        t.max_speed_kmh
    );

    // The table through streamkit's query server and the page's API.
    let (status, body) = common::request(running.query_addr, "GET", "/stores/trip-state/t1", "");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"status\":\"arrived\""), "{body}");
    let (status, body) = common::request(addr, "GET", "/api/state", "");
    assert_eq!(status, 200);
    let state: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(state["trips"][0]["trip_id"], "t1");
    assert_eq!(state["trips"][0]["progress"], 1.0);
    assert_eq!(state["vehicles"][0]["place"], "mayor");

    // Every report sent lands, once.
    let sent = running
        .reports_sent
        .load(std::sync::atomic::Ordering::Relaxed) as usize;
    assert!(sent > 20, "{sent}");
    let mut landed = 0;
    running
        .wait_until(Duration::from_secs(30), |r| {
            landed = r
                .lake
                .landing_files(POSITIONS)
                .unwrap()
                .iter()
                .map(|(path, _)| {
                    from_parquet(r.lake.get(path).unwrap())
                        .unwrap()
                        .iter()
                        .map(|b| b.num_rows())
                        .sum::<usize>()
                })
                .sum();
            landed >= sent
        })
        .unwrap_or_else(|e| panic!("{e}: {landed} of {sent} landed"));
    assert_eq!(landed, sent);

    // The topology staged each landing file (same name) and, at the arrival, wrote the trip's
    // summary and its vehicle's day to common.
    let day = t.started_at.div_euclid(DAY_MS);
    let date = format_date(day);
    let names = |dir: &str| -> Vec<String> {
        running
            .lake
            .list(dir)
            .unwrap()
            .into_iter()
            .map(|f| f[dir.len()..].to_string())
            .collect()
    };
    running
        .wait_until(Duration::from_secs(30), |_| {
            names("staging/vehicle_positions") == names("landing/vehicle-positions")
        })
        .unwrap();
    assert_eq!(
        running.lake.list("common/trip_summaries").unwrap(),
        [format!("common/trip_summaries/date={date}/trip-t1.parquet")]
    );
    assert_eq!(
        running.lake.list("common/vehicle_summaries").unwrap().len(),
        1
    );

    // The promotion by hand (the page's button) consolidates the day.
    let (status, body) = common::request(
        addr,
        "POST",
        "/api/promote",
        &format!(r#"{{"day":"{}"}}"#, format_date(day)),
    );
    assert_eq!(status, 200, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["trips"], 1, "{body}");
    assert_eq!(report["arrived"], 1, "{body}");
    assert_eq!(report["staged"], sent, "{body}");
    assert_eq!(report["staged_by_promotion"], 0, "{body}");
    for table in [
        "staging/vehicle_positions_daily",
        "common/trip_summaries_daily",
        "common/vehicle_daily",
    ] {
        assert_eq!(
            running.lake.list(&format!("{table}/date={date}")).unwrap(),
            [format!("{table}/date={date}/part-0.parquet")]
        );
    }
    // In the page's log (after the scheduler's catch-up of yesterday, if it was due).
    assert!(running.promotions.lock().unwrap().iter().any(|r| {
        r.as_ref()
            .is_ok_and(|r| r.day == format_date(day) && r.trips == 1)
    }));
    running.shutdown().unwrap();

    // The lake now holds offsets this run's broker had; a new embedded broker starts empty,
    // so reusing the lake with it is refused rather than hiding its records.
    let err = start(&args(&lake_dir)).unwrap_err();
    assert!(
        format!("{err:#}").contains("filled from another cluster"),
        "{err:#}"
    );
}
