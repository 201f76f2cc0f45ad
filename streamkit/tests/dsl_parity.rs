//! The Kafka Streams DSL operations of issue 23 through the test driver: `to_table`,
//! `process_values`, custom partitioners, `ProcessorContext::commit` and per-source offset
//! reset policies.

use streamkit::prelude::*;

fn s(v: &str) -> String {
    v.to_string()
}

#[test]
fn to_table_keeps_the_latest_value_per_key_and_deletes_on_none() {
    let b = StreamsBuilder::new();
    b.stream(
        "in",
        Consumed::with(Serdes::string(), Serdes::option(Serdes::i64())),
    )
    .to_table(
        Materialized::named("latest")
            .key_serde(Serdes::string())
            .value_serde(Serdes::i64()),
    )
    .to_change_stream()
    .to(
        "changes",
        Produced::with(Serdes::string(), Serdes::option(Serdes::i64())),
    );
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let input = d.input_topic("in", Serdes::string(), Serdes::option(Serdes::i64()));
    input.pipe(s("a"), Some(1)).unwrap();
    input.pipe(s("b"), Some(2)).unwrap();
    input.pipe(s("a"), Some(3)).unwrap();
    input.pipe(s("b"), None).unwrap();
    input.pipe(s("c"), None).unwrap(); // deleting a missing key changes nothing
    let store = d.key_value_store::<String, i64>("latest").unwrap();
    assert_eq!(store.all().unwrap(), vec![(s("a"), 3)]);
    let changes = d.output_topic("changes", Serdes::string(), Serdes::option(Serdes::i64()));
    assert_eq!(
        changes.read_key_values(),
        vec![
            (s("a"), Some(1)),
            (s("b"), Some(2)),
            (s("a"), Some(3)),
            (s("b"), None)
        ]
    );
    // Materialized with a changelog, as StreamsBuilder::table.
    let changelog = d.output_topic(
        "test-app-latest-changelog",
        Serdes::string(),
        Serdes::option(Serdes::i64()),
    );
    assert_eq!(
        changelog.read_values(),
        vec![Some(1), Some(2), Some(3), None]
    );
}

#[test]
fn to_table_of_a_plain_stream_upserts_and_joins() {
    let b = StreamsBuilder::new();
    let prices = b
        .stream("prices", Consumed::with(Serdes::string(), Serdes::i64()))
        .to_table(Materialized::with(Serdes::string(), Serdes::i64()));
    b.stream("orders", Consumed::with(Serdes::string(), Serdes::i64()))
        .join_table(&prices, |qty: &i64, price: &i64| qty * price)
        .to("totals", Produced::with(Serdes::string(), Serdes::i64()));
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let p = d.input_topic("prices", Serdes::string(), Serdes::i64());
    let o = d.input_topic("orders", Serdes::string(), Serdes::i64());
    p.pipe(s("tea"), 3).unwrap();
    p.pipe(s("tea"), 4).unwrap();
    o.pipe(s("tea"), 2).unwrap();
    assert_eq!(
        d.output_topic("totals", Serdes::string(), Serdes::i64())
            .read_values(),
        vec![8]
    );
}

#[test]
fn to_table_after_a_key_change_repartitions() {
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
        .select_key(|_, v: &String| v.clone())
        .map_values(|v: String| v.len() as i64)
        .to_table(
            Materialized::named("by-value")
                .key_serde(Serdes::string())
                .value_serde(Serdes::i64()),
        );
    let topology = b.build().unwrap();
    assert_eq!(topology.subtopology_count(), 2);
    assert!(
        topology.internal_topics().iter().any(|t| t
            .name
            .to_string()
            .starts_with("KSTREAM-TOTABLE-")
            && t.name.to_string().ends_with("-repartition"))
    );
    let d = TopologyTestDriver::new(topology).unwrap();
    d.input_topic("in", Serdes::string(), Serdes::string())
        .pipe_all([(s("k1"), s("abc")), (s("k2"), s("abc")), (s("k3"), s("xy"))])
        .unwrap();
    let store = d.key_value_store::<String, i64>("by-value").unwrap();
    assert_eq!(store.all().unwrap(), vec![(s("abc"), 3), (s("xy"), 2)]);
}

#[test]
fn to_table_without_serdes_is_a_build_error() {
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
        .to_table(Materialized::<String, String>::named("rows"));
    let err = b.build().unwrap_err().to_string();
    assert!(err.contains("to_table"), "{err}");
}

/// Appends the record's source offset to its value.
struct Tag;
impl FixedKeyProcessor<String, String> for Tag {
    type VOut = String;
    fn process(
        &mut self,
        ctx: &mut FixedKeyProcessorContext<'_, String, String>,
        r: FixedKeyRecord<String, String>,
    ) -> Result<()> {
        let offset = ctx.record_metadata().map_or(-1, |m| m.offset);
        let tagged = format!("{}@{offset}", r.value());
        ctx.forward(r.with_value(tagged))
    }
}

/// The same as a plain processor (which could change the key).
struct TagAny;
impl Processor<String, String> for TagAny {
    type KOut = String;
    type VOut = String;
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        r: Record<String, String>,
    ) -> Result<()> {
        ctx.forward(r)
    }
}

#[test]
fn process_values_keeps_the_key_so_grouping_needs_no_repartition() {
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
        .process_values(|| Tag)
        .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
        .count(Materialized::named("counts"));
    let topology = b.build().unwrap();
    assert_eq!(topology.subtopology_count(), 1);
    assert!(
        topology
            .describe()
            .to_string()
            .contains("Processor: KSTREAM-PROCESSVALUES-")
    );
    let d = TopologyTestDriver::new(topology).unwrap();
    d.input_topic("in", Serdes::string(), Serdes::string())
        .pipe_all([(s("a"), s("x")), (s("a"), s("y")), (s("b"), s("z"))])
        .unwrap();
    let counts = d.key_value_store::<String, i64>("counts").unwrap();
    assert_eq!(counts.all().unwrap(), vec![(s("a"), 2), (s("b"), 1)]);

    // `process` may change keys: the same topology repartitions.
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
        .process(|| TagAny)
        .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
        .count(Materialized::named("counts"));
    assert_eq!(b.build().unwrap().subtopology_count(), 2);
}

#[test]
fn process_values_forwards_new_values_with_the_input_key() {
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
        .process_values(|| Tag)
        .to("out", Produced::with(Serdes::string(), Serdes::string()));
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    d.input_topic("in", Serdes::string(), Serdes::string())
        .pipe_all([(s("a"), s("x")), (s("b"), s("y"))])
        .unwrap();
    assert_eq!(
        d.output_topic("out", Serdes::string(), Serdes::string())
            .read_key_values(),
        vec![(s("a"), s("x@0")), (s("b"), s("y@1"))]
    );
}

#[test]
fn process_values_after_a_key_change_still_repartitions() {
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
        .select_key(|_, v: &String| v.clone())
        .process_values(|| Tag)
        .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
        .count(Materialized::named("counts"));
    assert_eq!(b.build().unwrap().subtopology_count(), 2);
}

#[test]
fn a_partition_outside_the_topic_fails_the_record() {
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
        .to(
            "out",
            Produced::with(Serdes::string(), Serdes::string())
                .with_partitioner(|_t: &str, _k: &String, _v: &String, n: i32| Some(n)),
        );
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let err = d
        .input_topic("in", Serdes::string(), Serdes::string())
        .pipe(s("k"), s("v"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("partition 1 of out, which has 1"), "{err}");
}

#[test]
fn the_partitioner_sees_the_resolved_topic_and_record() {
    use std::sync::{Arc, Mutex};
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
        .repartition(
            Repartitioned::with(Serdes::string(), Serdes::string())
                .named("r")
                .with_partitioner(
                    move |t: &str, k: &String, v: &String, n: i32| -> Option<i32> {
                        log.lock()
                            .unwrap()
                            .push((t.to_string(), k.clone(), v.clone(), n));
                        None
                    },
                ),
        )
        .to("out", Produced::with(Serdes::string(), Serdes::string()));
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    d.input_topic("in", Serdes::string(), Serdes::string())
        .pipe(s("k"), s("v"))
        .unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![(s("test-app-r-repartition"), s("k"), s("v"), 1)]
    );
    assert_eq!(
        d.output_topic("out", Serdes::string(), Serdes::string())
            .read_values(),
        vec![s("v")]
    );
}

/// Asks for a commit on values starting with '!'.
struct Urgent;
impl FixedKeyProcessor<String, String> for Urgent {
    type VOut = String;
    fn process(
        &mut self,
        ctx: &mut FixedKeyProcessorContext<'_, String, String>,
        r: FixedKeyRecord<String, String>,
    ) -> Result<()> {
        if r.value().starts_with('!') {
            ctx.commit();
        }
        ctx.forward(r)
    }
}

#[test]
fn a_commit_request_writes_the_caches_out_after_the_record() {
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
        .process_values(|| Urgent)
        .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
        .count(Materialized::named("counts").with_caching_enabled());
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    d.set_commit_every(1_000);
    let input = d.input_topic("in", Serdes::string(), Serdes::string());
    let changelog = d.output_topic("test-app-counts-changelog", Serdes::string(), Serdes::i64());
    input.pipe(s("k"), s("a")).unwrap();
    input.pipe(s("k"), s("b")).unwrap();
    assert!(changelog.is_empty(), "no commit yet");
    input.pipe(s("k"), s("!c")).unwrap();
    assert_eq!(changelog.read_values(), vec![3]);
    input.pipe(s("k"), s("d")).unwrap();
    assert!(changelog.is_empty(), "the request was served once");
}

#[test]
fn offset_reset_policies_belong_to_their_sources_only() {
    let b = StreamsBuilder::new();
    b.table(
        "rows",
        Consumed::with(Serdes::string(), Serdes::string()).with_offset_reset(OffsetReset::Earliest),
        Materialized::named("rows"),
    );
    b.stream_from(
        &["live-a", "live-b"],
        Consumed::with(Serdes::string(), Serdes::string()).with_offset_reset(OffsetReset::Latest),
    )
    .repartition(Repartitioned::with(Serdes::string(), Serdes::string()).named("r"))
    .to("out", Produced::with(Serdes::string(), Serdes::string()));
    let t = b.build().unwrap();
    assert_eq!(t.offset_reset("app", "rows"), Some(OffsetReset::Earliest));
    assert_eq!(t.offset_reset("app", "live-a"), Some(OffsetReset::Latest));
    assert_eq!(t.offset_reset("app", "live-b"), Some(OffsetReset::Latest));
    assert_eq!(t.offset_reset("app", "app-r-repartition"), None);
}
