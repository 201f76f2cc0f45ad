//! Oracle test: a table read from a topic, filtered, regrouped and aggregated (count, reduce,
//! aggregate) under random inserts, updates and tombstones; at checkpoints every aggregate
//! must equal a recomputation from the table's current rows.

use std::collections::BTreeMap;

use proptest::prelude::*;
use streamkit::prelude::*;

/// A row: (group, amount).
type Row = (String, i64);

const ROWS: &str = "rows";

fn topology() -> Topology {
    let b = StreamsBuilder::new();
    let grouped = b
        .table(
            ROWS,
            Consumed::with(Serdes::string(), Serdes::json::<Row>()),
            Materialized::named("rows").in_memory(),
        )
        .filter(|_, (_, amount)| amount % 3 != 0)
        .map_values_with_key(|key, (group, amount)| (group.clone(), key.clone(), *amount))
        .group_by(
            |_, (group, key, amount)| (group.clone(), (key.clone(), *amount)),
            Grouped::with(Serdes::string(), Serdes::json::<(String, i64)>()).named("by-group"),
        );
    grouped.count(Materialized::named("count").in_memory());
    grouped.aggregate(
        || 0i64,
        |_, (_, amount), sum| sum + amount,
        |_, (_, amount), sum| sum - amount,
        Materialized::named("sum")
            .value_serde(Serdes::i64())
            .in_memory(),
    );
    grouped.aggregate(
        Vec::<String>::new,
        |_, (key, _), mut members| {
            members.push(key.clone());
            members.sort();
            members
        },
        |_, (key, _), mut members| {
            let at = members
                .iter()
                .position(|m| m == key)
                .expect("retracting a member that was added");
            members.remove(at);
            members
        },
        Materialized::named("members")
            .value_serde(Serdes::json::<Vec<String>>())
            .in_memory(),
    );
    b.build().unwrap()
}

#[derive(Debug, Default, PartialEq)]
struct Group {
    count: i64,
    sum: i64,
    members: Vec<String>,
}

/// What the aggregates must be, recomputed from the current rows.
fn recompute(rows: &BTreeMap<String, Row>) -> BTreeMap<String, Group> {
    let mut out: BTreeMap<String, Group> = BTreeMap::new();
    for (key, (group, amount)) in rows {
        if amount % 3 == 0 {
            continue;
        }
        let g = out.entry(group.clone()).or_default();
        g.count += 1;
        g.sum += amount;
        g.members.push(key.clone());
    }
    for g in out.values_mut() {
        g.members.sort();
    }
    out
}

fn check(d: &TopologyTestDriver, rows: &BTreeMap<String, Row>) {
    let table: BTreeMap<String, Row> = d
        .key_value_store::<String, Row>("rows")
        .unwrap()
        .all()
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(&table, rows, "the table holds the latest value per key");
    let expected = recompute(rows);
    let count = d.key_value_store::<String, i64>("count").unwrap();
    let sum = d.key_value_store::<String, i64>("sum").unwrap();
    let members = d.key_value_store::<String, Vec<String>>("members").unwrap();
    let mut stored = BTreeMap::new();
    for (group, c) in count.all().unwrap() {
        let g = Group {
            count: c,
            sum: sum.get(&group).unwrap().unwrap_or(0),
            members: members.get(&group).unwrap().unwrap_or_default(),
        };
        stored.insert(group, g);
    }
    for (group, g) in &stored {
        match expected.get(group) {
            Some(e) => assert_eq!(g, e, "group {group}"),
            // A group whose rows all left keeps a neutral aggregate (Kafka Streams keeps it).
            None => assert_eq!(g, &Group::default(), "emptied group {group}"),
        }
    }
    for group in expected.keys() {
        assert!(stored.contains_key(group), "group {group} missing");
    }
}

/// `None` = tombstone.
fn op() -> impl Strategy<Value = (u8, Option<(u8, i64)>)> {
    (
        0u8..12,
        prop_oneof![
            1 => Just(None),
            3 => (0u8..4, -20i64..20).prop_map(Some),
        ],
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn table_aggregates_equal_a_recomputation(ops in prop::collection::vec(op(), 1..120)) {
        let d = TopologyTestDriver::new(topology()).unwrap();
        let input = d.input_topic(ROWS, Serdes::string(), Serdes::option(Serdes::json::<Row>()));
        let mut rows = BTreeMap::new();
        for (i, (key, value)) in ops.iter().enumerate() {
            let key = format!("row-{key}");
            let value = value.map(|(g, a)| (format!("group-{g}"), a));
            match &value {
                Some(v) => { rows.insert(key.clone(), v.clone()); }
                None => { rows.remove(&key); }
            }
            input.pipe_at(key, value, i as i64).unwrap();
            if i % 16 == 0 {
                check(&d, &rows);
            }
        }
        check(&d, &rows);
    }
}

#[test]
fn undecodable_table_values_go_to_the_deserialization_handler() {
    let b = StreamsBuilder::new();
    b.table(
        ROWS,
        Consumed::with(Serdes::string(), Serdes::i64())
            .on_deserialization_error(DeserializationHandler::LogAndContinue),
        Materialized::named("rows").in_memory(),
    )
    .to_change_stream()
    .to(
        "out",
        Produced::with(Serdes::string(), Serdes::option(Serdes::i64())),
    );
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let input = d.input_topic(ROWS, Serdes::string(), Serdes::option(Serdes::i64()));
    input.pipe("a".into(), Some(1)).unwrap();
    d.input_topic(ROWS, Serdes::string(), Serdes::string())
        .pipe("a".into(), "not eight bytes".into())
        .unwrap();
    input.pipe("b".into(), None).unwrap(); // deleting an absent key changes nothing
    input.pipe("a".into(), None).unwrap();
    let out = d.output_topic("out", Serdes::string(), Serdes::option(Serdes::i64()));
    assert_eq!(
        out.read_key_values(),
        vec![("a".to_string(), Some(1)), ("a".to_string(), None)]
    );
    assert_eq!(d.metrics().dropped_records("deserialization"), 1);
    assert_eq!(
        d.key_value_store::<String, i64>("rows")
            .unwrap()
            .all()
            .unwrap(),
        vec![]
    );
}
