//! `cargo run --release -p quickstart`: produce bus positions, count late buses per line with
//! streamkit, print the result. Embedded broker unless `--bootstrap-servers` is given.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "streamkit=info".into()),
        )
        .init();
    let summary = quickstart::run(quickstart::Args::parse())?;
    println!("records in:        {}", summary.produced);
    println!(
        "dead-lettered:     {} (of {} malformed)",
        summary.dead_lettered, summary.malformed
    );
    println!("late buses per line (more than 5 minutes behind):");
    for (line, n) in &summary.late_per_line {
        println!("  {line:<6} {n}");
    }
    println!("wall time:         {:.1} s", summary.elapsed.as_secs_f64());
    if summary.late_per_line != summary.expected_late_per_line
        || summary.dead_lettered != summary.malformed
    {
        anyhow::bail!(
            "output incomplete: expected {:?}",
            summary.expected_late_per_line
        );
    }
    println!("output complete and exact");
    Ok(())
}
