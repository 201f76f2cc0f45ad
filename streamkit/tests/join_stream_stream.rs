//! Stream-stream joins through the test driver: the Kafka Streams join-semantics table
//! (inner, left, outer), out-of-order and late records, duplicates, asymmetric windows, keys
//! changed before a join, and the stores a join keeps.

use std::time::Duration;

use streamkit::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Inner,
    Left,
    Outer,
}

fn show(v: Option<&String>) -> String {
    v.cloned().unwrap_or_else(|| "null".into())
}

/// `left` ⋈ `right` → `out`, values joined as `"L-R"` (`null` for a missing side), the way
/// the Kafka Streams wiki writes join results. Null values (tombstones on a stream) take no
/// part in a stream-stream join, as in Kafka Streams: they are filtered out first.
fn topology(kind: Kind, windows: JoinWindows) -> Topology {
    let b = StreamsBuilder::new();
    let opt = || Serdes::option(Serdes::string());
    let left = b
        .stream("left", Consumed::with(Serdes::string(), opt()))
        .flat_map_values(|v: Option<String>| v);
    let right = b
        .stream("right", Consumed::with(Serdes::string(), opt()))
        .flat_map_values(|v: Option<String>| v);
    let joined = StreamJoined::with(Serdes::string(), Serdes::string(), Serdes::string())
        .named("j")
        .in_memory();
    let out = match kind {
        Kind::Inner => left.join(
            &right,
            |l: &String, r: &String| format!("{l}-{r}"),
            windows,
            joined,
        ),
        Kind::Left => left.left_join(
            &right,
            |l: &String, r: Option<&String>| format!("{l}-{}", show(r)),
            windows,
            joined,
        ),
        Kind::Outer => left.outer_join(
            &right,
            |l: Option<&String>, r: Option<&String>| format!("{}-{}", show(l), show(r)),
            windows,
            joined,
        ),
    };
    out.to("out", Produced::with(Serdes::string(), Serdes::string()));
    b.build().unwrap()
}

/// One input record and what each join emits on it: `(side, value, ts, inner, left, outer)`;
/// `side` is 'L' or 'R', `value` `None` for a null value.
type Row = (
    char,
    Option<&'static str>,
    i64,
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
);

/// Pipes the rows in order (all with key "k"), checking the output after each one.
fn check_rows(windows: JoinWindows, rows: &[Row]) -> [TopologyTestDriver; 3] {
    let drivers = [Kind::Inner, Kind::Left, Kind::Outer]
        .map(|k| TopologyTestDriver::new(topology(k, windows)).unwrap());
    for (side, value, ts, inner, left, outer) in rows {
        for (d, (kind, want)) in drivers.iter().zip([
            (Kind::Inner, inner),
            (Kind::Left, left),
            (Kind::Outer, outer),
        ]) {
            let topic = if *side == 'L' { "left" } else { "right" };
            d.input_topic(topic, Serdes::string(), Serdes::option(Serdes::string()))
                .pipe_at("k".into(), value.map(str::to_string), *ts)
                .unwrap();
            let got = d
                .output_topic("out", Serdes::string(), Serdes::string())
                .read_values();
            assert_eq!(&got, want, "{kind:?} join, after {side}:{value:?} at {ts}");
        }
    }
    drivers
}

/// The table of the Kafka Streams wiki page "Kafka Streams Join Semantics", section "Improved
/// Left/Outer Stream-Stream Join (v3.1.x and newer)": left stream 1:null, 3:A, 5:B, 7:null,
/// 9:C, 12:null, 15:D, 40:E, 60:F, 100:G; right stream 2:null, 4:a, 6:b, 8:null, 10:c,
/// 11:null, 13:null, 14:d, 80:f. Records 1..15 all fall in one window, as the table assumes;
/// a left or outer result with a missing side comes only once the record's window and grace
/// have passed (E at F, F at f, f at G). Kafka Streams' `KStreamKStreamJoin` (which streamkit
/// follows) emits a waiting record once stream time is *past* `t + window + grace`, so the
/// window here is 14 ms with 5 ms grace: E (40) is emitted at 60 > 40 + 14 + 5.
#[test]
fn kafka_streams_join_semantics_table() {
    let windows = JoinWindows::of(Duration::from_millis(14)).grace(Duration::from_millis(5));
    let rows: &[Row] = &[
        ('L', None, 1, &[], &[], &[]),
        ('R', None, 2, &[], &[], &[]),
        ('L', Some("A"), 3, &[], &[], &[]),
        ('R', Some("a"), 4, &["A-a"], &["A-a"], &["A-a"]),
        ('L', Some("B"), 5, &["B-a"], &["B-a"], &["B-a"]),
        (
            'R',
            Some("b"),
            6,
            &["A-b", "B-b"],
            &["A-b", "B-b"],
            &["A-b", "B-b"],
        ),
        ('L', None, 7, &[], &[], &[]),
        ('R', None, 8, &[], &[], &[]),
        (
            'L',
            Some("C"),
            9,
            &["C-a", "C-b"],
            &["C-a", "C-b"],
            &["C-a", "C-b"],
        ),
        (
            'R',
            Some("c"),
            10,
            &["A-c", "B-c", "C-c"],
            &["A-c", "B-c", "C-c"],
            &["A-c", "B-c", "C-c"],
        ),
        ('R', None, 11, &[], &[], &[]),
        ('L', None, 12, &[], &[], &[]),
        ('R', None, 13, &[], &[], &[]),
        (
            'R',
            Some("d"),
            14,
            &["A-d", "B-d", "C-d"],
            &["A-d", "B-d", "C-d"],
            &["A-d", "B-d", "C-d"],
        ),
        (
            'L',
            Some("D"),
            15,
            &["D-a", "D-b", "D-c", "D-d"],
            &["D-a", "D-b", "D-c", "D-d"],
            &["D-a", "D-b", "D-c", "D-d"],
        ),
        ('L', Some("E"), 40, &[], &[], &[]),
        ('L', Some("F"), 60, &[], &["E-null"], &["E-null"]),
        ('R', Some("f"), 80, &[], &["F-null"], &["F-null"]),
        ('L', Some("G"), 100, &[], &[], &["null-f"]),
    ];
    let drivers = check_rows(windows, rows);
    for d in &drivers {
        assert_eq!(d.metrics().dropped_records("late"), 0);
    }
}

/// Out-of-order records join while their window (plus grace) is open; later ones are dropped
/// as late and counted. Window ±10 ms, grace 5 ms.
#[test]
fn out_of_order_records_join_within_grace_and_late_ones_are_dropped() {
    let windows = JoinWindows::of(Duration::from_millis(10)).grace(Duration::from_millis(5));
    let rows: &[Row] = &[
        ('L', Some("A"), 100, &[], &[], &[]),
        // 5 ms before A, arriving after it: A's window is [90, 110].
        ('R', Some("x"), 95, &["A-x"], &["A-x"], &["A-x"]),
        ('L', Some("B"), 130, &[], &[], &[]),
        // Out of order (stream time 130) but its window [108, 128] + 5 ms grace is open;
        // it has no partner: outer joins hold it.
        ('R', Some("y"), 118, &[], &[], &[]),
        // Window [102, 122] closed at 122 + 5 < 130: late.
        ('L', Some("C"), 112, &[], &[], &[]),
        // Stream time 140 closes y's window (118 + 10 + 5 < 140), then z meets B.
        ('R', Some("z"), 140, &["B-z"], &["B-z"], &["null-y", "B-z"]),
        ('L', Some("D"), 150, &["D-z"], &["D-z"], &["D-z"]),
        // z at 140 is 11 ms before E: no partner.
        ('L', Some("E"), 151, &[], &[], &[]),
        // 151 + 10 + 5 < 170: E's window closed, without a partner.
        ('R', Some("w"), 170, &[], &["E-null"], &["E-null"]),
    ];
    let drivers = check_rows(windows, rows);
    for d in &drivers {
        assert_eq!(d.metrics().dropped_records("late"), 1);
    }
}

/// Records exactly at the window's edges join; one millisecond further does not. Grace 0:
/// a waiting record leaves as soon as stream time passes `t + after`.
#[test]
fn window_bounds_are_inclusive_and_waiting_records_leave_right_after_them() {
    let windows = JoinWindows::of(Duration::from_millis(10));
    let rows: &[Row] = &[
        ('L', Some("A"), 100, &[], &[], &[]),
        ('R', Some("a"), 110, &["A-a"], &["A-a"], &["A-a"]),
        ('L', Some("B"), 100, &["B-a"], &["B-a"], &["B-a"]),
        // 11 ms after a: no partner; stream time 111 closes nothing (a was matched).
        ('L', Some("C"), 121, &[], &[], &[]),
        // Stream time 131 = 121 + 10: C's window is still open.
        ('R', Some("b"), 131, &["C-b"], &["C-b"], &["C-b"]),
        ('L', Some("D"), 142, &[], &[], &[]),
        // 152 = 142 + 10: open; 153 closes it.
        ('R', Some("c"), 152, &["D-c"], &["D-c"], &["D-c"]),
        ('L', Some("E"), 163, &[], &[], &[]),
        ('R', Some("d"), 174, &[], &["E-null"], &["E-null"]),
        ('L', Some("F"), 185, &[], &[], &["null-d"]),
    ];
    check_rows(windows, rows);
}

/// `before` and `after` bound the other side's timestamps asymmetrically: with before = 0,
/// right records must not be older than the left one.
#[test]
fn asymmetric_windows_bound_each_direction() {
    let windows = JoinWindows::of(Duration::from_millis(10)).before(Duration::ZERO);
    let rows: &[Row] = &[
        // A right record meets left records in [t - after, t + before] = [85, 95]: its
        // window closes as soon as stream time passes 95.
        ('R', Some("old"), 95, &[], &[], &[]),
        ('L', Some("A"), 100, &[], &[], &["null-old"]),
        ('R', Some("new"), 105, &["A-new"], &["A-new"], &["A-new"]),
        // Out of order: "new" lies in [101, 111], "old" does not.
        ('L', Some("B"), 101, &["B-new"], &["B-new"], &["B-new"]),
        ('R', Some("c"), 112, &[], &[], &[]),
        // c's window [102, 112] closed as stream time passed 112.
        ('L', Some("D"), 120, &[], &[], &["null-c"]),
    ];
    check_rows(windows, rows);
}

#[test]
fn duplicates_of_one_key_and_timestamp_are_all_kept() {
    let windows = JoinWindows::of(Duration::from_millis(5));
    let rows: &[Row] = &[
        ('L', Some("A1"), 10, &[], &[], &[]),
        ('L', Some("A2"), 10, &[], &[], &[]),
        (
            'R',
            Some("a"),
            10,
            &["A1-a", "A2-a"],
            &["A1-a", "A2-a"],
            &["A1-a", "A2-a"],
        ),
        ('L', Some("B1"), 20, &[], &[], &[]),
        ('L', Some("B2"), 20, &[], &[], &[]),
        (
            'R',
            Some("x"),
            30,
            &[],
            &["B1-null", "B2-null"],
            &["B1-null", "B2-null"],
        ),
    ];
    check_rows(windows, rows);
}

#[test]
fn only_equal_keys_join_and_closed_records_leave_in_time_order() {
    let d = TopologyTestDriver::new(topology(
        Kind::Outer,
        JoinWindows::of(Duration::from_millis(5)),
    ))
    .unwrap();
    let left = d.input_topic("left", Serdes::string(), Serdes::option(Serdes::string()));
    let right = d.input_topic("right", Serdes::string(), Serdes::option(Serdes::string()));
    let out = d.output_topic("out", Serdes::string(), Serdes::string());
    left.pipe_at("k2".into(), Some("L2".into()), 2).unwrap();
    right.pipe_at("k1".into(), Some("r1".into()), 1).unwrap();
    left.pipe_at("k1".into(), Some("L1".into()), 3).unwrap();
    right.pipe_at("k3".into(), Some("r3".into()), 3).unwrap();
    assert_eq!(
        out.read_key_values(),
        vec![("k1".to_string(), "L1-r1".to_string())]
    );
    right.pipe_at("k9".into(), Some("r9".into()), 100).unwrap();
    let recs = out.read_records();
    let got: Vec<(String, String, i64)> = recs
        .into_iter()
        .map(|r| (r.key, r.value, r.timestamp))
        .collect();
    assert_eq!(
        got,
        vec![
            ("k2".to_string(), "L2-null".to_string(), 2),
            ("k3".to_string(), "null-r3".to_string(), 3),
        ]
    );
}

#[test]
fn joined_records_carry_the_later_timestamp() {
    let d = TopologyTestDriver::new(topology(
        Kind::Inner,
        JoinWindows::of(Duration::from_secs(1)),
    ))
    .unwrap();
    let left = d.input_topic("left", Serdes::string(), Serdes::option(Serdes::string()));
    let right = d.input_topic("right", Serdes::string(), Serdes::option(Serdes::string()));
    left.pipe_at("k".into(), Some("A".into()), 1_500).unwrap();
    right.pipe_at("k".into(), Some("a".into()), 1_200).unwrap();
    right.pipe_at("k".into(), Some("b".into()), 2_000).unwrap();
    let got: Vec<(String, i64)> = d
        .output_topic("out", Serdes::string(), Serdes::string())
        .read_records()
        .into_iter()
        .map(|r| (r.value, r.timestamp))
        .collect();
    assert_eq!(
        got,
        vec![("A-a".to_string(), 1_500), ("A-b".to_string(), 2_000)]
    );
}

/// A side whose key an upstream step changed goes through a repartition topic first, and
/// the join's inputs form a co-partition group.
#[test]
fn a_rekeyed_side_is_repartitioned_and_inputs_are_copartitioned() {
    let b = StreamsBuilder::new();
    let taps = b
        .stream("taps", Consumed::with(Serdes::string(), Serdes::string()))
        .select_key(|_card, station: &String| station.clone());
    let alerts = b.stream("alerts", Consumed::with(Serdes::string(), Serdes::string()));
    taps.join(
        &alerts,
        |station: &String, alert: &String| format!("{station}: {alert}"),
        JoinWindows::of(Duration::from_secs(60)),
        StreamJoined::with(Serdes::string(), Serdes::string(), Serdes::string())
            .named("tap-alerts"),
    )
    .to("out", Produced::with(Serdes::string(), Serdes::string()));
    let topology = b.build().unwrap();
    assert_eq!(topology.subtopology_count(), 2);
    let groups: Vec<Vec<String>> = topology
        .copartition_groups()
        .iter()
        .map(|g| g.iter().map(|t| t.resolve("app")).collect())
        .collect();
    assert_eq!(
        groups,
        vec![vec![
            "app-tap-alerts-left-repartition".to_string(),
            "alerts".to_string()
        ]]
    );
    let internal: Vec<String> = topology
        .internal_topics()
        .iter()
        .map(|t| t.name.resolve("app"))
        .collect();
    for t in [
        "app-tap-alerts-left-repartition",
        "app-tap-alerts-this-join-store-changelog",
        "app-tap-alerts-other-join-store-changelog",
    ] {
        assert!(internal.contains(&t.to_string()), "{t} in {internal:?}");
    }
    assert!(
        !internal.iter().any(|t| t.contains("outer-shared")),
        "inner joins keep no outer store"
    );
    let d = TopologyTestDriver::new(topology).unwrap();
    d.input_topic("alerts", Serdes::string(), Serdes::string())
        .pipe_at("clark".into(), "elevator out".into(), 1_000)
        .unwrap();
    d.input_topic("taps", Serdes::string(), Serdes::string())
        .pipe_at("card-1".into(), "clark".into(), 2_000)
        .unwrap();
    assert_eq!(
        d.output_topic("out", Serdes::string(), Serdes::string())
            .read_key_values(),
        vec![("clark".to_string(), "clark: elevator out".to_string())]
    );
}

/// Every buffered record reaches the store's changelog, so a restarted task resumes with the
/// same waiting records; a record that met its partner is taken out of the outer store.
#[test]
fn buffers_are_changelogged() {
    let d = TopologyTestDriver::new(topology(
        Kind::Left,
        JoinWindows::of(Duration::from_millis(5)),
    ))
    .unwrap();
    let left = d.input_topic("left", Serdes::string(), Serdes::option(Serdes::string()));
    let right = d.input_topic("right", Serdes::string(), Serdes::option(Serdes::string()));
    left.pipe_at("k".into(), Some("A".into()), 10).unwrap();
    right.pipe_at("k".into(), Some("a".into()), 12).unwrap();
    let this = d.output_topic(
        "test-app-j-this-join-store-changelog",
        Serdes::bytes(),
        Serdes::option(Serdes::bytes()),
    );
    let other = d.output_topic(
        "test-app-j-other-join-store-changelog",
        Serdes::bytes(),
        Serdes::option(Serdes::bytes()),
    );
    let outer = d.output_topic(
        "test-app-j-outer-shared-join-store-changelog",
        Serdes::bytes(),
        Serdes::option(Serdes::bytes()),
    );
    assert_eq!(this.read_records().len(), 1);
    assert_eq!(other.read_records().len(), 1);
    let outer_writes: Vec<bool> = outer
        .read_records()
        .into_iter()
        .map(|r| r.value.is_some())
        .collect();
    assert_eq!(outer_writes, vec![true, false], "A waited, then met a");
}

/// A `None` result is final: once a waiting record's window has closed, a partner that is
/// itself still in time (its own window open) no longer meets it.
#[test]
fn a_record_emitted_without_partner_joins_nothing_later() {
    let windows = JoinWindows::of(Duration::from_millis(10));
    let rows: &[Row] = &[
        ('L', Some("A"), 100, &[], &[], &[]),
        ('R', Some("x"), 120, &[], &["A-null"], &["A-null"]),
        // y's window [100, 120] is open at stream time 120, A's [90, 110] is not.
        ('R', Some("y"), 110, &[], &[], &[]),
        ('L', Some("B"), 131, &[], &[], &["null-y", "null-x"]),
    ];
    let drivers = check_rows(windows, rows);
    for d in &drivers {
        assert_eq!(d.metrics().dropped_records("late"), 0);
    }
}

/// Late records of either side can also go to a dead-letter topic, as for windowed
/// aggregations.
#[test]
fn late_records_can_be_dead_lettered() {
    let b = StreamsBuilder::new();
    let left = b.stream("left", Consumed::with(Serdes::string(), Serdes::string()));
    let right = b.stream("right", Consumed::with(Serdes::string(), Serdes::i64()));
    left.join(
        &right,
        |l: &String, r: &i64| format!("{l}{r}"),
        JoinWindows::of(Duration::from_millis(10)),
        StreamJoined::with(Serdes::string(), Serdes::string(), Serdes::i64())
            .late_records_to("too-late")
            .in_memory(),
    )
    .to("out", Produced::with(Serdes::string(), Serdes::string()));
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let (l, r) = (
        d.input_topic("left", Serdes::string(), Serdes::string()),
        d.input_topic("right", Serdes::string(), Serdes::i64()),
    );
    l.pipe_at("k".into(), "A".into(), 100).unwrap();
    l.pipe_at("k".into(), "late".into(), 50).unwrap();
    r.pipe_at("k".into(), 7, 60).unwrap();
    assert!(
        d.output_topic("out", Serdes::string(), Serdes::string())
            .is_empty()
    );
    assert_eq!(d.metrics().dropped_records("late"), 2);
    let dead = d
        .output_topic("too-late", Serdes::string(), Serdes::bytes())
        .read_records();
    let values: Vec<Vec<u8>> = dead.iter().map(|r| r.value.clone()).collect();
    assert_eq!(values, vec![b"late".to_vec(), 7i64.to_be_bytes().to_vec()]);
    assert!(
        dead[0]
            .headers
            .last_str(streamkit::error_policy::dead_letter_headers::ERROR)
            .is_some_and(|e| e.contains("late record"))
    );
}
