//! Foreign-key table joins through the test driver: results follow updates of either side and
//! foreign-key changes, an old foreign key stops answering, and answers computed for a left
//! value since replaced are dropped.

use streamkit::prelude::*;

/// orders: order id -> "product|quantity"; products: product id -> name.
fn topology(left: bool, split_updates: bool) -> Topology {
    let b = StreamsBuilder::new();
    let orders = b.stream("orders", Consumed::with(Serdes::string(), Serdes::string()));
    // One input record may carry several successive updates of an order ("a;b"), so that
    // two subscriptions are in flight at once.
    let orders = if split_updates {
        orders.flat_map_values(|v: String| v.split(';').map(str::to_string).collect::<Vec<_>>())
    } else {
        orders
    };
    let orders = orders
        .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
        .reduce(
            |_old, new| new,
            Materialized::named("orders-store").in_memory(),
        );
    let products = b
        .stream(
            "products",
            Consumed::with(Serdes::string(), Serdes::string()),
        )
        .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
        .reduce(
            |_old, new| new,
            Materialized::named("products-store").in_memory(),
        );
    let product_of = |order: &String| order.split('|').next().unwrap_or_default().to_string();
    let qty = |order: &String| order.split('|').nth(1).unwrap_or_default().to_string();
    let m = Materialized::named("order-lines")
        .value_serde(Serdes::string())
        .in_memory();
    let joined = if left {
        orders.left_join_foreign_key(
            &products,
            product_of,
            move |o: &String, name: Option<&String>| {
                format!("{} x {}", qty(o), name.map_or("?", |n| n.as_str()))
            },
            m,
        )
    } else {
        orders.join_foreign_key(
            &products,
            product_of,
            move |o: &String, name: &String| format!("{} x {name}", qty(o)),
            m,
        )
    };
    joined
        .to_stream()
        .to("lines", Produced::with(Serdes::string(), Serdes::string()));
    b.build().unwrap()
}

type Step = (
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

fn run(left: bool, steps: &[Step]) -> TopologyTestDriver {
    let d = TopologyTestDriver::new(topology(left, false)).unwrap();
    let out = d.output_topic("lines", Serdes::string(), Serdes::string());
    for (topic, key, value, want) in steps {
        d.input_topic(topic, Serdes::string(), Serdes::string())
            .pipe(key.to_string(), value.to_string())
            .unwrap();
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(
            out.read_key_values(),
            want,
            "{} join after {topic} {key}={value}",
            if left { "left" } else { "inner" }
        );
    }
    d
}

fn rows(d: &TopologyTestDriver) -> Vec<(String, String)> {
    let mut rows = d
        .key_value_store::<String, String>("order-lines")
        .unwrap()
        .all()
        .unwrap();
    rows.sort();
    rows
}

#[test]
fn inner_foreign_key_join_follows_both_sides_and_foreign_key_changes() {
    let d = run(
        false,
        &[
            ("products", "p1", "Pen", &[]),
            ("orders", "o1", "p1|2", &[("o1", "2 x Pen")]),
            // No product p9 yet: no row.
            ("orders", "o2", "p9|1", &[]),
            ("products", "p1", "Ink pen", &[("o1", "2 x Ink pen")]),
            // o1 now points at p2, which does not exist: its row is deleted.
            ("orders", "o1", "p2|2", &[]),
            ("products", "p2", "Pencil", &[("o1", "2 x Pencil")]),
            // o1 no longer subscribes to p1.
            ("products", "p1", "Fountain pen", &[]),
            ("products", "p9", "Nib", &[("o2", "1 x Nib")]),
            ("orders", "o1", "p2|5", &[("o1", "5 x Pencil")]),
        ],
    );
    assert_eq!(
        rows(&d),
        vec![
            ("o1".to_string(), "5 x Pencil".to_string()),
            ("o2".to_string(), "1 x Nib".to_string())
        ]
    );
}

#[test]
fn inner_foreign_key_join_deletes_the_row_when_the_new_key_has_no_match() {
    let d = TopologyTestDriver::new(topology(false, false)).unwrap();
    let (orders, products) = (
        d.input_topic("orders", Serdes::string(), Serdes::string()),
        d.input_topic("products", Serdes::string(), Serdes::string()),
    );
    products.pipe("p1".into(), "Pen".into()).unwrap();
    orders.pipe("o1".into(), "p1|2".into()).unwrap();
    assert_eq!(rows(&d), vec![("o1".to_string(), "2 x Pen".to_string())]);
    orders.pipe("o1".into(), "p2|2".into()).unwrap();
    assert_eq!(rows(&d), vec![]);
    // The deletion reached the result's changelog as a tombstone.
    let changelog: Vec<Option<String>> = d
        .output_topic(
            "test-app-order-lines-changelog",
            Serdes::string(),
            Serdes::option(Serdes::string()),
        )
        .read_values();
    assert_eq!(changelog, vec![Some("2 x Pen".to_string()), None]);
}

#[test]
fn left_foreign_key_join_keeps_rows_without_match() {
    let d = run(
        true,
        &[
            ("products", "p1", "Pen", &[]),
            ("orders", "o1", "p1|2", &[("o1", "2 x Pen")]),
            ("orders", "o2", "p9|1", &[("o2", "1 x ?")]),
            ("products", "p1", "Ink pen", &[("o1", "2 x Ink pen")]),
            ("orders", "o1", "p2|2", &[("o1", "2 x ?")]),
            ("products", "p2", "Pencil", &[("o1", "2 x Pencil")]),
            ("products", "p1", "Fountain pen", &[]),
            ("products", "p9", "Nib", &[("o2", "1 x Nib")]),
        ],
    );
    assert_eq!(
        rows(&d),
        vec![
            ("o1".to_string(), "2 x Pencil".to_string()),
            ("o2".to_string(), "1 x Nib".to_string())
        ]
    );
}

/// Two updates of one order in flight at once: the answer to the first is computed for a
/// value the order no longer has, and is dropped (its hash differs); only the answer to the
/// second makes a row. Without the check, the first answer would emit a second row.
#[test]
fn answers_for_replaced_left_values_are_dropped() {
    for left in [false, true] {
        let d = TopologyTestDriver::new(topology(left, true)).unwrap();
        let (orders, products) = (
            d.input_topic("orders", Serdes::string(), Serdes::string()),
            d.input_topic("products", Serdes::string(), Serdes::string()),
        );
        products.pipe("p1".into(), "Pen".into()).unwrap();
        products.pipe("p2".into(), "Pencil".into()).unwrap();
        let out = d.output_topic("lines", Serdes::string(), Serdes::string());
        orders.pipe("o1".into(), "p1|1;p1|2".into()).unwrap();
        assert_eq!(out.read_values(), vec!["2 x Pen"], "left: {left}");
        // A foreign-key change in flight too: p1's answer is stale, p2's counts.
        orders.pipe("o1".into(), "p1|3;p2|3".into()).unwrap();
        assert_eq!(out.read_values(), vec!["3 x Pencil"], "left: {left}");
    }
}

#[test]
fn subscription_topics_are_copartitioned_with_each_side() {
    let topology = topology(false, false);
    assert_eq!(topology.subtopology_count(), 2);
    let groups: Vec<Vec<String>> = topology
        .copartition_groups()
        .iter()
        .map(|g| g.iter().map(|t| t.resolve("app")).collect())
        .collect();
    assert_eq!(
        groups,
        vec![
            vec![
                "app-order-lines-subscription-registration-repartition".to_string(),
                "products".to_string()
            ],
            vec![
                "app-order-lines-subscription-response-repartition".to_string(),
                "orders".to_string()
            ],
        ]
    );
}
