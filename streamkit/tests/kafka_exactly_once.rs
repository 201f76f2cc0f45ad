//! Exactly-once on a real Apache Kafka broker (`STREAMKIT_TEST_KAFKA`): aborted output and
//! changelog writes stay invisible to `read_committed` readers, a producer taking over the
//! thread's transactional id fences it, restarts resume from the offsets the transactions
//! committed (and from no plain commit), and a SIGKILL loop through a repartition and a
//! windowed count ends with output equal to an oracle.
//!
//! The SIGKILL test's child is this test binary run again with that test selected and
//! `STREAMKIT_EOS_CHILD` set; `STREAMKIT_EOS_SEED` replays a run (the seed is printed).

mod common;

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::kafka;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use streamkit::config::ProcessingGuarantee;
use streamkit::prelude::*;
use streamkit::window::TimeWindows;

/// A commit interval no test reaches: the work of a phase stays in one open transaction until
/// the test makes it fail.
const NEVER: Duration = Duration::from_secs(600);

/// The two isolation levels a reader can use.
#[derive(Clone, Copy, Debug)]
enum Isolation {
    Committed,
    Uncommitted,
}

/// A record read back, with where it sits.
#[derive(Debug, Clone)]
struct Rec {
    partition: i32,
    offset: i64,
    key: Vec<u8>,
    value: Vec<u8>,
}

impl Rec {
    fn key_str(&self) -> &str {
        std::str::from_utf8(&self.key).unwrap()
    }
    fn value_i64(&self) -> i64 {
        i64::from_be_bytes(self.value.as_slice().try_into().expect("an 8-byte value"))
    }
}

fn create_topics(bootstrap: &str, topics: &[(&str, i32)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(1)))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let results = rt
        .block_on(admin.create_topics(&new, &AdminOptions::new()))
        .expect("create topics");
    for r in results {
        r.unwrap_or_else(|(topic, e)| panic!("creating {topic}: {e}"));
    }
}

/// Everything `topic` holds for a reader at `isolation`: reads every partition from the
/// beginning to its end (for `read_committed`, the last stable offset, which is the high
/// watermark once no transaction is open).
fn read_all(bootstrap: &str, topic: &str, isolation: Isolation) -> Vec<Rec> {
    let level = match isolation {
        Isolation::Committed => "read_committed",
        Isolation::Uncommitted => "read_uncommitted",
    };
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", kafka::unique("eos-reader"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", level)
        .create()
        .expect("reader");
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let partitions: Vec<i32> = md.topics()[0].partitions().iter().map(|p| p.id()).collect();
    assert!(!partitions.is_empty(), "{topic} has no partitions");
    let mut tpl = TopicPartitionList::new();
    for &p in &partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let mut at_end: HashSet<i32> = HashSet::new();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while at_end.len() < partitions.len() {
        assert!(
            Instant::now() < deadline,
            "reading {topic} ({level}) did not reach the end of every partition"
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                out.push(Rec {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().unwrap_or_default().to_vec(),
                    value: m.payload().unwrap_or_default().to_vec(),
                });
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    out
}

/// The offsets `group` has committed on every partition of `topic` (absent: none). Asked
/// without `require_stable`, so offsets still pending in an open transaction do not count.
fn committed(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets")
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

fn high_watermarks(bootstrap: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("consumer");
    (0..partitions)
        .map(|p| {
            let (_, high) = consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .expect("watermarks");
            (p, high)
        })
        .collect()
}

/// Produces (key, value) records without a transaction and waits for every acknowledgement.
fn produce(bootstrap: &str, topic: &str, records: &[(String, Vec<u8>)]) {
    common::produce(bootstrap, topic, records);
}

/// `n` taps spread over ten stations, values 8-byte big-endian integers.
fn taps(range: std::ops::Range<i64>) -> Vec<(String, Vec<u8>)> {
    range
        .map(|i| (format!("station-{}", i % 10), i.to_be_bytes().to_vec()))
        .collect()
}

/// Each key's values in the order a reader saw them.
fn by_key(records: &[Rec]) -> BTreeMap<String, Vec<i64>> {
    let mut out: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for r in records {
        out.entry(r.key_str().to_string())
            .or_default()
            .push(r.value_i64());
    }
    out
}

/// Ten stations, each counted `1..=n` exactly once, in order: no update lost or repeated.
fn assert_counts_once(records: &[Rec], n: i64, what: &str) {
    let got = by_key(records);
    let want: BTreeMap<String, Vec<i64>> = (0..10)
        .map(|s| (format!("station-{s}"), (1..=n).collect()))
        .collect();
    assert_eq!(got, want, "{what}");
}

/// Counts taps per station: no repartition, the counts' changelog and the output both written
/// inside the thread's transactions.
fn count_topology(input: &str, output: &str) -> Topology {
    let b = StreamsBuilder::new();
    b.stream(input, Consumed::with(Serdes::string(), Serdes::i64()))
        .group_by_key(Grouped::with(Serdes::string(), Serdes::i64()))
        .count(Materialized::named("counts"))
        .to_stream()
        .to(output, Produced::with(Serdes::string(), Serdes::i64()));
    b.build().unwrap()
}

fn eos_config(app: &str, state: &std::path::Path, commit: Duration) -> StreamsConfig {
    StreamsConfig::new(app)
        .bootstrap_servers(kafka::bootstrap())
        .state_dir(state)
        .processing_guarantee(ProcessingGuarantee::ExactlyOnce)
        .commit_interval(commit)
}

fn store_counts(app: &KafkaStreams) -> BTreeMap<String, i64> {
    app.store::<String, i64>("counts")
        .and_then(|s| s.all())
        .map(|all| all.into_iter().collect())
        .unwrap_or_default()
}

/// Names for one test's application and topics on the shared broker.
struct Names {
    app: String,
    input: String,
    output: String,
}

impl Names {
    fn new(prefix: &str) -> Names {
        let app = kafka::unique(prefix);
        Names {
            input: format!("{app}-in"),
            output: format!("{app}-out"),
            app,
        }
    }
    fn changelog(&self) -> String {
        format!("{}-counts-changelog", self.app)
    }
}

#[test]
fn aborted_output_and_changelog_writes_are_invisible_to_read_committed_readers() {
    common::init_logs();
    let bootstrap = kafka::bootstrap();
    let n = Names::new("eos-abort");
    create_topics(&bootstrap, &[(&n.input, 2), (&n.output, 2)]);
    let state = tempfile::tempdir().unwrap();
    let topology = || count_topology(&n.input, &n.output);

    // Committed ground: ten taps per station, committed and closed cleanly.
    let first = KafkaStreams::new(
        topology(),
        eos_config(&n.app, state.path(), Duration::from_millis(100)),
    )
    .unwrap();
    first.start().unwrap();
    produce(&bootstrap, &n.input, &taps(0..100));
    assert!(
        common::eventually(Duration::from_secs(60), || read_all(
            &bootstrap,
            &n.output,
            Isolation::Committed
        )
        .len()
            == 100),
        "the first instance's output was not committed: {:?}",
        first.error()
    );
    first.close().unwrap();

    // A second instance whose transaction stays open: ten more taps per station are counted
    // and their output and changelog writes reach the broker, uncommitted.
    let second = KafkaStreams::new(topology(), eos_config(&n.app, state.path(), NEVER)).unwrap();
    second.start().unwrap();
    produce(&bootstrap, &n.input, &taps(100..200));
    assert!(
        common::eventually(Duration::from_secs(60), || {
            read_all(&bootstrap, &n.output, Isolation::Uncommitted).len() == 200
                && read_all(&bootstrap, &n.changelog(), Isolation::Uncommitted).len() == 200
        }),
        "the open transaction's writes did not reach the broker: {:?}",
        second.error()
    );
    // A record the source cannot decode fails the thread mid-transaction: it aborts.
    produce(
        &bootstrap,
        &n.input,
        &[("station-0".into(), b"bad".to_vec())],
    );
    assert!(
        second.wait_for_state(StreamsState::Error, Duration::from_secs(60)),
        "{:?}",
        second.state()
    );
    let err = second.close().unwrap_err().to_string();
    assert!(err.contains(&n.input), "names the failed record: {err}");

    // The aborted writes are on the broker (read_uncommitted) but never committed.
    let uncommitted = read_all(&bootstrap, &n.output, Isolation::Uncommitted);
    assert_eq!(uncommitted.len(), 200, "the aborted output is in the log");
    assert_counts_once(
        &read_all(&bootstrap, &n.output, Isolation::Committed),
        10,
        "read_committed output after the abort: the first instance's counts only",
    );
    assert_counts_once(
        &read_all(&bootstrap, &n.changelog(), Isolation::Committed),
        10,
        "read_committed changelog after the abort: the first instance's counts only",
    );
    assert_eq!(
        committed(&bootstrap, &n.app, &n.input, 2)
            .values()
            .sum::<i64>(),
        100,
        "the aborted transaction's offsets are not committed"
    );

    // A third instance skips the bad record. Its stores come from the committed changelog
    // only (counts resume at 10, not 20) and it reads the input from the committed offsets:
    // every station is counted 1..=20 exactly once in the committed output.
    let third = KafkaStreams::new(
        topology(),
        eos_config(&n.app, state.path(), Duration::from_millis(100))
            .default_deserialization_handler(DeserializationHandler::LogAndContinue),
    )
    .unwrap();
    third.start().unwrap();
    assert!(
        common::eventually(Duration::from_secs(60), || {
            committed(&bootstrap, &n.app, &n.input, 2)
                .values()
                .sum::<i64>()
                == 201
        }),
        "{:?}",
        third.error()
    );
    assert_counts_once(
        &read_all(&bootstrap, &n.output, Isolation::Committed),
        20,
        "read_committed output after the restart",
    );
    let counts = store_counts(&third);
    assert!(
        counts.len() == 10 && counts.values().all(|c| *c == 20),
        "stores rebuilt from committed changelog records only: {counts:?}"
    );
    third.close().unwrap();
}

/// The transactional ids the broker knows that start with `prefix` (Kafka's
/// `kafka-transactions.sh list`, run from the broker's jars).
fn transactional_ids(bootstrap: &str, prefix: &str) -> Vec<String> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/kafka.sh");
    let cp = Command::new("bash")
        .arg(&script)
        .arg("classpath")
        .output()
        .expect("scripts/kafka.sh classpath");
    assert!(
        cp.status.success(),
        "{}",
        String::from_utf8_lossy(&cp.stderr)
    );
    let java = std::env::var("JAVA").unwrap_or_else(|_| "java".into());
    let out = Command::new(java)
        .args(["-Xmx256m", "-cp"])
        .arg(String::from_utf8(cp.stdout).unwrap().trim())
        .args([
            "org.apache.kafka.tools.TransactionsCommand",
            "--bootstrap-server",
            bootstrap,
            "list",
        ])
        .output()
        .expect("kafka-transactions list");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|id| id.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_producer_taking_over_the_transactional_id_fences_the_thread_and_its_writes() {
    common::init_logs();
    let bootstrap = kafka::bootstrap();
    let n = Names::new("eos-fence");
    create_topics(&bootstrap, &[(&n.input, 2), (&n.output, 2)]);
    let state = tempfile::tempdir().unwrap();
    let app = KafkaStreams::new(
        count_topology(&n.input, &n.output),
        eos_config(&n.app, state.path(), NEVER),
    )
    .unwrap();
    app.start().unwrap();
    produce(&bootstrap, &n.input, &taps(0..20));
    // The thread's writes are on the broker, in a transaction that is still open.
    assert!(
        common::eventually(Duration::from_secs(60), || {
            read_all(&bootstrap, &n.output, Isolation::Uncommitted).len() == 20
        }),
        "{:?}",
        app.error()
    );
    let ids = transactional_ids(&bootstrap, &format!("{}-", n.app));
    assert_eq!(
        ids.len(),
        1,
        "one stream thread, one transactional id: {ids:?}"
    );
    let id = &ids[0];

    // A new producer with the same id: initializing bumps the epoch, which aborts the open
    // transaction and fences the older producer. It commits one record of its own.
    let successor: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("transactional.id", id)
        .create()
        .unwrap();
    let timeout = Duration::from_secs(30);
    successor.init_transactions(timeout).unwrap();
    successor.begin_transaction().unwrap();
    successor
        .send(
            BaseRecord::to(&n.output)
                .key("successor")
                .payload(&0i64.to_be_bytes()[..]),
        )
        .unwrap();
    successor.commit_transaction(timeout).unwrap();

    // The zombie goes on: its next writes are refused and the thread stops as fenced.
    produce(&bootstrap, &n.input, &taps(20..40));
    assert!(
        app.wait_for_state(StreamsState::Error, Duration::from_secs(60)),
        "{:?}",
        app.state()
    );
    let err = app.close().unwrap_err().to_string();
    assert!(err.contains("fenced"), "{err}");
    assert!(
        err.contains(id.as_str()),
        "names the transactional id: {err}"
    );

    let committed_out = read_all(&bootstrap, &n.output, Isolation::Committed);
    let keys: Vec<&str> = committed_out.iter().map(Rec::key_str).collect();
    assert_eq!(
        keys,
        ["successor"],
        "none of the fenced thread's writes is committed"
    );
    assert!(
        read_all(&bootstrap, &n.output, Isolation::Uncommitted).len() > 20,
        "the fenced thread's writes are in the log, aborted"
    );
    assert!(
        committed(&bootstrap, &n.app, &n.input, 2).is_empty(),
        "the fenced thread committed no offsets"
    );
}

/// The offset commits recorded for `group` on `topic`, per partition in log order, read from
/// `__consumer_offsets` (records committed there, transactional or plain).
fn offset_commit_log(bootstrap: &str, group: &str, topic: &str) -> BTreeMap<i32, Vec<i64>> {
    fn string(b: &[u8], at: &mut usize) -> Option<String> {
        let len = i16::from_be_bytes(b.get(*at..*at + 2)?.try_into().ok()?);
        let len = usize::try_from(len).ok()?;
        let s = std::str::from_utf8(b.get(*at + 2..*at + 2 + len)?).ok()?;
        *at += 2 + len;
        Some(s.to_string())
    }
    let mut out: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for r in read_all(bootstrap, "__consumer_offsets", Isolation::Committed) {
        // Offset-commit keys are versions 0 and 1: group, topic, partition. The value starts
        // with its version and the offset; an empty value is a deletion.
        let k = &r.key;
        if k.len() < 2 || !matches!(i16::from_be_bytes([k[0], k[1]]), 0 | 1) {
            continue;
        }
        let mut at = 2;
        let (Some(g), Some(t)) = (string(k, &mut at), string(k, &mut at)) else {
            continue;
        };
        if g != group || t != topic || r.value.len() < 10 {
            continue;
        }
        let partition = i32::from_be_bytes(k[at..at + 4].try_into().unwrap());
        let offset = i64::from_be_bytes(r.value[2..10].try_into().unwrap());
        out.entry(partition).or_default().push(offset);
    }
    out
}

/// Each partition's commits move forward: the runtime sends only offsets that moved into a
/// transaction, so the same offset written twice would be a second, plain commit of it.
fn assert_each_commit_moves(log: &BTreeMap<i32, Vec<i64>>, partitions: i32) {
    assert_eq!(
        log.len(),
        partitions as usize,
        "every partition committed: {log:?}"
    );
    for (p, offsets) in log {
        assert!(
            offsets.windows(2).all(|w| w[0] < w[1]),
            "partition {p}: an offset committed twice (a plain commit after the \
             transaction?): {offsets:?}"
        );
    }
}

#[test]
fn a_restart_resumes_from_the_offsets_the_transactions_committed() {
    common::init_logs();
    let bootstrap = kafka::bootstrap();
    let n = Names::new("eos-resume");
    create_topics(&bootstrap, &[(&n.input, 2), (&n.output, 2)]);
    let state = tempfile::tempdir().unwrap();
    let topology = || count_topology(&n.input, &n.output);
    let config = || eos_config(&n.app, state.path(), Duration::from_millis(100));

    let first = KafkaStreams::new(topology(), config()).unwrap();
    first.start().unwrap();
    produce(&bootstrap, &n.input, &taps(0..100));
    assert!(
        common::eventually(Duration::from_secs(60), || read_all(
            &bootstrap,
            &n.output,
            Isolation::Committed
        )
        .len()
            == 100),
        "{:?}",
        first.error()
    );
    first.close().unwrap();
    // After a clean stop the group's offsets are the input's ends, and every commit that put
    // them there was a transactional one.
    assert_eq!(
        committed(&bootstrap, &n.app, &n.input, 2),
        high_watermarks(&bootstrap, &n.input, 2)
    );
    let log = offset_commit_log(&bootstrap, &n.app, &n.input);
    assert_each_commit_moves(&log, 2);

    // The next instance processes exactly the records after those offsets.
    let second = KafkaStreams::new(topology(), config()).unwrap();
    second.start().unwrap();
    produce(&bootstrap, &n.input, &taps(100..150));
    assert!(
        common::eventually(Duration::from_secs(60), || {
            committed(&bootstrap, &n.app, &n.input, 2)
                .values()
                .sum::<i64>()
                == 150
        }),
        "{:?}",
        second.error()
    );
    assert_eq!(
        second.metrics().records_processed(),
        50,
        "nothing processed twice"
    );
    second.close().unwrap();
    assert_counts_once(
        &read_all(&bootstrap, &n.output, Isolation::Committed),
        15,
        "read_committed output across the restart",
    );
    assert_each_commit_moves(&offset_commit_log(&bootstrap, &n.app, &n.input), 2);
}

/// xorshift64*: a small seeded generator, so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const CHILD: &str = "STREAMKIT_EOS_CHILD";
const SIGKILL_TEST: &str =
    "sigkill_loop_through_a_repartition_and_a_windowed_count_matches_the_oracle";
/// The line a child prints once it owns its partitions.
const RUNNING: &str = "eos-child: running";
const WINDOW: Duration = Duration::from_secs(10);

/// Readings keyed by their id, grouped by station (a repartition), counted per station and
/// 10-second window; the output key is `station@window-start`. The grace is long enough that
/// no reading is late, so every reading updates one window exactly once.
fn windowed_topology(input: &str, output: &str) -> Topology {
    let b = StreamsBuilder::new();
    b.stream(input, Consumed::with(Serdes::string(), Serdes::string()))
        .group_by(
            |_id, station: &String| station.clone(),
            Grouped::with(Serdes::string(), Serdes::string()).named("by-station"),
        )
        .windowed_by(TimeWindows::tumbling(WINDOW).grace(Duration::from_secs(3600)))
        .count(Materialized::named("station-windows"))
        .to_stream()
        .map(|w, count| (format!("{}@{}", w.key, w.window.start), count))
        .to(output, Produced::with(Serdes::string(), Serdes::i64()));
    b.build().unwrap()
}

/// The child: runs the windowed topology until killed (or until its parent is gone).
fn sigkill_child() {
    common::init_logs();
    let env = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} not set"));
    let parent = std::os::unix::process::parent_id();
    let config = eos_config(
        &env("STREAMKIT_EOS_APP"),
        std::path::Path::new(&env("STREAMKIT_EOS_STATE")),
        Duration::from_millis(100),
    )
    // A killed member stays in the group until its session times out: the broker's minimum
    // (6 s) lets the next child take the partitions soon.
    .set("consumer.session.timeout.ms", "6000")
    .set("consumer.heartbeat.interval.ms", "1000");
    let app = KafkaStreams::new(
        windowed_topology(&env("STREAMKIT_EOS_INPUT"), &env("STREAMKIT_EOS_OUTPUT")),
        config,
    )
    .unwrap();
    let announced = AtomicBool::new(false);
    app.set_state_listener(move |_, new| {
        if new == StreamsState::Running && !announced.swap(true, Ordering::AcqRel) {
            println!("{RUNNING}");
        }
    });
    app.start().unwrap();
    while std::os::unix::process::parent_id() == parent {
        assert!(app.error().is_none(), "{:?}", app.error());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts a child; the receiver gets a message once the child is running.
fn spawn_child(n: &Names, state: &std::path::Path) -> (Child, std::sync::mpsc::Receiver<()>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([SIGKILL_TEST, "--exact", "--nocapture"])
        .env(CHILD, "1")
        .env("STREAMKIT_EOS_APP", &n.app)
        .env("STREAMKIT_EOS_INPUT", &n.input)
        .env("STREAMKIT_EOS_OUTPUT", &n.output)
        .env("STREAMKIT_EOS_STATE", state)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "streamkit=warn".into()),
        )
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawning the child process");
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains(RUNNING) {
                let _ = tx.send(());
            }
            println!("  child: {line}");
        }
    });
    (child, rx)
}

/// Kills the child on drop, so a failing assertion leaves no process behind.
struct Guard(Option<Child>);

impl Guard {
    fn sigkill(&mut self) {
        if let Some(mut c) = self.0.take() {
            c.kill().unwrap(); // SIGKILL on Unix
            c.wait().unwrap();
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.sigkill();
    }
}

/// The application's repartition topic (named after the grouping).
fn repartition_topic(bootstrap: &str, app: &str) -> Option<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("consumer");
    let md = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata");
    md.topics()
        .iter()
        .map(|t| t.name().to_string())
        .find(|t| t.starts_with(app) && t.ends_with("-repartition"))
}

/// What the transactions committed agrees with itself: the input offsets the group committed
/// cover exactly the repartition records committed with them, and the repartition offsets
/// cover exactly the records behind the committed output (every record makes one record in
/// each step). Returns a description of the first disagreement.
fn committed_offsets_match_committed_records(
    bootstrap: &str,
    n: &Names,
    repartition: &str,
) -> Result<(), String> {
    let input_done: i64 = committed(bootstrap, &n.app, &n.input, PARTITIONS)
        .values()
        .sum();
    let shuffled = read_all(bootstrap, repartition, Isolation::Committed);
    if input_done != shuffled.len() as i64 {
        return Err(format!(
            "input offsets committed {input_done}, repartition records committed {}",
            shuffled.len()
        ));
    }
    let rep_committed = committed(bootstrap, &n.app, repartition, PARTITIONS);
    let counted = shuffled
        .iter()
        .filter(|r| {
            rep_committed
                .get(&r.partition)
                .is_some_and(|&o| r.offset < o)
        })
        .count();
    let output = read_all(bootstrap, &n.output, Isolation::Committed).len();
    if counted != output {
        return Err(format!(
            "repartition offsets committed cover {counted} records, output committed {output}"
        ));
    }
    Ok(())
}

const PARTITIONS: i32 = 3;
const RECORDS: usize = 3000;
const STATIONS: u64 = 6;
const KILLS: usize = 4;

#[test]
fn sigkill_loop_through_a_repartition_and_a_windowed_count_matches_the_oracle() {
    if std::env::var_os(CHILD).is_some() {
        return sigkill_child();
    }
    common::init_logs();
    let bootstrap = kafka::bootstrap();
    let seed = std::env::var("STREAMKIT_EOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("sigkill test seed: STREAMKIT_EOS_SEED={seed}");
    eprintln!("sigkill test seed: STREAMKIT_EOS_SEED={seed}");
    let mut rng = Rng(seed);
    let n = Names::new("eos-sigkill");
    create_topics(&bootstrap, &[(&n.input, PARTITIONS), (&n.output, 2)]);
    let state = tempfile::tempdir().unwrap();

    // Readings over one minute of event time ending now (recent, so the windowed
    // changelog's retention keeps them), in random order within it.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let start = now - 60_000;
    let window = WINDOW.as_millis() as i64;
    let mut oracle: BTreeMap<String, i64> = BTreeMap::new();
    let mut records = Vec::with_capacity(RECORDS);
    for i in 0..RECORDS {
        let station = format!("station-{}", rng.below(STATIONS));
        let ts = start + rng.below(60_000) as i64;
        *oracle
            .entry(format!("{station}@{}", ts - ts.rem_euclid(window)))
            .or_default() += 1;
        records.push((format!("reading-{i}"), station, ts));
    }
    let done = Arc::new(AtomicBool::new(false));
    let producer = {
        let (bootstrap, done, input) = (bootstrap.clone(), done.clone(), n.input.clone());
        std::thread::spawn(move || {
            let p = common::producer(&bootstrap);
            // Streams in over ~25 s, while children come and go.
            for chunk in records.chunks(RECORDS / 60) {
                for (id, station, ts) in chunk {
                    p.send(
                        BaseRecord::to(&input)
                            .key(id)
                            .payload(station)
                            .timestamp(*ts),
                    )
                    .expect("queueing a reading");
                }
                p.flush(Duration::from_secs(30)).expect("flush");
                std::thread::sleep(Duration::from_millis(400));
            }
            done.store(true, Ordering::Release);
        })
    };

    let mut child = Guard(None);
    let started = Instant::now();
    for kill in 1..=KILLS {
        let (c, running) = spawn_child(&n, state.path());
        child.0 = Some(c);
        running
            .recv_timeout(Duration::from_secs(60))
            .expect("the child did not start running within 60 s");
        // Killed at a random point while it restores, processes and commits.
        let after = Duration::from_millis(rng.below(3000));
        std::thread::sleep(after);
        child.sigkill();
        let repartition = repartition_topic(&bootstrap, &n.app).expect("repartition topic");
        // A transaction the child was committing when killed completes on the broker: wait
        // for that, then what is committed must agree with itself.
        let mut last = Ok(());
        assert!(
            common::eventually(Duration::from_secs(20), || {
                last = committed_offsets_match_committed_records(&bootstrap, &n, &repartition);
                last.is_ok()
            }),
            "after kill {kill} (seed {seed}): {last:?}"
        );
        println!(
            "kill {kill}/{KILLS} {after:?} after running, at {:?}: {} input records committed",
            started.elapsed(),
            committed(&bootstrap, &n.app, &n.input, PARTITIONS)
                .values()
                .sum::<i64>()
        );
    }
    producer.join().unwrap();
    assert!(done.load(Ordering::Acquire));

    // The last child runs until every reading is committed through both steps.
    child.0 = Some(spawn_child(&n, state.path()).0);
    let mut last = (0, 0);
    let caught_up = common::eventually(Duration::from_secs(90), || {
        last = (
            committed(&bootstrap, &n.app, &n.input, PARTITIONS)
                .values()
                .sum::<i64>(),
            read_all(&bootstrap, &n.output, Isolation::Committed).len(),
        );
        last == (RECORDS as i64, RECORDS)
    });
    child.sigkill();
    assert!(
        caught_up,
        "the last child did not catch up (seed {seed}): (input committed, output records) \
         {last:?}"
    );
    println!("caught up at {:?}", started.elapsed());

    // Each window's count went 1, 2, … up to the oracle's, each value once: nothing counted
    // twice, nothing lost, no aborted update visible.
    let output = by_key(&read_all(&bootstrap, &n.output, Isolation::Committed));
    let want: BTreeMap<String, Vec<i64>> = oracle
        .iter()
        .map(|(k, n)| (k.clone(), (1..=*n).collect()))
        .collect();
    let wrong: Vec<_> = want
        .iter()
        .filter(|(k, v)| output.get(*k) != Some(*v))
        .map(|(k, v)| (k, v.len(), output.get(k)))
        .collect();
    assert!(
        wrong.is_empty() && output.len() == want.len(),
        "output differs from the oracle (seed {seed}): (window, expected count, updates seen) \
         {wrong:?}"
    );
}
