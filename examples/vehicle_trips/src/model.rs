//! What flows through the pipeline: the vehicles' reports, the trip state machine kept in the
//! trip-state table, its transitions, and dates.

use serde::{Deserialize, Serialize};

use crate::roads::haversine_m;

/// One hour in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;
/// One day in milliseconds.
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// Below this computed speed (km/h) a vehicle is standing still.
pub const STILL_KMH: f64 = 2.0;
/// Standing still this long (ms) is a stop.
pub const STOP_AFTER_MS: i64 = 5_000;
/// Closer than this (m) to the end of the route is an arrival, reported or not.
pub const ARRIVAL_RADIUS_M: f64 = 15.0;

/// What a vehicle says it is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reported {
    /// Moving along the route.
    Driving,
    /// Standing (a light, traffic).
    Stopped,
    /// At the destination: the trip's last report.
    Arrived,
}

impl Reported {
    /// Its name in the data.
    pub fn as_str(self) -> &'static str {
        match self {
            Reported::Driving => "driving",
            Reported::Stopped => "stopped",
            Reported::Arrived => "arrived",
        }
    }
}

/// A vehicle's report, sent every second of a trip to the positions topic (key: the trip id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VehicleEvent {
    /// The vehicle.
    pub vehicle_id: String,
    /// Its name.
    pub vehicle_name: String,
    /// The trip.
    pub trip_id: String,
    /// Where the trip started (place id).
    pub origin: String,
    /// Where it goes (place id).
    pub destination: String,
    /// When, epoch ms.
    pub ts: i64,
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lng: f64,
    /// The speedometer, km/h.
    pub speed_kmh: f64,
    /// Metres driven along the route.
    pub odometer_m: f64,
    /// The route's length, metres.
    pub route_m: f64,
    /// What the vehicle says it is doing.
    pub state: Reported,
}

/// Where a trip stands, as the topology sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TripStatus {
    /// Moving.
    Driving,
    /// Standing still for [`STOP_AFTER_MS`] or more.
    Stopped,
    /// Done.
    Arrived,
}

impl TripStatus {
    /// Its name on the page and in the lake.
    pub fn as_str(self) -> &'static str {
        match self {
            TripStatus::Driving => "driving",
            TripStatus::Stopped => "stopped",
            TripStatus::Arrived => "arrived",
        }
    }
}

/// What changed in a trip: the transitions topic's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransitionKind {
    /// The first report.
    Started,
    /// Standing still long enough to count as a stop.
    Stopped,
    /// Moving again after a stop.
    Resumed,
    /// At the destination.
    Arrived,
}

/// A transition of a trip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// The trip.
    pub trip_id: String,
    /// Its vehicle.
    pub vehicle_id: String,
    /// What happened.
    pub kind: TransitionKind,
    /// When (the report's time; a stop's is when the vehicle stood still).
    pub ts: i64,
    /// Where.
    pub lat: f64,
    /// Where.
    pub lng: f64,
}

/// One trip's state: the trip-state table's values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TripState {
    /// The trip.
    pub trip_id: String,
    /// Its vehicle.
    pub vehicle_id: String,
    /// The vehicle's name.
    pub vehicle_name: String,
    /// Origin place id.
    pub origin: String,
    /// Destination place id.
    pub destination: String,
    /// Where it stands.
    pub status: TripStatus,
    /// First report, epoch ms.
    pub started_at: i64,
    /// Last report taken, epoch ms.
    pub updated_at: i64,
    /// Last position.
    pub lat: f64,
    /// Last position.
    pub lng: f64,
    /// Metres along the route (the vehicle's odometer).
    pub odometer_m: f64,
    /// The route's length.
    pub route_m: f64,
    /// Metres between consecutive reported positions, summed.
    pub distance_m: f64,
    /// Speed between the last two reports, km/h (computed, not the speedometer).
    pub speed_kmh: f64,
    /// Highest computed speed.
    pub max_speed_kmh: f64,
    /// Stops so far.
    pub stops: u32,
    /// Time spent in stops so far, ms (the current one included once it ends).
    pub stopped_ms: i64,
    /// Since when it stands still (`None` while moving).
    pub still_since: Option<i64>,
    /// When it arrived.
    pub arrived_at: Option<i64>,
    /// Expected arrival, epoch ms (`None` before it has moved, and once it has arrived).
    pub eta: Option<i64>,
    /// Reports taken.
    pub reports: u64,
    /// Reports ignored: older than the last one taken, or after the arrival.
    pub ignored: u64,
}

impl TripState {
    /// The state after a trip's first report, and its `Started` transition.
    pub fn start(e: &VehicleEvent) -> (TripState, Vec<Transition>) {
        let mut s = TripState {
            trip_id: e.trip_id.clone(),
            vehicle_id: e.vehicle_id.clone(),
            vehicle_name: e.vehicle_name.clone(),
            origin: e.origin.clone(),
            destination: e.destination.clone(),
            status: TripStatus::Driving,
            started_at: e.ts,
            updated_at: e.ts,
            lat: e.lat,
            lng: e.lng,
            odometer_m: e.odometer_m,
            route_m: e.route_m,
            distance_m: 0.0,
            speed_kmh: 0.0,
            max_speed_kmh: 0.0,
            stops: 0,
            stopped_ms: 0,
            still_since: None,
            arrived_at: None,
            eta: None,
            reports: 1,
            ignored: 0,
        };
        let mut out = vec![s.transition(TransitionKind::Started, e.ts)];
        if s.arrives(e) {
            s.arrive(e.ts);
            out.push(s.transition(TransitionKind::Arrived, e.ts));
        }
        (s, out)
    }

    /// Takes the next report: speeds, stops, arrival, ETA. Returns the transitions it causes.
    pub fn apply(&mut self, e: &VehicleEvent) -> Vec<Transition> {
        // A retried send or a report overtaken by a later one changes nothing; nor does
        // anything after the arrival.
        if e.ts <= self.updated_at || self.status == TripStatus::Arrived {
            self.ignored += 1;
            return Vec::new();
        }
        let mut out = Vec::new();
        let dt_ms = e.ts - self.updated_at;
        let step = haversine_m(self.lat, self.lng, e.lat, e.lng);
        self.speed_kmh = step / (dt_ms as f64 / 1000.0) * 3.6;
        self.max_speed_kmh = self.max_speed_kmh.max(self.speed_kmh);
        self.distance_m += step;
        self.updated_at = e.ts;
        self.lat = e.lat;
        self.lng = e.lng;
        self.odometer_m = e.odometer_m;
        self.route_m = e.route_m;
        self.reports += 1;

        if self.speed_kmh < STILL_KMH {
            // Standing since the previous report.
            let since = *self.still_since.get_or_insert(e.ts - dt_ms);
            if self.status == TripStatus::Driving && e.ts - since >= STOP_AFTER_MS {
                self.status = TripStatus::Stopped;
                self.stops += 1;
                out.push(self.transition(TransitionKind::Stopped, since));
            }
        } else {
            // Moving: a standstill ends, and resumes the trip if it was a stop.
            let still_since = self.still_since.take();
            if let (Some(since), TripStatus::Stopped) = (still_since, self.status) {
                // The stop ended when the vehicle left, at the previous report.
                self.stopped_ms += e.ts - dt_ms - since;
                self.status = TripStatus::Driving;
                out.push(self.transition(TransitionKind::Resumed, e.ts));
            }
        }
        if self.arrives(e) {
            if let (TripStatus::Stopped, Some(since)) = (self.status, self.still_since) {
                self.stopped_ms += e.ts - since;
            }
            self.arrive(e.ts);
            out.push(self.transition(TransitionKind::Arrived, e.ts));
        } else {
            self.eta = self.estimate();
        }
        out
    }

    /// The fraction of the route driven, 0 to 1.
    pub fn progress(&self) -> f64 {
        if self.status == TripStatus::Arrived || self.route_m <= 0.0 {
            1.0
        } else {
            (self.odometer_m / self.route_m).clamp(0.0, 1.0)
        }
    }

    /// Mean speed while moving so far, km/h (time in stops left out).
    pub fn moving_speed_kmh(&self) -> f64 {
        let current_stop = self.still_since.map_or(0, |s| self.updated_at - s);
        let moving_ms = self.updated_at - self.started_at - self.stopped_ms - current_stop;
        if moving_ms <= 0 {
            0.0
        } else {
            self.distance_m / (moving_ms as f64 / 1000.0) * 3.6
        }
    }

    fn arrives(&self, e: &VehicleEvent) -> bool {
        e.state == Reported::Arrived || (e.route_m - e.odometer_m) <= ARRIVAL_RADIUS_M
    }

    fn arrive(&mut self, ts: i64) {
        self.status = TripStatus::Arrived;
        self.arrived_at = Some(ts);
        self.still_since = None;
        self.eta = None;
        self.speed_kmh = 0.0;
    }

    /// Remaining metres at the mean moving speed, from the last report.
    fn estimate(&self) -> Option<i64> {
        let v = self.moving_speed_kmh() / 3.6;
        if v < 0.5 {
            return None;
        }
        let remaining = (self.route_m - self.odometer_m).max(0.0);
        Some(self.updated_at + (remaining / v * 1000.0) as i64)
    }

    fn transition(&self, kind: TransitionKind, ts: i64) -> Transition {
        Transition {
            trip_id: self.trip_id.clone(),
            vehicle_id: self.vehicle_id.clone(),
            kind,
            ts,
            lat: self.lat,
            lng: self.lng,
        }
    }
}

/// Days since 1970-01-01 of `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Option<i64> {
    let mut it = s.trim().splitn(3, '-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: i64 = it.next()?.parse().ok()?;
    let d: i64 = it.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// `YYYY-MM-DD` of a day number (days since 1970-01-01).
pub fn format_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `HH:MM:SS` (UTC) of epoch milliseconds.
pub fn format_clock(ms: i64) -> String {
    let s = ms.rem_euclid(DAY_MS) / 1000;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Now, epoch milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2026-12-05"), Some(20_792));
        for d in [0, 20_792, 19_000, 11_016] {
            assert_eq!(parse_date(&format_date(d)), Some(d));
        }
        assert_eq!(
            format_clock(20_792 * DAY_MS + 13 * HOUR_MS + 5_000),
            "13:00:05"
        );
        assert_eq!(parse_date("2026-13-01"), None);
    }
}
