//! The JSON report; its schema is described in `SCHEMA.md` beside the crate.

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde::Serialize;

use crate::check::Check;
use crate::measure::{LatencySummary, PhaseLatencies};
use crate::runner::{Actual, LoadReport, ScenarioResult, StepOutcome};

/// Version of the document layout; it changes only when a field is removed,
/// renamed or changes meaning.
pub const SCHEMA_VERSION: u32 = 1;

/// The whole JSON document.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    pub schema_version: u32,
    pub generator: String,
    pub passed: bool,
    pub scenarios: Vec<ScenarioJson<'a>>,
}

#[derive(Debug, Serialize)]
pub struct ScenarioJson<'a> {
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub file: String,
    pub passed: bool,
    pub setup_error: Option<&'a str>,
    pub steps: Vec<StepJson<'a>>,
    /// Request-step latencies by phase.
    pub latency: BTreeMap<&'static str, LatencySummary>,
}

#[derive(Debug, Serialize)]
pub struct StepJson<'a> {
    pub index: usize,
    pub name: Option<&'a str>,
    pub action: &'static str,
    pub summary: &'a str,
    pub passed: bool,
    pub error: Option<&'a str>,
    pub repetitions: u32,
    pub elapsed_us: u64,
    pub checks: &'a [Check],
    pub actual: Option<&'a Actual>,
    pub load: Option<LoadJson<'a>>,
}

#[derive(Debug, Serialize)]
pub struct LoadJson<'a> {
    /// `open` (constant rate) or `closed` (as fast as possible).
    pub mode: &'static str,
    pub requested_qps: f64,
    pub connections: u32,
    pub requested_duration_us: u64,
    pub requested_requests: Option<u64>,
    pub sent: u64,
    pub elapsed_us: u64,
    pub achieved_qps: f64,
    pub status_codes: BTreeMap<String, u64>,
    pub failures: &'a BTreeMap<String, u64>,
    pub failure_messages: &'a BTreeMap<String, u64>,
    pub latency: BTreeMap<&'static str, LatencySummary>,
    /// Latency from each request's due time; open loop only.
    pub corrected_total: Option<LatencySummary>,
}

/// Builds the JSON document of a run.
pub fn report(results: &[ScenarioResult]) -> Report<'_> {
    Report {
        schema_version: SCHEMA_VERSION,
        generator: format!("loadgen {}", env!("CARGO_PKG_VERSION")),
        passed: results.iter().all(ScenarioResult::passed),
        scenarios: results.iter().map(scenario_json).collect(),
    }
}

/// Writes the JSON document of a run, pretty-printed.
pub fn write(out: &mut dyn Write, results: &[ScenarioResult]) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, &report(results))?;
    writeln!(out)
}

fn scenario_json(result: &ScenarioResult) -> ScenarioJson<'_> {
    ScenarioJson {
        name: &result.name,
        description: result.description.as_deref(),
        file: result.file.display().to_string(),
        passed: result.passed(),
        setup_error: result.setup_error.as_deref(),
        steps: result.steps.iter().map(step_json).collect(),
        latency: latency_json(&result.latencies),
    }
}

fn step_json(step: &StepOutcome) -> StepJson<'_> {
    StepJson {
        index: step.index,
        name: step.name.as_deref(),
        action: step.action,
        summary: &step.summary,
        passed: step.passed,
        error: step.error.as_deref(),
        repetitions: step.repetitions,
        elapsed_us: micros(step.elapsed),
        checks: &step.checks,
        actual: step.actual.as_ref(),
        load: step.load.as_deref().map(load_json),
    }
}

fn load_json(load: &LoadReport) -> LoadJson<'_> {
    let outcome = &load.outcome;
    LoadJson {
        mode: if load.qps > 0.0 { "open" } else { "closed" },
        requested_qps: load.qps,
        connections: load.connections,
        requested_duration_us: micros(load.duration),
        requested_requests: load.requests,
        sent: outcome.sent,
        elapsed_us: micros(outcome.elapsed),
        achieved_qps: outcome.achieved_qps(),
        status_codes: outcome
            .statuses
            .iter()
            .map(|(status, count)| (status.to_string(), *count))
            .collect(),
        failures: &outcome.failures,
        failure_messages: &outcome.failure_messages,
        latency: latency_json(&outcome.phases),
        corrected_total: outcome.corrected.as_ref().map(|latency| latency.summary()),
    }
}

fn latency_json(phases: &PhaseLatencies) -> BTreeMap<&'static str, LatencySummary> {
    phases
        .phases()
        .into_iter()
        .map(|(phase, latency)| (phase, latency.summary()))
        .collect()
}

fn micros(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}
