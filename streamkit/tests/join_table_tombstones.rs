//! Table-table and foreign-key joins of tables read from topics, with tombstones: the Kafka
//! Streams wiki's KTable-KTable join table ("Kafka Streams Join Semantics": left
//! `1:null, 3:A, 5:B, 7:null, 9:C, 12:null, 15:D`, right `2:null, 4:a, 6:b, 8:null, 10:c,
//! 11:null, 13:null, 14:d`), and deletions on either side of a foreign-key join.

use streamkit::prelude::*;

fn show(v: Option<&String>) -> String {
    v.cloned().unwrap_or_else(|| "null".into())
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Inner,
    Left,
    Outer,
}

fn table_join(kind: Kind) -> Topology {
    let b = StreamsBuilder::new();
    let c = || Consumed::with(Serdes::string(), Serdes::string());
    let left = b.table("left", c(), Materialized::named("left-rows").in_memory());
    let right = b.table("right", c(), Materialized::named("right-rows").in_memory());
    let m = Materialized::named("joined")
        .value_serde(Serdes::string())
        .in_memory();
    let joined = match kind {
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
    joined.to_change_stream().to(
        "out",
        Produced::with(Serdes::string(), Serdes::option(Serdes::string())),
    );
    b.build().unwrap()
}

/// Each row: `(side, value, [inner, left, outer])`, outputs as written to "out" (`None` =
/// tombstone). Where the wiki shows a tombstone for a key the result never had (e.g. the
/// inner join at 3, 8, 9), streamkit, like Kafka Streams' processors today, emits nothing.
#[test]
fn kafka_streams_table_table_join_semantics_table() {
    type Out = &'static [Option<&'static str>];
    let rows: &[(char, Option<&str>, [Out; 3])] = &[
        ('L', None, [&[], &[], &[]]),
        ('R', None, [&[], &[], &[]]),
        ('L', Some("A"), [&[], &[Some("A-null")], &[Some("A-null")]]),
        (
            'R',
            Some("a"),
            [&[Some("A-a")], &[Some("A-a")], &[Some("A-a")]],
        ),
        (
            'L',
            Some("B"),
            [&[Some("B-a")], &[Some("B-a")], &[Some("B-a")]],
        ),
        (
            'R',
            Some("b"),
            [&[Some("B-b")], &[Some("B-b")], &[Some("B-b")]],
        ),
        ('L', None, [&[None], &[None], &[Some("null-b")]]),
        ('R', None, [&[], &[], &[None]]),
        ('L', Some("C"), [&[], &[Some("C-null")], &[Some("C-null")]]),
        (
            'R',
            Some("c"),
            [&[Some("C-c")], &[Some("C-c")], &[Some("C-c")]],
        ),
        ('R', None, [&[None], &[Some("C-null")], &[Some("C-null")]]),
        ('L', None, [&[], &[None], &[None]]),
        ('R', None, [&[], &[], &[]]),
        ('R', Some("d"), [&[], &[], &[Some("null-d")]]),
        (
            'L',
            Some("D"),
            [&[Some("D-d")], &[Some("D-d")], &[Some("D-d")]],
        ),
    ];
    for (i, kind) in [Kind::Inner, Kind::Left, Kind::Outer]
        .into_iter()
        .enumerate()
    {
        let d = TopologyTestDriver::new(table_join(kind)).unwrap();
        let out = d.output_topic("out", Serdes::string(), Serdes::option(Serdes::string()));
        for (ts, (side, value, want)) in rows.iter().enumerate() {
            let topic = if *side == 'L' { "left" } else { "right" };
            d.input_topic(topic, Serdes::string(), Serdes::option(Serdes::string()))
                .pipe_at("k".into(), value.map(str::to_string), ts as i64 + 1)
                .unwrap();
            let want: Vec<Option<String>> = want[i].iter().map(|v| v.map(str::to_string)).collect();
            assert_eq!(out.read_values(), want, "{kind:?} at {}", ts + 1);
        }
        let rows = d
            .key_value_store::<String, String>("joined")
            .unwrap()
            .all()
            .unwrap();
        assert_eq!(rows, vec![("k".to_string(), "D-d".to_string())], "{kind:?}");
    }
}

fn fk_join(left: bool) -> Topology {
    let b = StreamsBuilder::new();
    let c = || Consumed::with(Serdes::string(), Serdes::string());
    let orders = b.table("orders", c(), Materialized::named("orders").in_memory());
    let products = b.table("products", c(), Materialized::named("products").in_memory());
    let m = Materialized::named("lines")
        .value_serde(Serdes::string())
        .in_memory();
    let joined = if left {
        orders.left_join_foreign_key(
            &products,
            |p: &String| p.clone(),
            |_p: &String, name: Option<&String>| show(name),
            m,
        )
    } else {
        orders.join_foreign_key(
            &products,
            |p: &String| p.clone(),
            |_p: &String, n: &String| n.clone(),
            m,
        )
    };
    joined.to_change_stream().to(
        "lines",
        Produced::with(Serdes::string(), Serdes::option(Serdes::string())),
    );
    b.build().unwrap()
}

/// Deleting an order deletes its row; deleting a product deletes (inner) or empties (left)
/// the rows of the orders pointing at it.
#[test]
fn foreign_key_joins_follow_tombstones_on_both_sides() {
    for left in [false, true] {
        let d = TopologyTestDriver::new(fk_join(left)).unwrap();
        let orders = d.input_topic("orders", Serdes::string(), Serdes::option(Serdes::string()));
        let products = d.input_topic(
            "products",
            Serdes::string(),
            Serdes::option(Serdes::string()),
        );
        let out = d.output_topic("lines", Serdes::string(), Serdes::option(Serdes::string()));
        products.pipe("p1".into(), Some("Pen".into())).unwrap();
        orders.pipe("o1".into(), Some("p1".into())).unwrap();
        orders.pipe("o2".into(), Some("p1".into())).unwrap();
        assert_eq!(
            out.read_key_values(),
            vec![
                ("o1".to_string(), Some("Pen".to_string())),
                ("o2".to_string(), Some("Pen".to_string()))
            ]
        );
        orders.pipe("o1".into(), None).unwrap();
        assert_eq!(out.read_key_values(), vec![("o1".to_string(), None)]);
        products.pipe("p1".into(), None).unwrap();
        let want = if left { Some("null".to_string()) } else { None };
        assert_eq!(
            out.read_key_values(),
            vec![("o2".to_string(), want.clone())]
        );
        // o1 unsubscribed when it was deleted: a new p1 reaches o2 only.
        products.pipe("p1".into(), Some("Ink pen".into())).unwrap();
        assert_eq!(
            out.read_key_values(),
            vec![("o2".to_string(), Some("Ink pen".to_string()))]
        );
        // A deleted order that never had a row, and a tombstone for an unknown order: nothing.
        orders.pipe("o9".into(), None).unwrap();
        assert!(out.is_empty());
    }
}

/// A derived table without a store (here a filter) gets one behind it for the other side to
/// look its rows up in; a row the filter drops deletes the joined row.
#[test]
fn a_derived_table_is_materialized_for_the_join() {
    let b = StreamsBuilder::new();
    let c = || Consumed::with(Serdes::string(), Serdes::string());
    let buses = b
        .table("buses", c(), Materialized::named("buses").in_memory())
        .filter(|_bus, state: &String| state != "depot");
    let drivers = b.table("drivers", c(), Materialized::named("drivers").in_memory());
    buses
        .join(
            &drivers,
            |state: &String, driver: &String| format!("{driver} ({state})"),
            Materialized::default(),
        )
        .to_change_stream()
        .to(
            "crewed",
            Produced::with(Serdes::string(), Serdes::option(Serdes::string())),
        );
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let (bus, driver) = (
        d.input_topic("buses", Serdes::string(), Serdes::string()),
        d.input_topic("drivers", Serdes::string(), Serdes::string()),
    );
    let out = d.output_topic("crewed", Serdes::string(), Serdes::option(Serdes::string()));
    bus.pipe("b1".into(), "in service".into()).unwrap();
    driver.pipe("b1".into(), "Ann".into()).unwrap();
    bus.pipe("b1".into(), "depot".into()).unwrap();
    driver.pipe("b1".into(), "Bo".into()).unwrap();
    bus.pipe("b1".into(), "in service".into()).unwrap();
    assert_eq!(
        out.read_values(),
        vec![
            Some("Ann (in service)".to_string()),
            None,
            Some("Bo (in service)".to_string())
        ]
    );
}
