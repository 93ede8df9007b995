//! Running scenarios against a lab, step by step.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use tokio::time::Instant;

use crate::check::{self, Check};
use crate::driver::{Exchange, LabDriver, RequestSpec, SendFailure};
use crate::load::{self, LoadOutcome, LoadPlan, SEND_TIMEOUT};
use crate::measure::PhaseLatencies;
use crate::scenario::{
    Action, ClientMode, LoadStep, PolicyChange, Protocol, RequestStep, Scenario,
};

/// Receives results as a run makes progress.
pub trait Progress {
    fn scenario_started(&mut self, _scenario: &Scenario) {}
    fn step_finished(&mut self, _scenario: &Scenario, _step: &StepOutcome) {}
    fn scenario_finished(&mut self, _result: &ScenarioResult) {}
}

/// A [`Progress`] that ignores everything.
pub struct Silent;

impl Progress for Silent {}

/// The outcome of one scenario.
#[derive(Clone, Debug)]
pub struct ScenarioResult {
    pub name: String,
    pub description: Option<String>,
    pub file: PathBuf,
    /// Error from preparing the lab; no step ran when this is set.
    pub setup_error: Option<String>,
    pub steps: Vec<StepOutcome>,
    /// Phases of every request sent by request steps.
    pub latencies: PhaseLatencies,
}

impl ScenarioResult {
    pub fn passed(&self) -> bool {
        self.setup_error.is_none() && self.steps.iter().all(|step| step.passed)
    }

    pub fn failed_steps(&self) -> impl Iterator<Item = &StepOutcome> {
        self.steps.iter().filter(|step| !step.passed)
    }
}

/// The outcome of one step.
#[derive(Clone, Debug)]
pub struct StepOutcome {
    /// Position in the scenario, from 1.
    pub index: usize,
    pub name: Option<String>,
    /// `apply`, `delete`, `reset`, `request` or `load`.
    pub action: &'static str,
    /// A one-line description such as `GET outsider → details:9080/details/0`.
    pub summary: String,
    pub passed: bool,
    /// Reason the step could not run, or the lab's error for a policy change.
    pub error: Option<String>,
    pub checks: Vec<Check>,
    /// The response or failure of a request step's last repetition.
    pub actual: Option<Actual>,
    pub repetitions: u32,
    pub elapsed: Duration,
    pub load: Option<Box<LoadReport>>,
}

impl StepOutcome {
    /// Returns the step's name, or its summary when it has none.
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.summary)
    }

    fn new(index: usize, name: Option<String>, action: &'static str, summary: String) -> Self {
        StepOutcome {
            index,
            name,
            action,
            summary,
            passed: true,
            error: None,
            checks: Vec::new(),
            actual: None,
            repetitions: 0,
            elapsed: Duration::ZERO,
            load: None,
        }
    }

    fn fail(&mut self, error: String) {
        self.passed = false;
        self.error = Some(error);
    }
}

/// Response or failure of one request.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Actual {
    pub status: Option<u16>,
    /// `SendFailure::kind` when no response came back.
    pub failure: Option<&'static str>,
    pub failure_message: Option<String>,
    pub mtls: Option<bool>,
    pub peer: Option<String>,
    /// Total request time as the driver measured it.
    pub latency_us: Option<u64>,
}

impl Actual {
    fn from_outcome(outcome: &Result<Exchange, SendFailure>) -> Actual {
        match outcome {
            Ok(exchange) => Actual {
                status: Some(exchange.status),
                failure: None,
                failure_message: None,
                mtls: Some(exchange.mtls),
                peer: exchange.peer.clone(),
                latency_us: Some(exchange.timings.total.as_micros() as u64),
            },
            Err(failure) => Actual {
                status: None,
                failure: Some(failure.kind()),
                failure_message: Some(failure.to_string()),
                mtls: None,
                peer: None,
                latency_us: None,
            },
        }
    }
}

/// A load step's plan beside its outcome.
#[derive(Clone, Debug)]
pub struct LoadReport {
    pub qps: f64,
    pub connections: u32,
    pub duration: Duration,
    pub requests: Option<u64>,
    pub outcome: LoadOutcome,
}

/// Runs one scenario: resets the lab, adds the scenario's workloads and runs
/// every step in order, even after a failed step.
pub async fn run_scenario(
    driver: &dyn LabDriver,
    scenario: &Scenario,
    sink: &mut dyn Progress,
) -> ScenarioResult {
    sink.scenario_started(scenario);
    let mut result = ScenarioResult {
        name: scenario.name.clone(),
        description: scenario.description.clone(),
        file: scenario.file.clone(),
        setup_error: None,
        steps: Vec::with_capacity(scenario.steps.len()),
        latencies: PhaseLatencies::default(),
    };

    if let Err(error) = prepare_lab(driver, scenario).await {
        tracing::warn!(scenario = %scenario.name, error = %format!("{error:#}"), "Lab setup failed");
        result.setup_error = Some(format!("{error:#}"));
        sink.scenario_finished(&result);
        return result;
    }

    for (position, step) in scenario.steps.iter().enumerate() {
        let index = position + 1;
        let span = tracing::debug_span!("step", index);
        let _entered = span.enter();
        let started = Instant::now();

        let mut outcome = match &step.action {
            Action::Apply(change) => {
                let summary = format!("apply {}", short_origin(change));
                let outcome = StepOutcome::new(index, step.name.clone(), "apply", summary);
                run_policy_change(driver, change, true, outcome).await
            }
            Action::Delete(change) => {
                let summary = format!("delete {}", short_origin(change));
                let outcome = StepOutcome::new(index, step.name.clone(), "delete", summary);
                run_policy_change(driver, change, false, outcome).await
            }
            Action::Reset => {
                let outcome = StepOutcome::new(index, step.name.clone(), "reset", "reset".into());
                run_reset(driver, scenario, outcome).await
            }
            Action::Request(request) => {
                let outcome = StepOutcome::new(
                    index,
                    step.name.clone(),
                    "request",
                    request_summary(request),
                );
                run_request(driver, request, &mut result.latencies, outcome).await
            }
            Action::Load(load) => {
                let outcome =
                    StepOutcome::new(index, step.name.clone(), "load", load_summary(load));
                run_load_step(driver, load, outcome).await
            }
        };
        outcome.elapsed = started.elapsed();

        tracing::debug!(passed = outcome.passed, "Step finished");
        sink.step_finished(scenario, &outcome);
        result.steps.push(outcome);
    }

    sink.scenario_finished(&result);
    result
}

async fn prepare_lab(driver: &dyn LabDriver, scenario: &Scenario) -> anyhow::Result<()> {
    driver.reset().await?;
    if !scenario.workloads.is_empty() {
        driver.add_workloads(scenario.workloads.clone()).await?;
    }
    Ok(())
}

/// Inline policies show as `inline policy` in summaries; the full origin,
/// which names the scenario file, only goes to the lab.
fn short_origin(change: &PolicyChange) -> &str {
    if change.origin.ends_with(" inline policy") {
        "inline policy"
    } else {
        &change.origin
    }
}

async fn run_policy_change(
    driver: &dyn LabDriver,
    change: &PolicyChange,
    is_apply: bool,
    mut outcome: StepOutcome,
) -> StepOutcome {
    let result = if is_apply {
        driver.apply(&change.yaml, &change.origin).await
    } else {
        driver.delete(&change.yaml, &change.origin).await
    };
    let error = result.err().map(|error| format!("{error:#}"));

    match (&change.expect_error, error) {
        (None, None) => {}
        (None, Some(error)) => outcome.fail(error),
        (Some(expected), error) => {
            let passed = error
                .as_deref()
                .is_some_and(|error| error.contains(expected.as_str()));
            let actual = error.unwrap_or_else(|| "no error".to_owned());
            outcome.checks.push(Check {
                expectation: "error".to_owned(),
                expected: serde_json::json!(expected),
                actual: serde_json::json!(actual),
                passed,
                failed_repetitions: u32::from(!passed),
            });
            outcome.passed = passed;
        }
    }
    outcome
}

/// Resets the lab and adds the scenario's workloads back, so later steps can
/// still send from them.
async fn run_reset(
    driver: &dyn LabDriver,
    scenario: &Scenario,
    mut outcome: StepOutcome,
) -> StepOutcome {
    if let Err(error) = prepare_lab(driver, scenario).await {
        outcome.fail(format!("{error:#}"));
    }
    outcome
}

async fn run_request(
    driver: &dyn LabDriver,
    step: &RequestStep,
    latencies: &mut PhaseLatencies,
    mut outcome: StepOutcome,
) -> StepOutcome {
    let minted = match &step.request.jwt {
        Some(claims) => {
            let claims = serde_json::Value::Object(claims.clone());
            match driver.mint_token(claims).await {
                Ok(token) => Some(token),
                Err(error) => {
                    outcome.fail(format!("minting the jwt token failed: {error:#}"));
                    return outcome;
                }
            }
        }
        None => None,
    };
    let spec = match request_spec(step, minted.as_deref()) {
        Ok(spec) => spec,
        Err(error) => {
            outcome.fail(error);
            return outcome;
        }
    };

    for repetition in 0..step.request.repeat {
        let send = if step.request.protocol == Protocol::Tcp {
            driver.send_tcp(spec.clone())
        } else {
            driver.send(spec.clone())
        };
        let result = match tokio::time::timeout(SEND_TIMEOUT, send).await {
            Ok(result) => result,
            Err(_elapsed) => Err(SendFailure::Timeout),
        };
        if let Ok(exchange) = &result {
            latencies.record(exchange);
        }

        let checks = check::evaluate(&step.expect, &result);
        if repetition == 0 {
            outcome.checks = checks;
        } else {
            for (kept, later) in outcome.checks.iter_mut().zip(checks) {
                kept.absorb(later);
            }
        }
        outcome.actual = Some(Actual::from_outcome(&result));
        outcome.repetitions += 1;
    }

    outcome.passed = outcome.checks.iter().all(|check| check.passed);
    outcome
}

async fn run_load_step(
    driver: &dyn LabDriver,
    step: &LoadStep,
    mut outcome: StepOutcome,
) -> StepOutcome {
    let plan = LoadPlan::from_step(step);
    let load_outcome = load::run_load(driver, &plan).await;
    outcome.repetitions = u32::try_from(load_outcome.sent).unwrap_or(u32::MAX);
    outcome.load = Some(Box::new(LoadReport {
        qps: plan.schedule.qps,
        connections: plan.schedule.connections,
        duration: plan.schedule.duration,
        requests: plan.schedule.requests,
        outcome: load_outcome,
    }));
    outcome
}

/// Builds the request a step sends, with its token in place; `minted` is the
/// token minted for the step's `jwt:` claims.
///
/// # Errors
///
/// Returns a message for a `jwt:` step whose token was not minted.
pub fn request_spec(step: &RequestStep, minted: Option<&str>) -> Result<RequestSpec, String> {
    let request = &step.request;
    if request.jwt.is_some() && minted.is_none() {
        return Err("jwt: the token was not minted".to_owned());
    }

    let mut headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let mut path = request.path.clone();

    let token = step
        .token_from_file
        .as_deref()
        .or(request.token_raw.as_deref())
        .or(minted);
    if let Some(token) = token {
        match &request.token_location {
            None => headers.push(("Authorization".to_owned(), format!("Bearer {token}"))),
            Some(location) => {
                if let Some(header) = &location.header {
                    let prefix = location.prefix.as_deref().unwrap_or("");
                    headers.push((header.clone(), format!("{prefix}{token}")));
                }
                if let Some(parameter) = &location.query {
                    let separator = if path.contains('?') { '&' } else { '?' };
                    path = format!("{path}{separator}{parameter}={}", percent_encode(token));
                }
            }
        }
    }

    Ok(RequestSpec {
        from: request.from.clone(),
        to: request.to.clone(),
        port: request.port,
        method: request.method.clone(),
        path,
        headers,
        body: request.body.clone().map(Bytes::from).unwrap_or_default(),
        raw_client: request.client == Some(ClientMode::Raw),
        new_connection: request.new_connection,
    })
}

/// Encodes every byte outside RFC 3986's unreserved set, so any token survives
/// as one query value.
fn percent_encode(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

fn target(to: &str, port: Option<u16>, path: &str) -> String {
    match port {
        Some(port) => format!("{to}:{port}{path}"),
        None => format!("{to}{path}"),
    }
}

fn request_summary(step: &RequestStep) -> String {
    let request = &step.request;
    let target = target(&request.to, request.port, &request.path);
    let mut summary = format!("{} {} → {target}", request.method, request.from);
    if request.client == Some(ClientMode::Raw) {
        summary.push_str(" (raw)");
    }
    if request.repeat > 1 {
        summary.push_str(&format!(" ×{}", request.repeat));
    }
    summary
}

fn load_summary(step: &LoadStep) -> String {
    let target = target(&step.to, step.port, &step.path);
    let rate = if step.qps > 0.0 {
        format!("{} qps", step.qps)
    } else {
        "max qps".to_owned()
    };
    let mut bound = humantime::format_duration(step.time_limit()).to_string();
    if let Some(requests) = step.requests {
        bound = format!("{requests} requests or {bound}");
    }
    let connections = match step.connections {
        1 => "1 connection".to_owned(),
        count => format!("{count} connections"),
    };
    format!(
        "load {} {} → {target} at {rate}, {connections}, {bound}",
        step.method, step.from
    )
}

#[cfg(test)]
mod tests;
