//! The simulated fleet: vehicles the user creates, each driving its trip's route second by
//! second (speed up to a share of each street's limit, stops at some crossings) and reporting
//! a [`VehicleEvent`] every simulated second.

use std::sync::Arc;

use serde::Serialize;

use crate::model::{Reported, VehicleEvent};
use crate::rng::Rng;
use crate::roads::{Graph, Route};

/// Speed gained per simulated second while below the target, km/h.
const ACCELERATION_KMH_PER_S: f64 = 12.0;

/// A vehicle of the fleet.
#[derive(Debug, Clone, Serialize)]
pub struct Vehicle {
    /// `v1`, `v2`, …
    pub id: String,
    /// What the user called it.
    pub name: String,
    /// The place it is at, or last left.
    pub place: usize,
    /// Latitude now.
    pub lat: f64,
    /// Longitude now.
    pub lng: f64,
    /// Its trip, while driving one.
    pub trip: Option<ActiveTrip>,
    /// Trips it finished.
    pub trips_done: u32,
}

/// A trip being driven.
#[derive(Debug, Clone, Serialize)]
pub struct ActiveTrip {
    /// `t1`, `t2`, …
    pub id: String,
    /// Origin place index.
    pub origin: usize,
    /// Destination place index.
    pub destination: usize,
    /// The route.
    pub route: Route,
    /// Metres driven.
    pub odometer_m: f64,
    /// Speedometer, km/h.
    pub speed_kmh: f64,
    /// Seconds left standing at a crossing.
    pub standing_s: u32,
    /// The next place on the route where it may stop (index into the route's places).
    pub next_crossing: usize,
    /// Share of the limit this driver keeps to, 0.7–1.0.
    pub pace: f64,
}

/// Keeps the number of the next trip somewhere durable before a trip with the number before
/// it starts, so that a restarted program never gives a trip an id a report already carries.
pub type TripCounterStore = Box<dyn Fn(u64) -> Result<(), String> + Send>;

/// The fleet and its clock.
pub struct Fleet {
    graph: Arc<Graph>,
    vehicles: Vec<Vehicle>,
    rng: Rng,
    next_trip: u64,
    clock_ms: i64,
    keep_counter: Option<TripCounterStore>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("vehicles", &self.vehicles.len())
            .field("next_trip", &self.next_trip)
            .field("clock_ms", &self.clock_ms)
            .finish_non_exhaustive()
    }
}

impl Fleet {
    /// An empty fleet on `graph` whose clock starts at `clock_ms`.
    pub fn new(graph: Arc<Graph>, seed: u64, clock_ms: i64) -> Self {
        Fleet {
            graph,
            vehicles: Vec::new(),
            rng: Rng::new(seed),
            next_trip: 1,
            clock_ms,
            keep_counter: None,
        }
    }

    /// Numbers trips from `next_trip` on (a restart goes on after the trips of earlier runs)
    /// and hands every new next number to `keep` before the trip starts.
    pub fn with_trip_counter(mut self, next_trip: u64, keep: TripCounterStore) -> Self {
        self.next_trip = next_trip.max(1);
        self.keep_counter = Some(keep);
        self
    }

    /// The number the next trip gets.
    pub fn next_trip(&self) -> u64 {
        self.next_trip
    }

    /// The road graph.
    pub fn graph(&self) -> &Arc<Graph> {
        &self.graph
    }

    /// The simulated time, epoch ms.
    pub fn clock_ms(&self) -> i64 {
        self.clock_ms
    }

    /// Every vehicle.
    pub fn vehicles(&self) -> &[Vehicle] {
        &self.vehicles
    }

    /// Adds a vehicle named `name` parked at place `place` (a place id); returns its id.
    pub fn add_vehicle(&mut self, name: &str, place: &str) -> Result<String, String> {
        let name = name.trim();
        if name.is_empty() || name.len() > 60 {
            return Err("a vehicle needs a name of 1 to 60 characters".into());
        }
        let p = self
            .graph
            .place_index(place)
            .ok_or_else(|| format!("no place {place:?}"))?;
        let id = format!("v{}", self.vehicles.len() + 1);
        let at = &self.graph.places[p];
        self.vehicles.push(Vehicle {
            id: id.clone(),
            name: name.to_string(),
            place: p,
            lat: at.lat,
            lng: at.lng,
            trip: None,
            trips_done: 0,
        });
        Ok(id)
    }

    /// Sends vehicle `vehicle` from `origin` (a place id; its current place when `None`) to
    /// `destination` on the fastest route; returns the trip's id. A vehicle drives one trip at
    /// a time.
    pub fn start_trip(
        &mut self,
        vehicle: &str,
        origin: Option<&str>,
        destination: &str,
    ) -> Result<String, String> {
        let vi = self
            .vehicles
            .iter()
            .position(|v| v.id == vehicle)
            .ok_or_else(|| format!("no vehicle {vehicle:?}"))?;
        if let Some(t) = &self.vehicles[vi].trip {
            return Err(format!("{vehicle} is driving trip {} already", t.id));
        }
        let origin = match origin {
            Some(o) => self
                .graph
                .place_index(o)
                .ok_or_else(|| format!("no place {o:?}"))?,
            None => self.vehicles[vi].place,
        };
        let destination = self
            .graph
            .place_index(destination)
            .ok_or_else(|| format!("no place {destination:?}"))?;
        let route = self
            .graph
            .route(origin, destination)
            .ok_or("origin and destination are the same place")?;
        if let Some(keep) = &self.keep_counter {
            keep(self.next_trip + 1)
                .map_err(|e| format!("keeping the trip counter: {e}; the trip did not start"))?;
        }
        let id = format!("t{}", self.next_trip);
        self.next_trip += 1;
        let pace = 0.7 + 0.3 * self.rng.unit();
        let v = &mut self.vehicles[vi];
        let at = &self.graph.places[origin];
        v.place = origin;
        v.lat = at.lat;
        v.lng = at.lng;
        v.trip = Some(ActiveTrip {
            id: id.clone(),
            origin,
            destination,
            route,
            odometer_m: 0.0,
            speed_kmh: 0.0,
            standing_s: 0,
            next_crossing: 1,
            pace,
        });
        Ok(id)
    }

    /// One simulated second: every vehicle on a trip moves and reports.
    pub fn tick(&mut self) -> Vec<VehicleEvent> {
        self.clock_ms += 1000;
        let graph = self.graph.clone();
        let mut out = Vec::new();
        for v in &mut self.vehicles {
            let Some(trip) = v.trip.as_mut() else {
                continue;
            };
            let state = if trip.standing_s > 0 {
                trip.standing_s -= 1;
                trip.speed_kmh = 0.0;
                Reported::Stopped
            } else {
                let (_, _, road) = graph.position(&trip.route, trip.odometer_m);
                let target = graph.roads[road].limit_kmh * trip.pace;
                trip.speed_kmh = (trip.speed_kmh + ACCELERATION_KMH_PER_S).min(target);
                let mut next = trip.odometer_m + trip.speed_kmh / 3.6;
                // A crossing on the way: a light may hold the vehicle there.
                if trip.next_crossing < trip.route.places.len() - 1 {
                    let at = trip.route.cumulative_m[trip.next_crossing];
                    if next >= at {
                        trip.next_crossing += 1;
                        if self.rng.unit() < 0.5 {
                            next = at;
                            trip.standing_s = 6 + self.rng.below(10) as u32;
                            trip.speed_kmh = 0.0;
                        }
                    }
                }
                trip.odometer_m = next.min(trip.route.length_m);
                if trip.odometer_m >= trip.route.length_m {
                    trip.speed_kmh = 0.0;
                    Reported::Arrived
                } else {
                    Reported::Driving
                }
            };
            let (lat, lng, _) = graph.position(&trip.route, trip.odometer_m);
            v.lat = lat;
            v.lng = lng;
            out.push(VehicleEvent {
                vehicle_id: v.id.clone(),
                vehicle_name: v.name.clone(),
                trip_id: trip.id.clone(),
                origin: graph.places[trip.origin].id.to_string(),
                destination: graph.places[trip.destination].id.to_string(),
                ts: self.clock_ms,
                lat,
                lng,
                speed_kmh: (trip.speed_kmh * 10.0).round() / 10.0,
                odometer_m: (trip.odometer_m * 10.0).round() / 10.0,
                route_m: (trip.route.length_m * 10.0).round() / 10.0,
                state,
            });
            if state == Reported::Arrived {
                v.place = trip.destination;
                v.trips_done += 1;
                v.trip = None;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trip_reports_every_second_until_it_arrives() {
        let mut f = Fleet::new(Arc::new(Graph::bundled()), 1, 0);
        let v = f.add_vehicle("Taxi 1", "sol").unwrap();
        assert!(f.add_vehicle("", "sol").is_err());
        assert!(f.start_trip(&v, None, "sol").is_err());
        let t = f.start_trip(&v, None, "atocha").unwrap();
        assert!(
            f.start_trip(&v, None, "retiro").is_err(),
            "one trip at a time"
        );
        let mut events = Vec::new();
        for _ in 0..3600 {
            let e = f.tick();
            if e.is_empty() {
                break;
            }
            events.extend(e);
        }
        let last = events.last().unwrap();
        assert_eq!(last.state, Reported::Arrived);
        assert_eq!(last.trip_id, t);
        assert!((last.odometer_m - last.route_m).abs() < 0.1);
        assert!(events.windows(2).all(|w| w[1].ts - w[0].ts == 1000));
        assert!(
            events
                .windows(2)
                .all(|w| w[1].odometer_m >= w[0].odometer_m)
        );
        assert_eq!(
            f.vehicles()[0].place,
            f.graph().place_index("atocha").unwrap()
        );
        assert!(events.iter().all(|e| e.speed_kmh <= 50.0));
    }

    #[test]
    fn trip_numbers_go_on_from_the_kept_counter_and_a_counter_not_kept_starts_no_trip() {
        let kept = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let k = kept.clone();
        let mut f = Fleet::new(Arc::new(Graph::bundled()), 1, 0).with_trip_counter(
            41,
            Box::new(move |n| {
                k.lock().unwrap().push(n);
                Ok(())
            }),
        );
        let v = f.add_vehicle("van", "sol").unwrap();
        assert_eq!(f.start_trip(&v, None, "atocha").unwrap(), "t41");
        assert_eq!(*kept.lock().unwrap(), vec![42]);
        assert_eq!(f.next_trip(), 42);

        let mut f = Fleet::new(Arc::new(Graph::bundled()), 1, 0)
            .with_trip_counter(7, Box::new(|_| Err("the lake is gone".into())));
        let v = f.add_vehicle("van", "sol").unwrap();
        let err = f.start_trip(&v, None, "atocha").unwrap_err();
        assert!(err.contains("the lake is gone"), "{err}");
        assert_eq!(f.next_trip(), 7);
        assert!(f.vehicles()[0].trip.is_none());
    }
}
