//! The user guide (`docs/`, an mdBook) stays honest: every page with Rust snippets is compiled
//! into the crate's doc tests, every page is in the book's summary, and every shell command a
//! page shows is one that CI runs (a line of `scripts/test.sh`, or `scripts/test.sh` itself).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// Every Markdown page under `docs/src`, as paths relative to it.
fn pages() -> Vec<String> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, base, out);
            } else if path.extension().is_some_and(|e| e == "md") {
                let rel = path
                    .strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.push(rel);
            }
        }
    }
    let base = repo().join("docs/src");
    let mut out = Vec::new();
    walk(&base, &base, &mut out);
    out.sort();
    out
}

/// The fenced code blocks of a page: (info string, lines).
fn code_blocks(text: &str) -> Vec<(String, Vec<String>)> {
    let mut blocks = Vec::new();
    let mut current: Option<(String, Vec<String>)> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if let Some(info) = trimmed.strip_prefix("```") {
            match current.take() {
                Some(block) => blocks.push(block),
                None => current = Some((info.trim().to_string(), Vec::new())),
            }
        } else if let Some((_, lines)) = current.as_mut() {
            lines.push(line.to_string());
        }
    }
    assert!(current.is_none(), "an unclosed code block");
    blocks
}

#[test]
fn every_page_with_rust_is_a_doc_test_of_the_crate() {
    let lib = read("streamkit/src/lib.rs");
    let mut missing = Vec::new();
    for page in pages() {
        let text = read(&format!("docs/src/{page}"));
        let has_rust = code_blocks(&text)
            .iter()
            .any(|(info, _)| info.split(',').next() == Some("rust"));
        if has_rust && !lib.contains(&format!("= \"{page}\";")) {
            missing.push(page);
        }
    }
    assert!(
        missing.is_empty(),
        "pages with Rust snippets not included in streamkit/src/lib.rs's `book` module: {missing:?}"
    );
}

#[test]
fn every_page_is_in_the_summary() {
    let summary = read("docs/src/SUMMARY.md");
    let listed: BTreeSet<&str> = summary
        .split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .collect();
    let unlisted: Vec<String> = pages()
        .into_iter()
        .filter(|p| p != "SUMMARY.md" && !listed.contains(p.as_str()))
        .collect();
    assert!(
        unlisted.is_empty(),
        "pages missing from SUMMARY.md: {unlisted:?}"
    );
}

#[test]
fn every_shell_command_in_the_book_is_run_by_ci() {
    let ci = read(".ci/run");
    assert!(
        ci.lines().any(|l| l.trim() == "exec bash scripts/test.sh"),
        "CI no longer runs scripts/test.sh"
    );
    let test_sh = read("scripts/test.sh");
    let mut run_by_ci: BTreeSet<&str> = test_sh.lines().map(str::trim).collect();
    run_by_ci.insert("bash scripts/test.sh");
    let mut not_run = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = read(&format!("docs/src/{page}"));
        for (info, lines) in code_blocks(&text) {
            let lang = info.split(',').next().unwrap_or("");
            if !matches!(lang, "sh" | "bash" | "shell" | "console" | "shell-session") {
                continue;
            }
            for line in lines {
                let command = line.trim().trim_start_matches("$ ");
                if command.is_empty() || command.starts_with('#') {
                    continue;
                }
                checked += 1;
                if !run_by_ci.contains(command) {
                    not_run.push(format!("{page}: {command}"));
                }
            }
        }
    }
    assert!(checked > 0, "no shell command found: is the parser broken?");
    assert!(
        not_run.is_empty(),
        "shell commands in the book that scripts/test.sh does not run: {not_run:#?}"
    );
}
