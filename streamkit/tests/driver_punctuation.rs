//! Punctuators on stream time and on the driver's simulated wall clock; metadata and headers
//! seen by processors; errors carry the failing node's name.

use std::time::Duration;

use streamkit::prelude::*;

/// Forwards, on each punctuation, how many records it saw since the last one.
struct Batcher {
    kind: PunctuationType,
    seen: i64,
}

impl Processor<String, String> for Batcher {
    type KOut = String;
    type VOut = i64;
    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, i64>) -> Result<()> {
        ctx.schedule(Duration::from_secs(10), self.kind);
        Ok(())
    }
    fn process(
        &mut self,
        _ctx: &mut ProcessorContext<'_, String, i64>,
        _r: Record<String, String>,
    ) -> Result<()> {
        self.seen += 1;
        Ok(())
    }
    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, i64>,
        p: Punctuation,
    ) -> Result<()> {
        let n = std::mem::take(&mut self.seen);
        ctx.forward(Record::new(format!("at-{}", p.timestamp), n, p.timestamp))
    }
}

fn driver(kind: PunctuationType) -> (TopologyTestDriver, TestIo) {
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
        .process(move || Batcher { kind, seen: 0 })
        .to("out", Produced::with(Serdes::string(), Serdes::i64()));
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let io = TestIo {
        input: d.input_topic("in", Serdes::string(), Serdes::string()),
        output: d.output_topic("out", Serdes::string(), Serdes::i64()),
    };
    (d, io)
}

struct TestIo {
    input: streamkit::testing::TestInputTopic<String, String>,
    output: streamkit::testing::TestOutputTopic<String, i64>,
}

#[test]
fn stream_time_punctuation_fires_with_data_only() {
    let (d, io) = driver(PunctuationType::StreamTime);
    io.input.pipe_at("a".into(), "x".into(), 5_000).unwrap(); // first record: fires at 5 s
    io.input.pipe_at("a".into(), "x".into(), 9_000).unwrap();
    io.input.pipe_at("a".into(), "x".into(), 2_000).unwrap(); // out of order: stream time stays 9 s
    d.advance_wall_clock_time(Duration::from_secs(3600))
        .unwrap(); // wall clock does nothing
    io.input.pipe_at("a".into(), "x".into(), 15_000).unwrap(); // ≥ 5 s + 10 s
    io.input.pipe_at("a".into(), "x".into(), 40_000).unwrap(); // skipped intervals fire once
    assert_eq!(
        io.output.read_key_values(),
        vec![
            ("at-5000".to_string(), 1),
            ("at-15000".to_string(), 3),
            ("at-40000".to_string(), 1)
        ]
    );
}

#[test]
fn wall_clock_punctuation_follows_the_simulated_clock() {
    let (d, io) = driver(PunctuationType::WallClockTime);
    io.input.pipe_at("a".into(), "x".into(), 1_000_000).unwrap();
    assert!(
        io.output.is_empty(),
        "stream time does not drive wall-clock punctuators"
    );
    d.advance_wall_clock_time(Duration::from_secs(9)).unwrap();
    assert!(io.output.is_empty());
    d.advance_wall_clock_time(Duration::from_secs(1)).unwrap();
    io.input.pipe_at("a".into(), "x".into(), 0).unwrap();
    d.advance_wall_clock_time(Duration::from_secs(10)).unwrap();
    assert_eq!(
        io.output.read_key_values(),
        vec![("at-10000".to_string(), 1), ("at-20000".to_string(), 1)]
    );
    assert_eq!(d.wall_clock_time(), 20_000);
}

/// Reports where each record came from.
struct Origin;

impl Processor<String, String> for Origin {
    type KOut = String;
    type VOut = String;
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        r: Record<String, String>,
    ) -> Result<()> {
        let m = ctx
            .record_metadata()
            .expect("metadata while processing")
            .clone();
        let trace = r.headers.last_str("trace").unwrap_or("-").to_string();
        let v = format!(
            "{}/{}/{}/{}/{}",
            m.topic,
            m.partition,
            m.offset,
            ctx.task_id(),
            trace
        );
        ctx.forward(r.with_value(v))
    }
}

#[test]
fn processors_see_origin_metadata_and_headers() {
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
        .process(|| Origin)
        .to("out", Produced::with(Serdes::string(), Serdes::string()));
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let input = d.input_topic("in", Serdes::string(), Serdes::string());
    input.pipe("k".into(), "v".into()).unwrap();
    let mut r = Record::new("k".to_string(), "v".to_string(), 7);
    r.headers.add("trace", "abc");
    input.pipe_record(r).unwrap();
    let out = d
        .output_topic("out", Serdes::string(), Serdes::string())
        .read_records();
    assert_eq!(out[0].value, "in/0/0/0_0/-");
    assert_eq!(out[1].value, "in/0/1/0_0/abc");
    assert_eq!(
        out[1].headers.last_str("trace"),
        Some("abc"),
        "headers travel to the output"
    );
    assert_eq!(out[1].timestamp, 7);
}

#[test]
fn processor_errors_name_the_node_and_fail_the_pipe() {
    let b = StreamsBuilder::new();
    struct Boom;
    impl Processor<String, String> for Boom {
        type KOut = String;
        type VOut = String;
        fn process(
            &mut self,
            _: &mut ProcessorContext<'_, String, String>,
            r: Record<String, String>,
        ) -> Result<()> {
            Err(Error::custom(format!("cannot handle {}", r.value)))
        }
    }
    b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
        .process(|| Boom)
        .named("boom");
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let err = d
        .input_topic("in", Serdes::string(), Serdes::string())
        .pipe("k".into(), "v".into())
        .unwrap_err();
    assert_eq!(err.to_string(), "processor boom: cannot handle v");
    assert_eq!(err.kind(), streamkit::ErrorKind::User);
}

#[test]
fn deserialization_failure_names_topic_partition_offset_by_default() {
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(Serdes::string(), Serdes::i32()))
        .to("out", Produced::with(Serdes::string(), Serdes::i32()));
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let input = d.input_topic("in", Serdes::string(), Serdes::i32());
    input.pipe("a".into(), 1).unwrap();
    let err = input.pipe_raw(Some(b"b"), Some(b"xy"), 0).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot deserialize record from in[0]@1"),
        "{err}"
    );
    // A null value on a non-optional serde is an error too; Serdes::option accepts it.
    assert!(input.pipe_raw(Some(b"c"), None, 0).is_err());
    assert!(
        d.input_topic("nope", Serdes::string(), Serdes::i32())
            .pipe("a".into(), 1)
            .is_err()
    );
}

#[test]
fn tombstones_flow_through_option_serdes() {
    let b = StreamsBuilder::new();
    b.stream(
        "in",
        Consumed::with(Serdes::string(), Serdes::option(Serdes::string())),
    )
    .map_values(|v: Option<String>| v.map(|s| s.len() as i64))
    .to(
        "out",
        Produced::with(Serdes::string(), Serdes::option(Serdes::i64())),
    );
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let input = d.input_topic("in", Serdes::string(), Serdes::option(Serdes::string()));
    input.pipe("a".into(), Some("abc".into())).unwrap();
    input.pipe("a".into(), None).unwrap();
    let raw = d.output_topic("out", Serdes::string(), Serdes::option(Serdes::bytes()));
    assert_eq!(
        raw.read_values(),
        vec![Some(vec![0, 0, 0, 0, 0, 0, 0, 3]), None]
    );
}

#[test]
fn repartition_topics_use_the_application_id() {
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
        .repartition(Repartitioned::with(Serdes::string(), Serdes::string()).named("shuffle"))
        .to("out", Produced::with(Serdes::string(), Serdes::string()));
    let d =
        TopologyTestDriver::with_config(b.build().unwrap(), StreamsConfig::new("my-app")).unwrap();
    d.input_topic("in", Serdes::string(), Serdes::string())
        .pipe("k".into(), "v".into())
        .unwrap();
    assert_eq!(
        d.produced_topic_names(),
        vec!["my-app-shuffle-repartition", "out"]
    );
    assert_eq!(d.metrics().records_processed(), 2, "once per sub-topology");
}
