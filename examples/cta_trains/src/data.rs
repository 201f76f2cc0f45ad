//! The CTA tables the example ships (`data/`): the stations, the ridership per station and the
//! share of a day's ridership per hour, and the three lines built from them.
//!
//! The files are compiled into the binary, so `cargo run -p cta_trains` needs nothing else.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// `data/cta_stations.csv`: one row per platform (230 rows).
pub const STATIONS_CSV: &str = include_str!("../data/cta_stations.csv");
/// `data/ridership_seed.csv`: average rides per station per day type, October 2018.
pub const RIDERSHIP_CSV: &str = include_str!("../data/ridership_seed.csv");
/// `data/ridership_curve.csv`: the share of a day's ridership in each hour.
pub const CURVE_CSV: &str = include_str!("../data/ridership_curve.csv");

/// One row of the stations table, as PostgreSQL holds it and as the Postgres source (the
/// JDBC source connector of the original) writes it to `org.chicago.cta.stations`: a JSON
/// object of the columns in table order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Station {
    /// The platform's id (the incrementing column of the source).
    pub stop_id: i32,
    /// `N`, `S`, `E` or `W`: which way the platform's trains go.
    pub direction_id: String,
    /// The platform's name, e.g. `Harlem (63rd-bound)`.
    pub stop_name: String,
    /// The station's name, e.g. `Harlem/Lake`.
    pub station_name: String,
    /// The station with its lines, e.g. `Harlem/Lake (Green Line)`.
    pub station_descriptive_name: String,
    /// The station's id, shared by its platforms.
    pub station_id: i32,
    /// Position along the line, from 0.
    pub order: i32,
    /// On the red line.
    pub red: bool,
    /// On the blue line.
    pub blue: bool,
    /// On the green line.
    pub green: bool,
}

impl Station {
    /// The line colour, as the original Faust transform chose it: red, else blue, else green;
    /// `None` for platforms of the other lines (the table flags only these three).
    pub fn line(&self) -> Option<Line> {
        if self.red {
            Some(Line::Red)
        } else if self.blue {
            Some(Line::Blue)
        } else if self.green {
            Some(Line::Green)
        } else {
            None
        }
    }
}

/// One of the three lines of the simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Line {
    /// The red line (Howard – 95th/Dan Ryan).
    Red,
    /// The blue line (O'Hare – Forest Park).
    Blue,
    /// The green line (Harlem/Lake – Ashland/63rd).
    Green,
}

impl Line {
    /// The three lines, in the order the dashboard shows them.
    pub const ALL: [Line; 3] = [Line::Blue, Line::Green, Line::Red];

    /// `red`, `blue` or `green`: the `line` field of the events.
    pub fn as_str(self) -> &'static str {
        match self {
            Line::Red => "red",
            Line::Blue => "blue",
            Line::Green => "green",
        }
    }

    /// The line named `red`, `blue` or `green`.
    pub fn parse(s: &str) -> Option<Line> {
        match s {
            "red" => Some(Line::Red),
            "blue" => Some(Line::Blue),
            "green" => Some(Line::Green),
            _ => None,
        }
    }

    /// `R`, `B` or `G`: the first letter of its trains' ids (`BL001`).
    pub fn code(self) -> char {
        match self {
            Line::Red => 'R',
            Line::Blue => 'B',
            Line::Green => 'G',
        }
    }
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reads the stations table, in `stop_id` order (the order the Postgres source reads it in,
/// incrementing on `stop_id`).
pub fn stations() -> anyhow::Result<Vec<Station>> {
    let mut stations = parse_stations(STATIONS_CSV)?;
    stations.sort_by_key(|s| s.stop_id);
    Ok(stations)
}

/// Reads a stations table in the format of `cta_stations.csv` (booleans `TRUE`/`FALSE`).
pub fn parse_stations(text: &str) -> anyhow::Result<Vec<Station>> {
    #[derive(Deserialize)]
    struct Raw {
        stop_id: i32,
        direction_id: String,
        stop_name: String,
        station_name: String,
        station_descriptive_name: String,
        station_id: i32,
        order: i32,
        red: String,
        blue: String,
        green: String,
    }
    fn flag(s: &str) -> anyhow::Result<bool> {
        match s.trim().to_ascii_uppercase().as_str() {
            "TRUE" | "T" | "1" => Ok(true),
            "FALSE" | "F" | "0" => Ok(false),
            other => bail!("not a boolean: {other:?}"),
        }
    }
    let mut out = Vec::new();
    for (i, row) in csv::Reader::from_reader(text.as_bytes())
        .deserialize::<Raw>()
        .enumerate()
    {
        let r = row.with_context(|| format!("cta_stations.csv row {}", i + 1))?;
        out.push(Station {
            stop_id: r.stop_id,
            direction_id: r.direction_id,
            stop_name: r.stop_name,
            station_name: r.station_name,
            station_descriptive_name: r.station_descriptive_name,
            station_id: r.station_id,
            order: r.order,
            red: flag(&r.red)?,
            blue: flag(&r.blue)?,
            green: flag(&r.green)?,
        });
    }
    Ok(out)
}

/// Average rides of a station on each kind of day.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Ridership {
    /// Monday to Friday.
    pub weekday: f64,
    /// Saturday.
    pub saturday: f64,
    /// Sunday and holidays.
    pub sunday: f64,
}

impl Ridership {
    /// Rides on a day of the week (0 = Monday … 6 = Sunday).
    pub fn on(&self, weekday: u32) -> f64 {
        match weekday {
            5 => self.saturday,
            6 => self.sunday,
            _ => self.weekday,
        }
    }
}

/// Average rides per station id.
pub fn ridership() -> anyhow::Result<BTreeMap<i32, Ridership>> {
    #[derive(Deserialize)]
    struct Raw {
        station_id: i32,
        avg_weekday_rides: f64,
        avg_saturday_rides: f64,
        #[serde(rename = "avg_sunday-holiday_rides")]
        avg_sunday_rides: f64,
    }
    let mut out = BTreeMap::new();
    for (i, row) in csv::Reader::from_reader(RIDERSHIP_CSV.as_bytes())
        .deserialize::<Raw>()
        .enumerate()
    {
        let r = row.with_context(|| format!("ridership_seed.csv row {}", i + 1))?;
        out.insert(
            r.station_id,
            Ridership {
                weekday: r.avg_weekday_rides,
                saturday: r.avg_saturday_rides,
                sunday: r.avg_sunday_rides,
            },
        );
    }
    Ok(out)
}

/// The share of a day's rides in each hour 0–23.
pub fn ridership_curve() -> anyhow::Result<[f64; 24]> {
    #[derive(Deserialize)]
    struct Raw {
        hour: u32,
        ridership_ratio: f64,
    }
    let mut out = [0.0; 24];
    for (i, row) in csv::Reader::from_reader(CURVE_CSV.as_bytes())
        .deserialize::<Raw>()
        .enumerate()
    {
        let r = row.with_context(|| format!("ridership_curve.csv row {}", i + 1))?;
        // The file also has an hour 24 (the next midnight, as hour 0): not needed.
        if let Some(slot) = out.get_mut(r.hour as usize) {
            *slot = r.ridership_ratio;
        }
    }
    Ok(out)
}

/// A station of a line, in line order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteStation {
    /// The station's id.
    pub station_id: i32,
    /// Its name.
    pub name: String,
    /// Its position along the line.
    pub order: i32,
}

/// A line's stations in `order`, one per position (the table has two platforms per station,
/// and in one case two spellings of a name, `95th/Dan Ryan` and `95th/Ran Ryan`: the row of
/// the highest `stop_id` wins, as in the Faust table keyed by station id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The line.
    pub line: Line,
    /// Its stations, from order 0 up.
    pub stations: Vec<RouteStation>,
}

impl Route {
    /// Where direction `a` goes (the station of the highest order).
    pub fn terminal_a(&self) -> &str {
        self.stations.last().map_or("", |s| s.name.as_str())
    }

    /// Where direction `b` goes (the station of order 0).
    pub fn terminal_b(&self) -> &str {
        self.stations.first().map_or("", |s| s.name.as_str())
    }
}

/// The three lines built from the stations table.
pub fn routes(stations: &[Station]) -> Vec<Route> {
    Line::ALL
        .iter()
        .map(|&line| {
            let mut by_order: BTreeMap<i32, RouteStation> = BTreeMap::new();
            let mut rows: Vec<&Station> =
                stations.iter().filter(|s| s.line() == Some(line)).collect();
            rows.sort_by_key(|s| s.stop_id);
            for s in rows {
                by_order.insert(
                    s.order,
                    RouteStation {
                        station_id: s.station_id,
                        name: s.station_name.clone(),
                        order: s.order,
                    },
                );
            }
            Route {
                line,
                stations: by_order.into_values().collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_tables_read_whole() {
        let stations = stations().unwrap();
        assert_eq!(stations.len(), 230);
        let routes = routes(&stations);
        let sizes: Vec<(Line, usize)> = routes.iter().map(|r| (r.line, r.stations.len())).collect();
        assert_eq!(
            sizes,
            [(Line::Blue, 33), (Line::Green, 28), (Line::Red, 33)]
        );
        let red = &routes[2];
        assert_eq!(red.terminal_b(), "Howard");
        assert_eq!(red.terminal_a(), "95th/Dan Ryan");
        let rides = ridership().unwrap();
        for r in &routes {
            for s in &r.stations {
                assert!(rides.contains_key(&s.station_id), "{s:?}");
            }
        }
        assert!((rides[&40380].weekday - 22811.6).abs() < 1e-9);
        let curve = ridership_curve().unwrap();
        assert_eq!(curve[8], 0.125);
        assert!((curve.iter().sum::<f64>() - 0.99).abs() < 1e-9);
    }
}
