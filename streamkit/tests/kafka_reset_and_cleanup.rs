//! What an application or a query leaves behind, removed on a real broker (the embedded one
//! has no admin API to delete topics with): `streamkit reset` deletes an application's
//! internal topics, consumer group and local state, so its next run counts from the start;
//! a terminated SQL query and a closed push query remove their state directory, internal
//! topics and consumer group, as ksqlDB does.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::time::Duration;

use common::kafka;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use streamkit::prelude::*;
use streamkit::runtime::internal_topics_of;
use streamkit::sql::Engine;

const KEYS: usize = 5;
const PER_KEY: usize = 4;

fn config(bootstrap: &str, app: &str, dir: &std::path::Path) -> StreamsConfig {
    StreamsConfig::new(app)
        .bootstrap_servers(bootstrap)
        .state_dir(dir)
        .commit_interval(Duration::from_millis(100))
        .replication_factor(1)
}

/// Whether the consumer group `group` exists with members or offsets (a deleted or never
/// created group is reported `Dead` or not at all).
fn group_exists(bootstrap: &str, group: &str) -> bool {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let list = consumer
        .fetch_group_list(Some(group), Duration::from_secs(10))
        .unwrap();
    list.groups()
        .iter()
        .any(|g| g.name() == group && g.state() != "Dead" && !g.state().is_empty())
}

/// The counts topology: input re-keyed by value (a repartition topic) and counted (a
/// changelog), every update to `output`.
fn counting(input: &str, output: &str) -> Topology {
    let b = StreamsBuilder::new();
    b.stream(input, Consumed::with(Serdes::string(), Serdes::string()))
        .group_by(
            |_, v: &String| v.clone(),
            Grouped::with(Serdes::string(), Serdes::string()).named("by-value"),
        )
        .count(Materialized::named("counts"))
        .to_stream()
        .to(output, Produced::with(Serdes::string(), Serdes::i64()));
    b.build().unwrap()
}

/// Runs the counting application until every key's count reaches `PER_KEY` in `output`
/// (`round` updates of the final value seen), then closes it.
fn run_until_counted(cfg: &StreamsConfig, input: &str, output: &str, round: usize) {
    let bootstrap = kafka::bootstrap();
    let app = KafkaStreams::new(counting(input, output), cfg.clone()).unwrap();
    app.start().unwrap();
    let counted = common::eventually(Duration::from_secs(90), || {
        let finals = common::read_all(&bootstrap, output, Duration::from_secs(2))
            .into_iter()
            .filter(|r| {
                r.value
                    .as_deref()
                    .is_some_and(|v| v == (PER_KEY as i64).to_be_bytes())
            })
            .count();
        finals >= KEYS * round
    });
    assert!(
        counted,
        "round {round}: {:?} {:?}",
        app.state(),
        app.error()
    );
    app.close().unwrap();
}

#[test]
fn reset_deletes_internal_topics_group_and_state_so_the_next_run_counts_from_the_start() {
    common::init_logs();
    let bootstrap = kafka::bootstrap();
    let app_id = kafka::unique("reset-app");
    let input = kafka::unique("reset-in");
    let output = kafka::unique("reset-out");
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&bootstrap, &app_id, dir.path());
    streamkit::runtime::ensure_topics(&cfg, &[(&input, 2), (&output, 2)]).unwrap();
    let records: Vec<(String, Vec<u8>)> = (0..KEYS * PER_KEY)
        .map(|i| (format!("r{i}"), format!("k{}", i % KEYS).into_bytes()))
        .collect();
    common::produce(&bootstrap, &input, &records);

    run_until_counted(&cfg, &input, &output, 1);
    let internal = internal_topics_of(&cfg).unwrap();
    assert_eq!(
        internal,
        [
            format!("{app_id}-by-value-repartition"),
            format!("{app_id}-counts-changelog"),
        ],
        "the application's internal topics, by name"
    );
    assert!(group_exists(&bootstrap, &app_id));
    assert!(dir.path().join(&app_id).exists());

    // A dry run deletes nothing.
    let exe = env!("CARGO_BIN_EXE_streamkit");
    let dry = Command::new(exe)
        .args([
            "reset",
            &app_id,
            "--bootstrap-servers",
            &bootstrap,
            "--dry-run",
        ])
        .output()
        .unwrap();
    assert!(dry.status.success(), "{dry:?}");
    let said = String::from_utf8_lossy(&dry.stdout);
    assert!(
        said.contains(&format!("would delete topic {app_id}-counts-changelog")),
        "{said}"
    );
    assert_eq!(internal_topics_of(&cfg).unwrap(), internal);

    let reset = Command::new(exe)
        .args([
            "reset",
            &app_id,
            "--bootstrap-servers",
            &bootstrap,
            "--state-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(reset.status.success(), "{reset:?}");
    let said = String::from_utf8_lossy(&reset.stdout);
    for t in &internal {
        assert!(said.contains(&format!("deleted topic {t}")), "{said}");
    }
    assert!(
        said.contains(&format!("deleted consumer group {app_id}")),
        "{said}"
    );
    assert!(!dir.path().join(&app_id).exists(), "{said}");
    assert!(
        common::eventually(Duration::from_secs(30), || internal_topics_of(&cfg)
            .unwrap()
            .is_empty()),
        "internal topics left: {:?}",
        internal_topics_of(&cfg).unwrap()
    );
    assert!(!group_exists(&bootstrap, &app_id));

    // The next run reads the input from the start with empty state: every key reaches
    // PER_KEY again (a second round of final values), never 2 * PER_KEY.
    run_until_counted(&cfg, &input, &output, 2);
    let mut last: HashMap<String, i64> = HashMap::new();
    for r in common::read_all(&bootstrap, &output, Duration::from_secs(2)) {
        let v = i64::from_be_bytes(r.value.unwrap().try_into().unwrap());
        last.insert(String::from_utf8(r.key.unwrap()).unwrap(), v);
    }
    let want: HashMap<String, i64> = (0..KEYS)
        .map(|k| (format!("k{k}"), PER_KEY as i64))
        .collect();
    assert_eq!(last, want);
}

fn sql_engine(bootstrap: &str, dir: &std::path::Path, taps: &str) -> Engine {
    let mut engine = Engine::new(config(bootstrap, "sql-cleanup", dir));
    engine
        .execute(&format!(
            "CREATE STREAM taps (station VARCHAR KEY, fare INT) WITH (KAFKA_TOPIC='{taps}', VALUE_FORMAT='JSON');"
        ))
        .unwrap();
    engine
}

fn taps_topic(bootstrap: &str) -> String {
    let taps = kafka::unique("taps");
    let cfg = config(
        bootstrap,
        "sql-cleanup-setup",
        std::path::Path::new("/nonexistent"),
    );
    streamkit::runtime::ensure_topics(&cfg, &[(&taps, 2)]).unwrap();
    let rows: Vec<(String, Vec<u8>)> = (0..20)
        .map(|i| {
            (
                format!("s{}", i % 3),
                format!(r#"{{"fare": {}}}"#, i % 4).into_bytes(),
            )
        })
        .collect();
    common::produce(bootstrap, &taps, &rows);
    taps
}

#[test]
fn a_terminated_query_removes_its_state_directory_internal_topics_and_group() {
    common::init_logs();
    let bootstrap = kafka::bootstrap();
    let taps = taps_topic(&bootstrap);
    let dir = tempfile::tempdir().unwrap();
    let mut engine = sql_engine(&bootstrap, dir.path(), &taps);
    let sink = kafka::unique("by_fare").replace('-', "_");
    engine
        .execute(&format!(
            "CREATE TABLE {sink} AS SELECT fare, COUNT(*) AS n FROM taps GROUP BY fare;"
        ))
        .unwrap();
    let (qid, app_id) = engine
        .queries()
        .map(|q| (q.id().to_string(), q.application_id()))
        .next()
        .unwrap();
    let cfg = config(&bootstrap, &app_id, dir.path());
    // Running: a repartition topic (GROUP BY a value column), changelogs, state, a group.
    let kinds = |topics: Vec<String>| {
        (
            topics.iter().any(|t| t.ends_with("-repartition")),
            topics.iter().any(|t| t.ends_with("-changelog")),
        )
    };
    assert!(
        common::eventually(Duration::from_secs(60), || {
            kinds(internal_topics_of(&cfg).unwrap()) == (true, true)
                && dir.path().join(&app_id).exists()
                && group_exists(&bootstrap, &app_id)
        }),
        "topics {:?}",
        internal_topics_of(&cfg).unwrap()
    );

    engine.execute(&format!("TERMINATE {qid};")).unwrap();
    assert!(!dir.path().join(&app_id).exists());
    assert!(
        common::eventually(Duration::from_secs(30), || internal_topics_of(&cfg)
            .unwrap()
            .is_empty()),
        "left: {:?}",
        internal_topics_of(&cfg).unwrap()
    );
    assert!(!group_exists(&bootstrap, &app_id));
}

#[test]
fn a_closed_push_query_removes_its_state_directory_internal_topics_and_group() {
    common::init_logs();
    let bootstrap = kafka::bootstrap();
    let taps = taps_topic(&bootstrap);
    let dir = tempfile::tempdir().unwrap();
    let mut engine = sql_engine(&bootstrap, dir.path(), &taps);
    let earliest = BTreeMap::from([("auto.offset.reset".to_string(), "earliest".to_string())]);
    let mut push = engine
        .push(
            "SELECT fare, COUNT(*) AS n FROM taps GROUP BY fare EMIT CHANGES;",
            &earliest,
        )
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let first = rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(60), push.rows.recv()).await });
    assert!(matches!(first, Ok(Some(_))), "no row: {first:?}");
    // The transient query's application id: the one directory under the state dir.
    let app_id = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| n.contains("transient"))
        .expect("the push query's state directory");
    let cfg = config(&bootstrap, &app_id, dir.path());
    let running = internal_topics_of(&cfg).unwrap();
    assert!(
        running.iter().any(|t| t.ends_with("-repartition"))
            && running.iter().any(|t| t.ends_with("-changelog")),
        "{running:?}"
    );

    push.close().unwrap();
    assert!(!dir.path().join(&app_id).exists());
    assert!(
        common::eventually(Duration::from_secs(30), || internal_topics_of(&cfg)
            .unwrap()
            .is_empty()),
        "left: {:?}",
        internal_topics_of(&cfg).unwrap()
    );
    assert!(!group_exists(&bootstrap, &app_id));
}
