//! The `loadgen` command line. The binary parses arguments, installs tracing
//! and passes in the lab to start; everything else happens here.

use std::fs::File;
use std::future::Future;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::driver::LabDriver;
use crate::report::{json, table};
use crate::runner::{self, ScenarioResult};
use crate::scenario::{self, Scenario};

/// Every scenario passed.
pub const EXIT_PASSED: u8 = 0;
/// An expectation failed, or the lab could not start.
pub const EXIT_FAILED: u8 = 1;
/// A scenario file or a flag is invalid.
pub const EXIT_BAD_INPUT: u8 = 2;

/// Scenario runner for the meshlab lab.
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
    if args.lab.is_some() {
        let error = anyhow::anyhow!(
            "--lab: running against a lab over the network is not supported yet; \
             omit --lab to use the embedded lab"
        );
        return report_error(error, EXIT_BAD_INPUT);
    }
    // The report file is created before the run so a bad path fails fast.
    let json_file = match args.json.as_deref().map(create_report_file).transpose() {
        Ok(file) => file,
        Err(error) => return report_error(error, EXIT_BAD_INPUT),
    };

    let lab = match start_lab().await {
        Ok(lab) => lab,
        Err(error) => {
            let error = error.into().context("starting the embedded lab");
            return report_error(error, EXIT_FAILED);
        }
    };

    let results = run_scenarios(&lab, &scenarios, out).await;
    let _ = table::write_summary(out, &results);

    if let Some((path, file)) = json_file {
        let mut writer = BufWriter::new(file);
        let written = json::write(&mut writer, &results).and_then(|()| writer.flush());
        if let Err(error) = written {
            let error = anyhow::Error::new(error).context(format!("writing {}", path.display()));
            return report_error(error, EXIT_FAILED);
        }
    }

    if results.iter().all(ScenarioResult::passed) {
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

fn create_report_file(path: &Path) -> anyhow::Result<(PathBuf, File)> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    Ok((path.to_owned(), file))
}

fn report_error(error: impl Into<anyhow::Error>, code: u8) -> ExitCode {
    eprintln!("error: {:#}", error.into());
    ExitCode::from(code)
}

#[cfg(test)]
mod tests;
