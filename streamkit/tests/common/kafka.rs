//! The real Apache Kafka broker for the tests that need one (transactions, the admin API,
//! broker faults): the shared broker `scripts/test.sh` starts, and private clusters a test
//! starts, kills and restarts itself through `scripts/kafka.sh`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// The shared real broker's bootstrap servers, from `STREAMKIT_TEST_KAFKA` (exported by
/// `scripts/test.sh`). Panics without it: a test that needs a real broker fails rather than
/// skips.
pub fn bootstrap() -> String {
    match std::env::var("STREAMKIT_TEST_KAFKA") {
        Ok(s) if !s.is_empty() => s,
        _ => panic!(
            "STREAMKIT_TEST_KAFKA is not set: this test needs a real Apache Kafka broker. \
             Run it through `bash scripts/test.sh`, or start one with \
             `bash scripts/kafka.sh start /tmp/kafka` and export \
             STREAMKIT_TEST_KAFKA=<the printed bootstrap.servers>"
        ),
    }
}

/// A name no other test (nor an earlier run against the same broker) uses: the shared broker
/// outlives a test, so topics, groups and application ids must not collide.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{nanos:x}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/kafka.sh")
}

fn run_script(args: &[&str]) -> String {
    let out = Command::new("bash")
        .arg(script())
        .args(args)
        .output()
        .expect("run scripts/kafka.sh");
    assert!(
        out.status.success(),
        "scripts/kafka.sh {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A private real Kafka cluster (KRaft, combined broker/controller nodes) for a test that
/// breaks brokers; stopped and deleted on drop.
pub struct Cluster {
    dir: tempfile::TempDir,
    /// Comma-separated bootstrap servers of every node.
    pub bootstrap: String,
    /// How many nodes.
    pub nodes: usize,
}

impl Cluster {
    /// Starts `nodes` nodes (replication factor `nodes` for internal topics).
    pub fn start(nodes: usize) -> Cluster {
        Self::start_with(nodes, &[])
    }

    /// Starts `nodes` nodes with extra `scripts/kafka.sh start` options (`--authorizer`).
    pub fn start_with(nodes: usize, options: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let n = nodes.to_string();
        let mut args = vec!["start", dir.path().to_str().unwrap(), "--brokers", &n];
        args.extend_from_slice(options);
        let out = run_script(&args);
        let bootstrap = out
            .lines()
            .find_map(|l| l.strip_prefix("bootstrap.servers="))
            .expect("bootstrap line")
            .to_string();
        Cluster {
            dir,
            bootstrap,
            nodes,
        }
    }

    /// Where the nodes keep their data and logs (`node-N/server.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The bootstrap address of node `node` (1-based).
    pub fn node_address(&self, node: usize) -> &str {
        self.bootstrap.split(',').nth(node - 1).expect("node")
    }

    /// `kill -9` node `node` (1-based), as a crash would.
    pub fn kill(&self, node: usize) {
        run_script(&["kill", self.dir.path().to_str().unwrap(), &node.to_string()]);
    }

    /// Starts node `node` again (same ports and data) and waits until it serves.
    pub fn restart(&self, node: usize) {
        run_script(&[
            "restart",
            self.dir.path().to_str().unwrap(),
            &node.to_string(),
        ]);
    }

    /// Runs a Kafka command-line tool (`org.apache.kafka.tools.<class>`) against the cluster;
    /// returns its standard output.
    pub fn tool(&self, class: &str, args: &[&str]) -> String {
        let mut all = vec!["tool", self.dir.path().to_str().unwrap(), class];
        all.extend_from_slice(args);
        run_script(&all)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .args(["stop", self.dir.path().to_str().unwrap()])
            .output();
    }
}
