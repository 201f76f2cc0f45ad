//! The `streamkit` command line: `streamkit broker` starts the embedded Kafka-protocol broker;
//! `streamkit sql` runs SQL statements from a file, or at an interactive prompt; `streamkit
//! registry` starts a Confluent-compatible schema registry; `streamkit connect` runs a source
//! connector (PostgreSQL tables, a polled JSON API) on its own.

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
    /// Run a source connector on its own: `postgres-source` (Kafka Connect's JDBC source) or
    /// `http-poll` (a JSON API polled into a topic).
    Connect {
        #[command(subcommand)]
        connector: ConnectCommand,
    },
    /// Reset an application, as Kafka Streams' `kafka-streams-application-reset` does: delete
    /// its internal topics (`<APP_ID>-…-changelog`, `<APP_ID>-…-repartition`,
    /// `<APP_ID>-instances`) and its consumer group with its committed offsets, so that its
    /// next start reads its inputs again from `auto.offset.reset` and rebuilds its state.
    /// Output topics stay. Stop every instance first. With --state-dir, the application's
    /// local state directory there is deleted too (do that on each instance's machine).
    ///
    ///   streamkit reset trips-app --bootstrap-servers localhost:9092 --state-dir /var/lib/trips
    Reset {
        /// The application id.
        app_id: String,
        /// Kafka bootstrap servers (a broker with the admin API).
        #[arg(long)]
        bootstrap_servers: String,
        /// The state directory an instance ran with (`StreamsConfig::state_dir`); its
        /// `<APP_ID>` subdirectory is deleted.
        #[arg(long)]
        state_dir: Option<std::path::PathBuf>,
        /// Print what would be deleted and delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// The sources `streamkit connect` runs.
#[derive(Subcommand)]
enum ConnectCommand {
    /// Poll PostgreSQL tables (or a query) into topics, like Kafka Connect's JDBC source:
    /// modes bulk, incrementing, timestamp and timestamp+incrementing; rows as JSON or Avro;
    /// the position kept in the compacted topic `<name>-postgres-source-offsets`, so a restart
    /// neither re-sends nor skips rows. Runs until SIGINT or SIGTERM.
    ///
    /// Example (the CTA stations, as the seed's JDBC connector read them):
    ///   streamkit connect postgres-source --url postgres://cta_admin:chicago@localhost/cta \
    ///     --table stations --mode incrementing --incrementing-column stop_id \
    ///     --topic-prefix org.chicago.cta. --bootstrap-servers localhost:9092
    #[command(verbatim_doc_comment)]
    PostgresSource {
        /// The database (`postgres://user:password@host:port/db`).
        #[arg(long, env = "STREAMKIT_POSTGRES_URL", hide_env_values = true)]
        url: String,
        /// The source's name: its offsets topic's prefix.
        #[arg(long, default_value = "postgres-source")]
        name: String,
        /// A table to read (`name` or `schema.name`); repeatable: one topic per table.
        #[arg(long = "table", conflicts_with = "query")]
        tables: Vec<String>,
        /// A query to read instead of tables; its rows go to the topic named by --topic-prefix.
        #[arg(long)]
        query: Option<String>,
        /// How new rows are found.
        #[arg(long, value_enum, default_value_t = PgMode::Bulk)]
        mode: PgMode,
        /// The growing integer column of the incrementing modes.
        #[arg(long)]
        incrementing_column: Option<String>,
        /// The timestamp column of the timestamp modes.
        #[arg(long)]
        timestamp_column: Option<String>,
        /// Prepended to each table's name to name its topic.
        #[arg(long, default_value = "")]
        topic_prefix: String,
        /// Milliseconds between polls.
        #[arg(long, default_value_t = 5000)]
        poll_interval_ms: u64,
        /// Rows per query.
        #[arg(long, default_value_t = 100)]
        batch_rows: usize,
        /// How many milliseconds behind the database clock the timestamp modes stay.
        #[arg(long, default_value_t = 0)]
        timestamp_delay_ms: u64,
        /// Key each record with this column's value.
        #[arg(long)]
        key_column: Option<String>,
        /// Schema registry URL: write rows as Avro (registered as `<topic>-value`); else JSON.
        #[arg(long, env = "STREAMKIT_SCHEMA_REGISTRY")]
        schema_registry: Option<String>,
        /// Kafka bootstrap servers; default: an embedded broker (printed as
        /// `bootstrap.servers=<address>`).
        #[arg(long, env = "STREAMKIT_BOOTSTRAP_SERVERS")]
        bootstrap_servers: Option<String>,
    },
    /// GET a JSON API every interval and produce its records to a topic (the bike-station and
    /// random-user polling loops): backoff with jitter on errors and 429, optional dedup of
    /// records unchanged since the last poll, progress in the compacted topic
    /// `<name>-http-poll-state`. Runs until SIGINT or SIGTERM.
    ///
    /// Example (JCDecaux stations, one record per station, changes only):
    ///   streamkit connect http-poll --url https://api.jcdecaux.com/vls/v1/stations \
    ///     --query contract=dublin --query apiKey=$JCDECAUX_KEY --topic bike-stations \
    ///     --key-at /number --timestamp-at /last_update --dedup --interval-ms 10000
    #[command(verbatim_doc_comment)]
    HttpPoll {
        /// The URL to GET.
        #[arg(long)]
        url: String,
        /// The source's name: its metrics' label and its state topic's prefix.
        #[arg(long, default_value = "http-poll")]
        name: String,
        /// The topic to produce to.
        #[arg(long)]
        topic: String,
        /// Milliseconds between the starts of two polls.
        #[arg(long, default_value_t = 10_000)]
        interval_ms: u64,
        /// A request header, `NAME:VALUE`; repeatable.
        #[arg(long = "header", value_name = "NAME:VALUE")]
        headers: Vec<String>,
        /// A query parameter, `NAME=VALUE` (e.g. an API key); repeatable.
        #[arg(long = "query", value_name = "NAME=VALUE")]
        query: Vec<String>,
        /// JSON pointer to the records in the body (default: the body).
        #[arg(long)]
        records_at: Option<String>,
        /// JSON pointer to each record's key.
        #[arg(long)]
        key_at: Option<String>,
        /// JSON pointer to each record's timestamp (epoch ms).
        #[arg(long)]
        timestamp_at: Option<String>,
        /// Skip records equal to the last one produced for their key.
        #[arg(long)]
        dedup: bool,
        /// Kafka bootstrap servers; default: an embedded broker (printed as
        /// `bootstrap.servers=<address>`).
        #[arg(long, env = "STREAMKIT_BOOTSTRAP_SERVERS")]
        bootstrap_servers: Option<String>,
    },
}

/// `--mode` of `streamkit connect postgres-source`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum PgMode {
    Bulk,
    Incrementing,
    Timestamp,
    #[value(name = "timestamp+incrementing")]
    TimestampIncrementing,
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
        Command::Connect { connector } => connect(connector),
        Command::Reset {
            app_id,
            bootstrap_servers,
            state_dir,
            dry_run,
        } => reset(&app_id, &bootstrap_servers, state_dir, dry_run),
    }
}

/// `streamkit reset`: the broker side through `reset_application`, then the local state.
fn reset(
    app_id: &str,
    bootstrap_servers: &str,
    state_dir: Option<std::path::PathBuf>,
    dry_run: bool,
) -> anyhow::Result<()> {
    let config = streamkit::config::StreamsConfig::new(app_id).bootstrap_servers(bootstrap_servers);
    let mut out = std::io::stdout().lock();
    if dry_run {
        let topics = streamkit::runtime::internal_topics_of(&config)?;
        for t in &topics {
            writeln!(out, "would delete topic {t}")?;
        }
        writeln!(out, "would delete consumer group {app_id}")?;
        if let Some(dir) = &state_dir {
            writeln!(out, "would delete {}", dir.join(app_id).display())?;
        }
        return Ok(());
    }
    let report = streamkit::runtime::reset_application(&config)
        .with_context(|| format!("resetting {app_id}"))?;
    for t in &report.deleted_topics {
        writeln!(out, "deleted topic {t}")?;
    }
    if report.group_deleted {
        writeln!(out, "deleted consumer group {app_id}")?;
    } else {
        writeln!(out, "no consumer group {app_id}")?;
    }
    if let Some(dir) = state_dir {
        streamkit::runtime::delete_local_state(&config.state_dir(&dir))?;
        writeln!(out, "deleted {}", dir.join(app_id).display())?;
    }
    Ok(())
}

/// The config of a standalone connector: the given cluster, or an embedded broker (kept
/// alive by the returned handle) whose address is printed.
fn connector_config(
    name: &str,
    bootstrap_servers: Option<String>,
) -> anyhow::Result<(streamkit::config::StreamsConfig, Option<EmbeddedBroker>)> {
    let config = streamkit::config::StreamsConfig::new(name);
    Ok(match bootstrap_servers {
        Some(servers) => (config.bootstrap_servers(servers), None),
        None => {
            let broker = EmbeddedBroker::start().context("starting the embedded broker")?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "bootstrap.servers={}", broker.bootstrap_servers())?;
            out.flush()?;
            (config.embedded(&broker), Some(broker))
        }
    })
}

fn connect(connector: ConnectCommand) -> anyhow::Result<()> {
    use std::time::Duration;
    use streamkit::connect::http_poll::HttpPollSource;
    use streamkit::connect::postgres_source::{Mode, PostgresSource};

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match connector {
        ConnectCommand::PostgresSource {
            url,
            name,
            tables,
            query,
            mode,
            incrementing_column,
            timestamp_column,
            topic_prefix,
            poll_interval_ms,
            batch_rows,
            timestamp_delay_ms,
            key_column,
            schema_registry,
            bootstrap_servers,
        } => {
            let need = |c: Option<String>, flag: &str| {
                c.with_context(|| format!("--mode {} needs --{flag}", mode_name(mode)))
            };
            let mode = match mode {
                PgMode::Bulk => Mode::Bulk,
                PgMode::Incrementing => {
                    Mode::Incrementing(need(incrementing_column, "incrementing-column")?)
                }
                PgMode::Timestamp => Mode::Timestamp(need(timestamp_column, "timestamp-column")?),
                PgMode::TimestampIncrementing => Mode::TimestampIncrementing {
                    timestamp: need(timestamp_column, "timestamp-column")?,
                    incrementing: need(incrementing_column, "incrementing-column")?,
                },
            };
            if tables.is_empty() && query.is_none() {
                bail!("name a --table (repeatable) or give a --query");
            }
            let mut source = PostgresSource::new(&name, url)
                .mode(mode)
                .topic_prefix(topic_prefix)
                .poll_interval(Duration::from_millis(poll_interval_ms))
                .batch_rows(batch_rows)
                .timestamp_delay(Duration::from_millis(timestamp_delay_ms));
            for t in tables {
                source = source.table(t);
            }
            if let Some(q) = query {
                source = source.query(q);
            }
            if let Some(k) = key_column {
                source = source.key_column(k);
            }
            if let Some(url) = schema_registry {
                let client = streamkit::serde::avro::RegistryClient::new(&url)
                    .with_context(|| format!("schema registry {url}"))?;
                source = source.avro(&client);
            }
            let (config, _broker) = connector_config(&name, bootstrap_servers)?;
            eprintln!(
                "postgres source {name}: writing {}; offsets in {}; stop with Ctrl-C",
                source.topics().join(", "),
                source.offsets_topic()
            );
            rt.block_on(source.run(&config, wait_for_signal()))?;
        }
        ConnectCommand::HttpPoll {
            url,
            name,
            topic,
            interval_ms,
            headers,
            query,
            records_at,
            key_at,
            timestamp_at,
            dedup,
            bootstrap_servers,
        } => {
            let mut source = HttpPollSource::new(&name, url)
                .interval(Duration::from_millis(interval_ms))
                .dedup(dedup);
            for h in headers {
                let (k, v) = h.split_once(':').context("--header takes NAME:VALUE")?;
                source = source.header(k.trim(), v.trim());
            }
            for q in query {
                let (k, v) = q.split_once('=').context("--query takes NAME=VALUE")?;
                source = source.query(k, v);
            }
            if let Some(p) = records_at {
                source = source.records_at(p);
            }
            if let Some(p) = key_at {
                source = source.key_at(p);
            }
            if let Some(p) = timestamp_at {
                source = source.timestamp_at(p);
            }
            let (config, _broker) = connector_config(&name, bootstrap_servers)?;
            eprintln!(
                "http poll {name}: writing {topic}; state in {}; stop with Ctrl-C",
                source.state_topic()
            );
            rt.block_on(source.run(&config, &topic, wait_for_signal()))?;
        }
    }
    Ok(())
}

fn mode_name(mode: PgMode) -> &'static str {
    match mode {
        PgMode::Bulk => "bulk",
        PgMode::Incrementing => "incrementing",
        PgMode::Timestamp => "timestamp",
        PgMode::TimestampIncrementing => "timestamp+incrementing",
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
