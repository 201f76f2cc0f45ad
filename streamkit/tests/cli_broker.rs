//! `streamkit broker` serves a Kafka-protocol endpoint that ordinary clients can use.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

/// Bounds every wait of this test.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Kills the broker process even when an assertion fails.
struct Guard(Option<Child>);

impl Guard {
    /// Sends SIGTERM and waits (bounded) for the exit status.
    fn terminate(&mut self) -> ExitStatus {
        let mut child = self.0.take().expect("child still running");
        let killed = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(killed.success(), "kill -TERM failed");
        wait_bounded(&mut child)
    }
}

/// Waits for `child` to exit, killing it (and failing) after [`TIMEOUT`].
fn wait_bounded(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("wait for the broker") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the broker did not exit within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `streamkit broker <args>` and returns it with the address it printed.
fn start_broker(args: &[&str]) -> (Guard, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_streamkit"))
        .arg("broker")
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn streamkit broker");
    let stdout = child.stdout.take().expect("stdout");
    let guard = Guard(Some(child));
    // Read on a helper thread so a broker that never prints cannot hang the test.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line).map(|_| line);
        let _ = tx.send(read);
    });
    let line = rx
        .recv_timeout(TIMEOUT)
        .expect("the broker printed no address in time")
        .expect("read the broker's stdout");
    let servers = line
        .trim_end()
        .strip_prefix("bootstrap.servers=")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    assert!(!servers.is_empty(), "empty address");
    (guard, servers)
}

#[test]
fn the_broker_command_serves_other_clients() {
    // Declared first, so dropped last: the clients close while the broker still runs.
    let (mut broker, servers) = start_broker(&["--topic", "t:2"]);

    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &servers)
        .set("message.timeout.ms", "30000")
        .create()
        .expect("producer");
    let metadata = producer
        .client()
        .fetch_metadata(Some("t"), TIMEOUT)
        .expect("metadata");
    let topic = &metadata.topics()[0];
    assert_eq!(topic.name(), "t");
    assert_eq!(topic.error(), None);
    assert_eq!(
        topic.partitions().len(),
        2,
        "--topic t:2 makes 2 partitions"
    );

    for i in 0..3 {
        let key = format!("k{i}");
        let payload = format!("v{i}");
        producer
            .send(BaseRecord::to("t").key(&key).payload(&payload))
            .expect("enqueue");
    }
    producer.flush(TIMEOUT).expect("flush");

    let unique = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &servers)
        .set(
            "group.id",
            format!("cli-broker-{}-{unique}", std::process::id()),
        )
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&["t"]).expect("subscribe");
    let mut got = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while got.len() < 3 && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => got.push(
                String::from_utf8(m.payload().unwrap_or_default().to_vec()).expect("utf-8 payload"),
            ),
            Some(Err(e)) => eprintln!("consumer error (retrying): {e}"),
            None => {}
        }
    }
    got.sort();
    assert_eq!(got, ["v0", "v1", "v2"]);
    drop(consumer);
    drop(producer);

    let status = broker.terminate();
    assert!(
        status.success(),
        "the broker exits 0 on SIGTERM, got {status}"
    );
}

#[test]
fn a_bad_topic_spec_is_refused() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_streamkit"))
        .args(["broker", "--topic", "t:zero"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn streamkit broker");
    let status = wait_bounded(&mut child);
    assert!(!status.success());
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .expect("stdout");
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("stderr");
    assert!(stdout.is_empty(), "no address printed: {stdout}");
    assert!(stderr.contains("bad partition count"), "{stderr}");
}
