//! `cargo run --release -p quickstart`: produce bus positions, find the late buses with
//! streamkit, read the result back and check it. Runs on an embedded broker unless
//! `--bootstrap-servers` is given.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,quickstart=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let summary = quickstart::run(quickstart::Args::parse())?;
    if !summary.is_complete() {
        anyhow::bail!("the output is not what was expected (see the summary above)");
    }
    println!("output complete: every late bus and every malformed report, nothing else");
    Ok(())
}
