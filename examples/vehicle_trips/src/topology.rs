//! The streaming job (the seed's Spark Structured Streaming job, and more): from the vehicles'
//! reports on `vehicle-positions` it keeps the trip-state table (queryable as `trip-state`),
//! computes speeds, detects stops and arrivals (transitions on `trip-transitions`), and writes
//! the lake: every raw record to `landing/` and every cleaned report to `staging/`, each
//! exactly once per offset (files named by partition and offset range), and, when a trip
//! arrives, its summary and its vehicle's day so far to `common/` (files named by trip, and by
//! vehicle and day, which a replay overwrites with the same content).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use streamkit::prelude::*;
use streamkit::processor::{KeyValueStore, StoreBuilder};

use crate::lake::{Lake, LandingRow};
use crate::model::{Transition, TransitionKind, TripState, VehicleEvent};
use crate::promotion::{self, CleanCounts, LastReport, VehicleDay};

/// The vehicles' reports (key: trip id, value: [`VehicleEvent`] as JSON).
pub const POSITIONS: &str = "vehicle-positions";
/// Trip transitions (key: trip id, value: [`Transition`] as JSON).
pub const TRANSITIONS: &str = "trip-transitions";
/// The trip-state table (key: trip id, value: [`TripState`]).
pub const TRIPS: &str = "trip-state";
/// Raw records waiting to be landed (key: offset), per task.
pub const LANDING_BUFFER: &str = "landing-buffer";
/// The latest staged report of each trip (key: trip id), per task: speeds across staging files.
pub const STAGING_LAST: &str = "staging-last";
/// Each vehicle's day of arrived trips (key: `YYYY-MM-DD/vehicle id`), per task.
pub const VEHICLE_DAYS: &str = "vehicle-days";
/// Partitions of the positions topic.
pub const PARTITIONS: i32 = 2;
/// The topics and their partition counts.
pub const TOPICS: [(&str, i32); 2] = [(POSITIONS, PARTITIONS), (TRANSITIONS, PARTITIONS)];

/// What the topology needs besides its topics.
#[derive(Debug, Clone)]
pub struct TopologyConfig {
    /// The lake the topology writes (`None`: no lake).
    pub lake: Option<Arc<Lake>>,
    /// How often buffered records are landed (wall clock).
    pub land_every: Duration,
    /// Land as soon as this many records wait.
    pub land_max_rows: usize,
}

impl Default for TopologyConfig {
    fn default() -> Self {
        TopologyConfig {
            lake: None,
            land_every: Duration::from_secs(10),
            land_max_rows: 10_000,
        }
    }
}

/// The topology.
///
/// ```
/// use streamkit::prelude::*;
/// use vehicle_trips::model::{Reported, TripState, TripStatus, VehicleEvent};
/// use vehicle_trips::topology::{self, TopologyConfig};
///
/// let d = TopologyTestDriver::new(topology::topology(&TopologyConfig::default())?)?;
/// let input = d.input_topic(topology::POSITIONS, Serdes::string(), Serdes::json::<VehicleEvent>());
/// let e = |ts: i64, odometer_m: f64, state| VehicleEvent {
///     vehicle_id: "v1".into(), vehicle_name: "Taxi".into(), trip_id: "t1".into(),
///     origin: "sol".into(), destination: "mayor".into(), ts, lat: 40.4169,
///     lng: -3.7035 - odometer_m / 85_000.0, speed_kmh: 30.0, odometer_m, route_m: 400.0, state,
/// };
/// input.pipe_at("t1".into(), e(1_000, 0.0, Reported::Driving), 1_000)?;
/// input.pipe_at("t1".into(), e(2_000, 8.0, Reported::Driving), 2_000)?;
/// input.pipe_at("t1".into(), e(3_000, 400.0, Reported::Arrived), 3_000)?;
/// let trip = d.key_value_store::<String, TripState>(topology::TRIPS)?.get(&"t1".into())?.unwrap();
/// assert_eq!(trip.status, TripStatus::Arrived);
/// assert_eq!(trip.arrived_at, Some(3_000));
/// # Ok::<(), streamkit::Error>(())
/// ```
pub fn topology(config: &TopologyConfig) -> streamkit::Result<Topology> {
    let builder = StreamsBuilder::new();
    builder.add_state_store(StoreBuilder::key_value(
        TRIPS,
        Serdes::string(),
        Serdes::json::<TripState>(),
    ));
    let raw = builder.stream(
        POSITIONS,
        Consumed::with(Serdes::string(), Serdes::string()).named("positions"),
    );
    let mut tracker_stores = vec![TRIPS];
    if config.lake.is_some() {
        builder.add_state_store(StoreBuilder::key_value(
            VEHICLE_DAYS,
            Serdes::string(),
            Serdes::json::<VehicleDay>(),
        ));
        tracker_stores.push(VEHICLE_DAYS);
    }
    let tracker_lake = config.lake.clone();
    // Reports that staging would drop as impossible do not reach the state machine either.
    raw.flat_map_values(|v: String| {
        serde_json::from_str::<VehicleEvent>(&v)
            .ok()
            .filter(promotion::valid)
    })
    .named("parse")
    .process_with_stores(
        move || TripTracker {
            store: None,
            lake: tracker_lake.clone(),
            vehicle_days: None,
        },
        &tracker_stores,
    )
    .named("trip-state-machine")
    .to(
        TRANSITIONS,
        Produced::with(Serdes::string(), Serdes::json::<Transition>()),
    );
    if let Some(lake) = &config.lake {
        builder.add_state_store(StoreBuilder::key_value(
            LANDING_BUFFER,
            Serdes::i64(),
            Serdes::json::<LandingRow>(),
        ));
        builder.add_state_store(StoreBuilder::key_value(
            STAGING_LAST,
            Serdes::string(),
            Serdes::json::<LastReport>(),
        ));
        let (lake, every, max_rows) = (lake.clone(), config.land_every, config.land_max_rows);
        raw.process_with_stores(
            move || Lander {
                lake: lake.clone(),
                every,
                max_rows,
                store: None,
                last: None,
                landed_up_to: None,
                waiting: 0,
                failures: 0,
            },
            &[LANDING_BUFFER, STAGING_LAST],
        )
        .named("landing");
    }
    builder.build()
}

/// Runs each report through its trip's [`TripState`] and forwards the transitions; with a
/// lake, writes an arrived trip's summary and its vehicle's day to `common/`.
struct TripTracker {
    store: Option<KeyValueStore<String, TripState>>,
    lake: Option<Arc<Lake>>,
    vehicle_days: Option<KeyValueStore<String, VehicleDay>>,
}

impl TripTracker {
    /// `common/`: the trip's summary, and its vehicle's day with it added. The files are named
    /// by trip, and by vehicle and day, and replaced: a replay from an older commit (the
    /// stores restored to that commit) writes the same again.
    fn arrived(&self, trip: &TripState) -> Result<()> {
        let Some(lake) = &self.lake else {
            return Ok(());
        };
        let fail = |e: anyhow::Error| Error::custom(format!("writing common/: {e:#}"));
        promotion::write_trip_summary(lake, trip).map_err(fail)?;
        let date = promotion::trip_day(trip);
        let days = self.vehicle_days.as_ref().expect("initialized");
        let key = format!("{date}/{}", trip.vehicle_id);
        let mut day = days.get(&key)?.unwrap_or_default();
        day.add(trip);
        days.put(&key, &day)?;
        promotion::write_vehicle_summary(lake, &date, &day).map_err(fail)
    }
}

impl Processor<String, VehicleEvent> for TripTracker {
    type KOut = String;
    type VOut = Transition;

    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, Transition>) -> Result<()> {
        self.store = Some(ctx.key_value_store(TRIPS)?);
        if self.lake.is_some() {
            self.vehicle_days = Some(ctx.key_value_store(VEHICLE_DAYS)?);
        }
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, Transition>,
        record: Record<String, VehicleEvent>,
    ) -> Result<()> {
        let store = self.store.as_ref().expect("initialized");
        let e = &record.value;
        let (state, transitions) = match store.get(&e.trip_id)? {
            Some(mut s) => {
                let t = s.apply(e);
                (s, t)
            }
            None => TripState::start(e),
        };
        store.put(&e.trip_id, &state)?;
        if transitions
            .iter()
            .any(|t| t.kind == TransitionKind::Arrived)
        {
            self.arrived(&state)?;
        }
        for t in transitions {
            let ts = t.ts.max(record.timestamp);
            ctx.forward(Record::new(t.trip_id.clone(), t, ts))?;
        }
        Ok(())
    }
}

/// Lands raw records: buffers them in a changelogged store and writes them to the lake every
/// `every` (and when `max_rows` wait, and at close), one file per run of records in the same
/// hour, named by partition and offsets. Records at or below the last offset the lake holds
/// for the partition are skipped, so a restart from an older commit writes nothing twice; the
/// buffer survives a crash in its changelog, so nothing committed is lost. Each landing file
/// written is then cleaned into the staging file of the same name (create-if-absent), with
/// the latest staged report of each trip kept in a store (and rebuilt from the rows skipped
/// on a replay) for speeds and repeats across files; a staging file not written (a failure,
/// a crash between the two writes) is written by the daily promotion.
struct Lander {
    lake: Arc<Lake>,
    every: Duration,
    max_rows: usize,
    store: Option<KeyValueStore<i64, LandingRow>>,
    last: Option<KeyValueStore<String, LastReport>>,
    landed_up_to: Option<i64>,
    waiting: usize,
    failures: u32,
}

/// Landings that may fail in a row (the lake unreachable) before the stream thread fails.
pub const MAX_LANDING_FAILURES: u32 = 5;

impl Lander {
    fn landed_up_to(&mut self, partition: i32) -> Result<i64> {
        if let Some(o) = self.landed_up_to {
            return Ok(o);
        }
        let o = self
            .lake
            .landed_up_to(POSITIONS, partition)
            .map_err(|e| Error::custom(format!("{e:#}")))?;
        self.landed_up_to = Some(o);
        Ok(o)
    }

    /// Notes rows landed and staged in an earlier run in the latest-report store.
    fn note_staged(&self, rows: &[LandingRow]) -> Result<()> {
        let last = self.last.as_ref().expect("initialized");
        for r in rows {
            let mut one = HashMap::new();
            let key = r.key.clone().unwrap_or_default();
            if let Some(l) = last.get(&key)? {
                one.insert(key, l);
            }
            promotion::note_staged(r, &mut one);
            for (trip, l) in one {
                last.put(&trip, &l)?;
            }
        }
        Ok(())
    }

    /// Writes the staging file of each landing file written.
    fn stage(&self, written: &[(String, Vec<LandingRow>)]) -> Result<()> {
        let store = self.last.as_ref().expect("initialized");
        for (path, rows) in written {
            let mut last = HashMap::new();
            for r in rows {
                if let Ok(e) =
                    serde_json::from_str::<VehicleEvent>(r.value.as_deref().unwrap_or(""))
                    && !last.contains_key(&e.trip_id)
                    && let Some(l) = store.get(&e.trip_id)?
                {
                    last.insert(e.trip_id, l);
                }
            }
            let mut counts = CleanCounts::default();
            match promotion::stage(&self.lake, path, rows, &mut counts, &mut last) {
                Ok(_) => tracing::debug!(path, ?counts, "staged"),
                Err(e) => {
                    // The daily promotion stages a landing file without a staging file.
                    tracing::warn!(path, error = %format!("{e:#}"), "staging failed; the daily promotion will stage it");
                    for r in rows {
                        promotion::note_staged(r, &mut last);
                    }
                }
            }
            for (trip, l) in last {
                store.put(&trip, &l)?;
            }
        }
        Ok(())
    }

    fn land(&mut self, partition: i32) -> Result<()> {
        let store = self.store.as_ref().expect("initialized");
        let mut rows: Vec<LandingRow> = store.all()?.into_iter().map(|(_, r)| r).collect();
        if rows.is_empty() {
            return Ok(());
        }
        rows.sort_by_key(|r| r.offset);
        let up_to = self.landed_up_to(partition)?;
        let (fresh, old): (Vec<LandingRow>, Vec<LandingRow>) =
            rows.iter().cloned().partition(|r| r.offset > up_to);
        self.note_staged(&old)?;
        if !fresh.is_empty() {
            match self.lake.land_runs(POSITIONS, &fresh) {
                Ok(written) => {
                    self.failures = 0;
                    tracing::debug!(files = written.len(), rows = fresh.len(), "landed");
                    self.stage(&written)?;
                }
                // A lake that is away for a moment: keep the buffer and try again at the next
                // landing; the files written before the failure are a prefix of the buffer,
                // which the lake's file names tell on the next try.
                Err(e) if self.failures + 1 < MAX_LANDING_FAILURES => {
                    self.failures += 1;
                    self.landed_up_to = None;
                    self.waiting = 0;
                    tracing::warn!(error = %format!("{e:#}"), attempt = self.failures, "landing failed; retrying at the next landing");
                    return Ok(());
                }
                Err(e) => {
                    return Err(Error::custom(format!(
                        "landing failed {MAX_LANDING_FAILURES} times in a row: {e:#}"
                    )));
                }
            }
        }
        let store = self.store.as_ref().expect("initialized");
        for r in &rows {
            store.delete(&r.offset)?;
        }
        if let Some(last) = rows.last() {
            self.landed_up_to = Some(up_to.max(last.offset));
        }
        self.waiting = 0;
        Ok(())
    }
}

impl Processor<String, String> for Lander {
    type KOut = String;
    type VOut = String;

    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> Result<()> {
        self.store = Some(ctx.key_value_store(LANDING_BUFFER)?);
        self.last = Some(ctx.key_value_store(STAGING_LAST)?);
        ctx.schedule(self.every, PunctuationType::WallClockTime);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        record: Record<String, String>,
    ) -> Result<()> {
        let Some((partition, offset)) = ctx.record_metadata().map(|m| (m.partition, m.offset))
        else {
            return Ok(());
        };
        let row = LandingRow {
            partition,
            offset,
            timestamp: record.timestamp,
            key: Some(record.key),
            value: Some(record.value),
        };
        if offset <= self.landed_up_to(partition)? {
            // Landed and staged before: only what staging it left behind.
            self.note_staged(std::slice::from_ref(&row))?;
            ctx.record_dropped("already-landed");
            return Ok(());
        }
        self.store
            .as_ref()
            .expect("initialized")
            .put(&offset, &row)?;
        self.waiting += 1;
        if self.waiting >= self.max_rows {
            self.land(partition)?;
        }
        Ok(())
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        _p: Punctuation,
    ) -> Result<()> {
        let partition = ctx.task_id().partition;
        self.land(partition)
    }

    fn close(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> Result<()> {
        let partition = ctx.task_id().partition;
        self.land(partition)
    }
}
