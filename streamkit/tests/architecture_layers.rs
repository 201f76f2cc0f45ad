//! The layering docs/src/architecture.md draws, kept by reading the `crate::` paths of every
//! source file: the floor (`record`, `serde`, `window`, `state`) and the processor layer above
//! it never reach up into the runtime, the DSL or the services.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// (folder under `src/`, top-level modules its files must not name).
const RULES: &[(&str, &[&str])] = &[
    (
        "state",
        &[
            "runtime",
            "processor",
            "operators",
            "topology",
            "stream",
            "table",
            "server",
            "sql",
            "connect",
            "kafka_streams",
        ],
    ),
    (
        "processor",
        &[
            "runtime",
            "operators",
            "stream",
            "table",
            "server",
            "sql",
            "connect",
            "kafka_streams",
        ],
    ),
    (
        "operators",
        &["runtime", "server", "sql", "connect", "kafka_streams"],
    ),
    ("topology", &["runtime", "server", "sql", "kafka_streams"]),
];

/// Every module a source text names through `crate::` — in paths (`crate::runtime::x`) and in
/// grouped imports (`use crate::{runtime::x, …}`) — with the line it is on. Comments are
/// skipped: a doc link is not a dependency.
fn named_modules(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut in_group = false;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim_start();
        if line.starts_with("//") {
            continue;
        }
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                in_group = true;
                rest = group;
                break;
            }
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push((n + 1, name));
            }
        }
        if in_group {
            // Inside `use crate::{a::b, c::{d, e}, …};`: the first segment of each path.
            let mut depth = 0usize;
            let mut at_segment_start = true;
            let mut word = String::new();
            for c in rest.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        in_group = false;
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => at_segment_start = true,
                    c if c.is_alphanumeric() || c == '_' => {
                        if at_segment_start {
                            word.push(c)
                        }
                    }
                    _ => {
                        if !word.is_empty() {
                            found.push((n + 1, std::mem::take(&mut word)));
                        }
                        if !c.is_whitespace() {
                            at_segment_start = false;
                        }
                    }
                }
            }
            if !word.is_empty() {
                found.push((n + 1, word));
            }
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_scanner_sees_paths_and_grouped_imports_but_not_comments() {
    let text = "use crate::runtime::task::Task;\n\
                use crate::{error::Result, stream::{KStream, Consumed}};\n\
                /// See [`KafkaStreams`](crate::kafka_streams::KafkaStreams).\n\
                let x = crate::server::start(); // crate::sql::Engine\n";
    let names: BTreeSet<(usize, String)> = named_modules(text).into_iter().collect();
    let expect: BTreeSet<(usize, String)> =
        [(1, "runtime"), (2, "error"), (2, "stream"), (4, "server")]
            .into_iter()
            .map(|(n, s)| (n, s.to_string()))
            .collect();
    assert_eq!(names, expect);
}

#[test]
fn lower_layers_import_nothing_from_the_layers_above() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    for (folder, banned) in RULES {
        let mut files = Vec::new();
        rust_files(&src.join(folder), &mut files);
        assert!(!files.is_empty(), "no sources under src/{folder}");
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for (line, module) in named_modules(&text) {
                if banned.contains(&module.as_str()) {
                    violations.push(format!(
                        "{}:{line} names crate::{module}",
                        file.strip_prefix(&src).unwrap().display()
                    ));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layering broken (see docs/src/architecture.md):\n{}",
        violations.join("\n")
    );
}
