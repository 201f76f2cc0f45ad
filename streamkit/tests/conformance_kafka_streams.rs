//! Kafka Streams as the oracle: the same topologies run on the same seeded random input in
//! Kafka Streams' `TopologyTestDriver` (the Maven project `conformance/`) and in streamkit's,
//! and their output must be equal record for record (key, value, timestamp), except where
//! `docs/src/kafka-streams-differences.md` documents a deliberate difference.
//!
//! The seed is printed; `STREAMKIT_CONFORMANCE_SEED=<n>` replays one. Java 17 and Maven are
//! required: without them the test fails (it never skips). The first run downloads Kafka
//! Streams' jars into `~/.m2`; later runs rebuild the Java side only when its sources changed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use streamkit::prelude::*;
use streamkit::window::{SessionWindows, SlidingWindows, TimeWindows, Windowed};

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
    /// True with probability `percent` / 100.
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// One input record: topic, key, value (`Value::Null` for a tombstone), timestamp.
#[derive(Debug, Clone)]
struct In {
    topic: &'static str,
    key: String,
    value: Value,
    ts: i64,
}

/// One output record of the topic `out`, produced while processing input record `input`.
#[derive(Debug, Clone, PartialEq)]
struct Out {
    input: usize,
    key: Option<String>,
    value: Value,
    ts: i64,
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "in #{}: {} = {} @ {}",
            self.input,
            self.key.as_deref().unwrap_or("null"),
            self.value,
            self.ts
        )
    }
}

/// Timestamps that mostly advance, some out of order, some late: stream time moves by up to
/// `step` ms a record; 15% of records lie up to `jitter` ms behind it and 5% up to `late` ms
/// (most of those are late for the windowed cases).
fn timestamps(rng: &mut Rng, n: usize, step: u64, jitter: u64, late: u64) -> Vec<i64> {
    // Records start well after the epoch: Kafka Streams clamps windows that would start
    // before it (sliding windows of records earlier than their time difference), streamkit
    // does not (docs/src/kafka-streams-differences.md).
    let mut now = 10_000i64;
    (0..n)
        .map(|_| {
            now += rng.below(step + 1) as i64;
            let back = match rng.below(100) {
                0..80 => 0,
                80..95 => rng.below(jitter + 1),
                _ => rng.below(late + 1),
            };
            now - back as i64
        })
        .collect()
}

/// A stream of longs on `in` over keys k0..k3, for the windowed aggregations.
fn windowed_input(rng: &mut Rng) -> Vec<In> {
    timestamps(rng, 300, 250, 1500, 6000)
        .into_iter()
        .map(|ts| In {
            topic: "in",
            key: format!("k{}", rng.below(4)),
            value: json!(rng.below(100)),
            ts,
        })
        .collect()
}

/// [`windowed_input`] without the records that arrive after their own window `[t - d, t]`
/// closed but while later windows holding them are still open: Kafka Streams does not create
/// a closed window, and windows created later from it miss the record, where streamkit's hold
/// it (docs/src/kafka-streams-differences.md). Records late for every window stay.
fn sliding_input(rng: &mut Rng) -> Vec<In> {
    let (d, grace) = (1000, 500);
    let mut stream_time = i64::MIN;
    windowed_input(rng)
        .into_iter()
        .filter(|r| {
            let own_window_closed = r.ts < stream_time.saturating_sub(grace);
            let late = r.ts + d < stream_time.saturating_sub(grace);
            stream_time = stream_time.max(r.ts);
            late || !own_window_closed
        })
        .collect()
}

/// Strings on `left` and `right`: right rows keyed k0..k2 with values "R<i>" by arrival,
/// left records made by `left(rng, i)` (key, value); tombstones on the sides that are tables
/// (`*_tombstones` per cent of their records).
fn two_sided_input(
    rng: &mut Rng,
    (jitter, late): (u64, u64),
    left_tombstones: u64,
    right_tombstones: u64,
    left: impl Fn(&mut Rng, usize) -> (String, String),
) -> Vec<In> {
    timestamps(rng, 200, 200, jitter, late)
        .into_iter()
        .enumerate()
        .map(|(i, ts)| {
            let (topic, key, value) = if rng.chance(50) {
                let (key, value) = left(rng, i);
                ("left", key, json!(value))
            } else {
                (
                    "right",
                    format!("k{}", rng.below(3)),
                    json!(format!("R{i}")),
                )
            };
            let tombstones = if topic == "left" {
                left_tombstones
            } else {
                right_tombstones
            };
            let value = if rng.chance(tombstones) {
                Value::Null
            } else {
                value
            };
            In {
                topic,
                key,
                value,
                ts,
            }
        })
        .collect()
}

/// Left records keyed k0..k2 with values "L<i>".
fn join_input(
    rng: &mut Rng,
    disorder: (u64, u64),
    left_tombstones: u64,
    right_tombstones: u64,
) -> Vec<In> {
    two_sided_input(
        rng,
        disorder,
        left_tombstones,
        right_tombstones,
        |rng, i| (format!("k{}", rng.below(3)), format!("L{i}")),
    )
}

/// Out-of-order records for tables and stream-table joins: up to 1.2 s, some up to 4.8 s.
const TABLE_DISORDER: (u64, u64) = (1200, 4800);
/// Stream-stream joins see records at most their grace (300 ms) out of order: beyond it,
/// streamkit drops a late record and a closed record joins nothing more, where Kafka Streams
/// still joins both (docs/src/kafka-streams-differences.md).
const STREAM_JOIN_DISORDER: (u64, u64) = (300, 300);

/// Left rows keyed o0..o4 with values "<right key>/L<i>": updates move a row between right
/// keys.
fn fk_input(rng: &mut Rng) -> Vec<In> {
    two_sided_input(rng, TABLE_DISORDER, 15, 20, |rng, i| {
        (
            format!("o{}", rng.below(5)),
            format!("k{}/L{i}", rng.below(3)),
        )
    })
}

/// Table rows r0..r5 with values "<group>/<amount>" (groups g0..g2) and tombstones.
fn table_aggregate_input(rng: &mut Rng) -> Vec<In> {
    timestamps(rng, 200, 200, 1200, 4800)
        .into_iter()
        .map(|ts| In {
            topic: "in",
            key: format!("r{}", rng.below(6)),
            value: if rng.chance(15) {
                Value::Null
            } else {
                json!(format!("g{}/{}", rng.below(3), rng.below(100)))
            },
            ts,
        })
        .collect()
}

/// The value type of an input or output topic.
#[derive(Clone, Copy)]
enum Ty {
    Long,
    Str,
}

/// How output timestamps are compared (docs/src/kafka-streams-differences.md, "Result timestamps
/// of stateful operators").
#[derive(Clone, Copy, PartialEq)]
enum Stamps {
    /// Equal.
    Exact,
    /// streamkit stamps a result with the updating record's timestamp; Kafka Streams with the
    /// largest timestamp of the stored rows or window involved, so never less.
    UpdatingRecord,
    /// Final window results: streamkit stamps them with the window's end − 1; Kafka Streams
    /// with the window's largest record timestamp, within [start, end − 1].
    WindowEnd,
}

struct Case {
    name: &'static str,
    stamps: Stamps,
    /// Input topics read as tables: a tombstone for a key such a table does not hold is a
    /// no-op in streamkit, an update in Kafka Streams (docs/src/kafka-streams-differences.md).
    tables: &'static [&'static str],
    /// Foreign-key joins: Kafka Streams may delete a result that does not exist; streamkit
    /// does not (docs/src/kafka-streams-differences.md).
    redundant_tombstones: bool,
    /// The value type of each input topic (keys are strings) and of `out`.
    inputs: &'static [(&'static str, Ty)],
    output: Ty,
    input: fn(&mut Rng) -> Vec<In>,
    /// Builds the topology, ending in the topic `out`.
    topology: fn(&StreamsBuilder),
}

const LONG_IN: &[(&str, Ty)] = &[("in", Ty::Long)];
const STR_IN: &[(&str, Ty)] = &[("in", Ty::Str)];
const TWO_STRINGS: &[(&str, Ty)] = &[("left", Ty::Str), ("right", Ty::Str)];

// The parameters of every case, equal to those in conformance/…/Conformance.java.
fn tumbling() -> TimeWindows {
    TimeWindows::tumbling(Duration::from_millis(2000)).grace(Duration::from_millis(500))
}
fn hopping() -> TimeWindows {
    TimeWindows::hopping(Duration::from_millis(3000), Duration::from_millis(1000))
        .grace(Duration::from_millis(500))
}
fn sliding() -> SlidingWindows {
    SlidingWindows::with_time_difference(Duration::from_millis(1000))
        .grace(Duration::from_millis(500))
}
fn session() -> SessionWindows {
    SessionWindows::with_inactivity_gap(Duration::from_millis(500))
        .grace(Duration::from_millis(300))
}
fn join_windows() -> JoinWindows {
    JoinWindows::of_time_difference_and_grace(
        Duration::from_millis(1000),
        Duration::from_millis(300),
    )
}

fn grouped(b: &StreamsBuilder) -> streamkit::stream::KGroupedStream<String, i64> {
    b.stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
        .group_by_key(Grouped::with(Serdes::string(), Serdes::i64()))
}

fn store<V: streamkit::processor::Data>() -> Materialized<String, V> {
    Materialized::default().in_memory()
}

/// A windowed table to `out`, keyed "key@start/end", deletions as tombstones.
fn windowed_out(t: KTable<Windowed<String>, i64>) {
    t.to_change_stream()
        .map(|w, v| {
            let (s, e) = (w.window.start, w.window.end);
            (format!("{}@{s}/{e}", w.key), v)
        })
        .to(
            "out",
            Produced::with(Serdes::string(), Serdes::option(Serdes::i64())),
        );
}

fn table_out<V: streamkit::processor::Data>(t: KTable<String, V>, serde: impl Serde<V>) {
    t.to_change_stream().to(
        "out",
        Produced::with(Serdes::string(), Serdes::option(serde)),
    );
}

fn stream_out(s: KStream<String, String>) {
    s.to("out", Produced::with(Serdes::string(), Serdes::string()));
}

fn strings(b: &StreamsBuilder, topic: &str) -> KStream<String, String> {
    b.stream(topic, Consumed::with(Serdes::string(), Serdes::string()))
}

fn table(b: &StreamsBuilder, topic: &str) -> KTable<String, String> {
    b.table(
        topic,
        Consumed::with(Serdes::string(), Serdes::string()),
        Materialized::named(format!("{topic}-rows")).in_memory(),
    )
}

fn joined() -> StreamJoined<String, String, String> {
    StreamJoined::with(Serdes::string(), Serdes::string(), Serdes::string()).in_memory()
}

/// Java's string concatenation prints a missing side as "null".
fn show(v: Option<&String>) -> &str {
    v.map_or("null", |v| v.as_str())
}

fn fk(v: &str) -> String {
    v.split('/').next().unwrap_or_default().to_string()
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "tumbling_count",
            stamps: Stamps::UpdatingRecord,
            tables: &[],
            redundant_tombstones: false,
            inputs: LONG_IN,
            output: Ty::Long,
            input: windowed_input,
            topology: |b| windowed_out(grouped(b).windowed_by(tumbling()).count(store())),
        },
        Case {
            name: "tumbling_sum_suppressed",
            stamps: Stamps::WindowEnd,
            tables: &[],
            redundant_tombstones: false,
            inputs: LONG_IN,
            output: Ty::Long,
            input: windowed_input,
            topology: |b| {
                windowed_out(
                    grouped(b)
                        .windowed_by(tumbling())
                        .reduce(|a, b| a + b, store())
                        .suppress(Suppressed::until_window_closes()),
                )
            },
        },
        Case {
            name: "hopping_count",
            stamps: Stamps::UpdatingRecord,
            tables: &[],
            redundant_tombstones: false,
            inputs: LONG_IN,
            output: Ty::Long,
            input: windowed_input,
            topology: |b| windowed_out(grouped(b).windowed_by(hopping()).count(store())),
        },
        Case {
            name: "hopping_sum_suppressed",
            stamps: Stamps::WindowEnd,
            tables: &[],
            redundant_tombstones: false,
            inputs: LONG_IN,
            output: Ty::Long,
            input: windowed_input,
            topology: |b| {
                windowed_out(
                    grouped(b)
                        .windowed_by(hopping())
                        .reduce(|a, b| a + b, store())
                        .suppress(Suppressed::until_window_closes()),
                )
            },
        },
        Case {
            name: "sliding_count",
            stamps: Stamps::Exact,
            tables: &[],
            redundant_tombstones: false,
            inputs: LONG_IN,
            output: Ty::Long,
            input: sliding_input,
            topology: |b| windowed_out(grouped(b).windowed_by_sliding(sliding()).count(store())),
        },
        Case {
            name: "sliding_sum_suppressed",
            stamps: Stamps::Exact,
            tables: &[],
            redundant_tombstones: false,
            inputs: LONG_IN,
            output: Ty::Long,
            input: sliding_input,
            topology: |b| {
                windowed_out(
                    grouped(b)
                        .windowed_by_sliding(sliding())
                        .reduce(|a, b| a + b, store())
                        .suppress(Suppressed::until_window_closes()),
                )
            },
        },
        Case {
            name: "session_count",
            stamps: Stamps::Exact,
            tables: &[],
            redundant_tombstones: false,
            inputs: LONG_IN,
            output: Ty::Long,
            input: windowed_input,
            topology: |b| windowed_out(grouped(b).windowed_by_session(session()).count(store())),
        },
        Case {
            name: "session_sum_suppressed",
            stamps: Stamps::Exact,
            tables: &[],
            redundant_tombstones: false,
            inputs: LONG_IN,
            output: Ty::Long,
            input: windowed_input,
            topology: |b| {
                windowed_out(
                    grouped(b)
                        .windowed_by_session(session())
                        .reduce(|a, b| a + b, store())
                        .suppress(Suppressed::until_window_closes()),
                )
            },
        },
        Case {
            name: "stream_stream_inner",
            stamps: Stamps::Exact,
            tables: &[],
            redundant_tombstones: false,
            inputs: TWO_STRINGS,
            output: Ty::Str,
            input: |rng| join_input(rng, STREAM_JOIN_DISORDER, 0, 0),
            topology: |b| {
                stream_out(strings(b, "left").join(
                    &strings(b, "right"),
                    |x: &String, y: &String| format!("{x}+{y}"),
                    join_windows(),
                    joined(),
                ))
            },
        },
        Case {
            name: "stream_stream_left",
            stamps: Stamps::Exact,
            tables: &[],
            redundant_tombstones: false,
            inputs: TWO_STRINGS,
            output: Ty::Str,
            input: |rng| join_input(rng, STREAM_JOIN_DISORDER, 0, 0),
            topology: |b| {
                stream_out(strings(b, "left").left_join(
                    &strings(b, "right"),
                    |x: &String, y: Option<&String>| format!("{x}+{}", show(y)),
                    join_windows(),
                    joined(),
                ))
            },
        },
        Case {
            name: "stream_stream_outer",
            stamps: Stamps::Exact,
            tables: &[],
            redundant_tombstones: false,
            inputs: TWO_STRINGS,
            output: Ty::Str,
            input: |rng| join_input(rng, STREAM_JOIN_DISORDER, 0, 0),
            topology: |b| {
                stream_out(strings(b, "left").outer_join(
                    &strings(b, "right"),
                    |x: Option<&String>, y: Option<&String>| format!("{}+{}", show(x), show(y)),
                    join_windows(),
                    joined(),
                ))
            },
        },
        Case {
            name: "stream_table_inner",
            stamps: Stamps::Exact,
            tables: &["right"],
            redundant_tombstones: false,
            inputs: TWO_STRINGS,
            output: Ty::Str,
            input: |rng| join_input(rng, TABLE_DISORDER, 0, 20),
            topology: |b| {
                stream_out(
                    strings(b, "left").join_table(&table(b, "right"), |x: &String, y: &String| {
                        format!("{x}+{y}")
                    }),
                )
            },
        },
        Case {
            name: "stream_table_left",
            stamps: Stamps::Exact,
            tables: &["right"],
            redundant_tombstones: false,
            inputs: TWO_STRINGS,
            output: Ty::Str,
            input: |rng| join_input(rng, TABLE_DISORDER, 0, 20),
            topology: |b| {
                stream_out(
                    strings(b, "left")
                        .left_join_table(&table(b, "right"), |x: &String, y: Option<&String>| {
                            format!("{x}+{}", show(y))
                        }),
                )
            },
        },
        Case {
            name: "table_table_inner",
            stamps: Stamps::UpdatingRecord,
            tables: &["left", "right"],
            redundant_tombstones: false,
            inputs: TWO_STRINGS,
            output: Ty::Str,
            input: |rng| join_input(rng, TABLE_DISORDER, 20, 20),
            topology: |b| {
                table_out(
                    table(b, "left").join(
                        &table(b, "right"),
                        |x: &String, y: &String| format!("{x}+{y}"),
                        Materialized::default(),
                    ),
                    Serdes::string(),
                )
            },
        },
        Case {
            name: "table_table_left",
            stamps: Stamps::UpdatingRecord,
            tables: &["left", "right"],
            redundant_tombstones: false,
            inputs: TWO_STRINGS,
            output: Ty::Str,
            input: |rng| join_input(rng, TABLE_DISORDER, 20, 20),
            topology: |b| {
                table_out(
                    table(b, "left").left_join(
                        &table(b, "right"),
                        |x: &String, y: Option<&String>| format!("{x}+{}", show(y)),
                        Materialized::default(),
                    ),
                    Serdes::string(),
                )
            },
        },
        Case {
            name: "table_table_outer",
            stamps: Stamps::UpdatingRecord,
            tables: &["left", "right"],
            redundant_tombstones: false,
            inputs: TWO_STRINGS,
            output: Ty::Str,
            input: |rng| join_input(rng, TABLE_DISORDER, 20, 20),
            topology: |b| {
                table_out(
                    table(b, "left").outer_join(
                        &table(b, "right"),
                        |x: Option<&String>, y: Option<&String>| format!("{}+{}", show(x), show(y)),
                        Materialized::default(),
                    ),
                    Serdes::string(),
                )
            },
        },
        Case {
            name: "fk_inner",
            stamps: Stamps::UpdatingRecord,
            tables: &["left", "right"],
            redundant_tombstones: true,
            inputs: TWO_STRINGS,
            output: Ty::Str,
            input: fk_input,
            topology: |b| {
                table_out(
                    table(b, "left").join_foreign_key(
                        &table(b, "right"),
                        |v: &String| fk(v),
                        |x: &String, y: &String| format!("{x}+{y}"),
                        Materialized::named("fk-result")
                            .value_serde(Serdes::string())
                            .in_memory(),
                    ),
                    Serdes::string(),
                )
            },
        },
        Case {
            name: "fk_left",
            stamps: Stamps::UpdatingRecord,
            tables: &["left", "right"],
            redundant_tombstones: true,
            inputs: TWO_STRINGS,
            output: Ty::Str,
            input: fk_input,
            topology: |b| {
                table_out(
                    table(b, "left").left_join_foreign_key(
                        &table(b, "right"),
                        |v: &String| fk(v),
                        |x: &String, y: Option<&String>| format!("{x}+{}", show(y)),
                        Materialized::named("fk-result")
                            .value_serde(Serdes::string())
                            .in_memory(),
                    ),
                    Serdes::string(),
                )
            },
        },
        Case {
            name: "table_count",
            stamps: Stamps::UpdatingRecord,
            tables: &["in"],
            redundant_tombstones: false,
            inputs: STR_IN,
            output: Ty::Long,
            input: table_aggregate_input,
            topology: |b| {
                table_out(
                    table(b, "in")
                        .group_by(
                            |_k, v| (fk(v), v.clone()),
                            Grouped::with(Serdes::string(), Serdes::string()),
                        )
                        .count(store()),
                    Serdes::i64(),
                )
            },
        },
        Case {
            name: "table_sum",
            stamps: Stamps::UpdatingRecord,
            tables: &["in"],
            redundant_tombstones: false,
            inputs: STR_IN,
            output: Ty::Long,
            input: table_aggregate_input,
            topology: |b| {
                table_out(
                    table(b, "in")
                        .group_by(
                            |_k, v| {
                                let amount = v.split('/').nth(1).unwrap_or("0");
                                (fk(v), amount.parse::<i64>().unwrap())
                            },
                            Grouped::with(Serdes::string(), Serdes::i64()),
                        )
                        .aggregate(
                            || 0,
                            |_k, v, agg| agg + v,
                            |_k, v, agg| agg - v,
                            store().value_serde(Serdes::i64()),
                        ),
                    Serdes::i64(),
                )
            },
        },
    ]
}

/// Runs `case` on `input` in streamkit's driver.
fn run_streamkit(case: &Case, input: &[In]) -> Vec<Out> {
    let b = StreamsBuilder::new();
    (case.topology)(&b);
    let d = TopologyTestDriver::new(b.build().expect("topology builds")).expect("driver");
    let key = || Serdes::option(Serdes::string());
    let mut out = Vec::new();
    for (i, r) in input.iter().enumerate() {
        let ty = case
            .inputs
            .iter()
            .find(|(t, _)| *t == r.topic)
            .map(|(_, ty)| *ty)
            .expect("an input topic of the case");
        let k = Some(r.key.clone());
        match ty {
            Ty::Long => d
                .input_topic(r.topic, key(), Serdes::option(Serdes::i64()))
                .pipe_at(k, r.value.as_i64(), r.ts),
            Ty::Str => d
                .input_topic(r.topic, key(), Serdes::option(Serdes::string()))
                .pipe_at(k, r.value.as_str().map(str::to_string), r.ts),
        }
        .unwrap_or_else(|e| panic!("{}: streamkit failed on input #{i} {r:?}: {e}", case.name));
        let records: Vec<(Option<String>, Value, i64)> = match case.output {
            Ty::Long => d
                .output_topic("out", key(), Serdes::option(Serdes::i64()))
                .read_records()
                .into_iter()
                .map(|r| (r.key, json!(r.value), r.timestamp))
                .collect(),
            Ty::Str => d
                .output_topic("out", key(), Serdes::option(Serdes::string()))
                .read_records()
                .into_iter()
                .map(|r| (r.key, json!(r.value), r.timestamp))
                .collect(),
        };
        out.extend(records.into_iter().map(|(key, value, ts)| Out {
            input: i,
            key,
            value,
            ts,
        }));
    }
    out
}

fn write_input(path: &Path, input: &[In]) {
    let lines: String = input
        .iter()
        .map(|r| {
            let line = json!({"topic": r.topic, "key": r.key, "value": r.value, "ts": r.ts});
            format!("{line}\n")
        })
        .collect();
    std::fs::write(path, lines).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

fn read_output(path: &Path) -> Vec<Out> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("Kafka Streams wrote no {}: {e}", path.display()));
    text.lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("a JSON line");
            Out {
                input: v["in"].as_u64().expect("an input index") as usize,
                key: v["key"].as_str().map(str::to_string),
                value: v["value"].clone(),
                ts: v["ts"].as_i64().expect("a timestamp"),
            }
        })
        .collect()
}

fn conformance_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../conformance")
}

fn newest_mtime(dir: &Path) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        let t = if meta.is_dir() {
            newest_mtime(&entry.path())
        } else {
            meta.modified().unwrap()
        };
        newest = newest.max(t);
    }
    newest
}

/// Builds the Java side unless its jar is newer than its sources: Maven itself takes ~10 s
/// even when there is nothing to do.
fn build_java() {
    let dir = conformance_dir();
    let jar = dir.join("target/conformance-1.jar");
    let sources = newest_mtime(&dir.join("src")).max(
        std::fs::metadata(dir.join("pom.xml"))
            .and_then(|m| m.modified())
            .unwrap(),
    );
    let built = std::fs::metadata(&jar).and_then(|m| m.modified()).ok();
    if built.is_some_and(|b| b > sources) && dir.join("target/lib").is_dir() {
        return;
    }
    let status = Command::new("mvn")
        .args(["-q", "-B", "-Dstyle.color=never", "-f"])
        .arg(dir.join("pom.xml"))
        .arg("package")
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run mvn ({e}): Java 17 and Maven are needed (scripts/test.sh installs them)"
            )
        });
    assert!(status.success(), "mvn package of conformance/ failed");
}

fn run_kafka_streams(dir: &Path) {
    let c = conformance_dir();
    let classpath = format!(
        "{}:{}/*",
        c.join("target/classes").display(),
        c.join("target/lib").display()
    );
    let out = Command::new("java")
        .args(["-cp", &classpath, "io.streamkit.conformance.Conformance"])
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run java ({e}): Java 17 is needed"));
    assert!(
        out.status.success(),
        "Kafka Streams side failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The inputs that delete a row its table does not hold: Kafka Streams forwards them as an
/// update from nothing to nothing, which joins downstream turn into output; streamkit drops
/// them at the table.
fn noop_deletes(case: &Case, input: &[In]) -> BTreeSet<usize> {
    let mut rows: BTreeSet<(&str, &str)> = BTreeSet::new();
    let mut out = BTreeSet::new();
    for (i, r) in input.iter().enumerate() {
        if !case.tables.contains(&r.topic) {
            continue;
        }
        let row = (r.topic, r.key.as_str());
        if r.value.is_null() {
            if !rows.remove(&row) {
                out.insert(i);
            }
        } else {
            rows.insert(row);
        }
    }
    out
}

/// A windowed key's window: "key@start/end".
fn window_of(key: Option<&str>) -> Option<(i64, i64)> {
    let (_, window) = key?.rsplit_once('@')?;
    let (start, end) = window.split_once('/')?;
    Some((start.parse().ok()?, end.parse().ok()?))
}

/// Whether two output records agree: equal, but for the timestamp difference `stamps`
/// documents.
fn agree(stamps: Stamps, input: &[In], kafka: &Out, ours: &Out) -> bool {
    let same_record =
        kafka.input == ours.input && kafka.key == ours.key && kafka.value == ours.value;
    same_record
        && match stamps {
            Stamps::Exact => kafka.ts == ours.ts,
            Stamps::UpdatingRecord => ours.ts == input[ours.input].ts && kafka.ts >= ours.ts,
            Stamps::WindowEnd => window_of(ours.key.as_deref())
                .is_some_and(|(start, end)| ours.ts == end - 1 && (start..end).contains(&kafka.ts)),
        }
}

/// The first difference, with a few records of context, or `None` when they agree.
fn diff(case: &Case, input: &[In], kafka: &[Out], ours: &[Out]) -> Option<String> {
    let first = (0..kafka.len().max(ours.len())).find(|&i| match (kafka.get(i), ours.get(i)) {
        (Some(k), Some(o)) => !agree(case.stamps, input, k, o),
        _ => true,
    })?;
    let show = |v: &[Out], i: usize| v.get(i).map_or("(none)".to_string(), Out::to_string);
    let mut s = format!(
        "first difference at output #{first} (Kafka Streams {} records, streamkit {}):\n",
        kafka.len(),
        ours.len()
    );
    for i in first.saturating_sub(3)..(first + 4) {
        let mark = if i == first { ">" } else { " " };
        s += &format!(
            "{mark} #{i:<4} kafka: {:<48} streamkit: {}\n",
            show(kafka, i),
            show(ours, i)
        );
    }
    if let Some(o) = kafka.get(first).or(ours.get(first)) {
        s += &format!("  input #{}: {:?}\n", o.input, input[o.input]);
    }
    Some(s)
}

#[test]
fn streamkit_matches_kafka_streams() {
    let seed = std::env::var("STREAMKIT_CONFORMANCE_SEED")
        .ok()
        .map(|s| {
            s.parse::<u64>()
                .expect("STREAMKIT_CONFORMANCE_SEED is a number")
        })
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("conformance seed {seed} (STREAMKIT_CONFORMANCE_SEED={seed} replays it)");
    let start = Instant::now();
    build_java();
    let dir = tempfile::Builder::new()
        .prefix("streamkit-conformance-")
        .tempdir()
        .unwrap();
    let cases = cases();
    let mut inputs = BTreeMap::new();
    for (i, case) in cases.iter().enumerate() {
        // Each case its own stream of numbers, so adding a case changes no other's input.
        let mut rng = Rng((seed ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1);
        let input = (case.input)(&mut rng);
        write_input(&dir.path().join(format!("{}.in.jsonl", case.name)), &input);
        inputs.insert(case.name, input);
    }
    run_kafka_streams(dir.path());
    let mut failures = Vec::new();
    for case in &cases {
        let mut kafka = read_output(&dir.path().join(format!("{}.out.jsonl", case.name)));
        let noop = noop_deletes(case, &inputs[case.name]);
        kafka.retain(|o| !noop.contains(&o.input));
        if case.name.starts_with("sliding") {
            // Kafka Streams forwards a window twice when a record's left window is also the
            // right window of the record just before it (`t - d - 1`); streamkit once.
            kafka.dedup();
        }
        if case.redundant_tombstones {
            // Keep a tombstone only when Kafka Streams' own output held the key until then.
            let mut held = BTreeSet::new();
            kafka.retain(|o| {
                let key = o.key.clone();
                if o.value.is_null() {
                    held.remove(&key)
                } else {
                    held.insert(key);
                    true
                }
            });
        }
        let ours = run_streamkit(case, &inputs[case.name]);
        assert!(
            !kafka.is_empty(),
            "{}: Kafka Streams emitted nothing: the input exercises nothing",
            case.name
        );
        if let Some(d) = diff(case, &inputs[case.name], &kafka, &ours) {
            failures.push(format!("{}: {d}", case.name));
        }
    }
    println!("{} cases in {:?}", cases.len(), start.elapsed());
    if !failures.is_empty() {
        let kept = dir.keep();
        panic!(
            "seed {seed}: {} of {} cases differ from Kafka Streams (inputs and Kafka Streams' \
             outputs kept in {}):\n\n{}",
            failures.len(),
            cases.len(),
            kept.display(),
            failures.join("\n")
        );
    }
}
