//! Two instances of one application on a real broker, which accepts the offset commit a stream
//! thread makes while its partitions are revoked (the embedded broker refuses commits
//! mid-rebalance, so `runtime_rebalance.rs` can only show at-least-once there): with one
//! instance joining and then leaving mid-stream, every input is passed on once and counted
//! once — no loss, and no duplicate from reprocessing.

mod common;
#[path = "common/http.rs"]
mod http;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::kafka;
use streamkit::prelude::*;

const RECORDS: u64 = 20_000;
/// Many keys, so that a task's record cache holds thousands of counts when its partitions
/// are revoked: they must be in the changelog before the offsets are committed and the next
/// owner restores from it.
const KEYS: u64 = 5_000;

fn topology(input: &str, seen: &str, counts: &str) -> Topology {
    let b = StreamsBuilder::new();
    let s = b.stream(input, Consumed::with(Serdes::string(), Serdes::string()));
    // A record processed twice shows here as a repeated value.
    s.to(seen, Produced::with(Serdes::string(), Serdes::string()));
    // And here as a count above the number of records of its key; a count update lost in a
    // hand-over (a task's cached state missing from its changelog) as one below.
    s.group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
        .count(Materialized::named("per-customer"))
        .to_stream()
        .to(counts, Produced::with(Serdes::string(), Serdes::i64()));
    b.build().unwrap()
}

fn config(app_id: &str, bootstrap: &str, dir: &std::path::Path) -> StreamsConfig {
    StreamsConfig::new(app_id)
        .bootstrap_servers(bootstrap)
        .state_dir(dir)
        // Longer than the test: offsets are committed only when partitions are revoked and
        // when an instance closes, so every revocation commit must be accepted for the
        // output to be exact.
        .commit_interval(Duration::from_secs(300))
        .set("consumer.heartbeat.interval.ms", "200")
        .set("consumer.session.timeout.ms", "10000")
        .close_timeout(Duration::from_secs(60))
}

#[test]
fn an_instance_joining_and_leaving_mid_stream_leaves_every_record_counted_once() {
    common::init_logs();
    let bootstrap = kafka::bootstrap();
    let app_id = kafka::unique("rebalance");
    let (input, seen, counts) = (
        kafka::unique("orders"),
        kafka::unique("orders-seen"),
        kafka::unique("order-counts"),
    );
    let admin_config = StreamsConfig::new(&app_id).bootstrap_servers(&bootstrap);
    streamkit::runtime::ensure_topics(
        &admin_config,
        &[
            (input.as_str(), 4),
            (seen.as_str(), 4),
            (counts.as_str(), 4),
        ],
    )
    .unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());

    // Two stream threads in a: three group members once b joins.
    let a = KafkaStreams::new(
        topology(&input, &seen, &counts),
        config(&app_id, &bootstrap, dir_a.path()).num_stream_threads(2),
    )
    .unwrap();
    a.start().unwrap();
    assert!(
        a.wait_for_state(StreamsState::Running, Duration::from_secs(60)),
        "a: {:?} {:?}",
        a.state(),
        a.error()
    );

    // Records keep coming while the group changes.
    let producing = Arc::new(AtomicBool::new(true));
    let producer = {
        let (bootstrap, input, producing) = (bootstrap.clone(), input.clone(), producing.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while i < RECORDS {
                let end = (i + 250).min(RECORDS);
                let batch: Vec<(String, Vec<u8>)> = (i..end)
                    .map(|n| (format!("customer-{}", n % KEYS), n.to_string().into_bytes()))
                    .collect();
                common::produce(&bootstrap, &input, &batch);
                i = end;
                // Slow enough that the whole run spans both rebalances, unless the test
                // already got there (then finish quickly).
                if producing.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        })
    };

    assert!(common::eventually(Duration::from_secs(30), || a
        .metrics()
        .records_processed()
        > 200));
    let b = KafkaStreams::new(
        topology(&input, &seen, &counts),
        config(&app_id, &bootstrap, dir_b.path()),
    )
    .unwrap();
    b.start().unwrap();
    // b gets partitions (a revoked its own first, committing what it had processed) and
    // works on them.
    let before = b.metrics().records_processed();
    assert!(
        common::eventually(Duration::from_secs(60), || b.metrics().records_processed()
            > before + 200),
        "b never processed: a={:?} {:?} b={:?} {:?}",
        a.state(),
        a.error(),
        b.state(),
        b.error()
    );
    // b leaves while records still arrive; its partitions move back to a.
    b.close().unwrap();
    producing.store(false, Ordering::Release);
    producer.join().unwrap();

    // Every record passed on; then a closes, which flushes the counts it still caches.
    let seen_all = common::eventually(Duration::from_secs(60), || {
        common::record_count(&bootstrap, &seen) >= RECORDS as i64
    });
    a.close().unwrap();
    assert!(
        seen_all,
        "only {} records passed on",
        common::record_count(&bootstrap, &seen)
    );

    let out = common::read_all(&bootstrap, &seen, Duration::from_secs(60));
    let mut values: Vec<u64> = out.iter().map(|r| r.value_str().parse().unwrap()).collect();
    values.sort_unstable();
    let distinct: HashSet<u64> = values.iter().copied().collect();
    let duplicated: Vec<u64> = values
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    assert_eq!(
        distinct,
        (0..RECORDS).collect::<HashSet<_>>(),
        "a record was lost"
    );
    assert!(
        duplicated.is_empty(),
        "{} records were processed twice, e.g. {:?}",
        duplicated.len(),
        &duplicated[..duplicated.len().min(10)]
    );

    // The last count of each key is its number of records: each counted once.
    let updates = common::read_all(&bootstrap, &counts, Duration::from_secs(60));
    let mut last: HashMap<String, i64> = HashMap::new();
    for r in &updates {
        let v = i64::from_be_bytes(r.value.as_deref().unwrap().try_into().unwrap());
        last.insert(r.key_str().to_string(), v);
    }
    let want = (RECORDS / KEYS) as i64;
    let wrong: Vec<(String, Option<i64>)> = (0..KEYS)
        .map(|k| format!("customer-{k}"))
        .filter(|k| last.get(k) != Some(&want))
        .map(|k| {
            let have = last.get(&k).copied();
            (k, have)
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {KEYS} keys not counted {want} times, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );
}

/// At least once, a revocation commits the input offsets only after the revoked tasks'
/// output is flushed **and every delivery checked**: a record the broker refuses (larger than
/// the output topic's `max.message.bytes`) still in the producer's queue when the partitions
/// are revoked must not have its input offset committed, or it would be lost.
#[test]
fn a_revocation_does_not_commit_offsets_past_output_the_broker_refused() {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;

    common::init_logs();
    let bootstrap = kafka::bootstrap();
    let app_id = kafka::unique("revoke-check");
    let (input, output) = (kafka::unique("revoke-in"), kafka::unique("revoke-out"));
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
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
                ],
                &AdminOptions::new(),
            ),
        )
        .unwrap();
    for r in created {
        r.unwrap();
    }
    let topology = || {
        let b = StreamsBuilder::new();
        b.stream(&input, Consumed::with(Serdes::string(), Serdes::string()))
            .to(&output, Produced::with(Serdes::string(), Serdes::string()));
        b.build().unwrap()
    };
    let config = || {
        StreamsConfig::new(&app_id)
            .bootstrap_servers(&bootstrap)
            // No periodic commit during the test: only the revocation commits.
            .commit_interval(Duration::from_secs(300))
            .set("consumer.heartbeat.interval.ms", "200")
            .set("consumer.session.timeout.ms", "10000")
            // Output waits in the producer's queue, so the refused record is still in flight
            // when the partitions are revoked.
            .set("producer.linger.ms", "8000")
            .close_timeout(Duration::from_secs(30))
    };
    let a = KafkaStreams::new(topology(), config()).unwrap();
    a.start().unwrap();
    assert!(a.wait_for_state(StreamsState::Running, Duration::from_secs(60)));
    let mut records: Vec<(String, Vec<u8>)> = (0..3)
        .map(|i| (format!("k{i}"), b"small".to_vec()))
        .collect();
    records.push(("big".to_string(), vec![b'x'; 10_000]));
    common::produce(&bootstrap, &input, &records);
    // Processed (its offset stored), its output lingering in the queue.
    assert!(common::eventually(Duration::from_secs(30), || a
        .metrics()
        .records_processed()
        >= 4));

    // A second member: the group takes a's partition away while the output is in flight.
    let b = KafkaStreams::new(topology(), config()).unwrap();
    b.start().unwrap();
    assert!(
        a.wait_for_state(StreamsState::Error, Duration::from_secs(60)),
        "a refused delivery stops a: {:?}",
        a.state()
    );
    let err = a.close().unwrap_err().to_string();
    assert!(err.to_lowercase().contains("too large"), "{err}");
    let committed = common::committed_total(&bootstrap, &app_id, &input, 1);
    assert!(
        committed < 4,
        "offset {committed} committed past the record whose output the broker refused"
    );
    let _ = b.close();
}

/// Orders keyed by id, re-keyed by customer through a repartition topic, passed on to `seen`
/// (value: the order's number) and counted per customer: state on both sides of a shuffle.
fn shuffled_topology(input: &str, seen: &str, counts: &str) -> Topology {
    let b = StreamsBuilder::new();
    let by_customer = b
        .stream(input, Consumed::with(Serdes::string(), Serdes::string()))
        .map(|order: String, customer: String| (customer, order))
        .repartition(Repartitioned::with(Serdes::string(), Serdes::string()).named("by-customer"));
    by_customer.to(seen, Produced::with(Serdes::string(), Serdes::string()));
    by_customer
        .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
        .count(Materialized::named("per-customer"))
        .to_stream()
        .to(counts, Produced::with(Serdes::string(), Serdes::i64()));
    b.build().unwrap()
}

/// Waits until `app` has processed `more` records beyond `before`, naming every instance's
/// state if it does not.
fn wait_processed(app: &KafkaStreams, before: u64, more: u64, all: &[(&str, &KafkaStreams)]) {
    assert!(
        common::eventually(Duration::from_secs(60), || app
            .metrics()
            .records_processed()
            >= before + more),
        "no progress: {:?}",
        all.iter()
            .map(|(n, a)| (*n, a.state(), a.error(), a.metrics().records_processed()))
            .collect::<Vec<_>>()
    );
}

/// Tasks of the shuffled topology: two sub-topologies of six partitions.
const TASKS: f64 = 12.0;

/// Waits until `apps` own every task between them (each has taken the assignment that
/// followed the last change of the group).
fn wait_owned(apps: &[&KafkaStreams], all: &[(&str, &KafkaStreams)]) {
    let owned = || -> f64 {
        apps.iter()
            .map(|a| http::metric_sum(&a.metrics().encode_text(), "streamkit_active_tasks", &[]))
            .sum()
    };
    assert!(
        common::eventually(Duration::from_secs(60), || owned() == TASKS
            && apps.iter().all(|a| a.state() == StreamsState::Running)),
        "{} of {TASKS} tasks owned: {:?}",
        owned(),
        all.iter()
            .map(|(n, a)| (*n, a.state(), a.error()))
            .collect::<Vec<_>>()
    );
}

/// The group grows from one instance to two and three and shrinks back to one while orders
/// keep arriving, every task moving with its state (restored from its changelog by the next
/// owner) on both sides of a repartition: every order is passed on once and each customer's
/// final count is exactly its number of orders.
#[test]
fn scaling_from_one_to_two_to_three_and_back_to_one_instance_keeps_counts_exact() {
    common::init_logs();
    let bootstrap = kafka::bootstrap();
    let app_id = kafka::unique("scale");
    let (input, seen, counts) = (
        kafka::unique("scale-orders"),
        kafka::unique("scale-seen"),
        kafka::unique("scale-counts"),
    );
    let admin_config = StreamsConfig::new(&app_id).bootstrap_servers(&bootstrap);
    streamkit::runtime::ensure_topics(
        &admin_config,
        &[
            (input.as_str(), 6),
            (seen.as_str(), 6),
            (counts.as_str(), 6),
        ],
    )
    .unwrap();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let instance = |i: usize| {
        let app = KafkaStreams::new(
            shuffled_topology(&input, &seen, &counts),
            config(&app_id, &bootstrap, dirs[i].path()),
        )
        .unwrap();
        app.start().unwrap();
        app
    };

    let a = instance(0);
    assert!(
        a.wait_for_state(StreamsState::Running, Duration::from_secs(60)),
        "a: {:?} {:?}",
        a.state(),
        a.error()
    );
    // Orders keep coming until every change of the group is done.
    let producing = Arc::new(AtomicBool::new(true));
    let producer = {
        let (bootstrap, input, producing) = (bootstrap.clone(), input.clone(), producing.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while producing.load(Ordering::Acquire) {
                let batch: Vec<(String, Vec<u8>)> = (n..n + 200)
                    .map(|i| (i.to_string(), format!("customer-{}", i % KEYS).into_bytes()))
                    .collect();
                common::produce(&bootstrap, &input, &batch);
                n += 200;
                std::thread::sleep(Duration::from_millis(100));
            }
            n
        })
    };

    wait_processed(&a, 0, 1000, &[("a", &a)]);
    // 1 → 2: b gets its share of the tasks (a revoked them first, committing what it had
    // processed and flushing their state) and works on them.
    let b = instance(1);
    wait_processed(&b, 0, 1000, &[("a", &a), ("b", &b)]);
    // 2 → 3.
    let c = instance(2);
    wait_processed(&c, 0, 1000, &[("a", &a), ("b", &b), ("c", &c)]);
    let all = [("a", &a), ("b", &b), ("c", &c)];
    wait_processed(&a, a.metrics().records_processed(), 500, &all);
    wait_processed(&b, b.metrics().records_processed(), 500, &all);
    // 3 → 2 → 1 while orders still arrive: the leavers' tasks move back, and each time the
    // instances left work on with every task.
    c.close().unwrap();
    wait_owned(&[&a, &b], &all);
    wait_processed(&a, a.metrics().records_processed(), 1000, &all);
    wait_processed(&b, b.metrics().records_processed(), 1000, &all);
    b.close().unwrap();
    wait_owned(&[&a], &all);
    wait_processed(&a, a.metrics().records_processed(), 1000, &all);
    producing.store(false, Ordering::Release);
    let orders = producer.join().unwrap();
    println!("{orders} orders produced");

    // Every order passed on; then a closes, which flushes the counts it still caches.
    let seen_all = common::eventually(Duration::from_secs(60), || {
        common::record_count(&bootstrap, &seen) >= orders as i64
    });
    a.close().unwrap();
    assert!(
        seen_all,
        "only {} of {orders} orders passed on",
        common::record_count(&bootstrap, &seen)
    );

    let out = common::read_all(&bootstrap, &seen, Duration::from_secs(60));
    let mut values: Vec<u64> = out.iter().map(|r| r.value_str().parse().unwrap()).collect();
    values.sort_unstable();
    let duplicated: Vec<u64> = values
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    values.dedup();
    assert_eq!(values, (0..orders).collect::<Vec<_>>(), "an order was lost");
    assert!(
        duplicated.is_empty(),
        "{} orders were processed twice, e.g. {:?}",
        duplicated.len(),
        &duplicated[..duplicated.len().min(10)]
    );

    let mut last: HashMap<String, i64> = HashMap::new();
    for r in common::read_all(&bootstrap, &counts, Duration::from_secs(60)) {
        let v = i64::from_be_bytes(r.value.as_deref().unwrap().try_into().unwrap());
        last.insert(r.key_str().to_string(), v);
    }
    let mut want: HashMap<String, i64> = HashMap::new();
    for i in 0..orders {
        *want.entry(format!("customer-{}", i % KEYS)).or_default() += 1;
    }
    let mut wrong: Vec<(String, i64, Option<i64>)> = want
        .iter()
        .filter(|(k, n)| last.get(*k) != Some(*n))
        .map(|(k, n)| (k.clone(), *n, last.get(k).copied()))
        .collect();
    wrong.sort();
    assert!(
        wrong.is_empty() && last.len() == want.len(),
        "{} of {} customers counted wrong, (customer, orders, count) e.g. {:?}",
        wrong.len(),
        want.len(),
        &wrong[..wrong.len().min(10)]
    );
}
