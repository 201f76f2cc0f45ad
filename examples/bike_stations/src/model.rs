//! The records: JCDecaux's station JSON, what the topology keeps per station (its latest state
//! and recent trend), the changes it derives, window statistics, alerts and city totals.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// A station as JCDecaux's `/vls/v1/stations` lists it (the same field names and types).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Station {
    /// The station's number, unique within its contract.
    pub number: i64,
    /// The contract (city) it belongs to.
    pub contract_name: String,
    /// Its name.
    pub name: String,
    /// Its address.
    pub address: String,
    /// Where it is.
    pub position: Position,
    /// Whether it has a payment terminal.
    pub banking: bool,
    /// Whether it is a bonus station (uphill: returning there earns time).
    pub bonus: bool,
    /// Stands in total.
    pub bike_stands: i64,
    /// Free stands (0 while closed).
    pub available_bike_stands: i64,
    /// Bikes ready to take (0 while closed).
    pub available_bikes: i64,
    /// `OPEN` or `CLOSED`.
    pub status: String,
    /// When the station last reported, epoch milliseconds.
    #[serde(default)]
    pub last_update: i64,
}

/// A latitude and longitude.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Position {
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lng: f64,
}

impl Station {
    /// The record key: `contract:number` (numbers repeat across contracts).
    pub fn key(&self) -> String {
        station_key(&self.contract_name, self.number)
    }

    /// Whether the station is open.
    pub fn is_open(&self) -> bool {
        self.status == "OPEN"
    }
}

/// The record key of station `number` of `contract`.
pub fn station_key(contract: &str, number: i64) -> String {
    format!("{contract}:{number}")
}

/// How many minutes of a station's history its trend looks at.
pub const TREND_MINUTES: i64 = 15;
/// Alert when the trend empties (or fills) the station within this many minutes.
pub const ALERT_HORIZON_MINUTES: f64 = 20.0;

/// What kind of alert a station is under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// Bikes are running out: at the current trend none are left within the horizon.
    EmptySoon,
    /// Stands are running out.
    FullSoon,
    /// No bike left.
    Empty,
    /// No free stand left.
    Full,
}

impl AlertKind {
    /// Words for the page.
    pub fn label(self) -> &'static str {
        match self {
            AlertKind::EmptySoon => "empty soon",
            AlertKind::FullSoon => "full soon",
            AlertKind::Empty => "empty",
            AlertKind::Full => "full",
        }
    }
}

/// An alert on a station, from its trend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// What is happening.
    pub kind: AlertKind,
    /// Since when (epoch ms, the record that raised it).
    pub since: i64,
    /// Minutes until empty or full at the current trend (0 once it is).
    pub minutes_left: f64,
    /// Bikes per minute over the trend's window (negative: emptying).
    pub bikes_per_minute: f64,
}

/// What the topology keeps per station: its latest state, its recent samples, the change the
/// latest record made and the alert the trend raises.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StationTrack {
    /// The latest record.
    pub latest: Option<Station>,
    /// `(last_update, available_bikes)` of the records in the last [`TREND_MINUTES`], plus
    /// the one just before them (the state at the start of the trend window).
    pub recent: VecDeque<(i64, i64)>,
    /// Bikes taken by the latest record's change (a drop in bikes while open).
    pub taken: i64,
    /// Bikes returned by it.
    pub returned: i64,
    /// Records seen.
    pub records: u64,
    /// The alert now, if any.
    pub alert: Option<Alert>,
    /// Whether the latest record raised, changed or cleared the alert.
    pub alert_changed: bool,
}

impl StationTrack {
    /// The track after `s`, a newer (or repeated) record of the station.
    pub fn update(mut self, s: &Station) -> StationTrack {
        let (taken, returned) = match &self.latest {
            Some(prev) if prev.is_open() && s.is_open() => {
                let d = s.available_bikes - prev.available_bikes;
                (d.min(0).abs(), d.max(0))
            }
            _ => (0, 0),
        };
        self.taken = taken;
        self.returned = returned;
        self.records += 1;
        let t = s.last_update;
        self.recent
            .push_back((t, if s.is_open() { s.available_bikes } else { 0 }));
        // Keep one sample at or before the window's start: the state the trend starts from.
        let from = t - TREND_MINUTES * 60_000;
        while self.recent.len() > 1 && self.recent[1].0 <= from {
            self.recent.pop_front();
        }
        let alert = alert_for(s, &self.recent);
        let kind_before = self.alert.as_ref().map(|a| a.kind);
        self.alert_changed = kind_before != alert.as_ref().map(|a| a.kind);
        self.alert = match (alert, self.alert.take()) {
            // The same alert goes on: it keeps its start, with the latest figures.
            (Some(mut new), Some(old)) if old.kind == new.kind => {
                new.since = old.since;
                Some(new)
            }
            (new, _) => new,
        };
        self.latest = Some(s.clone());
        self
    }

    /// Bikes per minute over the trend window (0 without two samples).
    pub fn trend(&self) -> f64 {
        trend(&self.recent)
    }
}

fn trend(recent: &VecDeque<(i64, i64)>) -> f64 {
    match (recent.front(), recent.back()) {
        (Some(&(t0, b0)), Some(&(t1, b1))) => {
            // Over the whole window even when the first sample is older: the state held.
            let newest = t1;
            let start = (newest - TREND_MINUTES * 60_000).max(t0.min(newest));
            let minutes = ((newest - start) as f64 / 60_000.0).max(1.0);
            (b1 - b0) as f64 / minutes
        }
        _ => 0.0,
    }
}

/// The alert the station's state and trend call for.
pub fn alert_for(s: &Station, recent: &VecDeque<(i64, i64)>) -> Option<Alert> {
    if !s.is_open() {
        return None;
    }
    let per_minute = trend(recent);
    let alert = |kind, minutes_left| {
        Some(Alert {
            kind,
            since: s.last_update,
            minutes_left,
            bikes_per_minute: per_minute,
        })
    };
    if s.available_bikes == 0 {
        return alert(AlertKind::Empty, 0.0);
    }
    if s.available_bike_stands == 0 {
        return alert(AlertKind::Full, 0.0);
    }
    if per_minute < 0.0 {
        let left = s.available_bikes as f64 / -per_minute;
        if left <= ALERT_HORIZON_MINUTES {
            return alert(AlertKind::EmptySoon, left);
        }
    }
    if per_minute > 0.0 {
        let left = s.available_bike_stands as f64 / per_minute;
        if left <= ALERT_HORIZON_MINUTES {
            return alert(AlertKind::FullSoon, left);
        }
    }
    None
}

/// One record's effect on its station, the input of every window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StationChange {
    /// The contract.
    pub contract: String,
    /// The station's number.
    pub number: i64,
    /// When (epoch ms).
    pub at: i64,
    /// Bikes available (0 while closed).
    pub bikes: i64,
    /// Free stands (0 while closed).
    pub stands: i64,
    /// Stands in total.
    pub bike_stands: i64,
    /// Whether it is open.
    pub open: bool,
    /// Bikes taken by this change.
    pub taken: i64,
    /// Bikes returned by it.
    pub returned: i64,
}

impl StationChange {
    /// The change a track's latest record made (`None` before any record).
    pub fn of(track: &StationTrack) -> Option<StationChange> {
        let s = track.latest.as_ref()?;
        Some(StationChange {
            contract: s.contract_name.clone(),
            number: s.number,
            at: s.last_update,
            bikes: s.available_bikes,
            stands: s.available_bike_stands,
            bike_stands: s.bike_stands,
            open: s.is_open(),
            taken: track.taken,
            returned: track.returned,
        })
    }
}

/// Availability over a window: of a station, or of a city (all its stations' records).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Availability {
    /// Records in the window.
    pub samples: i64,
    /// Sum of the bikes they reported (mean = `bikes_sum / samples`).
    pub bikes_sum: i64,
    /// Fewest bikes reported.
    pub bikes_min: i64,
    /// Most bikes reported.
    pub bikes_max: i64,
    /// Sum of the free stands they reported.
    pub stands_sum: i64,
    /// Records of an empty open station.
    pub empty_samples: i64,
    /// Records of a full open station.
    pub full_samples: i64,
    /// Records of a closed station.
    pub closed_samples: i64,
    /// Bikes taken.
    pub taken: i64,
    /// Bikes returned.
    pub returned: i64,
    /// Bikes of the last record.
    pub last_bikes: i64,
    /// Free stands of the last record.
    pub last_stands: i64,
    /// When the last record was (epoch ms).
    pub last_at: i64,
}

impl Availability {
    /// The window's statistics after one more change.
    pub fn record(mut self, c: &StationChange) -> Availability {
        if self.samples == 0 {
            self.bikes_min = c.bikes;
            self.bikes_max = c.bikes;
        }
        self.samples += 1;
        self.bikes_sum += c.bikes;
        self.bikes_min = self.bikes_min.min(c.bikes);
        self.bikes_max = self.bikes_max.max(c.bikes);
        self.stands_sum += c.stands;
        self.empty_samples += i64::from(c.open && c.bikes == 0);
        self.full_samples += i64::from(c.open && c.stands == 0);
        self.closed_samples += i64::from(!c.open);
        self.taken += c.taken;
        self.returned += c.returned;
        if c.at >= self.last_at {
            self.last_at = c.at;
            self.last_bikes = c.bikes;
            self.last_stands = c.stands;
        }
        self
    }

    /// Mean bikes over the window's records.
    pub fn mean_bikes(&self) -> f64 {
        if self.samples == 0 {
            0.0
        } else {
            self.bikes_sum as f64 / self.samples as f64
        }
    }

    /// Mean free stands over the window's records.
    pub fn mean_stands(&self) -> f64 {
        if self.samples == 0 {
            0.0
        } else {
            self.stands_sum as f64 / self.samples as f64
        }
    }
}

/// A city's stations now, from the latest state of each.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CityTotals {
    /// Stations reporting.
    pub stations: i64,
    /// Open ones.
    pub open: i64,
    /// Open ones without a bike.
    pub empty: i64,
    /// Open ones without a free stand.
    pub full: i64,
    /// Bikes available.
    pub bikes: i64,
    /// Free stands.
    pub stands: i64,
    /// Stands in total.
    pub bike_stands: i64,
}

impl CityTotals {
    /// Adds (`sign` 1) or removes (`sign` -1) a station's state.
    pub fn apply(mut self, s: &Station, sign: i64) -> CityTotals {
        let open = s.is_open();
        self.stations += sign;
        self.open += sign * i64::from(open);
        self.empty += sign * i64::from(open && s.available_bikes == 0);
        self.full += sign * i64::from(open && s.available_bike_stands == 0);
        self.bikes += sign * s.available_bikes;
        self.stands += sign * s.available_bike_stands;
        self.bike_stands += sign * s.bike_stands;
        self
    }
}

/// Epoch milliseconds of one hour.
pub const HOUR_MS: i64 = 3_600_000;
/// Epoch milliseconds of one day.
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// A UTC date as days since 1970-01-01, from `YYYY-MM-DD`.
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

/// `YYYY-MM-DD HH:MM` (UTC) of epoch milliseconds.
pub fn format_time(ms: i64) -> String {
    let day = ms.div_euclid(DAY_MS);
    let in_day = ms.rem_euclid(DAY_MS) / 60_000;
    format!("{} {:02}:{:02}", format_date(day), in_day / 60, in_day % 60)
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
            format_time(20_792 * DAY_MS + 13 * HOUR_MS + 5 * 60_000),
            "2026-12-05 13:05"
        );
        assert_eq!(parse_date("2026-13-01"), None);
    }
}
