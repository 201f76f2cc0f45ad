//! `cargo run --release -p bike_stations`: embedded broker, local JCDecaux-compatible API over a
//! simulated Brussels, the streaming topology, the daily batch and the map at
//! http://127.0.0.1:8501, until Ctrl-C. `--batch-day YYYY-MM-DD` only loads that day.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,bike_stations=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = bike_stations::Args::parse();
    if let Some(day) = &args.batch_day {
        let report = bike_stations::run_batch_day(&args, day)?;
        println!(
            "{}: {} station-hours, {} stations, {} bikes taken, offsets {}..{}{}",
            report.day,
            report.facts,
            report.stations,
            report.bikes_taken,
            report.offsets.0,
            report.offsets.1,
            if report.loaded {
                " — loaded into the warehouse"
            } else {
                " — no --postgres-url: nothing loaded"
            }
        );
        return Ok(());
    }
    let running = bike_stations::start(&args)?;
    println!(
        "bike stations — open http://{} (Ctrl-C to stop)\n  kafka {} · polling {} · query server http://{}",
        running.addr, running.bootstrap_servers, running.api_url, running.query_addr,
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
