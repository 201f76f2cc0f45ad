//! Landing exactly once across `kill -9`, on a real Apache Kafka broker: the program runs as a
//! child process, is killed with SIGKILL while it lands, starts again on the same state
//! directory and lake, and stops with SIGTERM. Every offset of each partition from the first
//! landed one is then in exactly one landing file, with the topic's own value: no record lost,
//! none written twice. Needs `STREAMKIT_TEST_KAFKA` (scripts/test.sh starts a broker); fails
//! without it.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use vehicle_trips::lake::{Lake, from_parquet, landing_rows};
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
}
