//! Oracle tests: random keyed, out-of-order input through the test driver; the final window
//! results must equal a naive recomputation from scratch.

use std::collections::BTreeMap;
use std::time::Duration;

use streamkit::prelude::*;
use streamkit::window::{SessionWindows, SlidingWindows, TimeWindows, Windowed, WindowedSerde};

/// xorshift64*: deterministic input without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// (key, value, timestamp): time mostly advances, with jitter of up to `jitter` ms backwards.
fn input(seed: u64, n: usize, jitter: i64) -> Vec<(String, i64, i64)> {
    let mut rng = Rng(seed | 1);
    let mut base = 0i64;
    (0..n)
        .map(|_| {
            base += rng.below(400) as i64;
            let ts = (base - rng.below(jitter as u64 + 1) as i64).max(0);
            (format!("k{}", rng.below(5)), rng.below(100) as i64, ts)
        })
        .collect()
}

type Finals = BTreeMap<(String, i64, i64), i64>;

/// Sum per key and time window of the records a Kafka Streams-style engine accepts: a record
/// is dropped from every window whose end + grace <= stream time (including itself).
fn time_window_oracle(records: &[(String, i64, i64)], windows: &TimeWindows) -> Finals {
    let mut stream_time = i64::MIN;
    let mut out = Finals::new();
    for (k, v, ts) in records {
        stream_time = stream_time.max(*ts);
        for w in windows.windows_for(*ts) {
            if w.end + windows.grace_ms > stream_time {
                *out.entry((k.clone(), w.start, w.end)).or_default() += v;
            }
        }
    }
    out
}

fn run_time_windows(
    records: &[(String, i64, i64)],
    windows: TimeWindows,
    suppress: bool,
) -> Finals {
    let b = StreamsBuilder::new();
    let table = b
        .stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
        .group_by_key(Grouped::with(Serdes::string(), Serdes::i64()))
        .windowed_by(windows)
        .reduce(|a, b| a + b, Materialized::named("sums").in_memory());
    let table = if suppress {
        table.suppress(Suppressed::until_window_closes())
    } else {
        table
    };
    let key_serde = || WindowedSerde::time(Serdes::string(), windows.size_ms);
    table
        .to_stream()
        .to("out", Produced::with(key_serde(), Serdes::i64()));
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let input = d.input_topic("in", Serdes::string(), Serdes::i64());
    for (k, v, ts) in records {
        input.pipe_at(k.clone(), *v, *ts).unwrap();
    }
    // Close every window: a record of another key far in the future.
    input.pipe_at("zz-flush".into(), 0, 10_000_000).unwrap();
    let out = d.output_topic("out", key_serde(), Serdes::i64());
    let mut finals = Finals::new();
    let mut emitted_per_window: BTreeMap<(String, i64), usize> = BTreeMap::new();
    for (Windowed { key, window }, v) in out.read_key_values() {
        if key == "zz-flush" {
            continue;
        }
        *emitted_per_window
            .entry((key.clone(), window.start))
            .or_default() += 1;
        finals.insert((key, window.start, window.end), v);
    }
    if suppress {
        assert!(
            emitted_per_window.values().all(|n| *n == 1),
            "suppressed windows emit exactly once"
        );
    }
    // The store agrees with what was emitted.
    let store = d.window_store::<String, i64>("sums").unwrap();
    for ((k, start, _), v) in &finals {
        assert_eq!(store.fetch(k, *start, *start).unwrap(), vec![(*start, *v)]);
    }
    finals
}

#[test]
fn tumbling_windows_match_the_oracle() {
    for seed in 1..=12 {
        let windows =
            TimeWindows::tumbling(Duration::from_secs(5)).grace(Duration::from_millis(700));
        let records = input(seed, 400, 2_000);
        let expected = time_window_oracle(&records, &windows);
        assert!(!expected.is_empty());
        assert_eq!(
            run_time_windows(&records, windows, false),
            expected,
            "seed {seed}, emit on update"
        );
        assert_eq!(
            run_time_windows(&records, windows, true),
            expected,
            "seed {seed}, emit final"
        );
    }
}

#[test]
fn hopping_windows_match_the_oracle() {
    for seed in 1..=12 {
        let windows = TimeWindows::hopping(Duration::from_secs(10), Duration::from_secs(2))
            .grace(Duration::from_secs(1));
        let records = input(seed * 7919, 400, 3_000);
        let expected = time_window_oracle(&records, &windows);
        assert_eq!(
            run_time_windows(&records, windows, false),
            expected,
            "seed {seed}, emit on update"
        );
        assert_eq!(
            run_time_windows(&records, windows, true),
            expected,
            "seed {seed}, emit final"
        );
    }
}

#[test]
fn late_records_are_dropped_and_counted() {
    let windows = TimeWindows::tumbling(Duration::from_secs(10));
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
        .group_by_key(Grouped::with(Serdes::string(), Serdes::i64()))
        .windowed_by(windows)
        .count(Materialized::named("c").in_memory())
        .to_stream()
        .to(
            "out",
            Produced::with(WindowedSerde::time(Serdes::string(), 10_000), Serdes::i64()),
        );
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let input = d.input_topic("in", Serdes::string(), Serdes::i64());
    input.pipe_at("a".into(), 1, 5_000).unwrap();
    input.pipe_at("a".into(), 1, 10_000).unwrap(); // stream time 10 s closes [0, 10 s)
    input.pipe_at("a".into(), 1, 9_999).unwrap(); // late
    assert_eq!(d.metrics().dropped_records("late"), 1);
    assert_eq!(
        d.output_topic(
            "out",
            WindowedSerde::time(Serdes::string(), 10_000),
            Serdes::i64()
        )
        .queue_size(),
        2
    );
}

/// Sessions from scratch: sort each key's records by time, cut where the gap is exceeded.
fn session_oracle(records: &[(String, i64, i64)], gap: i64) -> Finals {
    let mut by_key: BTreeMap<&str, Vec<(i64, i64)>> = BTreeMap::new();
    for (k, v, ts) in records {
        by_key.entry(k).or_default().push((*ts, *v));
    }
    let mut out = Finals::new();
    for (k, mut rs) in by_key {
        rs.sort();
        let (mut start, mut end, mut sum) = (rs[0].0, rs[0].0, 0);
        for (ts, v) in rs {
            if ts > end + gap {
                out.insert((k.to_string(), start, end), sum);
                (start, sum) = (ts, 0);
            }
            end = ts;
            sum += v;
        }
        out.insert((k.to_string(), start, end), sum);
    }
    out
}

#[test]
fn session_windows_match_the_oracle() {
    for seed in 1..=12 {
        let gap = 500;
        // Grace covers the jitter so no record is late and the oracle needs no lateness.
        let windows = SessionWindows::with_inactivity_gap(Duration::from_millis(gap as u64))
            .grace(Duration::from_secs(60));
        let records = input(seed * 31, 300, 1_500);
        let b = StreamsBuilder::new();
        b.stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
            .group_by_key(Grouped::with(Serdes::string(), Serdes::i64()))
            .windowed_by_session(windows)
            .reduce(|a, b| a + b, Materialized::named("sessions").in_memory());
        let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
        let input_topic = d.input_topic("in", Serdes::string(), Serdes::i64());
        for (k, v, ts) in &records {
            input_topic.pipe_at(k.clone(), *v, *ts).unwrap();
        }
        let got: Finals = d
            .session_store::<String, i64>("sessions")
            .unwrap()
            .all()
            .unwrap()
            .into_iter()
            .map(|(k, w, v)| ((k, w.start, w.end), v))
            .collect();
        assert_eq!(got, session_oracle(&records, gap), "seed {seed}");
    }
}

#[test]
fn merged_sessions_are_retracted_downstream() {
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
        .group_by_key(Grouped::with(Serdes::string(), Serdes::i64()))
        // Grace keeps the first session open until the bridging record arrives.
        .windowed_by_session(
            SessionWindows::with_inactivity_gap(Duration::from_secs(5))
                .grace(Duration::from_secs(10)),
        )
        .count(Materialized::named("s").in_memory())
        .to_stream()
        .to(
            "out",
            Produced::with(WindowedSerde::session(Serdes::string()), Serdes::i64()),
        );
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let input = d.input_topic("in", Serdes::string(), Serdes::i64());
    input.pipe_at("a".into(), 1, 0).unwrap();
    input.pipe_at("a".into(), 1, 8_000).unwrap();
    input.pipe_at("a".into(), 1, 4_000).unwrap();
    let store = d.session_store::<String, i64>("s").unwrap();
    let sessions: Vec<_> = store.fetch(&"a".to_string()).unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(
        (sessions[0].0.start, sessions[0].0.end, sessions[0].1),
        (0, 8_000, 3)
    );
}

/// Sliding windows from scratch: every record's left window, every right window that holds a
/// later record, each summed over the records inside (both ends inclusive).
fn sliding_oracle(records: &[(String, i64, i64)], d: i64) -> BTreeMap<(String, i64), i64> {
    let mut by_key: BTreeMap<&str, Vec<(i64, i64)>> = BTreeMap::new();
    for (k, v, ts) in records {
        by_key.entry(k).or_default().push((*ts, *v));
    }
    let mut out = BTreeMap::new();
    for (k, rs) in by_key {
        let mut starts = std::collections::BTreeSet::new();
        for &(t, _) in &rs {
            starts.insert(t - d);
            if rs.iter().any(|&(r, _)| r > t && r <= t + 1 + d) {
                starts.insert(t + 1);
            }
        }
        for s in starts {
            let sum = rs
                .iter()
                .filter(|(t, _)| *t >= s && *t <= s + d)
                .map(|(_, v)| v)
                .sum();
            out.insert((k.to_string(), s), sum);
        }
    }
    out
}

#[test]
fn sliding_windows_match_the_oracle() {
    for seed in 1..=12 {
        let d = 1_000;
        // Grace covers the jitter: nothing is late, every window stays open.
        let windows = SlidingWindows::with_time_difference(Duration::from_millis(d as u64))
            .grace(Duration::from_secs(60));
        let records = input(seed * 131, 250, 1_500);
        let b = StreamsBuilder::new();
        let updates = b
            .stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
            .group_by_key(Grouped::with(Serdes::string(), Serdes::i64()))
            .windowed_by_sliding(windows)
            .reduce(|a, b| a + b, Materialized::named("sliding").in_memory());
        updates.to_stream().to(
            "out",
            Produced::with(WindowedSerde::time(Serdes::string(), d), Serdes::i64()),
        );
        let drv = TopologyTestDriver::new(b.build().unwrap()).unwrap();
        let input_topic = drv.input_topic("in", Serdes::string(), Serdes::i64());
        for (k, v, ts) in &records {
            input_topic.pipe_at(k.clone(), *v, *ts).unwrap();
        }
        let stored: BTreeMap<(String, i64), i64> = drv
            .window_store::<String, i64>("sliding")
            .unwrap()
            .all()
            .unwrap()
            .into_iter()
            .map(|(k, s, v)| ((k, s), v))
            .collect();
        let expected = sliding_oracle(&records, d);
        assert_eq!(stored, expected, "seed {seed}: store");
        // The last update emitted per window is its final value.
        let mut emitted = BTreeMap::new();
        for (w, v) in drv
            .output_topic(
                "out",
                WindowedSerde::time(Serdes::string(), d),
                Serdes::i64(),
            )
            .read_key_values()
        {
            assert_eq!(w.window.end - w.window.start, d);
            emitted.insert((w.key, w.window.start), v);
        }
        assert_eq!(emitted, expected, "seed {seed}: emitted");
    }
}

#[test]
fn sliding_windows_drop_records_whose_window_closed() {
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
        .group_by_key(Grouped::with(Serdes::string(), Serdes::i64()))
        .windowed_by_sliding(
            SlidingWindows::with_time_difference(Duration::from_secs(5))
                .grace(Duration::from_secs(1)),
        )
        .count(Materialized::named("s").in_memory());
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let input = d.input_topic("in", Serdes::string(), Serdes::i64());
    // Kafka Streams' rule: a record is late only when the last window it could fall into,
    // ending at its timestamp + 5 s, ended before stream time − grace (9 s).
    input.pipe_at("a".into(), 0, 10_000).unwrap();
    input.pipe_at("a".into(), 0, 9_000).unwrap();
    input.pipe_at("a".into(), 0, 3_999).unwrap(); // 3.999 s + 5 s < 9 s: late
    // Its own window [3.999 s, 8.999 s] is closed, but it still lands in the open windows
    // holding it, and opens its right window [9 s, 14 s].
    input.pipe_at("a".into(), 0, 8_999).unwrap();
    assert_eq!(d.metrics().dropped_records("late"), 1);
    let windows = d
        .window_store::<String, i64>("s")
        .unwrap()
        .fetch(&"a".to_string(), i64::MIN, i64::MAX)
        .unwrap();
    assert_eq!(
        windows,
        vec![(4_000, 2), (5_000, 3), (9_000, 2), (9_001, 1)]
    );
}

/// Final results through `suppress`: each session or sliding window emitted exactly once, when
/// it closes, with the value the oracle computes from scratch.
#[test]
fn suppressed_session_and_sliding_windows_emit_each_final_once() {
    for seed in 1..=6 {
        let records = input(seed * 977, 250, 1_500);
        for sliding in [false, true] {
            let b = StreamsBuilder::new();
            let grouped = b
                .stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
                .group_by_key(Grouped::with(Serdes::string(), Serdes::i64()));
            let table = if sliding {
                grouped
                    .windowed_by_sliding(
                        SlidingWindows::with_time_difference(Duration::from_millis(1_000))
                            .grace(Duration::from_secs(5)),
                    )
                    .reduce(|a, b| a + b, Materialized::named("w").in_memory())
            } else {
                grouped
                    .windowed_by_session(
                        SessionWindows::with_inactivity_gap(Duration::from_millis(500))
                            .grace(Duration::from_secs(5)),
                    )
                    .reduce(|a, b| a + b, Materialized::named("w").in_memory())
            };
            let serde = || WindowedSerde::session(Serdes::string());
            table
                .suppress(Suppressed::until_window_closes())
                .to_stream()
                .to("out", Produced::with(serde(), Serdes::i64()));
            let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
            let input_topic = d.input_topic("in", Serdes::string(), Serdes::i64());
            for (k, v, ts) in &records {
                input_topic.pipe_at(k.clone(), *v, *ts).unwrap();
            }
            let before_flush = d.output_topic("out", serde(), Serdes::i64()).queue_size();
            input_topic
                .pipe_at("zz-flush".into(), 0, 10_000_000)
                .unwrap();
            let mut emitted: BTreeMap<(String, i64, i64), i64> = BTreeMap::new();
            let mut count = 0;
            for (w, v) in d
                .output_topic("out", serde(), Serdes::i64())
                .read_key_values()
            {
                if w.key == "zz-flush" {
                    continue;
                }
                count += 1;
                assert!(
                    emitted
                        .insert((w.key, w.window.start, w.window.end), v)
                        .is_none(),
                    "seed {seed}: a window emitted twice"
                );
            }
            assert_eq!(count, emitted.len());
            assert!(
                before_flush < count,
                "most windows wait for the flush record"
            );
            if sliding {
                let expected: BTreeMap<(String, i64, i64), i64> = sliding_oracle(&records, 1_000)
                    .into_iter()
                    .map(|((k, s), v)| ((k, s, s + 1_000), v))
                    .collect();
                assert_eq!(emitted, expected, "seed {seed}: sliding");
            } else {
                assert_eq!(
                    emitted,
                    session_oracle(&records, 500),
                    "seed {seed}: session"
                );
            }
        }
    }
}

#[test]
fn sessions_older_than_the_retention_are_removed() {
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
        .group_by_key(Grouped::with(Serdes::string(), Serdes::i64()))
        .windowed_by_session(SessionWindows::with_inactivity_gap(Duration::from_millis(
            100,
        )))
        .count(
            Materialized::named("s")
                .in_memory()
                .with_retention(Duration::from_secs(1)),
        );
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let input = d.input_topic("in", Serdes::string(), Serdes::i64());
    input.pipe_at("a".into(), 0, 0).unwrap();
    input.pipe_at("b".into(), 0, 100_000).unwrap();
    let store = d.session_store::<String, i64>("s").unwrap();
    assert!(store.fetch(&"a".to_string()).unwrap().is_empty(), "expired");
    assert_eq!(store.fetch(&"b".to_string()).unwrap().len(), 1);
}
