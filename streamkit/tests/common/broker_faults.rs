//! An application run through a broker fault on a real cluster, checked against an oracle:
//! records keep arriving while `fault` breaks the cluster; afterwards every input must be in
//! the output and counted (at-least-once: a record may come out twice, never not at all).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::Consumer;
use streamkit::prelude::*;

const KEYS: u64 = 13;

/// What the run produced beyond the oracle.
#[derive(Debug)]
pub struct Outcome {
    /// Input records that came out more than once (reprocessed after the fault).
    pub duplicates: usize,
}

/// Input → re-key to a bucket → repartition topic → `seen`, and a count per bucket (a
/// RocksDB store with a changelog) → `counts`: the fault can hit the source, the internal
/// topics and the sinks.
fn topology(input: &str, seen: &str, counts: &str) -> Topology {
    let b = StreamsBuilder::new();
    let by_bucket = b
        .stream(input, Consumed::with(Serdes::string(), Serdes::string()))
        .select_key(|_, v: &String| format!("bucket-{}", v.parse::<u64>().unwrap() % KEYS))
        .repartition(Repartitioned::with(Serdes::string(), Serdes::string()).named("by-bucket"));
    by_bucket.to(seen, Produced::with(Serdes::string(), Serdes::string()));
    by_bucket
        .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
        .count(Materialized::named("per-bucket"))
        .to_stream()
        .to(counts, Produced::with(Serdes::string(), Serdes::i64()));
    b.build().unwrap()
}

/// [`super::produce`], waiting up to 5 minutes for the acknowledgements (a broker may be
/// down that long in these tests).
fn produce_patiently(bootstrap: &str, topic: &str, records: &[(String, Vec<u8>)]) {
    use rdkafka::producer::{BaseRecord, Producer};
    let p = super::producer(bootstrap);
    for (k, v) in records {
        let mut r = BaseRecord::to(topic)
            .key(k.as_bytes())
            .payload(v.as_slice());
        loop {
            match p.send(r) {
                Ok(()) => break,
                Err((_, back)) => {
                    p.poll(Duration::from_millis(10));
                    r = back;
                }
            }
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    while let Err(e) = p.flush(Duration::from_secs(10)) {
        assert!(std::time::Instant::now() < deadline, "flush: {e}");
    }
}

/// Creates `topics` with `partitions` partitions, each with `replicas` as its replica list
/// (the first is the preferred leader).
fn create_topics(bootstrap: &str, topics: &[&str], partitions: usize, replicas: &[i32]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let assignment: Vec<&[i32]> = vec![replicas; partitions];
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| {
            NewTopic::new(
                t,
                partitions as i32,
                TopicReplication::Variable(&assignment),
            )
        })
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for r in rt
        .block_on(admin.create_topics(&new, &AdminOptions::new()))
        .unwrap()
    {
        r.expect("create topic");
    }
    // The fault is aimed at the first replica: it must lead every partition.
    let consumer: rdkafka::consumer::BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    for t in topics {
        let leaders_known = super::eventually(Duration::from_secs(10), || {
            let md = consumer
                .fetch_metadata(Some(t), Duration::from_secs(5))
                .unwrap();
            md.topics()[0].partitions().len() == partitions
                && md.topics()[0]
                    .partitions()
                    .iter()
                    .all(|p| p.leader() == replicas[0])
        });
        assert!(leaders_known, "{t}: node {} does not lead", replicas[0]);
    }
}

/// Runs the application on `bootstrap` (its internal topics with `replicas.len()` replicas),
/// produces `records` records, calls `fault` once the application is well into them, and
/// checks the output against the oracle. The input and output topics have their partitions'
/// replicas on `replicas`, the first the leader.
pub fn run_through_fault(
    bootstrap: &str,
    replicas: &[i32],
    records: u64,
    fault: impl FnOnce(),
) -> Outcome {
    run_through_fault_with(bootstrap, replicas, records, |c| c, fault)
}

/// [`run_through_fault`] with the application's config adjusted by `configure`.
pub fn run_through_fault_with(
    bootstrap: &str,
    replicas: &[i32],
    records: u64,
    configure: impl FnOnce(StreamsConfig) -> StreamsConfig,
    fault: impl FnOnce(),
) -> Outcome {
    let (input, seen, counts) = ("orders", "orders-seen", "order-counts");
    create_topics(bootstrap, &[input, seen, counts], 3, replicas);
    let dir = tempfile::tempdir().unwrap();
    let app = KafkaStreams::new(
        topology(input, seen, counts),
        configure(
            StreamsConfig::new("broker-faults")
                .bootstrap_servers(bootstrap)
                .state_dir(dir.path())
                .replication_factor(replicas.len() as i32)
                .commit_interval(Duration::from_millis(200))
                .close_timeout(Duration::from_secs(60)),
        ),
    )
    .unwrap();
    app.start().unwrap();
    assert!(
        app.wait_for_state(StreamsState::Running, Duration::from_secs(60)),
        "{:?} {:?}",
        app.state(),
        app.error()
    );

    let producing = Arc::new(AtomicBool::new(true));
    let producer = {
        let (bootstrap, producing) = (bootstrap.to_string(), producing.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while i < records {
                let end = (i + 100).min(records);
                let batch: Vec<(String, Vec<u8>)> = (i..end)
                    .map(|n| (format!("order-{n}"), n.to_string().into_bytes()))
                    .collect();
                // Waits for every acknowledgement, through the fault: librdkafka retries
                // until the partitions have a leader again (or the broker is back).
                produce_patiently(&bootstrap, input, &batch);
                i = end;
                if producing.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(30));
                }
            }
        })
    };
    assert!(
        super::eventually(Duration::from_secs(60), || app
            .metrics()
            .records_processed()
            > records / 4),
        "{:?} {:?}",
        app.state(),
        app.error()
    );
    fault();
    producing.store(false, Ordering::Release);
    producer.join().unwrap();

    let expected: HashSet<u64> = (0..records).collect();
    let caught_up = super::eventually(Duration::from_secs(120), || {
        super::record_count(bootstrap, seen) >= records as i64
    });
    // Fails the test if a thread stopped on the fault rather than riding it out.
    assert_ne!(app.state(), StreamsState::Error, "{:?}", app.error());
    app.close().unwrap();
    assert!(caught_up, "output stalled after the fault");

    let out = super::read_all(bootstrap, seen, Duration::from_secs(60));
    let mut times: HashMap<u64, usize> = HashMap::new();
    for r in &out {
        let n: u64 = r.value_str().parse().unwrap();
        assert_eq!(r.key_str(), format!("bucket-{}", n % KEYS));
        *times.entry(n).or_default() += 1;
    }
    let got: HashSet<u64> = times.keys().copied().collect();
    let mut missing: Vec<u64> = expected.difference(&got).copied().collect();
    missing.sort_unstable();
    assert!(
        missing.is_empty(),
        "{} records lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    let duplicates = times.values().filter(|&&n| n > 1).count();

    // Each bucket's last count covers every record of the bucket (more only if some were
    // reprocessed).
    let mut last: HashMap<String, i64> = HashMap::new();
    for r in super::read_all(bootstrap, counts, Duration::from_secs(60)) {
        let v = i64::from_be_bytes(r.value.as_deref().unwrap().try_into().unwrap());
        last.insert(r.key_str().to_string(), v);
    }
    for k in 0..KEYS {
        let want = (0..records).filter(|n| n % KEYS == k).count() as i64;
        let have = last.get(&format!("bucket-{k}")).copied().unwrap_or(0);
        assert!(have >= want, "bucket-{k} counted {have} of {want} records");
        if duplicates == 0 {
            assert_eq!(
                have, want,
                "bucket-{k} over-counted with no duplicate output"
            );
        }
    }
    eprintln!("{duplicates} input records came out more than once");
    Outcome { duplicates }
}
