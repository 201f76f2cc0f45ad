//! The streamkit topology: clean the feed, dead-letter what cannot be parsed, store the
//! processed rows, keep per-line delay statistics, the latest state of each vehicle and a
//! training sample for the model.
//!
//! ```text
//! bus-positions (CSV lines keyed by VehicleRef, event time = RecordedAtTime)
//!   ─▶ clean (store clean-state: running column means and counts)
//!        ├─ malformed ─▶ bus-positions-dlq (the line as read, error headers)
//!        ├─ no expected/scheduled arrival ─▶ dropped (counted)
//!        └─ rows ─▶ bus-traffic-processed (JSON)
//!                     ─▶ (own sub-topology, when a URL is given) Postgres sink:
//!                        bus_traffic_processed, exactly once
//!                ─▶ reduce to the latest row per vehicle (store vehicles)
//!                ─▶ training-sample (store: a bounded hash sample of rows)
//!                ─▶ (line, delay) ─▶ <app>-by-line-repartition
//!                     ─▶ hopping windows 10 min every 1 min (store line-delay-stats)
//!                     ─▶ final window results ─▶ bus-line-delays
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};
use streamkit::error_policy::dead_letter_headers;
use streamkit::prelude::*;
use streamkit::processor::{KeyValueStore, StoreBuilder};
use streamkit::window::{TimeWindows, WindowedSerde};

use crate::clean::{self, Cleaned, Means, ProcessedRow};

/// Input topic: one feed row per record, the CSV line as UTF-8, keyed by `VehicleRef`.
pub const POSITIONS: &str = "bus-positions";
/// Rows that could not be parsed, as read, with headers naming the error.
pub const DEAD_LETTERS: &str = "bus-positions-dlq";
/// Cleaned rows as JSON ([`ProcessedRow`]), keyed by vehicle.
pub const PROCESSED: &str = "bus-traffic-processed";
/// Final per-line delay statistics per hopping window, keyed by windowed line.
pub const LINE_DELAYS: &str = "bus-line-delays";

/// Store: running column means and row counts of the cleaning step, one entry per task.
pub const CLEAN_STATE: &str = "clean-state";
/// Store: the latest processed row of each vehicle.
pub const VEHICLES: &str = "vehicles";
/// Window store: [`DelayStats`] per line and hopping window.
pub const LINE_STATS: &str = "line-delay-stats";
/// Store: a bounded sample of processed rows the model trains on.
pub const TRAINING_SAMPLE: &str = "training-sample";

/// Size of the per-line statistics windows.
pub const WINDOW_SIZE: Duration = Duration::from_secs(600);
/// How far the windows hop.
pub const WINDOW_ADVANCE: Duration = Duration::from_secs(60);

/// Key of the single entry each task keeps in [`CLEAN_STATE`].
const STATE_KEY: &str = "state";

/// What a run of the topology is configured with.
#[derive(Debug, Clone)]
pub struct TopologyConfig {
    /// Where processed rows are also written, if anywhere.
    pub postgres: Option<crate::postgres::PostgresTarget>,
    /// Slots of the training sample (per task): rows hash to a slot, newer rows replace
    /// older ones.
    pub sample_slots: u32,
    /// Close per-line windows after this much wall-clock time without records.
    pub idle_close: Duration,
}

impl Default for TopologyConfig {
    fn default() -> Self {
        TopologyConfig {
            postgres: None,
            sample_slots: 20_000,
            idle_close: Duration::from_secs(30),
        }
    }
}

/// The cleaning step's state per task: running means and what became of the rows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CleanState {
    /// Running means of the numeric columns.
    pub means: Means,
    /// Rows cleaned and passed on.
    pub rows: u64,
    /// Rows dead-lettered as malformed.
    pub malformed: u64,
    /// Rows dropped for lacking an expected or scheduled arrival time.
    pub missing_arrival: u64,
}

impl CleanState {
    /// Adds another task's counts (means are per task and not merged).
    pub fn add_counts(&mut self, other: &CleanState) {
        self.rows += other.rows;
        self.malformed += other.malformed;
        self.missing_arrival += other.missing_arrival;
    }
}

/// Delay statistics of one line in one window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DelayStats {
    /// Rows.
    pub count: u64,
    /// Sum of their delays, minutes.
    pub sum: f64,
    /// Smallest delay.
    pub min: f64,
    /// Largest delay.
    pub max: f64,
}

impl DelayStats {
    /// Adds one delay.
    pub fn record(mut self, delay: f64) -> Self {
        if self.count == 0 {
            self.min = delay;
            self.max = delay;
        } else {
            self.min = self.min.min(delay);
            self.max = self.max.max(delay);
        }
        self.count += 1;
        self.sum += delay;
        self
    }

    /// Mean delay, minutes.
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum / self.count as f64
        }
    }
}

/// What the cleaning processor passes on.
#[derive(Debug, Clone)]
enum Outcome {
    Row(Box<ProcessedRow>),
    Malformed(String),
}

/// Parses and cleans each row, keeping the running means in [`CLEAN_STATE`].
struct Clean {
    store: Option<KeyValueStore<String, CleanState>>,
}

impl Processor<String, String> for Clean {
    type KOut = String;
    type VOut = Outcome;

    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, Outcome>) -> Result<()> {
        self.store = Some(ctx.key_value_store(CLEAN_STATE)?);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, Outcome>,
        record: Record<String, String>,
    ) -> Result<()> {
        let store = self.store.as_ref().expect("initialized");
        let key = STATE_KEY.to_string();
        let mut state = store.get(&key)?.unwrap_or_default();
        let outcome = match clean::parse_line(&record.value) {
            Err(e) => {
                state.malformed += 1;
                let mut headers = record.headers.clone();
                headers.add(dead_letter_headers::ERROR, e.to_string());
                headers.add(dead_letter_headers::STAGE, "value");
                if let Some(meta) = ctx.record_metadata() {
                    headers.add(dead_letter_headers::TOPIC, meta.topic.to_string());
                    headers.add(dead_letter_headers::PARTITION, meta.partition.to_string());
                    headers.add(dead_letter_headers::OFFSET, meta.offset.to_string());
                }
                Some(
                    Record::new(
                        record.key,
                        Outcome::Malformed(record.value),
                        record.timestamp,
                    )
                    .with_headers(headers),
                )
            }
            Ok(parsed) => match clean::clean(parsed, &mut state.means) {
                Cleaned::MissingArrivalTime => {
                    state.missing_arrival += 1;
                    ctx.record_dropped("missing-arrival-time");
                    None
                }
                Cleaned::Row(row) => {
                    state.rows += 1;
                    Some(record.with_value(Outcome::Row(row)))
                }
            },
        };
        store.put(&key, &state)?;
        match outcome {
            Some(r) => ctx.forward(r),
            None => Ok(()),
        }
    }
}

/// FNV-1a: a hash that is the same in every process and version, so a replayed row lands
/// in the slot it had.
fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The training-sample slot of a row.
pub fn sample_slot(row: &ProcessedRow, slots: u32) -> i64 {
    let h = stable_hash(&[row.vehicle.as_bytes(), &row.recorded_at.to_be_bytes()]);
    (h % u64::from(slots.max(1))) as i64
}

/// Keeps a bounded sample of rows in [`TRAINING_SAMPLE`].
struct Sample {
    slots: u32,
    store: Option<KeyValueStore<i64, ProcessedRow>>,
}

impl Processor<String, ProcessedRow> for Sample {
    type KOut = String;
    type VOut = ProcessedRow;

    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, ProcessedRow>) -> Result<()> {
        self.store = Some(ctx.key_value_store(TRAINING_SAMPLE)?);
        Ok(())
    }

    fn process(
        &mut self,
        _ctx: &mut ProcessorContext<'_, String, ProcessedRow>,
        record: Record<String, ProcessedRow>,
    ) -> Result<()> {
        let slot = sample_slot(&record.value, self.slots);
        self.store
            .as_ref()
            .expect("initialized")
            .put(&slot, &record.value)
    }
}

/// The event time of a feed line: its `RecordedAtTime` in ms, or the record's timestamp
/// when the line has none that parses.
fn recorded_at_ms(line: &str, fallback: i64) -> i64 {
    line.split(',')
        .next()
        .and_then(|f| clean::parse_datetime(f.trim_matches('"')))
        .map_or(fallback, |s| s * 1_000)
}

/// The application's topology.
///
/// ```
/// use streamkit::prelude::*;
/// use bus_arrivals::topology::{self, TopologyConfig};
/// let driver = TopologyTestDriver::new(topology::topology(&TopologyConfig::default())?)?;
/// let input = driver.input_topic(topology::POSITIONS, Serdes::string(), Serdes::string());
/// input.pipe("NYCT_430".into(), "2017-06-01 00:03:34,0,B8,4 AV/95 ST,40.616104,-74.031143,\
///     BROWNSVILLE ROCKAWAY AV,40.656048,-73.907379,NYCT_430,40.635170,-73.960803,\
///     FOSTER AV/E 18 ST,approaching,76.0,2017-06-01 00:03:59,24:06:14".into())?;
/// let out = driver.output_topic(topology::PROCESSED, Serdes::string(), Serdes::json::<bus_arrivals::clean::ProcessedRow>());
/// let row = out.read_value().unwrap();
/// // Expected 00:03:59, scheduled 24:06:14 of the day before = 00:06:14: 2.25 min early.
/// assert_eq!(row.delay_minutes, -2.25);
/// # Ok::<(), streamkit::Error>(())
/// ```
pub fn topology(config: &TopologyConfig) -> streamkit::Result<Topology> {
    let builder = StreamsBuilder::new();
    builder.add_state_store(StoreBuilder::key_value(
        CLEAN_STATE,
        Serdes::string(),
        Serdes::json::<CleanState>(),
    ));
    builder.add_state_store(StoreBuilder::key_value(
        TRAINING_SAMPLE,
        Serdes::i64(),
        Serdes::json::<ProcessedRow>(),
    ));
    let outcomes = builder
        .stream(
            POSITIONS,
            Consumed::with(Serdes::string(), Serdes::string())
                .on_deserialization_error(DeserializationHandler::DeadLetter(DEAD_LETTERS.into()))
                .with_timestamp_extractor(|_vehicle, line: &String, ts| recorded_at_ms(line, ts))
                .named("positions"),
        )
        .process_with_stores(|| Clean { store: None }, &[CLEAN_STATE])
        .named("cleaning");
    let branches = outcomes
        .split_named("outcome-")
        .branch("malformed", |_, o| matches!(o, Outcome::Malformed(_)))
        .default_branch("rows");
    branches["malformed"]
        .flat_map_values(|o| match o {
            Outcome::Malformed(line) => Some(line),
            Outcome::Row(_) => None,
        })
        .named("malformed-line")
        .to(
            DEAD_LETTERS,
            Produced::with(Serdes::string(), Serdes::string()),
        );
    let rows: KStream<String, ProcessedRow> = branches["rows"]
        .flat_map_values(|o| match o {
            Outcome::Row(row) => Some(*row),
            Outcome::Malformed(_) => None,
        })
        .named("row");
    rows.to(
        PROCESSED,
        Produced::with(Serdes::string(), Serdes::json::<ProcessedRow>()),
    );
    if let Some(target) = &config.postgres {
        crate::postgres::write_rows(&builder, target);
    }
    rows.group_by_key(Grouped::with(
        Serdes::string(),
        Serdes::json::<ProcessedRow>(),
    ))
    .reduce(
        |latest, row| {
            if row.recorded_at >= latest.recorded_at {
                row
            } else {
                latest
            }
        },
        Materialized::named(VEHICLES),
    );
    let slots = config.sample_slots;
    rows.process_with_stores(move || Sample { slots, store: None }, &[TRAINING_SAMPLE])
        .named("training-sample");
    rows.map(|_vehicle, row| (row.line.clone(), row.delay_minutes))
        .named("line-delay")
        .group_by_key(Grouped::with(Serdes::string(), Serdes::f64()).named("by-line"))
        .windowed_by(TimeWindows::hopping(WINDOW_SIZE, WINDOW_ADVANCE).grace(WINDOW_ADVANCE))
        .aggregate(
            DelayStats::default,
            |_line, delay, stats| stats.record(*delay),
            Materialized::named(LINE_STATS).value_serde(Serdes::json::<DelayStats>()),
        )
        .suppress(Suppressed::until_window_closes().close_when_idle(config.idle_close))
        .to_stream()
        .to(
            LINE_DELAYS,
            Produced::with(
                WindowedSerde::time(Serdes::string(), WINDOW_SIZE.as_millis() as i64),
                Serdes::json::<DelayStats>(),
            ),
        );
    builder.build()
}
