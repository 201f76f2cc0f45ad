//! Golden SQL tests: every `tests/sql/*.sql` file holds statements, input records and the
//! output records they must produce, run through the `TopologyTestDriver`.
//!
//! Directives are SQL comments:
//! - `--> TOPIC ts=MS key=JSON value=JSON|null` pipes a record (keys and values in the
//!   topic's declared formats; JSON values are written as given, so bad JSON can be tested);
//! - `--< TOPIC key=JSON [window=START,END] value=JSON|null` expects the next record of TOPIC;
//! - `--! TEXT` expects executing the statements to fail with an error containing TEXT.
//!
//! After the expected records, every output topic must be empty. Add a case whenever a bug
//! is fixed. `SQL_GOLDEN_PRINT=1` prints what each file produced, in the directive format.

use std::collections::BTreeMap;
use std::path::Path;

use streamkit::prelude::*;
use streamkit::serde::Serde;
use streamkit::sql::{Engine, Format, KeySerde, RowSerde, SourceInfo, WindowKind};
use streamkit::window::WindowedSerde;

/// A decoded output record: key, window, value.
type Decoded = (serde_json::Value, Option<(i64, i64)>, serde_json::Value);

struct Input {
    topic: String,
    ts: i64,
    key: serde_json::Value,
    value: String,
}

struct Output {
    topic: String,
    key: serde_json::Value,
    window: Option<(i64, i64)>,
    value: serde_json::Value,
}

/// Splits `rest` at the ` name=` markers, in order.
fn fields(line: &str) -> (String, BTreeMap<String, String>) {
    let mut parts = line.splitn(2, ' ');
    let topic = parts.next().unwrap_or_default().to_string();
    let mut rest = parts.next().unwrap_or_default().trim().to_string();
    let mut out = BTreeMap::new();
    for name in ["ts", "key", "window", "value"] {
        let marker = format!("{name}=");
        if let Some(rest_after) = rest.strip_prefix(&marker) {
            // The value runs to the next marker (value= runs to the end of the line).
            let end = ["ts=", "key=", "window=", "value="]
                .iter()
                .filter(|m| **m != marker && name != "value")
                .filter_map(|m| rest_after.find(&format!(" {m}")))
                .min()
                .unwrap_or(rest_after.len());
            out.insert(name.to_string(), rest_after[..end].trim().to_string());
            rest = rest_after[end..].trim().to_string();
        }
    }
    assert!(rest.is_empty(), "cannot read directive fields: {line}");
    (topic, out)
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("bad JSON {s}: {e}"))
}

fn source_for<'a>(engine: &'a Engine, topic: &str) -> &'a SourceInfo {
    engine
        .sources()
        .find(|s| s.topic() == topic)
        .unwrap_or_else(|| panic!("no stream or table over topic {topic}"))
}

fn run(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut inputs = Vec::new();
    let mut outputs = Vec::new();
    let mut expected_error = None;
    for line in text.lines() {
        if let Some(d) = line.strip_prefix("-->") {
            let (topic, f) = fields(d.trim());
            inputs.push(Input {
                topic,
                ts: f.get("ts").map_or(0, |t| t.parse().unwrap()),
                key: f.get("key").map_or(serde_json::Value::Null, |k| json(k)),
                value: f.get("value").cloned().expect("value="),
            });
        } else if let Some(d) = line.strip_prefix("--<") {
            let (topic, f) = fields(d.trim());
            outputs.push(Output {
                topic,
                key: f.get("key").map_or(serde_json::Value::Null, |k| json(k)),
                window: f.get("window").map(|w| {
                    let (a, b) = w.split_once(',').unwrap();
                    (a.parse().unwrap(), b.parse().unwrap())
                }),
                value: json(f.get("value").expect("value=")),
            });
        } else if let Some(d) = line.strip_prefix("--!") {
            expected_error = Some(d.trim().to_string());
        }
    }
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let mut engine = Engine::offline();
    let result = engine.execute(&text);
    if let Some(want) = expected_error {
        let e = result.expect_err(&format!("{name}: expected an error"));
        assert!(
            e.to_string().contains(&want),
            "{name}: error {e:?} lacks {want:?}"
        );
        return;
    }
    result.unwrap_or_else(|e| panic!("{name}: {e}"));
    let driver = TopologyTestDriver::new(engine.topology().unwrap()).unwrap();
    for i in &inputs {
        let src = source_for(&engine, &i.topic);
        let key_serde = KeySerde::new(
            src.key_format(),
            if src.key_in_value().is_some() {
                vec![]
            } else {
                src.key().to_vec()
            },
        );
        let key = if i.key.is_null() {
            None
        } else if src.key_in_value().is_some() || src.key_hint().is_some() {
            // The message key as written, whatever it holds.
            Some(i.key.to_string().into_bytes())
        } else {
            let v = key_serde.parse_json(&i.key).unwrap();
            let mut out = Vec::new();
            key_serde.serialize(&i.topic, &v, &mut out).unwrap();
            Some(out)
        };
        let value = match (i.value.as_str(), src.value_format()) {
            ("null", _) => None,
            (v, Format::Json) => Some(v.as_bytes().to_vec()),
            (v, Format::Kafka) => {
                let serde = RowSerde::new(Format::Kafka, src.read_columns());
                let row = serde.parse_json(&json(v)).unwrap();
                let mut out = Vec::new();
                serde.serialize(&i.topic, &row, &mut out).unwrap();
                Some(out)
            }
            // Golden files run without a schema registry: sql_avro_format.rs covers AVRO.
            (_, Format::Avro) => panic!("golden files cannot declare AVRO sources"),
        };
        let topic = driver.input_topic(&i.topic, Serdes::bytes(), Serdes::bytes());
        topic
            .pipe_raw(key.as_deref(), value.as_deref(), i.ts)
            .unwrap();
    }
    // Every record of every output topic, decoded with the sink's schema.
    let mut actual: BTreeMap<String, Vec<Decoded>> = BTreeMap::new();
    for topic in driver.produced_topic_names() {
        let Some(src) = engine
            .sources()
            .find(|s| s.topic() == topic && s.writer().is_some())
        else {
            continue;
        };
        let key = KeySerde::new(src.key_format(), src.key().to_vec());
        let value = Serdes::option(RowSerde::new(src.value_format(), src.value().to_vec()));
        let rows = value.clone();
        let records: Vec<_> = match src.window() {
            None => driver
                .output_topic(&topic, key.clone(), value)
                .read_key_values()
                .into_iter()
                .map(|(k, v)| (key.to_json(&k).unwrap(), None, rows.to_json(&v).unwrap()))
                .collect(),
            Some(w) => {
                let wserde = match w {
                    WindowKind::Time(size) => WindowedSerde::time(key.clone(), size),
                    WindowKind::Session => WindowedSerde::session(key.clone()),
                };
                driver
                    .output_topic(&topic, wserde, value)
                    .read_key_values()
                    .into_iter()
                    .map(|(k, v)| {
                        (
                            key.to_json(&k.key).unwrap(),
                            Some((k.window.start, k.window.end)),
                            rows.to_json(&v).unwrap(),
                        )
                    })
                    .collect()
            }
        };
        actual.insert(topic, records);
    }
    if std::env::var_os("SQL_GOLDEN_PRINT").is_some() {
        println!("== {name}");
        for (topic, records) in &actual {
            for (k, w, v) in records {
                let w = w
                    .map(|(a, b)| format!(" window={a},{b}"))
                    .unwrap_or_default();
                println!("--< {topic} key={k}{w} value={v}");
            }
        }
        return;
    }
    let mut expected: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for o in outputs {
        expected
            .entry(o.topic.clone())
            .or_default()
            .push((o.key, o.window, o.value));
    }
    for (topic, want) in &expected {
        let got = actual.get(topic).cloned().unwrap_or_default();
        assert_eq!(&got, want, "{name}: records of {topic}");
    }
    for (topic, got) in &actual {
        assert!(
            expected.contains_key(topic) || got.is_empty(),
            "{name}: unexpected records on {topic}: {got:?}"
        );
    }
}

#[test]
fn golden_sql_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sql");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 8,
        "golden files missing in {}",
        dir.display()
    );
    for f in files {
        run(&f);
    }
}
