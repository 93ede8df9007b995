//! The JSON report; its schema is described in `SCHEMA.md` beside the crate.

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::check::Check;
use crate::measure::{LatencySummary, PercentilePoint, PhaseLatencies};
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
    pub load: Option<LoadJson>,
}

/// One load run: a `loadgen load` run or a scenario's load step. `report`
/// and `compare` read it back, so it owns its data.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LoadJson {
    /// Name of the run: `--label`, the URL, or the load step's name.
    #[serde(default)]
    pub label: String,
    /// `open` (constant rate) or `closed` (as fast as possible).
    pub mode: String,
    pub requested_qps: f64,
    pub connections: u32,
    pub requested_duration_us: u64,
    pub requested_requests: Option<u64>,
    pub sent: u64,
    pub elapsed_us: u64,
    pub achieved_qps: f64,
    pub status_codes: BTreeMap<String, u64>,
    pub failures: BTreeMap<String, u64>,
    pub failure_messages: BTreeMap<String, u64>,
    /// Requests without a 2xx or 3xx response, failures included.
    #[serde(default)]
    pub errors: u64,
    pub latency: BTreeMap<String, LatencySummary>,
    /// Latency from each request's due time; open loop only.
    pub corrected_total: Option<LatencySummary>,
    /// Percentile spectrum per phase, plus `corrected_total` in open loop.
    #[serde(default)]
    pub percentiles: BTreeMap<String, Vec<PercentilePoint>>,
    /// CPU time (user and system) the loadgen process used during the
    /// measured run, including an embedded lab, from the process CPU clock.
    #[serde(default)]
    pub process_cpu_us: Option<u64>,
    /// The user-space part of `process_cpu_us`, estimated from the kernel's
    /// 10 ms tick counts. The rest is kernel time, which on loopback includes
    /// much of the TCP stack of both ends.
    #[serde(default)]
    pub process_user_cpu_us: Option<u64>,
}

impl LoadJson {
    /// Builds the record of a load run.
    pub fn new(label: &str, load: &LoadReport) -> LoadJson {
        let outcome = &load.outcome;
        let mut percentiles: BTreeMap<String, Vec<PercentilePoint>> = outcome
            .phases
            .phases()
            .into_iter()
            .filter(|(_, latency)| latency.count() > 0)
            .map(|(phase, latency)| (phase.to_owned(), latency.spectrum()))
            .collect();
        if let Some(corrected) = &outcome.corrected {
            percentiles.insert(CORRECTED_TOTAL.to_owned(), corrected.spectrum());
        }
        LoadJson {
            label: label.to_owned(),
            mode: if load.qps > 0.0 { "open" } else { "closed" }.to_owned(),
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
            failures: outcome.failures.clone(),
            failure_messages: outcome.failure_messages.clone(),
            errors: outcome.errors(),
            latency: latency_json(&outcome.phases)
                .into_iter()
                .map(|(phase, summary)| (phase.to_owned(), summary))
                .collect(),
            corrected_total: outcome.corrected.as_ref().map(|latency| latency.summary()),
            percentiles,
            process_cpu_us: None,
            process_user_cpu_us: None,
        }
    }

    /// Returns a phase's summary, or `corrected_total` for that name.
    pub fn phase(&self, phase: &str) -> Option<&LatencySummary> {
        if phase == CORRECTED_TOTAL {
            return self.corrected_total.as_ref();
        }
        self.latency.get(phase).filter(|summary| summary.count > 0)
    }

    /// Returns the latency at `percentile` (0 to 100) of a phase, from the
    /// summary or the spectrum.
    pub fn percentile_us(&self, phase: &str, percentile: f64) -> Option<u64> {
        let summary = self.phase(phase)?;
        let from_summary = [
            (0.0, summary.min_us),
            (50.0, summary.p50_us),
            (75.0, summary.p75_us),
            (90.0, summary.p90_us),
            (99.0, summary.p99_us),
            (99.9, summary.p999_us),
            (100.0, summary.max_us),
        ]
        .into_iter()
        .find(|(known, _)| *known == percentile)
        .map(|(_, value)| value);
        from_summary.or_else(|| {
            self.percentiles
                .get(phase)?
                .iter()
                .find(|point| point.percentile == percentile)
                .map(|point| point.value_us)
        })
    }

    /// Requests without any response (connection, TLS and timeout failures).
    pub fn failed(&self) -> u64 {
        self.failures.values().sum()
    }
}

/// Name of the coordinated-omission-corrected total in phase maps.
pub const CORRECTED_TOTAL: &str = "corrected_total";

/// The document `loadgen load --json` writes.
#[derive(Debug, Serialize, Deserialize)]
pub struct LoadDocument {
    pub schema_version: u32,
    pub generator: String,
    /// `load`; scenario documents have no `kind`.
    pub kind: String,
    /// Target URL as given on the command line.
    pub url: String,
    /// `plain` (outside the mesh) or the workload the requests came from.
    pub client: String,
    /// Seconds since the Unix epoch when the measured run started.
    pub start_time_unix: u64,
    /// Every `--fail-if` threshold and whether it held.
    pub thresholds: Vec<ThresholdJson>,
    /// No threshold failed.
    pub passed: bool,
    pub runs: Vec<LoadJson>,
}

/// A `--fail-if` threshold and its outcome.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ThresholdJson {
    pub expression: String,
    /// The run met the condition, so it failed.
    pub failed: bool,
    /// The measured value, such as `total p99 = 2.310 ms`.
    pub actual: String,
}

/// Reads every load run from a saved `load` or `scenario` JSON document;
/// scenario load steps are named after the step.
pub fn read_runs(text: &str) -> Result<Vec<LoadJson>, ReadError> {
    let document: Value = serde_json::from_str(text).map_err(ReadError::Json)?;
    let version = document.get("schema_version").and_then(Value::as_u64);
    if version != Some(u64::from(SCHEMA_VERSION)) {
        return Err(ReadError::Version(version));
    }
    if let Some(runs) = document.get("runs") {
        return serde_json::from_value(runs.clone()).map_err(ReadError::Json);
    }
    let mut runs = Vec::new();
    let scenarios = document.get("scenarios").and_then(Value::as_array);
    for scenario in scenarios.into_iter().flatten() {
        let steps = scenario.get("steps").and_then(Value::as_array);
        for step in steps.into_iter().flatten() {
            let Some(load) = step.get("load").filter(|load| !load.is_null()) else {
                continue;
            };
            let mut run: LoadJson =
                serde_json::from_value(load.clone()).map_err(ReadError::Json)?;
            if run.label.is_empty() {
                let name = step.get("name").and_then(Value::as_str);
                let summary = step.get("summary").and_then(Value::as_str);
                run.label = name.or(summary).unwrap_or("load").to_owned();
            }
            runs.push(run);
        }
    }
    Ok(runs)
}

/// A saved report that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("invalid report JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error("unsupported schema_version {0:?}: this loadgen reads version {SCHEMA_VERSION}")]
    Version(Option<u64>),
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
        load: step
            .load
            .as_deref()
            .map(|load| load_json(step.label(), load)),
    }
}

fn load_json(label: &str, load: &LoadReport) -> LoadJson {
    LoadJson::new(label, load)
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
