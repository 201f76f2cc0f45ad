//! The `streamkit` command line: `streamkit broker` starts the embedded Kafka-protocol broker.

use std::io::Write;

use anyhow::Context;
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
    /// Prints `bootstrap.servers=<address>` on standard output, then serves until SIGINT or
    /// SIGTERM. Any Kafka client can connect (streamkit apps, the examples, Python peers).
    ///
    /// Limits of the mock cluster: no admin API (CreateTopics is not answered: create topics
    /// here with --topic; producing to an unknown topic auto-creates it with 4 partitions);
    /// each partition keeps only its last ~100k message sets (about 5 MiB) and silently drops
    /// older ones; Fetch ignores isolation.level (aborted transactional records stay visible);
    /// a rebalance after a member leaves waits for the member's session timeout; everything
    /// lives in memory and is gone when the process exits.
    #[command(verbatim_doc_comment)]
    Broker {
        /// Number of brokers in the cluster.
        #[arg(long, default_value_t = 1)]
        brokers: i32,
        /// Topic to create, as NAME or NAME:PARTITIONS (repeatable).
        #[arg(long = "topic", value_name = "NAME[:PARTITIONS]")]
        topics: Vec<String>,
    },
}

fn parse_topic(spec: &str) -> anyhow::Result<(String, i32)> {
    match spec.rsplit_once(':') {
        Some((name, n)) => Ok((
            name.to_string(),
            n.parse()
                .with_context(|| format!("bad partition count in {spec:?}"))?,
        )),
        None => Ok((spec.to_string(), 1)),
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Broker { brokers, topics } => {
            let topics = topics
                .iter()
                .map(|t| parse_topic(t))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let broker =
                EmbeddedBroker::with_brokers(brokers).context("starting the embedded broker")?;
            for (name, partitions) in &topics {
                broker
                    .create_topic(name, *partitions)
                    .with_context(|| format!("creating topic {name}"))?;
            }
            let mut out = std::io::stdout().lock();
            writeln!(out, "bootstrap.servers={}", broker.bootstrap_servers())?;
            out.flush()?;
            drop(out);
            eprintln!(
                "embedded broker with {brokers} broker(s) and {} topic(s) is up; stop it with Ctrl-C",
                topics.len()
            );
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
                tokio::select! {
                    r = tokio::signal::ctrl_c() => r,
                    _ = term.recv() => Ok(()),
                }
            })?;
            eprintln!("embedded broker stopped");
            Ok(())
        }
    }
}
