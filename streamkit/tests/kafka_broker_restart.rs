//! A single-node real cluster killed (`kill -9`, as a crash) and started again mid-stream:
//! the application rides out the outage — its clients reconnect, failed commits wait for the
//! broker — and no record is lost. The embedded broker lives in the test's process, so it
//! cannot crash and come back.

mod common;

use common::kafka;

#[test]
fn a_broker_killed_and_restarted_mid_stream_loses_no_record() {
    common::init_logs();
    let cluster = kafka::Cluster::start(1);
    let outcome = common::broker_faults::run_through_fault(&cluster.bootstrap, &[1], 6000, || {
        cluster.kill(1);
        cluster.restart(1);
    });
    // At-least-once: records processed after the last commit before the crash may come out
    // again; the run's count is in the test output.
    eprintln!("after a broker restart: {outcome:?}");
}

/// An outage longer than a commit's wait for its output (10 s) and longer than the fixed
/// 60 s that used to fail the thread: commits are postponed, and once the broker is back the
/// output is acknowledged and committed, with no record lost.
#[test]
fn an_outage_of_75_seconds_is_ridden_out() {
    common::init_logs();
    let cluster = kafka::Cluster::start(1);
    let outcome = common::broker_faults::run_through_fault_with(
        &cluster.bootstrap,
        &[1],
        4000,
        |c| c,
        || {
            cluster.kill(1);
            std::thread::sleep(std::time::Duration::from_secs(75));
            cluster.restart(1);
        },
    );
    eprintln!("after a 75 s outage: {outcome:?}");
}

/// An outage longer than the task timeout stops the application with an error naming the
/// setting, rather than waiting forever.
#[test]
fn an_outage_longer_than_the_task_timeout_fails_naming_it() {
    use std::time::Duration;
    use streamkit::prelude::*;

    common::init_logs();
    let cluster = kafka::Cluster::start(1);
    let input = kafka::unique("outage-in");
    let dir = tempfile::tempdir().unwrap();
    let config = StreamsConfig::new(kafka::unique("outage-app"))
        .bootstrap_servers(&cluster.bootstrap)
        .state_dir(dir.path())
        .replication_factor(1)
        .commit_interval(Duration::from_millis(200))
        .task_timeout(Duration::from_secs(15));
    streamkit::runtime::ensure_topics(&config, &[(&input, 1)]).unwrap();
    // Input fetched before the broker goes down and processed slowly (1 ms a record), so
    // that output keeps coming while it is down.
    let records: Vec<(String, Vec<u8>)> = (0..5000)
        .map(|i| (format!("k{i}"), b"v".to_vec()))
        .collect();
    common::produce(&cluster.bootstrap, &input, &records);
    let b = StreamsBuilder::new();
    b.stream(&input, Consumed::with(Serdes::string(), Serdes::string()))
        .map_values(|v: String| {
            std::thread::sleep(Duration::from_millis(1));
            v
        })
        .to(
            &format!("{input}-out"),
            Produced::with(Serdes::string(), Serdes::string()),
        );
    let app = KafkaStreams::new(b.build().unwrap(), config).unwrap();
    app.start().unwrap();
    assert!(common::eventually(Duration::from_secs(60), || app
        .metrics()
        .records_processed()
        >= 100));
    cluster.kill(1);
    let failed = common::eventually(Duration::from_secs(90), || {
        app.state() == StreamsState::Error
    });
    let error = app.error().unwrap_or_default();
    assert!(failed, "still {:?} after 90 s", app.state());
    assert!(error.contains("task_timeout"), "{error}");
    let _ = app.close();
}
