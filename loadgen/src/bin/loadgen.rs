//! Runs meshlab scenarios and reports each step and the measured latencies.
//!
//! Run with `loadgen scenario scenarios/` (add `--json report.json` for a
//! machine-readable report); `RUST_LOG=loadgen=debug` shows each step's flow.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use loadgen::cli::{self, Cli};
use loadgen::embedded::EmbeddedLab;

fn main() -> ExitCode {
    // Reports go to stdout. Logs go to stderr, at `warn` unless RUST_LOG sets a filter.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: starting the async runtime: {error}");
            return ExitCode::from(cli::EXIT_FAILED);
        }
    };
    runtime.block_on(cli::run(cli, EmbeddedLab::start))
}
