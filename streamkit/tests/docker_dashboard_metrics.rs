//! Every metric the Grafana dashboard (docker/grafana/dashboards/streamkit.json) and the
//! Prometheus rules (docker/prometheus/rules.yml) query exists in a live `/metrics` scrape of
//! a real application: embedded broker, query server on, a RocksDB window store restored from
//! its changelog, dead letters, late records and a record whose processing fails.

mod common;
#[path = "common/http.rs"]
mod http;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use streamkit::error_policy::ProcessingErrorHandler;
use streamkit::prelude::*;
use streamkit::testing::EmbeddedBroker;
use streamkit::window::TimeWindows;

/// Metrics Prometheus makes itself for every scrape target.
const PROMETHEUS_OWN: [&str; 1] = ["up"];

/// Words of PromQL that are not metric names.
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
];

/// PromQL's aggregation operators: `sum by (…) (…)` puts a label list between the name and
/// its parenthesis.
const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// Removes every `open … close` span (not nested), e.g. label matchers `{…}`.
fn strip(expr: &str, open: char, close: char) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for c in expr.chars() {
        if c == open {
            depth += 1;
        } else if c == close && depth > 0 {
            depth -= 1;
        } else if depth == 0 {
            out.push(c);
        }
    }
    out
}

/// The metric names a PromQL expression (or a Grafana `label_values(metric, label)` query)
/// reads: identifiers that are not functions, keywords, label lists or label matchers.
fn metric_names(expr: &str) -> BTreeSet<String> {
    // `label_values(metric, label)`: only the metric.
    let expr = match expr.trim().strip_prefix("label_values(") {
        Some(rest) => rest.split([',', ')']).next().unwrap_or("").to_string(),
        None => expr.to_string(),
    };
    // Strings, label matchers and range selectors hold no metric names.
    let mut no_strings = String::new();
    let mut in_string = None;
    for c in expr.chars() {
        match in_string {
            Some(q) if c == q => in_string = None,
            Some(_) => {}
            None if c == '"' || c == '\'' || c == '`' => in_string = Some(c),
            None => no_strings.push(c),
        }
    }
    let expr = strip(&strip(&no_strings, '{', '}'), '[', ']');
    // Label lists after by/without/on/ignoring/group_left/group_right.
    let mut words = Vec::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut j = i;
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            let called = j < chars.len() && chars[j] == '(';
            words.push((word, called, j));
        } else if c.is_ascii_digit() || c == '.' {
            // Numbers, durations (5m) and exponents: skip the whole token.
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    let mut names = BTreeSet::new();
    let mut skip_until = 0;
    for (word, called, next) in words {
        if next < skip_until {
            continue;
        }
        let lower = word.to_lowercase();
        if KEYWORDS.contains(&lower.as_str()) {
            if called {
                // A label list: skip to its closing parenthesis.
                skip_until = expr[next..].find(')').map_or(expr.len(), |p| next + p + 1);
            }
            continue;
        }
        if called || AGGREGATIONS.contains(&lower.as_str()) {
            continue; // a function or an aggregation
        }
        names.insert(word);
    }
    names
}

/// Every expression of the Grafana dashboard: panel targets and templating queries.
fn dashboard_exprs() -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("expr" | "definition", serde_json::Value::String(s)) => {
                            out.push(s.clone())
                        }
                        ("query", serde_json::Value::String(s)) => out.push(s.clone()),
                        _ => walk(v, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("docker/grafana/dashboards/streamkit.json")).unwrap();
    let mut out = Vec::new();
    walk(&dashboard, &mut out);
    out
}

/// Every `expr:` of the rules file and the names its `record:` rules define.
fn rules() -> (Vec<String>, BTreeSet<String>) {
    let text = read("docker/prometheus/rules.yml");
    let value = |l: &str, key: &str| {
        l.trim()
            .trim_start_matches("- ")
            .strip_prefix(key)
            .map(|v| v.trim().trim_matches('"').to_string())
    };
    let exprs = text.lines().filter_map(|l| value(l, "expr:")).collect();
    let records = text.lines().filter_map(|l| value(l, "record:")).collect();
    (exprs, records)
}

/// The names of the samples of a Prometheus text scrape.
fn scraped_names(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect()
}

#[test]
fn promql_metric_names_are_found() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (application_id, le) (rate(streamkit_x_bucket{application_id=~"$a", reason="late"}[5m]))) > 2 and on (job) up offset 5m"#,
    );
    assert_eq!(
        names,
        BTreeSet::from(["streamkit_x_bucket".to_string(), "up".to_string()])
    );
    assert_eq!(
        metric_names("label_values(streamkit_active_tasks, application_id)"),
        BTreeSet::from(["streamkit_active_tasks".to_string()])
    );
    assert_eq!(
        metric_names("streamkit:lag:sum > 10000 and deriv(streamkit:lag:sum[10m]) > 0"),
        BTreeSet::from(["streamkit:lag:sum".to_string()])
    );
}

const UNLUCKY: i64 = 13;

/// Fails on [`UNLUCKY`] (counted as dropped, reason `error`), passes everything else on.
struct Picky;

impl Processor<String, i64> for Picky {
    type KOut = String;
    type VOut = i64;
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, i64>,
        r: Record<String, i64>,
    ) -> Result<()> {
        if r.value == UNLUCKY {
            return Err(Error::custom("unlucky reading"));
        }
        ctx.forward(r)
    }
}

fn topology() -> Topology {
    let b = StreamsBuilder::new();
    b.stream(
        "readings",
        Consumed::with(Serdes::string(), Serdes::i64())
            .on_deserialization_error(DeserializationHandler::DeadLetter("readings-dlq".into())),
    )
    .process(|| Picky)
    .group_by_key(Grouped::with(Serdes::string(), Serdes::i64()))
    .windowed_by(TimeWindows::tumbling(Duration::from_secs(10)))
    .count(Materialized::named("readings-per-10s"));
    b.build().unwrap()
}

fn config(broker: &EmbeddedBroker, dir: &Path) -> StreamsConfig {
    StreamsConfig::new("dashboard-app")
        .embedded(broker)
        .state_dir(dir)
        .commit_interval(Duration::from_millis(100))
        .set("consumer.statistics.interval.ms", "200")
        .set("producer.statistics.interval.ms", "200")
        .processing_error_handler(ProcessingErrorHandler::LogAndContinue)
        .query_server("127.0.0.1:0")
}

/// Event time of the first record, a multiple of the window size (and > 0: librdkafka stamps
/// a record produced with timestamp 0 with the current time).
const T: i64 = 1_000_000;

/// The window store's changelog, which the second instance restores from.
const CHANGELOG: &str = "dashboard-app-readings-per-10s-changelog";

#[test]
fn every_metric_of_the_dashboard_and_the_rules_is_in_a_live_scrape() {
    common::init_logs();
    let dashboard = dashboard_exprs();
    let (rule_exprs, recorded) = rules();
    assert!(
        dashboard.len() >= 10 && rule_exprs.len() >= 5,
        "{dashboard:?} {rule_exprs:?}"
    );

    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("readings", 1).unwrap();
    broker.create_topic("readings-dlq", 1).unwrap();
    let servers = broker.bootstrap_servers().to_string();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &servers)
        .create()
        .unwrap();
    let send = |value: &[u8], ts: i64| {
        producer
            .send(
                BaseRecord::to("readings")
                    .key("sensor")
                    .payload(value)
                    .timestamp(ts),
            )
            .unwrap();
        producer.flush(Duration::from_secs(10)).unwrap();
    };

    // A first instance fills the window store (and its changelog), then stops. Each record
    // is processed twice: by the source's task, and after the repartition topic (`process`
    // may change the key) by the aggregation's.
    let first = tempfile::tempdir().unwrap();
    let app = KafkaStreams::new(topology(), config(&broker, first.path())).unwrap();
    app.start().unwrap();
    for i in 0..20i64 {
        send(&i.to_be_bytes(), T + i * 1000);
    }
    // 13 is UNLUCKY: 20 records in, 19 through the repartition topic.
    let filled = common::eventually(Duration::from_secs(30), || {
        app.metrics().records_processed() >= 39 && common::record_count(&servers, CHANGELOG) > 0
    });
    assert!(
        filled,
        "processed {}, changelog {}",
        app.metrics().records_processed(),
        common::record_count(&servers, CHANGELOG)
    );
    app.close().unwrap();

    // A second one, with an empty state directory, restores the store from its changelog,
    // then sees malformed records (dead letters), a late one and one whose processing fails.
    let second = tempfile::tempdir().unwrap();
    let app = KafkaStreams::new(topology(), config(&broker, second.path())).unwrap();
    app.start().unwrap();
    assert!(app.wait_for_state(StreamsState::Running, Duration::from_secs(60)));
    let addr = app.query_server_addr().unwrap().to_string();
    // Stream time is not restored: a first record moves the new task's past T + 10 s.
    send(&21i64.to_be_bytes(), T + 22_000);
    send(b"bad", T + 22_000);
    send(&1i64.to_be_bytes(), T + 500); // its window [T, T + 10 s) has closed: late
    send(&UNLUCKY.to_be_bytes(), T + 23_000);

    let mut scrape = String::new();
    let done = common::eventually(Duration::from_secs(60), || {
        scrape = http::get(&addr, "/metrics", None).body;
        let m = app.metrics();
        m.records_processed() >= 4
            && m.dead_letter_records() == 1
            && m.dropped_records("late") == 1
            && m.dropped_records("error") == 1
            && m.restored_records() > 0
            && scrape.contains("streamkit_consumer_lag{")
            && scrape.contains("streamkit_kafka_queue_messages{")
            && scrape.contains("streamkit_commit_latency_seconds_bucket{")
    });
    assert!(done, "{scrape}");
    let available = scraped_names(&scrape);

    let mut missing = Vec::new();
    let mut used = BTreeSet::new();
    for (source, exprs) in [("dashboard", &dashboard), ("rules", &rule_exprs)] {
        for expr in exprs {
            for name in metric_names(expr) {
                used.insert(name.clone());
                let known = available.contains(&name)
                    || recorded.contains(&name)
                    || PROMETHEUS_OWN.contains(&name.as_str());
                if !known {
                    missing.push(format!("{source}: {name} (in {expr})"));
                }
            }
        }
    }
    app.close().unwrap();
    assert!(
        missing.is_empty(),
        "metrics queried but not in the scrape:\n{}\nscraped: {available:?}",
        missing.join("\n")
    );
    // The panels the dashboard promises are there.
    for name in [
        "streamkit_records_processed_total",
        "streamkit_consumer_lag",
        "streamkit_process_latency_seconds_bucket",
        "streamkit_commit_latency_seconds_bucket",
        "streamkit_restore_remaining_records",
        "streamkit_rocksdb_memory_bytes",
        "streamkit_dropped_records_total",
        "streamkit_dead_letter_records_total",
    ] {
        assert!(
            used.contains(name),
            "the dashboard or the rules no longer use {name}"
        );
    }
}
