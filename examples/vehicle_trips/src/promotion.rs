//! Staging and common: the cleaning the streaming job applies to each landed range before it
//! writes the range to `staging/`, the summaries it writes to `common/` when a trip arrives,
//! and the daily promotion (the seed's Airflow DAG), a bounded run over one day that
//! consolidates what the streaming job wrote that day.
//!
//! The streaming files are each written once: a staging file has the name of the landing file
//! it cleans (partition and offset range, create-if-absent), a trip summary is named by its
//! trip, a vehicle's summary by the vehicle and day (both overwritten, with the same content,
//! by a replay). The daily promotion first stages any landing file of the day that has no
//! staging file yet (a crash between the two writes), then writes the day's staging files as
//! one file, the day's trip summaries as one file, and the day's per-vehicle summary from
//! those, all with fixed names: running a day again, by hand or after a failure, replaces them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::Context;
use arrow_array::builder::{
    Float64Builder, Int32Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use serde::{Deserialize, Serialize};

use crate::lake::{COMMON, LANDING, Lake, LandingRow, STAGING, from_parquet, to_parquet_batches};
use crate::model::{DAY_MS, TripState, TripStatus, VehicleEvent, format_date};
use crate::roads::haversine_m;
use crate::topology::POSITIONS;

/// Staging's table of positions, one file per landed range (written by the streaming job).
pub const STAGED_POSITIONS: &str = "vehicle_positions";
/// Staging's positions, one file per day (written by the daily promotion).
pub const STAGED_POSITIONS_DAILY: &str = "vehicle_positions_daily";
/// Common's table of trips, one file per trip that arrived (written by the streaming job).
pub const TRIP_SUMMARIES: &str = "trip_summaries";
/// Common's trips, one file per day (written by the daily promotion).
pub const TRIP_SUMMARIES_DAILY: &str = "trip_summaries_daily";
/// Common's vehicles per day, one file per vehicle and day (written by the streaming job).
pub const VEHICLE_SUMMARIES: &str = "vehicle_summaries";
/// Common's vehicles per day, one file per day (written by the daily promotion).
pub const VEHICLE_DAILY: &str = "vehicle_daily";
/// Where each promoted day's report is kept.
pub const PROMOTIONS: &str = "_promotions";

/// What a promotion did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromotionReport {
    /// The day, `YYYY-MM-DD`.
    pub day: String,
    /// Landing files of the day.
    pub landing_files: usize,
    /// Landing rows in them.
    pub landing_rows: usize,
    /// Landing files that had no staging file yet, staged by the promotion.
    pub staged_by_promotion: usize,
    /// Staging files of the day (one per landing file), consolidated.
    pub staging_files: usize,
    /// Rows in them: the day's cleaned reports.
    pub staged: usize,
    /// Landing rows not staged (malformed, impossible, repeated or late).
    pub dropped: usize,
    /// Trip summaries of the day (trips that arrived that day), consolidated.
    pub trips: usize,
    /// Of which arrived (all: a summary is written at the arrival).
    pub arrived: usize,
    /// Vehicles summarised.
    pub vehicles: usize,
}

/// What cleaning dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanCounts {
    /// Rows whose value was not a vehicle report.
    pub malformed: usize,
    /// Reports with impossible values (coordinates, distances).
    pub invalid: usize,
    /// Reports at or before a report of the same trip already staged (retried sends, late).
    pub duplicates: usize,
}

/// The latest staged report of a trip: what the next one's speed is computed from, and
/// what a repeated or late report is recognised by.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LastReport {
    /// Its time.
    pub ts: i64,
    /// Where.
    pub lat: f64,
    /// Where.
    pub lng: f64,
}

/// A staged report: a [`VehicleEvent`] with where it came from and its computed speed.
#[derive(Debug, Clone, PartialEq)]
pub struct StagedRow {
    /// The report.
    pub event: VehicleEvent,
    /// Speed from the previous report of the trip that day, km/h.
    pub speed_kmh: Option<f64>,
    /// Kafka partition.
    pub partition: i32,
    /// Kafka offset.
    pub offset: i64,
}

/// Whether a report's values are possible (finite coordinates on the globe, no negative
/// speed or distance, ids given): what staging keeps and the trip state machine takes.
pub fn valid(e: &VehicleEvent) -> bool {
    let finite = [e.lat, e.lng, e.speed_kmh, e.odometer_m, e.route_m]
        .iter()
        .all(|x| x.is_finite());
    finite
        && (-90.0..=90.0).contains(&e.lat)
        && (-180.0..=180.0).contains(&e.lng)
        && e.speed_kmh >= 0.0
        && e.odometer_m >= 0.0
        && e.route_m > 0.0
        && !e.trip_id.is_empty()
        && !e.vehicle_id.is_empty()
}

fn ts_field(name: &str, nullable: bool) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        nullable,
    )
}

fn ts_builder() -> TimestampMillisecondBuilder {
    TimestampMillisecondBuilder::new().with_timezone("UTC")
}

/// The schema of staging's positions.
pub fn staging_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("vehicle_id", DataType::Utf8, false),
        Field::new("vehicle_name", DataType::Utf8, false),
        Field::new("trip_id", DataType::Utf8, false),
        Field::new("origin", DataType::Utf8, false),
        Field::new("destination", DataType::Utf8, false),
        ts_field("ts", false),
        Field::new("lat", DataType::Float64, false),
        Field::new("lng", DataType::Float64, false),
        Field::new("reported_speed_kmh", DataType::Float64, false),
        Field::new("speed_kmh", DataType::Float64, true),
        Field::new("odometer_m", DataType::Float64, false),
        Field::new("route_m", DataType::Float64, false),
        Field::new("state", DataType::Utf8, false),
        Field::new("kafka_partition", DataType::Int32, false),
        Field::new("kafka_offset", DataType::Int64, false),
    ]))
}

/// Staged rows as a record batch.
pub fn staging_batch(rows: &[&StagedRow]) -> anyhow::Result<RecordBatch> {
    let mut s: Vec<StringBuilder> = (0..5).map(|_| StringBuilder::new()).collect();
    let mut ts = ts_builder();
    let mut f: Vec<Float64Builder> = (0..6).map(|_| Float64Builder::new()).collect();
    let mut state = StringBuilder::new();
    let mut partition = Int32Builder::new();
    let mut offset = Int64Builder::new();
    for r in rows {
        let e = &r.event;
        for (b, v) in s.iter_mut().zip([
            &e.vehicle_id,
            &e.vehicle_name,
            &e.trip_id,
            &e.origin,
            &e.destination,
        ]) {
            b.append_value(v);
        }
        ts.append_value(e.ts);
        f[0].append_value(e.lat);
        f[1].append_value(e.lng);
        f[2].append_value(e.speed_kmh);
        f[3].append_option(r.speed_kmh);
        f[4].append_value(e.odometer_m);
        f[5].append_value(e.route_m);
        state.append_value(e.state.as_str());
        partition.append_value(r.partition);
        offset.append_value(r.offset);
    }
    let mut columns: Vec<ArrayRef> = Vec::new();
    for mut b in s {
        columns.push(Arc::new(b.finish()));
    }
    columns.push(Arc::new(ts.finish()));
    for mut b in f {
        columns.push(Arc::new(b.finish()));
    }
    columns.push(Arc::new(state.finish()));
    columns.push(Arc::new(partition.finish()));
    columns.push(Arc::new(offset.finish()));
    Ok(RecordBatch::try_new(staging_schema(), columns)?)
}

/// The schema of common's trip summaries.
pub fn trips_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("trip_id", DataType::Utf8, false),
        Field::new("vehicle_id", DataType::Utf8, false),
        Field::new("vehicle_name", DataType::Utf8, false),
        Field::new("origin", DataType::Utf8, false),
        Field::new("destination", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        ts_field("started_at", false),
        ts_field("arrived_at", true),
        Field::new("reports", DataType::Int64, false),
        Field::new("distance_m", DataType::Float64, false),
        Field::new("duration_s", DataType::Float64, false),
        Field::new("moving_speed_kmh", DataType::Float64, false),
        Field::new("max_speed_kmh", DataType::Float64, false),
        Field::new("stops", DataType::Int32, false),
        Field::new("stopped_s", DataType::Float64, false),
    ]))
}

/// Trip summaries as a record batch.
pub fn trips_batch(trips: &[TripState]) -> anyhow::Result<RecordBatch> {
    let mut s: Vec<StringBuilder> = (0..6).map(|_| StringBuilder::new()).collect();
    let (mut started, mut arrived) = (ts_builder(), ts_builder());
    let mut reports = Int64Builder::new();
    let mut f: Vec<Float64Builder> = (0..4).map(|_| Float64Builder::new()).collect();
    let mut stops = Int32Builder::new();
    let mut stopped = Float64Builder::new();
    for t in trips {
        for (b, v) in s.iter_mut().zip([
            t.trip_id.as_str(),
            &t.vehicle_id,
            &t.vehicle_name,
            &t.origin,
            &t.destination,
            t.status.as_str(),
        ]) {
            b.append_value(v);
        }
        started.append_value(t.started_at);
        arrived.append_option(t.arrived_at);
        reports.append_value(t.reports as i64);
        f[0].append_value(t.distance_m);
        f[1].append_value((t.updated_at - t.started_at) as f64 / 1000.0);
        f[2].append_value(t.moving_speed_kmh());
        f[3].append_value(t.max_speed_kmh);
        stops.append_value(t.stops as i32);
        stopped.append_value(t.stopped_ms as f64 / 1000.0);
    }
    let mut columns: Vec<ArrayRef> = Vec::new();
    for mut b in s {
        columns.push(Arc::new(b.finish()));
    }
    columns.push(Arc::new(started.finish()));
    columns.push(Arc::new(arrived.finish()));
    columns.push(Arc::new(reports.finish()));
    for mut b in f {
        columns.push(Arc::new(b.finish()));
    }
    columns.push(Arc::new(stops.finish()));
    columns.push(Arc::new(stopped.finish()));
    Ok(RecordBatch::try_new(trips_schema(), columns)?)
}

/// One vehicle's day.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VehicleDay {
    /// The vehicle.
    pub vehicle_id: String,
    /// Its name.
    pub vehicle_name: String,
    /// Trips it drove (in part) that day.
    pub trips: i64,
    /// Of which arrived.
    pub arrived: i64,
    /// Metres.
    pub distance_m: f64,
    /// Seconds on trips, stops included.
    pub on_trips_s: f64,
    /// Highest speed.
    pub max_speed_kmh: f64,
    /// Stops.
    pub stops: i32,
}

/// The schema of common's vehicle days.
pub fn vehicles_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("date", DataType::Utf8, false),
        Field::new("vehicle_id", DataType::Utf8, false),
        Field::new("vehicle_name", DataType::Utf8, false),
        Field::new("trips", DataType::Int64, false),
        Field::new("arrived", DataType::Int64, false),
        Field::new("distance_m", DataType::Float64, false),
        Field::new("on_trips_s", DataType::Float64, false),
        Field::new("max_speed_kmh", DataType::Float64, false),
        Field::new("stops", DataType::Int32, false),
    ]))
}

/// Vehicle days as a record batch.
pub fn vehicles_batch(day: &str, vehicles: &[VehicleDay]) -> anyhow::Result<RecordBatch> {
    let mut s: Vec<StringBuilder> = (0..3).map(|_| StringBuilder::new()).collect();
    let mut i: Vec<Int64Builder> = (0..2).map(|_| Int64Builder::new()).collect();
    let mut f: Vec<Float64Builder> = (0..3).map(|_| Float64Builder::new()).collect();
    let mut stops = Int32Builder::new();
    for v in vehicles {
        s[0].append_value(day);
        s[1].append_value(&v.vehicle_id);
        s[2].append_value(&v.vehicle_name);
        i[0].append_value(v.trips);
        i[1].append_value(v.arrived);
        f[0].append_value(v.distance_m);
        f[1].append_value(v.on_trips_s);
        f[2].append_value(v.max_speed_kmh);
        stops.append_value(v.stops);
    }
    let mut columns: Vec<ArrayRef> = Vec::new();
    for mut b in s {
        columns.push(Arc::new(b.finish()));
    }
    for mut b in i {
        columns.push(Arc::new(b.finish()));
    }
    for mut b in f {
        columns.push(Arc::new(b.finish()));
    }
    columns.push(Arc::new(stops.finish()));
    Ok(RecordBatch::try_new(vehicles_schema(), columns)?)
}

fn parse_valid(r: &LandingRow) -> Result<VehicleEvent, bool> {
    let event = r
        .value
        .as_deref()
        .and_then(|v| serde_json::from_str::<VehicleEvent>(v).ok())
        .ok_or(false)?;
    if valid(&event) { Ok(event) } else { Err(true) }
}

/// Cleans landing rows: parsed, valid, by trip and time, a report at or before the latest
/// report of its trip in `last` dropped (a retried send, or late), with speeds computed from
/// the trip's previous report. `last` is updated with the rows kept.
pub fn clean_with(
    rows: &[LandingRow],
    counts: &mut CleanCounts,
    last: &mut HashMap<String, LastReport>,
) -> Vec<StagedRow> {
    let mut parsed = Vec::new();
    for r in rows {
        match parse_valid(r) {
            Ok(event) => parsed.push(StagedRow {
                event,
                speed_kmh: None,
                partition: r.partition,
                offset: r.offset,
            }),
            Err(false) => counts.malformed += 1,
            Err(true) => counts.invalid += 1,
        }
    }
    parsed.sort_by(|a, b| {
        (&a.event.trip_id, a.event.ts, a.partition, a.offset).cmp(&(
            &b.event.trip_id,
            b.event.ts,
            b.partition,
            b.offset,
        ))
    });
    let mut staged = Vec::with_capacity(parsed.len());
    for mut r in parsed {
        let e = &r.event;
        if let Some(prev) = last.get(&e.trip_id) {
            if e.ts <= prev.ts {
                counts.duplicates += 1;
                continue;
            }
            let dt = (e.ts - prev.ts) as f64 / 1000.0;
            r.speed_kmh = Some(haversine_m(prev.lat, prev.lng, e.lat, e.lng) / dt * 3.6);
        }
        last.insert(
            e.trip_id.clone(),
            LastReport {
                ts: e.ts,
                lat: e.lat,
                lng: e.lng,
            },
        );
        staged.push(r);
    }
    staged
}

/// Cleans landing rows on their own (no earlier report of any trip): see [`clean_with`].
pub fn clean(rows: &[LandingRow], counts: &mut CleanCounts) -> Vec<StagedRow> {
    clean_with(rows, counts, &mut HashMap::new())
}

/// What a row already staged (in an earlier run) leaves in `last`: the latest valid report of
/// each trip. (Order does not matter: the latest wins.)
pub fn note_staged(row: &LandingRow, last: &mut HashMap<String, LastReport>) {
    if let Ok(e) = parse_valid(row) {
        let newer = last.get(&e.trip_id).is_none_or(|p| e.ts > p.ts);
        if newer {
            last.insert(
                e.trip_id.clone(),
                LastReport {
                    ts: e.ts,
                    lat: e.lat,
                    lng: e.lng,
                },
            );
        }
    }
}

/// The staging file of a landing file: the same hour and name
/// (`landing/vehicle-positions/date=…/hour=…/part-p…` → `staging/vehicle_positions/…`).
pub fn staging_path(landing_path: &str) -> Option<String> {
    let rest = landing_path.strip_prefix(&format!("{LANDING}/{POSITIONS}/"))?;
    Some(format!("{STAGING}/{STAGED_POSITIONS}/{rest}"))
}

/// Writes the staging file of the landing file `landing_path` holding `rows`, cleaned with
/// `last`, unless it is there. Returns whether it wrote it.
pub fn stage(
    lake: &Lake,
    landing_path: &str,
    rows: &[LandingRow],
    counts: &mut CleanCounts,
    last: &mut HashMap<String, LastReport>,
) -> anyhow::Result<bool> {
    let path = staging_path(landing_path)
        .with_context(|| format!("{landing_path} is not a landing file of {POSITIONS}"))?;
    let staged = clean_with(rows, counts, last);
    let refs: Vec<&StagedRow> = staged.iter().collect();
    lake.create(&path, to_parquet_batches(&[staging_batch(&refs)?])?)
}

/// Trip summaries: each trip's reports through the trip state machine.
pub fn summarise_trips(staged: &[StagedRow]) -> Vec<TripState> {
    let mut trips: BTreeMap<&str, TripState> = BTreeMap::new();
    for r in staged {
        match trips.get_mut(r.event.trip_id.as_str()) {
            Some(s) => {
                s.apply(&r.event);
            }
            None => {
                trips.insert(&r.event.trip_id, TripState::start(&r.event).0);
            }
        }
    }
    trips.into_values().collect()
}

impl VehicleDay {
    /// Adds a trip.
    pub fn add(&mut self, t: &TripState) {
        if self.vehicle_id.is_empty() {
            self.vehicle_id = t.vehicle_id.clone();
            self.vehicle_name = t.vehicle_name.clone();
        }
        self.trips += 1;
        self.arrived += i64::from(t.status == TripStatus::Arrived);
        self.distance_m += t.distance_m;
        self.on_trips_s += (t.updated_at - t.started_at) as f64 / 1000.0;
        self.max_speed_kmh = self.max_speed_kmh.max(t.max_speed_kmh);
        self.stops += t.stops as i32;
    }
}

/// Vehicle days from trip summaries.
pub fn summarise_vehicles(trips: &[TripState]) -> Vec<VehicleDay> {
    let mut by: BTreeMap<&str, VehicleDay> = BTreeMap::new();
    for t in trips {
        by.entry(&t.vehicle_id).or_default().add(t);
    }
    by.into_values().collect()
}

/// Only letters, digits, `-` and `_` of an id, for a file name.
fn file_safe(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The day (`YYYY-MM-DD`) a trip's summary belongs to: the day it arrived (or was last
/// updated).
pub fn trip_day(t: &TripState) -> String {
    format_date(t.arrived_at.unwrap_or(t.updated_at).div_euclid(DAY_MS))
}

/// `common/trip_summaries/date=…/trip-<trip>.parquet`.
pub fn trip_summary_path(t: &TripState) -> String {
    format!(
        "{COMMON}/{TRIP_SUMMARIES}/date={}/trip-{}.parquet",
        trip_day(t),
        file_safe(&t.trip_id)
    )
}

/// `common/vehicle_summaries/date=…/vehicle-<vehicle>.parquet`.
pub fn vehicle_summary_path(date: &str, vehicle_id: &str) -> String {
    format!(
        "{COMMON}/{VEHICLE_SUMMARIES}/date={date}/vehicle-{}.parquet",
        file_safe(vehicle_id)
    )
}

/// Writes a trip's summary (replacing one of the same trip: a replay writes the same).
pub fn write_trip_summary(lake: &Lake, t: &TripState) -> anyhow::Result<()> {
    lake.put(
        &trip_summary_path(t),
        to_parquet_batches(&[trips_batch(std::slice::from_ref(t))?])?,
    )
}

/// Writes a vehicle's day so far (replacing the earlier one of the same vehicle and day).
pub fn write_vehicle_summary(lake: &Lake, date: &str, v: &VehicleDay) -> anyhow::Result<()> {
    lake.put(
        &vehicle_summary_path(date, &v.vehicle_id),
        to_parquet_batches(&[vehicles_batch(date, std::slice::from_ref(v))?])?,
    )
}

/// The Parquet files under `relative`, read, in file-name order.
pub fn read_batches(lake: &Lake, relative: &str) -> anyhow::Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    for f in lake.list(relative)? {
        if f.ends_with(".parquet") {
            out.extend(from_parquet(lake.get(&f)?)?);
        }
    }
    Ok(out)
}

/// The trips of trip-summary batches (the columns the files hold; position, speedometer and
/// ETA fields are NaN or `None`).
pub fn trip_rows(batches: &[RecordBatch]) -> anyhow::Result<Vec<TripState>> {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampMillisecondType};
    let mut out = Vec::new();
    for b in batches {
        let col = |name: &str| {
            b.column_by_name(name)
                .with_context(|| format!("a trip summary without column {name}"))
        };
        let s = |name: &str| -> anyhow::Result<arrow_array::StringArray> {
            Ok(col(name)?
                .as_string_opt::<i32>()
                .context("a string")?
                .clone())
        };
        let f = |name: &str| -> anyhow::Result<arrow_array::Float64Array> {
            Ok(col(name)?
                .as_primitive_opt::<Float64Type>()
                .context("a float")?
                .clone())
        };
        let ts = |name: &str| -> anyhow::Result<arrow_array::TimestampMillisecondArray> {
            Ok(col(name)?
                .as_primitive_opt::<TimestampMillisecondType>()
                .context("a timestamp")?
                .clone())
        };
        let (trip, vehicle, name, origin, destination, status) = (
            s("trip_id")?,
            s("vehicle_id")?,
            s("vehicle_name")?,
            s("origin")?,
            s("destination")?,
            s("status")?,
        );
        let (started, arrived) = (ts("started_at")?, ts("arrived_at")?);
        let reports = col("reports")?
            .as_primitive_opt::<Int64Type>()
            .context("reports")?
            .clone();
        let stops = col("stops")?
            .as_primitive_opt::<Int32Type>()
            .context("stops")?
            .clone();
        let (distance, duration, max_speed, stopped) = (
            f("distance_m")?,
            f("duration_s")?,
            f("max_speed_kmh")?,
            f("stopped_s")?,
        );
        for i in 0..b.num_rows() {
            let status = [
                TripStatus::Driving,
                TripStatus::Stopped,
                TripStatus::Arrived,
            ]
            .into_iter()
            .find(|s| s.as_str() == status.value(i))
            .with_context(|| format!("trip status {:?}", status.value(i)))?;
            let t = TripState {
                trip_id: trip.value(i).to_string(),
                vehicle_id: vehicle.value(i).to_string(),
                vehicle_name: name.value(i).to_string(),
                origin: origin.value(i).to_string(),
                destination: destination.value(i).to_string(),
                status,
                started_at: started.value(i),
                updated_at: started.value(i) + (duration.value(i) * 1000.0).round() as i64,
                lat: f64::NAN,
                lng: f64::NAN,
                odometer_m: f64::NAN,
                route_m: f64::NAN,
                distance_m: distance.value(i),
                speed_kmh: f64::NAN,
                max_speed_kmh: max_speed.value(i),
                stops: stops.value(i) as u32,
                stopped_ms: (stopped.value(i) * 1000.0).round() as i64,
                still_since: None,
                arrived_at: (!arrived.is_null(i)).then(|| arrived.value(i)),
                eta: None,
                reports: reports.value(i) as u64,
                ignored: 0,
            };
            out.push(t);
        }
    }
    Ok(out)
}

/// Promotes day `day` (days since the epoch), the bounded daily run: stages the day's landing
/// files that have no staging file yet, writes the day's staging files as
/// `staging/vehicle_positions_daily/date=…/part-0.parquet`, its trip summaries as
/// `common/trip_summaries_daily/date=…/part-0.parquet` and the per-vehicle summary of those
/// trips as `common/vehicle_daily/date=…/part-0.parquet`. Returns what it did; the report is
/// also written to `common/_promotions/date=YYYY-MM-DD.json`.
pub fn promote(lake: &Lake, day: i64) -> anyhow::Result<PromotionReport> {
    let date = format_date(day);
    let mut report = PromotionReport {
        day: date.clone(),
        landing_files: 0,
        landing_rows: 0,
        staged_by_promotion: 0,
        staging_files: 0,
        staged: 0,
        dropped: 0,
        trips: 0,
        arrived: 0,
        vehicles: 0,
    };
    // Landing → staging for what the streaming job did not stage (cleaned file by file).
    let staging_dir = format!("{STAGING}/{STAGED_POSITIONS}/date={date}");
    let staged_files: std::collections::HashSet<String> =
        lake.list(&staging_dir)?.into_iter().collect();
    for f in lake.list(&format!("{LANDING}/{POSITIONS}/date={date}"))? {
        if !f.ends_with(".parquet") {
            continue;
        }
        let mut rows = Vec::new();
        for b in from_parquet(lake.get(&f)?)? {
            rows.extend(crate::lake::landing_rows(&b)?);
        }
        report.landing_files += 1;
        report.landing_rows += rows.len();
        let twin = staging_path(&f).context("a landing file")?;
        if !staged_files.contains(&twin)
            && stage(
                lake,
                &f,
                &rows,
                &mut CleanCounts::default(),
                &mut HashMap::new(),
            )?
        {
            report.staged_by_promotion += 1;
        }
    }

    // The day's staging files as one.
    let staging = read_batches(lake, &staging_dir)?;
    report.staging_files = lake
        .list(&staging_dir)?
        .iter()
        .filter(|f| f.ends_with(".parquet"))
        .count();
    report.staged = staging.iter().map(|b| b.num_rows()).sum();
    report.dropped = report.landing_rows.saturating_sub(report.staged);
    let staging = if staging.is_empty() {
        vec![staging_batch(&[])?]
    } else {
        staging
    };
    lake.put(
        &format!("{STAGING}/{STAGED_POSITIONS_DAILY}/date={date}/part-0.parquet"),
        to_parquet_batches(&staging)?,
    )?;

    // The day's trips as one, and its vehicles from them.
    let trip_batches = read_batches(lake, &format!("{COMMON}/{TRIP_SUMMARIES}/date={date}"))?;
    let trips = trip_rows(&trip_batches)?;
    report.trips = trips.len();
    report.arrived = trips
        .iter()
        .filter(|t| t.status == TripStatus::Arrived)
        .count();
    let vehicles = summarise_vehicles(&trips);
    report.vehicles = vehicles.len();
    let trip_batches = if trip_batches.is_empty() {
        vec![trips_batch(&[])?]
    } else {
        trip_batches
    };
    lake.put(
        &format!("{COMMON}/{TRIP_SUMMARIES_DAILY}/date={date}/part-0.parquet"),
        to_parquet_batches(&trip_batches)?,
    )?;
    lake.put(
        &format!("{COMMON}/{VEHICLE_DAILY}/date={date}/part-0.parquet"),
        to_parquet_batches(&[vehicles_batch(&date, &vehicles)?])?,
    )?;
    lake.put(
        &format!("{COMMON}/{PROMOTIONS}/date={date}.json"),
        serde_json::to_vec_pretty(&report)?.into(),
    )?;
    Ok(report)
}

/// The report of an earlier promotion of `day`, if there is one.
pub fn promoted(lake: &Lake, day: i64) -> anyhow::Result<Option<PromotionReport>> {
    let path = format!("{COMMON}/{PROMOTIONS}/date={}.json", format_date(day));
    if !lake.exists(&path)? {
        return Ok(None);
    }
    let bytes = lake.get(&path)?;
    Ok(Some(
        serde_json::from_slice(&bytes).context("reading a promotion report")?,
    ))
}
