//! `KafkaStreams::run` closes gracefully on SIGTERM: the process exits cleanly and the offsets
//! of everything it processed are committed for the next instance.
//!
//! The test re-runs its own binary as the child process (selected by an environment variable)
//! so the application really runs in another process that receives a real signal.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use streamkit::prelude::*;

const CHILD_ENV: &str = "STREAMKIT_SIGNAL_TEST_BROKER";

fn child(bootstrap: &str) {
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
        .to("out", Produced::with(Serdes::string(), Serdes::string()));
    // A long commit interval: only the graceful close can commit before the signal.
    let config = StreamsConfig::new("signal-app")
        .bootstrap_servers(bootstrap)
        .commit_interval(Duration::from_secs(3600));
    let app = KafkaStreams::new(b.build().unwrap(), config).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let reporter = std::thread::spawn({
        let metrics = app.metrics().clone();
        move || {
            while metrics.records_processed() < 10 {
                std::thread::sleep(Duration::from_millis(20));
            }
            println!("processed");
        }
    });
    rt.block_on(app.run()).unwrap();
    reporter.join().unwrap();
    println!("closed");
}

#[test]
fn sigterm_closes_gracefully_and_commits() {
    if let Ok(bootstrap) = std::env::var(CHILD_ENV) {
        return child(&bootstrap);
    }
    let broker = streamkit::testing::EmbeddedBroker::start().unwrap();
    broker.create_topic("in", 1).unwrap();
    broker.create_topic("out", 1).unwrap();
    let servers = broker.bootstrap_servers().to_string();
    let records: Vec<(String, Vec<u8>)> = (0..10)
        .map(|i| (format!("k{i}"), format!("v{i}").into_bytes()))
        .collect();
    common::produce(&servers, "in", &records);

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sigterm_closes_gracefully_and_commits",
            "--nocapture",
        ])
        .env(CHILD_ENV, &servers)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let processed = lines
        .by_ref()
        .map_while(|l| l.ok())
        .any(|l| l.contains("processed"));
    assert!(processed, "child never reported progress");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Read to the end: closing the pipe early would break the child's own output.
    let rest: Vec<String> = lines.map_while(|l| l.ok()).collect();
    let closed = rest.iter().any(|l| l.contains("closed"));
    let exit = child.wait().unwrap();
    assert!(closed && exit.success(), "child exit {exit:?}");

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &servers)
        .set("group.id", "signal-app")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition("in", 0);
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    assert_eq!(
        committed.find_partition("in", 0).unwrap().offset(),
        Offset::Offset(10)
    );
    let out = common::read_until(&servers, "out", Duration::from_secs(10), |r| r.len() >= 10);
    assert_eq!(out.len(), 10);
}
