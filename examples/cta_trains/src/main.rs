//! `cargo run -p cta_trains --release`: embedded broker and registry, the stations, the
//! Faust-style transform, the KSQL statements, the simulation and the dashboard at
//! http://127.0.0.1:8888, until Ctrl-C.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,cta_trains=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = cta_trains::Args::parse();
    let running = cta_trains::start(&args)?;
    println!(
        "CTA train status — open http://{} (Ctrl-C to stop)\n  kafka {} · schema registry {} · REST proxy {} · ksql http://{}",
        running.addr,
        running.bootstrap_servers,
        running.registry_url,
        running.rest_proxy,
        running.ksql_addr,
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
