//! The MTA bus-position CSV format and a generator of realistic feeds in it.
//!
//! The real files (the New York MTA's "bus breakdown and delays" / SIRI vehicle-monitoring
//! dumps, e.g. `mta_1706.csv`) have these 17 columns, in this order. Timestamps are local
//! times written `YYYY-MM-DD HH:MM:SS`, except `ScheduledArrivalTime`, which is a time of the
//! service day, `HH:MM:SS`, with hours of 24 and more past midnight (`24:05:00`).

use std::io::Write;
use std::path::Path;

use anyhow::Context;

/// The 17 columns of the feed, in file order.
pub const COLUMNS: [&str; 17] = [
    "RecordedAtTime",
    "DirectionRef",
    "PublishedLineName",
    "OriginName",
    "OriginLat",
    "OriginLong",
    "DestinationName",
    "DestinationLat",
    "DestinationLong",
    "VehicleRef",
    "VehicleLocation.Latitude",
    "VehicleLocation.Longitude",
    "NextStopPointName",
    "ArrivalProximityText",
    "DistanceFromStop",
    "ExpectedArrivalTime",
    "ScheduledArrivalTime",
];

/// Index of `VehicleRef`, the record key.
pub const VEHICLE_REF: usize = 9;

/// Options of [`generate`].
#[derive(Debug, Clone)]
pub struct FeedOptions {
    /// Number of data rows to write.
    pub rows: u64,
    /// Buses on the road.
    pub vehicles: u32,
    /// Seconds of feed time between two reports of one bus.
    pub report_every_secs: i64,
    /// Feed time of the first report, seconds since 1970 (local time of the feed, as written).
    pub start: i64,
    /// Share of rows with one or more missing values (0 – 1).
    pub missing_share: f64,
    /// Share of rows that are malformed: cut short, or a field that is not a number or time.
    pub malformed_share: f64,
    /// Seed of the pseudo-random sequence: equal seeds write equal files.
    pub seed: u64,
}

impl Default for FeedOptions {
    fn default() -> Self {
        FeedOptions {
            rows: 20_000,
            vehicles: 60,
            report_every_secs: 30,
            // 2017-06-01 22:30:00: the feed crosses midnight after an hour and a half.
            start: crate::clean::epoch_seconds(2017, 6, 1, 22, 30, 0),
            missing_share: 0.04,
            malformed_share: 0.005,
            seed: 7,
        }
    }
}

/// What the generator knows about a row it wrote: the ground truth tests check against.
#[derive(Debug, Clone, PartialEq)]
pub struct TruthRow {
    /// `VehicleRef`.
    pub vehicle: String,
    /// `RecordedAtTime`, seconds since 1970.
    pub recorded_at: i64,
    /// Expected − scheduled arrival in minutes, or `None` when the row lacks one of the two
    /// (the pipeline drops it).
    pub delay_minutes: Option<f64>,
    /// Whether the row is malformed (the pipeline dead-letters it).
    pub malformed: bool,
}

/// A bus line: name, stops along the route (first = origin, last = destination), and the
/// coordinates of both ends (stops lie evenly on the straight line between them).
struct Line {
    name: &'static str,
    stops: &'static [&'static str],
    from: (f64, f64),
    to: (f64, f64),
    /// Mean minutes late on this line, before rush-hour and along-the-route effects.
    bias: f64,
    /// Minutes of delay gathered from one end of the route to the other.
    congestion: f64,
}

const LINES: &[Line] = &[
    Line {
        name: "M15",
        stops: &[
            "SOUTH FERRY/STATE ST",
            "WATER ST/BROAD ST",
            "PEARL ST/FULTON ST",
            "ALLEN ST/DELANCEY ST",
            "1 AV/E 14 ST",
            "1 AV/E 34 ST",
            "2 AV/E 57 ST",
            "1 AV/E 79 ST",
            "2 AV/E 96 ST",
            "1 AV/E 116 ST",
            "E 126 ST/2 AV",
        ],
        from: (40.7013, -74.0132),
        to: (40.8028, -73.9332),
        bias: 3.0,
        congestion: 6.0,
    },
    Line {
        name: "B63",
        stops: &[
            "PIER 6/BROOKLYN BRIDGE PARK",
            "ATLANTIC AV/HICKS ST",
            "5 AV/ATLANTIC AV",
            "5 AV/UNION ST",
            "5 AV/9 ST",
            "5 AV/25 ST",
            "5 AV/44 ST",
            "5 AV/60 ST",
            "5 AV/86 ST",
            "SHORE RD/4 AV",
        ],
        from: (40.6985, -73.9990),
        to: (40.6165, -74.0340),
        bias: 1.0,
        congestion: 3.0,
    },
    Line {
        name: "Q58",
        stops: &[
            "FLUSHING/MAIN ST STA",
            "COLLEGE POINT BLVD/40 RD",
            "CORONA AV/JUNCTION BLVD",
            "GRAND AV/69 ST",
            "FLUSHING AV/METROPOLITAN AV",
            "PALMETTO ST/MYRTLE AV",
            "RIDGEWOOD TERMINAL",
        ],
        from: (40.7596, -73.8303),
        to: (40.6993, -73.9078),
        bias: 4.5,
        congestion: 5.0,
    },
    Line {
        name: "BX12",
        stops: &[
            "ISHAM ST/BROADWAY",
            "W FORDHAM RD/UNIVERSITY AV",
            "E FORDHAM RD/GRAND CONCOURSE",
            "E FORDHAM RD/SOUTHERN BLVD",
            "PELHAM PKWY/WILLIAMSBRIDGE RD",
            "PELHAM PKWY/EASTCHESTER RD",
            "BAY PLAZA/BARTOW AV",
        ],
        from: (40.8683, -73.9181),
        to: (40.8677, -73.8302),
        bias: 2.0,
        congestion: 7.0,
    },
    Line {
        name: "S79",
        stops: &[
            "ST GEORGE FERRY TERMINAL",
            "BAY ST/VANDERBILT AV",
            "HYLAN BLVD/NARROWS RD",
            "HYLAN BLVD/NEW DORP LA",
            "HYLAN BLVD/GREAT KILLS RD",
            "HYLAN BLVD/ARDEN AV",
            "RICHMOND VALLEY RD/PAGE AV",
        ],
        from: (40.6437, -74.0736),
        to: (40.5126, -74.2345),
        bias: -0.5,
        congestion: 2.0,
    },
    Line {
        name: "M104",
        stops: &[
            "BROADWAY/W 42 ST",
            "BROADWAY/W 57 ST",
            "BROADWAY/W 72 ST",
            "BROADWAY/W 96 ST",
            "BROADWAY/W 110 ST",
            "BROADWAY/W 125 ST",
            "BROADWAY/W 129 ST",
        ],
        from: (40.7564, -73.9866),
        to: (40.8163, -73.9575),
        bias: 2.5,
        congestion: 4.0,
    },
];

/// A small, fast, deterministic generator (SplitMix64): the feed must not depend on a
/// random-number crate's version.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    /// A sequence starting from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

/// One simulated bus.
struct Bus {
    vehicle: String,
    line: usize,
    /// 0 = from → to, 1 = back.
    direction: u8,
    /// Position along the route, 0 (origin) to 1 (destination), in its direction.
    progress: f64,
    /// Route lengths per minute, this bus's speed.
    speed: f64,
    /// Its own lateness, minutes, drifting as it goes.
    own_delay: f64,
}

/// Metres per degree of latitude; good enough for New York.
const METRES_PER_DEGREE: f64 = 111_000.0;

fn lerp(a: (f64, f64), b: (f64, f64), t: f64) -> (f64, f64) {
    (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t)
}

fn distance_m(a: (f64, f64), b: (f64, f64)) -> f64 {
    let dy = (a.0 - b.0) * METRES_PER_DEGREE;
    let dx = (a.1 - b.1) * METRES_PER_DEGREE * a.0.to_radians().cos();
    (dx * dx + dy * dy).sqrt()
}

/// The feed's proximity text for a bus `metres` from its next stop, with `stop_spacing`
/// metres between stops.
pub fn proximity_text(metres: f64, stop_spacing: f64) -> String {
    if metres < 25.0 {
        "at stop".into()
    } else if metres < 150.0 {
        "approaching".into()
    } else if metres < stop_spacing.min(800.0) {
        "< 1 stop away".into()
    } else if metres < 1_609.0 {
        let stops = (metres / stop_spacing).floor().max(1.0) as u64;
        if stops == 1 {
            "1 stop away".into()
        } else {
            format!("{stops} stops away")
        }
    } else {
        format!("{:.1} miles away", metres / 1_609.344)
    }
}

/// Writes `opts.rows` rows plus the header to `out`; returns what each row holds.
pub fn generate(out: impl Write, opts: &FeedOptions) -> anyhow::Result<Vec<TruthRow>> {
    let mut rng = SplitMix::new(opts.seed);
    let mut writer = csv::WriterBuilder::new().flexible(true).from_writer(out);
    writer.write_record(COLUMNS)?;
    let mut buses: Vec<Bus> = (0..opts.vehicles.max(1))
        .map(|i| Bus {
            vehicle: format!("NYCT_{}", 4_000 + i * 7),
            line: i as usize % LINES.len(),
            direction: ((i as usize / LINES.len()) % 2) as u8,
            progress: rng.unit(),
            speed: rng.range(1.0 / 70.0, 1.0 / 40.0),
            own_delay: rng.range(-2.0, 2.0),
        })
        .collect();
    let per_round = buses.len() as u64;
    let mut truth = Vec::with_capacity(opts.rows as usize);
    for n in 0..opts.rows {
        let round = (n / per_round) as i64;
        let b = (n % per_round) as usize;
        // Buses report in turn within a round, a second or two apart.
        let recorded = opts.start
            + round * opts.report_every_secs
            + (b as i64 * opts.report_every_secs) / per_round as i64;
        let bus = &mut buses[b];
        if n >= per_round {
            bus.progress += bus.speed * opts.report_every_secs as f64 / 60.0;
            bus.own_delay = (bus.own_delay + rng.range(-0.4, 0.45)).clamp(-4.0, 12.0);
            if bus.progress >= 1.0 {
                // End of the route: turn around.
                bus.progress -= 1.0;
                bus.direction ^= 1;
                bus.own_delay = rng.range(-2.0, 2.0);
            }
        }
        let line = &LINES[bus.line];
        let (origin, destination) = if bus.direction == 0 {
            (
                (line.stops[0], line.from),
                (line.stops[line.stops.len() - 1], line.to),
            )
        } else {
            (
                (line.stops[line.stops.len() - 1], line.to),
                (line.stops[0], line.from),
            )
        };
        let position = lerp(origin.1, destination.1, bus.progress);
        let segments = (line.stops.len() - 1) as f64;
        let next_index = ((bus.progress * segments).floor() as usize + 1).min(line.stops.len() - 1);
        let next_stop_progress = next_index as f64 / segments;
        let next_stop_name = if bus.direction == 0 {
            line.stops[next_index]
        } else {
            line.stops[line.stops.len() - 1 - next_index]
        };
        let next_stop_at = lerp(origin.1, destination.1, next_stop_progress);
        let to_stop_m = distance_m(position, next_stop_at);
        let spacing = distance_m(line.from, line.to) / segments;
        let minutes_to_stop = (next_stop_progress - bus.progress).max(0.0) / bus.speed;
        let expected = recorded + (minutes_to_stop * 60.0).round() as i64;
        let hour = (recorded.rem_euclid(86_400)) / 3_600;
        let rush = if (7..10).contains(&hour) || (16..19).contains(&hour) {
            3.0
        } else if hour < 5 {
            -1.0
        } else {
            0.0
        };
        let delay = line.bias + rush + line.congestion * next_stop_progress + bus.own_delay;
        let scheduled = expected - (delay * 60.0).round() as i64;

        let mut row: Vec<String> = vec![
            crate::clean::format_datetime(recorded),
            bus.direction.to_string(),
            line.name.to_string(),
            origin.0.to_string(),
            format!("{:.6}", origin.1.0),
            format!("{:.6}", origin.1.1),
            destination.0.to_string(),
            format!("{:.6}", destination.1.0),
            format!("{:.6}", destination.1.1),
            bus.vehicle.clone(),
            format!("{:.6}", position.0),
            format!("{:.6}", position.1),
            next_stop_name.to_string(),
            proximity_text(to_stop_m, spacing),
            format!("{:.0}", to_stop_m),
            crate::clean::format_datetime(expected),
            service_day_time(scheduled),
        ];
        let mut delay_out = Some((expected - scheduled) as f64 / 60.0);
        if rng.chance(opts.missing_share) {
            // Which field is missing, weighted roughly as in the real feed: arrival times
            // most often (the pipeline then drops the row), then the next stop's details.
            let which = match rng.next_u64() % 8 {
                0 | 1 => 15,
                2 => 16,
                3 => 14,
                4 => 12,
                5 => 13,
                6 => 10,
                _ => 4,
            };
            row[which].clear();
            if which == 10 {
                row[11].clear();
            }
            if which == 15 || which == 16 {
                delay_out = None;
            }
        }
        let mut malformed = false;
        if rng.chance(opts.malformed_share) {
            malformed = true;
            match rng.next_u64() % 3 {
                // Cut short, as a partial write leaves a line.
                0 => row.truncate(9 + (rng.next_u64() % 5) as usize),
                1 => row[14] = "far".into(),
                _ => row[15] = "2017-13-45 99:00:00".into(),
            }
            // Keep the key so the dead letter can be traced to its bus.
            if row.len() <= VEHICLE_REF {
                row.push(bus.vehicle.clone());
            }
        }
        writer.write_record(&row)?;
        truth.push(TruthRow {
            vehicle: bus.vehicle.clone(),
            recorded_at: recorded,
            delay_minutes: if malformed { None } else { delay_out },
            malformed,
        });
    }
    writer.flush()?;
    Ok(truth)
}

/// Writes a generated feed to `path`.
pub fn generate_file(path: &Path, opts: &FeedOptions) -> anyhow::Result<Vec<TruthRow>> {
    let file = std::fs::File::create(path)
        .with_context(|| format!("creating the feed file {}", path.display()))?;
    generate(std::io::BufWriter::new(file), opts)
}

/// A scheduled time as the feed writes it: time of the service day, hours past 24 for the
/// early morning (a service day runs until about 3 am).
pub fn service_day_time(t: i64) -> String {
    let mut s = t.rem_euclid(86_400);
    if s < 3 * 3_600 {
        s += 86_400;
    }
    format!("{:02}:{:02}:{:02}", s / 3_600, (s / 60) % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clean::{Cleaned, Means, clean, parse_fields};

    #[test]
    fn generated_rows_parse_back_to_the_delays_they_were_made_with() {
        // From 23:50 for 33 minutes (4000 rows of 60 buses every 30 s): across midnight.
        let opts = FeedOptions {
            rows: 4_000,
            start: crate::clean::epoch_seconds(2017, 6, 1, 23, 50, 0),
            ..FeedOptions::default()
        };
        let mut bytes = Vec::new();
        let truth = generate(&mut bytes, &opts).unwrap();
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(bytes.as_slice());
        assert_eq!(
            reader.headers().unwrap().iter().collect::<Vec<_>>(),
            COLUMNS
        );
        let mut means = Means::default();
        let mut texts = std::collections::BTreeSet::new();
        let (mut past_midnight, mut missing, mut malformed) = (0, 0, 0);
        for (record, t) in reader.records().zip(&truth) {
            let fields: Vec<String> = record.unwrap().iter().map(String::from).collect();
            if fields.len() == 17 {
                texts.insert(fields[13].clone());
                past_midnight +=
                    usize::from(fields[16].starts_with("24:") || fields[16].starts_with("25:"));
                missing += usize::from(fields.iter().any(|f| f.is_empty()));
            }
            match parse_fields(&fields) {
                Err(_) => {
                    assert!(t.malformed, "{fields:?}");
                    malformed += 1;
                }
                Ok(parsed) => {
                    assert!(!t.malformed, "{fields:?}");
                    match (clean(parsed, &mut means), t.delay_minutes) {
                        (Cleaned::Row(row), Some(d)) => {
                            assert_eq!(row.delay_minutes, d, "{fields:?}");
                            assert_eq!(
                                (row.vehicle.as_str(), row.recorded_at),
                                (t.vehicle.as_str(), t.recorded_at)
                            );
                        }
                        (Cleaned::MissingArrivalTime, None) => {}
                        (other, d) => panic!("{other:?} for a row made with delay {d:?}"),
                    }
                }
            }
        }
        // Scheduled times after midnight are written 24:…, as the real feed does.
        assert!(
            past_midnight > 1_000,
            "{past_midnight} rows scheduled past midnight"
        );
        assert_eq!(
            service_day_time(crate::clean::epoch_seconds(2017, 6, 2, 0, 5, 0)),
            "24:05:00"
        );
        assert_eq!(
            service_day_time(crate::clean::epoch_seconds(2017, 6, 2, 3, 5, 0)),
            "03:05:00"
        );
        assert!(
            missing > 80 && missing < 250,
            "{missing} rows with a missing value"
        );
        assert!(
            malformed > 5 && malformed < 50,
            "{malformed} malformed rows"
        );
        for text in ["approaching", "at stop", "< 1 stop away"] {
            assert!(texts.contains(text), "{text:?} not in {texts:?}");
        }
        assert!(
            texts
                .iter()
                .any(|t| t.ends_with("miles away") || t.ends_with("stop away")),
            "{texts:?}"
        );
    }

    #[test]
    fn proximity_texts_follow_the_distance() {
        assert_eq!(proximity_text(10.0, 500.0), "at stop");
        assert_eq!(proximity_text(100.0, 500.0), "approaching");
        assert_eq!(proximity_text(300.0, 500.0), "< 1 stop away");
        assert_eq!(proximity_text(600.0, 500.0), "1 stop away");
        assert_eq!(proximity_text(1_200.0, 500.0), "2 stops away");
        assert_eq!(proximity_text(650.0, 1_000.0), "< 1 stop away");
        assert_eq!(proximity_text(900.0, 1_000.0), "1 stop away");
        assert_eq!(
            proximity_text(644.0 * 1.0 + 1_000.0, 2_000.0),
            "1.0 miles away"
        );
    }
}
