//! The bike-sharing simulation behind the local API: riders leave stations at rates that follow
//! the hour, the day of the week and the station's kind (homes empty towards offices, railway
//! stations and campuses in the morning, and fill again in the evening), ride at city speed to
//! a destination drawn by kind and distance, and find another station when theirs is full or
//! closed. A van moves bikes from the fullest station to the emptiest during the day, and now
//! and then a station closes for maintenance for one to three hours.
//!
//! The simulation advances in steps of [`STEP_MS`] of event time and is deterministic for a
//! seed and a start: the history written at start-up and the API's answers continue one
//! another.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::city::{self, Kind, StationSpec};
use crate::model::{DAY_MS, HOUR_MS, Station};
use crate::rng::Rng;

/// One step of the simulation: the polling interval of the original.
pub const STEP_MS: i64 = 10_000;
/// Local time of the simulated city is UTC plus this by default (Brussels in winter).
pub const UTC_OFFSET_MS: i64 = HOUR_MS;
/// Riding speed, km/h, and the minutes a trip takes on top (unlocking, finding a stand).
const SPEED_KMH: f64 = 13.0;
const OVERHEAD_MIN: f64 = 2.0;
/// Departures per station and hour at a weight of 1.
const RATE_SCALE: f64 = 0.7;

#[derive(Debug, Clone)]
struct Dock {
    spec: StationSpec,
    bikes: i64,
    closed_until: Option<i64>,
    last_update: i64,
}

impl Dock {
    fn open(&self) -> bool {
        self.closed_until.is_none()
    }

    fn free(&self) -> i64 {
        self.spec.bike_stands - self.bikes
    }
}

/// The simulated contract at some instant.
#[derive(Debug, Clone)]
pub struct Simulation {
    docks: Vec<Dock>,
    /// Bikes on the road: (arrival time, trip number, destination index).
    riding: BinaryHeap<Reverse<(i64, u64, usize)>>,
    trips: u64,
    now: i64,
    /// Local time is UTC plus this ([`UTC_OFFSET_MS`] unless set).
    utc_offset_ms: i64,
    rng: Rng,
}

fn bump(h: f64, centre: f64, width: f64) -> f64 {
    (-((h - centre) / width).powi(2)).exp()
}

/// How strongly riders leave (`depart`) or head for (`attract`) a station of `kind` at local
/// hour `h` (fractional) on a weekday or at the weekend.
fn weights(kind: Kind, h: f64, weekend: bool) -> (f64, f64) {
    let commute = if weekend { 0.15 } else { 1.0 };
    let morning = commute * bump(h, 8.25, 1.0);
    let evening = commute * bump(h, 17.75, 1.3);
    let leisure = if weekend { 1.6 } else { 1.0 } * bump(h, 15.0, 4.0);
    // Nobody rides much between 1 and 5.
    let awake = 0.03 + 0.97 * (bump(h, 14.0, 6.5) + bump(h, 38.0, 6.5)).min(1.0);
    let (depart, attract) = match kind {
        Kind::Residential => (
            1.0 + 10.0 * morning + 2.0 * evening + 2.0 * leisure,
            1.0 + morning + 10.0 * evening + 2.0 * leisure,
        ),
        Kind::Business => (
            1.0 + morning + 10.0 * evening + 2.0 * leisure,
            1.0 + 10.0 * morning + evening + leisure,
        ),
        Kind::Transit => (
            2.0 + 8.0 * morning + 6.0 * evening + leisure,
            2.0 + 4.0 * morning + 8.0 * evening + leisure,
        ),
        Kind::Centre => (
            1.0 + morning + 3.0 * evening + 6.0 * leisure,
            1.0 + 2.0 * morning + 3.0 * evening + 6.0 * leisure,
        ),
        Kind::University => (
            0.5 + 2.0 * morning + 6.0 * evening + 3.0 * leisure,
            0.5 + 8.0 * morning + evening + 2.0 * leisure,
        ),
    };
    (depart * awake, attract * awake)
}

/// Local hour of the day (fractional) and whether it is a Saturday or Sunday.
fn local_hour(t: i64, utc_offset_ms: i64) -> (f64, bool) {
    let local = t + utc_offset_ms;
    let day = local.div_euclid(DAY_MS);
    // 1970-01-01 was a Thursday: day 0 → 3 (Monday = 0).
    let weekday = (day + 3).rem_euclid(7);
    (
        local.rem_euclid(DAY_MS) as f64 / HOUR_MS as f64,
        weekday >= 5,
    )
}

impl Simulation {
    /// The simulated contract at `start` (epoch ms), each station a little over half full.
    pub fn new(seed: u64, start: i64) -> Simulation {
        let mut rng = Rng::new(seed);
        let start = start - start.rem_euclid(STEP_MS);
        let docks = city::stations()
            .into_iter()
            .map(|spec| {
                let fill = 0.35 + 0.4 * rng.unit();
                Dock {
                    bikes: (spec.bike_stands as f64 * fill).round() as i64,
                    spec,
                    closed_until: None,
                    last_update: start - 60_000 - rng.below(30 * 60_000) as i64,
                }
            })
            .collect();
        Simulation {
            docks,
            riding: BinaryHeap::new(),
            trips: 0,
            now: start,
            utc_offset_ms: UTC_OFFSET_MS,
            rng,
        }
    }

    /// The same city with its local time at UTC plus `hours` (default 1, Brussels in
    /// winter): another offset runs the city's day at another hour of the clock, e.g. the
    /// afternoon's traffic during the night here.
    pub fn with_utc_offset_hours(mut self, hours: i64) -> Simulation {
        self.utc_offset_ms = hours * HOUR_MS;
        self
    }

    /// The simulated instant.
    pub fn now(&self) -> i64 {
        self.now
    }

    /// Trips started so far.
    pub fn trips(&self) -> u64 {
        self.trips
    }

    /// Bikes on the road now.
    pub fn riding(&self) -> usize {
        self.riding.len()
    }

    /// The stations as the API lists them now.
    pub fn stations(&self) -> Vec<Station> {
        self.docks
            .iter()
            .map(|d| d.spec.to_station(d.bikes, d.open(), d.last_update))
            .collect()
    }

    /// Runs until `t` (whole steps); `each_step` sees the stations after every step.
    pub fn advance_to(&mut self, t: i64, mut each_step: impl FnMut(&Simulation)) {
        while self.now + STEP_MS <= t {
            self.step();
            each_step(self);
        }
    }

    fn step(&mut self) {
        let from = self.now;
        let to = from + STEP_MS;
        let (hour, weekend) = local_hour(from, self.utc_offset_ms);
        // Arrivals due in this step.
        while let Some(&Reverse((at, trip, dest))) = self.riding.peek() {
            if at >= to {
                break;
            }
            self.riding.pop();
            self.arrive(at.max(from), trip, dest);
        }
        // Reopenings.
        for d in &mut self.docks {
            if let Some(until) = d.closed_until
                && until < to
            {
                d.closed_until = None;
                d.last_update = until.max(from);
            }
        }
        let attract: Vec<f64> = self
            .docks
            .iter()
            .map(|d| weights(d.spec.kind, hour, weekend).1)
            .collect();
        for i in 0..self.docks.len() {
            let (depart, _) = weights(self.docks[i].spec.kind, hour, weekend);
            let lambda = RATE_SCALE * depart * STEP_MS as f64 / HOUR_MS as f64;
            for _ in 0..self.rng.poisson(lambda) {
                let at = from + self.rng.below(STEP_MS as u64) as i64;
                self.depart(i, at, &attract);
            }
        }
        // About one maintenance closure a day somewhere in the city, in the daytime.
        if (7.0..20.0).contains(&hour) && self.rng.unit() < STEP_MS as f64 / (13.0 * HOUR_MS as f64)
        {
            let i = self.rng.below(self.docks.len() as u64) as usize;
            if self.docks[i].open() {
                let at = from + self.rng.below(STEP_MS as u64) as i64;
                let minutes = 60 + self.rng.below(120) as i64;
                self.docks[i].closed_until = Some(at + minutes * 60_000);
                self.docks[i].last_update = at;
            }
        }
        // The van: every 20 minutes from 6 to 22, up to 10 bikes from fullest to emptiest.
        if (6.0..22.0).contains(&hour) && from.rem_euclid(20 * 60_000) == 0 {
            self.rebalance(from);
        }
        self.now = to;
    }

    fn depart(&mut self, i: usize, at: i64, attract: &[f64]) {
        let d = &self.docks[i];
        if !d.open() || d.bikes == 0 {
            return;
        }
        let origin = d.spec.position;
        let weights: Vec<f64> = self
            .docks
            .iter()
            .enumerate()
            .map(|(j, o)| {
                if j == i {
                    0.0
                } else {
                    attract[j] * (-city::distance_km(origin, o.spec.position) / 2.0).exp()
                }
            })
            .collect();
        let total: f64 = weights.iter().sum();
        let mut pick = self.rng.unit() * total;
        let mut dest = 0;
        for (j, w) in weights.iter().enumerate() {
            dest = j;
            if pick < *w {
                break;
            }
            pick -= w;
        }
        let d = &mut self.docks[i];
        d.bikes -= 1;
        d.last_update = d.last_update.max(at);
        self.trips += 1;
        let arrival = at + self.ride_ms(i, dest);
        self.riding.push(Reverse((arrival, self.trips, dest)));
    }

    fn ride_ms(&mut self, from: usize, to: usize) -> i64 {
        let km = city::distance_km(self.docks[from].spec.position, self.docks[to].spec.position);
        let minutes = OVERHEAD_MIN + km / SPEED_KMH * 60.0 * (0.8 + 0.4 * self.rng.unit());
        (minutes * 60_000.0) as i64
    }

    fn arrive(&mut self, at: i64, trip: u64, dest: usize) {
        let d = &mut self.docks[dest];
        if d.open() && d.free() > 0 {
            d.bikes += 1;
            d.last_update = d.last_update.max(at);
            return;
        }
        // Full or closed: ride on to the nearest station with a free stand.
        let here = d.spec.position;
        let next = self
            .docks
            .iter()
            .enumerate()
            .filter(|(j, o)| *j != dest && o.open() && o.free() > 0)
            .min_by(|a, b| {
                let da = city::distance_km(here, a.1.spec.position);
                let db = city::distance_km(here, b.1.spec.position);
                da.total_cmp(&db)
            })
            .map(|(j, _)| j);
        if let Some(next) = next {
            let arrival = at + self.ride_ms(dest, next);
            self.riding.push(Reverse((arrival, trip, next)));
        }
    }

    fn rebalance(&mut self, at: i64) {
        let ratio = |d: &Dock| d.bikes as f64 / d.spec.bike_stands as f64;
        let open: Vec<usize> = (0..self.docks.len())
            .filter(|&i| self.docks[i].open())
            .collect();
        let full = open
            .iter()
            .copied()
            .max_by(|&a, &b| ratio(&self.docks[a]).total_cmp(&ratio(&self.docks[b])));
        let empty = open
            .iter()
            .copied()
            .min_by(|&a, &b| ratio(&self.docks[a]).total_cmp(&ratio(&self.docks[b])));
        let (Some(full), Some(empty)) = (full, empty) else {
            return;
        };
        if ratio(&self.docks[full]) < 0.85 || ratio(&self.docks[empty]) > 0.15 {
            return;
        }
        let n = 10
            .min(self.docks[full].bikes - self.docks[full].spec.bike_stands / 2)
            .min(self.docks[empty].free());
        if n <= 0 {
            return;
        }
        self.docks[full].bikes -= n;
        self.docks[full].last_update = at;
        // The van takes a quarter of an hour across town.
        let arrival = at + 15 * 60_000;
        for _ in 0..n {
            self.trips += 1;
            self.riding.push(Reverse((arrival, self.trips, empty)));
        }
    }
}

/// Emits, after every step, the stations that changed since the last emission: what the
/// polling source with dedup produces from the API (a station changes when its
/// `last_update` does).
#[derive(Debug, Default)]
pub struct ChangeFilter {
    last: Vec<(i64, i64, String)>,
}

impl ChangeFilter {
    /// The stations of `sim` that differ from what was emitted last.
    pub fn changed(&mut self, sim: &Simulation) -> Vec<Station> {
        let stations = sim.stations();
        if self.last.len() != stations.len() {
            self.last = vec![(i64::MIN, -1, String::new()); stations.len()];
        }
        let mut out = Vec::new();
        for (s, last) in stations.into_iter().zip(self.last.iter_mut()) {
            let now = (s.last_update, s.available_bikes, s.status.clone());
            if *last != now {
                *last = now;
                out.push(s);
            }
        }
        out
    }
}

/// The records the polling source would have produced from `from` to `to`, in order, in a
/// city whose local time is UTC plus `utc_offset_hours`.
pub fn history(seed: u64, utc_offset_hours: i64, from: i64, to: i64) -> (Simulation, Vec<Station>) {
    let mut sim = Simulation::new(seed, from).with_utc_offset_hours(utc_offset_hours);
    let mut filter = ChangeFilter::default();
    let mut out = filter.changed(&sim);
    sim.advance_to(to, |s| out.extend(filter.changed(s)));
    (sim, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse_date;

    #[test]
    fn a_weekday_has_commuter_flows_empty_and_full_stations_and_quiet_nights() {
        // Wednesday 2026-12-02, 00:00 UTC, for a day.
        let start = parse_date("2026-12-02").unwrap() * DAY_MS;
        let (sim, records) = history(7, 1, start, start + DAY_MS);
        assert!(sim.trips() > 1_000, "{} trips", sim.trips());
        let specs = city::stations();
        let kind = |s: &Station| specs[(s.number - 1) as usize].kind;
        // Residential stations hold fewer bikes at 10:00 (local) than at 6:00.
        let at = |h: i64| {
            let t = start + h * HOUR_MS - UTC_OFFSET_MS;
            let mut latest = std::collections::HashMap::new();
            for r in records.iter().filter(|r| r.last_update <= t) {
                latest.insert(r.number, r.clone());
            }
            let res: i64 = latest
                .values()
                .filter(|s| kind(s) == Kind::Residential)
                .map(|s| s.available_bikes)
                .sum();
            let work: i64 = latest
                .values()
                .filter(|s| kind(s) == Kind::Business)
                .map(|s| s.available_bikes)
                .sum();
            (res, work)
        };
        let (res6, work6) = at(6);
        let (res10, work10) = at(10);
        assert!(
            res10 < res6 && work10 > work6,
            "{res6}->{res10}, {work6}->{work10}"
        );
        assert!(
            records
                .iter()
                .any(|r| r.status == "OPEN" && r.available_bikes == 0)
        );
        assert!(
            records
                .iter()
                .any(|r| r.status == "OPEN" && r.available_bike_stands == 0)
        );
        // Night (02:00–04:00 local) is quiet.
        let night = records
            .iter()
            .filter(|r| (start + HOUR_MS..start + 3 * HOUR_MS).contains(&r.last_update))
            .count();
        let day = records
            .iter()
            .filter(|r| (start + 16 * HOUR_MS..start + 18 * HOUR_MS).contains(&r.last_update))
            .count();
        assert!(night * 10 < day, "night {night}, day {day}");
        // Deterministic.
        assert_eq!(
            history(7, 1, start, start + HOUR_MS).1,
            history(7, 1, start, start + HOUR_MS).1
        );
    }

    #[test]
    fn another_utc_offset_runs_the_day_at_another_hour() {
        // 01:00-03:00 UTC: the night in Brussels (UTC+1), the afternoon at UTC+14.
        let start = parse_date("2026-12-02").unwrap() * DAY_MS + HOUR_MS;
        let night = history(7, 1, start, start + 2 * HOUR_MS).0.trips();
        let afternoon = history(7, 14, start, start + 2 * HOUR_MS).0.trips();
        assert!(
            night * 10 < afternoon,
            "night {night}, afternoon {afternoon}"
        );
    }
}
