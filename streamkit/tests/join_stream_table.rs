//! Stream-table and stream-global-table join semantics through the test driver, checked
//! against the Kafka Streams join-semantics table (the wiki page "Kafka Streams Join
//! Semantics", KStream-KTable join): one key, the stream side `1:null, 3:A, 5:B, 7:null, 9:C,
//! 12:null, 15:D`, the table side `2:null, 4:a, 6:b, 8:null, 10:c, 11:null, 13:null, 14:d`,
//! processed in timestamp order. Then out-of-order and late records, tombstones, filtered
//! tables and the build-time errors.

use streamkit::prelude::*;

/// One step of the documented sequence: `(timestamp, side, value)`, `None` = null.
#[derive(Clone, Copy)]
enum Side {
    Stream,
    Table,
}

const SEQUENCE: [(i64, Side, Option<&str>); 15] = [
    (1, Side::Stream, None),
    (2, Side::Table, None),
    (3, Side::Stream, Some("A")),
    (4, Side::Table, Some("a")),
    (5, Side::Stream, Some("B")),
    (6, Side::Table, Some("b")),
    (7, Side::Stream, None),
    (8, Side::Table, None),
    (9, Side::Stream, Some("C")),
    (10, Side::Table, Some("c")),
    (11, Side::Table, None),
    (12, Side::Stream, None),
    (13, Side::Table, None),
    (14, Side::Table, Some("d")),
    (15, Side::Stream, Some("D")),
];

/// The documented results, `(timestamp, value)`; the output carries the stream record's
/// timestamp.
fn expected_inner() -> Vec<(i64, String)> {
    vec![(5, "[B, a]".into()), (15, "[D, d]".into())]
}

fn expected_left() -> Vec<(i64, String)> {
    vec![
        (3, "[A, null]".into()),
        (5, "[B, a]".into()),
        (9, "[C, null]".into()),
        (15, "[D, d]".into()),
    ]
}

fn inner(l: &String, r: &String) -> String {
    format!("[{l}, {r}]")
}

fn left(l: &String, r: Option<&String>) -> String {
    format!("[{l}, {}]", r.map_or("null", |r| r.as_str()))
}

/// The stream side: a null value cannot be a `String`, so it reaches the source's
/// deserialization handler (log and continue), which drops it: Kafka Streams' joins
/// likewise ignore stream records with a null value.
fn stream_side(b: &StreamsBuilder) -> KStream<String, String> {
    b.stream(
        "left",
        Consumed::with(Serdes::string(), Serdes::string())
            .on_deserialization_error(DeserializationHandler::LogAndContinue),
    )
}

fn table_side(b: &StreamsBuilder) -> KTable<String, String> {
    b.table(
        "right",
        Consumed::with(Serdes::string(), Serdes::string()),
        Materialized::named("right").in_memory(),
    )
}

fn run_sequence(d: &TopologyTestDriver, table_topic: &str) {
    let stream = d.input_topic("left", Serdes::string(), Serdes::option(Serdes::string()));
    let table = d.input_topic(
        table_topic,
        Serdes::string(),
        Serdes::option(Serdes::string()),
    );
    for (ts, side, value) in SEQUENCE {
        let value = value.map(str::to_string);
        match side {
            Side::Stream => stream.pipe_at("k".into(), value, ts).unwrap(),
            Side::Table => table.pipe_at("k".into(), value, ts).unwrap(),
        }
    }
}

fn read(d: &TopologyTestDriver, topic: &str) -> Vec<(i64, String)> {
    d.output_topic(topic, Serdes::string(), Serdes::string())
        .read_records()
        .into_iter()
        .map(|r| {
            assert_eq!(r.key, "k");
            (r.timestamp, r.value)
        })
        .collect()
}

#[test]
fn stream_table_joins_follow_the_documented_semantics() {
    let b = StreamsBuilder::new();
    let table = table_side(&b);
    let stream = stream_side(&b);
    stream
        .join_table(&table, inner)
        .to("inner", Produced::with(Serdes::string(), Serdes::string()));
    stream.left_join_table(&table, left).to(
        "left-join",
        Produced::with(Serdes::string(), Serdes::string()),
    );
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    run_sequence(&d, "right");
    assert_eq!(read(&d, "inner"), expected_inner());
    assert_eq!(read(&d, "left-join"), expected_left());
    // The three stream nulls were dropped by the handler, not joined.
    assert_eq!(d.metrics().dropped_records("deserialization"), 3);
    // Table updates never produced output on their own: the table ends holding d.
    let store = d.key_value_store::<String, String>("right").unwrap();
    assert_eq!(store.get(&"k".into()).unwrap(), Some("d".into()));
}

#[test]
fn stream_global_joins_follow_the_documented_semantics() {
    let b = StreamsBuilder::new();
    let global = b.global_table(
        "right-global",
        Consumed::with(Serdes::string(), Serdes::string()),
        Materialized::named("right-global").in_memory(),
    );
    let stream = stream_side(&b);
    stream
        .join_global(&global, |k, _| k.clone(), inner)
        .to("inner", Produced::with(Serdes::string(), Serdes::string()));
    stream.left_join_global(&global, |k, _| k.clone(), left).to(
        "left-join",
        Produced::with(Serdes::string(), Serdes::string()),
    );
    let topology = b.build().unwrap();
    assert_eq!(topology.global_topics().len(), 1);
    let text = topology.describe().to_string();
    assert!(
        text.contains("Sub-topology: 1 for global store (will not generate tasks)"),
        "{text}"
    );
    let d = TopologyTestDriver::new(topology).unwrap();
    run_sequence(&d, "right-global");
    assert_eq!(read(&d, "inner"), expected_inner());
    assert_eq!(read(&d, "left-join"), expected_left());
}

#[test]
fn out_of_order_and_late_stream_records_see_the_current_row() {
    let b = StreamsBuilder::new();
    let table = table_side(&b);
    let stream = stream_side(&b);
    stream
        .join_table(&table, inner)
        .to("inner", Produced::with(Serdes::string(), Serdes::string()));
    stream.left_join_table(&table, left).to(
        "left-join",
        Produced::with(Serdes::string(), Serdes::string()),
    );
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let s = d.input_topic("left", Serdes::string(), Serdes::string());
    let t = d.input_topic("right", Serdes::string(), Serdes::option(Serdes::string()));
    t.pipe_at("k".into(), Some("x".into()), 100).unwrap();
    s.pipe_at("k".into(), "A".into(), 200).unwrap();
    // Out of order: older than the row it meets. A key-value store keeps no history, so
    // the lookup sees the current row (Kafka Streams without a versioned store).
    s.pipe_at("k".into(), "B".into(), 50).unwrap();
    t.pipe_at("k".into(), Some("y".into()), 300).unwrap();
    // Late: after the table moved on, it meets the newest row, not the one of its time.
    s.pipe_at("k".into(), "C".into(), 150).unwrap();
    // A tombstone, itself out of order, deletes the row whatever its timestamp.
    t.pipe_at("k".into(), None, 10).unwrap();
    s.pipe_at("k".into(), "D".into(), 400).unwrap();
    // A table row that arrives after a stream record does not join it retroactively.
    s.pipe_at("j".into(), "E".into(), 500).unwrap();
    t.pipe_at("j".into(), Some("z".into()), 490).unwrap();
    let records = |topic| {
        d.output_topic(topic, Serdes::string(), Serdes::string())
            .read_records()
            .into_iter()
            .map(|r| (r.key, r.timestamp, r.value))
            .collect::<Vec<_>>()
    };
    let k = |ts, v: &str| ("k".to_string(), ts, v.to_string());
    assert_eq!(
        records("inner"),
        vec![k(200, "[A, x]"), k(50, "[B, x]"), k(150, "[C, y]")]
    );
    assert_eq!(
        records("left-join"),
        vec![
            k(200, "[A, x]"),
            k(50, "[B, x]"),
            k(150, "[C, y]"),
            k(400, "[D, null]"),
            ("j".to_string(), 500, "[E, null]".to_string()),
        ]
    );
}

#[test]
fn a_filtered_table_is_materialized_for_the_join() {
    let b = StreamsBuilder::new();
    let open = table_side(&b).filter(|_, status| status != "closed");
    stream_side(&b)
        .join_table(&open, inner)
        .to("inner", Produced::with(Serdes::string(), Serdes::string()));
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let s = d.input_topic("left", Serdes::string(), Serdes::string());
    let t = d.input_topic("right", Serdes::string(), Serdes::string());
    t.pipe("k".into(), "open".into()).unwrap();
    s.pipe("k".into(), "A".into()).unwrap();
    t.pipe("k".into(), "closed".into()).unwrap(); // leaves the filtered table
    s.pipe("k".into(), "B".into()).unwrap();
    t.pipe("k".into(), "reopened".into()).unwrap();
    s.pipe("k".into(), "C".into()).unwrap();
    let out = d.output_topic("inner", Serdes::string(), Serdes::string());
    assert_eq!(out.read_values(), vec!["[A, open]", "[C, reopened]"]);
}

#[test]
fn a_global_join_maps_each_record_to_the_global_key() {
    let b = StreamsBuilder::new();
    let lines = b.global_table(
        "lines",
        Consumed::with(Serdes::string(), Serdes::string()),
        Materialized::named("lines").in_memory(),
    );
    // Keyed by bus; the line is part of the value and names the global row.
    b.stream(
        "positions",
        Consumed::with(Serdes::string(), Serdes::string()),
    )
    .left_join_global(
        &lines,
        |_bus, pos| pos.split('@').next().unwrap_or_default().to_string(),
        |pos, colour| format!("{pos} {}", colour.map_or("?", |c| c.as_str())),
    )
    .to("out", Produced::with(Serdes::string(), Serdes::string()));
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let lines_in = d.input_topic("lines", Serdes::string(), Serdes::option(Serdes::string()));
    let positions = d.input_topic("positions", Serdes::string(), Serdes::string());
    lines_in.pipe("M15".into(), Some("red".into())).unwrap();
    positions.pipe("bus-1".into(), "M15@1st".into()).unwrap();
    positions.pipe("bus-2".into(), "B63@5th".into()).unwrap();
    lines_in.pipe("M15".into(), None).unwrap();
    positions.pipe("bus-1".into(), "M15@2nd".into()).unwrap();
    let out = d.output_topic("out", Serdes::string(), Serdes::string());
    assert_eq!(
        out.read_key_values(),
        vec![
            ("bus-1".to_string(), "M15@1st red".to_string()),
            ("bus-2".to_string(), "B63@5th ?".to_string()),
            ("bus-1".to_string(), "M15@2nd ?".to_string()),
        ]
    );
    // The global store is queryable like any other.
    assert_eq!(
        d.key_value_store::<String, String>("lines")
            .unwrap()
            .all()
            .unwrap(),
        vec![]
    );
}

#[test]
fn joins_report_mistakes_when_the_topology_is_built() {
    // A mapped table has no value serde to be materialized with.
    let b = StreamsBuilder::new();
    let lengths = table_side(&b).map_values(|v| v.len() as i64);
    stream_side(&b).join_table(&lengths, |l, n| format!("{l}{n}"));
    let err = b.build().unwrap_err().to_string();
    assert!(
        err.contains("join_table") && err.contains("materialize"),
        "{err}"
    );

    // With materialize it builds, and both sides land in one sub-topology.
    let b = StreamsBuilder::new();
    let lengths = table_side(&b).map_values(|v| v.len() as i64).materialize(
        Materialized::named("lengths")
            .value_serde(Serdes::i64())
            .in_memory(),
    );
    stream_side(&b)
        .join_table(&lengths, |l, n| format!("{l}{n}"))
        .to("out", Produced::with(Serdes::string(), Serdes::string()));
    let topology = b.build().unwrap();
    assert_eq!(topology.subtopology_count(), 1);
    assert_eq!(topology.copartition_groups().len(), 1);

    // A re-keyed stream must be repartitioned before it meets a table.
    let b = StreamsBuilder::new();
    let table = table_side(&b);
    stream_side(&b)
        .select_key(|_, v| v.clone())
        .join_table(&table, inner);
    let err = b.build().unwrap_err().to_string();
    assert!(err.contains("repartition it first"), "{err}");

    // A windowed table holds no row per key to look up.
    let b = StreamsBuilder::new();
    let per_minute = stream_side(&b)
        .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
        .windowed_by(streamkit::window::TimeWindows::tumbling(
            std::time::Duration::from_secs(60),
        ))
        .count(Materialized::named("per-minute"));
    b.stream(
        "windows",
        Consumed::with(
            streamkit::window::WindowedSerde::time(Serdes::string(), 60_000),
            Serdes::string(),
        ),
    )
    .join_table(&per_minute, |v, n| format!("{v}{n}"));
    let err = b.build().unwrap_err().to_string();
    assert!(err.contains("is windowed"), "{err}");

    // A global table's topic cannot also be read as a stream.
    let b = StreamsBuilder::new();
    b.global_table(
        "right",
        Consumed::with(Serdes::string(), Serdes::string()),
        Materialized::named("g"),
    );
    stream_side(&b).to("right", Produced::with(Serdes::string(), Serdes::string()));
    b.stream("right", Consumed::with(Serdes::string(), Serdes::string()))
        .to("x", Produced::with(Serdes::string(), Serdes::string()));
    let err = b.build().unwrap_err().to_string();
    assert!(err.contains("read by two sources"), "{err}");
}

#[test]
fn a_stream_joins_an_aggregated_table_in_the_same_task() {
    // Counts per station from one stream, looked up by another stream keyed by station.
    let b = StreamsBuilder::new();
    let counts = b
        .stream("taps", Consumed::with(Serdes::string(), Serdes::string()))
        .group_by(
            |_card, station| station.clone(),
            Grouped::with(Serdes::string(), Serdes::string()).named("by-station"),
        )
        .count(Materialized::named("taps-per-station").in_memory());
    b.stream(
        "queries",
        Consumed::with(Serdes::string(), Serdes::string()),
    )
    .left_join_table(&counts, |who, n| {
        format!("{who}: {}", n.copied().unwrap_or(0))
    })
    .to(
        "answers",
        Produced::with(Serdes::string(), Serdes::string()),
    );
    let topology = b.build().unwrap();
    // The join sits with the aggregation, after the repartition topic it must be
    // co-partitioned with.
    assert_eq!(topology.subtopology_count(), 2);
    let group = &topology.copartition_groups()[0];
    assert!(
        group.iter().any(|t| t.to_string() == "queries"),
        "{group:?}"
    );
    assert!(
        group
            .iter()
            .any(|t| t.to_string() == "by-station-repartition"),
        "{group:?}"
    );
    let d = TopologyTestDriver::new(topology).unwrap();
    let taps = d.input_topic("taps", Serdes::string(), Serdes::string());
    let queries = d.input_topic("queries", Serdes::string(), Serdes::string());
    queries.pipe("clark".into(), "ann".into()).unwrap();
    taps.pipe_all([
        ("card-1".to_string(), "clark".to_string()),
        ("card-2".to_string(), "clark".to_string()),
        ("card-3".to_string(), "belmont".to_string()),
    ])
    .unwrap();
    queries.pipe("clark".into(), "bob".into()).unwrap();
    queries.pipe("belmont".into(), "cy".into()).unwrap();
    let out = d.output_topic("answers", Serdes::string(), Serdes::string());
    assert_eq!(out.read_values(), vec!["ann: 0", "bob: 2", "cy: 1"]);
}

#[test]
fn a_table_joined_twice_is_materialized_once() {
    let b = StreamsBuilder::new();
    let open = table_side(&b).filter(|_, status| status != "closed");
    let stream = stream_side(&b);
    stream
        .join_table(&open, inner)
        .to("inner", Produced::with(Serdes::string(), Serdes::string()));
    stream.left_join_table(&open, left).to(
        "left-join",
        Produced::with(Serdes::string(), Serdes::string()),
    );
    let text = b.build().unwrap().describe().to_string();
    let materializers = text
        .lines()
        .filter(|l| l.contains("Processor: KTABLE-MATERIALIZE-"))
        .count();
    assert_eq!(materializers, 1, "{text}");
}

/// Tries to overwrite a global table's row from a stream task.
struct Overwrite;

impl Processor<String, String> for Overwrite {
    type KOut = String;
    type VOut = String;
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        r: Record<String, String>,
    ) -> Result<()> {
        let lines = ctx.key_value_store::<String, String>("lines")?;
        let current = lines.get(&r.value)?.unwrap_or_default();
        ctx.forward(r.clone().with_value(current))?;
        lines.put(&r.value, &"overwritten".to_string())
    }
}

#[test]
fn processors_read_global_stores_but_cannot_write_them() {
    let b = StreamsBuilder::new();
    b.global_table(
        "lines",
        Consumed::with(Serdes::string(), Serdes::string()),
        Materialized::named("lines").in_memory(),
    );
    b.stream(
        "positions",
        Consumed::with(Serdes::string(), Serdes::string()),
    )
    .process_with_stores(|| Overwrite, &["lines"])
    .to("out", Produced::with(Serdes::string(), Serdes::string()));
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    d.input_topic("lines", Serdes::string(), Serdes::string())
        .pipe("M15".into(), "red".into())
        .unwrap();
    let err = d
        .input_topic("positions", Serdes::string(), Serdes::string())
        .pipe("bus-1".into(), "M15".into())
        .unwrap_err();
    assert!(
        err.to_string().contains("belongs to a global table"),
        "{err}"
    );
    // The write did not reach the store.
    let lines = d.key_value_store::<String, String>("lines").unwrap();
    assert_eq!(lines.get(&"M15".into()).unwrap(), Some("red".into()));
}
