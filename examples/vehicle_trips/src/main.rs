//! `cargo run -p vehicle_trips`: embedded broker, the simulated fleet, the streaming topology
//! landing into the lake, the daily promotion and the page at http://127.0.0.1:8505, until
//! Ctrl-C. `--promote-day YYYY-MM-DD --lake DIR` only promotes that day.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,vehicle_trips=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = vehicle_trips::Args::parse();
    if let Some(day) = &args.promote_day {
        let r = vehicle_trips::run_promote_day(&args, day)?;
        println!(
            "{}: {} landing rows in {} files ({} staged now) → {} staged reports in {} files ({} dropped), consolidated; {} trips ({} arrived), {} vehicles in common",
            r.day,
            r.landing_rows,
            r.landing_files,
            r.staged_by_promotion,
            r.staged,
            r.staging_files,
            r.dropped,
            r.trips,
            r.arrived,
            r.vehicles
        );
        return Ok(());
    }
    let running = vehicle_trips::start(&args)?;
    println!(
        "vehicle trips — open http://{} (Ctrl-C to stop)\n  kafka {} · lake {} · query server http://{}",
        running.addr,
        running.bootstrap_servers,
        running.lake.url(),
        running.query_addr,
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
