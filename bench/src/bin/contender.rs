//! One run of one Rust contender against a broker, in its own process (so its CPU time and
//! peak RSS are its own). The harness (`bench/run`) preloads the topics, starts this binary
//! and reads the one `BENCH_RESULT {json}` line it prints: records, wall seconds from the first
//! record to the last one processed (its output handed to the producer; the final flush and
//! close are not timed, for any contender), CPU seconds over that interval and peak RSS.
//!
//! Every contender ends only when it has seen the expected number of records; the harness
//! kills it after `--timeout`.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use streamkit::prelude::*;
use streamkit::window::{TimeWindows, WindowedSerde};
use streamkit_bench::report::Run;
use streamkit_bench::{cpu_seconds, peak_rss_kib};

#[derive(Parser)]
struct Args {
    /// Bootstrap servers of the broker.
    #[arg(long)]
    bootstrap: String,
    /// Records expected (the run ends when this many are done).
    #[arg(long)]
    records: u64,
    /// librdkafka settings for every client, `key=value` (repeatable).
    #[arg(long = "client", value_parser = parse_kv)]
    client: Vec<(String, String)>,
    /// StreamsConfig settings for the streamkit contenders, `key=value` with streamkit's
    /// prefixes (`producer.enable.idempotence=false`; repeatable; for experiments).
    #[arg(long = "streamkit-set", env = "BENCH_STREAMKIT_SET", value_delimiter = ',', value_parser = parse_kv)]
    streamkit_set: Vec<(String, String)>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Subcommand)]
enum Workload {
    /// The limit of workload 1: a plain rdkafka consume → produce loop.
    PassthroughRaw {
        #[arg(long)]
        input: String,
        #[arg(long)]
        output: String,
        /// An idempotent producer (`enable.idempotence=true`, as streamkit's and Kafka
        /// Streams' at-least-once producers are) instead of librdkafka's plain default.
        #[arg(long)]
        idempotent: bool,
    },
    /// Workload 1 in streamkit: `stream().map_values().to()`.
    PassthroughStreamkit {
        #[arg(long)]
        input: String,
        #[arg(long)]
        output: String,
        #[arg(long)]
        app_id: String,
    },
    /// Workload 2 in streamkit: tumbling 60 s count per key, RocksDB store with changelog and
    /// record cache, results to a topic.
    WindowStreamkit {
        #[arg(long)]
        input: String,
        #[arg(long)]
        output: String,
        #[arg(long)]
        app_id: String,
    },
    /// The limit of workload 4: read a changelog topic to its end with a plain consumer.
    RestoreRaw {
        #[arg(long)]
        changelog: String,
    },
    /// Workload 4 in streamkit: restore the `store` key-value store of `app_id` from its
    /// changelog (`<app_id>-store-changelog`).
    RestoreStreamkit {
        /// The (empty) source topic of the counting topology.
        #[arg(long)]
        input: String,
        #[arg(long)]
        app_id: String,
    },
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected key=value, got {s:?}"))
}

/// Passthrough commits as Kafka Streams does by default (every 30 s; a commit waits for the
/// producer to flush, which the raw loop never does).
const PASSTHROUGH_COMMIT: Duration = Duration::from_secs(30);
/// The windowed count commits every second, as its Python peers are configured to, so the
/// record cache sends its updates during the run rather than in the untimed close.
const WINDOW_COMMIT: Duration = Duration::from_secs(1);

/// The store of the restore workload; its changelog is `<app id>-store-changelog`.
pub const RESTORE_STORE: &str = "store";

/// Start of a measured interval: wall clock and this process's CPU time.
struct Mark {
    at: Instant,
    cpu: f64,
}

impl Mark {
    fn now() -> Mark {
        Mark {
            at: Instant::now(),
            cpu: cpu_seconds(),
        }
    }

    fn finish(self, records: u64) -> Run {
        Run {
            records,
            seconds: self.at.elapsed().as_secs_f64(),
            cpu_seconds: cpu_seconds() - self.cpu,
            peak_rss_kib: peak_rss_kib(),
        }
    }
}

fn client(args: &Args) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &args.bootstrap);
    for (k, v) in &args.client {
        c.set(k, v);
    }
    c
}

/// A consumer assigned every partition of `topic` from the beginning (no group join).
fn assigned_consumer(
    args: &Args,
    topic: &str,
    group: &str,
    extra: &[(&str, &str)],
) -> anyhow::Result<BaseConsumer> {
    let mut config = client(args);
    for (k, v) in extra {
        config.set(*k, *v);
    }
    let consumer: BaseConsumer = config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut tpl = TopicPartitionList::new();
    for p in md.topics()[0].partitions() {
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning)?;
    }
    if tpl.count() == 0 {
        bail!("topic {topic} has no partitions");
    }
    consumer.assign(&tpl)?;
    Ok(consumer)
}

fn passthrough_raw(
    args: &Args,
    input: &str,
    output: &str,
    idempotent: bool,
) -> anyhow::Result<Run> {
    let consumer = assigned_consumer(args, input, "bench-raw-passthrough", &[])?;
    let producer: BaseProducer = client(args)
        .set("linger.ms", "5")
        .set("enable.idempotence", idempotent.to_string())
        .create()?;
    // Timed to the last record handed to the producer, like every contender.
    let run = consume(args, &consumer, |msg| {
        let mut record = BaseRecord::to(output)
            .key(msg.key().unwrap_or_default())
            .payload(msg.payload().unwrap_or_default())
            .timestamp(msg.timestamp().to_millis().unwrap_or(0));
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    producer.poll(Duration::from_millis(1));
                    record = back;
                }
            }
        }
        producer.poll(Duration::ZERO);
    })?;
    producer.flush(Duration::from_secs(60))?;
    Ok(run)
}

/// Polls `args.records` records from `consumer`, handing each to `each`; timed from the first
/// record to the return of `each` for the last one.
fn consume(
    args: &Args,
    consumer: &BaseConsumer,
    mut each: impl FnMut(&BorrowedMessage<'_>),
) -> anyhow::Result<Run> {
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let mut mark = None;
    let mut seen = 0u64;
    while seen < args.records {
        if Instant::now() > deadline {
            bail!("timed out after {seen} records");
        }
        let Some(msg) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let msg = msg?;
        mark.get_or_insert_with(Mark::now);
        each(&msg);
        seen += 1;
    }
    Ok(mark.context("no record")?.finish(seen))
}

/// Starts `topology`, waits until `done(metrics)` reaches the expected count, closes (which
/// flushes output and changelogs) and measures from the first counted record.
fn run_streamkit(
    args: &Args,
    topology: Topology,
    app_id: &str,
    commit_interval: Duration,
    count: impl Fn(&KafkaStreams) -> u64,
) -> anyhow::Result<Run> {
    let state = tempfile::tempdir()?;
    let mut config = StreamsConfig::new(app_id)
        .bootstrap_servers(&args.bootstrap)
        .state_dir(state.path())
        .commit_interval(commit_interval);
    // The settings given are consumer settings (fetch.wait.max.ms): for the group's consumer
    // and the restore consumer.
    for (k, v) in &args.client {
        config = config
            .set(format!("consumer.{k}"), v)
            .set(format!("restore.consumer.{k}"), v);
    }
    for (k, v) in &args.streamkit_set {
        config = config.set(k, v);
    }
    let app = KafkaStreams::new(topology, config)?;
    app.start()?;
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let mut mark = None;
    loop {
        let n = count(&app);
        if n > 0 {
            mark.get_or_insert_with(Mark::now);
        }
        if n >= args.records {
            break;
        }
        if let Some(e) = app.error() {
            bail!("streamkit failed: {e}");
        }
        if Instant::now() > deadline {
            bail!("timed out after {n} records");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    // Timed to the last record processed (its output handed to the producer), like every
    // contender; the close (flush, commit, leaving the group) is not timed.
    let run = mark.context("no record")?.finish(count(&app));
    let closing = Instant::now();
    app.close()?;
    eprintln!("closed in {:?}", closing.elapsed());
    Ok(run)
}

fn passthrough_streamkit(
    args: &Args,
    input: &str,
    output: &str,
    app_id: &str,
) -> anyhow::Result<Run> {
    let b = StreamsBuilder::new();
    b.stream(input, Consumed::with(Serdes::string(), Serdes::string()))
        .map_values(|v| v)
        .to(output, Produced::with(Serdes::string(), Serdes::string()));
    run_streamkit(args, b.build()?, app_id, PASSTHROUGH_COMMIT, |a| {
        a.metrics().records_processed()
    })
}

fn window_streamkit(args: &Args, input: &str, output: &str, app_id: &str) -> anyhow::Result<Run> {
    let b = StreamsBuilder::new();
    b.stream(input, Consumed::with(Serdes::string(), Serdes::string()))
        .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
        .windowed_by(TimeWindows::tumbling(Duration::from_secs(60)))
        .count(Materialized::named("counts").with_caching_enabled())
        .to_stream()
        .to(
            output,
            Produced::with(WindowedSerde::time(Serdes::string(), 60_000), Serdes::i64()),
        );
    run_streamkit(args, b.build()?, app_id, WINDOW_COMMIT, |a| {
        a.metrics().records_processed()
    })
}

fn restore_raw(args: &Args, changelog: &str) -> anyhow::Result<Run> {
    // The fetch size streamkit's restore consumer uses (`runtime/restore.rs`), so the limit
    // reads at least as fast as the contender could.
    let consumer = assigned_consumer(
        args,
        changelog,
        "bench-raw-restore",
        &[("max.partition.fetch.bytes", "4194304")],
    )?;
    let mut bytes = 0usize;
    let run = consume(args, &consumer, |msg| {
        bytes += msg.key_len() + msg.payload_len()
    })?;
    eprintln!("read {bytes} bytes");
    Ok(run)
}

fn restore_streamkit(args: &Args, input: &str, app_id: &str) -> anyhow::Result<Run> {
    let b = StreamsBuilder::new();
    b.stream(input, Consumed::with(Serdes::string(), Serdes::string()))
        .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
        .count(Materialized::named(RESTORE_STORE));
    // A restore is over when the store is usable: every record written and the task
    // running (a bulk-loaded store reopened for processing), not at the last write.
    let last_pending = args.records.saturating_sub(1);
    run_streamkit(args, b.build()?, app_id, WINDOW_COMMIT, |a| {
        let restored = a.metrics().restored_records();
        if a.state() == StreamsState::Running {
            restored
        } else {
            restored.min(last_pending)
        }
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    streamkit_bench::init_logs();
    let run = match &args.workload {
        Workload::PassthroughRaw {
            input,
            output,
            idempotent,
        } => passthrough_raw(&args, input, output, *idempotent)?,
        Workload::PassthroughStreamkit {
            input,
            output,
            app_id,
        } => passthrough_streamkit(&args, input, output, app_id)?,
        Workload::WindowStreamkit {
            input,
            output,
            app_id,
        } => window_streamkit(&args, input, output, app_id)?,
        Workload::RestoreRaw { changelog } => restore_raw(&args, changelog)?,
        Workload::RestoreStreamkit { input, app_id } => restore_streamkit(&args, input, app_id)?,
    };
    println!("{}", run.to_line());
    // Running stream threads and librdkafka threads are not waited for.
    std::process::exit(0);
}
