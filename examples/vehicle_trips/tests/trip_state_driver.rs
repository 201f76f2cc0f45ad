//! The trip state machine in the topology, through the test driver (no broker): speeds,
//! stops, arrivals, ETA, late and duplicate reports, a whole simulated trip.

use std::sync::Arc;

use streamkit::prelude::*;
use vehicle_trips::model::{
    Reported, STOP_AFTER_MS, Transition, TransitionKind, TripState, TripStatus, VehicleEvent,
};
use vehicle_trips::roads::Graph;
use vehicle_trips::simulation::Fleet;
use vehicle_trips::topology::{self, TopologyConfig};

/// 1 m of longitude at Madrid's latitude, in degrees.
const DEG_PER_M: f64 = 1.0 / 84_800.0;

/// A report of trip t1 at `s` seconds, `x` metres east of Sol on a 1 km route.
fn at(s: i64, x: f64) -> VehicleEvent {
    VehicleEvent {
        vehicle_id: "v1".into(),
        vehicle_name: "Taxi".into(),
        trip_id: "t1".into(),
        origin: "sol".into(),
        destination: "cibeles".into(),
        ts: s * 1000,
        lat: 40.4169,
        lng: -3.7035 + x * DEG_PER_M,
        speed_kmh: 0.0,
        odometer_m: x,
        route_m: 1000.0,
        state: Reported::Driving,
    }
}

struct Harness {
    driver: TopologyTestDriver,
}

impl Harness {
    fn new() -> Self {
        let driver =
            TopologyTestDriver::new(topology::topology(&TopologyConfig::default()).unwrap())
                .unwrap();
        Harness { driver }
    }

    fn send(&self, events: &[VehicleEvent]) {
        let input = self.driver.input_topic(
            topology::POSITIONS,
            Serdes::string(),
            Serdes::json::<VehicleEvent>(),
        );
        for e in events {
            input.pipe_at(e.trip_id.clone(), e.clone(), e.ts).unwrap();
        }
    }

    fn transitions(&self) -> Vec<Transition> {
        self.driver
            .output_topic(
                topology::TRANSITIONS,
                Serdes::string(),
                Serdes::json::<Transition>(),
            )
            .read_values()
    }

    fn trip(&self, id: &str) -> TripState {
        self.driver
            .key_value_store::<String, TripState>(topology::TRIPS)
            .unwrap()
            .get(&id.to_string())
            .unwrap()
            .expect("the trip is in the table")
    }
}

fn kinds(t: &[Transition]) -> Vec<(TransitionKind, i64)> {
    t.iter().map(|t| (t.kind, t.ts / 1000)).collect()
}

#[test]
fn speeds_are_computed_from_positions_not_the_speedometer() {
    let h = Harness::new();
    // 10 m/s = 36 km/h for 5 s, then 5 m/s = 18 km/h.
    let mut events: Vec<VehicleEvent> = (0..=5).map(|s| at(s, 10.0 * s as f64)).collect();
    events.push(at(6, 55.0));
    h.send(&events);
    let t = h.trip("t1");
    assert_eq!(t.status, TripStatus::Driving);
    assert!((t.speed_kmh - 18.0).abs() < 0.2, "{}", t.speed_kmh);
    assert!((t.max_speed_kmh - 36.0).abs() < 0.3, "{}", t.max_speed_kmh);
    assert!((t.distance_m - 55.0).abs() < 0.5, "{}", t.distance_m);
    assert_eq!(t.reports, 7);
    assert_eq!(kinds(&h.transitions()), [(TransitionKind::Started, 0)]);
    // ETA: 945 m left at the mean moving speed (55 m in 6 s).
    let v = 55.0 / 6.0;
    let expected = 6_000 + (945.0 / v * 1000.0) as i64;
    assert!(
        (t.eta.unwrap() - expected).abs() < 300,
        "{:?} vs {expected}",
        t.eta
    );
}

#[test]
fn standing_still_long_enough_is_a_stop_and_moving_again_resumes() {
    let h = Harness::new();
    let mut e = vec![at(0, 0.0), at(1, 10.0), at(2, 20.0)];
    // 3 s still (20 m at 2..5): shorter than a stop.
    e.extend((3..=5).map(|s| at(s, 20.0)));
    e.push(at(6, 30.0));
    // Still from 7 s to 16 s at 40 m: a stop from the report at 7 s.
    e.extend((7..=16).map(|s| at(s, 40.0)));
    e.push(at(17, 50.0));
    h.send(&e);
    assert_eq!(STOP_AFTER_MS, 5_000);
    assert_eq!(
        kinds(&h.transitions()),
        [
            (TransitionKind::Started, 0),
            (TransitionKind::Stopped, 7),
            (TransitionKind::Resumed, 17),
        ]
    );
    let t = h.trip("t1");
    assert_eq!(t.status, TripStatus::Driving);
    assert_eq!(t.stops, 1);
    // Standing from 7 s until it left after the report at 16 s.
    assert_eq!(t.stopped_ms, 9_000);
    assert_eq!(t.still_since, None);
}

#[test]
fn a_trip_arrives_when_it_says_so_or_reaches_the_end_and_later_reports_are_ignored() {
    let h = Harness::new();
    let mut last = at(2, 995.0);
    last.state = Reported::Driving; // within 15 m of the end: arrived all the same
    h.send(&[at(0, 900.0), at(1, 950.0), last, at(3, 1000.0)]);
    let t = h.trip("t1");
    assert_eq!(t.status, TripStatus::Arrived);
    assert_eq!(t.arrived_at, Some(2_000));
    assert_eq!(t.eta, None);
    assert_eq!(t.progress(), 1.0);
    assert_eq!(t.ignored, 1);
    assert_eq!(
        kinds(&h.transitions()),
        [(TransitionKind::Started, 0), (TransitionKind::Arrived, 2)]
    );

    // The flag alone ends a trip too, even short of the end.
    let mut e = at(1, 500.0);
    e.trip_id = "t2".into();
    e.state = Reported::Arrived;
    let mut first = at(0, 480.0);
    first.trip_id = "t2".into();
    h.send(&[first, e]);
    assert_eq!(h.trip("t2").status, TripStatus::Arrived);
}

#[test]
fn late_and_repeated_reports_change_nothing() {
    let h = Harness::new();
    h.send(&[at(0, 0.0), at(1, 10.0), at(2, 20.0)]);
    let before = h.trip("t1");
    // A retried send (same time) and one overtaken by a later report.
    h.send(&[at(2, 20.0), at(1, 10.0)]);
    let after = h.trip("t1");
    assert_eq!(after.ignored, 2);
    assert_eq!(
        TripState {
            ignored: 0,
            ..after
        },
        before
    );
}

#[test]
fn impossible_reports_do_not_reach_the_state_machine() {
    let h = Harness::new();
    h.send(&[at(0, 0.0), at(1, 10.0)]);
    let before = h.trip("t1");
    // Off the globe, a NaN odometer: what staging drops, the table does not take either.
    let mut far = at(2, 20.0);
    far.lat = 999.0;
    let mut nan = at(3, 30.0);
    nan.odometer_m = f64::NAN;
    h.send(&[far, nan]);
    assert_eq!(h.trip("t1"), before);
    h.send(&[at(4, 40.0)]);
    assert_eq!(h.trip("t1").reports, before.reports + 1);
}

#[test]
fn a_simulated_trip_goes_through_the_table_from_start_to_arrival() {
    let mut fleet = Fleet::new(Arc::new(Graph::bundled()), 3, 1_700_000_000_000);
    let v = fleet.add_vehicle("Bus 27", "espana").unwrap();
    let trip = fleet.start_trip(&v, None, "atocha").unwrap();
    let mut events = Vec::new();
    loop {
        let e = fleet.tick();
        if e.is_empty() {
            break;
        }
        events.extend(e);
    }
    let standing: usize = events
        .windows(2)
        .filter(|w| w[0].state == Reported::Driving && w[1].state == Reported::Stopped)
        .count();
    assert!(standing > 0, "the lights held the bus somewhere");
    let h = Harness::new();
    h.send(&events);
    let t = h.trip(&trip);
    let last = events.last().unwrap();
    // Arrived at the first report within 15 m of the end (or saying so); the rest ignored.
    let arrival = events
        .iter()
        .position(|e| e.state == Reported::Arrived || e.route_m - e.odometer_m <= 15.0)
        .unwrap();
    assert_eq!(t.status, TripStatus::Arrived);
    assert_eq!(t.arrived_at, Some(events[arrival].ts));
    assert_eq!(t.started_at, events[0].ts);
    assert_eq!(t.reports as usize, arrival + 1);
    assert_eq!(t.ignored as usize, events.len() - arrival - 1);
    // Driven straight between places: the positions add up to the route (all but the last
    // few metres).
    assert!(
        (t.distance_m - last.route_m).abs() < 20.0,
        "{} vs {}",
        t.distance_m,
        last.route_m
    );
    // Every light of 6 s or more is a stop; computed speeds stay near the limits.
    let transitions = h.transitions();
    let stops = transitions
        .iter()
        .filter(|t| t.kind == TransitionKind::Stopped)
        .count();
    assert_eq!(stops, t.stops as usize);
    assert_eq!(stops, standing);
    assert!(t.max_speed_kmh <= 50.5, "{}", t.max_speed_kmh);
    assert_eq!(transitions.first().unwrap().kind, TransitionKind::Started);
    assert_eq!(transitions.last().unwrap().kind, TransitionKind::Arrived);
}
