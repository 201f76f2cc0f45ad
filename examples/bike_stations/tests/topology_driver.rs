//! The streaming topology through `TopologyTestDriver`, no broker: the latest-state table and
//! the city totals, tumbling and hopping windows with their final results, windows closed at
//! night by wall-clock idleness, and "empty soon" / "full soon" alerts from the trend.

mod common;

use std::time::Duration;

use bike_stations::model::{
    Alert, AlertKind, Availability, CityTotals, HOUR_MS, Station, StationTrack,
};
use bike_stations::topology::{
    self, ALERTS_TOPIC, CITY_HOURLY, CITY_HOURLY_TOPIC, CITY_TOTALS, STATION_10MIN,
    STATION_10MIN_TOPIC, STATION_HOURLY, STATION_HOURLY_TOPIC, STATIONS_TOPIC, StreamingConfig,
    TRACKS,
};
use common::{closed, station};
use streamkit::prelude::*;
use streamkit::window::{Windowed, WindowedSerde};

const MIN: i64 = 60_000;
/// 2026-12-02 08:00 UTC.
const T0: i64 = 20_789 * 24 * HOUR_MS + 8 * HOUR_MS;

fn driver() -> TopologyTestDriver {
    TopologyTestDriver::new(topology::streaming(&StreamingConfig::default()).unwrap()).unwrap()
}

fn pipe(d: &TopologyTestDriver, records: &[Station]) {
    let input = d.input_topic(STATIONS_TOPIC, Serdes::string(), Serdes::json::<Station>());
    for s in records {
        input.pipe_at(s.key(), s.clone(), s.last_update).unwrap();
    }
}

fn finals(d: &TopologyTestDriver, topic: &str, size: i64) -> Vec<(Windowed<String>, Availability)> {
    d.output_topic(
        topic,
        WindowedSerde::time(Serdes::string(), size),
        Serdes::json::<Availability>(),
    )
    .read_key_values()
}

#[test]
fn the_latest_state_table_holds_each_stations_last_record_and_the_city_totals_follow() {
    let d = driver();
    pipe(
        &d,
        &[
            station(1, 10, T0),
            station(2, 5, T0 + MIN),
            station(1, 8, T0 + 2 * MIN),
            station(3, 0, T0 + 3 * MIN),
            closed(2, T0 + 4 * MIN),
        ],
    );
    let tracks = d.key_value_store::<String, StationTrack>(TRACKS).unwrap();
    let latest = |n: i64| {
        tracks
            .get(&format!("bruxelles:{n}"))
            .unwrap()
            .and_then(|t| t.latest)
            .unwrap()
    };
    assert_eq!(latest(1).available_bikes, 8);
    assert_eq!(latest(1).last_update, T0 + 2 * MIN);
    assert_eq!(latest(2).status, "CLOSED");
    assert_eq!(latest(3).available_bikes, 0);
    let t1 = tracks.get(&"bruxelles:1".to_string()).unwrap().unwrap();
    assert_eq!((t1.records, t1.taken, t1.returned), (2, 2, 0));
    assert_eq!(tracks.all().unwrap().len(), 3);

    let totals = d
        .key_value_store::<String, CityTotals>(CITY_TOTALS)
        .unwrap();
    let city = totals.get(&"bruxelles".to_string()).unwrap().unwrap();
    let stands = |n: i64| common::station(n, 0, 0).bike_stands;
    assert_eq!(
        city,
        CityTotals {
            stations: 3,
            open: 2,
            empty: 1,
            full: 0,
            bikes: 8,
            stands: (stands(1) - 8) + stands(3),
            bike_stands: stands(1) + stands(2) + stands(3),
        }
    );
}

#[test]
fn tumbling_and_hopping_windows_aggregate_and_emit_once_when_they_close() {
    let d = driver();
    // Station 1: 10 → 7 → 9 in the first ten minutes, 4 in the next; station 2 once.
    pipe(
        &d,
        &[
            station(1, 10, T0 + MIN),
            station(1, 7, T0 + 4 * MIN),
            station(2, 3, T0 + 5 * MIN),
            station(1, 9, T0 + 8 * MIN),
            station(1, 4, T0 + 11 * MIN + 30_000),
        ],
    );
    let w10 = d
        .window_store::<String, Availability>(STATION_10MIN)
        .unwrap();
    let first = w10.fetch(&"bruxelles:1".to_string(), T0, T0).unwrap();
    assert_eq!(first.len(), 1);
    let a = &first[0].1;
    assert_eq!(
        (a.samples, a.bikes_min, a.bikes_max, a.taken, a.returned),
        (3, 7, 10, 3, 2)
    );
    assert_eq!((a.last_bikes, a.bikes_sum), (9, 26));
    // Nothing final yet: stream time (08:11:30) has not reached 08:10 + 2 min of grace.
    assert!(finals(&d, STATION_10MIN_TOPIC, 600_000).is_empty());

    // 08:12 closes [08:00, 08:10) for both stations, once.
    pipe(&d, &[station(3, 5, T0 + 12 * MIN)]);
    let out = finals(&d, STATION_10MIN_TOPIC, 600_000);
    let keys: Vec<(&str, i64)> = out
        .iter()
        .map(|(w, _)| (w.key.as_str(), w.window.start))
        .collect();
    assert_eq!(keys, [("bruxelles:1", T0), ("bruxelles:2", T0)]);
    assert_eq!(out[0].1, *a);
    // A late record for the closed window is dropped, the window is not emitted again.
    pipe(&d, &[station(1, 1, T0 + 9 * MIN)]);
    assert!(finals(&d, STATION_10MIN_TOPIC, 600_000).is_empty());

    // The hour per station holds everything of station 1 in 08:00–09:00 (the late record too:
    // the hourly window is still open).
    let hourly = d
        .window_store::<String, Availability>(STATION_HOURLY)
        .unwrap();
    let h = &hourly.fetch(&"bruxelles:1".to_string(), T0, T0).unwrap()[0].1;
    assert_eq!((h.samples, h.bikes_min, h.bikes_max), (5, 1, 10));
    assert_eq!((h.taken, h.returned), (3 + 5 + 3, 2), "10→7→9→4→1");

    // Per city, hopping: an hour every ten minutes; 08:05 lies in the six windows starting
    // 07:10 … 08:00.
    let city = d.window_store::<String, Availability>(CITY_HOURLY).unwrap();
    let windows = city
        .fetch(&"bruxelles".to_string(), T0 - HOUR_MS, T0 + HOUR_MS)
        .unwrap();
    let starts: Vec<i64> = windows.iter().map(|(s, _)| (s - T0) / MIN).collect();
    assert_eq!(starts, [-50, -40, -30, -20, -10, 0, 10]);
    assert_eq!(
        windows[5].1.samples, 7,
        "every record of 08:00–08:12 in [08:00, 09:00)"
    );
    assert_eq!(windows[6].1.samples, 2, "[08:10, 09:10)");

    // 09:10 closes the hour for stations and the city windows up to [08:00, 09:00).
    pipe(&d, &[station(3, 6, T0 + 70 * MIN)]);
    let hours = finals(&d, STATION_HOURLY_TOPIC, HOUR_MS);
    let h1 = hours
        .iter()
        .find(|(w, _)| w.key == "bruxelles:1" && w.window.start == T0)
        .unwrap();
    assert_eq!(h1.1, *h);
    let city_finals = finals(&d, CITY_HOURLY_TOPIC, HOUR_MS);
    let last = city_finals.last().unwrap();
    assert_eq!((last.0.window.start, last.1.samples), (T0, 7));
}

#[test]
fn windows_close_at_night_when_the_feed_goes_quiet_on_the_wall_clock() {
    let d = driver();
    // 02:20 and 02:30: the last records of the night; nothing follows.
    let night = T0 - 6 * HOUR_MS + 20 * MIN;
    pipe(&d, &[station(5, 3, night), station(5, 2, night + 10 * MIN)]);
    assert!(finals(&d, STATION_HOURLY_TOPIC, HOUR_MS).is_empty());
    // A minute of quiet: not idle yet.
    d.advance_wall_clock_time(Duration::from_secs(60)).unwrap();
    assert!(finals(&d, STATION_HOURLY_TOPIC, HOUR_MS).is_empty());
    // Stream time follows the wall clock once idle: 02:30 + 40 min passes 03:00 + grace.
    d.advance_wall_clock_time(Duration::from_secs(39 * 60))
        .unwrap();
    let hours = finals(&d, STATION_HOURLY_TOPIC, HOUR_MS);
    assert_eq!(hours.len(), 1, "{hours:?}");
    assert_eq!(hours[0].0.window.start, T0 - 6 * HOUR_MS);
    assert_eq!((hours[0].1.samples, hours[0].1.last_bikes), (2, 2));
    let tens = finals(&d, STATION_10MIN_TOPIC, 600_000);
    assert_eq!(tens.len(), 2, "02:20 and 02:30 closed too");
    // Emitted once: more quiet emits nothing new.
    d.advance_wall_clock_time(Duration::from_secs(600)).unwrap();
    assert!(finals(&d, STATION_HOURLY_TOPIC, HOUR_MS).is_empty());
}

#[test]
fn a_station_emptying_fast_raises_empty_soon_then_empty_and_refilling_clears_it() {
    let d = driver();
    // 12 bikes, then one taken a minute: 12 per 15 min is far from empty in 20 minutes…
    let mut records = vec![station(7, 20, T0)];
    for (i, bikes) in [18, 16, 14, 12, 10, 8, 6].iter().enumerate() {
        records.push(station(7, *bikes, T0 + (i as i64 + 1) * 2 * MIN));
    }
    pipe(&d, &records);
    let alerts = d.output_topic(
        ALERTS_TOPIC,
        Serdes::string(),
        Serdes::option(Serdes::json::<Alert>()),
    );
    let raised = alerts.read_key_values();
    // 20 → 18 → 16 … one bike a minute: "empty soon" once fewer than 20 minutes are left.
    assert_eq!(raised.len(), 1, "{raised:?}");
    let (key, alert) = &raised[0];
    assert_eq!(key, "bruxelles:7");
    let alert = alert.as_ref().unwrap();
    assert_eq!(alert.kind, AlertKind::EmptySoon);
    assert!(alert.bikes_per_minute < -0.9, "{alert:?}");
    // The same alert goes on (no new record); empty is a new one.
    pipe(
        &d,
        &[station(7, 3, T0 + 17 * MIN), station(7, 0, T0 + 19 * MIN)],
    );
    let next = alerts.read_values();
    assert_eq!(next.len(), 1, "{next:?}");
    assert_eq!(next[0].as_ref().unwrap().kind, AlertKind::Empty);
    // Riders bring five bikes back over twenty minutes: the alert is cleared (a tombstone).
    pipe(&d, &[station(7, 5, T0 + 40 * MIN)]);
    assert_eq!(alerts.read_values(), vec![None]);

    // Filling: returns at one a minute into a nearly full station → "full soon".
    let stands = station(8, 0, 0).bike_stands;
    let mut filling = Vec::new();
    for i in 0..8 {
        filling.push(station(8, stands - 12 + i, T0 + 41 * MIN + i * MIN));
    }
    pipe(&d, &filling);
    let full = alerts.read_key_values();
    assert_eq!(full.len(), 1, "{full:?}");
    assert_eq!(full[0].0, "bruxelles:8");
    assert_eq!(full[0].1.as_ref().unwrap().kind, AlertKind::FullSoon);
    let track = d
        .key_value_store::<String, StationTrack>(TRACKS)
        .unwrap()
        .get(&"bruxelles:8".to_string())
        .unwrap()
        .unwrap();
    assert_eq!(track.alert.unwrap().kind, AlertKind::FullSoon);
}

#[test]
fn a_simulated_day_gives_one_final_hour_per_station_and_hour_with_consistent_totals() {
    let day = common::test_day();
    let records = common::day_records(day);
    let hours = common::streaming_hours(&records, day);
    // Every station reports during the day; a station-hour only exists when it reported.
    let stations: std::collections::BTreeSet<&str> =
        hours.keys().map(|(k, _)| k.as_str()).collect();
    assert_eq!(stations.len(), 50);
    assert!(hours.len() > 50 * 12, "{} station-hours", hours.len());
    // Samples add up to the day's records (each lands in exactly one hour).
    let (from, to) = (day * 24 * HOUR_MS, (day + 1) * 24 * HOUR_MS);
    let in_day = records
        .iter()
        .filter(|r| (from..to).contains(&r.last_update))
        .count() as i64;
    assert_eq!(hours.values().map(|a| a.samples).sum::<i64>(), in_day);
    // Morning commute: more bikes taken than returned at residential stations 06–09 UTC.
    let specs = bike_stations::city::stations();
    let residential = |k: &str| {
        let n: usize = k.rsplit(':').next().unwrap().parse().unwrap();
        specs[n - 1].kind == bike_stations::city::Kind::Residential
    };
    let (taken, returned) = hours
        .iter()
        .filter(|((k, h), _)| {
            residential(k) && (from + 6 * HOUR_MS..from + 9 * HOUR_MS).contains(h)
        })
        .fold((0, 0), |(t, r), (_, a)| (t + a.taken, r + a.returned));
    assert!(taken > 2 * returned, "taken {taken}, returned {returned}");
}
