//! `cargo run -p random_users`: embedded broker and schema registry, the local
//! randomuser.me-compatible API, the topology, the live model and the page at
//! http://127.0.0.1:8510, until Ctrl-C. `--cassandra HOST:PORT` also writes the cleaned users
//! to Cassandra's `spark_streams.created_users`.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,random_users=info,streamkit::connect=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = random_users::Args::parse();
    let running = random_users::start(&args)?;
    println!(
        "random users — open http://{} (Ctrl-C to stop)\n  kafka {} · registry {} · polling {} · query server http://{}\n  cassandra: {}",
        running.addr,
        running.bootstrap_servers,
        running.registry_url,
        running.api_url,
        running.query_addr,
        match &running.sink {
            Some(s) => format!("writing {} at {}", s.table, s.nodes.join(",")),
            None => "off (give --cassandra HOST:PORT)".to_string(),
        }
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    })?;
    eprintln!("stopping…");
    running.shutdown()
}
