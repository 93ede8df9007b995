use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::runner::{run_scenario, ScenarioResult, Silent};
use crate::scenario;
use crate::test_util::{Reply, ScriptedLab};

use super::json::LoadJson;
use super::{compare, csv, html, json, table};

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
        text.contains("  total                         2     3.001"),
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

/// Returns the load runs of the sample run, read back from its JSON report.
async fn sample_runs() -> Vec<LoadJson> {
    let result = sample_result().await;
    let mut out = Vec::new();
    json::write(&mut out, &[result]).unwrap();
    json::read_runs(std::str::from_utf8(&out).unwrap()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn json_load_steps_read_back() {
    let runs = sample_runs().await;

    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(
        run.label,
        "load GET sleep → details/load at 50 qps, 1 connection, 10 requests or 10m"
    );
    assert_eq!(run.sent, 10);
    assert_eq!(run.errors, 0);
    assert_eq!(run.phase("total").unwrap().count, 10);
    assert!(
        run.phase("tls_handshake").is_none(),
        "empty phases read as absent"
    );
    assert_eq!(run.phase("corrected_total").unwrap().count, 10);
    let spectrum = &run.percentiles["total"];
    assert_eq!(spectrum.len(), crate::measure::SPECTRUM_PERCENTILES.len());
    assert_eq!(
        run.percentile_us("total", 99.99),
        Some(spectrum[13].value_us)
    );
}

#[test]
fn read_runs_rejects_other_versions() {
    let error = json::read_runs(r#"{"schema_version": 2, "runs": []}"#).unwrap_err();

    assert!(
        error
            .to_string()
            .contains("unsupported schema_version Some(2)"),
        "{error}"
    );
    assert!(json::read_runs("not json").is_err());
}

#[tokio::test(start_paused = true)]
async fn csv_has_row_per_phase() {
    let mut runs = sample_runs().await;
    runs[0].label = "a, \"quoted\" run".to_owned();
    let mut out = Vec::new();

    csv::write(&mut out, &runs).unwrap();

    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], csv::HEADER);
    assert_eq!(
        lines.len(),
        4,
        "first_byte, total and corrected_total: {text}"
    );
    assert!(
        lines[1].starts_with("\"a, \"\"quoted\"\" run\",first_byte,open,1,50,"),
        "{text}"
    );
    assert!(
        lines.iter().any(|line| line.contains(",corrected_total,")),
        "{text}"
    );
    let columns = csv::HEADER.split(',').count();
    assert_eq!(
        lines[2].split(',').count(),
        columns + 1,
        "label holds one comma"
    );
}

#[tokio::test(start_paused = true)]
async fn html_is_self_contained() {
    let mut runs = sample_runs().await;
    let mut second = runs[0].clone();
    second.label = "mTLS <kept>".to_owned();
    runs[0].label = "plaintext".to_owned();
    runs.push(second);

    let page = html::render("run & report", &runs);

    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(!page.contains("http://"), "no external references");
    assert!(!page.contains("https://"), "no external references");
    assert!(!page.contains("<script"));
    assert!(page.contains("<title>run &amp; report</title>"));
    assert!(page.contains("mTLS &lt;kept&gt;"));
    assert!(!page.contains("<kept>"));
    assert_eq!(
        page.matches("<svg").count(),
        3,
        "overhead chart and one per run"
    );
    assert!(page.contains("Overhead against plaintext"));
    assert!(page.contains("<polyline"));
}

#[tokio::test(start_paused = true)]
async fn compare_prints_changes() {
    let before = sample_runs().await;
    let mut after = before.clone();
    after[0].achieved_qps = before[0].achieved_qps * 2.0;
    let mut out = Vec::new();

    compare::write(&mut out, "a.json", &before, "b.json", &after).unwrap();

    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("A: a.json\nB: b.json\n"), "{text}");
    let qps_line = text
        .lines()
        .find(|line| line.trim_start().starts_with("qps"))
        .unwrap();
    assert!(qps_line.ends_with("+100.0%"), "{qps_line}");
    assert!(text.contains("total p99 (µs)"), "{text}");
    assert_eq!(compare::change(0.0, 0.0), "0.0%");
    assert_eq!(compare::change(0.0, 3.0), "new");
    assert_eq!(compare::change(200.0, 150.0), "-25.0%");
}

#[tokio::test(start_paused = true)]
async fn compare_shows_one_sided_phase() {
    let before = sample_runs().await;
    let mut after = before.clone();
    let total = after[0].latency["total"];
    after[0].latency.insert("tls_handshake".to_owned(), total);
    let mut out = Vec::new();

    compare::write(&mut out, "a.json", &before, "b.json", &after).unwrap();

    let text = String::from_utf8(out).unwrap();
    let line = text
        .lines()
        .find(|line| line.trim_start().starts_with("tls_handshake"))
        .unwrap_or_else(|| panic!("no tls_handshake line in\n{text}"));
    let columns: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(columns, ["tls_handshake", "-", "measured"], "{line}");
}

#[test]
fn compare_matches_by_position_without_labels() {
    let first = LoadJson {
        label: "a".into(),
        ..LoadJson::default()
    };
    let second = LoadJson {
        label: "b".into(),
        ..LoadJson::default()
    };

    let pairs = compare::match_runs(std::slice::from_ref(&first), std::slice::from_ref(&second));

    assert_eq!(pairs.len(), 1);
    assert_eq!(pairs[0].1.label, "b");
}

#[tokio::test(start_paused = true)]
async fn comparison_table_against_plaintext() {
    let mut runs = sample_runs().await;
    let mut mtls = runs[0].clone();
    mtls.label = "mTLS".to_owned();
    mtls.achieved_qps = runs[0].achieved_qps / 2.0;
    if let Some(total) = mtls.latency.get_mut("total") {
        total.p50_us += 500;
    }
    runs[0].label = "plaintext".to_owned();
    runs.insert(0, mtls);
    let mut out = Vec::new();

    table::write_comparison(&mut out, &runs).unwrap();

    let text = String::from_utf8(out).unwrap();
    assert!(
        text.starts_with("load steps against \"plaintext\""),
        "{text}"
    );
    let mtls_line = text.lines().find(|line| line.contains("mTLS")).unwrap();
    assert!(mtls_line.contains("+0.500"), "{mtls_line}");
    assert!(mtls_line.ends_with("50%"), "{mtls_line}");
}
