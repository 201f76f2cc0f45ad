//! `suppress(Suppressed::until_time_limit(..))` on tables: at most one update per key and
//! period, the latest, as one change from the value downstream saw before; a table
//! aggregation behind it stays equal to a recomputation.

use std::collections::BTreeMap;
use std::time::Duration;

use streamkit::prelude::*;

fn rows(b: &StreamsBuilder) -> KTable<String, String> {
    b.table(
        "rows",
        Consumed::with(Serdes::string(), Serdes::string()),
        Materialized::named("rows").in_memory(),
    )
}

#[test]
fn each_key_is_emitted_once_per_period_with_its_latest_value() {
    let b = StreamsBuilder::new();
    rows(&b)
        .suppress(Suppressed::until_time_limit(Duration::from_secs(10)).named("every-10s"))
        .to_change_stream()
        .to(
            "out",
            Produced::with(Serdes::string(), Serdes::option(Serdes::string())),
        );
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let input = d.input_topic("rows", Serdes::string(), Serdes::option(Serdes::string()));
    let pipe = |k: &str, v: Option<&str>, ts: i64| {
        input
            .pipe_at(k.to_string(), v.map(str::to_string), ts)
            .unwrap()
    };
    pipe("k1", Some("a"), 0);
    pipe("k1", Some("b"), 3_000);
    pipe("k2", Some("x"), 5_000);
    pipe("k1", Some("c"), 11_000); // k1 waited 10 s: its latest value leaves
    pipe("k2", None, 12_000); // added and deleted while waiting: never emitted
    pipe("k3", Some("z"), 16_000);
    pipe("k1", Some("d"), 17_000);
    pipe("k4", Some("q"), 30_000); // k3 (first at 16 s) then k1 (17 s) are due
    let out = d.output_topic("out", Serdes::string(), Serdes::option(Serdes::string()));
    let got: Vec<(String, Option<String>, i64)> = out
        .read_records()
        .into_iter()
        .map(|r| (r.key, r.value, r.timestamp))
        .collect();
    let want = |k: &str, v: &str, ts| (k.to_string(), Some(v.to_string()), ts);
    assert_eq!(
        got,
        vec![
            want("k1", "c", 11_000),
            want("k3", "z", 16_000),
            want("k1", "d", 17_000)
        ]
    );
    // The buffer is a changelogged store named after the node.
    assert!(
        d.produced_topic_names()
            .contains(&"test-app-every-10s-buffer-changelog".to_string())
    );
}

#[test]
fn an_aggregate_behind_a_suppressed_table_equals_a_recomputation() {
    let b = StreamsBuilder::new();
    rows(&b)
        .suppress(Suppressed::until_time_limit(Duration::from_secs(5)))
        .group_by(
            |_, group| (group.clone(), ()),
            Grouped::with(Serdes::string(), Serdes::unit()),
        )
        .count(Materialized::named("per-group").in_memory());
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let input = d.input_topic("rows", Serdes::string(), Serdes::option(Serdes::string()));
    let mut table = BTreeMap::new();
    // A fixed pseudo-random walk of updates and deletes over 8 rows and 3 groups.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for i in 0..400i64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let key = format!("row-{}", x % 8);
        let value = (!x.is_multiple_of(5)).then(|| format!("g{}", (x >> 8) % 3));
        match &value {
            Some(v) => table.insert(key.clone(), v.clone()),
            None => table.remove(&key),
        };
        input.pipe_at(key, value, i * 700).unwrap();
    }
    // An update far in the future: every waiting one leaves (the new one waits).
    input
        .pipe_at("flush".into(), Some("later".into()), 1_000_000)
        .unwrap();
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    for g in table.values() {
        *expected.entry(g.clone()).or_default() += 1;
    }
    let counts = d.key_value_store::<String, i64>("per-group").unwrap();
    for (group, n) in counts.all().unwrap() {
        assert_eq!(
            n,
            expected.get(&group).copied().unwrap_or(0),
            "group {group}"
        );
    }
    for group in expected.keys() {
        assert!(
            counts.get(group).unwrap().is_some(),
            "group {group} missing"
        );
    }
}

#[test]
fn until_window_closes_still_needs_a_windowed_aggregation() {
    let b = StreamsBuilder::new();
    rows(&b).suppress(Suppressed::until_window_closes());
    let err = b.build().unwrap_err().to_string();
    assert!(
        err.contains("must directly follow a windowed aggregation"),
        "{err}"
    );
}

fn bounded(suppressed: Suppressed) -> TopologyTestDriver {
    let b = StreamsBuilder::new();
    rows(&b)
        .suppress(suppressed)
        .to_stream()
        .to("out", Produced::with(Serdes::string(), Serdes::string()));
    TopologyTestDriver::new(b.build().unwrap()).unwrap()
}

#[test]
fn a_full_buffer_emits_its_oldest_keys_early() {
    let d = bounded(
        Suppressed::until_time_limit(Duration::from_secs(60))
            .with_max_records(2)
            .emit_early_when_full(),
    );
    let input = d.input_topic("rows", Serdes::string(), Serdes::string());
    let out = d.output_topic("out", Serdes::string(), Serdes::string());
    input.pipe_at("k1".into(), "a".into(), 0).unwrap();
    input.pipe_at("k2".into(), "b".into(), 1_000).unwrap();
    input.pipe_at("k1".into(), "a2".into(), 2_000).unwrap(); // replaces: still 2 keys
    assert!(out.is_empty());
    input.pipe_at("k3".into(), "c".into(), 3_000).unwrap(); // 3 keys: k1 (oldest) leaves
    assert_eq!(out.read_key_values(), vec![("k1".into(), "a2".into())]);
    input.pipe_at("k4".into(), "d".into(), 4_000).unwrap();
    assert_eq!(out.read_key_values(), vec![("k2".into(), "b".into())]);
    // The time limit still applies to what stays: k3 waited 60 s, k4 not yet.
    input.pipe_at("k5".into(), "e".into(), 63_000).unwrap();
    assert_eq!(out.read_key_values(), vec![("k3".into(), "c".into())]);
}

#[test]
fn emit_early_is_the_default_when_bounded() {
    let d = bounded(Suppressed::until_time_limit(Duration::from_secs(60)).with_max_records(1));
    let input = d.input_topic("rows", Serdes::string(), Serdes::string());
    let out = d.output_topic("out", Serdes::string(), Serdes::string());
    input.pipe_at("k1".into(), "a".into(), 0).unwrap();
    input.pipe_at("k2".into(), "b".into(), 1_000).unwrap();
    assert_eq!(out.read_key_values(), vec![("k1".into(), "a".into())]);
}

#[test]
fn a_byte_bounded_buffer_emits_early_when_its_bytes_exceed_the_limit() {
    let d = bounded(Suppressed::until_time_limit(Duration::from_secs(60)).with_max_bytes(100));
    let input = d.input_topic("rows", Serdes::string(), Serdes::string());
    let out = d.output_topic("out", Serdes::string(), Serdes::string());
    input.pipe_at("k1".into(), "a".into(), 0).unwrap();
    assert!(out.is_empty());
    input.pipe_at("k2".into(), "x".repeat(200), 1_000).unwrap();
    // k2 alone exceeds the limit: both leave, oldest first.
    assert_eq!(
        out.read_key_values(),
        vec![("k1".into(), "a".into()), ("k2".into(), "x".repeat(200))]
    );
    input.pipe_at("k3".into(), "c".into(), 2_000).unwrap();
    assert!(out.is_empty());
}

#[test]
fn shut_down_when_full_fails_naming_the_suppression_and_the_limit() {
    let d = bounded(
        Suppressed::until_time_limit(Duration::from_secs(60))
            .with_max_records(2)
            .shut_down_when_full()
            .named("throttle"),
    );
    let input = d.input_topic("rows", Serdes::string(), Serdes::string());
    input.pipe_at("k1".into(), "a".into(), 0).unwrap();
    input.pipe_at("k2".into(), "b".into(), 1_000).unwrap();
    input.pipe_at("k2".into(), "b2".into(), 1_500).unwrap();
    let err = input.pipe_at("k3".into(), "c".into(), 2_000).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("throttle"), "{msg}");
    assert!(msg.contains("max_records = 2"), "{msg}");
    assert!(msg.contains("shut_down_when_full"), "{msg}");
}

fn windowed_build_error(suppressed: Suppressed) -> String {
    let b = StreamsBuilder::new();
    b.stream("taps", Consumed::with(Serdes::string(), Serdes::string()))
        .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
        .windowed_by(TimeWindows::tumbling(Duration::from_secs(60)))
        .count(Materialized::named("per-minute"))
        .suppress(suppressed)
        .to_stream()
        .map(|k, n| (k.key, n))
        .to("final", Produced::with(Serdes::string(), Serdes::i64()));
    match b.build() {
        Ok(_) => panic!("build must fail"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn until_window_closes_rejects_emit_early_when_full_at_build() {
    let msg = windowed_build_error(
        Suppressed::until_window_closes()
            .with_max_records(10)
            .emit_early_when_full(),
    );
    assert!(msg.contains("emit_early_when_full"), "{msg}");
    let msg = windowed_build_error(Suppressed::until_window_closes().with_max_bytes(10));
    assert!(msg.contains("with_max_records and with_max_bytes"), "{msg}");
}
