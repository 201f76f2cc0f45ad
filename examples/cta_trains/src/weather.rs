//! The weather station (the original's `producers/models/weather.py`): an hourly reading
//! posted over HTTP to a Kafka REST Proxy — here streamkit's REST-Proxy-compatible ingest —
//! because the station's hardware could not run a Kafka client. The request is the
//! original's: `POST {url}/topics/org.chicago.cta.weather.v1` with
//! `Content-Type: application/vnd.kafka.avro.v2+json` and a body carrying the key and value
//! schemas as JSON strings and one record keyed by `{"timestamp": …}`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::json;

use crate::model::{
    WEATHER_KEY_SCHEMA, WEATHER_TOPIC, WEATHER_VALUE_SCHEMA, Weather, WeatherStatus,
};
use crate::rng::Rng;

/// Chicago's normal daily mean temperature per month (°F, January first).
const MONTHLY_NORMAL_F: [f64; 12] = [
    26.0, 30.0, 40.0, 50.0, 61.0, 71.0, 76.0, 75.0, 68.0, 55.0, 42.0, 31.0,
];

/// The weather model: the original's (a temperature that moves by a triangular step whose
/// mode follows the season, and a status drawn from the five), with the walk pulled towards
/// the month's normal and a daily swing, so that a simulated day or week stays plausible,
/// and a status that tends to last a few hours.
#[derive(Debug, Clone)]
pub struct WeatherModel {
    temperature: f64,
    status: usize,
    rng: Rng,
}

impl WeatherModel {
    /// The weather at the start of `month` (1–12), seeded.
    pub fn new(month: u32, seed: u64) -> Self {
        let mut rng = Rng::new(seed ^ 0x0057_4541_5448_4552);
        let status = rng.below(WeatherStatus::ALL.len() as u64) as usize;
        WeatherModel {
            temperature: MONTHLY_NORMAL_F[(month.clamp(1, 12) - 1) as usize],
            status,
            rng,
        }
    }

    /// The next hourly reading, for `month` (1–12) at `hour` (0–23).
    pub fn next(&mut self, month: u32, hour: u32) -> Weather {
        let m = (month.clamp(1, 12) - 1) as usize;
        // As the original: colder steps in winter, warmer in summer.
        let mode = match m {
            0..=3 | 10 | 11 => -1.0,
            6..=8 => 1.0,
            _ => 0.0,
        };
        let step = self.rng.triangular(-10.0, 10.0, mode) * 0.3;
        // Coldest around 5:00, warmest around 15:00, ±8 °F.
        let phase = (f64::from(hour) - 15.0) / 24.0 * std::f64::consts::TAU;
        let target = MONTHLY_NORMAL_F[m] + 8.0 * phase.cos();
        self.temperature += step + (target - self.temperature) * 0.25;
        self.temperature = self.temperature.clamp(-20.0, 100.0);
        if self.rng.unit() < 0.3 {
            self.status = self.rng.below(WeatherStatus::ALL.len() as u64) as usize;
        }
        Weather {
            temperature: self.temperature as f32,
            status: WeatherStatus::ALL[self.status],
        }
    }
}

/// The REST Proxy's produce request for one reading, as the original sent it.
pub fn request_body(timestamp: i64, weather: &Weather) -> serde_json::Value {
    let schema = |text: &str| {
        let parsed: serde_json::Value =
            serde_json::from_str(text).expect("the shipped schema files are JSON");
        // `json.dumps(schema)`: the schema as a JSON string.
        parsed.to_string()
    };
    json!({
        "key_schema": schema(WEATHER_KEY_SCHEMA),
        "value_schema": schema(WEATHER_VALUE_SCHEMA),
        "records": [{
            "key": {"timestamp": timestamp},
            "value": {
                "temperature": weather.temperature,
                "status": weather.status.as_str(),
            },
        }],
    })
}

/// Posts one reading to the REST Proxy at `url` (`http://host:port`); fails unless it
/// answers 200.
pub fn post(url: &str, timestamp: i64, weather: &Weather) -> anyhow::Result<()> {
    let host = url
        .strip_prefix("http://")
        .with_context(|| format!("the REST proxy URL {url:?} must start with http://"))?
        .trim_end_matches('/');
    let body = request_body(timestamp, weather).to_string();
    let mut stream = TcpStream::connect(host)
        .with_context(|| format!("connecting to the REST proxy at {url}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "POST /topics/{WEATHER_TOPIC} HTTP/1.1\r\nHost: {host}\r\n\
         Content-Type: application/vnd.kafka.avro.v2+json\r\n\
         Accept: application/vnd.kafka.v2+json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .context("reading the REST proxy's answer")?;
    let response = String::from_utf8_lossy(&response);
    let (head, answer) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split(' ').nth(1).unwrap_or_default();
    if status != "200" {
        bail!(
            "the REST proxy answered {}: {answer}",
            head.lines().next().unwrap_or_default()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_of_weather_stays_near_the_months_normal() {
        let mut model = WeatherModel::new(10, 7);
        let readings: Vec<Weather> = (0..24).map(|h| model.next(10, h)).collect();
        for w in &readings {
            assert!((25.0..85.0).contains(&w.temperature), "{w:?}");
            assert!(WeatherStatus::ALL.contains(&w.status));
        }
        let body = request_body(1, &readings[0]);
        assert!(body["key_schema"].as_str().unwrap().contains("weather.key"));
        assert_eq!(body["records"][0]["key"]["timestamp"], 1);
    }
}
