//! The benchmark harness behind `bench/run`: starts the broker(s), preloads the inputs, runs
//! every contender of every workload `--runs` times side by side (run 1 of each, then run 2 of
//! each, …, so noise hits all equally) and writes `bench/results/latest.md`.
//!
//! Each contender is a separate process (`contender` for the Rust ones, `bench/peers/*.py` for
//! the Python peers, a JVM for Kafka Streams in `bench/peers/kafka-streams/`) that prints one
//! `BENCH_RESULT {json}` line.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use streamkit::testing::EmbeddedBroker;
use streamkit_bench::kafka_record;
use streamkit_bench::report::{Contender, Metric, Run, Table, Target};

#[derive(Parser)]
struct Args {
    /// Records per broker workload (passthrough, windowed count, restore).
    #[arg(long, env = "BENCH_RECORDS", default_value_t = 1_000_000)]
    records: u64,
    /// Distinct keys of the inputs.
    #[arg(long, env = "BENCH_KEYS", default_value_t = 10_000)]
    keys: u64,
    /// Runs of each contender (the median is reported).
    #[arg(long, env = "BENCH_RUNS", default_value_t = 3)]
    runs: usize,
    /// Records the Faust peer processes (a prefix of the input: it runs at ~2k records/s).
    #[arg(long, env = "BENCH_FAUST_RECORDS", default_value_t = 100_000)]
    faust_records: u64,
    /// Nexmark events per query.
    #[arg(long, env = "BENCH_NEXMARK_EVENTS", default_value_t = 1_000_000)]
    nexmark_events: u64,
    /// Workloads to run, comma-separated: passthrough, window, engine, restore, nexmark, avro.
    #[arg(
        long,
        env = "BENCH_WORKLOADS",
        value_delimiter = ',',
        default_value = "passthrough,window,engine,restore,nexmark,avro"
    )]
    workloads: Vec<String>,
    /// Brokers, comma-separated: embedded, tansu, kafka.
    #[arg(
        long,
        env = "BENCH_BROKERS",
        value_delimiter = ',',
        default_value = "embedded,tansu,kafka"
    )]
    brokers: Vec<String>,
    /// The `tansu` binary.
    #[arg(long, env = "BENCH_TANSU", default_value = "bench/.tools/bin/tansu")]
    tansu: PathBuf,
    /// The script that starts and stops a real Apache Kafka broker (`start DIR`, `stop DIR`).
    #[arg(long, env = "BENCH_KAFKA_SCRIPT", default_value = "scripts/kafka.sh")]
    kafka_script: PathBuf,
    /// The Kafka Streams contender's Maven build directory (`classes/`, `lib/`; Kafka Streams
    /// is skipped when it is missing).
    #[arg(
        long,
        env = "BENCH_KAFKA_STREAMS",
        default_value = "bench/peers/kafka-streams/target"
    )]
    kafka_streams: PathBuf,
    /// The `java` that runs Kafka Streams.
    #[arg(long, env = "BENCH_JAVA", default_value = "java")]
    java: PathBuf,
    /// Brokers Kafka Streams runs on (it needs an admin API, which the embedded broker lacks).
    #[arg(
        long,
        env = "BENCH_KAFKA_STREAMS_BROKERS",
        value_delimiter = ',',
        default_value = "tansu,kafka"
    )]
    kafka_streams_brokers: Vec<String>,
    /// JVM options of the Kafka Streams contender, space-separated (none: the JVM's defaults).
    #[arg(long, env = "BENCH_KAFKA_STREAMS_JVM", default_value = "")]
    kafka_streams_jvm: String,
    /// Python of the peers' virtual environment (peers are skipped when it is missing).
    #[arg(long, env = "BENCH_PYTHON", default_value = "bench/.venv/bin/python")]
    python: PathBuf,
    /// Directory of the release binaries (`contender`, `engine_window_count`, `nexmark`).
    #[arg(long, env = "BENCH_BIN_DIR")]
    bin_dir: PathBuf,
    /// Seconds after which one contender run is killed and reported failed.
    #[arg(long, env = "BENCH_TIMEOUT", default_value_t = 900)]
    timeout: u64,
    /// Where the report goes.
    #[arg(long, default_value = "bench/results/latest.md")]
    out: PathBuf,
}

/// Bytes a mock-broker partition keeps before it drops its oldest records (librdkafka's
/// `rdkafka_mock.c` hard-codes 5 MiB); the harness stays well below.
const MOCK_PARTITION_BYTES: u64 = 3 * 1024 * 1024;

enum BrokerKind {
    Embedded(EmbeddedBroker),
    Tansu {
        child: Child,
        bootstrap: String,
    },
    /// Started by `scripts/kafka.sh start dir`, stopped by `stop dir`.
    Kafka {
        script: PathBuf,
        dir: PathBuf,
        bootstrap: String,
    },
}

struct Broker {
    name: &'static str,
    kind: BrokerKind,
    /// librdkafka settings every client of this broker gets.
    client: Vec<(String, String)>,
    /// The same for Kafka Streams' Java clients (StreamsConfig keys, client prefixes).
    java_client: Vec<(String, String)>,
}

impl Drop for Broker {
    fn drop(&mut self) {
        match &mut self.kind {
            BrokerKind::Embedded(_) => {}
            BrokerKind::Tansu { child, .. } => {
                let _ = child.kill();
                let _ = child.wait();
            }
            BrokerKind::Kafka { script, dir, .. } => {
                let _ = Command::new(script)
                    .arg("stop")
                    .arg(&*dir)
                    .stdin(Stdio::null())
                    .status();
            }
        }
    }
}

/// librdkafka settings every librdkafka client of every broker gets (the raw loops, streamkit,
/// Quix Streams' consumer; `bench/peers/quix_window_count.py` sets the same).
/// `fetch.queue.backoff.ms`: librdkafka's default (1000 ms) stops fetching for a second each
/// time its local queue holds more than `queued.min.messages`, which a consumer draining
/// 100 000 records in under a second turns into idle time: reads ran at ≈200k records/s where
/// the client reads ≈1M/s from Tansu. (streamkit sets 10 ms by default; listing it here keeps
/// the limits and peers on equal terms.)
fn common_client() -> Vec<(String, String)> {
    vec![("fetch.queue.backoff.ms".into(), "10".into())]
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Broker {
    fn embedded() -> anyhow::Result<Broker> {
        Ok(Broker {
            name: "embedded",
            kind: BrokerKind::Embedded(EmbeddedBroker::start()?),
            client: common_client(),
            java_client: vec![],
        })
    }

    fn tansu(bin: &Path, logs: &Path) -> anyhow::Result<Broker> {
        let port = free_port()?;
        let url = format!("tcp://127.0.0.1:{port}");
        let log = std::fs::File::create(logs.join("tansu.log"))?;
        let child = Command::new(bin)
            .args(["broker", "--storage-engine", "memory://tansu/"])
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let bootstrap = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&bootstrap).is_err() {
            if Instant::now() > deadline {
                bail!("tansu did not listen on {bootstrap} within 30 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Broker {
            name: "tansu",
            kind: BrokerKind::Tansu { child, bootstrap },
            // Tansu answers a fetch only when fetch.wait.max.ms passes: keep it short.
            client: [("fetch.wait.max.ms".to_string(), "5".to_string())]
                .into_iter()
                .chain(common_client())
                .collect(),
            // The Java consumers' name of it (every consumer of the application).
            java_client: vec![("consumer.fetch.max.wait.ms".into(), "5".into())],
        })
    }

    /// A real Apache Kafka broker (KRaft, one combined broker/controller node on a free port)
    /// in `logs/kafka`, through `scripts/kafka.sh`.
    fn kafka(script: &Path, logs: &Path) -> anyhow::Result<Broker> {
        let dir = logs.join("kafka");
        let out = Command::new(script)
            .arg("start")
            .arg(&dir)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("cannot run {}", script.display()))?;
        // Stopped on drop even when the start failed half-way.
        let mut broker = Broker {
            name: "kafka",
            kind: BrokerKind::Kafka {
                script: script.to_path_buf(),
                dir: dir.clone(),
                bootstrap: String::new(),
            },
            client: common_client(),
            java_client: vec![],
        };
        if !out.status.success() {
            bail!("{} start failed: {}", script.display(), out.status);
        }
        let bootstrap = std::fs::read_to_string(dir.join("bootstrap"))
            .context("kafka.sh wrote no bootstrap file")?
            .trim()
            .to_string();
        if let BrokerKind::Kafka { bootstrap: b, .. } = &mut broker.kind {
            *b = bootstrap;
        }
        Ok(broker)
    }

    fn bootstrap(&self) -> String {
        match &self.kind {
            BrokerKind::Embedded(b) => b.bootstrap_servers().to_string(),
            BrokerKind::Tansu { bootstrap, .. } | BrokerKind::Kafka { bootstrap, .. } => {
                bootstrap.clone()
            }
        }
    }

    fn is_embedded(&self) -> bool {
        matches!(self.kind, BrokerKind::Embedded(_))
    }

    /// Partitions for a topic of `records` records of about `bytes` each: one on a real
    /// broker; on the mock, enough that no partition outgrows its retention.
    fn partitions(&self, records: u64, bytes: u64) -> i32 {
        if self.is_embedded() {
            (records * bytes).div_ceil(MOCK_PARTITION_BYTES).max(1) as i32
        } else {
            1
        }
    }

    fn create_topic(&self, name: &str, partitions: i32) -> anyhow::Result<()> {
        match &self.kind {
            BrokerKind::Embedded(b) => Ok(b.create_topic(name, partitions)?),
            BrokerKind::Tansu { bootstrap, .. } | BrokerKind::Kafka { bootstrap, .. } => {
                let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
                    .set("bootstrap.servers", bootstrap)
                    .create()?;
                // Quix Streams reads retention.ms / retention.bytes back from every topic.
                let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1))
                    .set("retention.ms", "-1")
                    .set("retention.bytes", "-1");
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                let results = rt.block_on(admin.create_topics([&topic], &AdminOptions::new()))?;
                for r in results {
                    if let Err((topic, code)) = r
                        && code != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists
                    {
                        bail!("cannot create {topic}: {code}");
                    }
                }
                Ok(())
            }
        }
    }

    /// Produces `records` records (`make(i)` → key, value, timestamp) and waits for every
    /// acknowledgement.
    fn preload(
        &self,
        topic: &str,
        records: u64,
        make: impl Fn(u64) -> (Vec<u8>, Vec<u8>, i64),
    ) -> anyhow::Result<Duration> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.bootstrap())
            .set("linger.ms", "20")
            .set("batch.size", "1000000")
            .set("queue.buffering.max.messages", "1000000")
            .set("partitioner", "murmur2_random");
        let producer: BaseProducer = c.create()?;
        let started = Instant::now();
        for i in 0..records {
            if i + 1 == records && i > 0 {
                // Tansu 0.6 reports a partition's end offset as its last batch's base offset
                // + 1: send the last record in a batch of its own so the end offset is right
                // (restores read up to it).
                producer.flush(Duration::from_secs(120))?;
            }
            let (k, v, ts) = make(i);
            let mut r = BaseRecord::to(topic).key(&k).payload(&v).timestamp(ts);
            loop {
                match producer.send(r) {
                    Ok(()) => break,
                    Err((e, back)) => {
                        if !matches!(
                            e.rdkafka_error_code(),
                            Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                        ) {
                            bail!("produce to {topic}: {e}");
                        }
                        producer.poll(Duration::from_millis(5));
                        r = back;
                    }
                }
            }
            if i % 1000 == 0 {
                producer.poll(Duration::ZERO);
            }
        }
        producer.flush(Duration::from_secs(120))?;
        Ok(started.elapsed())
    }
}

/// The Kafka Streams contender's row.
const KAFKA_STREAMS: &str = "Kafka Streams";

/// The targets against Kafka Streams: streamkit ≥ 2× its records per CPU-second and (when
/// `rss`) a peak RSS ≤ 1/3 of its.
fn kafka_streams_targets(rss: bool) -> Vec<Target> {
    let mut t = vec![Target {
        row: KAFKA_STREAMS.into(),
        metric: Metric::PerCore,
        ratio: 2.0,
    }];
    if rss {
        t.push(Target {
            row: KAFKA_STREAMS.into(),
            metric: Metric::PeakRss,
            ratio: 3.0,
        });
    }
    t
}

/// Timestamps of the broker inputs: 1 ms apart from a round start, so a 60 s window holds
/// 60 000 records.
const BASE_TS: i64 = 1_700_000_000_000 - 1_700_000_000_000 % 60_000;

fn input_record(i: u64, keys: u64) -> (Vec<u8>, Vec<u8>, i64) {
    let (k, v) = kafka_record(i, keys);
    (k.into_bytes(), v.into_bytes(), BASE_TS + i as i64)
}

/// Keeps a run's output in `<tmp>/streamkit-bench-logs/` (a failed one's always, every one's
/// with `BENCH_KEEP_LOGS` set); returns the file.
fn keep_log(label: &str, stdout: &Path, stderr: &Path) -> PathBuf {
    let dir = std::env::temp_dir().join("streamkit-bench-logs");
    let _ = std::fs::create_dir_all(&dir);
    let log = dir.join(format!(
        "{}-{}.log",
        label.replace(' ', "-"),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    ));
    let out = std::fs::read_to_string(stdout).unwrap_or_default();
    let err = std::fs::read_to_string(stderr).unwrap_or_default();
    let _ = std::fs::write(&log, format!("{out}\n--- stderr ---\n{err}"));
    log
}

/// Runs a contender process to completion and reads its result line.
fn run_process(mut cmd: Command, timeout: Duration, label: &str) -> Result<Run, String> {
    let out_file = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    let err_file = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    let mut child = cmd
        .stdout(out_file.reopen().map_err(|e| e.to_string())?)
        .stderr(err_file.reopen().map_err(|e| e.to_string())?)
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start: {e}"))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let log = keep_log(label, out_file.path(), err_file.path());
            let msg = format!(
                "killed after {} s (log: {})",
                timeout.as_secs(),
                log.display()
            );
            eprintln!("  {label}: FAILED {msg}");
            return Err(msg);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = std::fs::read_to_string(out_file.path()).unwrap_or_default();
    let stderr = std::fs::read_to_string(err_file.path()).unwrap_or_default();
    match Run::from_output(&stdout) {
        Some(run) if status.success() => {
            if std::env::var_os("BENCH_KEEP_LOGS").is_some() {
                let log = keep_log(label, out_file.path(), err_file.path());
                eprintln!("  {label}: log in {}", log.display());
            }
            eprintln!(
                "  {label}: {:.0} records/s ({} records, {:.2} s, {:.2} CPU s, {} MiB peak)",
                run.rate(),
                run.records,
                run.seconds,
                run.cpu_seconds,
                run.peak_rss_kib / 1024
            );
            Ok(run)
        }
        _ => {
            let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            let log = keep_log(label, out_file.path(), err_file.path());
            let msg = format!("{status}: {} (log: {})", tail.join(" / "), log.display());
            eprintln!("  {label}: FAILED {msg}");
            Err(msg)
        }
    }
}

struct Ctx {
    args: Args,
    logs: tempfile::TempDir,
    sections: Vec<String>,
    facts: BTreeMap<&'static str, String>,
    seq: u64,
}

impl Ctx {
    fn contender(&self, broker: &Broker) -> Command {
        let mut cmd = Command::new(self.args.bin_dir.join("contender"));
        cmd.args(["--bootstrap", &broker.bootstrap()])
            .args(["--records", &self.args.records.to_string()])
            .args(["--timeout", &self.args.timeout.to_string()]);
        for (k, v) in &broker.client {
            cmd.args(["--client", &format!("{k}={v}")]);
        }
        cmd
    }

    fn unique(&mut self, prefix: &str) -> String {
        self.seq += 1;
        format!("{prefix}-{}-{}", std::process::id(), self.seq)
    }

    /// When the harness kills a contender: after its own timeout has had time to report.
    fn timeout(&self) -> Duration {
        Duration::from_secs(self.args.timeout + 30)
    }

    fn has_python(&self) -> bool {
        self.args.python.exists()
    }

    /// Whether Kafka Streams runs on `broker`: one of `--kafka-streams-brokers` (it needs the
    /// admin API for its internal topics, which the mock broker lacks), and its Maven build.
    fn runs_kafka_streams(&self, broker: &Broker) -> bool {
        !broker.is_embedded()
            && self
                .args
                .kafka_streams_brokers
                .iter()
                .any(|b| b == broker.name)
            && self.args.kafka_streams.join("classes").exists()
    }

    /// Runs Kafka Streams once (`cmd`) for `ks`, unless an earlier run of it failed (one on a
    /// broker it cannot work with would fail every run, each only after its start timeout).
    fn run_kafka_streams(&self, ks: &mut Contender, cmd: Command) {
        let run = if ks.runs.iter().any(Result::is_err) {
            Err("not run: an earlier run failed".to_string())
        } else {
            run_process(cmd, self.timeout(), KAFKA_STREAMS)
        };
        ks.runs.push(run);
    }

    /// One run of the Kafka Streams contender (`workload`: passthrough, window, restore) in
    /// its own JVM; `state` is its state directory.
    fn kafka_streams(
        &self,
        broker: &Broker,
        workload: &str,
        app_id: &str,
        topics: &[&str],
        state: &Path,
    ) -> Command {
        let dir = &self.args.kafka_streams;
        let mut cmd = Command::new(&self.args.java);
        cmd.args(self.args.kafka_streams_jvm.split_whitespace())
            .arg("-cp")
            .arg(format!(
                "{}:{}/*",
                dir.join("classes").display(),
                dir.join("lib").display()
            ))
            .arg("io.streamkit.bench.KafkaStreamsContender")
            .arg(workload)
            .args(["--bootstrap", &broker.bootstrap()])
            .args(["--records", &self.args.records.to_string()])
            .args(["--timeout", &self.args.timeout.to_string()])
            .args(["--app-id", app_id])
            .arg("--state-dir")
            .arg(state);
        for (flag, topic) in ["--input", "--output"].iter().zip(topics) {
            cmd.args([flag, topic]);
        }
        for (k, v) in &broker.java_client {
            cmd.args(["--set", &format!("{k}={v}")]);
        }
        cmd
    }

    /// Workload 1: consume → produce to another topic.
    fn passthrough(&mut self, broker: &Broker) -> anyhow::Result<()> {
        let n = self.args.records;
        let parts = broker.partitions(n, 160);
        let input = self.unique("pass-in");
        broker.create_topic(&input, parts)?;
        let took = broker.preload(&input, n, |i| input_record(i, self.args.keys))?;
        eprintln!(
            "passthrough on {}: preloaded {n} records in {took:?}",
            broker.name
        );
        let mut raw = Contender {
            name: "raw rdkafka loop".into(),
            runs: vec![],
        };
        let mut raw_idempotent = Contender {
            name: "raw loop, idempotent producer".into(),
            runs: vec![],
        };
        let mut sk = Contender {
            name: "streamkit".into(),
            runs: vec![],
        };
        let mut sk_plain = Contender {
            name: "streamkit, producer not idempotent".into(),
            runs: vec![],
        };
        let with_ks = self.runs_kafka_streams(broker);
        let mut ks = Contender {
            name: KAFKA_STREAMS.into(),
            runs: vec![],
        };
        // The ordered opt-out from the idempotent producer (one request in flight).
        let not_idempotent = [
            "--streamkit-set",
            "producer.enable.idempotence=false",
            "--streamkit-set",
            "producer.max.in.flight.requests.per.connection=1",
        ];
        for _ in 0..self.args.runs {
            // (contender, flags before the subcommand, subcommand, flags after it)
            let rows: [(&mut Contender, &[&str], &str, &[&str]); 4] = [
                (&mut raw, &[], "passthrough-raw", &[]),
                (
                    &mut raw_idempotent,
                    &[],
                    "passthrough-raw",
                    &["--idempotent"],
                ),
                (&mut sk, &[], "passthrough-streamkit", &[]),
                (&mut sk_plain, &not_idempotent, "passthrough-streamkit", &[]),
            ];
            for (contender, before, subcommand, after) in rows {
                let out = self.unique("pass-out");
                broker.create_topic(&out, parts)?;
                let mut cmd = self.contender(broker);
                cmd.args(before)
                    .args([subcommand, "--input", &input, "--output", &out])
                    .args(after);
                if subcommand == "passthrough-streamkit" {
                    cmd.args(["--app-id", &self.unique("pass-app")]);
                }
                contender
                    .runs
                    .push(run_process(cmd, self.timeout(), &contender.name));
            }
            if with_ks {
                let out = self.unique("pass-out");
                broker.create_topic(&out, parts)?;
                let state = tempfile::tempdir()?;
                let app = self.unique("pass-ks");
                let cmd =
                    self.kafka_streams(broker, "passthrough", &app, &[&input, &out], state.path());
                self.run_kafka_streams(&mut ks, cmd);
            }
        }
        let mut contenders = vec![raw, raw_idempotent, sk, sk_plain];
        let mut targets = vec![Target {
            row: "raw loop, idempotent producer".into(),
            metric: Metric::Rate,
            ratio: 0.8,
        }];
        if with_ks {
            contenders.push(ks);
            targets.extend(kafka_streams_targets(true));
        }
        self.sections.push(
            Table {
                title: format!(
                    "1. Passthrough — {} broker, {n} records, {parts} partition(s)",
                    broker.name
                ),
                metric: Metric::Rate,
                subject: "streamkit".into(),
                contenders,
                targets,
                note: format!(
                    "Limit: `BaseConsumer` assigned every partition → `BaseProducer::send` \
                     (no commits) with an idempotent producer (`enable.idempotence=true`, the \
                     delivery guarantee of streamkit's and Kafka Streams' at-least-once \
                     producers); the target is against it. For reference, the same loop with \
                     librdkafka's default producer (not idempotent): \"raw rdkafka loop\". \
                     streamkit: `stream().map_values(|v| v).to()` (string serdes, one stream \
                     thread, at-least-once commits every 30 s, the default). For reference, \
                     streamkit with the opt-out from the idempotent producer that keeps each \
                     partition's order (`producer.enable.idempotence=false`, \
                     `producer.max.in.flight.requests.per.connection=1`; duplicates possible \
                     when librdkafka retries).{} All timed to the last record handed to the \
                     producer.",
                    if with_ks {
                        " Kafka Streams: `stream().mapValues(v -> v).to()` (its settings are \
                         under Machine)."
                    } else {
                        ""
                    }
                ),
            }
            .render(),
        );
        Ok(())
    }

    /// Workloads 2 and 5: windowed count; peak RSS of the same runs.
    fn window(&mut self, broker: &Broker) -> anyhow::Result<()> {
        let n = self.args.records;
        let parts = broker.partitions(n, 160);
        let input = self.unique("win-in");
        broker.create_topic(&input, parts)?;
        let took = broker.preload(&input, n, |i| input_record(i, self.args.keys))?;
        eprintln!(
            "window on {}: preloaded {n} records in {took:?}",
            broker.name
        );
        // The Python peers need the admin API (absent from the mock broker).
        let peers: Vec<(&str, &str)> = if broker.is_embedded() || !self.has_python() {
            vec![]
        } else {
            vec![
                ("Quix Streams", "bench/peers/quix_window_count.py"),
                ("Faust", "bench/peers/faust_window_count.py"),
            ]
        };
        let mut sk = Contender {
            name: "streamkit".into(),
            runs: vec![],
        };
        let mut others: Vec<Contender> = peers
            .iter()
            .map(|(name, _)| Contender {
                name: name.to_string(),
                runs: vec![],
            })
            .collect();
        let with_ks = self.runs_kafka_streams(broker);
        let mut ks = Contender {
            name: KAFKA_STREAMS.into(),
            runs: vec![],
        };
        for _ in 0..self.args.runs {
            let app = self.unique("win-app");
            let out = self.unique("win-out-sk");
            broker.create_topic(&out, parts)?;
            if broker.is_embedded() {
                // The mock has no admin API: create the changelog the runtime would.
                broker.create_topic(&format!("{app}-counts-changelog"), parts)?;
            }
            let mut cmd = self.contender(broker);
            cmd.args(["window-streamkit", "--input", &input, "--output", &out])
                .args(["--app-id", &app]);
            sk.runs.push(run_process(cmd, self.timeout(), "streamkit"));
            for ((name, script), c) in peers.iter().zip(others.iter_mut()) {
                let app = self.unique("win-peer");
                let out = self.unique("win-out-peer");
                broker.create_topic(&out, parts)?;
                let state = tempfile::tempdir()?;
                let records = if *name == "Faust" {
                    n.min(self.args.faust_records)
                } else {
                    n
                };
                let mut cmd = Command::new(&self.args.python);
                cmd.arg(script)
                    .args(["--bootstrap", &broker.bootstrap()])
                    .args(["--input", &input, "--output", &out, "--app-id", &app])
                    .args(["--records", &records.to_string()])
                    .arg("--state-dir")
                    .arg(state.path());
                c.runs.push(run_process(cmd, self.timeout(), name));
            }
            if with_ks {
                let app = self.unique("win-ks");
                let out = self.unique("win-out-ks");
                broker.create_topic(&out, parts)?;
                let state = tempfile::tempdir()?;
                let cmd = self.kafka_streams(broker, "window", &app, &[&input, &out], state.path());
                self.run_kafka_streams(&mut ks, cmd);
            }
        }
        let mut contenders = vec![sk];
        contenders.extend(others);
        let mut targets: Vec<Target> = [("Quix Streams", 20.0), ("Faust", 50.0)]
            .into_iter()
            .filter(|_| !peers.is_empty())
            .map(|(row, ratio)| Target {
                row: row.into(),
                metric: Metric::Rate,
                ratio,
            })
            .collect();
        let mut rss_targets: Vec<Target> = targets
            .iter()
            .map(|t| Target {
                row: t.row.clone(),
                metric: Metric::PeakRss,
                ratio: 1.0,
            })
            .collect();
        if with_ks {
            contenders.push(ks);
            targets.extend(kafka_streams_targets(false));
            rss_targets.push(Target {
                row: KAFKA_STREAMS.into(),
                metric: Metric::PeakRss,
                ratio: 3.0,
            });
        }
        let peers_note = if peers.is_empty() {
            if broker.is_embedded() {
                "The Python peers and Kafka Streams need the admin API, which the mock broker \
                 lacks: they run on the other brokers."
            } else {
                "The Python peers were not run: no virtual environment (`bench/run` creates it)."
            }
        } else {
            "Quix Streams: `sdf.tumbling_window(60 s).count().current()` (RocksDB state, \
             changelog), Faust: a tumbling 60 s table (RocksDB when `faust[rocksdb]` installs, \
             else memory) counting per key, each writing every update to a topic \
             (`bench/peers/`). Each peer times itself from its first record to its last. \
             Faust processes the first `BENCH_FAUST_RECORDS` records only (its rate is per \
             record all the same)."
        };
        let table = Table {
            title: format!(
                "2. Windowed count — {} broker, {n} records, {} keys, {parts} partition(s)",
                broker.name, self.args.keys
            ),
            metric: Metric::Rate,
            subject: "streamkit".into(),
            contenders,
            targets,
            note: format!(
                "streamkit: `group_by_key().windowed_by(tumbling 60 s).count()` with a RocksDB \
                 store, its changelog and the record cache (Kafka Streams' default), results \
                 to a topic, commits every second. {peers_note}{}",
                if with_ks {
                    " Kafka Streams: `groupByKey().windowedBy(TimeWindows.ofSizeWithNoGrace(60 \
                     s)).count(Materialized.as(\"counts\"))` (RocksDB store, changelog, record \
                     cache, all its defaults) `.toStream().to()`, commits every second."
                } else {
                    ""
                }
            ),
        };
        let rss = Table {
            title: format!(
                "5. Peak RSS during the windowed count — {} broker",
                broker.name
            ),
            metric: Metric::PeakRss,
            subject: "streamkit".into(),
            contenders: table.contenders.clone(),
            targets: rss_targets,
            note: "`VmHWM` of each contender's own process (the broker not included; for \
                   Kafka Streams, the whole JVM)."
                .into(),
        };
        self.sections.push(table.render());
        self.sections.push(rss.render());
        Ok(())
    }

    /// Workload 4: restore a store of `records` entries from its changelog.
    fn restore(&mut self, broker: &Broker) -> anyhow::Result<()> {
        let n = self.args.records;
        let parts = broker.partitions(n, 60);
        let mut raw = Contender {
            name: "raw rdkafka read".into(),
            runs: vec![],
        };
        let mut sk = Contender {
            name: "streamkit".into(),
            runs: vec![],
        };
        let with_ks = self.runs_kafka_streams(broker);
        let mut ks = Contender {
            name: KAFKA_STREAMS.into(),
            runs: vec![],
        };
        for _ in 0..self.args.runs {
            let app = self.unique("restore-app");
            let input = format!("{app}-input");
            let changelog = format!("{app}-store-changelog");
            broker.create_topic(&input, parts)?;
            broker.create_topic(&changelog, parts)?;
            // 1M distinct keys, each with a count (Kafka's big-endian long).
            broker.preload(&changelog, n, |i| {
                (
                    format!("key-{i:08}").into_bytes(),
                    1i64.to_be_bytes().to_vec(),
                    BASE_TS,
                )
            })?;
            let mut cmd = self.contender(broker);
            cmd.args(["restore-raw", "--changelog", &changelog]);
            raw.runs
                .push(run_process(cmd, self.timeout(), "raw rdkafka read"));
            let mut cmd = self.contender(broker);
            cmd.args(["restore-streamkit", "--input", &input, "--app-id", &app]);
            sk.runs.push(run_process(cmd, self.timeout(), "streamkit"));
            if with_ks {
                // An application id of its own, with its own copy of the changelog: Tansu
                // keeps listing streamkit's member in a group it has left, and Kafka
                // Streams' join of that group then fails (InconsistentGroupProtocol).
                let ks_app = format!("{app}-ks");
                let ks_input = format!("{ks_app}-input");
                let ks_changelog = format!("{ks_app}-store-changelog");
                broker.create_topic(&ks_input, parts)?;
                broker.create_topic(&ks_changelog, parts)?;
                broker.preload(&ks_changelog, n, |i| {
                    (
                        format!("key-{i:08}").into_bytes(),
                        1i64.to_be_bytes().to_vec(),
                        BASE_TS,
                    )
                })?;
                let state = tempfile::tempdir()?;
                let cmd =
                    self.kafka_streams(broker, "restore", &ks_app, &[&ks_input], state.path());
                self.run_kafka_streams(&mut ks, cmd);
            }
        }
        let mut contenders = vec![raw, sk];
        let mut targets = vec![Target {
            row: "raw rdkafka read".into(),
            metric: Metric::Rate,
            ratio: 0.5,
        }];
        if with_ks {
            contenders.push(ks);
            targets.extend(kafka_streams_targets(true));
        }
        self.sections.push(
            Table {
                title: format!(
                    "4. Restore — {} broker, {n}-entry store, {parts} changelog partition(s)",
                    broker.name
                ),
                metric: Metric::Rate,
                subject: "streamkit".into(),
                contenders,
                targets,
                note: format!(
                    "A key-value store (RocksDB) of a `count()` restored from its changelog \
                     in a fresh state directory, timed from the first restored record until all \
                     are restored and the application is running (the `restored_records` \
                     metric and the state, polled every 2 ms). Limit: a \
                     `BaseConsumer` assigned every changelog partition reading to the end.{}",
                    if with_ks {
                        " Kafka Streams: `groupByKey().count(Materialized.as(\"store\"))` \
                         restored from an identical changelog of its own (its own application \
                         id), timed from its first restored batch \
                         (`StateRestoreListener.onBatchRestored`, as streamkit's metric counts written batches) until every record is \
                         restored, the restore has ended and the client is `RUNNING`, polled \
                         every 2 ms; its restore consumer's defaults."
                    } else {
                        ""
                    }
                ),
            }
            .render(),
        );
        Ok(())
    }

    /// Workload 3: the engine in-process against a raw RocksDB loop.
    fn engine(&mut self) -> anyhow::Result<()> {
        let mut cmd = Command::new(self.args.bin_dir.join("engine_window_count"));
        cmd.args(["--records", &self.args.records.to_string()])
            .args(["--keys", &self.args.keys.to_string()])
            .args(["--runs", &self.args.runs.to_string()]);
        eprintln!("engine only: {cmd:?}");
        let out = cmd.output()?;
        if !out.status.success() {
            bail!(
                "engine_window_count failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        self.sections.push(format!(
            "### 3. Engine only (no broker) — {} records, {} keys\n\n```\n{}```\n\n\
             `bench/src/bin/engine_window_count.rs`: the tumbling 60 s count through \
             `TopologyTestDriver` with a RocksDB store (changelog off: no broker) against the \
             same read-increment-write loop on the rocksdb crate (WAL off). Ratio = streamkit ÷ \
             raw loop.\n\n",
            self.args.records,
            self.args.keys,
            String::from_utf8_lossy(&out.stdout)
        ));
        Ok(())
    }

    /// Workload 7: Avro against JSON through one passthrough topology, in-process.
    fn avro(&mut self) -> anyhow::Result<()> {
        let mut cmd = Command::new(self.args.bin_dir.join("avro_passthrough"));
        cmd.args(["--records", &self.args.records.to_string()])
            .args(["--runs", &self.args.runs.to_string()]);
        eprintln!("avro: {cmd:?}");
        let out = cmd.output()?;
        if !out.status.success() {
            bail!(
                "avro_passthrough failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        self.sections.push(format!(
            "### 7. Avro against JSON (no broker) — {} records\n\n```\n{}```\n\n\
             `bench/src/bin/avro_passthrough.rs`: the same `stream().to()` passthrough decoding \
             into a typed 7-field record and encoding it again, through `TopologyTestDriver`, \
             once with `Serdes::json` and once with `Avro` (Confluent wire format, embedded \
             registry). Ratio = Avro ÷ JSON (target ≥ 0.70); registry requests are counted \
             over the timed runs (the ids are cached after the warm-up).\n\n",
            self.args.records,
            String::from_utf8_lossy(&out.stdout)
        ));
        Ok(())
    }

    /// Workload 6: Nexmark, through Kafka and in-process.
    fn nexmark(&mut self, brokers: &[Broker]) -> anyhow::Result<()> {
        let mut cmd = Command::new(self.args.bin_dir.join("nexmark"));
        cmd.args(["--events", &self.args.nexmark_events.to_string()])
            .args(["--runs", &self.args.runs.to_string()]);
        for b in brokers {
            cmd.args(["--broker", &format!("{}={}", b.name, b.bootstrap())]);
            if b.is_embedded() {
                cmd.args(["--embedded", b.name]);
            }
            for (k, v) in &b.client {
                cmd.args(["--client", &format!("{}:{k}={v}", b.name)]);
            }
        }
        cmd.args(["--timeout", &self.args.timeout.to_string()]);
        eprintln!("nexmark: {cmd:?}");
        let out = cmd.stderr(Stdio::inherit()).output()?;
        if !out.status.success() {
            bail!("nexmark failed");
        }
        self.sections
            .push(String::from_utf8_lossy(&out.stdout).into_owned());
        Ok(())
    }
}

fn command_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// The `<kafka.version>` property of a Maven `pom.xml`.
fn pom_version(pom: &Path) -> String {
    std::fs::read_to_string(pom)
        .ok()
        .and_then(|s| {
            let start = s.find("<kafka.version>")? + "<kafka.version>".len();
            let end = start + s[start..].find('<')?;
            Some(s[start..end].trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn machine_facts(args: &Args) -> BTreeMap<&'static str, String> {
    let mut f = BTreeMap::new();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    f.insert("cpu", format!("{cores} cores, {model}"));
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem = streamkit_bench::parse_status_kib(&meminfo, "MemTotal:").unwrap_or(0);
    f.insert("memory", format!("{:.1} GiB", mem as f64 / 1024.0 / 1024.0));
    f.insert("kernel", command_line("uname", &["-sr"]));
    // Other work on the machine skews wall-clock rates (not CPU-second ones): say how busy
    // it was when the run started.
    f.insert(
        "load average at start (1, 5, 15 min)",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(", "),
    );
    f.insert("rustc", command_line("rustc", &["--version"]));
    f.insert("librdkafka", rdkafka::util::get_rdkafka_version().1);
    // The engine measured: the commit of the working tree, and whether its `streamkit/` has
    // changes not committed.
    let dirty = command_line("git", &["status", "--porcelain", "--", "streamkit"]);
    f.insert(
        "streamkit",
        format!(
            "{} (commit {}{})",
            env!("CARGO_PKG_VERSION"),
            command_line("git", &["rev-parse", "--short", "HEAD"]),
            if dirty.is_empty() || dirty == "unknown" {
                ""
            } else {
                " with uncommitted changes in streamkit/"
            }
        ),
    );
    if args.brokers.iter().any(|b| b == "tansu") {
        f.insert(
            "tansu",
            command_line(&args.tansu.to_string_lossy(), &["--version"]),
        );
    }
    if args.brokers.iter().any(|b| b == "kafka") {
        f.insert(
            "kafka",
            format!(
                "Apache Kafka {} (KRaft, one combined broker/controller node started by \
                 `scripts/kafka.sh`: 512 MiB heap, C1 JIT only, as for tests)",
                pom_version(&args.kafka_script.with_file_name("kafka").join("pom.xml"))
            ),
        );
    }
    if args.kafka_streams.join("classes").exists() {
        let java = Command::new(&args.java)
            .arg("-version")
            .output()
            .ok()
            .and_then(|o| {
                // `java -version` writes to stderr.
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .next()
                    .map(str::to_string)
            })
            .unwrap_or_else(|| "unknown".into());
        f.insert("java", java);
        f.insert(
            "kafka streams",
            format!(
                "{} (JVM options: {})",
                pom_version(&args.kafka_streams.with_file_name("pom.xml")),
                if args.kafka_streams_jvm.is_empty() {
                    "none, the JVM's defaults"
                } else {
                    args.kafka_streams_jvm.as_str()
                }
            ),
        );
    }
    if args.python.exists() {
        let py = args.python.to_string_lossy().to_string();
        f.insert("python", command_line(&py, &["--version"]));
        let versions = command_line(
            &py,
            &[
                "-c",
                "import importlib.metadata as m\n\
                 for p in ('quixstreams', 'faust-streaming', 'rocksdict', 'faust-streaming-rocksdb', 'aiokafka'):\n\
                 \ttry: print(p, m.version(p))\n\
                 \texcept m.PackageNotFoundError: pass",
            ],
        );
        f.insert("python packages", versions.replace('\n', ", "));
    }
    f
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let facts = machine_facts(&args);
    let mut ctx = Ctx {
        logs: tempfile::tempdir()?,
        sections: vec![],
        facts,
        seq: 0,
        args,
    };
    let started = Instant::now();
    let date = command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let wants = |w: &str| ctx.args.workloads.iter().any(|x| x == w);
    let (w_pass, w_win, w_engine, w_restore, w_nex) = (
        wants("passthrough"),
        wants("window"),
        wants("engine"),
        wants("restore"),
        wants("nexmark"),
    );
    let w_avro = wants("avro");
    let mut brokers = Vec::new();
    let mut broker_notes = Vec::new();
    for name in ctx.args.brokers.clone() {
        let b = match name.as_str() {
            "embedded" => Broker::embedded(),
            "tansu" if !ctx.args.tansu.exists() => {
                broker_notes.push(format!(
                    "Tansu was not run: {} is missing (`bench/run` installs it).",
                    ctx.args.tansu.display()
                ));
                continue;
            }
            "tansu" => Broker::tansu(&ctx.args.tansu, ctx.logs.path()),
            "kafka" => Broker::kafka(&ctx.args.kafka_script, ctx.logs.path()),
            other => bail!("unknown broker {other}"),
        };
        match b {
            Ok(b) => brokers.push(b),
            Err(e) => broker_notes.push(format!("{name} did not start: {e:#}")),
        }
    }
    for b in &brokers {
        if w_pass && let Err(e) = ctx.passthrough(b) {
            ctx.sections.push(format!(
                "### 1. Passthrough — {}\n\nFailed: {e:#}\n\n",
                b.name
            ));
        }
        if w_win && let Err(e) = ctx.window(b) {
            ctx.sections.push(format!(
                "### 2. Windowed count — {}\n\nFailed: {e:#}\n\n",
                b.name
            ));
        }
        if w_restore && let Err(e) = ctx.restore(b) {
            ctx.sections
                .push(format!("### 4. Restore — {}\n\nFailed: {e:#}\n\n", b.name));
        }
    }
    if w_engine && let Err(e) = ctx.engine() {
        ctx.sections
            .push(format!("### 3. Engine only\n\nFailed: {e:#}\n\n"));
    }
    if w_avro && let Err(e) = ctx.avro() {
        ctx.sections
            .push(format!("### 7. Avro against JSON\n\nFailed: {e:#}\n\n"));
    }
    if w_nex && let Err(e) = ctx.nexmark(&brokers) {
        ctx.sections
            .push(format!("### 6. Nexmark\n\nFailed: {e:#}\n\n"));
    }
    let brokers_run: Vec<&str> = brokers.iter().map(|b| b.name).collect();
    drop(brokers);

    let mut md = String::new();
    let _ = writeln!(md, "# Benchmark results — {date}\n");
    let _ = writeln!(
        md,
        "Written by `bench/run` (see the README's Benchmarks section). Sizes: {} records per \
         broker workload, {} distinct keys, {} Nexmark events per query, {} runs of each \
         contender, interleaved (run 1 of every contender, then run 2, …). Took {:.0} s.\n",
        ctx.args.records,
        ctx.args.keys,
        ctx.args.nexmark_events,
        ctx.args.runs,
        started.elapsed().as_secs_f64()
    );
    let _ = writeln!(md, "## Machine\n");
    for (k, v) in &ctx.facts {
        let _ = writeln!(md, "- {k}: {v}");
    }
    let _ = writeln!(md, "- brokers: {}", ctx.args.brokers.join(", "));
    for n in &broker_notes {
        let _ = writeln!(md, "- {n}");
    }
    let _ = writeln!(
        md,
        "\nAll processes share the machine's cores with the broker; each contender runs alone \
         (one at a time). Rates are records per wall-clock second from each contender's first \
         record to its last one processed (output handed to its producer; the final flush and \
         close are not timed, for any contender); ratios are of medians. Per CPU-second: \
         records ÷ CPU-seconds of the contender's own process over the same interval, which \
         other load on the machine does not skew. Peak RSS: `VmHWM` of the contender's own \
         process at the end of its run (the broker not included).\n"
    );
    if ctx.args.kafka_streams.join("classes").exists()
        && brokers_run.iter().any(|b| {
            *b != "embedded"
                && ctx
                    .args
                    .kafka_streams_brokers
                    .iter()
                    .any(|k| k.as_str() == *b)
        })
    {
        let _ = writeln!(
            md,
            "Kafka Streams (`bench/peers/kafka-streams/`, built with Maven by `bench/run`) runs \
             on {} in a JVM of its own, one per run, \
             with Kafka Streams' defaults except what every contender gets: one stream thread, \
             at-least-once (its producer is idempotent by default, as streamkit's), the same \
             commit interval as streamkit's contender (30 s for passthrough, Kafka Streams' \
             default; 1 s for the windowed count and the restore), string serdes. Its record \
             cache has its default 10 MiB (`statestore.cache.max.bytes`, streamkit's \
             `cache_max_bytes` default too) and its RocksDB stores their default configuration. \
             On Tansu its consumers get `fetch.max.wait.ms=5`, as the librdkafka clients get \
             `fetch.wait.max.ms=5` there (Tansu answers a fetch only when that time has passed). \
             It is timed like the other contenders: from its first record to the last one \
             processed (counted in a processor that forwards each record down the topology, \
             to the producer's send, before counting it); its CPU-seconds are the whole JVM's \
             (`getProcessCpuTime`: stream, client, JIT and GC threads) over that interval. Each \
             run is a fresh JVM, so the interval includes the JIT's warm-up.\n",
            ctx.args.kafka_streams_brokers.join(", ")
        );
    }
    let _ = writeln!(md, "## Results\n");
    for s in &ctx.sections {
        md.push_str(s);
    }
    if let Some(dir) = ctx.args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&ctx.args.out, md)?;
    eprintln!("wrote {}", ctx.args.out.display());
    Ok(())
}
