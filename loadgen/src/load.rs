//! Load engine: concurrent workers sending one request over and over.
//!
//! With `qps > 0` the run is an open loop: request `i` is due at
//! `start + i / qps` whatever happened to earlier requests. Its corrected
//! latency runs from that due time to the response, so a stalled server shows
//! up in the percentiles instead of silently lowering the rate. This is the
//! coordinated-omission correction of wrk2 and oha `--latency-correction`. The
//! uncorrected per-phase histograms are kept beside it. With `qps = 0` each
//! worker sends its next request as soon as the previous one completes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::driver::{LabDriver, RequestSpec, SendFailure};
use crate::measure::{Latency, PhaseLatencies};
use crate::scenario::LoadStep;

/// Time after which the engine gives up on one request and counts a timeout.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Maximum distinct failure messages kept per load run; the rest are counted
/// under their kind only.
const MAX_FAILURE_MESSAGES: usize = 20;

/// Request, rate and bounds of a load run.
#[derive(Clone, Debug)]
pub struct LoadPlan {
    pub request: RequestSpec,
    /// Total requests per second across connections; 0 means closed loop.
    pub qps: f64,
    pub connections: u32,
    /// No request starts after this much time.
    pub duration: Duration,
    /// No more than this many requests are sent.
    pub requests: Option<u64>,
}

impl LoadPlan {
    /// Builds the plan of a scenario's load step.
    pub fn from_step(step: &LoadStep) -> LoadPlan {
        let request = RequestSpec {
            from: step.from.clone(),
            to: step.to.clone(),
            port: step.port,
            method: step.method.clone(),
            path: step.path.clone(),
            headers: step
                .headers
                .iter()
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
            body: Bytes::new(),
            raw_client: false,
            new_connection: step.new_connection,
        };
        LoadPlan {
            request,
            qps: step.qps,
            connections: step.connections,
            duration: step.time_limit(),
            requests: step.requests,
        }
    }

    pub fn is_open_loop(&self) -> bool {
        self.qps > 0.0
    }
}

/// Counts and latencies of one load run.
#[derive(Clone, Debug, Default)]
pub struct LoadOutcome {
    /// Requests sent, answered or not.
    pub sent: u64,
    /// Time from the start to the last completed request.
    pub elapsed: Duration,
    /// Responses by HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests without a response, by `SendFailure::kind`.
    pub failures: BTreeMap<String, u64>,
    /// Requests without a response, by failure message (first few messages only).
    pub failure_messages: BTreeMap<String, u64>,
    /// Phases as the driver measured them, from the actual send.
    pub phases: PhaseLatencies,
    /// Latency from each request's due time to its response; open loop only.
    pub corrected: Option<Latency>,
}

impl LoadOutcome {
    /// Returns completed requests per second over the elapsed time.
    pub fn achieved_qps(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.sent as f64 / seconds
        } else {
            0.0
        }
    }

    fn record_failure(&mut self, failure: &SendFailure) {
        *self.failures.entry(failure.kind().to_owned()).or_default() += 1;
        let message = failure.to_string();
        let known = self.failure_messages.contains_key(&message);
        if known || self.failure_messages.len() < MAX_FAILURE_MESSAGES {
            *self.failure_messages.entry(message).or_default() += 1;
        }
    }

    fn merge(&mut self, other: LoadOutcome) {
        self.sent += other.sent;
        for (status, count) in other.statuses {
            *self.statuses.entry(status).or_default() += count;
        }
        for failure in other.failures.keys() {
            let count = other.failures[failure];
            *self.failures.entry(failure.clone()).or_default() += count;
        }
        for (message, count) in other.failure_messages {
            let known = self.failure_messages.contains_key(&message);
            if known || self.failure_messages.len() < MAX_FAILURE_MESSAGES {
                *self.failure_messages.entry(message).or_default() += count;
            }
        }
        self.phases.merge(&other.phases);
        if let Some(other_corrected) = &other.corrected {
            self.corrected
                .get_or_insert_with(Latency::default)
                .merge(other_corrected);
        }
    }
}

/// Runs `plan` against the lab and returns what came back.
pub async fn run_load(driver: &dyn LabDriver, plan: &LoadPlan) -> LoadOutcome {
    let start = Instant::now();
    let deadline = start + plan.duration;
    let next_index = AtomicU64::new(0);

    let workers =
        (0..plan.connections).map(|_| run_worker(driver, plan, start, deadline, &next_index));
    let worker_outcomes = futures::future::join_all(workers).await;

    let mut outcome = LoadOutcome {
        corrected: plan.is_open_loop().then(Latency::default),
        ..LoadOutcome::default()
    };
    let mut last_completion = start;
    for (worker_outcome, worker_last) in worker_outcomes {
        outcome.merge(worker_outcome);
        last_completion = last_completion.max(worker_last);
    }
    outcome.elapsed = last_completion - start;
    outcome
}

/// Sends requests until the plan's duration or request count runs out;
/// returns the worker's counts and the time its last request completed.
async fn run_worker(
    driver: &dyn LabDriver,
    plan: &LoadPlan,
    start: Instant,
    deadline: Instant,
    next_index: &AtomicU64,
) -> (LoadOutcome, Instant) {
    let mut outcome = LoadOutcome {
        corrected: plan.is_open_loop().then(Latency::default),
        ..LoadOutcome::default()
    };
    let mut last_completion = start;

    loop {
        let index = next_index.fetch_add(1, Ordering::Relaxed);
        if plan.requests.is_some_and(|max| index >= max) {
            break;
        }
        let due = if plan.is_open_loop() {
            let due = start + Duration::from_secs_f64(index as f64 / plan.qps);
            if due >= deadline {
                break;
            }
            tokio::time::sleep_until(due).await;
            due
        } else {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            now
        };

        let result = tokio::time::timeout(SEND_TIMEOUT, driver.send(plan.request.clone())).await;
        let completed = Instant::now();
        last_completion = completed;
        outcome.sent += 1;

        match result {
            Ok(Ok(exchange)) => {
                *outcome.statuses.entry(exchange.status).or_default() += 1;
                outcome.phases.record(&exchange);
                if let Some(corrected) = &mut outcome.corrected {
                    corrected.record(completed - due);
                }
            }
            Ok(Err(failure)) => outcome.record_failure(&failure),
            Err(_elapsed) => outcome.record_failure(&SendFailure::Timeout),
        }
    }

    (outcome, last_completion)
}

#[cfg(test)]
mod tests;
