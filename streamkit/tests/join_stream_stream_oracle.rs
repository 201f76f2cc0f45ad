//! Oracle test: random sequences of left and right records (two keys, timestamps in and out
//! of order, duplicates, late records) through inner, left and outer stream-stream joins with
//! random asymmetric windows and grace, against a plain in-memory model of the semantics
//! (`docs/src/architecture.md`, "Joins"): same outputs, in the same order, and the same late count.

use std::time::Duration;

use proptest::prelude::*;
use streamkit::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Inner,
    Left,
    Outer,
}

/// One input: (is_left, key, timestamp). Values are numbered by arrival ("L3", "R4").
type Input = (bool, &'static str, i64);

struct Rec {
    left: bool,
    key: &'static str,
    t: i64,
    value: String,
    matched: bool,
    emitted: bool,
}

/// The semantics, restated over a vector: (key, value, timestamp) outputs and the late count.
fn model(
    kind: Kind,
    before: i64,
    after: i64,
    grace: i64,
    inputs: &[Input],
) -> (Vec<(String, String, i64)>, u64) {
    let reach = |left: bool| if left { after } else { before };
    let closed = |r: &Rec, now: i64| r.t + reach(r.left) + grace < now;
    let keeps = |left: bool| match kind {
        Kind::Inner => false,
        Kind::Left => left,
        Kind::Outer => true,
    };
    let mut recs: Vec<Rec> = Vec::new();
    let mut out = Vec::new();
    let mut late = 0;
    let mut now = i64::MIN;
    let mut min_time = i64::MIN;
    let shortest = if kind == Kind::Outer {
        before.min(after)
    } else {
        after
    };
    for (i, &(left, key, t)) in inputs.iter().enumerate() {
        let value = format!("{}{i}", if left { "L" } else { "R" });
        let probe = Rec {
            left,
            key,
            t,
            value: value.clone(),
            matched: false,
            emitted: false,
        };
        if now != i64::MIN && closed(&probe, now) {
            late += 1;
            continue;
        }
        let advanced = now == i64::MIN || t >= now;
        now = now.max(t);
        // Waiting records whose window closed leave when a record at stream time arrives,
        // with Kafka Streams' bookkeeping: skipped while the remembered time plus the
        // shortest reach plus grace has not passed; a scan goes by (timestamp, right first,
        // key, arrival), stops once both sides showed an open window, and remembers the time
        // of the last record it looked at.
        if advanced && min_time.saturating_add(shortest + grace) < now {
            let mut waiting: Vec<usize> = (0..recs.len())
                .filter(|&j| {
                    let r = &recs[j];
                    keeps(r.left) && !r.matched && !r.emitted
                })
                .collect();
            waiting.sort_by_key(|&j| (recs[j].t, recs[j].left, recs[j].key, j));
            let (mut left_open, mut right_open) = (false, false);
            let mut last_seen = i64::MAX;
            for j in waiting {
                let r = &mut recs[j];
                last_seen = r.t;
                if left_open && right_open {
                    break;
                }
                if !closed(r, now) {
                    if r.left {
                        left_open = true;
                    } else {
                        right_open = true;
                    }
                    continue;
                }
                r.emitted = true;
                let v = if r.left {
                    format!("{}-null", r.value)
                } else {
                    format!("null-{}", r.value)
                };
                out.push((r.key.to_string(), v, r.t));
            }
            min_time = last_seen;
        }
        // Open partners in range, by (timestamp, arrival).
        let (lo, hi) = if left {
            (t - before, t + after)
        } else {
            (t - after, t + before)
        };
        let mut partners: Vec<usize> = (0..recs.len())
            .filter(|&j| {
                let r = &recs[j];
                r.left != left && r.key == key && r.t >= lo && r.t <= hi && !closed(r, now)
            })
            .collect();
        partners.sort_by_key(|&j| (recs[j].t, j));
        let matched = !partners.is_empty();
        for j in partners {
            let r = &mut recs[j];
            r.matched = true;
            let v = if left {
                format!("{value}-{}", r.value)
            } else {
                format!("{}-{value}", r.value)
            };
            out.push((key.to_string(), v, t.max(r.t)));
        }
        if !matched && keeps(left) {
            min_time = min_time.min(t);
        }
        recs.push(Rec { matched, ..probe });
    }
    (out, late)
}

fn show(v: Option<&String>) -> String {
    v.cloned().unwrap_or_else(|| "null".into())
}

fn run(kind: Kind, windows: JoinWindows, inputs: &[Input]) -> (Vec<(String, String, i64)>, u64) {
    let b = StreamsBuilder::new();
    let l = b.stream("left", Consumed::with(Serdes::string(), Serdes::string()));
    let r = b.stream("right", Consumed::with(Serdes::string(), Serdes::string()));
    let joined =
        StreamJoined::with(Serdes::string(), Serdes::string(), Serdes::string()).in_memory();
    let out = match kind {
        Kind::Inner => l.join(
            &r,
            |a: &String, b: &String| format!("{a}-{b}"),
            windows,
            joined,
        ),
        Kind::Left => l.left_join(
            &r,
            |a: &String, b: Option<&String>| format!("{a}-{}", show(b)),
            windows,
            joined,
        ),
        Kind::Outer => l.outer_join(
            &r,
            |a: Option<&String>, b: Option<&String>| format!("{}-{}", show(a), show(b)),
            windows,
            joined,
        ),
    };
    out.to("out", Produced::with(Serdes::string(), Serdes::string()));
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let (lt, rt) = (
        d.input_topic("left", Serdes::string(), Serdes::string()),
        d.input_topic("right", Serdes::string(), Serdes::string()),
    );
    for (i, &(left, key, t)) in inputs.iter().enumerate() {
        let (topic, v) = if left { (&lt, "L") } else { (&rt, "R") };
        topic
            .pipe_at(key.to_string(), format!("{v}{i}"), t)
            .unwrap();
    }
    let got = d
        .output_topic("out", Serdes::string(), Serdes::string())
        .read_records()
        .into_iter()
        .map(|r| (r.key, r.value, r.timestamp))
        .collect();
    (got, d.metrics().dropped_records("late"))
}

fn input() -> impl Strategy<Value = Input> {
    (any::<bool>(), prop_oneof![Just("a"), Just("b")], 0i64..60)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn joins_match_the_model(
        before in 0i64..8,
        after in 0i64..8,
        grace in 0i64..6,
        // Mostly increasing time with jitter, so that windows close and records arrive late.
        steps in proptest::collection::vec((input(), 0i64..4), 1..40),
    ) {
        let mut base = 0;
        let inputs: Vec<Input> = steps
            .iter()
            .map(|&((left, key, jitter), advance)| {
                base += advance;
                (left, key, (base - jitter / 6).max(0))
            })
            .collect();
        let windows = JoinWindows::of(Duration::from_millis(after as u64))
            .before(Duration::from_millis(before as u64))
            .grace(Duration::from_millis(grace as u64));
        for kind in [Kind::Inner, Kind::Left, Kind::Outer] {
            let want = model(kind, before, after, grace, &inputs);
            let got = run(kind, windows, &inputs);
            prop_assert_eq!(got, want, "{:?} join of {:?}", kind, inputs);
        }
    }
}
