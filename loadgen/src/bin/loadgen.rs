//! Runs meshlab scenarios and load tests, and reports the measured latencies.
//!
//! Run with `loadgen scenario scenarios/` (add `--json report.json` for a
//! machine-readable report) or `loadgen load URL --qps 0 -c 4 -t 10s`;
//! `RUST_LOG=loadgen=debug` shows each step's flow.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use loadgen::cli::{self, Cli, Command};
use loadgen::embedded::EmbeddedLab;

/// Maximum runtime threads `--threads` accepts: far more than the cores of any
/// machine the loadgen runs on, and few enough for the OS to start.
const MAX_THREADS: usize = 1024;

fn main() -> ExitCode {
    // Reports go to stdout. Logs go to stderr, at `warn` unless RUST_LOG sets a filter.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let cli = Cli::parse();
    // A load run defaults to one thread: on loopback, waking another thread
    // per message costs more than the work itself.
    let threads = match &cli.command {
        Command::Load(args) => Some(args.threads),
        _ => None,
    };
    let runtime = match threads {
        Some(0) => {
            eprintln!("error: --threads 0: at least one thread is needed");
            return ExitCode::from(cli::EXIT_BAD_INPUT);
        }
        Some(threads) if threads > MAX_THREADS => {
            eprintln!("error: --threads {threads}: at most {MAX_THREADS} threads are supported");
            return ExitCode::from(cli::EXIT_BAD_INPUT);
        }
        Some(1) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Some(threads) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build(),
        None => tokio::runtime::Runtime::new(),
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: starting the async runtime: {error}");
            return ExitCode::from(cli::EXIT_FAILED);
        }
    };
    runtime.block_on(cli::run(cli, EmbeddedLab::start))
}
