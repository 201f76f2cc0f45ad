//! Issue 23's runtime features through an embedded broker: custom stream partitioners on
//! `to` and `repartition`, `ProcessorContext::commit`, per-source `auto.offset.reset`.

mod common;

use std::time::Duration;

use streamkit::prelude::*;
use streamkit::testing::EmbeddedBroker;

fn produce_numbers(servers: &str, topic: &str, n: usize) {
    let records: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| (format!("k{i}"), i.to_string().into_bytes()))
        .collect();
    common::produce(servers, topic, &records);
}

#[test]
fn to_and_repartition_send_each_record_to_the_partition_the_partitioner_chose() {
    common::init_logs();
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("numbers", 1).unwrap();
    broker.create_topic("by-residue", 4).unwrap();
    broker.create_topic("after-repartition", 1).unwrap();
    let servers = broker.bootstrap_servers().to_string();
    produce_numbers(&servers, "numbers", 20);

    let b = StreamsBuilder::new();
    let numbers = b.stream(
        "numbers",
        Consumed::with(Serdes::string(), Serdes::string()),
    );
    // Value n goes to partition n mod count: the default (murmur2 of the key) would not.
    numbers.to(
        "by-residue",
        Produced::with(Serdes::string(), Serdes::string()).with_partitioner(
            |_t: &str, _k: &String, v: &String, n: i32| Some(v.parse::<i32>().unwrap() % n),
        ),
    );
    numbers
        .repartition(
            Repartitioned::with(Serdes::string(), Serdes::string())
                .named("last")
                .partitions(3)
                .with_partitioner(|_t: &str, _k: &String, _v: &String, n: i32| Some(n - 1)),
        )
        .to(
            "after-repartition",
            Produced::with(Serdes::string(), Serdes::string()),
        );
    let app = KafkaStreams::new(
        b.build().unwrap(),
        StreamsConfig::new("partitioner-app")
            .embedded(&broker)
            .commit_interval(Duration::from_millis(100)),
    )
    .unwrap();
    app.start().unwrap();

    let out = common::read_until(&servers, "by-residue", Duration::from_secs(60), |r| {
        r.len() >= 20
    });
    assert_eq!(out.len(), 20);
    for r in &out {
        let v: i32 = r.value_str().parse().unwrap();
        assert_eq!(r.partition, v % 4, "value {v}");
    }
    let repartitioned = common::read_until(
        &servers,
        "partitioner-app-last-repartition",
        Duration::from_secs(60),
        |r| r.len() >= 20,
    );
    assert_eq!(repartitioned.len(), 20);
    assert!(repartitioned.iter().all(|r| r.partition == 2));
    let after = common::read_until(
        &servers,
        "after-repartition",
        Duration::from_secs(60),
        |r| r.len() >= 20,
    );
    assert_eq!(after.len(), 20);
    app.close().unwrap();
}

/// Asks for a commit on the record whose value is "commit".
struct CommitOnRequest;
impl Processor<String, String> for CommitOnRequest {
    type KOut = String;
    type VOut = String;
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        r: Record<String, String>,
    ) -> Result<()> {
        if r.value == "commit" {
            ctx.commit();
        }
        ctx.forward(r)
    }
}

#[test]
fn a_processor_commit_request_commits_before_the_commit_interval() {
    common::init_logs();
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("requests", 1).unwrap();
    broker.create_topic("requests-out", 1).unwrap();
    let servers = broker.bootstrap_servers().to_string();
    let records: Vec<(String, Vec<u8>)> = ["a", "b", "commit"]
        .iter()
        .map(|v| ("k".to_string(), v.as_bytes().to_vec()))
        .collect();
    common::produce(&servers, "requests", &records);

    let b = StreamsBuilder::new();
    b.stream(
        "requests",
        Consumed::with(Serdes::string(), Serdes::string()),
    )
    .process(|| CommitOnRequest)
    .to(
        "requests-out",
        Produced::with(Serdes::string(), Serdes::string()),
    );
    // No interval commit for an hour: only the request commits.
    let app = KafkaStreams::new(
        b.build().unwrap(),
        StreamsConfig::new("commit-request-app")
            .embedded(&broker)
            .commit_interval(Duration::from_secs(3_600)),
    )
    .unwrap();
    app.start().unwrap();
    common::wait_committed(&servers, "commit-request-app", "requests", 1, 3);
    app.close().unwrap();
}

#[test]
fn a_source_with_latest_reset_skips_the_history_the_others_read_it() {
    common::init_logs();
    let broker = EmbeddedBroker::start().unwrap();
    for t in ["history", "live", "reset-out"] {
        broker.create_topic(t, 1).unwrap();
    }
    let servers = broker.bootstrap_servers().to_string();
    let old = |topic: &str| {
        let records: Vec<(String, Vec<u8>)> = (0..3)
            .map(|i| (format!("k{i}"), format!("{topic}-old-{i}").into_bytes()))
            .collect();
        common::produce(&servers, topic, &records);
    };
    old("history");
    old("live");

    let b = StreamsBuilder::new();
    let produced = || Produced::with(Serdes::string(), Serdes::string());
    b.stream(
        "history",
        Consumed::with(Serdes::string(), Serdes::string()),
    )
    .to("reset-out", produced());
    b.stream(
        "live",
        Consumed::with(Serdes::string(), Serdes::string()).with_offset_reset(OffsetReset::Latest),
    )
    .to("reset-out", produced());
    let app = KafkaStreams::new(
        b.build().unwrap(),
        StreamsConfig::new("offset-reset-app")
            .embedded(&broker)
            .commit_interval(Duration::from_millis(100)),
    )
    .unwrap();
    app.start().unwrap();
    // The history source (the application's `earliest`) reads its three old records: the
    // partitions are assigned, and the live source has been moved to its end.
    let out = common::read_until(&servers, "reset-out", Duration::from_secs(60), |r| {
        r.len() >= 3
    });
    assert_eq!(out.len(), 3);
    let records: Vec<(String, Vec<u8>)> = vec![("k9".to_string(), b"live-new".to_vec())];
    common::produce(&servers, "live", &records);
    let out = common::read_until(&servers, "reset-out", Duration::from_secs(60), |r| {
        r.iter().any(|r| r.value_str() == "live-new")
    });
    let mut values: Vec<&str> = out.iter().map(common::Read::value_str).collect();
    values.sort_unstable();
    assert_eq!(
        values,
        vec![
            "history-old-0",
            "history-old-1",
            "history-old-2",
            "live-new"
        ]
    );
    app.close().unwrap();
}

#[test]
fn a_committed_offset_wins_over_the_reset_policy() {
    common::init_logs();
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("resume-in", 1).unwrap();
    broker.create_topic("resume-out", 1).unwrap();
    let servers = broker.bootstrap_servers().to_string();
    let build = || {
        let b = StreamsBuilder::new();
        b.stream(
            "resume-in",
            Consumed::with(Serdes::string(), Serdes::string())
                .with_offset_reset(OffsetReset::Latest),
        )
        .to(
            "resume-out",
            Produced::with(Serdes::string(), Serdes::string()),
        );
        KafkaStreams::new(
            b.build().unwrap(),
            StreamsConfig::new("resume-app")
                .embedded(&broker)
                .commit_interval(Duration::from_millis(100)),
        )
        .unwrap()
    };
    let app = build();
    app.start().unwrap();
    // Wait until the partition is assigned (and moved to its end) before writing.
    assert!(app.wait_for_state(StreamsState::Running, Duration::from_secs(60)));
    std::thread::sleep(Duration::from_secs(2));
    let one = vec![("k".to_string(), b"first".to_vec())];
    common::produce(&servers, "resume-in", &one);
    common::wait_committed(&servers, "resume-app", "resume-in", 1, 1);
    app.close().unwrap();
    // Written while the application is down: read on restart, from the committed offset.
    let two = vec![("k".to_string(), b"second".to_vec())];
    common::produce(&servers, "resume-in", &two);
    let app = build();
    app.start().unwrap();
    let out = common::read_until(&servers, "resume-out", Duration::from_secs(60), |r| {
        r.len() >= 2
    });
    let values: Vec<&str> = out.iter().map(common::Read::value_str).collect();
    assert_eq!(values, vec!["first", "second"]);
    app.close().unwrap();
}
