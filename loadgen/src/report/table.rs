//! Terminal output: one line per step as it completes, then a latency table
//! per scenario and a summary of the run.

use std::io::{self, Write};
use std::time::Duration;

use crate::measure::{Latency, LatencySummary, PhaseLatencies, PHASES};
use crate::report::html::baseline_index;
use crate::report::json::LoadJson;
use crate::runner::{LoadReport, Progress, ScenarioResult, StepOutcome};
use crate::scenario::Scenario;

/// Width the step label is padded to, so verdicts line up.
const LABEL_WIDTH: usize = 56;

/// A [`Progress`] printing to a terminal or any writer.
pub struct TerminalProgress<W> {
    out: W,
}

impl<W: Write> TerminalProgress<W> {
    pub fn new(out: W) -> Self {
        TerminalProgress { out }
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

// Write errors are dropped on purpose: a closed stdout must not stop the
// scenarios, and the exit code and JSON report still carry the results.
impl<W: Write> Progress for TerminalProgress<W> {
    fn scenario_started(&mut self, scenario: &Scenario) {
        let _ = write_scenario_header(&mut self.out, scenario);
    }

    fn step_finished(&mut self, _scenario: &Scenario, step: &StepOutcome) {
        let _ = write_step(&mut self.out, step);
    }

    fn scenario_finished(&mut self, result: &ScenarioResult) {
        let _ = write_scenario_report(&mut self.out, result);
    }
}

fn write_scenario_header(out: &mut dyn Write, scenario: &Scenario) -> io::Result<()> {
    writeln!(out, "== {} ({})", scenario.name, scenario.file.display())?;
    if let Some(description) = &scenario.description {
        writeln!(out, "   {}", description.trim())?;
    }
    Ok(())
}

/// Writes a step's line and, when it failed, each failing expectation.
pub fn write_step(out: &mut dyn Write, step: &StepOutcome) -> io::Result<()> {
    let verdict = if step.passed { "PASS" } else { "FAIL" };
    let label = step.label();
    let padding = LABEL_WIDTH.saturating_sub(label.chars().count());
    writeln!(
        out,
        "{:>3}. {label}{:padding$} {verdict}  {}  {}",
        step.index,
        "",
        actual_text(step),
        format_duration_ms(step_latency(step)),
    )?;

    if let Some(error) = &step.error {
        writeln!(out, "       error: {error}")?;
    }
    for check in step.checks.iter().filter(|check| !check.passed) {
        write!(
            out,
            "       {}: expected {}, actual {}",
            check.expectation, check.expected, check.actual
        )?;
        if step.repetitions > 1 {
            write!(
                out,
                " (failed on {} of {} repetitions)",
                check.failed_repetitions, step.repetitions
            )?;
        }
        writeln!(out)?;
    }
    Ok(())
}

fn actual_text(step: &StepOutcome) -> String {
    if let Some(actual) = &step.actual {
        return match (actual.status, actual.failure) {
            (Some(status), _) => status.to_string(),
            (None, Some(failure)) => format!("failed: {failure}"),
            (None, None) => "-".to_owned(),
        };
    }
    if let Some(load) = &step.load {
        let outcome = &load.outcome;
        return format!(
            "{} requests, {:.1} qps",
            outcome.sent,
            outcome.achieved_qps()
        );
    }
    match (&step.error, step.checks.is_empty()) {
        (Some(_), _) => "error".to_owned(),
        (None, false) => "rejected".to_owned(),
        (None, true) => "ok".to_owned(),
    }
}

/// Returns a request step's last request time, or any other step's run time.
fn step_latency(step: &StepOutcome) -> Duration {
    step.actual
        .as_ref()
        .and_then(|actual| actual.latency_us)
        .map(Duration::from_micros)
        .unwrap_or(step.elapsed)
}

/// Writes the verdict, the request latency table and each load step's report.
pub fn write_scenario_report(out: &mut dyn Write, result: &ScenarioResult) -> io::Result<()> {
    if let Some(error) = &result.setup_error {
        writeln!(out, "   FAIL  lab setup: {error}")?;
    }
    let passed = result.steps.iter().filter(|step| step.passed).count();
    writeln!(
        out,
        "-- {}: {passed} of {} steps passed",
        result.name,
        result.steps.len()
    )?;

    if !result.latencies.is_empty() {
        writeln!(out)?;
        write_latency_table(out, "request steps", &result.latencies, None)?;
    }
    for step in &result.steps {
        if let Some(load) = &step.load {
            writeln!(out)?;
            write_load(out, step, load)?;
        }
    }
    writeln!(out)
}

/// Writes a load step's rate, status counts, errors and latencies.
pub fn write_load(out: &mut dyn Write, step: &StepOutcome, load: &LoadReport) -> io::Result<()> {
    let outcome = &load.outcome;
    writeln!(out, "step {}: {}", step.index, step.label())?;
    let elapsed = outcome.elapsed.as_secs_f64();
    if load.qps > 0.0 {
        writeln!(
            out,
            "  open loop: {} qps requested, {:.1} achieved; {} requests in {elapsed:.3} s over {}",
            load.qps,
            outcome.achieved_qps(),
            outcome.sent,
            connections(load.connections)
        )?;
    } else {
        writeln!(
            out,
            "  closed loop, as fast as possible: {:.1} qps; {} requests in {elapsed:.3} s over {}",
            outcome.achieved_qps(),
            outcome.sent,
            connections(load.connections)
        )?;
    }

    write_statuses_and_failures(out, load)?;
    write_latency_table(out, "load", &outcome.phases, outcome.corrected.as_ref())
}

fn write_statuses_and_failures(out: &mut dyn Write, load: &LoadReport) -> io::Result<()> {
    let outcome = &load.outcome;
    let statuses: Vec<String> = outcome
        .statuses
        .iter()
        .map(|(status, count)| format!("{status}: {count}"))
        .collect();
    let statuses = if statuses.is_empty() {
        "none".to_owned()
    } else {
        statuses.join(", ")
    };
    writeln!(out, "  status codes: {statuses}")?;
    if outcome.failures.is_empty() {
        writeln!(out, "  connection errors: none")?;
    } else {
        let failures: Vec<String> = outcome
            .failures
            .iter()
            .map(|(kind, count)| format!("{kind}: {count}"))
            .collect();
        writeln!(out, "  connection errors: {}", failures.join(", "))?;
        for (message, count) in &outcome.failure_messages {
            writeln!(out, "    {count} × {message}")?;
        }
    }
    Ok(())
}

/// Writes one row per non-empty phase: count, percentiles, maximum and
/// mean in milliseconds.
pub fn write_latency_table(
    out: &mut dyn Write,
    title: &str,
    phases: &PhaseLatencies,
    corrected: Option<&Latency>,
) -> io::Result<()> {
    write_latency_header(out, title)?;
    let corrected_row = corrected.map(|latency| ("total, corrected", latency));
    let rows = phases.phases().into_iter().chain(corrected_row);
    for (phase, latency) in rows {
        write_latency_row(out, phase, &latency.summary())?;
    }
    Ok(())
}

fn write_latency_header(out: &mut dyn Write, title: &str) -> io::Result<()> {
    writeln!(
        out,
        "  {:<22} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        format!("{title} (ms)"),
        "count",
        "p50",
        "p75",
        "p90",
        "p99",
        "p99.9",
        "max",
        "mean"
    )
}

/// Writes one phase's row; a phase without values gets none.
fn write_latency_row(out: &mut dyn Write, phase: &str, summary: &LatencySummary) -> io::Result<()> {
    if summary.count == 0 {
        return Ok(());
    }
    writeln!(
        out,
        "  {phase:<22} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        summary.count,
        format_us(summary.p50_us),
        format_us(summary.p75_us),
        format_us(summary.p90_us),
        format_us(summary.p99_us),
        format_us(summary.p999_us),
        format_us(summary.max_us),
        format!("{:.3}", summary.mean_us / 1000.0),
    )
}

/// Writes the result of a `loadgen load` run: rate, status codes, errors by
/// kind and the latency table.
pub fn write_load_run(out: &mut dyn Write, label: &str, load: &LoadReport) -> io::Result<()> {
    let outcome = &load.outcome;
    writeln!(out, "{label}")?;
    let elapsed = outcome.elapsed.as_secs_f64();
    if load.qps > 0.0 {
        writeln!(
            out,
            "  open loop at {} qps requested over {}; latency corrected for coordinated omission",
            load.qps,
            connections(load.connections)
        )?;
    } else {
        writeln!(
            out,
            "  closed loop, as fast as possible, over {}",
            connections(load.connections)
        )?;
    }
    writeln!(
        out,
        "  {} requests in {elapsed:.3} s: {:.1} qps, {} errors (4xx/5xx or no response)",
        outcome.sent,
        outcome.achieved_qps(),
        outcome.errors()
    )?;
    write_statuses_and_failures(out, load)?;
    write_latency_table(out, "latency", &outcome.phases, outcome.corrected.as_ref())
}

/// Writes a saved run much as `loadgen load` printed it: rate, status codes,
/// connection errors by kind, and the percentiles the JSON keeps per phase.
pub fn write_saved_run(out: &mut dyn Write, run: &LoadJson) -> io::Result<()> {
    writeln!(out, "{}", run.label)?;
    writeln!(
        out,
        "  {} loop over {}; {} requests in {:.3} s: {:.1} qps, {} errors (4xx/5xx or no response)",
        run.mode,
        connections(run.connections),
        run.sent,
        run.elapsed_us as f64 / 1e6,
        run.achieved_qps,
        run.errors
    )?;
    let counts = |map: &std::collections::BTreeMap<String, u64>| {
        let parts: Vec<String> = map
            .iter()
            .map(|(key, count)| format!("{key}: {count}"))
            .collect();
        if parts.is_empty() {
            "none".to_owned()
        } else {
            parts.join(", ")
        }
    };
    writeln!(out, "  status codes: {}", counts(&run.status_codes))?;
    writeln!(out, "  connection errors: {}", counts(&run.failures))?;
    write_latency_header(out, "latency")?;
    let corrected = run
        .corrected_total
        .as_ref()
        .map(|summary| ("total, corrected", summary));
    let phases = PHASES
        .iter()
        .filter_map(|phase| Some((*phase, run.phase(phase)?)));
    for (phase, summary) in phases.chain(corrected) {
        write_latency_row(out, phase, summary)?;
    }
    Ok(())
}

/// Writes a comparison of load runs against the plaintext one (or the
/// first): p50, p99 and qps, and what each adds to the baseline.
pub fn write_comparison(out: &mut dyn Write, runs: &[LoadJson]) -> io::Result<()> {
    if runs.len() < 2 {
        return Ok(());
    }
    let base = &runs[baseline_index(runs)];
    let base_total = base.phase("total").copied().unwrap_or_default();
    writeln!(out, "load steps against {:?} (latency in ms)", base.label)?;
    writeln!(
        out,
        "  {:<44} {:>6} {:>10} {:>8} {:>8} {:>10} {:>10} {:>8}",
        "step", "mode", "qps", "p50", "p99", "added p50", "added p99", "qps %"
    )?;
    for run in runs {
        let total = run.phase("total").copied().unwrap_or_default();
        let qps_share = if base.achieved_qps > 0.0 {
            format!("{:.0}%", run.achieved_qps / base.achieved_qps * 100.0)
        } else {
            "-".to_owned()
        };
        let label: String = run.label.chars().take(44).collect();
        writeln!(
            out,
            "  {label:<44} {:>6} {:>10.1} {:>8} {:>8} {:>10} {:>10} {:>8}",
            run.mode,
            run.achieved_qps,
            format_us(total.p50_us),
            format_us(total.p99_us),
            format_signed_us(total.p50_us as i64 - base_total.p50_us as i64),
            format_signed_us(total.p99_us as i64 - base_total.p99_us as i64),
            qps_share,
        )?;
    }
    Ok(())
}

fn format_signed_us(micros: i64) -> String {
    format!("{:+.3}", micros as f64 / 1000.0)
}

/// Writes the run's verdict and names every failed step as `file: step N`.
pub fn write_summary(out: &mut dyn Write, results: &[ScenarioResult]) -> io::Result<()> {
    let passed = results.iter().filter(|result| result.passed()).count();
    writeln!(out, "{passed} of {} scenarios passed", results.len())?;
    for result in results.iter().filter(|result| !result.passed()) {
        let file = result.file.display();
        if let Some(error) = &result.setup_error {
            writeln!(out, "  {file}: lab setup: {error}")?;
        }
        for step in result.failed_steps() {
            writeln!(out, "  {file}: step {} ({})", step.index, step.label())?;
        }
    }
    Ok(())
}

fn connections(count: u32) -> String {
    if count == 1 {
        "1 connection".to_owned()
    } else {
        format!("{count} connections")
    }
}

fn format_us(micros: u64) -> String {
    format!("{:.3}", micros as f64 / 1000.0)
}

fn format_duration_ms(duration: Duration) -> String {
    format!("{:.3} ms", duration.as_secs_f64() * 1000.0)
}
