//! The `loadgen` command line. The binary parses arguments, installs tracing
//! and passes in the lab to start; everything else happens here.

use std::fs::File;
use std::future::Future;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::driver::LabDriver;
use crate::report::json::LoadJson;
use crate::report::{compare, csv, html, json, table};
use crate::runner::{self, ScenarioResult};
use crate::scenario::{self, Scenario};
use crate::threshold::{self, Threshold};

mod load_command;

/// Every scenario passed.
pub const EXIT_PASSED: u8 = 0;
/// An expectation failed, or the lab could not start.
pub const EXIT_FAILED: u8 = 1;
/// A scenario file or a flag is invalid.
pub const EXIT_BAD_INPUT: u8 = 2;

/// Scenario runner and load generator for the meshlab lab.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs scenario files against a lab and reports every step.
    Scenario(ScenarioArgs),
    /// Sends load to one URL and reports latency per phase (Fortio's flags).
    Load(Box<LoadArgs>),
    /// Redraws the reports of a saved JSON report (`load` or `scenario`).
    Report(ReportArgs),
    /// Prints the differences between the load runs of two saved JSON reports.
    Compare(CompareArgs),
}

#[derive(Debug, Args)]
pub struct ScenarioArgs {
    /// Scenario files, or directories whose *.yaml files run in name order.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Writes every step's outcome and the measurements as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// URL of a running lab to use instead of starting one in-process.
    #[arg(long, value_name = "URL")]
    pub lab: Option<String>,
    #[command(flatten)]
    pub outputs: OutputArgs,
}

/// Report files and thresholds shared by `scenario` and `load`.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Writes one CSV row per load run and phase to this file.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Writes a self-contained HTML page with latency charts to this file.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Fails the run (exit code 1) when this condition holds on any load run,
    /// such as `p99>2ms`, `tls_handshake.p50>=600us`, `qps<1000`, `errors>0`.
    /// Repeatable.
    #[arg(long = "fail-if", value_name = "EXPR")]
    pub fail_if: Vec<Threshold>,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Target URL. Without --as, any http:// URL; with --as, a service as the
    /// workload's app calls it, such as http://details:9080/details/0.
    pub url: String,
    /// Total requests per second across connections; 0 sends as fast as
    /// responses come back (closed loop).
    #[arg(long, default_value_t = 8.0, value_name = "QPS")]
    pub qps: f64,
    /// Concurrent connections, each with one request in flight.
    #[arg(short = 'c', long, default_value_t = 4, value_name = "N")]
    pub connections: u32,
    /// How long to send, such as 5s or 1m; with --requests it is an upper bound.
    #[arg(short = 't', long, value_parser = parse_duration, value_name = "DURATION")]
    pub duration: Option<Duration>,
    /// Sends exactly this many requests (with no --duration, for at most 10 minutes).
    #[arg(short = 'n', long, value_name = "N")]
    pub requests: Option<u64>,
    /// Sends load for this long before measuring, on the same connections.
    #[arg(long, value_parser = parse_duration, default_value = "0s", value_name = "DURATION")]
    pub warmup: Duration,
    /// HTTP method.
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// Adds a request header `Name: value`. Repeatable.
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    pub headers: Vec<String>,
    /// Request body.
    #[arg(long)]
    pub body: Option<String>,
    /// Time after which one request counts as a `timeout` failure.
    #[arg(long, value_parser = parse_duration, default_value = "3s", value_name = "DURATION")]
    pub timeout: Duration,
    /// Sends from inside the mesh as this workload (such as productpage), through
    /// its sidecar with its identity, in an embedded lab started in-process.
    #[arg(long = "as", value_name = "WORKLOAD")]
    pub from: Option<String>,
    /// With --as: skips the workload's sidecar and sends plaintext from its address.
    #[arg(long, requires = "from")]
    pub raw: bool,
    /// With --as: applies this Istio YAML to the embedded lab before the run. Repeatable.
    #[arg(long = "apply", value_name = "FILE", requires = "from")]
    pub apply: Vec<PathBuf>,
    /// Opens a new connection (with a full TLS handshake in the mesh) per request.
    #[arg(long)]
    pub new_connection: bool,
    /// With --as and --new-connection: resumes TLS sessions with session tickets.
    #[arg(long, requires = "from")]
    pub resume: bool,
    /// Names the run in reports; the URL by default.
    #[arg(long)]
    pub label: Option<String>,
    /// Writes the run as JSON (schema in SCHEMA.md) to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Worker threads of the async runtime; 1 runs the loadgen (and the embedded
    /// lab) on one thread, which is fastest on loopback.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub threads: usize,
    /// Hides the progress bar, which otherwise shows when stderr is a terminal.
    #[arg(long)]
    pub no_progress: bool,
    #[command(flatten)]
    pub outputs: OutputArgs,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A JSON report written by `load --json` or `scenario --json`.
    pub file: PathBuf,
    /// Writes the HTML page to this file.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Writes the CSV rows to this file.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Page title; the file name by default.
    #[arg(long)]
    pub title: Option<String>,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The earlier run (A).
    pub before: PathBuf,
    /// The later run (B).
    pub after: PathBuf,
}

/// Maximum duration a flag accepts. Longer ones would overflow the clock's
/// arithmetic, and no load run needs them.
const MAX_FLAG_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Parses a duration such as `500ms`, `5s` or `1m30s`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let duration = if let Ok(seconds) = text.parse::<f64>() {
        if !(seconds.is_finite() && seconds >= 0.0) {
            return Err(format!("invalid duration {text:?}: must not be negative"));
        }
        Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX)
    } else {
        humantime::parse_duration(text).map_err(|error| {
            format!("invalid duration {text:?}: {error}; use such as 500ms, 5s, 1m")
        })?
    };
    if duration > MAX_FLAG_DURATION {
        return Err(format!(
            "invalid duration {text:?}: must be at most 365 days"
        ));
    }
    Ok(duration)
}

/// Runs the parsed command with reports on stdout; `start_lab` starts the
/// in-process lab.
pub async fn run<F, Fut, D, E>(cli: Cli, start_lab: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<D, E>>,
    D: LabDriver,
    E: Into<anyhow::Error>,
{
    run_with_output(cli, start_lab, &mut io::stdout()).await
}

/// Runs the parsed command, writing reports to `out` and errors to stderr.
pub async fn run_with_output<F, Fut, D, E>(cli: Cli, start_lab: F, out: &mut dyn Write) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<D, E>>,
    D: LabDriver,
    E: Into<anyhow::Error>,
{
    match cli.command {
        Command::Scenario(args) => run_scenario_command(args, start_lab, out).await,
        Command::Load(args) => load_command::run(*args, out).await,
        Command::Report(args) => run_report_command(args, out),
        Command::Compare(args) => run_compare_command(args, out),
    }
}

async fn run_scenario_command<F, Fut, D, E>(
    args: ScenarioArgs,
    start_lab: F,
    out: &mut dyn Write,
) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<D, E>>,
    D: LabDriver,
    E: Into<anyhow::Error>,
{
    let scenarios = match load_scenarios(&args.paths) {
        Ok(scenarios) => scenarios,
        Err(error) => return report_error(error, EXIT_BAD_INPUT),
    };
    // The report file is created before the run so a bad path fails fast.
    let json_file = match args.json.as_deref().map(create_report_file).transpose() {
        Ok(file) => file,
        Err(error) => return report_error(error, EXIT_BAD_INPUT),
    };

    let remote;
    let embedded;
    let lab: &dyn LabDriver = match &args.lab {
        Some(url) => match crate::remote::RemoteLab::from_env(url) {
            Ok(lab) => {
                remote = lab;
                &remote
            }
            // Missing or unreadable credentials are configuration, like a bad flag.
            Err(error) => {
                let error = error.context(format!("connecting to the lab at {url}"));
                return report_error(error, EXIT_BAD_INPUT);
            }
        },
        None => match start_lab().await {
            Ok(lab) => {
                embedded = lab;
                &embedded
            }
            Err(error) => {
                let error = error.into().context("starting the embedded lab");
                return report_error(error, EXIT_FAILED);
            }
        },
    };

    let results = run_scenarios(lab, &scenarios, out).await;
    let runs = load_runs(&results);
    if runs.len() > 1 {
        let _ = table::write_comparison(out, &runs);
        let _ = writeln!(out);
    }
    let _ = table::write_summary(out, &results);
    let title = format!("loadgen scenario {}", describe_paths(&args.paths));
    if let Err(error) = write_outputs(&args.outputs, &title, &runs) {
        return report_error(error, EXIT_FAILED);
    }
    let failures = threshold::check_all(&args.outputs.fail_if, &runs);
    for failure in &failures {
        let _ = writeln!(out, "FAIL  {failure}");
    }

    if let Some((path, file)) = json_file {
        let mut writer = BufWriter::new(file);
        let written = json::write(&mut writer, &results).and_then(|()| writer.flush());
        if let Err(error) = written {
            let error = anyhow::Error::new(error).context(format!("writing {}", path.display()));
            return report_error(error, EXIT_FAILED);
        }
    }

    if results.iter().all(ScenarioResult::passed) && failures.is_empty() {
        ExitCode::from(EXIT_PASSED)
    } else {
        ExitCode::from(EXIT_FAILED)
    }
}

/// Loads every scenario the paths name, stopping at the first invalid one.
pub fn load_scenarios(paths: &[PathBuf]) -> Result<Vec<Scenario>, anyhow::Error> {
    let mut scenarios = Vec::new();
    for path in paths {
        let files = scenario::scenario_files(path)?;
        if files.is_empty() {
            anyhow::bail!("{}: no *.yaml scenario files in directory", path.display());
        }
        for file in files {
            scenarios.push(scenario::load_file(&file)?);
        }
    }
    Ok(scenarios)
}

/// Runs scenarios one after another, printing progress and tables to `out`.
pub async fn run_scenarios(
    driver: &dyn LabDriver,
    scenarios: &[Scenario],
    out: &mut dyn Write,
) -> Vec<ScenarioResult> {
    let mut progress = table::TerminalProgress::new(out);
    let mut results = Vec::with_capacity(scenarios.len());
    for scenario in scenarios {
        results.push(runner::run_scenario(driver, scenario, &mut progress).await);
    }
    results
}

/// Returns every load step of the run as a report record, named after the step.
fn load_runs(results: &[ScenarioResult]) -> Vec<LoadJson> {
    results
        .iter()
        .flat_map(|result| &result.steps)
        .filter_map(|step| Some(LoadJson::new(step.label(), step.load.as_deref()?)))
        .collect()
}

fn describe_paths(paths: &[PathBuf]) -> String {
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    names.join(" ")
}

/// Writes the CSV and HTML reports that `outputs` asks for.
pub(crate) fn write_outputs(
    outputs: &OutputArgs,
    title: &str,
    runs: &[LoadJson],
) -> anyhow::Result<()> {
    if let Some(path) = &outputs.csv {
        write_file(path, |writer| csv::write(writer, runs))?;
    }
    if let Some(path) = &outputs.html {
        write_file(path, |writer| html::write(writer, title, runs))?;
    }
    Ok(())
}

/// Creates `path` and fills it with `write`, buffered.
pub(crate) fn write_file(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> anyhow::Result<()> {
    let (path, file) = create_report_file(path)?;
    let mut writer = BufWriter::new(file);
    write(&mut writer)
        .and_then(|()| writer.flush())
        .with_context(|| format!("writing {}", path.display()))
}

fn read_report(path: &Path) -> anyhow::Result<Vec<LoadJson>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    json::read_runs(&text).with_context(|| format!("reading {}", path.display()))
}

fn run_report_command(args: ReportArgs, out: &mut dyn Write) -> ExitCode {
    let runs = match read_report(&args.file) {
        Ok(runs) => runs,
        Err(error) => return report_error(error, EXIT_BAD_INPUT),
    };
    let title = args
        .title
        .clone()
        .unwrap_or_else(|| args.file.display().to_string());
    let _ = writeln!(out, "{} load run(s) in {}", runs.len(), args.file.display());
    for run in &runs {
        let _ = writeln!(out);
        let _ = table::write_saved_run(out, run);
    }
    if runs.len() > 1 {
        let _ = writeln!(out);
        let _ = table::write_comparison(out, &runs);
    }
    let outputs = OutputArgs {
        csv: args.csv,
        html: args.html,
        fail_if: Vec::new(),
    };
    match write_outputs(&outputs, &title, &runs) {
        Ok(()) => ExitCode::from(EXIT_PASSED),
        Err(error) => report_error(error, EXIT_FAILED),
    }
}

fn run_compare_command(args: CompareArgs, out: &mut dyn Write) -> ExitCode {
    let before = match read_report(&args.before) {
        Ok(runs) => runs,
        Err(error) => return report_error(error, EXIT_BAD_INPUT),
    };
    let after = match read_report(&args.after) {
        Ok(runs) => runs,
        Err(error) => return report_error(error, EXIT_BAD_INPUT),
    };
    let before_name = args.before.display().to_string();
    let after_name = args.after.display().to_string();
    let _ = compare::write(out, &before_name, &before, &after_name, &after);
    ExitCode::from(EXIT_PASSED)
}

fn create_report_file(path: &Path) -> anyhow::Result<(PathBuf, File)> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    Ok((path.to_owned(), file))
}

pub(crate) fn report_error(error: impl Into<anyhow::Error>, code: u8) -> ExitCode {
    eprintln!("error: {:#}", error.into());
    ExitCode::from(code)
}

#[cfg(test)]
mod tests;
