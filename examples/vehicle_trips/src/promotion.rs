//! The daily promotion (the seed's Airflow DAG): a bounded run over one day of the landing
//! zone that writes the day cleaned and typed to `staging/` and summarised per trip and per
//! vehicle to `common/`, through the same trip state machine as the streaming job.
//!
//! A run replaces what an earlier run of the same day wrote (its files have fixed names), so
//! running a day again, by hand or after a failure, leaves one copy.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use anyhow::Context;
use arrow_array::builder::{
    Float64Builder, Int32Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use serde::{Deserialize, Serialize};

use crate::lake::{COMMON, Lake, STAGING, hour_partition, to_parquet};
use crate::model::{DAY_MS, HOUR_MS, TripState, TripStatus, VehicleEvent, format_date};
use crate::roads::haversine_m;
use crate::topology::POSITIONS;

/// Staging's table of positions.
pub const STAGED_POSITIONS: &str = "vehicle_positions";
/// Common's table of trips.
pub const TRIP_SUMMARIES: &str = "trip_summaries";
/// Common's table of vehicles per day.
pub const VEHICLE_DAILY: &str = "vehicle_daily";
/// Where each promoted day's report is kept.
pub const PROMOTIONS: &str = "_promotions";

/// What a promotion did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromotionReport {
    /// The day, `YYYY-MM-DD`.
    pub day: String,
    /// Landing rows read.
    pub landing_rows: usize,
    /// Rows whose value was not a vehicle report.
    pub malformed: usize,
    /// Reports with impossible values (coordinates, distances).
    pub invalid: usize,
    /// Reports seen before (same trip and time).
    pub duplicates: usize,
    /// Rows written to staging.
    pub staged: usize,
    /// Files written to staging.
    pub staging_files: usize,
    /// Trips summarised.
    pub trips: usize,
    /// Trips that arrived.
    pub arrived: usize,
    /// Vehicles summarised.
    pub vehicles: usize,
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

fn valid(e: &VehicleEvent) -> bool {
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

fn staging_batch(rows: &[&StagedRow]) -> anyhow::Result<RecordBatch> {
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

fn trips_batch(trips: &[TripState]) -> anyhow::Result<RecordBatch> {
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
#[derive(Debug, Clone, Default, PartialEq)]
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

fn vehicles_batch(day: &str, vehicles: &[VehicleDay]) -> anyhow::Result<RecordBatch> {
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

/// Cleans one day's landing rows: parsed, valid, each (trip, time) once, by trip and time,
/// with speeds computed between consecutive reports of a trip.
pub fn clean(rows: &[crate::lake::LandingRow], report: &mut PromotionReport) -> Vec<StagedRow> {
    let mut seen = HashSet::new();
    let mut staged = Vec::new();
    for r in rows {
        let Some(event) = r
            .value
            .as_deref()
            .and_then(|v| serde_json::from_str::<VehicleEvent>(v).ok())
        else {
            report.malformed += 1;
            continue;
        };
        if !valid(&event) {
            report.invalid += 1;
            continue;
        }
        if !seen.insert((event.trip_id.clone(), event.ts)) {
            report.duplicates += 1;
            continue;
        }
        staged.push(StagedRow {
            event,
            speed_kmh: None,
            partition: r.partition,
            offset: r.offset,
        });
    }
    staged.sort_by(|a, b| (&a.event.trip_id, a.event.ts).cmp(&(&b.event.trip_id, b.event.ts)));
    for i in 1..staged.len() {
        let (prev, cur) = (&staged[i - 1].event, &staged[i].event);
        if prev.trip_id == cur.trip_id {
            let dt = (cur.ts - prev.ts) as f64 / 1000.0;
            let d = haversine_m(prev.lat, prev.lng, cur.lat, cur.lng);
            staged[i].speed_kmh = Some(d / dt * 3.6);
        }
    }
    staged
}

/// Trip summaries: each trip's reports of the day through the trip state machine.
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

/// Vehicle days from trip summaries.
pub fn summarise_vehicles(trips: &[TripState]) -> Vec<VehicleDay> {
    let mut by: BTreeMap<&str, VehicleDay> = BTreeMap::new();
    for t in trips {
        let v = by.entry(&t.vehicle_id).or_insert_with(|| VehicleDay {
            vehicle_id: t.vehicle_id.clone(),
            vehicle_name: t.vehicle_name.clone(),
            ..VehicleDay::default()
        });
        v.trips += 1;
        v.arrived += i64::from(t.status == TripStatus::Arrived);
        v.distance_m += t.distance_m;
        v.on_trips_s += (t.updated_at - t.started_at) as f64 / 1000.0;
        v.max_speed_kmh = v.max_speed_kmh.max(t.max_speed_kmh);
        v.stops += t.stops as i32;
    }
    by.into_values().collect()
}

/// Promotes day `day` (days since the epoch): landing → staging → common. Returns what it did;
/// the report is also written to `common/_promotions/date=YYYY-MM-DD.json`.
pub fn promote(lake: &Lake, day: i64) -> anyhow::Result<PromotionReport> {
    let date = format_date(day);
    let mut report = PromotionReport {
        day: date.clone(),
        landing_rows: 0,
        malformed: 0,
        invalid: 0,
        duplicates: 0,
        staged: 0,
        staging_files: 0,
        trips: 0,
        arrived: 0,
        vehicles: 0,
    };
    let rows = lake.read_landing_day(POSITIONS, day)?;
    report.landing_rows = rows.len();
    let staged = clean(&rows, &mut report);
    report.staged = staged.len();

    // staging/vehicle_positions/date=…/hour=…/part-0.parquet, replacing an earlier run's.
    lake.delete_under(&format!("{STAGING}/{STAGED_POSITIONS}/date={date}"))?;
    let mut by_hour: BTreeMap<String, Vec<&StagedRow>> = BTreeMap::new();
    for r in &staged {
        let ts = r.event.ts.clamp(day * DAY_MS, (day + 1) * DAY_MS - HOUR_MS);
        by_hour.entry(hour_partition(ts)).or_default().push(r);
    }
    for (hour, rows) in &by_hour {
        lake.put(
            &format!("{STAGING}/{STAGED_POSITIONS}/{hour}/part-0.parquet"),
            to_parquet(&staging_batch(rows)?)?,
        )?;
        report.staging_files += 1;
    }

    let trips = summarise_trips(&staged);
    report.trips = trips.len();
    report.arrived = trips
        .iter()
        .filter(|t| t.status == TripStatus::Arrived)
        .count();
    let vehicles = summarise_vehicles(&trips);
    report.vehicles = vehicles.len();
    lake.put(
        &format!("{COMMON}/{TRIP_SUMMARIES}/date={date}/part-0.parquet"),
        to_parquet(&trips_batch(&trips)?)?,
    )?;
    lake.put(
        &format!("{COMMON}/{VEHICLE_DAILY}/date={date}/part-0.parquet"),
        to_parquet(&vehicles_batch(&date, &vehicles)?)?,
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
