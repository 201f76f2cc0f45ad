//! `Topology::describe()` prints sub-topologies, sources, processors and sinks like Kafka
//! Streams, and the builder rejects malformed graphs with clear errors.

use streamkit::prelude::*;

#[test]
fn describe_matches_kafka_streams_format() {
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
        .filter(|_, v| !v.is_empty())
        .named("non-empty")
        .select_key(|_, v: &String| v.clone())
        .repartition(Repartitioned::with(Serdes::string(), Serdes::string()).named("by-value"))
        .to("out", Produced::with(Serdes::string(), Serdes::string()));
    let text = b.build().unwrap().describe().to_string();
    let expected = "\
Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [in])
      --> non-empty
    Processor: non-empty (stores: [])
      --> KSTREAM-KEY-SELECT-0000000002
      <-- KSTREAM-SOURCE-0000000000
    Processor: KSTREAM-KEY-SELECT-0000000002 (stores: [])
      --> by-value-repartition-sink
      <-- non-empty
    Sink: by-value-repartition-sink (topic: by-value-repartition)
      <-- KSTREAM-KEY-SELECT-0000000002

   Sub-topology: 1
    Source: by-value-repartition-source (topics: [by-value-repartition])
      --> KSTREAM-SINK-0000000004
    Sink: KSTREAM-SINK-0000000004 (topic: out)
      <-- by-value-repartition-source

";
    assert_eq!(text, expected);
}

#[test]
fn split_branches_are_named_after_the_split() {
    let b = StreamsBuilder::new();
    let branches = b
        .stream("in", Consumed::with(Serdes::string(), Serdes::i32()))
        .split_named("delay-")
        .branch("late", |_, v| *v > 0)
        .default_branch("rest");
    branches["late"].to("late", Produced::with(Serdes::string(), Serdes::i32()));
    let description = b.build().unwrap().describe();
    let names: Vec<&str> = description.subtopologies[0]
        .nodes
        .iter()
        .map(|n| n.name())
        .collect();
    assert_eq!(
        names,
        [
            "KSTREAM-SOURCE-0000000000",
            "delay",
            "delay-late",
            "delay-rest",
            "KSTREAM-SINK-0000000005"
        ]
    );
}

#[test]
fn duplicate_names_are_rejected() {
    let b = StreamsBuilder::new();
    let s = b.stream("in", Consumed::with(Serdes::string(), Serdes::string()));
    s.filter(|_, _| true).named("x");
    s.map_values(|v| v).named("x");
    let err = b.build().unwrap_err();
    assert!(
        err.to_string().contains("two nodes are named \"x\""),
        "{err}"
    );
}

#[test]
fn renaming_after_adding_children_is_rejected() {
    let b = StreamsBuilder::new();
    let s = b.stream("in", Consumed::with(Serdes::string(), Serdes::string()));
    s.to("out", Produced::with(Serdes::string(), Serdes::string()));
    let _ = s.named("late-name");
    let err = b.build().unwrap_err();
    assert!(err.to_string().contains("already has children"), "{err}");
}

#[test]
fn a_topic_read_twice_and_an_empty_builder_are_rejected() {
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(Serdes::string(), Serdes::string()));
    b.stream("in", Consumed::with(Serdes::string(), Serdes::string()));
    assert!(
        b.build()
            .unwrap_err()
            .to_string()
            .contains("topic in is read by two sources")
    );
    assert!(
        StreamsBuilder::new()
            .build()
            .unwrap_err()
            .to_string()
            .contains("no source")
    );
}
