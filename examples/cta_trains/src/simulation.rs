//! The simulation (the original's `producers/simulation.py` with its `Line`, `Train`,
//! `Station`, `Turnstile` and `Weather` models): trains running along the red, blue and green
//! lines in station order, riders through the turnstiles at the rates of
//! `ridership_seed.csv` × `ridership_curve.csv`, and an hourly weather reading.
//!
//! [`Simulation`] is the model alone, one simulated minute per [`Simulation::minute`] call;
//! [`spawn`] runs it against a cluster: arrivals and turnstile entries as Avro records keyed by
//! `{"timestamp": …}` on `org.chicago.cta.station.arrivals.v1` and `org.chicago.cta.turnstiles`,
//! the weather posted over HTTP to the REST proxy, paced by the time scale, with a progress
//! line.
//!
//! **Trains.** Each line has `trains_per_line` trains (`BL001` …), spread evenly along the
//! line, each arriving at the next station every `minutes_between_stations` minutes: towards
//! the station of the highest `order` in direction `a`, back in direction `b`, turning at the
//! ends. A train may break down on arriving (`train_status` `broken_down`) and stay 10–20
//! minutes before it goes on in service; the trains behind it wait at their platforms (one
//! track each way: no train passes another). Each arrival names the station the train arrived at
//! before and the direction it had there (`prev_station_id`, `prev_direction`), as the
//! original's did, so a consumer can move the train off it.
//!
//! **Turnstiles.** Every simulated minute each station lets through a Poisson number of riders
//! whose mean is its average rides on that day of the week × the share of the hour ÷ 60; a
//! station on two lines splits its riders between their turnstiles.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use streamkit::serde::Serde;

use crate::clock;
use crate::data::{Line, Ridership, Route, Station};
use crate::model::{
    ARRIVALS_TOPIC, Arrival, Serdes, TURNSTILES_TOPIC, TimestampKey, Turnstile, Weather,
};
use crate::rng::Rng;
use crate::weather::{self, WeatherModel};

/// How to simulate.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// The simulated start (see [`clock`]).
    pub start: i64,
    /// Simulated minutes to run; 0 runs until stopped.
    pub minutes: u64,
    /// Simulated seconds per real second (60: one simulated minute per second); 0 runs as
    /// fast as the broker takes the records.
    pub time_scale: f64,
    /// Trains on each line.
    pub trains_per_line: u32,
    /// Minutes from one station to the next.
    pub minutes_between_stations: u32,
    /// The chance that a train breaks down when it arrives.
    pub breakdown_chance: f64,
    /// Seed of the pseudo-random choices.
    pub seed: u64,
    /// Show a progress line on standard error.
    pub progress: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            start: clock::at(2018, 10, 1, 5, 0),
            minutes: 24 * 60,
            time_scale: 60.0,
            trains_per_line: 10,
            minutes_between_stations: 2,
            breakdown_chance: 0.005,
            seed: 7,
            progress: false,
        }
    }
}

/// What one simulated minute produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A train arrived at a station.
    Arrival(Arrival),
    /// A rider went through a turnstile.
    Turnstile(Turnstile),
    /// The hourly weather reading.
    Weather(Weather),
}

/// A train's last arrival.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainState {
    /// Its line.
    pub line: Line,
    /// The station it arrived at last.
    pub station_id: i32,
    /// The direction it arrived in.
    pub direction: String,
    /// Its status then.
    pub train_status: String,
    /// The arrival's number in the simulation's sequence of arrivals.
    pub seq: u64,
}

struct Train {
    id: String,
    route: usize,
    /// Position along the route's round trip: 0 ..= n-1 going `a`, then back down.
    pos: usize,
    next_at: u64,
    broken_until: Option<u64>,
    last: Option<(i32, String)>,
}

/// A turnstile: a station of a line and its riders per day.
struct Gate {
    station_id: i32,
    station_name: String,
    line: Line,
    ridership: Ridership,
    /// Lines the station is on (its riders are split between their turnstiles).
    share: f64,
}

/// The simulation model.
pub struct Simulation {
    opts: SimOptions,
    routes: Vec<Route>,
    trains: Vec<Train>,
    gates: Vec<Gate>,
    curve: [f64; 24],
    weather: WeatherModel,
    rng: Rng,
    minute: u64,
    arrivals: u64,
    states: BTreeMap<String, TrainState>,
}

impl Simulation {
    /// A simulation of the lines of `stations`, with riders from `ridership` and `curve`.
    pub fn new(
        opts: SimOptions,
        stations: &[Station],
        ridership: &BTreeMap<i32, Ridership>,
        curve: [f64; 24],
    ) -> Self {
        let routes = crate::data::routes(stations);
        let mut trains = Vec::new();
        for (r, route) in routes.iter().enumerate() {
            let round = round_trip(route.stations.len());
            for i in 0..opts.trains_per_line as usize {
                trains.push(Train {
                    id: format!("{}L{:03}", route.line.code(), i + 1),
                    route: r,
                    pos: i * round / opts.trains_per_line.max(1) as usize,
                    // Staggered, so that a line's arrivals do not all fall in one minute.
                    next_at: 1 + (i as u64 % u64::from(opts.minutes_between_stations.max(1))),
                    broken_until: None,
                    last: None,
                });
            }
        }
        let mut lines_of: BTreeMap<i32, u32> = BTreeMap::new();
        for route in &routes {
            for s in &route.stations {
                *lines_of.entry(s.station_id).or_default() += 1;
            }
        }
        let gates = routes
            .iter()
            .flat_map(|route| {
                route.stations.iter().map(|s| Gate {
                    station_id: s.station_id,
                    station_name: s.name.clone(),
                    line: route.line,
                    ridership: ridership.get(&s.station_id).copied().unwrap_or_default(),
                    share: 1.0 / f64::from(lines_of[&s.station_id]),
                })
            })
            .collect();
        let month = clock::civil(opts.start).month;
        Simulation {
            weather: WeatherModel::new(month, opts.seed),
            rng: Rng::new(opts.seed),
            opts,
            routes,
            trains,
            gates,
            curve,
            minute: 0,
            arrivals: 0,
            states: BTreeMap::new(),
        }
    }

    /// The simulated time now.
    pub fn now(&self) -> i64 {
        self.opts.start + self.minute as i64 * 60_000
    }

    /// Simulated minutes done.
    pub fn minutes_done(&self) -> u64 {
        self.minute
    }

    /// The routes the trains run on.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Every train's last arrival, by train id.
    pub fn train_states(&self) -> &BTreeMap<String, TrainState> {
        &self.states
    }

    /// The start: every train's first arrival at its position, and the first weather
    /// reading.
    pub fn start(&mut self) -> Vec<Event> {
        let c = clock::civil(self.now());
        let mut events = vec![Event::Weather(self.weather.next(c.month, c.hour))];
        for i in 0..self.trains.len() {
            events.push(Event::Arrival(self.arrive(i, "in_service")));
        }
        events
    }

    /// Advances one simulated minute and returns what happened in it.
    pub fn minute(&mut self) -> Vec<Event> {
        self.minute += 1;
        let m = self.minute;
        let c = clock::civil(self.now());
        let mut events = Vec::new();
        if c.minute == 0 {
            events.push(Event::Weather(self.weather.next(c.month, c.hour)));
        }
        for i in 0..self.trains.len() {
            let t = &mut self.trains[i];
            if m < t.next_at {
                continue;
            }
            let round = round_trip(self.routes[t.route].stations.len());
            let (route, next) = (t.route, (t.pos + 1) % round);
            // One track each way: a train waits behind the train at the next platform (a
            // broken-down one, or one held behind it) rather than passing it.
            if self
                .trains
                .iter()
                .any(|o| o.route == route && o.pos == next)
            {
                self.trains[i].next_at = m + 1;
                continue;
            }
            let t = &mut self.trains[i];
            t.broken_until = None;
            t.pos = next;
            let status = if self.rng.unit() < self.opts.breakdown_chance {
                let until = m + 10 + self.rng.below(11);
                let t = &mut self.trains[i];
                t.broken_until = Some(until);
                t.next_at = until;
                "broken_down"
            } else {
                self.trains[i].next_at = m + u64::from(self.opts.minutes_between_stations.max(1));
                "in_service"
            };
            events.push(Event::Arrival(self.arrive(i, status)));
        }
        for g in &self.gates {
            let rides = g.ridership.on(c.weekday) * self.curve[c.hour as usize] * g.share;
            for _ in 0..self.rng.poisson(rides / 60.0) {
                events.push(Event::Turnstile(Turnstile {
                    station_id: g.station_id,
                    station_name: g.station_name.clone(),
                    line: g.line.as_str().to_string(),
                }));
            }
        }
        events
    }

    /// Train `i` arrives where its position is.
    fn arrive(&mut self, i: usize, status: &str) -> Arrival {
        let t = &mut self.trains[i];
        let route = &self.routes[t.route];
        let n = route.stations.len();
        let (index, direction) = if t.pos == 0 {
            (0, "b")
        } else if t.pos < n {
            (t.pos, "a")
        } else {
            (round_trip(n) - t.pos, "b")
        };
        let station_id = route.stations[index].station_id;
        let (prev_station_id, prev_direction) = match t.last.take() {
            Some((s, d)) => (Some(s), Some(d)),
            None => (None, None),
        };
        t.last = Some((station_id, direction.to_string()));
        self.arrivals += 1;
        self.states.insert(
            t.id.clone(),
            TrainState {
                line: route.line,
                station_id,
                direction: direction.to_string(),
                train_status: status.to_string(),
                seq: self.arrivals,
            },
        );
        Arrival {
            station_id,
            train_id: t.id.clone(),
            direction: direction.to_string(),
            line: route.line.as_str().to_string(),
            train_status: status.to_string(),
            prev_station_id,
            prev_direction,
        }
    }
}

/// Positions of a round trip over `n` stations (there and back, each end once).
fn round_trip(n: usize) -> usize {
    (2 * n.saturating_sub(1)).max(1)
}

/// What the running simulation has done, shared with the page and the tests.
#[derive(Debug, Default)]
pub struct SimStats {
    /// The simulated time now (ms, see [`clock`]).
    pub sim_time: AtomicI64,
    /// Simulated minutes done.
    pub minutes: AtomicU64,
    /// Arrivals produced.
    pub arrivals: AtomicU64,
    /// Turnstile entries produced.
    pub entries: AtomicU64,
    /// Weather readings the REST proxy took.
    pub weather_readings: AtomicU64,
    /// Weather readings it refused or could not be reached for.
    pub weather_failures: AtomicU64,
    /// The simulation ran its minutes and every record was acknowledged.
    pub finished: AtomicBool,
    /// Per-station and per-train detail.
    pub detail: Mutex<SimDetail>,
}

/// What was produced, in detail (what the tests check the pipeline's results against).
#[derive(Debug, Clone, Default)]
pub struct SimDetail {
    /// Turnstile entries produced per station id.
    pub entries_per_station: BTreeMap<i32, u64>,
    /// The last weather reading the REST proxy took.
    pub last_weather: Option<Weather>,
    /// Every train's last arrival, by train id.
    pub trains: BTreeMap<String, TrainState>,
}

/// Counts failed deliveries.
#[derive(Default)]
struct DeliveryCheck {
    failed: AtomicU64,
}

impl ClientContext for DeliveryCheck {}

impl ProducerContext for DeliveryCheck {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            tracing::error!(error = %e, "record not delivered");
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Where the simulation sends its events.
#[derive(Debug, Clone)]
pub struct Targets {
    /// Kafka bootstrap servers.
    pub bootstrap_servers: String,
    /// Avro serdes (and the registry they use).
    pub serdes: Serdes,
    /// The REST proxy's base URL, `http://host:port`.
    pub rest_proxy: String,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn send(
    producer: &BaseProducer<DeliveryCheck>,
    topic: &str,
    key: &[u8],
    value: &[u8],
    timestamp: i64,
) -> anyhow::Result<()> {
    let mut record = BaseRecord::to(topic)
        .key(key)
        .payload(value)
        .timestamp(timestamp);
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                producer.poll(Duration::from_millis(10));
                record = back;
            }
            Err((e, _)) => return Err(e).with_context(|| format!("producing to {topic}")),
        }
    }
}

/// Runs `sim` against `targets` until its minutes are done or `stop` is set.
pub fn run(
    mut sim: Simulation,
    targets: &Targets,
    stats: &SimStats,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let producer: BaseProducer<DeliveryCheck> = ClientConfig::new()
        .set("bootstrap.servers", &targets.bootstrap_servers)
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .create_with_context(DeliveryCheck::default())
        .context("creating the producer")?;
    let (arrival_key, arrival, turnstile_key, turnstile) = (
        targets.serdes.arrival_key(),
        targets.serdes.arrival(),
        targets.serdes.turnstile_key(),
        targets.serdes.turnstile(),
    );
    let opts = sim.opts.clone();
    let bar = if opts.progress && std::io::stderr().is_terminal() {
        let bar = if opts.minutes > 0 {
            ProgressBar::new(opts.minutes)
        } else {
            ProgressBar::new_spinner()
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} simulating [{bar:25}] {pos}/{len} min {msg} ({elapsed})",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(250));
        bar
    } else {
        ProgressBar::hidden()
    };
    let log_progress = opts.progress && bar.is_hidden();

    let started = Instant::now();
    let mut events = sim.start();
    let (mut key, mut value) = (Vec::new(), Vec::new());
    // The turnstile events' keys: the time of the event in milliseconds, as the original
    // producer's, but one millisecond apart within a batch. The KSQL `turnstile` table holds a
    // row per message key, so two entries sharing a key would count once.
    let mut turnstile_ms = 0i64;
    loop {
        let ts = now_ms();
        let (mut arrivals, mut entries) = (0u64, 0u64);
        let mut per_station: BTreeMap<i32, u64> = BTreeMap::new();
        for event in &events {
            key.clear();
            value.clear();
            match event {
                Event::Arrival(a) => {
                    arrival_key.serialize(
                        ARRIVALS_TOPIC,
                        &TimestampKey { timestamp: ts },
                        &mut key,
                    )?;
                    arrival.serialize(ARRIVALS_TOPIC, a, &mut value)?;
                    send(&producer, ARRIVALS_TOPIC, &key, &value, ts)?;
                    arrivals += 1;
                }
                Event::Turnstile(t) => {
                    turnstile_ms = ts.max(turnstile_ms + 1);
                    turnstile_key.serialize(
                        TURNSTILES_TOPIC,
                        &TimestampKey {
                            timestamp: turnstile_ms,
                        },
                        &mut key,
                    )?;
                    turnstile.serialize(TURNSTILES_TOPIC, t, &mut value)?;
                    send(&producer, TURNSTILES_TOPIC, &key, &value, ts)?;
                    entries += 1;
                    *per_station.entry(t.station_id).or_default() += 1;
                }
                Event::Weather(w) => match weather::post(&targets.rest_proxy, ts, w) {
                    Ok(()) => {
                        stats.weather_readings.fetch_add(1, Ordering::Relaxed);
                        stats.detail.lock().expect("stats lock").last_weather = Some(w.clone());
                    }
                    Err(e) => {
                        stats.weather_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(error = %format!("{e:#}"), "the weather station could not post its reading");
                    }
                },
            }
            producer.poll(Duration::ZERO);
        }
        stats.arrivals.fetch_add(arrivals, Ordering::Relaxed);
        stats.entries.fetch_add(entries, Ordering::Relaxed);
        {
            let mut detail = stats.detail.lock().expect("stats lock");
            for (s, n) in per_station {
                *detail.entries_per_station.entry(s).or_default() += n;
            }
            detail.trains = sim.train_states().clone();
        }
        stats.sim_time.store(sim.now(), Ordering::Relaxed);
        stats.minutes.store(sim.minutes_done(), Ordering::Relaxed);
        let msg = format!(
            "{} · {} arrivals · {} turnstile entries · {} weather readings",
            clock::format(sim.now()),
            stats.arrivals.load(Ordering::Relaxed),
            stats.entries.load(Ordering::Relaxed),
            stats.weather_readings.load(Ordering::Relaxed),
        );
        bar.set_position(sim.minutes_done());
        bar.set_message(msg.clone());
        if log_progress && sim.minutes_done().is_multiple_of(60) {
            tracing::info!("simulated {msg}");
        }

        if opts.minutes > 0 && sim.minutes_done() >= opts.minutes {
            break;
        }
        if opts.time_scale > 0.0 {
            let due = started
                + Duration::from_secs_f64((sim.minutes_done() + 1) as f64 * 60.0 / opts.time_scale);
            while let Some(wait) = due.checked_duration_since(Instant::now()) {
                producer.poll(wait.min(Duration::from_millis(50)));
                if stop.load(Ordering::Relaxed) {
                    break;
                }
            }
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        events = sim.minute();
    }
    producer
        .flush(Duration::from_secs(60))
        .context("flushing the simulation's records")?;
    let failed = producer.context().failed.load(Ordering::Relaxed);
    if failed > 0 {
        bail!("{failed} records were not delivered");
    }
    bar.finish_with_message(format!("done: {}", clock::format(sim.now())));
    if !stop.load(Ordering::Relaxed) {
        stats.finished.store(true, Ordering::Relaxed);
        tracing::info!(
            arrivals = stats.arrivals.load(Ordering::Relaxed),
            entries = stats.entries.load(Ordering::Relaxed),
            "the simulation is done; the dashboard stays up"
        );
    }
    Ok(())
}

/// [`run`] on a thread of its own.
pub fn spawn(
    sim: Simulation,
    targets: Targets,
    stats: Arc<SimStats>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<anyhow::Result<()>> {
    std::thread::Builder::new()
        .name("cta-simulation".into())
        .spawn(move || run(sim, &targets, &stats, &stop))
        .expect("spawning the simulation thread")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sim(opts: SimOptions) -> Simulation {
        Simulation::new(
            opts,
            &crate::data::stations().unwrap(),
            &crate::data::ridership().unwrap(),
            crate::data::ridership_curve().unwrap(),
        )
    }

    #[test]
    fn trains_run_station_by_station_in_order_and_turn_at_the_ends() {
        let mut s = sim(SimOptions {
            breakdown_chance: 0.0,
            ..SimOptions::default()
        });
        let routes = s.routes().to_vec();
        let mut events = s.start();
        for _ in 0..300 {
            events.extend(s.minute());
        }
        let arrivals: Vec<&Arrival> = events
            .iter()
            .filter_map(|e| match e {
                Event::Arrival(a) => Some(a),
                _ => None,
            })
            .collect();
        // 30 trains, one station every 2 minutes, 300 minutes.
        assert_eq!(arrivals.len(), 30 + 30 * 150);
        let mut last: BTreeMap<&str, &Arrival> = BTreeMap::new();
        for a in arrivals {
            let route = routes.iter().find(|r| r.line.as_str() == a.line).unwrap();
            let at = |id: i32| {
                route
                    .stations
                    .iter()
                    .position(|s| s.station_id == id)
                    .unwrap()
            };
            if let Some(prev) = last.get(a.train_id.as_str()) {
                assert_eq!(a.prev_station_id, Some(prev.station_id));
                assert_eq!(a.prev_direction.as_deref(), Some(prev.direction.as_str()));
                let (from, to) = (at(prev.station_id), at(a.station_id));
                // One station further, in the direction of travel.
                match a.direction.as_str() {
                    "a" => assert_eq!(to, from + 1, "{a:?}"),
                    _ => assert_eq!(to + 1, from, "{a:?}"),
                }
            } else {
                assert_eq!(
                    (a.prev_station_id, a.prev_direction.as_deref()),
                    (None, None)
                );
            }
            last.insert(&a.train_id, a);
        }
        assert!(last.contains_key("BL001") && last.contains_key("RL010"));
    }

    #[test]
    fn turnstile_entries_follow_the_ridership_tables() {
        // Monday 2018-10-01 from 08:00: the morning peak (12.5% of the day in this hour).
        let mut s = sim(SimOptions {
            start: clock::at(2018, 10, 1, 8, 0),
            ..SimOptions::default()
        });
        let mut clark_lake = 0;
        let mut total = 0;
        for _ in 0..59 {
            for e in s.minute() {
                if let Event::Turnstile(t) = e {
                    total += 1;
                    if t.station_id == 40380 {
                        clark_lake += 1;
                    }
                }
            }
        }
        // Clark/Lake: 22811.6 weekday rides × 0.125 × 59/60 ≈ 2804.
        assert!((2_600..3_000).contains(&clark_lake), "{clark_lake}");
        assert!(total > 40_000, "{total}");
    }
}
