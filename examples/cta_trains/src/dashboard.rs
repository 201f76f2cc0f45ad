//! The dashboard's consumer (the original's `server.py` with its `Lines`, `Line`, `Station`
//! and `Weather` models): a streamkit application reading the transformed stations, the
//! arrivals, the KSQL tables and the weather into stores the page is drawn from.
//!
//! ```text
//! org.chicago.cta.stations.table.v1 ─▶ store line-stations     "<line>/<station_id>" → station
//! org.chicago.cta.station.arrivals.v1 ─▶ store station-arrivals "<line>/<station_id>/<direction>" → train
//!       (an arrival clears the train from the station it left, as Line._handle_arrival did)
//! TURNSTILE_SUMMARY ─▶ table turnstile-summary                 station_id → COUNT
//! org.chicago.cta.weather.v1 ─▶ store weather                  "current" → latest reading
//! ```
//!
//! Every input topic has one partition, so each store is one task's: a train's arrivals meet
//! in order and the page reads every store whole.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use streamkit::prelude::*;
use streamkit::processor::{KeyValueStore, StoreBuilder};

use crate::data::Line;
use crate::ksql::Count;
use crate::model::{
    ARRIVALS_TOPIC, Arrival, STATIONS_TABLE_TOPIC, Serdes as AvroSerdes, TURNSTILE_SUMMARY_TOPIC,
    TimestampKey, TransformedStation, WEATHER_TOPIC, Weather,
};

/// The dashboard application's id.
pub const APPLICATION_ID: &str = "cta-dashboard";
/// Store: the stations of each line.
pub const STATIONS: &str = "line-stations";
/// Store: the train last arrived at each station, per line and direction.
pub const ARRIVALS: &str = "station-arrivals";
/// Table: the entries per station, `TURNSTILE_SUMMARY`.
pub const SUMMARY: &str = "turnstile-summary";
/// Store: the latest weather reading.
pub const WEATHER: &str = "weather";
/// The key of the weather store's one entry.
pub const CURRENT: &str = "current";

/// A train at a station.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainAt {
    /// The train, e.g. `BL004`.
    pub train_id: String,
    /// `in_service`, `out_of_service` or `broken_down`.
    pub train_status: String,
    /// When it arrived (ms since 1970, simulated time).
    pub arrived_at: i64,
}

/// The latest weather.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeatherReading {
    /// Degrees Fahrenheit.
    pub temperature: f32,
    /// `sunny`, `partly_cloudy`, `cloudy`, `windy` or `precipitation`.
    pub status: String,
    /// When it was read (ms since 1970, simulated time).
    pub at: i64,
}

/// The store key of a station of a line.
pub fn station_key(line: &str, station_id: i32) -> String {
    format!("{line}/{station_id}")
}

/// The store key of a station's platform of a line, in a direction.
pub fn arrival_key(line: &str, station_id: i32, direction: &str) -> String {
    format!("{line}/{station_id}/{direction}")
}

/// Keeps the stations of each line (`Line._handle_station`).
struct Stations {
    store: Option<KeyValueStore<String, TransformedStation>>,
}

impl Processor<i32, TransformedStation> for Stations {
    type KOut = ();
    type VOut = ();

    fn init(&mut self, ctx: &mut ProcessorContext<'_, (), ()>) -> Result<()> {
        self.store = Some(ctx.key_value_store(STATIONS)?);
        Ok(())
    }

    fn process(
        &mut self,
        _ctx: &mut ProcessorContext<'_, (), ()>,
        record: Record<i32, TransformedStation>,
    ) -> Result<()> {
        let s = record.value;
        if Line::parse(&s.line).is_none() {
            return Ok(());
        }
        self.store
            .as_ref()
            .expect("initialized")
            .put(&station_key(&s.line, s.station_id), &s)
    }
}

/// Moves trains between stations (`Line._handle_arrival`, `Station.handle_arrival` and
/// `handle_departure`).
struct Arrivals {
    store: Option<KeyValueStore<String, TrainAt>>,
}

impl Processor<TimestampKey, Arrival> for Arrivals {
    type KOut = ();
    type VOut = ();

    fn init(&mut self, ctx: &mut ProcessorContext<'_, (), ()>) -> Result<()> {
        self.store = Some(ctx.key_value_store(ARRIVALS)?);
        Ok(())
    }

    fn process(
        &mut self,
        _ctx: &mut ProcessorContext<'_, (), ()>,
        record: Record<TimestampKey, Arrival>,
    ) -> Result<()> {
        let store = self.store.as_ref().expect("initialized");
        let a = record.value;
        if let (Some(prev), Some(dir)) = (a.prev_station_id, a.prev_direction.as_deref()) {
            // The train left its previous station: clear it there, unless another train has
            // arrived there since.
            let key = arrival_key(&a.line, prev, dir);
            if store.get(&key)?.is_some_and(|t| t.train_id == a.train_id) {
                store.delete(&key)?;
            }
        }
        store.put(
            &arrival_key(&a.line, a.station_id, &a.direction),
            &TrainAt {
                train_id: a.train_id,
                train_status: a.train_status,
                arrived_at: record.key.timestamp,
            },
        )
    }
}

/// Keeps the latest weather reading.
struct LatestWeather {
    store: Option<KeyValueStore<String, WeatherReading>>,
}

impl Processor<TimestampKey, Weather> for LatestWeather {
    type KOut = ();
    type VOut = ();

    fn init(&mut self, ctx: &mut ProcessorContext<'_, (), ()>) -> Result<()> {
        self.store = Some(ctx.key_value_store(WEATHER)?);
        Ok(())
    }

    fn process(
        &mut self,
        _ctx: &mut ProcessorContext<'_, (), ()>,
        record: Record<TimestampKey, Weather>,
    ) -> Result<()> {
        let store = self.store.as_ref().expect("initialized");
        let key = CURRENT.to_string();
        let at = record.key.timestamp;
        if store.get(&key)?.is_some_and(|w| w.at > at) {
            return Ok(());
        }
        store.put(
            &key,
            &WeatherReading {
                temperature: record.value.temperature,
                status: record.value.status.as_str().to_string(),
                at,
            },
        )
    }
}

/// The dashboard's topology; Avro records are read through `serdes`' registry.
pub fn topology(serdes: &AvroSerdes) -> streamkit::Result<Topology> {
    let b = StreamsBuilder::new();
    b.add_state_store(StoreBuilder::key_value(
        STATIONS,
        Serdes::string(),
        Serdes::json::<TransformedStation>(),
    ));
    b.add_state_store(StoreBuilder::key_value(
        ARRIVALS,
        Serdes::string(),
        Serdes::json::<TrainAt>(),
    ));
    b.add_state_store(StoreBuilder::key_value(
        WEATHER,
        Serdes::string(),
        Serdes::json::<WeatherReading>(),
    ));
    b.stream(
        STATIONS_TABLE_TOPIC,
        Consumed::with(Serdes::json::<i32>(), Serdes::json::<TransformedStation>())
            .on_deserialization_error(DeserializationHandler::LogAndContinue)
            .named("stations-table"),
    )
    .process_with_stores(|| Stations { store: None }, &[STATIONS])
    .named("stations");
    b.stream(
        ARRIVALS_TOPIC,
        Consumed::with(serdes.arrival_key(), serdes.arrival())
            .on_deserialization_error(DeserializationHandler::LogAndContinue)
            .named("arrivals-topic"),
    )
    .process_with_stores(|| Arrivals { store: None }, &[ARRIVALS])
    .named("arrivals");
    b.stream(
        WEATHER_TOPIC,
        Consumed::with(serdes.weather_key(), serdes.weather())
            .on_deserialization_error(DeserializationHandler::LogAndContinue)
            .named("weather-topic"),
    )
    .process_with_stores(|| LatestWeather { store: None }, &[WEATHER])
    .named("latest-weather");
    b.table(
        TURNSTILE_SUMMARY_TOPIC,
        Consumed::with(Serdes::i32(), Serdes::json::<Count>())
            .on_deserialization_error(DeserializationHandler::LogAndContinue)
            .named(format!("{SUMMARY}-topic")),
        Materialized::named(SUMMARY),
    );
    b.build()
}

/// A train at a platform, as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrainView {
    /// The train.
    pub train_id: String,
    /// Its status, words separated by spaces (`in service`).
    pub status: String,
}

/// A station of a line on the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StationView {
    /// The station's id.
    pub station_id: i32,
    /// Its name.
    pub name: String,
    /// Its position along the line.
    pub order: i32,
    /// The train last arrived in direction `a`, if it is still there.
    pub a: Option<TrainView>,
    /// The train last arrived in direction `b`, if it is still there.
    pub b: Option<TrainView>,
    /// Turnstile entries so far: `TURNSTILE_SUMMARY`'s `COUNT` for the station.
    pub entries: i64,
}

/// A line on the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineView {
    /// `blue`, `green` or `red`.
    pub line: String,
    /// Where direction `a` goes.
    pub towards_a: String,
    /// Where direction `b` goes.
    pub towards_b: String,
    /// Its stations, in order.
    pub stations: Vec<StationView>,
}

/// Everything the page shows that comes from the stores.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    /// Blue, green and red, each with its stations in order.
    pub lines: Vec<LineView>,
    /// The latest weather, once one was read.
    pub weather: Option<WeatherReading>,
}

/// The contents of the stores a snapshot is made of.
#[derive(Debug, Clone, Default)]
pub struct StoreContents {
    /// [`STATIONS`].
    pub stations: Vec<(String, TransformedStation)>,
    /// [`ARRIVALS`].
    pub arrivals: Vec<(String, TrainAt)>,
    /// [`SUMMARY`].
    pub summary: Vec<(i32, Count)>,
    /// [`WEATHER`].
    pub weather: Option<WeatherReading>,
}

impl StoreContents {
    /// Reads the stores of the running dashboard application (empty before its tasks start).
    pub fn read(app: &KafkaStreams) -> Self {
        fn all<K: streamkit::processor::Data, V: streamkit::processor::Data>(
            app: &KafkaStreams,
            name: &str,
        ) -> Vec<(K, V)> {
            app.store::<K, V>(name)
                .and_then(|s| s.all())
                .unwrap_or_default()
        }
        StoreContents {
            stations: all(app, STATIONS),
            arrivals: all(app, ARRIVALS),
            summary: all(app, SUMMARY),
            weather: all::<String, WeatherReading>(app, WEATHER)
                .into_iter()
                .find(|(k, _)| k == CURRENT)
                .map(|(_, w)| w),
        }
    }

    /// What the page shows.
    pub fn snapshot(&self) -> Snapshot {
        let entries: BTreeMap<i32, i64> = self.summary.iter().map(|(k, c)| (*k, c.count)).collect();
        let arrivals: BTreeMap<&str, &TrainAt> =
            self.arrivals.iter().map(|(k, t)| (k.as_str(), t)).collect();
        let train = |line: &str, id: i32, dir: &str| {
            arrivals
                .get(arrival_key(line, id, dir).as_str())
                .map(|t| TrainView {
                    train_id: t.train_id.clone(),
                    status: t.train_status.replace('_', " "),
                })
        };
        let lines = Line::ALL
            .iter()
            .map(|line| {
                let mut stations: Vec<&TransformedStation> = self
                    .stations
                    .iter()
                    .map(|(_, s)| s)
                    .filter(|s| s.line == line.as_str())
                    .collect();
                stations.sort_by_key(|s| (s.order, s.station_id));
                let stations: Vec<StationView> = stations
                    .into_iter()
                    .map(|s| StationView {
                        station_id: s.station_id,
                        name: s.station_name.clone(),
                        order: s.order,
                        a: train(line.as_str(), s.station_id, "a"),
                        b: train(line.as_str(), s.station_id, "b"),
                        entries: entries.get(&s.station_id).copied().unwrap_or(0),
                    })
                    .collect();
                LineView {
                    line: line.as_str().to_string(),
                    towards_a: stations.last().map(|s| s.name.clone()).unwrap_or_default(),
                    towards_b: stations.first().map(|s| s.name.clone()).unwrap_or_default(),
                    stations,
                }
            })
            .collect();
        Snapshot {
            lines,
            weather: self.weather.clone(),
        }
    }
}
