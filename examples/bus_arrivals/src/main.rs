//! `cargo run --release -p bus_arrivals`: embedded broker, generated feed, replay, topology,
//! model and the page at http://127.0.0.1:8501, until Ctrl-C.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,bus_arrivals=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = bus_arrivals::Args::parse();
    if let Some(path) = &args.generate {
        let truth = bus_arrivals::feed::generate_file(path, &bus_arrivals::feed_options(&args))?;
        println!("wrote {} rows to {}", truth.len(), path.display());
        return Ok(());
    }
    let running = bus_arrivals::start(&args)?;
    println!(
        "bus arrivals: replaying {} into {} — open http://{} (Ctrl-C to stop)",
        running.feed.display(),
        running.bootstrap_servers,
        running.addr
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
