//! The topology, as functions: [`streaming`] (the original's 10-second Spark job) and [`batch`]
//! (its daily ETL) build on the same steps — [`tracks`] (the latest state and trend of each
//! station), [`changes`] (what each record changed) and [`hourly`] (availability per station
//! and hour) — so the daily load and the live windows cannot disagree.
//!
//! ```text
//! bike-stations (JCDecaux JSON, key contract:number, event time = last_update; 1 partition)
//!   ─▶ tracks: latest state + last 15 min of samples + alert per station   (store "stations")
//!        ├─▶ alert raised/changed/cleared ─▶ bike-stations-alerts
//!        ├─▶ per city: stations, open, empty, full, bikes, stands           (store "city-totals")
//!        └─▶ changes (bikes taken/returned by each record)
//!              ├─▶ per station, tumbling 10 min          (store "station-10min")  ─▶ bike-stations-10min
//!              ├─▶ per station, tumbling 1 h             (store "station-hourly") ─▶ bike-stations-hourly
//!              └─▶ per city, hopping 1 h every 10 min    (store "city-hourly")    ─▶ bike-cities-hourly
//! ```
//!
//! Final window results leave once, when stream time passes the window's end plus grace, or
//! when the feed has been quiet for the idle time on the wall clock (stations report only
//! when something changes, so at night the feed stops).

use std::time::Duration;

use streamkit::connect::http_poll::HttpPollSource;
use streamkit::connect::postgres::{PostgresSink, SqlValue};
use streamkit::prelude::*;
use streamkit::window::{TimeWindows, Windowed, WindowedSerde};

use crate::model::{
    Alert, Availability, CityTotals, DAY_MS, HOUR_MS, Station, StationChange, StationTrack,
};

/// The topic the polling source writes: one record per station that changed.
pub const STATIONS_TOPIC: &str = "bike-stations";
/// Alerts raised, changed (`Some`) or cleared (`None`), keyed by station.
pub const ALERTS_TOPIC: &str = "bike-stations-alerts";
/// Final 10-minute availability per station.
pub const STATION_10MIN_TOPIC: &str = "bike-stations-10min";
/// Final hourly availability per station.
pub const STATION_HOURLY_TOPIC: &str = "bike-stations-hourly";
/// Final hourly (hopping every 10 minutes) availability per city.
pub const CITY_HOURLY_TOPIC: &str = "bike-cities-hourly";

/// Store: the latest state, recent samples and alert of each station (queryable).
pub const TRACKS: &str = "stations";
/// Store: tumbling 10-minute windows per station.
pub const STATION_10MIN: &str = "station-10min";
/// Store: tumbling hourly windows per station.
pub const STATION_HOURLY: &str = "station-hourly";
/// Store: hopping hourly windows per city, every 10 minutes.
pub const CITY_HOURLY: &str = "city-hourly";
/// Store: each city's stations now.
pub const CITY_TOTALS: &str = "city-totals";

/// Size of the short tumbling windows.
pub const TEN_MINUTES: Duration = Duration::from_secs(600);
/// Grace of every window: how late a record may be and still count.
pub const GRACE: Duration = Duration::from_secs(120);

/// The topics the applications write, with their partition counts.
pub const TOPICS: [(&str, i32); 5] = [
    (STATIONS_TOPIC, 1),
    (ALERTS_TOPIC, 1),
    (STATION_10MIN_TOPIC, 1),
    (STATION_HOURLY_TOPIC, 1),
    (CITY_HOURLY_TOPIC, 1),
];

/// How the streaming topology reads its input and closes its windows.
#[derive(Debug, Clone)]
pub struct StreamingConfig {
    /// Poll the API into [`STATIONS_TOPIC`] inside the application; `None`: read the topic
    /// (tests, or a source run elsewhere).
    pub source: Option<HttpPollSource>,
    /// Close windows after this much wall-clock quiet.
    pub idle_close: Duration,
}

impl Default for StreamingConfig {
    fn default() -> Self {
        StreamingConfig {
            source: None,
            idle_close: Duration::from_secs(120),
        }
    }
}

fn consumed() -> Consumed<String, Station> {
    Consumed::with(Serdes::string(), Serdes::json::<Station>())
        .on_deserialization_error(DeserializationHandler::LogAndContinue)
}

/// The latest state, recent samples and alert of each station, in store [`TRACKS`].
pub fn tracks(stations: &KStream<String, Station>) -> KTable<String, StationTrack> {
    stations
        .group_by_key(Grouped::with(Serdes::string(), Serdes::json::<Station>()))
        .aggregate(
            StationTrack::default,
            |_key, station, track| track.update(station),
            Materialized::named(TRACKS).value_serde(Serdes::json::<StationTrack>()),
        )
}

/// What each record changed at its station.
pub fn changes(tracks: &KTable<String, StationTrack>) -> KStream<String, StationChange> {
    tracks
        .to_stream()
        .flat_map_values(|track| StationChange::of(&track))
}

fn grouped_changes() -> Grouped<String, StationChange> {
    Grouped::with(Serdes::string(), Serdes::json::<StationChange>())
}

fn availability(name: &str) -> Materialized<String, Availability> {
    Materialized::named(name).value_serde(Serdes::json::<Availability>())
}

/// Availability per station and hour (tumbling, [`GRACE`]), in store [`STATION_HOURLY`]:
/// what the warehouse's fact table holds.
pub fn hourly(changes: &KStream<String, StationChange>) -> KTable<Windowed<String>, Availability> {
    changes
        .group_by_key(grouped_changes())
        .windowed_by(TimeWindows::tumbling(Duration::from_millis(HOUR_MS as u64)).grace(GRACE))
        .aggregate(
            Availability::default,
            |_k, c, a| a.record(c),
            availability(STATION_HOURLY),
        )
}

fn windowed_json(size: Duration) -> Produced<Windowed<String>, Availability> {
    Produced::with(
        WindowedSerde::time(Serdes::string(), size.as_millis() as i64),
        Serdes::json::<Availability>(),
    )
}

/// The streaming job: tracks, alerts, city totals and the windows, final results to topics.
pub fn streaming(config: &StreamingConfig) -> Result<Topology> {
    let b = StreamsBuilder::new();
    let stations = match &config.source {
        Some(source) => b.stream_from_connector(source.clone(), consumed()),
        None => b.stream(STATIONS_TOPIC, consumed()),
    };
    let tracks = tracks(&stations);
    let suppressed = || Suppressed::until_window_closes().close_when_idle(config.idle_close);

    tracks
        .to_stream()
        .filter(|_k, t| t.alert_changed)
        .map_values(|t| t.alert.clone())
        .to(
            ALERTS_TOPIC,
            Produced::with(Serdes::string(), Serdes::option(Serdes::json::<Alert>())),
        );

    tracks
        .group_by(
            |_k, t| {
                let contract = t.latest.as_ref().map(|s| s.contract_name.clone());
                (contract.unwrap_or_default(), t.latest.clone())
            },
            Grouped::with(Serdes::string(), Serdes::json::<Option<Station>>()).named("by-city"),
        )
        .aggregate(
            CityTotals::default,
            |_c, s, totals| match s {
                Some(s) => totals.apply(s, 1),
                None => totals,
            },
            |_c, s, totals| match s {
                Some(s) => totals.apply(s, -1),
                None => totals,
            },
            Materialized::named(CITY_TOTALS).value_serde(Serdes::json::<CityTotals>()),
        );

    let changes = changes(&tracks);
    changes
        .group_by_key(grouped_changes())
        .windowed_by(TimeWindows::tumbling(TEN_MINUTES).grace(GRACE))
        .aggregate(
            Availability::default,
            |_k, c, a| a.record(c),
            availability(STATION_10MIN),
        )
        .suppress(suppressed())
        .to_stream()
        .to(STATION_10MIN_TOPIC, windowed_json(TEN_MINUTES));

    hourly(&changes).suppress(suppressed()).to_stream().to(
        STATION_HOURLY_TOPIC,
        windowed_json(Duration::from_millis(HOUR_MS as u64)),
    );

    changes
        .group_by(
            |_k, c| c.contract.clone(),
            grouped_changes().named("changes-by-city"),
        )
        .windowed_by(
            TimeWindows::hopping(Duration::from_millis(HOUR_MS as u64), TEN_MINUTES).grace(GRACE),
        )
        .aggregate(
            Availability::default,
            |_k, c, a| a.record(c),
            availability(CITY_HOURLY),
        )
        .suppress(suppressed())
        .to_stream()
        .to(
            CITY_HOURLY_TOPIC,
            windowed_json(Duration::from_millis(HOUR_MS as u64)),
        );
    b.build()
}

/// The warehouse's hourly fact table.
pub const FACTS_TABLE: &str = "station_hourly_facts";
/// The warehouse's station dimension.
pub const DIM_TABLE: &str = "station_dim";

/// What the daily batch reads and where it loads it.
#[derive(Debug, Clone)]
pub struct BatchConfig {
    /// The UTC day to load, as days since 1970-01-01.
    pub day: i64,
    /// How far before the day the batch starts reading, so that each station's first record
    /// of the day finds the state before it (bikes taken and returned are differences).
    pub lookback: Duration,
    /// The warehouse; `None` keeps the results in the batch's stores only.
    pub postgres_url: Option<String>,
}

impl BatchConfig {
    /// The day's first and last-plus-one epoch millisecond.
    pub fn day_range(&self) -> (i64, i64) {
        (self.day * DAY_MS, (self.day + 1) * DAY_MS)
    }

    /// The first event time read.
    pub fn read_from(&self) -> i64 {
        self.day * DAY_MS - self.lookback.as_millis() as i64
    }
}

/// Splits a `contract:number` key.
pub fn split_key(key: &str) -> (String, i64) {
    match key.rsplit_once(':') {
        Some((contract, number)) => (contract.to_string(), number.parse().unwrap_or(-1)),
        None => (key.to_string(), -1),
    }
}

/// The fact table's value columns after its key (`contract`, `station_number`, `hour_start_ms`).
pub const FACT_COLUMNS: [&str; 15] = [
    "samples",
    "mean_bikes",
    "min_bikes",
    "max_bikes",
    "mean_stands",
    "bikes_sum",
    "stands_sum",
    "last_bikes",
    "last_stands",
    "empty_samples",
    "full_samples",
    "closed_samples",
    "bikes_taken",
    "bikes_returned",
    "last_update_ms",
];

fn fact_values(a: &Availability) -> Vec<SqlValue> {
    vec![
        a.samples.into(),
        a.mean_bikes().into(),
        a.bikes_min.into(),
        a.bikes_max.into(),
        a.mean_stands().into(),
        a.bikes_sum.into(),
        a.stands_sum.into(),
        a.last_bikes.into(),
        a.last_stands.into(),
        a.empty_samples.into(),
        a.full_samples.into(),
        a.closed_samples.into(),
        a.taken.into(),
        a.returned.into(),
        a.last_at.into(),
    ]
}

/// The dimension's value columns after its key (`contract`, `station_number`).
pub const DIM_COLUMNS: [&str; 8] = [
    "name",
    "address",
    "lat",
    "lng",
    "banking",
    "bonus",
    "bike_stands",
    "last_update_ms",
];

fn dim_values(s: &Station) -> Vec<SqlValue> {
    vec![
        s.name.clone().into(),
        s.address.clone().into(),
        s.position.lat.into(),
        s.position.lng.into(),
        s.banking.into(),
        s.bonus.into(),
        s.bike_stands.into(),
        s.last_update.into(),
    ]
}

/// The daily batch: the same [`tracks`], [`changes`] and [`hourly`] steps over the records
/// of `[day − lookback, day end)`; the hours of the day go to the fact table and the
/// stations seen that day to the dimension, each through streamkit's exactly-once Postgres
/// sink (the dimension in a sub-topology of its own: one Postgres sink per sub-topology).
pub fn batch(config: &BatchConfig) -> Result<Topology> {
    let b = StreamsBuilder::new();
    let (from, to) = (config.read_from(), config.day_range().1);
    let (day_start, day_end) = config.day_range();
    let stations = b
        .stream(STATIONS_TOPIC, consumed())
        .filter(move |_k, s| (from..to).contains(&s.last_update));
    let tracks = tracks(&stations);
    let hours = hourly(&changes(&tracks))
        .filter(move |w, _| (day_start..day_end).contains(&w.window.start));
    if let Some(url) = &config.postgres_url {
        hours.to_postgres(
            PostgresSink::new(url.clone(), FACTS_TABLE)
                .key_columns(
                    ["contract", "station_number", "hour_start_ms"],
                    |w: &Windowed<String>| {
                        let (contract, number) = split_key(&w.key);
                        vec![contract.into(), number.into(), w.window.start.into()]
                    },
                )
                .value_columns(FACT_COLUMNS, fact_values),
        );
        tracks
            .to_stream()
            .filter(move |_k, t| {
                t.latest
                    .as_ref()
                    .is_some_and(|s| (day_start..day_end).contains(&s.last_update))
            })
            .flat_map_values(|t| t.latest)
            .repartition(
                Repartitioned::with(Serdes::string(), Serdes::json::<Station>())
                    .named("station-dim"),
            )
            .map_values(Some)
            .to_postgres(
                PostgresSink::new(url.clone(), DIM_TABLE)
                    .key_columns(["contract", "station_number"], |key: &String| {
                        let (contract, number) = split_key(key);
                        vec![contract.into(), number.into()]
                    })
                    .value_columns(DIM_COLUMNS, dim_values),
            );
    }
    b.build()
}
