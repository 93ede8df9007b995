//! Load engine: concurrent workers, each with its own connection, sending one
//! request over and over.
//!
//! With `qps > 0` the run is an open loop: request `i` is due at
//! `start + i / qps` whatever happened to earlier requests. Its corrected
//! latency runs from that due time to the response, so a stalled server shows
//! up in the percentiles instead of silently lowering the rate. This is the
//! coordinated-omission correction of wrk2 and oha `--latency-correction`. The
//! uncorrected per-phase histograms are kept beside it. With `qps = 0` each
//! worker sends its next request as soon as the previous one completes (a
//! closed loop, like wrk).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::driver::{BoxFuture, LabDriver, RequestSpec, SendFailure, Timings};
use crate::measure::{server_timing, Latency, PhaseLatencies};
use crate::scenario::LoadStep;

pub mod http_client;
pub mod mesh_client;

/// Time after which the engine gives up on one request of a scenario load
/// step and counts a timeout.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Lateness of tokio's timers (they fire on whole milliseconds), allowed to a
/// response before it counts as later than the timeout.
const TIMER_SLACK: Duration = Duration::from_millis(1);

/// Maximum distinct failure messages kept per load run; the rest are counted
/// under their kind only.
const MAX_FAILURE_MESSAGES: usize = 20;

/// Rate and bounds of a load run.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// Total requests per second across connections; 0 means closed loop.
    pub qps: f64,
    pub connections: u32,
    /// No request starts after this much time.
    pub duration: Duration,
    /// No more than this many requests are sent.
    pub requests: Option<u64>,
    /// Time after which one request counts as a `timeout` failure.
    pub timeout: Duration,
}

impl Schedule {
    pub fn is_open_loop(&self) -> bool {
        self.qps > 0.0
    }
}

/// Request and schedule of a scenario load step.
#[derive(Clone, Debug)]
pub struct LoadPlan {
    pub request: RequestSpec,
    pub schedule: Schedule,
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
            schedule: Schedule {
                qps: step.qps,
                connections: step.connections,
                duration: step.time_limit(),
                requests: step.requests,
                timeout: SEND_TIMEOUT,
            },
        }
    }
}

/// The part of one response that the engine records.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    pub status: u16,
    pub timings: Timings,
    /// Request authentication time from the server's `Server-Timing: authn`.
    pub authn: Option<Duration>,
    /// Authorization decision time from the server's `Server-Timing: authz`.
    pub authz: Option<Duration>,
}

/// The client of one worker. It sends the run's request, one at a time, and
/// keeps its connection between requests unless the run sets a new connection
/// per request.
pub trait Sender: Send {
    fn send(&mut self) -> BoxFuture<'_, Result<Sample, SendFailure>>;
}

/// Sends a scenario's request through a lab driver, which pools connections
/// itself.
struct DriverSender<'a> {
    driver: &'a dyn LabDriver,
    request: &'a RequestSpec,
}

impl Sender for DriverSender<'_> {
    fn send(&mut self) -> BoxFuture<'_, Result<Sample, SendFailure>> {
        Box::pin(async move {
            let exchange = self.driver.send(self.request.clone()).await?;
            Ok(Sample {
                status: exchange.status,
                timings: exchange.timings,
                authn: server_timing(&exchange.headers, "authn"),
                authz: exchange.authz,
            })
        })
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

    /// Returns the requests without a response.
    pub fn failed(&self) -> u64 {
        self.failures.values().sum()
    }

    /// Returns the requests without a 2xx or 3xx response, failures included.
    pub fn errors(&self) -> u64 {
        let bad_statuses: u64 = self
            .statuses
            .iter()
            .filter(|(status, _)| !(200..400).contains(*status))
            .map(|(_, count)| count)
            .sum();
        bad_statuses + self.failed()
    }

    fn record_failure(&mut self, failure: &SendFailure) {
        *self.failures.entry(failure.kind().to_owned()).or_default() += 1;
        let message = failure.to_string();
        let known = self.failure_messages.contains_key(&message);
        if known || self.failure_messages.len() < MAX_FAILURE_MESSAGES {
            *self.failure_messages.entry(message).or_default() += 1;
        }
    }
}

/// Runs a scenario's `plan` against the lab and returns what came back.
pub async fn run_load(driver: &dyn LabDriver, plan: &LoadPlan) -> LoadOutcome {
    let mut senders: Vec<Box<dyn Sender + '_>> = (0..plan.schedule.connections)
        .map(|_| {
            Box::new(DriverSender {
                driver,
                request: &plan.request,
            }) as Box<dyn Sender + '_>
        })
        .collect();
    run_senders(&mut senders, &plan.schedule, None, None).await
}

/// Runs `schedule` with one worker per sender and returns what came back.
/// `completed`, when given, counts finished requests as they finish, for a
/// progress display. Cancelling `stop` ends the run early, with the counts so
/// far; requests still in flight then are dropped uncounted.
pub async fn run_senders(
    senders: &mut [Box<dyn Sender + '_>],
    schedule: &Schedule,
    completed: Option<&AtomicU64>,
    stop: Option<&CancellationToken>,
) -> LoadOutcome {
    let start = Instant::now();
    let deadline = start + schedule.duration;
    let next_index = AtomicU64::new(0);
    // One set of histograms for the whole run, not one per worker, because a
    // set takes over 1 MB and a run with 1000 connections would pay that
    // 1000 times. The workers all run inside this one future, so the lock is
    // never contended.
    let outcome = Mutex::new(LoadOutcome {
        corrected: schedule.is_open_loop().then(Latency::default),
        ..LoadOutcome::default()
    });
    let never = CancellationToken::new();
    let stop = stop.unwrap_or(&never);
    let run = Run {
        schedule,
        start,
        deadline,
        next_index: &next_index,
        completed,
        outcome: &outcome,
        stop,
    };

    // Unlike `join_all`, which polls every worker whenever one wakes, this
    // polls only the workers that were woken, so a wake-up costs the same
    // with 1 connection or 1000.
    let workers: FuturesUnordered<_> = senders
        .iter_mut()
        .map(|sender| run_worker(sender.as_mut(), &run))
        .collect();
    let last_completion = workers
        .fold(
            start,
            |last, worker_last| async move { last.max(worker_last) },
        )
        .await;

    let mut outcome = outcome
        .into_inner()
        .expect("no worker panics holding the lock");
    // A run that the duration ended spans the whole duration, even when its
    // last request (at a low rate) was due well before the end. A run that
    // sent all its requests lasted until the last response.
    let all_sent = schedule.requests.is_some_and(|max| outcome.sent >= max);
    let end = if all_sent {
        last_completion
    } else if stop.is_cancelled() {
        Instant::now()
    } else {
        last_completion.max(deadline)
    };
    outcome.elapsed = end - start;
    outcome
}

/// State the workers of one run share.
struct Run<'a> {
    schedule: &'a Schedule,
    start: Instant,
    deadline: Instant,
    next_index: &'a AtomicU64,
    completed: Option<&'a AtomicU64>,
    outcome: &'a Mutex<LoadOutcome>,
    stop: &'a CancellationToken,
}

/// Sends requests until the schedule's duration or request count runs out,
/// recording into the run's outcome; returns the time its last request
/// completed.
async fn run_worker(sender: &mut (dyn Sender + '_), run: &Run<'_>) -> Instant {
    let schedule = run.schedule;
    let mut last_completion = run.start;
    // One timer per worker, moved later before each request: tokio extends a
    // registered timer in place, so a request's timeout costs no timer-wheel
    // update, where a fresh `tokio::time::timeout` per request costs two.
    let timeout = tokio::time::sleep(schedule.timeout);
    tokio::pin!(timeout);
    // The open loop's pacing timer, likewise reused rather than rebuilt.
    let pacing = tokio::time::sleep_until(run.start);
    tokio::pin!(pacing);
    // One wait for the stop signal per worker: a fresh `cancelled()` per
    // request would register with the token, under its lock, every time.
    let stopped = run.stop.cancelled();
    tokio::pin!(stopped);

    loop {
        if run.stop.is_cancelled() {
            break;
        }
        let index = run.next_index.fetch_add(1, Ordering::Relaxed);
        if schedule.requests.is_some_and(|max| index >= max) {
            break;
        }
        let due = if schedule.is_open_loop() {
            let due = run.start + Duration::from_secs_f64(index as f64 / schedule.qps);
            // A sender that cannot keep up stops at the deadline too: the run is bounded
            // in time, and the shortfall shows as the achieved rate.
            if due >= run.deadline || Instant::now() >= run.deadline {
                break;
            }
            pacing.as_mut().reset(due);
            tokio::select! {
                () = pacing.as_mut() => {}
                () = &mut stopped => break,
            }
            due
        } else {
            let now = Instant::now();
            if now >= run.deadline {
                break;
            }
            now
        };

        // Latency counts from the due time only when the previous request was still in
        // flight then, which is queueing the server caused. Otherwise it counts from the
        // actual send, so the timer's own lateness (tokio's 1 ms resolution) is not
        // charged to the server.
        let sent_at = Instant::now();
        let origin = if last_completion > due { due } else { sent_at };
        timeout.as_mut().reset(sent_at + schedule.timeout);
        let result = tokio::select! {
            biased;
            result = sender.send() => Some(result),
            () = &mut timeout => None,
            () = &mut stopped => break,
        };
        let completed = Instant::now();
        last_completion = completed;
        // An overloaded loop can see a response and its timeout in the same
        // poll. A response later than the timeout counts as a timeout.
        let result = result.filter(|_| completed - sent_at <= schedule.timeout + TIMER_SLACK);
        if let Some(counter) = run.completed {
            counter.fetch_add(1, Ordering::Relaxed);
        }

        let mut outcome = run
            .outcome
            .lock()
            .expect("no worker panics holding the lock");
        outcome.sent += 1;
        match result {
            Some(Ok(sample)) => {
                *outcome.statuses.entry(sample.status).or_default() += 1;
                outcome
                    .phases
                    .record_phases(&sample.timings, sample.authn, sample.authz);
                if let Some(corrected) = &mut outcome.corrected {
                    corrected.record(completed - origin);
                }
            }
            Some(Err(failure)) => outcome.record_failure(&failure),
            None => outcome.record_failure(&SendFailure::Timeout),
        }
    }

    last_completion
}

#[cfg(test)]
mod tests;
