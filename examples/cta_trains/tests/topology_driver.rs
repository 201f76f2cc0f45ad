//! The three topologies through `TopologyTestDriver` (no broker for the records; the Avro
//! serdes talk to a real embedded schema registry): the Faust-style stations transform, the
//! KSQL summary over Avro turnstile events, and the dashboard's arrivals per station fed with
//! the simulation's own trains.

use std::collections::BTreeMap;

use cta_trains::dashboard::{self, StoreContents, TrainAt, WeatherReading};
use cta_trains::data::{self, Station};
use cta_trains::ksql::{self, Count};
use cta_trains::model::{self, TimestampKey, TransformedStation, Weather, WeatherStatus};
use cta_trains::simulation::{Event, SimOptions, Simulation};
use cta_trains::{clock, faust};
use streamkit::prelude::*;
use streamkit::registry::{EmbeddedRegistry, RegistryConfig};
use streamkit::testing::EmbeddedBroker;

/// A real schema registry (on an embedded broker) for the Avro serdes.
fn registry() -> (EmbeddedBroker, EmbeddedRegistry, model::Serdes) {
    let broker = EmbeddedBroker::start().unwrap();
    let registry =
        EmbeddedRegistry::start(RegistryConfig::embedded(&broker).listen("127.0.0.1:0")).unwrap();
    let serdes = model::Serdes::new(&registry.client().unwrap());
    (broker, registry, serdes)
}

fn simulation(opts: SimOptions) -> Simulation {
    Simulation::new(
        opts,
        &data::stations().unwrap(),
        &data::ridership().unwrap(),
        data::ridership_curve().unwrap(),
    )
}

#[test]
fn the_faust_agent_keeps_each_station_with_its_line_colour() {
    let driver = TopologyTestDriver::new(faust::topology().unwrap()).unwrap();
    let rows = driver.input_topic(
        model::STATIONS_TOPIC,
        Serdes::string(),
        Serdes::json::<Station>(),
    );
    let stations = data::stations().unwrap();
    for s in &stations {
        rows.pipe(s.stop_id.to_string(), s.clone()).unwrap();
    }

    // One record per platform of the three lines, in order, keyed by station id.
    let out = driver
        .output_topic(
            model::STATIONS_TABLE_TOPIC,
            Serdes::json::<i32>(),
            Serdes::json::<TransformedStation>(),
        )
        .read_key_values();
    let on_lines: Vec<&Station> = stations.iter().filter(|s| s.line().is_some()).collect();
    assert_eq!(out.len(), 66 + 66 + 56);
    assert_eq!(out.len(), on_lines.len());
    for ((id, t), s) in out.iter().zip(&on_lines) {
        assert_eq!(*id, s.station_id);
        assert_eq!(t.station_id, s.station_id);
        assert_eq!(t.station_name, s.station_name);
        assert_eq!(t.order, s.order);
        assert_eq!(t.line, s.line().unwrap().as_str());
    }
    // Clark/Lake is a blue and a green station: both reach the topic.
    let clark_lake: Vec<&str> = out
        .iter()
        .filter(|(id, _)| *id == 40380)
        .map(|(_, t)| t.line.as_str())
        .collect();
    assert!(
        clark_lake.contains(&"blue") && clark_lake.contains(&"green"),
        "{clark_lake:?}"
    );
    let harlem = out
        .iter()
        .find(|(_, t)| t.station_name == "Harlem/Lake")
        .unwrap();
    assert_eq!(
        (harlem.0, harlem.1.order, harlem.1.line.as_str()),
        (40020, 0, "green")
    );

    // The table: one row per station id, the last platform written.
    let table: BTreeMap<i32, TransformedStation> = driver
        .key_value_store::<i32, TransformedStation>(faust::TABLE)
        .unwrap()
        .all()
        .unwrap()
        .into_iter()
        .collect();
    let mut last: BTreeMap<i32, TransformedStation> = BTreeMap::new();
    for s in &on_lines {
        last.insert(s.station_id, faust::transform(s).unwrap());
    }
    assert_eq!(table.len(), 33 + 33 + 28 - 2);
    assert_eq!(table, last);
    // Addison is a brown-line station: no colour, left out.
    assert!(!table.contains_key(&41440));
    assert_eq!(table[&40900].station_name, "Howard");
    assert_eq!(table[&40900].line, "red");
}

#[test]
fn the_ksql_statements_count_turnstile_entries_per_station() {
    let (_broker, registry, serdes) = registry();
    let client = registry.client().unwrap();
    // The seed's statements, verbatim.
    let engine = ksql::offline(&client, ksql::KSQL_STATEMENT).unwrap();
    let driver = TopologyTestDriver::new(engine.topology().unwrap()).unwrap();
    let input = driver.input_topic(
        model::TURNSTILES_TOPIC,
        serdes.turnstile_key(),
        serdes.turnstile(),
    );
    // Ten minutes of the simulation's riders, from Monday 07:00.
    let mut sim = simulation(SimOptions {
        start: clock::at(2018, 10, 1, 7, 0),
        ..SimOptions::default()
    });
    let mut expected: BTreeMap<i32, i64> = BTreeMap::new();
    let mut n = 0i64;
    for _ in 0..10 {
        for e in sim.minute() {
            if let Event::Turnstile(t) = e {
                *expected.entry(t.station_id).or_default() += 1;
                n += 1;
                input
                    .pipe(
                        TimestampKey {
                            timestamp: 1_000 + n,
                        },
                        t.clone(),
                    )
                    .unwrap();
            }
        }
    }
    assert!(n > 2_000, "{n} entries");
    // Every station of the three lines with riders (Randolph/Wabash had none in 2018).
    assert!(expected.len() > 85, "{}", expected.len());

    // As in KSQL 5, KEY='station_id' is a hint: the table holds one row per message key (one
    // per event, keyed by its time), so each station counts all its entries.
    let summary: BTreeMap<i32, i64> = driver
        .output_topic(
            model::TURNSTILE_SUMMARY_TOPIC,
            Serdes::i32(),
            Serdes::json::<Count>(),
        )
        .read_key_values()
        .into_iter()
        .map(|(k, c)| (k, c.count))
        .collect();
    assert_eq!(summary, expected);
}

#[test]
fn arrivals_put_each_train_at_its_latest_station_and_direction() {
    let (_broker, _registry, serdes) = registry();
    let driver = TopologyTestDriver::new(dashboard::topology(&serdes).unwrap()).unwrap();

    // The stations, as the Faust agent writes them.
    let stations = driver.input_topic(
        model::STATIONS_TABLE_TOPIC,
        Serdes::json::<i32>(),
        Serdes::json::<TransformedStation>(),
    );
    for s in data::stations().unwrap() {
        if let Some(t) = faust::transform(&s) {
            stations.pipe(t.station_id, t).unwrap();
        }
    }

    // Four hours of trains, some breaking down.
    let mut sim = simulation(SimOptions {
        breakdown_chance: 0.05,
        ..SimOptions::default()
    });
    let routes = sim.routes().to_vec();
    let arrivals = driver.input_topic(
        model::ARRIVALS_TOPIC,
        serdes.arrival_key(),
        serdes.arrival(),
    );
    let weather = driver.input_topic(model::WEATHER_TOPIC, serdes.weather_key(), serdes.weather());
    let mut events = sim.start();
    for _ in 0..240 {
        events.extend(sim.minute());
    }
    let (mut ts, mut broken, mut last_weather) = (0i64, 0, None);
    for e in events {
        ts += 1;
        match e {
            Event::Arrival(a) => {
                broken += usize::from(a.train_status == "broken_down");
                arrivals.pipe(TimestampKey { timestamp: ts }, a).unwrap();
            }
            Event::Weather(w) => {
                last_weather = Some((ts, w.clone()));
                weather.pipe(TimestampKey { timestamp: ts }, w).unwrap();
            }
            Event::Turnstile(_) => {}
        }
    }
    assert!(broken > 0);
    // Weather read earlier than the latest is kept out.
    weather
        .pipe(
            TimestampKey { timestamp: 1 },
            Weather {
                temperature: -5.0,
                status: WeatherStatus::Windy,
            },
        )
        .unwrap();

    // Each platform shows the train that arrived there last among the trains whose latest
    // arrival it was; the trains that left are gone from it.
    let mut expected: BTreeMap<String, (u64, String, String)> = BTreeMap::new();
    for (train, s) in sim.train_states() {
        let key = dashboard::arrival_key(s.line.as_str(), s.station_id, &s.direction);
        if expected.get(&key).is_none_or(|(seq, _, _)| *seq < s.seq) {
            expected.insert(key, (s.seq, train.clone(), s.train_status.clone()));
        }
    }
    let store: BTreeMap<String, TrainAt> = driver
        .key_value_store::<String, TrainAt>(dashboard::ARRIVALS)
        .unwrap()
        .all()
        .unwrap()
        .into_iter()
        .collect();
    let got: BTreeMap<&String, (&str, &str)> = store
        .iter()
        .map(|(k, t)| (k, (t.train_id.as_str(), t.train_status.as_str())))
        .collect();
    let want: BTreeMap<&String, (&str, &str)> = expected
        .iter()
        .map(|(k, (_, train, status))| (k, (train.as_str(), status.as_str())))
        .collect();
    assert_eq!(got, want);
    assert!(got.len() > 25, "{} trains shown", got.len());

    // The page's view: three lines, stations in order, the trains where the store has them.
    let contents = StoreContents {
        stations: driver
            .key_value_store(dashboard::STATIONS)
            .unwrap()
            .all()
            .unwrap(),
        arrivals: store.clone().into_iter().collect(),
        weather: driver
            .key_value_store::<String, WeatherReading>(dashboard::WEATHER)
            .unwrap()
            .get(&dashboard::CURRENT.to_string())
            .unwrap(),
        ..StoreContents::default()
    };
    let snapshot = contents.snapshot();
    let lines: Vec<&str> = snapshot.lines.iter().map(|l| l.line.as_str()).collect();
    assert_eq!(lines, ["blue", "green", "red"]);
    for (line, route) in snapshot.lines.iter().zip(&routes) {
        let shown: Vec<i32> = line.stations.iter().map(|s| s.station_id).collect();
        let ordered: Vec<i32> = route.stations.iter().map(|s| s.station_id).collect();
        assert_eq!(shown, ordered, "{} line", line.line);
        assert_eq!(line.towards_b, route.terminal_b());
        assert_eq!(line.towards_a, route.terminal_a());
    }
    let trains_shown = snapshot
        .lines
        .iter()
        .flat_map(|l| &l.stations)
        .map(|s| usize::from(s.a.is_some()) + usize::from(s.b.is_some()))
        .sum::<usize>();
    assert_eq!(trains_shown, got.len());
    let (at, w) = last_weather.unwrap();
    assert_eq!(
        snapshot.weather,
        Some(WeatherReading {
            temperature: w.temperature,
            status: w.status.as_str().to_string(),
            at,
        })
    );
    // Turnstile counts come from TURNSTILE_SUMMARY.
    driver
        .input_topic(
            model::TURNSTILE_SUMMARY_TOPIC,
            Serdes::i32(),
            Serdes::json::<Count>(),
        )
        .pipe(40380, Count { count: 17 })
        .unwrap();
    let entries: Vec<(i32, Count)> = driver
        .key_value_store(dashboard::SUMMARY)
        .unwrap()
        .all()
        .unwrap();
    assert_eq!(entries, [(40380, Count { count: 17 })]);
}
