//! Latency histograms per request phase.
//!
//! Values are recorded in microseconds with 3 significant digits (HdrHistogram),
//! so any reported percentile is within 0.1% of the recorded value.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::driver::{Exchange, Timings};

/// Highest trackable value: one hour in microseconds. Longer values are clamped.
const MAX_TRACKABLE_US: u64 = 3_600_000_000;

/// Significant decimal digits kept by every histogram.
const SIGNIFICANT_DIGITS: u8 = 3;

/// A latency histogram in microseconds.
#[derive(Clone, Debug)]
pub struct Latency {
    histogram: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        let histogram = Histogram::new_with_bounds(1, MAX_TRACKABLE_US, SIGNIFICANT_DIGITS)
            .expect("histogram bounds are constant and valid");
        Latency { histogram }
    }
}

impl Latency {
    /// Records one duration, clamped to the trackable range.
    pub fn record(&mut self, value: Duration) {
        let micros = u64::try_from(value.as_micros()).unwrap_or(u64::MAX);
        self.histogram.saturating_record(micros.max(1));
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Latency) {
        self.histogram
            .add(&other.histogram)
            .expect("histograms share the same bounds");
    }

    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// Returns the value at `quantile` (0.0 to 1.0) in microseconds.
    pub fn quantile_us(&self, quantile: f64) -> u64 {
        self.histogram.value_at_quantile(quantile)
    }

    /// Returns the value at each of [`SPECTRUM_PERCENTILES`], for percentile charts.
    pub fn spectrum(&self) -> Vec<PercentilePoint> {
        if self.histogram.is_empty() {
            return Vec::new();
        }
        SPECTRUM_PERCENTILES
            .iter()
            .map(|&percentile| PercentilePoint {
                percentile,
                value_us: self.histogram.value_at_quantile(percentile / 100.0),
            })
            .collect()
    }

    /// Returns the percentiles the reports show.
    pub fn summary(&self) -> LatencySummary {
        let histogram = &self.histogram;
        if histogram.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: histogram.len(),
            min_us: histogram.min(),
            mean_us: histogram.mean(),
            p50_us: histogram.value_at_quantile(0.50),
            p75_us: histogram.value_at_quantile(0.75),
            p90_us: histogram.value_at_quantile(0.90),
            p99_us: histogram.value_at_quantile(0.99),
            p999_us: histogram.value_at_quantile(0.999),
            max_us: histogram.max(),
        }
    }
}

/// Percentiles of one histogram, in microseconds; all zero when it is empty.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub min_us: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    #[serde(default)]
    pub p75_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

/// Percentiles kept in reports for charts: enough points to draw the shape of
/// the distribution out to p99.99 on a log scale.
pub const SPECTRUM_PERCENTILES: [f64; 16] = [
    0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 97.5, 99.0, 99.5, 99.75, 99.9, 99.95, 99.99, 99.999,
    100.0,
];

/// The latency at one percentile.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PercentilePoint {
    pub percentile: f64,
    pub value_us: u64,
}

/// Request phases, in report order.
pub const PHASES: [&str; 6] = [
    "connect",
    "tls_handshake",
    "first_byte",
    "total",
    "authn",
    "authz",
];

/// One histogram per request phase.
#[derive(Clone, Debug, Default)]
pub struct PhaseLatencies {
    pub connect: Latency,
    pub tls_handshake: Latency,
    pub first_byte: Latency,
    pub total: Latency,
    /// Request authentication (JWT) time the server's sidecar reported.
    pub authn: Latency,
    /// Authorization decision time the server's sidecar reported.
    pub authz: Latency,
}

impl PhaseLatencies {
    /// Records the phases of one exchange; connect and handshake only count
    /// when the request opened a connection.
    pub fn record(&mut self, exchange: &Exchange) {
        let authn = server_timing(&exchange.headers, "authn");
        self.record_phases(&exchange.timings, authn, exchange.authz);
    }

    /// Records one request's phases; connect and handshake only count when
    /// the request opened a connection.
    pub fn record_phases(
        &mut self,
        timings: &Timings,
        authn: Option<Duration>,
        authz: Option<Duration>,
    ) {
        if let Some(connect) = timings.connect {
            self.connect.record(connect);
        }
        if let Some(handshake) = timings.tls_handshake {
            self.tls_handshake.record(handshake);
        }
        self.first_byte.record(timings.first_byte);
        self.total.record(timings.total);
        if let Some(authn) = authn {
            self.authn.record(authn);
        }
        if let Some(authz) = authz {
            self.authz.record(authz);
        }
    }

    /// Returns each phase name with its histogram, in [`PHASES`] order.
    pub fn phases(&self) -> [(&'static str, &Latency); 6] {
        [
            (PHASES[0], &self.connect),
            (PHASES[1], &self.tls_handshake),
            (PHASES[2], &self.first_byte),
            (PHASES[3], &self.total),
            (PHASES[4], &self.authn),
            (PHASES[5], &self.authz),
        ]
    }

    pub fn is_empty(&self) -> bool {
        self.phases()
            .iter()
            .all(|(_, latency)| latency.count() == 0)
    }
}

/// Reads `<metric>;dur=<milliseconds>` from the `Server-Timing` headers
/// (W3C Server Timing), as the mesh's inbound sidecar reports `authn` and `authz`.
pub fn server_timing(headers: &http::HeaderMap, metric: &str) -> Option<Duration> {
    headers
        .get_all("server-timing")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|value| server_timing_in(value, metric))
}

/// Reads one metric's duration from one `Server-Timing` header value.
pub fn server_timing_in(value: &str, metric: &str) -> Option<Duration> {
    for entry in value.split(',') {
        let mut parameters = entry.split(';').map(str::trim);
        if parameters.next() != Some(metric) {
            continue;
        }
        for parameter in parameters {
            if let Some(millis) = parameter.strip_prefix("dur=") {
                let millis: f64 = millis.trim_matches('"').parse().ok()?;
                if millis.is_finite() && millis >= 0.0 {
                    return Some(Duration::from_secs_f64(millis / 1000.0));
                }
                return None;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_uniform_values() {
        let mut latency = Latency::default();
        for millis in 1..=1000 {
            latency.record(Duration::from_millis(millis));
        }

        let summary = latency.summary();

        assert_eq!(summary.count, 1000);
        assert_eq!(summary.min_us, 1000);
        assert!(summary.p50_us.abs_diff(500_000) <= 500, "{summary:?}");
        assert!(summary.p99_us.abs_diff(990_000) <= 1000, "{summary:?}");
        assert!(summary.max_us.abs_diff(1_000_000) <= 1000, "{summary:?}");
    }

    #[test]
    fn server_timing_reads_each_metric() {
        let value = "authn;dur=0.012, authz;dur=0.5;desc=\"rbac\"";

        assert_eq!(
            server_timing_in(value, "authz"),
            Some(Duration::from_micros(500))
        );
        assert_eq!(
            server_timing_in(value, "authn"),
            Some(Duration::from_micros(12))
        );
        assert_eq!(server_timing_in(value, "db"), None);
        assert_eq!(server_timing_in("authz;dur=x", "authz"), None);
    }

    #[test]
    fn spectrum_ends_at_max() {
        let mut latency = Latency::default();
        for micros in 1..=100 {
            latency.record(Duration::from_micros(micros));
        }

        let spectrum = latency.spectrum();

        assert_eq!(spectrum.len(), SPECTRUM_PERCENTILES.len());
        assert_eq!(spectrum.last().unwrap().value_us, 100);
        assert_eq!(spectrum[3].value_us, 50);
        assert!(Latency::default().spectrum().is_empty());
    }

    #[test]
    fn empty_summary_is_zero() {
        assert_eq!(Latency::default().summary(), LatencySummary::default());
    }

    #[test]
    fn merge_adds_counts() {
        let mut first = Latency::default();
        let mut second = Latency::default();
        first.record(Duration::from_millis(1));
        second.record(Duration::from_millis(2));
        second.record(Duration::from_secs(7200));

        first.merge(&second);

        assert_eq!(first.count(), 3);
        assert!(first.summary().max_us >= MAX_TRACKABLE_US - MAX_TRACKABLE_US / 1000);
    }
}
