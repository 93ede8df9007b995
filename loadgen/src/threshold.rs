//! `--fail-if` thresholds: conditions that make a load run fail.
//!
//! Grammar: `METRIC OP VALUE`, where METRIC is
//! - `[PHASE.]STAT`: STAT is `pN` (a percentile such as `p50`, `p99.9`),
//!   `min`, `max` or `mean`; PHASE is one of the report's phases
//!   (`connect`, `tls_handshake`, `first_byte`, `total`, `authn`, `authz`) or
//!   `corrected_total`, and defaults to `total`. VALUE is a duration with a
//!   unit: `ns`, `us` (or `µs`), `ms` or `s`.
//! - `qps`: achieved requests per second.
//! - `errors`: requests without a 2xx or 3xx response, failures included.
//! - `failures`: requests without any response (connection, TLS, timeout).
//!
//! OP is `>`, `>=`, `<` or `<=`. The run fails when the condition holds, so
//! `p99>2ms` fails a run whose p99 is above 2 ms.

use std::fmt;
use std::str::FromStr;

use crate::measure::{PHASES, SPECTRUM_PERCENTILES};
use crate::report::json::{LoadJson, CORRECTED_TOTAL};

/// A parsed `--fail-if` expression.
#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    pub expression: String,
    pub metric: Metric,
    pub operator: Operator,
    /// Microseconds for latency metrics, otherwise the plain number.
    pub limit: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Metric {
    Latency { phase: String, statistic: Statistic },
    Qps,
    Errors,
    Failures,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Statistic {
    /// A percentile from 0 to 100.
    Percentile(f64),
    Min,
    Max,
    Mean,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
}

impl Operator {
    fn holds(self, actual: f64, limit: f64) -> bool {
        match self {
            Operator::Greater => actual > limit,
            Operator::GreaterOrEqual => actual >= limit,
            Operator::Less => actual < limit,
            Operator::LessOrEqual => actual <= limit,
        }
    }
}

/// An invalid `--fail-if` expression.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid threshold {expression:?}: {reason}")]
pub struct ThresholdError {
    pub expression: String,
    pub reason: String,
}

impl FromStr for Threshold {
    type Err = ThresholdError;

    fn from_str(expression: &str) -> Result<Threshold, ThresholdError> {
        let error = |reason: String| ThresholdError {
            expression: expression.to_owned(),
            reason,
        };
        let text: String = expression.chars().filter(|c| !c.is_whitespace()).collect();
        let (position, operator, operator_length) = find_operator(&text).ok_or_else(|| {
            error("expected METRIC OP VALUE with OP one of >, >=, <, <= (such as p99>2ms)".into())
        })?;
        let metric_text = &text[..position];
        let value_text = &text[position + operator_length..];

        let metric = parse_metric(metric_text).map_err(error)?;
        let limit = match metric {
            Metric::Latency { .. } => parse_duration_us(value_text).map_err(error)?,
            _ => parse_number(value_text).map_err(error)?,
        };
        Ok(Threshold {
            expression: expression.to_owned(),
            metric,
            operator,
            limit,
        })
    }
}

fn find_operator(text: &str) -> Option<(usize, Operator, usize)> {
    let position = text.find(['<', '>'])?;
    let rest = &text[position..];
    let found = if rest.starts_with(">=") {
        (Operator::GreaterOrEqual, 2)
    } else if rest.starts_with("<=") {
        (Operator::LessOrEqual, 2)
    } else if rest.starts_with('>') {
        (Operator::Greater, 1)
    } else {
        (Operator::Less, 1)
    };
    Some((position, found.0, found.1))
}

fn parse_metric(text: &str) -> Result<Metric, String> {
    match text {
        "qps" => return Ok(Metric::Qps),
        "errors" => return Ok(Metric::Errors),
        "failures" => return Ok(Metric::Failures),
        "" => return Err("missing metric before the operator".into()),
        _ => {}
    }
    // Percentiles contain a dot (p99.9), so the phase is whatever precedes a
    // known phase name's dot.
    let (phase, statistic_text) = match text.split_once('.') {
        Some((phase, rest)) if is_phase(phase) => (phase, rest),
        _ => ("total", text),
    };
    let statistic = match statistic_text {
        "min" => Statistic::Min,
        "max" => Statistic::Max,
        "mean" => Statistic::Mean,
        other => {
            let number = other
                .strip_prefix('p')
                .ok_or_else(|| unknown_metric(text))?;
            let percentile: f64 = number.parse().map_err(|_| unknown_metric(text))?;
            if !SPECTRUM_PERCENTILES.contains(&percentile) {
                return Err(format!(
                    "percentile p{number} is not reported; use one of {}",
                    percentile_list()
                ));
            }
            Statistic::Percentile(percentile)
        }
    };
    Ok(Metric::Latency {
        phase: phase.to_owned(),
        statistic,
    })
}

fn is_phase(name: &str) -> bool {
    PHASES.contains(&name) || name == CORRECTED_TOTAL
}

fn unknown_metric(text: &str) -> String {
    format!(
        "unknown metric {text:?}; expected qps, errors, failures or [PHASE.]STAT with STAT \
         pN, min, max or mean and PHASE one of {}, {CORRECTED_TOTAL}",
        PHASES.join(", ")
    )
}

fn percentile_list() -> String {
    let names: Vec<String> = SPECTRUM_PERCENTILES
        .iter()
        .map(|percentile| format!("p{percentile}"))
        .collect();
    names.join(", ")
}

fn parse_number(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(value),
        _ => Err(format!("invalid number {text:?}")),
    }
}

/// Parses a duration such as `2ms`, `150us` or `1.5s` into microseconds.
fn parse_duration_us(text: &str) -> Result<f64, String> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("duration {text:?} needs a unit: ns, us, ms or s"))?;
    let (number, unit) = text.split_at(split);
    let value = parse_number(number)?;
    let scale = match unit {
        "ns" => 0.001,
        "us" | "µs" => 1.0,
        "ms" => 1_000.0,
        "s" => 1_000_000.0,
        _ => return Err(format!("unknown unit {unit:?}; use ns, us, ms or s")),
    };
    Ok(value * scale)
}

/// What a verdict reports for a phase the run did not measure.
pub const NOT_MEASURED: &str = "not measured in this run";

/// The outcome of checking one threshold against one run.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// The condition held, so the run failed.
    pub failed: bool,
    /// The run measured the threshold's metric.
    pub measured: bool,
    /// The measured value, such as `total p99 = 2.310 ms`.
    pub actual: String,
}

impl Threshold {
    /// Checks the threshold against a run. A latency threshold on a phase
    /// the run did not measure (a TLS phase on plaintext) does not fail here;
    /// [`check_all`] fails it when no run measured the phase.
    pub fn check(&self, run: &LoadJson) -> Verdict {
        let measured = match &self.metric {
            Metric::Qps => Some((run.achieved_qps, format!("qps = {:.1}", run.achieved_qps))),
            Metric::Errors => Some((run.errors as f64, format!("errors = {}", run.errors))),
            Metric::Failures => {
                let failed = run.failed();
                Some((failed as f64, format!("failures = {failed}")))
            }
            Metric::Latency { phase, statistic } => {
                latency_of(run, phase, *statistic).map(|micros| {
                    let text = format!("{phase} {statistic} = {}", format_micros(micros));
                    (micros, text)
                })
            }
        };
        match measured {
            Some((actual, text)) => Verdict {
                failed: self.operator.holds(actual, self.limit),
                measured: true,
                actual: text,
            },
            None => Verdict {
                failed: false,
                measured: false,
                actual: NOT_MEASURED.to_owned(),
            },
        }
    }
}

fn latency_of(run: &LoadJson, phase: &str, statistic: Statistic) -> Option<f64> {
    match statistic {
        Statistic::Mean => run.phase(phase).map(|summary| summary.mean_us),
        Statistic::Min => run.percentile_us(phase, 0.0).map(|v| v as f64),
        Statistic::Max => run.percentile_us(phase, 100.0).map(|v| v as f64),
        Statistic::Percentile(p) => run.percentile_us(phase, p).map(|v| v as f64),
    }
}

fn format_micros(micros: f64) -> String {
    if micros >= 1000.0 {
        format!("{:.3} ms", micros / 1000.0)
    } else {
        format!("{micros:.0} µs")
    }
}

impl fmt::Display for Statistic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Statistic::Percentile(p) => write!(f, "p{p}"),
            Statistic::Min => f.write_str("min"),
            Statistic::Max => f.write_str("max"),
            Statistic::Mean => f.write_str("mean"),
        }
    }
}

/// A threshold that failed on a named run.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    pub expression: String,
    pub run: String,
    pub actual: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "threshold {:?} failed on {}: {}",
            self.expression, self.run, self.actual
        )
    }
}

/// Checks every threshold against every run and returns the failures.
pub fn check_all(thresholds: &[Threshold], runs: &[LoadJson]) -> Vec<Failure> {
    let mut failures = Vec::new();
    for threshold in thresholds {
        let mut measured_anywhere = false;
        for run in runs {
            let verdict = threshold.check(run);
            measured_anywhere |= verdict.actual != NOT_MEASURED;
            if verdict.failed {
                failures.push(Failure {
                    expression: threshold.expression.clone(),
                    run: run.label.clone(),
                    actual: verdict.actual,
                });
            }
        }
        // A gate on a phase that no run measured (a TLS phase on plaintext only) would
        // otherwise pass without checking anything.
        if !measured_anywhere && !runs.is_empty() {
            failures.push(Failure {
                expression: threshold.expression.clone(),
                run: "every run".to_owned(),
                actual: NOT_MEASURED.to_owned(),
            });
        }
    }
    failures
}

#[cfg(test)]
mod tests;
