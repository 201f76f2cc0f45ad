//! Parsing and cleaning one feed row: the consumer's work in the original pipeline.
//!
//! A row is *malformed* when it does not have 17 fields, or a field that is present is not
//! what its column holds (a number, a timestamp): such rows go to the dead-letter topic.
//! A well-formed row without an expected or a scheduled arrival time is *dropped*, as the
//! original consumer did. Every other row is cleaned: a missing number takes the running
//! mean of its column, a missing string becomes empty, timestamps are split into numeric
//! parts, and `Delay` = expected − scheduled arrival, in minutes.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::feed::COLUMNS;

/// Why a row is malformed.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum RowError {
    /// The line is not one CSV record.
    #[error("not a CSV record: {0}")]
    Csv(String),
    /// Not 17 fields.
    #[error("expected {expected} fields, found {found}")]
    FieldCount {
        /// 17.
        expected: usize,
        /// What the line had.
        found: usize,
    },
    /// A present field that its column cannot hold.
    #[error("column {column}: {value:?} is not {wanted}")]
    Field {
        /// The column's name.
        column: &'static str,
        /// The field as read.
        value: String,
        /// What the column holds.
        wanted: &'static str,
    },
}

/// The numeric columns whose missing values take the column's running mean, in the order
/// of [`Means::columns`].
pub const NUMERIC_COLUMNS: [&str; 7] = [
    "OriginLat",
    "OriginLong",
    "DestinationLat",
    "DestinationLong",
    "VehicleLocation.Latitude",
    "VehicleLocation.Longitude",
    "DistanceFromStop",
];

/// Running count and sum per numeric column, kept in a state store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Means {
    /// (count, sum) per column of [`NUMERIC_COLUMNS`].
    pub columns: [(u64, f64); 7],
}

impl Means {
    /// The mean of column `i`, or 0 before any value was seen.
    pub fn mean(&self, i: usize) -> f64 {
        let (n, sum) = self.columns[i];
        if n == 0 { 0.0 } else { sum / n as f64 }
    }

    fn add(&mut self, i: usize, v: f64) {
        self.columns[i].0 += 1;
        self.columns[i].1 += v;
    }
}

/// A parsed, not yet cleaned row: `None` where the field was empty.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedRow {
    /// `RecordedAtTime`, seconds since 1970.
    pub recorded_at: Option<i64>,
    /// `DirectionRef` (0 or 1).
    pub direction: Option<i64>,
    /// Strings: line, origin, destination, vehicle, next stop, proximity text.
    pub line: String,
    /// `OriginName`.
    pub origin: String,
    /// `DestinationName`.
    pub destination: String,
    /// `VehicleRef`.
    pub vehicle: String,
    /// `NextStopPointName`.
    pub next_stop: String,
    /// `ArrivalProximityText`.
    pub proximity: String,
    /// The [`NUMERIC_COLUMNS`], in order.
    pub numbers: [Option<f64>; 7],
    /// `ExpectedArrivalTime`, seconds since 1970.
    pub expected: Option<i64>,
    /// `ScheduledArrivalTime`, seconds into the service day (may exceed 24 h).
    pub scheduled: Option<i64>,
}

/// A cleaned row with its features and delay: what goes to `bus-traffic-processed`, to
/// PostgreSQL and to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessedRow {
    /// `VehicleRef`.
    pub vehicle: String,
    /// `RecordedAtTime` as written in the feed.
    pub recorded_at_time: String,
    /// `RecordedAtTime`, seconds since 1970 (feed-local time).
    pub recorded_at: i64,
    /// Year of `RecordedAtTime`.
    pub recorded_year: i32,
    /// Month (1–12).
    pub recorded_month: u32,
    /// Day of month.
    pub recorded_day: u32,
    /// Hour (0–23).
    pub recorded_hour: u32,
    /// Minute.
    pub recorded_minute: u32,
    /// Second.
    pub recorded_second: u32,
    /// Day of week, 0 = Monday.
    pub recorded_weekday: u32,
    /// `DirectionRef` (0 when missing).
    pub direction: i64,
    /// `PublishedLineName`.
    pub line: String,
    /// `OriginName`.
    pub origin: String,
    /// `DestinationName`.
    pub destination: String,
    /// `OriginLat`.
    pub origin_lat: f64,
    /// `OriginLong`.
    pub origin_lon: f64,
    /// `DestinationLat`.
    pub destination_lat: f64,
    /// `DestinationLong`.
    pub destination_lon: f64,
    /// `VehicleLocation.Latitude`.
    pub latitude: f64,
    /// `VehicleLocation.Longitude`.
    pub longitude: f64,
    /// `NextStopPointName`.
    pub next_stop: String,
    /// `ArrivalProximityText`.
    pub proximity: String,
    /// `DistanceFromStop`, metres.
    pub distance_from_stop: f64,
    /// Hour of `ExpectedArrivalTime`.
    pub expected_hour: u32,
    /// Minute of `ExpectedArrivalTime`.
    pub expected_minute: u32,
    /// Second of `ExpectedArrivalTime`.
    pub expected_second: u32,
    /// Hour of the scheduled arrival, 0–23 (24:05:00 is hour 0).
    pub scheduled_hour: u32,
    /// Minute of the scheduled arrival.
    pub scheduled_minute: u32,
    /// Second of the scheduled arrival.
    pub scheduled_second: u32,
    /// Expected − scheduled arrival, minutes (negative = early).
    pub delay_minutes: f64,
}

/// What became of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cleaned {
    /// Cleaned, with its delay.
    Row(Box<ProcessedRow>),
    /// Well-formed but without an expected or scheduled arrival time: dropped.
    MissingArrivalTime,
}

fn field_error(column: usize, value: &str, wanted: &'static str) -> RowError {
    RowError::Field {
        column: COLUMNS[column],
        value: value.to_string(),
        wanted,
    }
}

fn optional<T>(
    fields: &[String],
    i: usize,
    wanted: &'static str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Option<T>, RowError> {
    let s = fields[i].trim();
    if s.is_empty() {
        return Ok(None);
    }
    parse(s).map(Some).ok_or_else(|| field_error(i, s, wanted))
}

/// Splits one CSV line (no header) into its fields.
pub fn split_line(line: &str) -> Result<Vec<String>, RowError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(line.as_bytes());
    let mut record = csv::StringRecord::new();
    match reader.read_record(&mut record) {
        Ok(true) => {}
        Ok(false) => return Err(RowError::Csv("empty line".into())),
        Err(e) => return Err(RowError::Csv(e.to_string())),
    }
    let fields: Vec<String> = record.iter().map(str::to_string).collect();
    // One line is one record: anything after the first record is a second one.
    let mut rest = csv::StringRecord::new();
    if matches!(reader.read_record(&mut rest), Ok(true)) {
        return Err(RowError::Csv("more than one record on the line".into()));
    }
    Ok(fields)
}

/// Parses the 17 fields of a row.
pub fn parse_fields(fields: &[String]) -> Result<ParsedRow, RowError> {
    if fields.len() != COLUMNS.len() {
        return Err(RowError::FieldCount {
            expected: COLUMNS.len(),
            found: fields.len(),
        });
    }
    let number = |s: &str| s.parse::<f64>().ok().filter(|v| v.is_finite());
    let mut numbers = [None; 7];
    for (slot, column) in numbers.iter_mut().zip([4, 5, 7, 8, 10, 11, 14]) {
        *slot = optional(fields, column, "a number", number)?;
    }
    let text = |i: usize| fields[i].trim().to_string();
    Ok(ParsedRow {
        recorded_at: optional(fields, 0, "a date and time", parse_datetime)?,
        direction: optional(fields, 1, "a direction (0 or 1)", |s| {
            s.parse::<i64>().ok().filter(|d| *d == 0 || *d == 1)
        })?,
        line: text(2),
        origin: text(3),
        destination: text(6),
        vehicle: text(9),
        next_stop: text(12),
        proximity: text(13),
        numbers,
        expected: optional(fields, 15, "a date and time", parse_datetime)?,
        scheduled: optional(fields, 16, "a time of day (HH:MM:SS)", parse_service_time)?,
    })
}

/// Parses a CSV line into a row.
pub fn parse_line(line: &str) -> Result<ParsedRow, RowError> {
    parse_fields(&split_line(line)?)
}

/// Cleans a parsed row: updates `means` with its numbers, fills the missing ones from them,
/// and computes the delay.
pub fn clean(row: ParsedRow, means: &mut Means) -> Cleaned {
    for (i, v) in row.numbers.iter().enumerate() {
        if let Some(v) = v {
            means.add(i, *v);
        }
    }
    let (Some(expected), Some(scheduled)) = (row.expected, row.scheduled) else {
        return Cleaned::MissingArrivalTime;
    };
    let n: Vec<f64> = (0..7)
        .map(|i| row.numbers[i].unwrap_or_else(|| means.mean(i)))
        .collect();
    // A row without RecordedAtTime is placed at its expected arrival: the closest time known.
    let recorded_at = row.recorded_at.unwrap_or(expected);
    let scheduled_at = scheduled_datetime(expected, scheduled);
    let r = civil(recorded_at);
    let e = civil(expected);
    let s = civil(scheduled_at);
    Cleaned::Row(Box::new(ProcessedRow {
        vehicle: row.vehicle,
        recorded_at_time: format_datetime(recorded_at),
        recorded_at,
        recorded_year: r.year,
        recorded_month: r.month,
        recorded_day: r.day,
        recorded_hour: r.hour,
        recorded_minute: r.minute,
        recorded_second: r.second,
        recorded_weekday: r.weekday,
        direction: row.direction.unwrap_or(0),
        line: row.line,
        origin: row.origin,
        destination: row.destination,
        origin_lat: n[0],
        origin_lon: n[1],
        destination_lat: n[2],
        destination_lon: n[3],
        latitude: n[4],
        longitude: n[5],
        next_stop: row.next_stop,
        proximity: row.proximity,
        distance_from_stop: n[6],
        expected_hour: e.hour,
        expected_minute: e.minute,
        expected_second: e.second,
        scheduled_hour: s.hour,
        scheduled_minute: s.minute,
        scheduled_second: s.second,
        delay_minutes: (expected - scheduled_at) as f64 / 60.0,
    }))
}

/// The scheduled arrival as a date and time: the service-day time (which may be past 24 h)
/// on the day before, of, or after the expected arrival, whichever is closest to it. So
/// `24:05:00` against an expected `2017-06-02 00:06:00` is `2017-06-02 00:05:00` (1 min
/// late), and `23:58:00` against `2017-06-02 00:01:00` is the evening before (3 min late).
pub fn scheduled_datetime(expected: i64, service_time: i64) -> i64 {
    let midnight = expected - expected.rem_euclid(86_400);
    [-86_400, 0, 86_400]
        .into_iter()
        .map(|d| midnight + d + service_time)
        .min_by_key(|t| (t - expected).abs())
        .expect("three candidates")
}

/// Parts of a date and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    /// Year.
    pub year: i32,
    /// Month, 1–12.
    pub month: u32,
    /// Day, 1–31.
    pub day: u32,
    /// Hour, 0–23.
    pub hour: u32,
    /// Minute.
    pub minute: u32,
    /// Second.
    pub second: u32,
    /// Day of week, 0 = Monday.
    pub weekday: u32,
}

/// Days since 1970-01-01 of a date (proleptic Gregorian; Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds since 1970 of a date and time (no time zone: the feed's local time).
pub fn epoch_seconds(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
    days_from_civil(y as i64, mo as i64, d as i64) * 86_400
        + h as i64 * 3_600
        + mi as i64 * 60
        + s as i64
}

/// The parts of seconds since 1970.
pub fn civil(t: i64) -> Civil {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
    Civil {
        year,
        month,
        day,
        hour: (secs / 3_600) as u32,
        minute: ((secs / 60) % 60) as u32,
        second: (secs % 60) as u32,
        // 1970-01-01 was a Thursday (3).
        weekday: (days + 3).rem_euclid(7) as u32,
    }
}

/// `YYYY-MM-DD HH:MM:SS`.
pub fn format_datetime(t: i64) -> String {
    let c = civil(t);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

fn parse_hms(s: &str, max_hour: u32) -> Option<(u32, u32, u32)> {
    let mut parts = s.split(':');
    let h: u32 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let sec: u32 = match parts.next() {
        // Fractions of a second appear in some dumps: dropped.
        Some(p) => p.split('.').next()?.parse().ok()?,
        None => 0,
    };
    (parts.next().is_none() && h <= max_hour && m < 60 && sec < 60).then_some((h, m, sec))
}

/// Parses `YYYY-MM-DD HH:MM:SS` (or with a `T`) into seconds since 1970.
pub fn parse_datetime(s: &str) -> Option<i64> {
    let (date, time) = s.split_once([' ', 'T'])?;
    let mut d = date.split('-');
    let y: i32 = d.next()?.parse().ok()?;
    let mo: u32 = d.next()?.parse().ok()?;
    let day: u32 = d.next()?.parse().ok()?;
    if d.next().is_some() || !(1..=12).contains(&mo) || day == 0 || day > days_in_month(y, mo) {
        return None;
    }
    let (h, mi, sec) = parse_hms(time.trim(), 23)?;
    Some(epoch_seconds(y, mo, day, h, mi, sec))
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// Parses a service-day time `HH:MM:SS` (hours up to 47) into seconds.
pub fn parse_service_time(s: &str) -> Option<i64> {
    let (h, m, sec) = parse_hms(s, 47)?;
    Some(h as i64 * 3_600 + m as i64 * 60 + sec as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        for t in [0, 951_782_400, 1_496_357_014, 4_102_444_799, -86_400] {
            assert_eq!(parse_datetime(&format_datetime(t)), Some(t), "{t}");
        }
        assert_eq!(format_datetime(1_496_275_200), "2017-06-01 00:00:00");
        // 2017-06-01 was a Thursday.
        assert_eq!(civil(1_496_275_200).weekday, 3);
        assert_eq!(parse_datetime("2017-02-29 00:00:00"), None);
        assert_eq!(parse_datetime("2017-06-01 24:00:00"), None);
    }

    #[test]
    fn scheduled_times_wrap_around_midnight() {
        let expected = parse_datetime("2017-06-02 00:06:00").unwrap();
        let s = scheduled_datetime(expected, parse_service_time("24:05:00").unwrap());
        assert_eq!(format_datetime(s), "2017-06-02 00:05:00");
        let s = scheduled_datetime(expected, parse_service_time("23:58:00").unwrap());
        assert_eq!(format_datetime(s), "2017-06-01 23:58:00");
        let expected = parse_datetime("2017-06-01 23:59:00").unwrap();
        let s = scheduled_datetime(expected, parse_service_time("00:02:00").unwrap());
        assert_eq!(format_datetime(s), "2017-06-02 00:02:00");
    }
}
