//! Emit-final on wall-clock idleness (tumbling, session and sliding windows), and late records
//! sent to a dead-letter topic.

use std::time::Duration;

use streamkit::error_policy::dead_letter_headers as h;
use streamkit::prelude::*;
use streamkit::stream::KGroupedStream;
use streamkit::window::{SessionWindows, SlidingWindows, TimeWindows, WindowedSerde};

#[test]
fn idle_feeds_still_get_their_final_results() {
    let b = StreamsBuilder::new();
    b.stream(
        "arrivals",
        Consumed::with(Serdes::string(), Serdes::string()),
    )
    .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
    .windowed_by(TimeWindows::tumbling(Duration::from_secs(60)).grace(Duration::from_secs(10)))
    .count(Materialized::named("per-minute").in_memory())
    .suppress(Suppressed::until_window_closes().close_when_idle(Duration::from_secs(30)))
    .to_stream()
    .to(
        "final",
        Produced::with(WindowedSerde::time(Serdes::string(), 60_000), Serdes::i64()),
    );
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let input = d.input_topic("arrivals", Serdes::string(), Serdes::string());
    let out = d.output_topic(
        "final",
        WindowedSerde::time(Serdes::string(), 60_000),
        Serdes::i64(),
    );
    input.pipe_at("M15".into(), "bus".into(), 1_000).unwrap();
    input.pipe_at("M15".into(), "bus".into(), 2_000).unwrap();
    // The night: no more records, stream time stays at 2 s and [0, 60 s) would never close.
    d.advance_wall_clock_time(Duration::from_secs(29)).unwrap();
    assert!(out.is_empty(), "not idle long enough yet");
    // Idle 50 s: stream time counts as 52 s; the window closes at 60 s + 10 s grace.
    d.advance_wall_clock_time(Duration::from_secs(21)).unwrap();
    assert!(out.is_empty(), "idle, but the window is not over yet");
    // Idle 70 s: counts as 72 s ≥ 70 s.
    d.advance_wall_clock_time(Duration::from_secs(20)).unwrap();
    let (key, count) = out.read_key_value().expect("final result after idleness");
    assert_eq!((key.key.as_str(), key.window.start, count), ("M15", 0, 2));
    assert!(out.is_empty());
    // A record for the window emitted early is late now, even though stream time is 2 s.
    input.pipe_at("M15".into(), "bus".into(), 3_000).unwrap();
    assert_eq!(d.metrics().dropped_records("late"), 1);
    assert!(out.is_empty());
}

#[test]
fn without_idleness_quiet_windows_stay_open() {
    let b = StreamsBuilder::new();
    b.stream(
        "arrivals",
        Consumed::with(Serdes::string(), Serdes::string()),
    )
    .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
    .windowed_by(TimeWindows::tumbling(Duration::from_secs(60)))
    .count(Materialized::named("per-minute").in_memory())
    .suppress(Suppressed::until_window_closes())
    .to_stream()
    .to(
        "final",
        Produced::with(WindowedSerde::time(Serdes::string(), 60_000), Serdes::i64()),
    );
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    d.input_topic("arrivals", Serdes::string(), Serdes::string())
        .pipe_at("M15".into(), "bus".into(), 1_000)
        .unwrap();
    d.advance_wall_clock_time(Duration::from_secs(3600))
        .unwrap();
    assert!(
        d.output_topic(
            "final",
            WindowedSerde::time(Serdes::string(), 60_000),
            Serdes::i64()
        )
        .is_empty()
    );
}

fn assert_dead_lettered(d: &TopologyTestDriver, expected_value: i64) {
    let dlq = d.output_topic("late-dlq", Serdes::string(), Serdes::i64());
    let r = dlq.read_record().expect("late record dead-lettered");
    assert_eq!((r.key.as_str(), r.value), ("a", expected_value));
    assert_eq!(r.headers.last_str(h::STAGE), Some("window"));
    assert_eq!(r.headers.last_str(h::TOPIC), Some("in"));
    assert_eq!(r.headers.last_str(h::OFFSET), Some("2"));
    assert!(
        r.headers
            .last_str(h::ERROR)
            .unwrap()
            .contains("late record")
    );
    assert!(dlq.is_empty());
    assert_eq!(d.metrics().dropped_records("late"), 1);
}

#[test]
fn late_records_can_go_to_a_dead_letter_topic() {
    // Time windows.
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
        .group_by_key(Grouped::with(Serdes::string(), Serdes::i64()))
        .windowed_by(TimeWindows::tumbling(Duration::from_secs(10)))
        .late_records_to("late-dlq")
        .count(Materialized::named("c").in_memory());
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let input = d.input_topic("in", Serdes::string(), Serdes::i64());
    input.pipe_at("a".into(), 1, 5_000).unwrap();
    input.pipe_at("a".into(), 2, 20_000).unwrap();
    input.pipe_at("a".into(), 3, 9_000).unwrap();
    assert_dead_lettered(&d, 3);

    // Sliding windows.
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
        .group_by_key(Grouped::with(Serdes::string(), Serdes::i64()))
        .windowed_by_sliding(SlidingWindows::with_time_difference(Duration::from_secs(
            10,
        )))
        .late_records_to("late-dlq")
        .count(Materialized::named("c").in_memory());
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let input = d.input_topic("in", Serdes::string(), Serdes::i64());
    input.pipe_at("a".into(), 1, 5_000).unwrap();
    input.pipe_at("a".into(), 2, 20_000).unwrap();
    input.pipe_at("a".into(), 4, 9_000).unwrap();
    assert_dead_lettered(&d, 4);

    // Sessions.
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
        .group_by_key(Grouped::with(Serdes::string(), Serdes::i64()))
        .windowed_by_session(SessionWindows::with_inactivity_gap(Duration::from_secs(1)))
        .late_records_to("late-dlq")
        .count(Materialized::named("c").in_memory());
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let input = d.input_topic("in", Serdes::string(), Serdes::i64());
    input.pipe_at("a".into(), 1, 5_000).unwrap();
    input.pipe_at("a".into(), 2, 20_000).unwrap();
    input.pipe_at("a".into(), 5, 9_000).unwrap();
    assert_dead_lettered(&d, 5);
}

/// Final per-window counts of key "M15" from records at 1 s and 2 s, with the windows closed
/// either by 31 s of wall-clock idleness or (`idle == false`) by a later record of another key.
fn final_counts_after_quiet(
    windowed: impl Fn(KGroupedStream<String, String>) -> KTable<Windowed<String>, i64>,
    idle: bool,
) -> Vec<(String, i64)> {
    let b = StreamsBuilder::new();
    let suppressed = if idle {
        Suppressed::until_window_closes().close_when_idle(Duration::from_secs(30))
    } else {
        Suppressed::until_window_closes()
    };
    windowed(
        b.stream(
            "arrivals",
            Consumed::with(Serdes::string(), Serdes::string()),
        )
        .group_by_key(Grouped::with(Serdes::string(), Serdes::string())),
    )
    .suppress(suppressed)
    .to_stream()
    .map(|k, n| (format!("{}@{}..{}", k.key, k.window.start, k.window.end), n))
    .to("final", Produced::with(Serdes::string(), Serdes::i64()));
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let input = d.input_topic("arrivals", Serdes::string(), Serdes::string());
    let out = d.output_topic("final", Serdes::string(), Serdes::i64());
    input.pipe_at("M15".into(), "bus".into(), 1_000).unwrap();
    input.pipe_at("M15".into(), "bus".into(), 2_000).unwrap();
    if !idle {
        input.pipe_at("B63".into(), "bus".into(), 100_000).unwrap();
        return out
            .read_key_values()
            .into_iter()
            .filter(|(k, _)| k.starts_with("M15"))
            .collect();
    }
    d.advance_wall_clock_time(Duration::from_secs(29)).unwrap();
    // Windows that stream time (2 s) closed already; the others wait for idleness.
    let mut finals = out.read_key_values();
    d.advance_wall_clock_time(Duration::from_secs(2)).unwrap();
    let by_idleness = out.read_key_values();
    assert!(!by_idleness.is_empty(), "idle 31 s: the open windows close");
    finals.extend(by_idleness);
    // A record for a window already emitted by idleness does not emit it again.
    input.pipe_at("M15".into(), "bus".into(), 2_500).unwrap();
    assert!(out.is_empty(), "{:?}", out.read_key_values());
    finals
}

#[test]
fn idleness_closes_suppressed_session_windows() {
    let sessions = |g: KGroupedStream<String, String>| {
        g.windowed_by_session(SessionWindows::with_inactivity_gap(Duration::from_secs(10)))
            .count(Materialized::named("sessions").in_memory())
    };
    let idle = final_counts_after_quiet(sessions, true);
    assert_eq!(idle, vec![("M15@1000..2000".to_string(), 2)]);
    assert_eq!(idle, final_counts_after_quiet(sessions, false));
}

#[test]
fn idleness_closes_suppressed_sliding_windows() {
    let sliding = |g: KGroupedStream<String, String>| {
        g.windowed_by_sliding(SlidingWindows::with_time_difference(Duration::from_secs(
            10,
        )))
        .count(Materialized::named("sliding").in_memory())
    };
    let idle = final_counts_after_quiet(sliding, true);
    assert_eq!(idle, final_counts_after_quiet(sliding, false));
}
