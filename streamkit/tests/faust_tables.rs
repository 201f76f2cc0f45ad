//! Faust-style tables and agents through the test driver: map operations and the changelog
//! they write (tombstones for deletes), windowed reads relative to the wall clock, the
//! current record and a delta, hopping writes, expiry, and agents counting into tables.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use streamkit::prelude::*;
use streamkit::table::{FaustTable, Table, WindowedFaustTable, WindowedTable};
use streamkit::window::Window;

/// Applies commands to a table: `set:N`, `add:N`, `insert:N`, `del`, `get`, `default`.
/// Forwards what each command returns, as text.
struct Commands {
    def: FaustTable<String, i64>,
    table: Option<Table<String, i64>>,
}

impl Processor<String, String> for Commands {
    type KOut = String;
    type VOut = String;
    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> Result<()> {
        self.table = Some(self.def.open(ctx)?);
        Ok(())
    }
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        r: Record<String, String>,
    ) -> Result<()> {
        let t = self.table.as_ref().unwrap();
        let (cmd, arg) = r.value.split_once(':').unwrap_or((&r.value, "0"));
        let n: i64 = arg.parse().unwrap();
        let out = match cmd {
            "set" => format!("{:?}", t.set(&r.key, &n)),
            "add" => format!("{:?}", t.update(&r.key, |v| v + n)),
            "insert" => format!("{:?}", t.insert(&r.key, &n)?),
            "del" => format!("{:?}", t.delete(&r.key)?),
            "get" => format!("{:?}", t.get(&r.key)?),
            "default" => match t.get_or_default(&r.key) {
                Ok(v) => v.to_string(),
                Err(e) => format!("error: {e}"),
            },
            "items" => format!("{:?}", t.items()?),
            other => panic!("unknown command {other}"),
        };
        ctx.forward(r.with_value(out))
    }
}

fn commands_driver(def: FaustTable<String, i64>) -> TopologyTestDriver {
    let b = StreamsBuilder::new();
    b.add_state_store(def.store());
    let name = def.name().to_string();
    b.stream("cmds", Consumed::with(Serdes::string(), Serdes::string()))
        .process_with_stores(
            move || Commands {
                def: def.clone(),
                table: None,
            },
            &[&name],
        )
        .to(
            "results",
            Produced::with(Serdes::string(), Serdes::string()),
        );
    TopologyTestDriver::new(b.build().unwrap()).unwrap()
}

fn run(d: &TopologyTestDriver, cmds: &[(&str, &str)]) -> Vec<String> {
    let input = d.input_topic("cmds", Serdes::string(), Serdes::string());
    for (k, c) in cmds {
        input.pipe(k.to_string(), c.to_string()).unwrap();
    }
    d.output_topic("results", Serdes::string(), Serdes::string())
        .read_values()
}

#[test]
fn a_table_is_a_map_whose_writes_and_deletes_reach_the_changelog() {
    let d = commands_driver(
        FaustTable::new("balances", Serdes::string(), Serdes::i64()).with_default(|| 100),
    );
    let out = run(
        &d,
        &[
            ("a", "get"),
            ("a", "default"),
            ("a", "add:5"),
            ("a", "add:5"),
            ("b", "set:7"),
            ("b", "insert:8"),
            ("a", "del"),
            ("a", "del"),
            ("a", "get"),
            ("z", "items"),
        ],
    );
    assert_eq!(
        out,
        vec![
            "None",
            "100",
            "Ok(105)",
            "Ok(110)",
            "Ok(())",
            "Some(7)",
            "Some(110)",
            "None",
            "None",
            "[(\"b\", 8)]",
        ]
    );
    // Every write in order; the delete of a present key is a tombstone, the second delete
    // (of a missing key) writes nothing.
    let changelog = d.output_topic(
        "test-app-balances-changelog",
        Serdes::string(),
        Serdes::option(Serdes::i64()),
    );
    assert_eq!(
        changelog.read_key_values(),
        vec![
            ("a".to_string(), Some(105)),
            ("a".to_string(), Some(110)),
            ("b".to_string(), Some(7)),
            ("b".to_string(), Some(8)),
            ("a".to_string(), None),
        ]
    );
    let store = d.key_value_store::<String, i64>("balances").unwrap();
    assert_eq!(store.get(&"b".to_string()).unwrap(), Some(8));
    assert_eq!(store.get(&"a".to_string()).unwrap(), None);
}

#[test]
fn a_table_without_default_says_so_instead_of_inventing_a_value() {
    let d = commands_driver(FaustTable::new("plain", Serdes::string(), Serdes::i64()).in_memory());
    let out = run(&d, &[("a", "default"), ("a", "set:1"), ("a", "default")]);
    assert!(
        out[0].starts_with("error:") && out[0].contains("table plain has no default value"),
        "{}",
        out[0]
    );
    assert_eq!(&out[1..], ["Ok(())", "1"]);
    // `update` of a missing key returns the error to the processor and writes nothing.
    let input = d.input_topic("cmds", Serdes::string(), Serdes::string());
    input.pipe("b".into(), "add:1".into()).unwrap();
    assert!(
        d.output_topic("results", Serdes::string(), Serdes::string())
            .read_value()
            .unwrap()
            .contains("no default value")
    );
    assert_eq!(
        d.key_value_store::<String, i64>("plain")
            .unwrap()
            .get(&"b".to_string())
            .unwrap(),
        None
    );
}

/// `hit` counts the record into its windows; every record forwards
/// (current, delta(10 s), now, value) with 0 for absent.
struct Windowed {
    def: WindowedFaustTable<String, i64>,
    table: Option<WindowedTable<String, i64>>,
}

impl Processor<String, String> for Windowed {
    type KOut = String;
    type VOut = (i64, i64, i64, i64);
    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, (i64, i64, i64, i64)>) -> Result<()> {
        self.table = Some(self.def.open(ctx)?);
        Ok(())
    }
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, (i64, i64, i64, i64)>,
        r: Record<String, String>,
    ) -> Result<()> {
        let t = self.table.as_ref().unwrap();
        if r.value == "hit" {
            t.update(&r.key, |n| n + 1)?;
        }
        let w = t.get(&r.key);
        let v = (
            w.current()?.unwrap_or(0),
            w.delta(Duration::from_secs(10))?.unwrap_or(0),
            w.now()?.unwrap_or(0),
            w.value()?.unwrap_or(0),
        );
        ctx.forward(r.with_value(v))
    }
}

type Reads = (i64, i64, i64, i64);

fn windowed_driver(def: WindowedFaustTable<String, i64>) -> TopologyTestDriver {
    let b = StreamsBuilder::new();
    b.add_state_store(def.store());
    let name = def.name().to_string();
    b.stream("hits", Consumed::with(Serdes::string(), Serdes::string()))
        .process_with_stores(
            move || Windowed {
                def: def.clone(),
                table: None,
            },
            &[&name],
        )
        .to(
            "reads",
            Produced::with(Serdes::string(), Serdes::json::<Reads>()),
        );
    TopologyTestDriver::new(b.build().unwrap()).unwrap()
}

#[test]
fn windowed_reads_follow_the_wall_clock_the_current_record_and_a_delta() {
    let tumbling = FaustTable::new("hits-10s", Serdes::string(), Serdes::i64())
        .with_default(|| 0)
        .tumbling(Duration::from_secs(10), Duration::from_secs(60));
    let d = windowed_driver(tumbling.clone());
    let input = d.input_topic("hits", Serdes::string(), Serdes::string());
    let reads = d.output_topic("reads", Serdes::string(), Serdes::json::<Reads>());
    let k = || "k".to_string();

    input.pipe_at(k(), "hit".into(), 5_000).unwrap();
    input.pipe_at(k(), "hit".into(), 7_000).unwrap();
    // Wall clock 0: `now` reads the window [0, 10 s) too.
    assert_eq!(reads.read_values(), vec![(1, 0, 1, 1), (2, 0, 2, 2)]);

    input.pipe_at(k(), "hit".into(), 15_000).unwrap();
    // current = [10, 20) = 1; delta(10 s) = [0, 10) = 2; now (wall clock 0) = [0, 10) = 2.
    assert_eq!(reads.read_value(), Some((1, 2, 2, 1)));

    d.advance_wall_clock_time(Duration::from_secs(25)).unwrap();
    input.pipe_at(k(), "read".into(), 16_000).unwrap();
    // now = window of 25 s = [20, 30): empty.
    assert_eq!(reads.read_value(), Some((1, 2, 0, 1)));

    // Stream time 100 s: [0, 10) ended 90 s ago (> 60 s expiry) and reads as absent; the
    // write removed it and [10, 20) (ended 80 s ago) from the store, with tombstones.
    input.pipe_at(k(), "hit".into(), 100_000).unwrap();
    assert_eq!(reads.read_value(), Some((1, 0, 0, 1)));
    input.pipe_at(k(), "read".into(), 9_000).unwrap();
    assert_eq!(
        reads.read_value(),
        Some((0, 0, 0, 0)),
        "a late read of an expired window finds nothing"
    );
    let store = d.window_store::<String, i64>("hits-10s").unwrap();
    let starts: Vec<i64> = store
        .fetch(&k(), 0, i64::MAX)
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(starts, vec![100_000]);
    let changelog = d.output_topic(
        "test-app-hits-10s-changelog",
        Serdes::bytes(),
        Serdes::option(Serdes::i64()),
    );
    let values: Vec<Option<i64>> = changelog.read_values();
    assert_eq!(values, vec![Some(1), Some(2), Some(1), Some(1), None, None]);
}

#[test]
fn relative_to_now_makes_value_read_the_wall_clock_window() {
    let def = FaustTable::new("by-now", Serdes::string(), Serdes::i64())
        .with_default(|| 0)
        .tumbling(Duration::from_secs(10), Duration::from_secs(600))
        .relative_to_now();
    let d = windowed_driver(def);
    let input = d.input_topic("hits", Serdes::string(), Serdes::string());
    let reads = d.output_topic("reads", Serdes::string(), Serdes::json::<Reads>());
    d.advance_wall_clock_time(Duration::from_secs(30)).unwrap();
    input.pipe_at("k".into(), "hit".into(), 31_000).unwrap();
    input.pipe_at("k".into(), "hit".into(), 5_000).unwrap();
    // value = now = [30, 40) = 1 on both reads; current follows the record.
    assert_eq!(reads.read_values(), vec![(1, 0, 1, 1), (1, 0, 1, 1)]);
}

#[test]
fn hopping_writes_go_to_every_window_containing_the_record() {
    let def = FaustTable::new("hop", Serdes::string(), Serdes::i64())
        .with_default(|| 0)
        .hopping(
            Duration::from_secs(20),
            Duration::from_secs(10),
            Duration::from_secs(3600),
        );
    let d = windowed_driver(def);
    let input = d.input_topic("hits", Serdes::string(), Serdes::string());
    let reads = d.output_topic("reads", Serdes::string(), Serdes::json::<Reads>());
    input.pipe_at("k".into(), "hit".into(), 15_000).unwrap(); // [0, 20) and [10, 30)
    input.pipe_at("k".into(), "hit".into(), 25_000).unwrap(); // [10, 30) and [20, 40)
    // current = newest window containing the record; delta(10 s) = newest containing 15 s.
    // now (wall clock 0) = newest window containing 0 = [0, 20).
    assert_eq!(reads.read_values(), vec![(1, 1, 1, 1), (1, 2, 1, 1)]);
    let store = d.window_store::<String, i64>("hop").unwrap();
    assert_eq!(
        store.fetch(&"k".to_string(), 0, i64::MAX).unwrap(),
        vec![(0, 1), (10_000, 2), (20_000, 1)]
    );
}

#[test]
fn windowed_table_handles_list_live_windows() {
    struct Lister {
        def: WindowedFaustTable<String, i64>,
        table: Option<WindowedTable<String, i64>>,
    }
    impl Processor<String, i64> for Lister {
        type KOut = String;
        type VOut = Vec<(i64, i64, i64)>;
        fn init(
            &mut self,
            ctx: &mut ProcessorContext<'_, String, Vec<(i64, i64, i64)>>,
        ) -> Result<()> {
            self.table = Some(self.def.open(ctx)?);
            Ok(())
        }
        fn process(
            &mut self,
            ctx: &mut ProcessorContext<'_, String, Vec<(i64, i64, i64)>>,
            r: Record<String, i64>,
        ) -> Result<()> {
            let t = self.table.as_ref().unwrap();
            t.set(&r.key, &r.value)?;
            let windows: Vec<(i64, i64, i64)> = t
                .windows(&r.key)?
                .into_iter()
                .map(|(w, v): (Window, i64)| (w.start, w.end, v))
                .collect();
            assert_eq!(t.windows_containing(r.timestamp).len(), 1);
            ctx.forward(r.with_value(windows))
        }
    }
    let def = FaustTable::new("last", Serdes::string(), Serdes::i64())
        .tumbling(Duration::from_secs(10), Duration::from_secs(10));
    let b = StreamsBuilder::new();
    b.add_state_store(def.store());
    b.stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
        .process_with_stores(
            move || Lister {
                def: def.clone(),
                table: None,
            },
            &["last"],
        )
        .to(
            "out",
            Produced::with(Serdes::string(), Serdes::json::<Vec<(i64, i64, i64)>>()),
        );
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let input = d.input_topic("in", Serdes::string(), Serdes::i64());
    input.pipe_at("k".into(), 1, 1_000).unwrap();
    input.pipe_at("k".into(), 2, 12_000).unwrap();
    input.pipe_at("k".into(), 3, 25_000).unwrap();
    let out = d.output_topic(
        "out",
        Serdes::string(),
        Serdes::json::<Vec<(i64, i64, i64)>>(),
    );
    assert_eq!(
        out.read_values(),
        vec![
            vec![(0, 10_000, 1)],
            vec![(0, 10_000, 1), (10_000, 20_000, 2)],
            // [0, 10 s) ended 15 s before stream time 25 s: expired (10 s).
            vec![(10_000, 20_000, 2), (20_000, 30_000, 3)],
        ]
    );
}

/// Returns `Pending` once (waking itself), like a future awaiting some other event.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if std::mem::replace(&mut self.0, true) {
            Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

fn agent_driver() -> TopologyTestDriver {
    let counts =
        FaustTable::new("agent-counts", Serdes::string(), Serdes::i64()).with_default(|| 0);
    let per_minute = FaustTable::new("agent-per-minute", Serdes::string(), Serdes::i64())
        .with_default(|| 0)
        .tumbling(Duration::from_secs(60), Duration::from_secs(3600));
    let b = StreamsBuilder::new();
    b.add_state_store(counts.store());
    b.add_state_store(per_minute.store());
    let (c, m) = (counts.clone(), per_minute.clone());
    b.agent(
        "counter",
        "events",
        Consumed::with(Serdes::string(), Serdes::string()),
        &[counts.name(), per_minute.name()],
        move |mut events| {
            let (c, m) = (c.clone(), m.clone());
            async move {
                let counts = events.table(&c)?;
                let per_minute = events.windowed_table(&m)?;
                while let Some(e) = events.next().await {
                    if e.value == "boom" {
                        return Err(Error::IllegalState(format!("bad event for {}", e.key)));
                    }
                    // Awaiting something other than the stream between events.
                    YieldOnce(false).await;
                    counts.update(&e.key, |n| n + 1)?;
                    per_minute.update(&e.key, |n| n + 1)?;
                }
                Ok(())
            }
        },
    );
    TopologyTestDriver::new(b.build().unwrap()).unwrap()
}

#[test]
fn an_agent_counts_events_per_key_into_tables() {
    let d = agent_driver();
    let input = d.input_topic("events", Serdes::string(), Serdes::string());
    for (i, k) in ["a", "b", "a", "c", "a", "b"].iter().enumerate() {
        input
            .pipe_at(k.to_string(), "e".into(), i as i64 * 20_000)
            .unwrap();
    }
    let counts = d.key_value_store::<String, i64>("agent-counts").unwrap();
    let all = counts.all().unwrap();
    assert_eq!(
        all,
        vec![
            ("a".to_string(), 3),
            ("b".to_string(), 2),
            ("c".to_string(), 1)
        ]
    );
    // a at 0 s, 40 s (minute 0) and 80 s (minute 1).
    let per_minute = d.window_store::<String, i64>("agent-per-minute").unwrap();
    assert_eq!(
        per_minute.fetch(&"a".to_string(), 0, i64::MAX).unwrap(),
        vec![(0, 2), (60_000, 1)]
    );
    assert_eq!(
        d.output_topic(
            "test-app-agent-counts-changelog",
            Serdes::string(),
            Serdes::i64()
        )
        .read_values(),
        vec![1, 1, 2, 1, 3, 2]
    );
}

#[test]
fn a_failing_agent_fails_its_record_and_restarts_on_the_next() {
    let d = agent_driver();
    let input = d.input_topic("events", Serdes::string(), Serdes::string());
    input.pipe("a".into(), "e".into()).unwrap();
    let err = input.pipe("a".into(), "boom".into()).unwrap_err();
    assert!(err.to_string().contains("bad event for a"), "{err}");
    assert!(
        err.to_string().contains("counter"),
        "names the agent: {err}"
    );
    // A fresh body takes the next record, with the table as the first one left it.
    input.pipe("a".into(), "e".into()).unwrap();
    let counts = d.key_value_store::<String, i64>("agent-counts").unwrap();
    assert_eq!(counts.get(&"a".to_string()).unwrap(), Some(2));
}

#[test]
fn an_agent_that_returns_early_refuses_later_records() {
    let b = StreamsBuilder::new();
    b.agent(
        "quitter",
        "events",
        Consumed::with(Serdes::string(), Serdes::string()),
        &[],
        |mut events| async move {
            events.next().await;
            Ok(())
        },
    );
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let input = d.input_topic("events", Serdes::string(), Serdes::string());
    input.pipe("a".into(), "1".into()).unwrap();
    let err = input.pipe("a".into(), "2".into()).unwrap_err();
    assert!(
        err.to_string()
            .contains("agent quitter returned before its stream ended"),
        "{err}"
    );
}

#[test]
fn an_agent_using_a_table_it_was_not_given_fails_at_start() {
    let t = FaustTable::new("unlisted", Serdes::string(), Serdes::i64());
    let b = StreamsBuilder::new();
    b.add_state_store(t.store());
    b.stream("other", Consumed::with(Serdes::string(), Serdes::i64()))
        .process_with_stores(|| NoOp, &["unlisted"]);
    let def = t.clone();
    b.agent(
        "greedy",
        "events",
        Consumed::with(Serdes::string(), Serdes::string()),
        &[],
        move |mut events| {
            let def = def.clone();
            async move {
                let _t = events.table(&def)?;
                while events.next().await.is_some() {}
                Ok(())
            }
        },
    );
    let err = TopologyTestDriver::new(b.build().unwrap()).err().unwrap();
    assert!(
        err.to_string()
            .contains("agent greedy is not connected to store \"unlisted\""),
        "{err}"
    );
}

struct NoOp;

impl Processor<String, i64> for NoOp {
    type KOut = String;
    type VOut = i64;
    fn process(
        &mut self,
        _: &mut ProcessorContext<'_, String, i64>,
        _: Record<String, i64>,
    ) -> Result<()> {
        Ok(())
    }
}

/// The CTA pipeline's Faust app: raw station rows from Kafka Connect become a table of
/// transformed stations with their line colour, keyed by station id.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Station {
    stop_id: i32,
    direction_id: String,
    stop_name: String,
    station_name: String,
    station_descriptive_name: String,
    station_id: i32,
    order: i32,
    red: bool,
    blue: bool,
    green: bool,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct TransformedStation {
    station_id: i32,
    station_name: String,
    order: i32,
    line: String,
}

#[test]
fn the_cta_faust_app_transforms_stations_into_a_table_and_emits_them() {
    let stations = FaustTable::new(
        "org.chicago.cta.stations.table.v1",
        Serdes::json::<i32>(),
        Serdes::json::<TransformedStation>(),
    );
    let b = StreamsBuilder::new();
    b.add_state_store(stations.store());
    let def = stations.clone();
    b.stream(
        "org.chicago.cta.stations",
        Consumed::with(Serdes::string(), Serdes::json::<Station>()),
    )
    .agent_with_output(
        "transform-station",
        &[stations.name()],
        move |mut raw: streamkit::agent::AgentStream<String, Station, i32, TransformedStation>| {
            let def = def.clone();
            async move {
                let table = raw.table(&def)?;
                while let Some(r) = raw.next().await {
                    let s = r.value;
                    let line = if s.red {
                        "red"
                    } else if s.blue {
                        "blue"
                    } else if s.green {
                        "green"
                    } else {
                        continue;
                    };
                    let t = TransformedStation {
                        station_id: s.station_id,
                        station_name: s.station_name,
                        order: s.order,
                        line: line.into(),
                    };
                    table.set(&t.station_id, &t)?;
                    // Awaiting between the table write and the emit does not lose the record.
                    YieldOnce(false).await;
                    raw.forward(Record::new(t.station_id, t, r.timestamp));
                }
                Ok(())
            }
        },
    )
    .to(
        "org.chicago.cta.stations.transformed",
        Produced::with(Serdes::json::<i32>(), Serdes::json::<TransformedStation>()),
    );
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let input = d.input_topic(
        "org.chicago.cta.stations",
        Serdes::string(),
        Serdes::json::<Station>(),
    );
    let station = |id: i32, name: &str, red: bool, blue: bool, green: bool| Station {
        stop_id: 30_000 + id,
        direction_id: "N".into(),
        stop_name: format!("{name} (northbound)"),
        station_name: name.into(),
        station_descriptive_name: format!("{name} station"),
        station_id: id,
        order: id % 100,
        red,
        blue,
        green,
    };
    input
        .pipe("a".into(), station(40_830, "18th", false, false, true))
        .unwrap();
    input
        .pipe(
            "b".into(),
            station(41_120, "35th-Bronzeville-IIT", true, false, false),
        )
        .unwrap();
    input
        .pipe("c".into(), station(40_000, "Nowhere", false, false, false))
        .unwrap();
    input
        .pipe("d".into(), station(40_830, "18th", false, true, false))
        .unwrap();
    let out = d.output_topic(
        "org.chicago.cta.stations.transformed",
        Serdes::json::<i32>(),
        Serdes::json::<TransformedStation>(),
    );
    let lines: Vec<(i32, String)> = out
        .read_key_values()
        .into_iter()
        .map(|(k, v)| (k, v.line))
        .collect();
    assert_eq!(
        lines,
        vec![
            (40_830, "green".to_string()),
            (41_120, "red".to_string()),
            (40_830, "blue".to_string()),
        ]
    );
    let table = d
        .key_value_store::<i32, TransformedStation>("org.chicago.cta.stations.table.v1")
        .unwrap();
    assert_eq!(table.get(&40_830).unwrap().unwrap().line, "blue");
    assert_eq!(
        table.get(&41_120).unwrap().unwrap().station_name,
        "35th-Bronzeville-IIT"
    );
    assert_eq!(table.get(&40_000).unwrap(), None);
}

#[test]
fn an_agent_may_await_tokio_timers_between_events() {
    let counts = FaustTable::new("slow-counts", Serdes::string(), Serdes::i64())
        .with_default(|| 0)
        .in_memory();
    let b = StreamsBuilder::new();
    b.add_state_store(counts.store());
    let def = counts.clone();
    b.stream("slow", Consumed::with(Serdes::string(), Serdes::string()))
        .agent_with_output(
            "slow-counter",
            &[counts.name()],
            move |mut events: streamkit::agent::AgentStream<String, String, String, i64>| {
                let def = def.clone();
                async move {
                    let counts = events.table(&def)?;
                    while let Some(e) = events.next().await {
                        // A tokio timer needs a reactor: the agents' runtime provides it.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        let n = counts.update(&e.key, |n| n + 1)?;
                        let spawned = tokio::spawn(async move { n * 10 }).await;
                        events.forward(Record::new(e.key, spawned.unwrap(), e.timestamp));
                    }
                    Ok(())
                }
            },
        )
        .to("slow-out", Produced::with(Serdes::string(), Serdes::i64()));
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let input = d.input_topic("slow", Serdes::string(), Serdes::string());
    input
        .pipe_all([
            ("a".into(), "1".into()),
            ("a".into(), "2".into()),
            ("b".into(), "3".into()),
        ])
        .unwrap();
    // Each pipe returned only after the agent finished with its record: all output is here.
    assert_eq!(
        d.output_topic("slow-out", Serdes::string(), Serdes::i64())
            .read_key_values(),
        vec![
            ("a".to_string(), 10),
            ("a".to_string(), 20),
            ("b".to_string(), 10)
        ]
    );
}

#[test]
fn an_agent_reads_a_global_table_through_a_read_only_handle() {
    let b = StreamsBuilder::new();
    b.global_table(
        "stations",
        Consumed::with(Serdes::string(), Serdes::string()),
        Materialized::named("station-names"),
    );
    // The global table's store, seen through a Faust table declaration of the same types.
    let names = FaustTable::new("station-names", Serdes::string(), Serdes::string());
    let visits = FaustTable::new("visits-by-name", Serdes::string(), Serdes::i64())
        .with_default(|| 0)
        .in_memory();
    b.add_state_store(visits.store());
    let (n, v) = (names.clone(), visits.clone());
    b.agent(
        "name-visits",
        "visits",
        Consumed::with(Serdes::string(), Serdes::string()),
        &[names.name(), visits.name()],
        move |mut events| {
            let (n, v) = (n.clone(), v.clone());
            async move {
                let names = events.table(&n)?;
                let visits = events.table(&v)?;
                while let Some(e) = events.next().await {
                    let name = names.get(&e.key)?.unwrap_or_else(|| "?".into());
                    visits.update(&name, |c| c + 1)?;
                    if e.value == "rename" {
                        // Refused: only the global thread writes a global table.
                        names.set(&e.key, &"renamed".to_string())?;
                    }
                }
                Ok(())
            }
        },
    );
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    d.input_topic("stations", Serdes::string(), Serdes::string())
        .pipe("40380".into(), "Clark/Lake".into())
        .unwrap();
    let input = d.input_topic("visits", Serdes::string(), Serdes::string());
    input.pipe("40380".into(), "in".into()).unwrap();
    input.pipe("41000".into(), "in".into()).unwrap();
    let err = input.pipe("40380".into(), "rename".into()).unwrap_err();
    assert!(err.to_string().contains("global table"), "{err}");
    let visits = d.key_value_store::<String, i64>("visits-by-name").unwrap();
    assert_eq!(visits.get(&"Clark/Lake".to_string()).unwrap(), Some(2));
    assert_eq!(visits.get(&"?".to_string()).unwrap(), Some(1));
    assert_eq!(
        d.key_value_store::<String, String>("station-names")
            .unwrap()
            .get(&"40380".to_string())
            .unwrap(),
        Some("Clark/Lake".to_string())
    );
}
