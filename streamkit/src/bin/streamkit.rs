//! The `streamkit` command line: `streamkit broker` starts the embedded Kafka-protocol broker.

use std::io::Write;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use streamkit::testing::EmbeddedBroker;

#[derive(Parser)]
#[command(name = "streamkit", version, about = "streamkit command-line tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the embedded broker (librdkafka's in-process mock cluster) on a localhost port.
    ///
    /// Prints one line, `bootstrap.servers=<address>`, on standard output, then serves until
    /// SIGINT or SIGTERM. Any Kafka client can connect: streamkit applications, the examples
    /// (`--bootstrap-servers <address>`), kcat, clients in other languages.
    ///
    /// Limits of the mock cluster:
    ///   - no admin API: CreateTopics is not answered, so create topics here with --topic
    ///     (producing to an unknown topic auto-creates it with 4 partitions);
    ///   - each partition keeps only its last ~100k message sets (about 5 MiB) and silently
    ///     drops older ones;
    ///   - Fetch ignores isolation.level: aborted transactional records stay visible, and
    ///     transactional offset commits are acknowledged but not stored;
    ///   - after a member leaves a group, the rebalance waits for the session timeout;
    ///   - everything lives in memory and is gone when the process exits.
    #[command(verbatim_doc_comment)]
    Broker {
        /// Number of brokers in the cluster.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..))]
        brokers: i32,
        /// Topic to create, as NAME or NAME:PARTITIONS (default 1 partition); repeatable.
        #[arg(long = "topic", value_name = "NAME[:PARTITIONS]", value_parser = parse_topic)]
        topics: Vec<(String, i32)>,
    },
}

fn parse_topic(spec: &str) -> anyhow::Result<(String, i32)> {
    let (name, partitions) = match spec.rsplit_once(':') {
        Some((name, n)) => (
            name,
            n.parse::<i32>()
                .with_context(|| format!("bad partition count {n:?}"))?,
        ),
        None => (spec, 1),
    };
    if name.is_empty() {
        bail!("empty topic name");
    }
    if partitions < 1 {
        bail!("a topic needs at least 1 partition, not {partitions}");
    }
    Ok((name.to_string(), partitions))
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Broker { brokers, topics } => broker(brokers, &topics),
    }
}

fn broker(brokers: i32, topics: &[(String, i32)]) -> anyhow::Result<()> {
    let broker = EmbeddedBroker::with_brokers(brokers).context("starting the embedded broker")?;
    for (name, partitions) in topics {
        broker
            .create_topic(name, *partitions)
            .with_context(|| format!("creating topic {name}"))?;
    }
    // The address line is the machine-readable interface: scripts and tests read it.
    let mut out = std::io::stdout().lock();
    writeln!(out, "bootstrap.servers={}", broker.bootstrap_servers())?;
    out.flush()?;
    drop(out);
    eprintln!(
        "embedded broker: {brokers} broker(s), {} topic(s) created; in memory only, no admin API \
         (see `streamkit broker --help`); stop with Ctrl-C",
        topics.len()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let signal = rt.block_on(wait_for_signal())?;
    eprintln!("{signal} received: embedded broker stopped");
    Ok(())
}

/// Waits for SIGINT or SIGTERM and names the one that came.
async fn wait_for_signal() -> anyhow::Result<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.map(|()| "SIGINT").map_err(Into::into),
            _ = term.recv() => Ok("SIGTERM"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await?;
        Ok("Ctrl-C")
    }
}
