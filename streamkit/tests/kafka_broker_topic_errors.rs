//! A source topic deleted mid-stream, and topics the cluster's ACLs deny, stop the application
//! with an error naming the topics and the cause — as Kafka Streams fails with
//! `MissingSourceTopicException` / `TopicAuthorizationException` and goes to `ERROR` — rather
//! than leaving it `Running` with nothing to do, whatever the production error handler. A
//! record the output topic refuses for its size goes to that handler. The embedded broker can
//! neither delete a topic nor authorize nor enforce a topic's `max.message.bytes`, so these
//! need a real one; every wait has a deadline, so a hang fails.

mod common;

use std::time::Duration;

use common::kafka;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use streamkit::error_policy::dead_letter_headers as h;
use streamkit::prelude::*;

fn passthrough(input: &str, output: &str) -> Topology {
    let b = StreamsBuilder::new();
    b.stream(input, Consumed::with(Serdes::string(), Serdes::string()))
        .map_values(|v: String| format!("seen:{v}"))
        .to(output, Produced::with(Serdes::string(), Serdes::string()));
    b.build().unwrap()
}

fn config(app_id: &str, bootstrap: &str, dir: &std::path::Path) -> StreamsConfig {
    StreamsConfig::new(app_id)
        .bootstrap_servers(bootstrap)
        .state_dir(dir)
        .commit_interval(Duration::from_millis(200))
        .close_timeout(Duration::from_secs(30))
}

fn records(range: std::ops::Range<u32>) -> Vec<(String, Vec<u8>)> {
    range
        .map(|i| (format!("k{i}"), i.to_string().into_bytes()))
        .collect()
}

/// Starts `topology` and waits until it has processed a record.
fn start_processing(app: &KafkaStreams, bootstrap: &str, input: &str) {
    app.start().unwrap();
    common::produce(bootstrap, input, &records(0..10));
    assert!(
        common::eventually(Duration::from_secs(60), || app
            .metrics()
            .records_processed()
            >= 10),
        "{:?} {:?}",
        app.state(),
        app.error()
    );
}

/// Waits (with a deadline: a hang fails the test) until the application has stopped on an
/// error, and returns that error as `close()` reports it.
fn stopped_with_error(app: &KafkaStreams) -> Error {
    assert!(
        app.wait_for_state(StreamsState::Error, Duration::from_secs(60)),
        "still {:?} after the fault",
        app.state()
    );
    app.close()
        .expect_err("close reports the error that stopped the application")
}

#[test]
fn a_source_topic_deleted_mid_stream_stops_the_application_naming_it() {
    common::init_logs();
    let bootstrap = kafka::bootstrap();
    let (input, output) = (kafka::unique("doomed"), kafka::unique("doomed-out"));
    let app_id = kafka::unique("deleted-source");
    let base = StreamsConfig::new(&app_id).bootstrap_servers(&bootstrap);
    streamkit::runtime::ensure_topics(&base, &[(input.as_str(), 2), (output.as_str(), 2)]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let app = KafkaStreams::new(
        passthrough(&input, &output),
        config(&app_id, &bootstrap, dir.path()),
    )
    .unwrap();
    start_processing(&app, &bootstrap, &input);

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let deleted = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(admin.delete_topics(&[&input], &AdminOptions::new()))
        .unwrap();
    deleted[0].as_ref().expect("delete the source topic");

    let err = stopped_with_error(&app);
    assert!(
        matches!(&err, Error::MissingSourceTopics(t) if *t == [input.as_str()]),
        "{err}"
    );
}

#[test]
fn topics_the_acls_deny_stop_the_application_naming_them() {
    common::init_logs();
    let cluster = kafka::Cluster::start_with(1, &["--authorizer"]);
    let bootstrap = cluster.bootstrap.clone();
    let deny = |topic: &str| {
        cluster.tool(
            "AclCommand",
            &[
                "--add",
                "--deny-principal",
                "User:ANONYMOUS",
                "--operation",
                "All",
                "--topic",
                topic,
            ],
        );
    };
    let base = StreamsConfig::new("acl-setup").bootstrap_servers(&bootstrap);
    streamkit::runtime::ensure_topics(
        &base,
        &[
            ("closed", 1),
            ("in", 2),
            ("out", 2),
            ("in-2", 2),
            ("out-2", 2),
        ],
    )
    .unwrap();

    // A source denied before the start: start() fails at once, and says it is a matter of
    // authorization, not a missing topic (the cluster hides a denied topic from the list).
    deny("closed");
    let dir = tempfile::tempdir().unwrap();
    let app = KafkaStreams::new(
        passthrough("closed", "out"),
        config("denied-at-start", &bootstrap, dir.path()),
    )
    .unwrap();
    let err = app.start().expect_err("a denied source topic");
    assert!(
        matches!(&err, Error::TopicAuthorization(t) if t == &["closed".to_string()]),
        "{err}"
    );
    assert_eq!(app.state(), StreamsState::Error);

    // A sink denied mid-stream: the failed delivery stops the application, even with a
    // production error handler that skips records (the refusal is not about one record).
    let app = KafkaStreams::new(
        passthrough("in", "out"),
        config("denied-sink", &bootstrap, dir.path())
            .production_error_handler(ProductionErrorHandler::LogAndContinue),
    )
    .unwrap();
    start_processing(&app, &bootstrap, "in");
    deny("out");
    common::produce(&bootstrap, "in", &records(10..20));
    let err = stopped_with_error(&app).to_string();
    assert!(
        err.contains("out") && err.to_lowercase().contains("authorization"),
        "{err}"
    );

    // A source denied mid-stream.
    let app = KafkaStreams::new(
        passthrough("in-2", "out-2"),
        config("denied-source", &bootstrap, dir.path()),
    )
    .unwrap();
    start_processing(&app, &bootstrap, "in-2");
    deny("in-2");
    let err = stopped_with_error(&app);
    assert!(
        matches!(&err, Error::TopicAuthorization(t) if t == &["in-2".to_string()]),
        "{err}"
    );
}

/// At least once, a record the output topic refuses on delivery (over its `max.message.bytes`)
/// goes to the production error handler: the stream thread dead-letters it, cut short, before
/// it commits the input offsets, and processing goes on.
#[test]
fn a_record_the_output_topic_refuses_is_dead_lettered_and_processing_goes_on() {
    use rdkafka::admin::{NewTopic, TopicReplication};

    common::init_logs();
    let bootstrap = kafka::bootstrap();
    let app_id = kafka::unique("refused-record");
    let (input, output, dlq) = (
        kafka::unique("refused-in"),
        kafka::unique("refused-out"),
        kafka::unique("refused-dlq"),
    );
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let created = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(
            admin.create_topics(
                &[
                    NewTopic::new(&input, 1, TopicReplication::Fixed(1)),
                    NewTopic::new(&output, 1, TopicReplication::Fixed(1))
                        .set("max.message.bytes", "2000"),
                    NewTopic::new(&dlq, 1, TopicReplication::Fixed(1)),
                ],
                &AdminOptions::new(),
            ),
        )
        .unwrap();
    for r in created {
        r.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let app = KafkaStreams::new(
        passthrough(&input, &output),
        config(&app_id, &bootstrap, dir.path())
            .production_error_handler(ProductionErrorHandler::DeadLetter(dlq.clone())),
    )
    .unwrap();
    app.start().unwrap();
    let mut inputs = records(0..5);
    inputs.push(("big".to_string(), vec![b'x'; 10_000]));
    inputs.extend(records(5..10));
    common::produce(&bootstrap, &input, &inputs);

    // Every input processed and its offset committed, so every output or dead letter is in.
    common::wait_committed(&bootstrap, &app_id, &input, 1, inputs.len() as i64);
    let out = common::read_all(&bootstrap, &output, Duration::from_secs(30));
    let dead = common::read_all(&bootstrap, &dlq, Duration::from_secs(30));
    let mut keys: Vec<&str> = out.iter().chain(&dead).map(common::Read::key_str).collect();
    keys.sort_unstable();
    let mut expected: Vec<&str> = inputs.iter().map(|(k, _)| k.as_str()).collect();
    expected.sort_unstable();
    assert_eq!(
        keys, expected,
        "each input once, in the output or dead-lettered"
    );
    // The broker refuses the batch holding the big record: it, and any record that shared
    // its batch.
    let big = dead
        .iter()
        .find(|d| d.key_str() == "big")
        .expect("the refused record is dead-lettered");
    assert_eq!(big.value.as_ref().unwrap().len(), 4096);
    assert_eq!(
        big.headers[h::TRUNCATED],
        (10_000 + "seen:".len()).to_string()
    );
    for d in &dead {
        assert_eq!(d.headers[h::STAGE], "production");
        assert_eq!(d.headers[h::TARGET_TOPIC], output);
        assert!(
            d.headers[h::ERROR].to_lowercase().contains("too large"),
            "{}",
            d.headers[h::ERROR]
        );
    }
    assert_eq!(
        app.metrics().dropped_records("production"),
        dead.len() as u64
    );
    assert_eq!(app.state(), StreamsState::Running);
    app.close().unwrap();
}
