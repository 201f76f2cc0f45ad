//! Oracle test: random updates and tombstones on two tables; after every input, the result of
//! each table-table join (inner, left, outer) and of each foreign-key join (inner, left) equals
//! the join recomputed from the current rows, both in the result's store and as rebuilt from
//! the emitted changes.

use std::collections::BTreeMap;

use proptest::prelude::*;
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

/// `true` for the left table; the key; the new value or a tombstone.
type Op = (bool, String, Option<String>);

fn tables(b: &StreamsBuilder) -> (KTable<String, String>, KTable<String, String>) {
    let c = || Consumed::with(Serdes::string(), Serdes::string());
    (
        b.table("left", c(), Materialized::named("left-rows").in_memory()),
        b.table("right", c(), Materialized::named("right-rows").in_memory()),
    )
}

fn sink(t: KTable<String, String>) {
    t.to_change_stream().to(
        "out",
        Produced::with(Serdes::string(), Serdes::option(Serdes::string())),
    );
}

fn table_join(kind: Kind) -> Topology {
    let b = StreamsBuilder::new();
    let (l, r) = tables(&b);
    let m = Materialized::named("result")
        .value_serde(Serdes::string())
        .in_memory();
    sink(match kind {
        Kind::Inner => l.join(&r, |a: &String, b: &String| format!("{a}-{b}"), m),
        Kind::Left => l.left_join(
            &r,
            |a: &String, b: Option<&String>| format!("{a}-{}", show(b)),
            m,
        ),
        Kind::Outer => l.outer_join(
            &r,
            |a: Option<&String>, b: Option<&String>| format!("{}-{}", show(a), show(b)),
            m,
        ),
    });
    b.build().unwrap()
}

/// Left values are "<foreign key>/<n>": the right table's key before the slash.
fn fk_join(left: bool) -> Topology {
    let b = StreamsBuilder::new();
    let (l, r) = tables(&b);
    let m = Materialized::named("result")
        .value_serde(Serdes::string())
        .in_memory();
    let fk = |v: &String| v.split('/').next().unwrap_or_default().to_string();
    sink(if left {
        l.left_join_foreign_key(
            &r,
            fk,
            |a: &String, b: Option<&String>| format!("{a}-{}", show(b)),
            m,
        )
    } else {
        l.join_foreign_key(&r, fk, |a: &String, b: &String| format!("{a}-{b}"), m)
    });
    b.build().unwrap()
}

fn expected_table_join(
    kind: Kind,
    l: &BTreeMap<String, String>,
    r: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut keys: Vec<&String> = l.keys().chain(r.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let v = match (kind, l.get(k), r.get(k)) {
                (_, Some(a), Some(b)) => format!("{a}-{b}"),
                (Kind::Left | Kind::Outer, Some(a), None) => format!("{a}-null"),
                (Kind::Outer, None, Some(b)) => format!("null-{b}"),
                _ => return None,
            };
            Some((k.clone(), v))
        })
        .collect()
}

fn expected_fk_join(
    left: bool,
    l: &BTreeMap<String, String>,
    r: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    l.iter()
        .filter_map(|(k, a)| {
            let fk = a.split('/').next().unwrap_or_default();
            match (r.get(fk), left) {
                (Some(b), _) => Some((k.clone(), format!("{a}-{b}"))),
                (None, true) => Some((k.clone(), format!("{a}-null"))),
                (None, false) => None,
            }
        })
        .collect()
}

/// Pipes `ops`, checking after each one that the store and the emitted changes match
/// `expected(left rows, right rows)`.
fn check(
    topology: Topology,
    ops: &[Op],
    expected: impl Fn(&BTreeMap<String, String>, &BTreeMap<String, String>) -> BTreeMap<String, String>,
) -> Result<(), TestCaseError> {
    let d = TopologyTestDriver::new(topology).unwrap();
    let opt = || Serdes::option(Serdes::string());
    let (lt, rt) = (
        d.input_topic("left", Serdes::string(), opt()),
        d.input_topic("right", Serdes::string(), opt()),
    );
    let out = d.output_topic("out", Serdes::string(), opt());
    let (mut l, mut r) = (BTreeMap::new(), BTreeMap::new());
    let mut rebuilt = BTreeMap::new();
    for (is_left, key, value) in ops {
        let (topic, rows) = if *is_left {
            (&lt, &mut l)
        } else {
            (&rt, &mut r)
        };
        topic.pipe(key.clone(), value.clone()).unwrap();
        match value {
            Some(v) => rows.insert(key.clone(), v.clone()),
            None => rows.remove(key),
        };
        for (k, v) in out.read_key_values() {
            match v {
                Some(v) => rebuilt.insert(k, v),
                None => rebuilt.remove(&k),
            };
        }
        let want = expected(&l, &r);
        let store: BTreeMap<String, String> = d
            .key_value_store::<String, String>("result")
            .unwrap()
            .all()
            .unwrap()
            .into_iter()
            .collect();
        prop_assert_eq!(&store, &want, "store after {:?}", (is_left, key, value));
        prop_assert_eq!(&rebuilt, &want, "changes after {:?}", (is_left, key, value));
    }
    Ok(())
}

fn ops(fk: bool) -> impl Strategy<Value = Vec<Op>> {
    let key = prop_oneof![Just("a"), Just("b"), Just("c")];
    let op = (any::<bool>(), key.clone(), key, 0u8..4, any::<bool>()).prop_map(
        move |(is_left, k, fk_key, n, delete)| {
            // Left keys are order ids in a foreign-key join; their values name a right key.
            let key = if fk && is_left {
                format!("o-{k}")
            } else {
                k.to_string()
            };
            let value = if delete {
                None
            } else if fk && is_left {
                Some(format!("{fk_key}/{n}"))
            } else {
                Some(format!("{}{n}", if is_left { "L" } else { "R" }))
            };
            (is_left, key, value)
        },
    );
    proptest::collection::vec(op, 1..30)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn table_joins_equal_the_join_of_current_rows(ops in ops(false)) {
        for kind in [Kind::Inner, Kind::Left, Kind::Outer] {
            check(table_join(kind), &ops, |l, r| expected_table_join(kind, l, r))?;
        }
    }

    #[test]
    fn foreign_key_joins_equal_the_join_of_current_rows(ops in ops(true)) {
        for left in [false, true] {
            check(fk_join(left), &ops, |l, r| expected_fk_join(left, l, r))?;
        }
    }
}
