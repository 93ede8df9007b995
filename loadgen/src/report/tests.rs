use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::runner::{run_scenario, ScenarioResult, Silent};
use crate::scenario;
use crate::test_util::{Reply, ScriptedLab};

use super::{json, table};

/// Runs a scenario with a passing step, a failing request step and a load step.
async fn sample_result() -> ScenarioResult {
    let lab = ScriptedLab::new(|index, request| {
        if request.path == "/load" {
            return Reply::status(200, Duration::from_millis(2));
        }
        let status = if index == 0 { 200 } else { 403 };
        Reply::status(status, Duration::from_millis(3))
    });
    let scenario = scenario::parse(
        "name: sample
description: A sample run.
steps:
  - name: sleep reads details
    request: { from: sleep, to: details, path: /details/0 }
    expect: { status: 200 }
  - request: { from: sleep, to: details, port: 9080, path: /details/0 }
    expect: { status: 200, body_contains: ok }
  - load: { from: sleep, to: details, path: /load, qps: 50, requests: 10 }
",
        Path::new("scenarios/sample.yaml"),
    )
    .unwrap();
    run_scenario(&lab, &scenario, &mut Silent).await
}

#[tokio::test(start_paused = true)]
async fn step_lines_show_verdict_and_failures() {
    let result = sample_result().await;
    let mut out = Vec::new();

    for step in &result.steps {
        table::write_step(&mut out, step).unwrap();
    }

    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("  1. sleep reads details"), "{text}");
    assert!(lines[0].contains("PASS  200  3.000 ms"), "{text}");
    assert!(
        lines[1].starts_with("  2. GET sleep → details:9080/details/0"),
        "{text}"
    );
    assert!(lines[1].contains("FAIL  403"), "{text}");
    assert_eq!(lines[2], "       status: expected 200, actual 403");
    assert_eq!(
        lines[3],
        "       body_contains: expected \"ok\", actual \"\""
    );
    assert!(lines[4].contains("PASS  10 requests"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn scenario_report_has_tables() {
    let result = sample_result().await;
    let mut out = Vec::new();

    table::write_scenario_report(&mut out, &result).unwrap();

    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("-- sample: 2 of 3 steps passed"), "{text}");
    assert!(text.contains("request steps (ms)"), "{text}");
    assert!(text.contains("p99.9"), "{text}");
    // 3 ms sits in a bucket 2 µs wide, and percentiles report its upper end.
    assert!(
        text.contains("  total                         2      3.001"),
        "{text}"
    );
    assert!(
        text.contains("open loop: 50 qps requested, 54.9 achieved; 10 requests in 0.182 s over 1 connection\n"),
        "{text}"
    );
    assert!(text.contains("status codes: 200: 10"), "{text}");
    assert!(text.contains("errors: none"), "{text}");
    assert!(text.contains("total, corrected"), "{text}");
    assert!(
        !text.contains("tls_handshake"),
        "empty phases are left out: {text}"
    );
}

#[tokio::test(start_paused = true)]
async fn summary_names_failed_steps() {
    let result = sample_result().await;
    let mut out = Vec::new();

    table::write_summary(&mut out, &[result]).unwrap();

    let text = String::from_utf8(out).unwrap();
    assert_eq!(
        text,
        "0 of 1 scenarios passed\n  scenarios/sample.yaml: step 2 (GET sleep → details:9080/details/0)\n"
    );
}

#[tokio::test(start_paused = true)]
async fn json_schema_fields() {
    let result = sample_result().await;
    let mut out = Vec::new();

    json::write(&mut out, &[result]).unwrap();

    let document: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(document["schema_version"], 1);
    assert_eq!(document["passed"], false);
    let scenario = &document["scenarios"][0];
    assert_eq!(scenario["name"], "sample");
    assert_eq!(scenario["file"], "scenarios/sample.yaml");
    assert_eq!(scenario["passed"], false);
    assert_eq!(scenario["latency"]["total"]["count"], 2);
    assert_eq!(scenario["latency"]["total"]["min_us"], 3000);
    assert_eq!(scenario["latency"]["total"]["p50_us"], 3001);

    let failed = &scenario["steps"][1];
    assert_eq!(failed["index"], 2);
    assert_eq!(failed["action"], "request");
    assert_eq!(failed["passed"], false);
    assert_eq!(failed["checks"][0]["expectation"], "status");
    assert_eq!(failed["checks"][0]["expected"], 200);
    assert_eq!(failed["checks"][0]["actual"], 403);
    assert_eq!(failed["checks"][0]["passed"], false);
    assert_eq!(failed["actual"]["status"], 403);
    assert_eq!(failed["actual"]["latency_us"], 3000);

    let load = &scenario["steps"][2]["load"];
    assert_eq!(load["mode"], "open");
    assert_eq!(load["requested_qps"], 50.0);
    assert_eq!(load["sent"], 10);
    assert_eq!(load["status_codes"]["200"], 10);
    assert_eq!(load["latency"]["total"]["count"], 10);
    assert_eq!(load["corrected_total"]["count"], 10);
    assert!(load["achieved_qps"].as_f64().unwrap() > 0.0);
}
