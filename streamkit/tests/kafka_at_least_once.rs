//! At-least-once on a real Apache Kafka broker (`STREAMKIT_TEST_KAFKA`): a SIGKILL loop through
//! a repartition and a windowed count loses no record, and the duplicates at-least-once allows
//! are counted, bounded by what the kills could have replayed, and printed.
//!
//! The child is this test binary run again with the test selected and `STREAMKIT_CRASH_CHILD`
//! set; `STREAMKIT_CRASH_SEED` replays a run's kill points (the seed is printed).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::kafka;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, Producer};
use streamkit::prelude::*;
use streamkit::window::TimeWindows;

const CHILD: &str = "STREAMKIT_CRASH_CHILD";
const SIGKILL_TEST: &str = "sigkill_loop_through_a_repartition_and_a_windowed_count_loses_nothing";
/// The line a child prints once it owns its partitions.
const RUNNING: &str = "alos-child: running";
const WINDOW: Duration = Duration::from_secs(10);
const PARTITIONS: i32 = 3;
const RECORDS: usize = 3000;
const STATIONS: u64 = 6;
const KILLS: usize = 20;

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

/// Names for one run's application and topics on the shared broker.
struct Names {
    app: String,
    input: String,
    seen: String,
    counts: String,
}

impl Names {
    fn new() -> Names {
        let app = kafka::unique("alos-sigkill");
        Names {
            input: format!("{app}-in"),
            seen: format!("{app}-seen"),
            counts: format!("{app}-counts"),
            app,
        }
    }
    fn repartition(&self) -> String {
        format!("{}-by-station-repartition", self.app)
    }
}

/// Readings keyed by their id, re-keyed by station through a repartition topic; after it each
/// reading is passed on to `seen` (value: its id) and counted per station and 10-second window
/// (output key `station@window-start`). The grace is long enough that no reading is late.
fn topology(n: &Names) -> Topology {
    let b = StreamsBuilder::new();
    let by_station = b
        .stream(&n.input, Consumed::with(Serdes::string(), Serdes::string()))
        .map(|id: String, station: String| (station, id))
        .repartition(Repartitioned::with(Serdes::string(), Serdes::string()).named("by-station"));
    by_station.to(&n.seen, Produced::with(Serdes::string(), Serdes::string()));
    by_station
        .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
        .windowed_by(TimeWindows::tumbling(WINDOW).grace(Duration::from_secs(3600)))
        .count(Materialized::named("station-windows"))
        .to_stream()
        .map(|w, count| (format!("{}@{}", w.key, w.window.start), count))
        .to(&n.counts, Produced::with(Serdes::string(), Serdes::i64()));
    b.build().unwrap()
}

/// The child: runs the topology at least once until killed (or until its parent is gone).
fn sigkill_child() {
    common::init_logs();
    let env = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} not set"));
    let parent = std::os::unix::process::parent_id();
    let app = env("STREAMKIT_CRASH_APP");
    let n = Names {
        input: format!("{app}-in"),
        seen: format!("{app}-seen"),
        counts: format!("{app}-counts"),
        app,
    };
    let config = StreamsConfig::new(&n.app)
        .bootstrap_servers(kafka::bootstrap())
        .state_dir(env("STREAMKIT_CRASH_STATE"))
        .commit_interval(Duration::from_millis(200))
        // Static membership: each child rejoins as the member the killed one was, so the
        // broker hands it the partitions at once instead of waiting out the dead member's
        // session (the broker's minimum, 6 s, times 20 kills would be most of the test).
        // Restore and resume from the committed offsets are the same either way.
        .set("consumer.group.instance.id", format!("{}-child", n.app))
        .set("consumer.session.timeout.ms", "6000")
        .set("consumer.heartbeat.interval.ms", "1000");
    let app = KafkaStreams::new(topology(&n), config).unwrap();
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
        .env("STREAMKIT_CRASH_APP", &n.app)
        .env("STREAMKIT_CRASH_STATE", state)
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

/// Each partition's end offset (`None`: the topic does not exist yet).
fn ends(bootstrap: &str, topic: &str) -> Option<BTreeMap<i32, i64>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("consumer");
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let t = &md.topics()[0];
    if t.error().is_some() || t.partitions().is_empty() {
        return None;
    }
    Some(
        t.partitions()
            .iter()
            .map(|p| {
                let (_, high) = consumer
                    .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                    .expect("watermarks");
                (p.id(), high)
            })
            .collect(),
    )
}

/// The offset `group` has committed on each partition of `topic` (absent: none).
fn committed(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets")
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            rdkafka::Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// Records of a partition that a killed child may have counted without committing: from the
/// group's committed offset to the end of the partition when the child was dead.
#[derive(Debug)]
struct Replayable {
    partition: i32,
    from: i64,
    to: i64,
}

#[test]
fn sigkill_loop_through_a_repartition_and_a_windowed_count_loses_nothing() {
    if std::env::var_os(CHILD).is_some() {
        return sigkill_child();
    }
    common::init_logs();
    let bootstrap = kafka::bootstrap();
    let seed = std::env::var("STREAMKIT_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("sigkill test seed: STREAMKIT_CRASH_SEED={seed}");
    eprintln!("sigkill test seed: STREAMKIT_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let n = Names::new();
    let admin = StreamsConfig::new(&n.app).bootstrap_servers(&bootstrap);
    streamkit::runtime::ensure_topics(
        &admin,
        &[
            (n.input.as_str(), PARTITIONS),
            (n.seen.as_str(), 2),
            (n.counts.as_str(), 2),
        ],
    )
    .unwrap();
    let state = tempfile::tempdir().unwrap();

    // Readings over one minute of event time ending now (recent, so the windowed changelog's
    // retention keeps them), in random order within it.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let start = now - 60_000;
    let window = WINDOW.as_millis() as i64;
    // reading id → its window's output key
    let mut window_of: HashMap<String, String> = HashMap::new();
    let mut oracle: BTreeMap<String, i64> = BTreeMap::new();
    let mut records = Vec::with_capacity(RECORDS);
    for i in 0..RECORDS {
        let station = format!("station-{}", rng.below(STATIONS));
        let ts = start + rng.below(60_000) as i64;
        let key = format!("{station}@{}", ts - ts.rem_euclid(window));
        *oracle.entry(key.clone()).or_default() += 1;
        window_of.insert(format!("reading-{i}"), key);
        records.push((format!("reading-{i}"), station, ts));
    }
    let done = Arc::new(AtomicBool::new(false));
    let producer = {
        let (bootstrap, done, input) = (bootstrap.clone(), done.clone(), n.input.clone());
        std::thread::spawn(move || {
            let p = common::producer(&bootstrap);
            // Streams in over ~40 s, while children come and go.
            for chunk in records.chunks(RECORDS / 80) {
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
                std::thread::sleep(Duration::from_millis(500));
            }
            done.store(true, Ordering::Release);
        })
    };

    let mut child = Guard(None);
    let mut replayable: Vec<Replayable> = Vec::new();
    let started = Instant::now();
    for kill in 1..=KILLS {
        let (c, running) = spawn_child(&n, state.path());
        child.0 = Some(c);
        // A quarter of the kill points fall while the child starts (joins the group, creates
        // topics, restores); the rest while it processes and commits.
        let during_start = rng.below(4) == 0;
        let after = if during_start {
            Duration::from_millis(rng.below(2000))
        } else {
            running
                .recv_timeout(Duration::from_secs(60))
                .expect("the child did not start running within 60 s");
            Duration::from_millis(rng.below(3000))
        };
        std::thread::sleep(after);
        child.sigkill();
        // The dead child may have counted any record of the repartition topic past the
        // committed offsets; the next one counts them again.
        if let Some(ends) = ends(&bootstrap, &n.repartition()) {
            let done = committed(&bootstrap, &n.app, &n.repartition(), ends.len() as i32);
            for (&partition, &to) in &ends {
                let from = done.get(&partition).copied().unwrap_or(0);
                if from < to {
                    replayable.push(Replayable {
                        partition,
                        from,
                        to,
                    });
                }
            }
        }
        println!(
            "kill {kill}/{KILLS} {after:?} after {}, at {:?}: {} input records committed",
            if during_start { "spawning" } else { "running" },
            started.elapsed(),
            committed(&bootstrap, &n.app, &n.input, PARTITIONS)
                .values()
                .sum::<i64>()
        );
    }
    producer.join().unwrap();
    assert!(done.load(Ordering::Acquire));

    // The last child runs until every reading is committed through both steps: all input
    // offsets, then the repartition topic's end (its output flushed before each commit).
    child.0 = Some(spawn_child(&n, state.path()).0);
    let mut last = (0, None, None);
    let caught_up = common::eventually(Duration::from_secs(90), || {
        let input = committed(&bootstrap, &n.app, &n.input, PARTITIONS)
            .values()
            .sum::<i64>();
        let ends = ends(&bootstrap, &n.repartition());
        let done = ends
            .as_ref()
            .map(|e| committed(&bootstrap, &n.app, &n.repartition(), e.len() as i32));
        last = (input, ends, done);
        last.0 == RECORDS as i64 && last.1.is_some() && last.1 == last.2
    });
    child.sigkill();
    assert!(
        caught_up,
        "the last child did not catch up (seed {seed}): (input committed, repartition ends, \
         repartition committed) {last:?}"
    );
    println!("caught up at {:?}", started.elapsed());

    // No reading lost: each one passed on at least once.
    let seen = common::read_all(&bootstrap, &n.seen, Duration::from_secs(60));
    let mut times: HashMap<&str, usize> = HashMap::new();
    for r in &seen {
        *times.entry(r.value_str()).or_default() += 1;
    }
    let mut lost: Vec<&String> = window_of
        .keys()
        .filter(|id| !times.contains_key(id.as_str()))
        .collect();
    lost.sort();
    assert!(
        lost.is_empty(),
        "{} readings lost (seed {seed}), e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    let seen_duplicates: usize = times.values().map(|t| t - 1).sum();

    // What each window's count may be: every record of the repartition topic (a reading
    // written twice by the first step is two records there) counted at least once, and at
    // most once more per kill that left it between the committed offset and the end.
    let shuffled = common::read_all(&bootstrap, &n.repartition(), Duration::from_secs(60));
    let mut copies: BTreeMap<&str, i64> = BTreeMap::new();
    let mut replayed: BTreeMap<&str, i64> = BTreeMap::new();
    for r in &shuffled {
        let w = window_of
            .get(r.value_str())
            .unwrap_or_else(|| panic!("unknown reading {r:?}"))
            .as_str();
        *copies.entry(w).or_default() += 1;
        let times = replayable
            .iter()
            .filter(|k| k.partition == r.partition && (k.from..k.to).contains(&r.offset))
            .count() as i64;
        *replayed.entry(w).or_default() += times;
    }
    let shuffle_duplicates = shuffled.len() - RECORDS;
    let mut last_count: BTreeMap<String, i64> = BTreeMap::new();
    for r in common::read_all(&bootstrap, &n.counts, Duration::from_secs(60)) {
        let v = i64::from_be_bytes(r.value.as_deref().unwrap().try_into().unwrap());
        last_count.insert(r.key_str().to_string(), v);
    }
    let mut wrong = Vec::new();
    let mut over = 0;
    for (w, want) in &oracle {
        let have = last_count.get(w).copied().unwrap_or(0);
        let (copies, replayed) = (copies[w.as_str()], replayed.get(w.as_str()).copied());
        let replayed = replayed.unwrap_or(0);
        assert!(copies >= *want, "window {w}: {copies} < {want} records");
        if have < copies || have > copies + replayed {
            wrong.push((w.clone(), *want, copies, replayed, have));
        }
        over += have - want;
    }
    assert!(
        wrong.is_empty(),
        "windowed counts outside [records in the repartition topic, + replayable] (seed \
         {seed}): (window, readings, records, replayable, count) {wrong:?}"
    );
    assert_eq!(
        last_count.len(),
        oracle.len(),
        "windows counted that no reading falls in (seed {seed})"
    );
    println!(
        "{KILLS} kills, seed {seed}: no reading lost; {seen_duplicates} readings passed on \
         again, {shuffle_duplicates} written twice to the repartition topic, counts {over} \
         above the oracle in all (at most {} replayable), in {:?}",
        replayed.values().sum::<i64>(),
        started.elapsed()
    );
}
