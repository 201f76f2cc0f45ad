//! The records on the topics, their Avro schemas (the original producers' schema files, in
//! `schemas/`) and their serdes.

use apache_avro::Schema;
use serde::{Deserialize, Serialize};
use streamkit::serde::avro::{Avro, RegistryClient};

/// Train arrivals, one topic for every station (as the original producers could be set up).
pub const ARRIVALS_TOPIC: &str = "org.chicago.cta.station.arrivals.v1";
/// Turnstile entries, one record per rider.
pub const TURNSTILES_TOPIC: &str = "org.chicago.cta.turnstiles";
/// Hourly weather readings, posted over HTTP to the REST-proxy-compatible ingest.
pub const WEATHER_TOPIC: &str = "org.chicago.cta.weather.v1";
/// The stations table's rows, from PostgreSQL (topic prefix `org.chicago.cta.` + table).
pub const STATIONS_TOPIC: &str = "org.chicago.cta.stations";
/// The transformed stations, written by the Faust-style agent.
pub const STATIONS_TABLE_TOPIC: &str = "org.chicago.cta.stations.table.v1";
/// The KSQL summary table's topic (`CREATE TABLE turnstile_summary … AS SELECT`).
pub const TURNSTILE_SUMMARY_TOPIC: &str = "TURNSTILE_SUMMARY";

/// `schemas/arrival_key.json`.
pub const ARRIVAL_KEY_SCHEMA: &str = include_str!("../schemas/arrival_key.json");
/// `schemas/arrival_value.json`.
pub const ARRIVAL_VALUE_SCHEMA: &str = include_str!("../schemas/arrival_value.json");
/// `schemas/turnstile_key.json`.
pub const TURNSTILE_KEY_SCHEMA: &str = include_str!("../schemas/turnstile_key.json");
/// `schemas/turnstile_value.json`.
pub const TURNSTILE_VALUE_SCHEMA: &str = include_str!("../schemas/turnstile_value.json");
/// `schemas/weather_key.json`.
pub const WEATHER_KEY_SCHEMA: &str = include_str!("../schemas/weather_key.json");
/// `schemas/weather_value.json`.
pub const WEATHER_VALUE_SCHEMA: &str = include_str!("../schemas/weather_value.json");

/// The key of every produced event: when it happened (ms since 1970, simulated time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimestampKey {
    /// Milliseconds since 1970.
    pub timestamp: i64,
}

/// A train arriving at a station (`arrival.value`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arrival {
    /// The station arrived at.
    pub station_id: i32,
    /// The train, e.g. `BL004`.
    pub train_id: String,
    /// `a` (towards the end of the line) or `b` (towards its start).
    pub direction: String,
    /// `red`, `blue` or `green`.
    pub line: String,
    /// `in_service`, `out_of_service` or `broken_down`.
    pub train_status: String,
    /// The station the train arrived at before, if any.
    pub prev_station_id: Option<i32>,
    /// The direction it arrived there in, if any.
    pub prev_direction: Option<String>,
}

/// One rider through a turnstile (`turnstile.value`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turnstile {
    /// The station.
    pub station_id: i32,
    /// Its name.
    pub station_name: String,
    /// The line whose turnstile it is.
    pub line: String,
}

/// A weather reading (`weather.value`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Weather {
    /// Degrees Fahrenheit.
    pub temperature: f32,
    /// The sky.
    pub status: WeatherStatus,
}

/// The weather's `status`, the symbols of the schema's enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeatherStatus {
    /// `sunny`.
    Sunny,
    /// `partly_cloudy`.
    PartlyCloudy,
    /// `cloudy`.
    Cloudy,
    /// `windy`.
    Windy,
    /// `precipitation`.
    Precipitation,
}

impl WeatherStatus {
    /// The five, in the schema's order.
    pub const ALL: [WeatherStatus; 5] = [
        WeatherStatus::Sunny,
        WeatherStatus::PartlyCloudy,
        WeatherStatus::Cloudy,
        WeatherStatus::Windy,
        WeatherStatus::Precipitation,
    ];

    /// The symbol, e.g. `partly_cloudy`.
    pub fn as_str(self) -> &'static str {
        match self {
            WeatherStatus::Sunny => "sunny",
            WeatherStatus::PartlyCloudy => "partly_cloudy",
            WeatherStatus::Cloudy => "cloudy",
            WeatherStatus::Windy => "windy",
            WeatherStatus::Precipitation => "precipitation",
        }
    }
}

/// A station as the Faust-style transform writes it to `org.chicago.cta.stations.table.v1`
/// (the original's `TransformedStation`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransformedStation {
    /// The station's id.
    pub station_id: i32,
    /// Its name.
    pub station_name: String,
    /// Its position along the line.
    pub order: i32,
    /// `red`, `blue` or `green`.
    pub line: String,
}

/// Parses one of the schema files above.
pub fn schema(text: &str) -> Schema {
    Schema::parse_str(text).expect("the shipped schema files parse")
}

/// The Avro serdes of the three produced topics, sharing one registry client.
#[derive(Clone, Debug)]
pub struct Serdes {
    /// The registry they register and look schemas up in.
    pub registry: RegistryClient,
}

impl Serdes {
    /// Serdes against `registry`.
    pub fn new(registry: &RegistryClient) -> Self {
        Serdes {
            registry: registry.clone(),
        }
    }

    /// `arrival.key`.
    pub fn arrival_key(&self) -> Avro<TimestampKey> {
        Avro::with_schema(&self.registry, schema(ARRIVAL_KEY_SCHEMA)).key()
    }

    /// `arrival.value`.
    pub fn arrival(&self) -> Avro<Arrival> {
        Avro::with_schema(&self.registry, schema(ARRIVAL_VALUE_SCHEMA))
    }

    /// `turnstile.key`.
    pub fn turnstile_key(&self) -> Avro<TimestampKey> {
        Avro::with_schema(&self.registry, schema(TURNSTILE_KEY_SCHEMA)).key()
    }

    /// `turnstile.value`.
    pub fn turnstile(&self) -> Avro<Turnstile> {
        Avro::with_schema(&self.registry, schema(TURNSTILE_VALUE_SCHEMA))
    }

    /// `weather.key`.
    pub fn weather_key(&self) -> Avro<TimestampKey> {
        Avro::with_schema(&self.registry, schema(WEATHER_KEY_SCHEMA)).key()
    }

    /// `weather.value`.
    pub fn weather(&self) -> Avro<Weather> {
        Avro::with_schema(&self.registry, schema(WEATHER_VALUE_SCHEMA))
    }
}
