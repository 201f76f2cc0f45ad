//! The Docker image builds what CI builds: every cargo command of docker/Dockerfile goes
//! through scripts/build-binaries.sh, which scripts/test.sh also runs (in the dev profile, so
//! CI needs no release build of its own); the script ships every binary of the workspace but
//! the benchmarks'; the image's toolchain is the workspace's rust-version and its build
//! packages are scripts/lib.sh's.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// One Dockerfile instruction, continuation lines joined.
struct Instruction {
    stage: String,
    keyword: String,
    args: String,
}

fn dockerfile() -> Vec<Instruction> {
    let text = read("docker/Dockerfile");
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
        } else {
            current.push_str(trimmed);
            logical.push(std::mem::take(&mut current));
        }
    }
    let mut stage = String::new();
    logical
        .into_iter()
        .map(|l| {
            let (keyword, args) = l.split_once(' ').unwrap_or((&l, ""));
            let keyword = keyword.to_uppercase();
            if keyword == "FROM" {
                stage = args
                    .split_whitespace()
                    .skip_while(|w| !w.eq_ignore_ascii_case("as"))
                    .nth(1)
                    .unwrap_or("")
                    .to_string();
            }
            Instruction {
                stage: stage.clone(),
                keyword,
                args: args.trim().to_string(),
            }
        })
        .collect()
}

/// The argument lists of every `bash scripts/build-binaries.sh …` in a shell command line.
fn script_calls(command: &str) -> Vec<Vec<String>> {
    command
        .split("&&")
        .filter_map(|part| {
            let words: Vec<&str> = part.split_whitespace().collect();
            (words.first() == Some(&"bash") && words.get(1) == Some(&"scripts/build-binaries.sh"))
                .then(|| words[2..].iter().map(|w| w.to_string()).collect())
        })
        .collect()
}

#[test]
fn the_build_stage_builds_only_through_the_script_ci_runs() {
    let instructions = dockerfile();
    let runs: Vec<&Instruction> = instructions.iter().filter(|i| i.keyword == "RUN").collect();
    for run in &runs {
        let calls_cargo = run
            .args
            .split(|c: char| c.is_whitespace() || c == ';' || c == '&' || c == '|')
            .any(|w| w == "cargo" || w.ends_with("/cargo"));
        assert!(
            !calls_cargo,
            "a RUN calls cargo directly, not through scripts/build-binaries.sh: {}",
            run.args
        );
    }
    let build: Vec<Vec<String>> = runs
        .iter()
        .filter(|r| r.stage == "build")
        .flat_map(|r| script_calls(&r.args))
        .collect();
    assert_eq!(
        build,
        vec![
            vec!["--release".to_string(), "--deps-only".to_string()],
            vec![
                "--release".to_string(),
                "--install".to_string(),
                "/out/bin".to_string()
            ],
        ],
        "the build stage: the dependency layer, then the binaries"
    );
    let planner: Vec<Vec<String>> = runs
        .iter()
        .filter(|r| r.stage == "planner")
        .flat_map(|r| script_calls(&r.args))
        .collect();
    assert_eq!(
        planner,
        vec![vec!["--skeleton".to_string(), "/skeleton".to_string()]]
    );

    // CI runs the same script with the same selection, in the dev profile.
    let test_sh = read("scripts/test.sh");
    let ci_calls: Vec<Vec<String>> = test_sh.lines().flat_map(script_calls).collect();
    assert_eq!(
        ci_calls,
        vec![Vec::<String>::new()],
        "scripts/test.sh runs `bash scripts/build-binaries.sh`"
    );

    // The image ships what the build stage installed, runs as a non-root user and checks /health.
    let runtime: Vec<&Instruction> = instructions
        .iter()
        .filter(|i| i.stage == "runtime")
        .collect();
    assert!(
        runtime
            .iter()
            .any(|i| i.keyword == "COPY" && i.args == "--from=build /out/bin/ /usr/local/bin/")
    );
    let user = runtime
        .iter()
        .rev()
        .find(|i| i.keyword == "USER")
        .expect("a USER");
    assert!(
        user.args != "root" && user.args != "0",
        "runs as {}",
        user.args
    );
    let health = runtime
        .iter()
        .find(|i| i.keyword == "HEALTHCHECK")
        .expect("a HEALTHCHECK");
    assert!(health.args.contains("/health"), "{}", health.args);
}

#[test]
fn the_toolchain_and_packages_are_the_workspaces() {
    let instructions = dockerfile();
    let manifest = read("Cargo.toml");
    let rust_version = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("rust-version = "))
        .expect("rust-version in Cargo.toml")
        .trim_matches('"');
    let from = instructions
        .iter()
        .find(|i| i.keyword == "FROM")
        .expect("a FROM");
    assert!(
        from.args.starts_with(&format!("rust:{rust_version}-")),
        "the build toolchain {} is not the workspace's rust-version {rust_version}",
        from.args
    );
    assert!(
        instructions.iter().any(|i| i.keyword == "RUN"
            && i.args.contains("source scripts/lib.sh")
            && i.args.contains("\"${BUILD_PACKAGES[@]}\"")),
        "the build stage installs scripts/lib.sh's BUILD_PACKAGES"
    );
}

#[test]
fn the_script_ships_every_binary_but_the_benchmarks() {
    let script = read("scripts/build-binaries.sh");
    let excluded: BTreeSet<String> = script
        .lines()
        .find_map(|l| l.strip_prefix("EXCLUDE=("))
        .expect("EXCLUDE=(…) in the script")
        .trim_end_matches(')')
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(repo())
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut shipped = BTreeSet::new();
    let mut names = BTreeSet::new();
    for package in metadata["packages"].as_array().unwrap() {
        let name = package["name"].as_str().unwrap().to_string();
        names.insert(name.clone());
        if excluded.contains(&name) {
            continue;
        }
        for target in package["targets"].as_array().unwrap() {
            if target["kind"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k == "bin")
            {
                shipped.insert(target["name"].as_str().unwrap().to_string());
            }
        }
    }
    assert_eq!(excluded, BTreeSet::from(["streamkit-bench".to_string()]));
    assert!(
        excluded.is_subset(&names),
        "excluded packages {excluded:?} are not members"
    );
    for bin in ["streamkit", "quickstart", "bus_arrivals", "cta_trains"] {
        assert!(shipped.contains(bin), "{bin} is not shipped: {shipped:?}");
    }
}
