//! The `streamkit` command line: `streamkit broker` starts the embedded Kafka-protocol broker;
//! `streamkit sql` runs SQL statements from a file, or at an interactive prompt; `streamkit
//! registry` starts a Confluent-compatible schema registry.

use std::io::Write;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use streamkit::registry::{EmbeddedRegistry, RegistryConfig};
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
    /// Run ksqlDB-style SQL: `streamkit sql FILE.sql` executes the file's statements and keeps
    /// their queries running; `streamkit sql` alone opens a prompt (statements end with `;`,
    /// results print as tables; a push query prints rows until Enter).
    ///
    /// Queries run against --bootstrap-servers, or an embedded broker when none is given
    /// (its address is printed as `bootstrap.servers=<address>`). Either way a
    /// ksqlDB-compatible REST server (POST /ksql, POST /query, GET /info) serves the same
    /// engine on --listen; stop with Ctrl-C (or end of input at the prompt).
    #[command(verbatim_doc_comment)]
    Sql {
        /// Statements to run; omit for the interactive prompt.
        file: Option<std::path::PathBuf>,
        /// Kafka bootstrap servers; default: an embedded broker.
        #[arg(long, env = "STREAMKIT_BOOTSTRAP_SERVERS")]
        bootstrap_servers: Option<String>,
        /// Where the REST server listens (`host:port`; port 0 picks one).
        #[arg(long, default_value = "127.0.0.1:8088")]
        listen: String,
        /// State directory for the queries' stores; default: a temporary directory.
        #[arg(long)]
        state_dir: Option<std::path::PathBuf>,
        /// Bearer token the REST server requires on every request (`Authorization: Bearer
        /// <token>`); without one, keep --listen on a loopback address.
        #[arg(long, env = "STREAMKIT_SQL_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Schema registry for VALUE_FORMAT='AVRO' and KEY_FORMAT='AVRO' (a Confluent-compatible
        /// URL); default: an embedded one on the same cluster (its URL is printed on standard
        /// error as `schema.registry.url=<url>`).
        #[arg(long, env = "STREAMKIT_SCHEMA_REGISTRY")]
        schema_registry: Option<String>,
    },
    /// Start a schema registry serving Confluent Schema Registry's REST API (register, look up,
    /// subjects, versions, compatibility, config, soft delete), its state kept in a compacted
    /// topic as the original keeps it, so a restart keeps ids.
    ///
    /// Prints `schema.registry.url=<url>` on standard output (after `bootstrap.servers=<address>`
    /// when it starts its own embedded broker), then serves until SIGINT or SIGTERM. Point
    /// Avro serializers at the URL: streamkit's, Java's, Python's confluent-kafka.
    #[command(verbatim_doc_comment)]
    Registry {
        /// Kafka bootstrap servers holding the schemas topic; default: an embedded broker
        /// (schemas then live only as long as the process).
        #[arg(long, env = "STREAMKIT_BOOTSTRAP_SERVERS")]
        bootstrap_servers: Option<String>,
        /// Where the REST API listens (`host:port`; port 0 picks one).
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: String,
        /// The compacted topic the schemas are kept in.
        #[arg(long, default_value = "_schemas")]
        topic: String,
        /// Bearer token every request must carry; without it or --basic-auth, keep --listen
        /// on a loopback address.
        #[arg(
            long,
            env = "STREAMKIT_REGISTRY_TOKEN",
            hide_env_values = true,
            conflicts_with = "basic_auth"
        )]
        token: Option<String>,
        /// `USER:PASSWORD` every request must carry as HTTP basic authentication.
        #[arg(long, env = "STREAMKIT_REGISTRY_BASIC_AUTH", hide_env_values = true)]
        basic_auth: Option<String>,
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
        Command::Sql {
            file,
            bootstrap_servers,
            listen,
            state_dir,
            token,
            schema_registry,
        } => sql(
            file,
            bootstrap_servers,
            &listen,
            state_dir,
            token,
            schema_registry,
        ),
        Command::Registry {
            bootstrap_servers,
            listen,
            topic,
            token,
            basic_auth,
        } => registry(bootstrap_servers, &listen, &topic, token, basic_auth),
    }
}

fn registry(
    bootstrap_servers: Option<String>,
    listen: &str,
    topic: &str,
    token: Option<String>,
    basic_auth: Option<String>,
) -> anyhow::Result<()> {
    use streamkit::serde::avro::RegistryAuth;

    let auth = match (token, basic_auth) {
        (Some(t), _) => RegistryAuth::Bearer(t),
        (None, Some(b)) => {
            let (user, password) = b
                .split_once(':')
                .context("--basic-auth takes USER:PASSWORD")?;
            RegistryAuth::Basic {
                user: user.to_string(),
                password: password.to_string(),
            }
        }
        (None, None) => RegistryAuth::None,
    };
    let mut out = std::io::stdout().lock();
    let (config, _broker) = match bootstrap_servers {
        Some(servers) => (RegistryConfig::new(servers), None),
        None => {
            let broker = EmbeddedBroker::start().context("starting the embedded broker")?;
            writeln!(out, "bootstrap.servers={}", broker.bootstrap_servers())?;
            (RegistryConfig::embedded(&broker), Some(broker))
        }
    };
    let mut registry = EmbeddedRegistry::start(config.listen(listen).topic(topic).auth(auth))
        .context("starting the schema registry")?;
    // The URL line is the machine-readable interface: scripts and tests read it.
    writeln!(out, "schema.registry.url={}", registry.url())?;
    out.flush()?;
    drop(out);
    eprintln!("schema registry: schemas kept in topic {topic}; stop with Ctrl-C");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let signal = rt.block_on(wait_for_signal())?;
    registry.stop();
    eprintln!("{signal} received: schema registry stopped");
    Ok(())
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

fn sql(
    file: Option<std::path::PathBuf>,
    bootstrap_servers: Option<String>,
    listen: &str,
    state_dir: Option<std::path::PathBuf>,
    token: Option<String>,
    schema_registry: Option<String>,
) -> anyhow::Result<()> {
    use streamkit::config::StreamsConfig;
    use streamkit::server::ksql::KsqlServer;
    use streamkit::sql::{Engine, render_result};

    let temp = match &state_dir {
        Some(_) => None,
        None => Some(tempfile_dir()?),
    };
    let dir = state_dir.unwrap_or_else(|| temp.clone().expect("temporary directory"));
    let mut config = StreamsConfig::new("streamkit-sql").state_dir(&dir);
    if let Some(token) = token {
        config = config.query_server_token(token);
    }
    let _broker = match bootstrap_servers.clone() {
        Some(servers) => {
            config = config.bootstrap_servers(servers);
            None
        }
        None => {
            let broker = EmbeddedBroker::start().context("starting the embedded broker")?;
            config = config.embedded(&broker);
            let mut out = std::io::stdout().lock();
            writeln!(out, "bootstrap.servers={}", broker.bootstrap_servers())?;
            out.flush()?;
            Some(broker)
        }
    };
    let (registry, _embedded_registry) = match (schema_registry, &_broker, bootstrap_servers) {
        (Some(url), _, _) => (streamkit::serde::avro::RegistryClient::new(&url)?, None),
        (None, Some(broker), _) => sql_registry(RegistryConfig::embedded(broker))?,
        (None, None, Some(servers)) => sql_registry(RegistryConfig::new(servers))?,
        (None, None, None) => unreachable!("an embedded broker starts when no servers are given"),
    };
    let server = KsqlServer::start(Engine::new(config).schema_registry(registry), listen)?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "ksql.server=http://{}", server.addr())?;
        out.flush()?;
    }
    let engine = server.engine();
    let result = match file {
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let results = engine
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .execute(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            let mut out = std::io::stdout().lock();
            for r in &results {
                write!(out, "{}", render_result(r))?;
            }
            out.flush()?;
            drop(out);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let signal = rt.block_on(wait_for_signal())?;
            eprintln!("{signal} received: stopping the queries");
            Ok(())
        }
        None => prompt(&engine),
    };
    let mut server = server;
    server.stop();
    let mut engine = engine
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if engine.queries().next().is_some()
        && let Err(e) = engine.execute("TERMINATE ALL;")
    {
        eprintln!("stopping the queries: {e}");
    }
    drop(engine);
    if let Some(t) = temp {
        let _ = std::fs::remove_dir_all(t);
    }
    result
}

/// An embedded schema registry for `streamkit sql` when no URL is given, kept on the queries'
/// cluster; its URL is printed as `schema.registry.url=<url>` on standard error.
fn sql_registry(
    config: RegistryConfig,
) -> anyhow::Result<(
    streamkit::serde::avro::RegistryClient,
    Option<streamkit::registry::EmbeddedRegistry>,
)> {
    let registry = EmbeddedRegistry::start(config.listen("127.0.0.1:0"))
        .context("starting the embedded schema registry")?;
    // On standard error: standard output's first lines are the broker and REST addresses
    // scripts already read.
    eprintln!("schema.registry.url={}", registry.url());
    Ok((registry.client()?, Some(registry)))
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("streamkit-sql-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The interactive prompt: statements end with `;`.
fn prompt(engine: &std::sync::Arc<std::sync::Mutex<streamkit::sql::Engine>>) -> anyhow::Result<()> {
    use streamkit::sql::{QueryResult, render_result, render_table};

    // stdin is not held locked between lines: a push query's Enter is read on another thread.
    let mut buffer = String::new();
    let mut out = std::io::stdout();
    loop {
        write!(
            out,
            "{}",
            if buffer.is_empty() {
                "streamkit> "
            } else {
                "        > "
            }
        )?;
        out.flush()?;
        let mut line = String::new();
        if std::io::stdin().read_line(&mut line)? == 0 {
            writeln!(out)?;
            return Ok(());
        }
        let line = line.trim_end_matches(['\n', '\r']);
        buffer.push_str(line);
        buffer.push('\n');
        if !line.trim_end().ends_with(';') {
            continue;
        }
        let text = std::mem::take(&mut buffer);
        let is_push = text.to_uppercase().contains("EMIT CHANGES")
            && text.trim_start().to_uppercase().starts_with("SELECT");
        if is_push {
            let started = engine
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .query(&text, &Default::default());
            match started {
                Ok(QueryResult::Push(mut push)) => {
                    writeln!(out, "(push query; press Enter to stop)")?;
                    let columns = push.columns.clone();
                    // Rows print as they come, until Enter (read on another thread).
                    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
                    let waiter = std::thread::spawn(move || {
                        let mut s = String::new();
                        let _ = std::io::stdin().read_line(&mut s);
                        let _ = stop_tx.send(());
                    });
                    let mut header = true;
                    loop {
                        if stop_rx.try_recv().is_ok() {
                            break;
                        }
                        match push.rows.try_recv() {
                            Ok(row) => {
                                let table = render_table(&columns, &[row]);
                                let mut parts: Vec<&str> = table.lines().collect();
                                if !header {
                                    parts.drain(..3);
                                }
                                header = false;
                                writeln!(out, "{}", parts[..parts.len() - 1].join("\n"))?;
                                out.flush()?;
                            }
                            Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {
                                std::thread::sleep(std::time::Duration::from_millis(50));
                            }
                            Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => {
                                writeln!(out, "(query ended)")?;
                                break;
                            }
                        }
                    }
                    drop(push);
                    let _ = waiter.join();
                }
                Ok(QueryResult::Pull { columns, rows }) => {
                    write!(out, "{}", render_table(&columns, &rows))?
                }
                Err(e) => writeln!(out, "error: {e}")?,
            }
            continue;
        }
        match engine
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .execute(&text)
        {
            Ok(results) => {
                for r in &results {
                    write!(out, "{}", render_result(r))?;
                }
            }
            Err(e) => writeln!(out, "error: {e}")?,
        }
    }
}
