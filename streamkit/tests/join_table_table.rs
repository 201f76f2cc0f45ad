//! Table-table joins through the test driver: inner, left and outer joins of two tables,
//! each update looking up the other side's current row, with the joined rows materialized.

use streamkit::prelude::*;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Inner,
    Left,
    Outer,
}

fn show(v: Option<&String>) -> String {
    v.cloned().unwrap_or_else(|| "null".into())
}

/// Tables of the latest value per key of `left` and `right`, joined into "L-R" rows.
fn topology(kind: Kind) -> Topology {
    let b = StreamsBuilder::new();
    let latest = |topic: &str| {
        b.stream(topic, Consumed::with(Serdes::string(), Serdes::string()))
            .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
            .reduce(
                |_old, new| new,
                Materialized::named(format!("{topic}-rows")).in_memory(),
            )
    };
    let (left, right) = (latest("left"), latest("right"));
    let m = Materialized::named("joined")
        .value_serde(Serdes::string())
        .in_memory();
    let out = match kind {
        Kind::Inner => left.join(&right, |l: &String, r: &String| format!("{l}-{r}"), m),
        Kind::Left => left.left_join(
            &right,
            |l: &String, r: Option<&String>| format!("{l}-{}", show(r)),
            m,
        ),
        Kind::Outer => left.outer_join(
            &right,
            |l: Option<&String>, r: Option<&String>| format!("{}-{}", show(l), show(r)),
            m,
        ),
    };
    out.to_stream()
        .to("out", Produced::with(Serdes::string(), Serdes::string()));
    b.build().unwrap()
}

/// The rows of the Kafka Streams wiki's KTable-KTable join table ("Kafka Streams Join
/// Semantics") that update a row rather than delete one (left 3:A, 5:B, 9:C, 15:D; right
/// 4:a, 6:b, 10:c, 14:d), each joined with the other side's *current* row. Without the
/// tombstones of the full table, C meets b (still the right row at 9) and d meets C.
#[test]
fn kafka_streams_table_join_semantics_without_tombstones() {
    type Row = (char, &'static str, i64, [&'static [&'static str]; 3]);
    let rows: &[Row] = &[
        ('L', "A", 3, [&[], &["A-null"], &["A-null"]]),
        ('R', "a", 4, [&["A-a"], &["A-a"], &["A-a"]]),
        ('L', "B", 5, [&["B-a"], &["B-a"], &["B-a"]]),
        ('R', "b", 6, [&["B-b"], &["B-b"], &["B-b"]]),
        ('L', "C", 9, [&["C-b"], &["C-b"], &["C-b"]]),
        ('R', "c", 10, [&["C-c"], &["C-c"], &["C-c"]]),
        ('R', "d", 14, [&["C-d"], &["C-d"], &["C-d"]]),
        ('L', "D", 15, [&["D-d"], &["D-d"], &["D-d"]]),
    ];
    for (i, kind) in [Kind::Inner, Kind::Left, Kind::Outer]
        .into_iter()
        .enumerate()
    {
        let d = TopologyTestDriver::new(topology(kind)).unwrap();
        let out = d.output_topic("out", Serdes::string(), Serdes::string());
        for (side, value, ts, want) in rows {
            let topic = if *side == 'L' { "left" } else { "right" };
            d.input_topic(topic, Serdes::string(), Serdes::string())
                .pipe_at("k".into(), value.to_string(), *ts)
                .unwrap();
            assert_eq!(&out.read_values(), want[i], "{kind:?} after {side}:{value}");
        }
        let store = d.key_value_store::<String, String>("joined").unwrap();
        assert_eq!(
            store.get(&"k".to_string()).unwrap(),
            Some("D-d".to_string())
        );
    }
}

/// An outer join has a row for keys of either side; a right row alone appears as "null-r".
#[test]
fn outer_joins_keep_keys_of_either_side() {
    let d = TopologyTestDriver::new(topology(Kind::Outer)).unwrap();
    d.input_topic("right", Serdes::string(), Serdes::string())
        .pipe("k1".into(), "r1".into())
        .unwrap();
    d.input_topic("left", Serdes::string(), Serdes::string())
        .pipe("k2".into(), "L2".into())
        .unwrap();
    d.input_topic("left", Serdes::string(), Serdes::string())
        .pipe("k1".into(), "L1".into())
        .unwrap();
    assert_eq!(
        d.output_topic("out", Serdes::string(), Serdes::string())
            .read_key_values(),
        vec![
            ("k1".to_string(), "null-r1".to_string()),
            ("k2".to_string(), "L2-null".to_string()),
            ("k1".to_string(), "L1-r1".to_string()),
        ]
    );
    let store = d.key_value_store::<String, String>("joined").unwrap();
    let mut rows = store.all().unwrap();
    rows.sort();
    assert_eq!(
        rows,
        vec![
            ("k1".to_string(), "L1-r1".to_string()),
            ("k2".to_string(), "L2-null".to_string()),
        ]
    );
}

#[test]
fn joined_tables_are_copartitioned_and_windowed_tables_are_refused() {
    let topology = topology(Kind::Inner);
    let groups: Vec<Vec<String>> = topology
        .copartition_groups()
        .iter()
        .map(|g| g.iter().map(|t| t.resolve("app")).collect())
        .collect();
    assert_eq!(groups, vec![vec!["left".to_string(), "right".to_string()]]);

    let b = StreamsBuilder::new();
    let counts = |topic: &str| {
        b.stream(topic, Consumed::with(Serdes::string(), Serdes::string()))
            .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
            .windowed_by(streamkit::window::TimeWindows::tumbling(
                std::time::Duration::from_secs(60),
            ))
            .count(Materialized::named(format!("{topic}-counts")))
    };
    let (l, r) = (counts("l"), counts("r"));
    l.join(&r, |a: &i64, b: &i64| a + b, Materialized::default())
        .to_stream();
    let err = b.build().unwrap_err().to_string();
    assert!(err.contains("windowed tables cannot be joined"), "{err}");
}
