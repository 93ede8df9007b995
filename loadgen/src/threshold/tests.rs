use std::collections::BTreeMap;

use super::*;
use crate::measure::{LatencySummary, PercentilePoint};

fn parse(text: &str) -> Threshold {
    text.parse().unwrap()
}

fn parse_error(text: &str) -> String {
    text.parse::<Threshold>().unwrap_err().reason
}

/// A run with total p50 = 100 µs, p99 = 2500 µs, 950 qps and 3 errors.
fn run() -> LoadJson {
    let total = LatencySummary {
        count: 1000,
        min_us: 50,
        mean_us: 180.5,
        p50_us: 100,
        p75_us: 150,
        p90_us: 400,
        p99_us: 2500,
        p999_us: 4000,
        max_us: 9000,
    };
    let mut latency = BTreeMap::new();
    latency.insert("total".to_owned(), total);
    latency.insert("tls_handshake".to_owned(), LatencySummary::default());
    let mut percentiles = BTreeMap::new();
    percentiles.insert(
        "total".to_owned(),
        vec![PercentilePoint {
            percentile: 99.99,
            value_us: 8000,
        }],
    );
    let mut failures = BTreeMap::new();
    failures.insert("reset".to_owned(), 2);
    LoadJson {
        label: "run".to_owned(),
        achieved_qps: 950.0,
        errors: 3,
        failures,
        latency,
        percentiles,
        ..LoadJson::default()
    }
}

#[test]
fn parse_percentile_defaults_to_total() {
    let threshold = parse("p99>2ms");

    assert_eq!(
        threshold.metric,
        Metric::Latency {
            phase: "total".into(),
            statistic: Statistic::Percentile(99.0)
        }
    );
    assert_eq!(threshold.operator, Operator::Greater);
    assert_eq!(threshold.limit, 2000.0);
}

#[test]
fn parse_phase_and_dotted_percentile() {
    let threshold = parse("tls_handshake.p99.9 >= 600us");

    assert_eq!(
        threshold.metric,
        Metric::Latency {
            phase: "tls_handshake".into(),
            statistic: Statistic::Percentile(99.9)
        }
    );
    assert_eq!(threshold.operator, Operator::GreaterOrEqual);
    assert_eq!(threshold.limit, 600.0);
    assert_eq!(parse("p99.9<1s").limit, 1_000_000.0);
    assert_eq!(parse("authz.max<=500ns").limit, 0.5);
    assert_eq!(parse("corrected_total.mean>1.5ms").limit, 1500.0);
}

#[test]
fn parse_counters() {
    assert_eq!(parse("qps<1000").metric, Metric::Qps);
    assert_eq!(parse("qps<1000").operator, Operator::Less);
    assert_eq!(parse("errors>0").metric, Metric::Errors);
    assert_eq!(parse("failures>=5").limit, 5.0);
}

#[test]
fn parse_rejects_bad_expressions() {
    assert!(parse_error("p99").contains("expected METRIC OP VALUE"));
    assert!(parse_error("p99>2").contains("needs a unit"));
    assert!(parse_error("p99>2h").contains("unknown unit"));
    assert!(parse_error("p42>2ms").contains("not reported"));
    assert!(parse_error("latency>2ms").contains("unknown metric"));
    assert!(parse_error("qps<fast").contains("invalid number"));
    assert!(parse_error(">3").contains("missing metric"));
}

#[test]
fn check_latency_thresholds() {
    let run = run();

    assert!(parse("p99>2ms").check(&run).failed);
    assert_eq!(parse("p99>2ms").check(&run).actual, "total p99 = 2.500 ms");
    assert!(!parse("p99>3ms").check(&run).failed);
    assert!(!parse("p50>100us").check(&run).failed);
    assert!(parse("p50>=100us").check(&run).failed);
    assert!(parse("p99.99>7ms").check(&run).failed, "from the spectrum");
    assert!(parse("max>8ms").check(&run).failed);
    assert!(parse("mean>180us").check(&run).failed);
}

#[test]
fn check_unmeasured_phase_passes() {
    let verdict = parse("tls_handshake.p99>1us").check(&run());

    assert!(!verdict.failed);
    assert_eq!(verdict.actual, "not measured in this run");
}

#[test]
fn check_counters() {
    let run = run();

    assert!(parse("qps<1000").check(&run).failed);
    assert!(!parse("qps<900").check(&run).failed);
    assert!(parse("errors>0").check(&run).failed);
    assert!(!parse("failures>2").check(&run).failed);
}

#[test]
fn check_all_names_run_and_threshold() {
    let thresholds = vec![parse("p99>2ms"), parse("qps<10")];

    let failures = check_all(&thresholds, &[run()]);

    assert_eq!(failures.len(), 1);
    assert_eq!(
        failures[0].to_string(),
        "threshold \"p99>2ms\" failed on run: total p99 = 2.500 ms"
    );
}

#[test]
fn check_all_fails_phase_no_run_measured() {
    let thresholds = vec![parse("tls_handshake.p50>=600us")];

    let failures = check_all(&thresholds, &[run()]);

    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].actual, NOT_MEASURED);
    assert_eq!(failures[0].run, "every run");
}
