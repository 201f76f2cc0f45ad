//! Landing exactly once across `kill -9`, on a real Apache Kafka broker: the program runs as a
//! child process, is killed with SIGKILL while it lands, starts again on the same state
//! directory and lake, and stops with SIGTERM. Every offset of each partition from the first
//! landed one is then in exactly one landing file, with the topic's own value: no record lost,
//! none written twice. The staging files are the landing files' twins (same names; a landing
//! file whose staging file the kill prevented is staged by the daily promotion), each report
//! once, and common holds one file per trip and per vehicle and day. Needs
//! `STREAMKIT_TEST_KAFKA` (scripts/test.sh starts a broker); fails
//! without it.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, TimestampMillisecondType};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use vehicle_trips::lake::{Lake, from_parquet, landing_rows};
use vehicle_trips::model::parse_date;
use vehicle_trips::promotion::{self, read_batches};
use vehicle_trips::topology::{PARTITIONS, POSITIONS};

fn kafka() -> String {
    std::env::var("STREAMKIT_TEST_KAFKA").expect(
        "STREAMKIT_TEST_KAFKA must name a real Apache Kafka broker (scripts/test.sh starts one; \
         by hand: bash scripts/kafka.sh start DIR)",
    )
}

fn spawn(servers: &str, dir: &std::path::Path, log: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_vehicle_trips"))
        .arg(format!("--bootstrap-servers={servers}"))
        .arg(format!("--lake={}", dir.join("lake").display()))
        .arg(format!("--state-dir={}", dir.join("state").display()))
        .args([
            "--tick-ms=20",
            "--demo-vehicles=3",
            "--land-every-secs=1",
            "--listen=127.0.0.1:0",
            "--query-listen=127.0.0.1:0",
            // The killed member's partitions move on after 6 s, not 45.
            "--kafka-option=consumer.session.timeout.ms=6000",
            "--promote-at=23:59",
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(log)).unwrap())
        .spawn()
        .expect("starting vehicle_trips")
}

/// Landed (partition, offset) → value.
fn landed(lake: &Lake) -> BTreeMap<(i32, i64), String> {
    let mut out = BTreeMap::new();
    for (path, range) in lake.landing_files(POSITIONS).unwrap() {
        for b in from_parquet(lake.get(&path).unwrap()).unwrap() {
            for r in landing_rows(&b).unwrap() {
                assert_eq!(r.partition, range.partition);
                assert!((range.first..=range.last).contains(&r.offset), "{path}");
                let again = out.insert((r.partition, r.offset), r.value.unwrap_or_default());
                assert!(
                    again.is_none(),
                    "offset {} of partition {} landed twice",
                    r.offset,
                    r.partition
                );
            }
        }
    }
    out
}

fn wait_for_files(lake: &Lake, at_least: usize, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while lake.landing_files(POSITIONS).unwrap().len() < at_least {
        assert!(child.try_wait().unwrap().is_none(), "vehicle_trips exited");
        assert!(
            Instant::now() < deadline,
            "fewer than {at_least} landing files after 90 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn landing_after_kill_9_holds_every_offset_once() {
    let servers = kafka();
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().join("lake").to_str().unwrap()).unwrap();

    let mut first = spawn(&servers, dir.path(), "run1.log");
    wait_for_files(&lake, 4, &mut first);
    // Somewhere in the next landing interval.
    let pause = u64::from(std::process::id()) % 900;
    println!(
        "killing after {pause} ms more (logs in {})",
        dir.path().display()
    );
    std::thread::sleep(Duration::from_millis(pause));
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let before = landed(&lake);

    let mut second = spawn(&servers, dir.path(), "run2.log");
    let files = lake.landing_files(POSITIONS).unwrap().len();
    wait_for_files(&lake, files + 4, &mut second);
    let status = Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = second.wait().unwrap();
    assert!(
        exit.success(),
        "{exit}: see {}",
        dir.path().join("run2.log").display()
    );

    let after = landed(&lake);
    assert!(
        before.iter().all(|(k, v)| after.get(k) == Some(v)),
        "landed files never change"
    );
    assert!(after.len() > before.len());
    // Per partition: every offset from the first landed one, with the topic's value.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &servers)
        .set("enable.auto.commit", "false")
        .set("group.id", "vehicle-trips-crash-test-reader")
        .create()
        .unwrap();
    for p in 0..PARTITIONS {
        let offsets: Vec<i64> = after
            .keys()
            .filter(|(q, _)| *q == p)
            .map(|(_, o)| *o)
            .collect();
        let (Some(&lo), Some(&hi)) = (offsets.first(), offsets.last()) else {
            panic!("nothing landed from partition {p}");
        };
        assert_eq!(
            offsets,
            (lo..=hi).collect::<Vec<_>>(),
            "partition {p} has gaps"
        );
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(POSITIONS, p, Offset::Offset(lo))
            .unwrap();
        consumer.assign(&tpl).unwrap();
        let mut next = lo;
        let deadline = Instant::now() + Duration::from_secs(30);
        while next <= hi {
            assert!(Instant::now() < deadline, "reading partition {p} back");
            let Some(m) = consumer.poll(Duration::from_millis(500)) else {
                continue;
            };
            let m = m.unwrap();
            assert_eq!(m.offset(), next);
            let value = std::str::from_utf8(m.payload().unwrap()).unwrap();
            assert_eq!(after[&(p, next)], value, "partition {p} offset {next}");
            next += 1;
        }
    }

    // Staging: twins of landing files only; after the daily promotion of each day, of every
    // landing file. Each offset and each report (trip, time) once.
    let names = |dir: &str| -> std::collections::BTreeSet<String> {
        lake.list(dir)
            .unwrap()
            .into_iter()
            .map(|f| f[dir.len()..].to_string())
            .collect()
    };
    let landing_names = names("landing/vehicle-positions");
    let staged_by_stream = names("staging/vehicle_positions");
    assert!(staged_by_stream.is_subset(&landing_names));
    let days: std::collections::BTreeSet<i64> = landing_names
        .iter()
        .map(|f| parse_date(&f["/date=".len()..][..10]).unwrap())
        .collect();
    let mut staged_by_promotion = 0;
    for &day in &days {
        staged_by_promotion += promotion::promote(&lake, day).unwrap().staged_by_promotion;
    }
    assert_eq!(
        staged_by_stream.len() + staged_by_promotion,
        landing_names.len()
    );
    assert_eq!(names("staging/vehicle_positions"), landing_names);
    let mut offsets = std::collections::BTreeSet::new();
    let mut reports = std::collections::BTreeSet::new();
    for b in read_batches(&lake, "staging/vehicle_positions").unwrap() {
        let p = b["kafka_partition"].as_primitive::<Int32Type>();
        let o = b["kafka_offset"].as_primitive::<Int64Type>();
        let trip = b["trip_id"].as_string::<i32>();
        let ts = b["ts"].as_primitive::<TimestampMillisecondType>();
        for i in 0..b.num_rows() {
            let key = (p.value(i), o.value(i));
            assert!(after.contains_key(&key), "{key:?} staged, not landed");
            assert!(offsets.insert(key), "{key:?} staged twice");
            assert!(
                reports.insert((trip.value(i).to_string(), ts.value(i))),
                "a report staged twice"
            );
        }
    }
    // Every landed report is staged: the restarted fleet numbers its trips after the first
    // run's (the counter is kept in the lake), so no report of a new trip is taken for a late
    // one of an old trip with the same id.
    let unstaged: Vec<_> = after.keys().filter(|k| !offsets.contains(k)).collect();
    assert!(
        unstaged.is_empty(),
        "{} of {} landed reports not staged, e.g. {:?}",
        unstaged.len(),
        after.len(),
        &unstaged[..unstaged.len().min(5)]
    );
    println!("{} landed, {} staged", after.len(), offsets.len());
    // Common: one row per trip file and per vehicle file.
    for table in ["common/trip_summaries", "common/vehicle_summaries"] {
        for f in lake.list(table).unwrap() {
            let rows: usize = from_parquet(lake.get(&f).unwrap())
                .unwrap()
                .iter()
                .map(|b| b.num_rows())
                .sum();
            assert_eq!(rows, 1, "{f}");
        }
    }
}
