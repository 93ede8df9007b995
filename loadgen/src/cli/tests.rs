use std::path::{Path, PathBuf};

use super::*;
use crate::test_util::ScriptedLab;

fn scratch_dir(test: &str) -> PathBuf {
    let process = format!("loadgen-cli-{}", std::process::id());
    let dir = std::env::temp_dir().join(process).join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const PASSING: &str = "name: passing
steps:
  - request: { from: sleep, to: details }
    expect: { status: 200 }
";

const FAILING: &str = "name: failing
steps:
  - request: { from: sleep, to: details }
    expect: { status: 403 }
";

/// Runs `loadgen ARGS...` against a lab that returns 200; returns the exit
/// code and stdout.
async fn run_args(args: &[&str]) -> (ExitCode, String) {
    let cli = Cli::try_parse_from(std::iter::once("loadgen").chain(args.iter().copied())).unwrap();
    let mut out = Vec::new();
    let start_lab = || async { Ok::<_, anyhow::Error>(ScriptedLab::answering(200)) };
    let code = run_with_output(cli, start_lab, &mut out).await;
    (code, String::from_utf8(out).unwrap())
}

#[tokio::test]
async fn passing_directory_exits_zero() {
    let dir = scratch_dir("passing_directory_exits_zero");
    write(&dir, "b.yaml", PASSING);
    write(&dir, "a.yaml", &PASSING.replace("passing", "first"));

    let (code, out) = run_args(&["scenario", dir.to_str().unwrap()]).await;

    assert_eq!(code, ExitCode::from(EXIT_PASSED));
    let first = out.find("== first").unwrap();
    let second = out.find("== passing").unwrap();
    assert!(first < second, "files run in name order: {out}");
    assert!(out.ends_with("2 of 2 scenarios passed\n"), "{out}");
}

#[tokio::test]
async fn failed_expectation_exits_one_and_writes_json() {
    let dir = scratch_dir("failed_expectation_exits_one_and_writes_json");
    let scenario = write(&dir, "failing.yaml", FAILING);
    let report = dir.join("report.json");

    let args = [
        "scenario",
        scenario.to_str().unwrap(),
        "--json",
        report.to_str().unwrap(),
    ];
    let (code, out) = run_args(&args).await;

    assert_eq!(code, ExitCode::from(EXIT_FAILED));
    let expected = format!("{}: step 1 (GET sleep → details/)", scenario.display());
    assert!(out.contains(&expected), "{out}");
    let document: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(document["schema_version"], 1);
    assert_eq!(
        document["scenarios"][0]["steps"][0]["checks"][0]["actual"],
        200
    );
}

#[tokio::test]
async fn invalid_scenario_exits_two() {
    let dir = scratch_dir("invalid_scenario_exits_two");
    write(&dir, "a.yaml", PASSING);
    write(
        &dir,
        "b.yaml",
        "name: x\nsteps:\n  - request: { from: a, to: b, bogus: 1 }\n",
    );

    let (code, out) = run_args(&["scenario", dir.to_str().unwrap()]).await;

    assert_eq!(code, ExitCode::from(EXIT_BAD_INPUT));
    assert!(
        out.is_empty(),
        "nothing runs when any file is invalid: {out}"
    );
}

#[tokio::test]
async fn missing_path_exits_two() {
    let (code, _) = run_args(&["scenario", "/nonexistent/scenario.yaml"]).await;

    assert_eq!(code, ExitCode::from(EXIT_BAD_INPUT));
}

#[tokio::test]
async fn empty_directory_exits_two() {
    let dir = scratch_dir("empty_directory_exits_two");

    let (code, _) = run_args(&["scenario", dir.to_str().unwrap()]).await;

    assert_eq!(code, ExitCode::from(EXIT_BAD_INPUT));
}

#[tokio::test]
async fn remote_lab_not_supported_yet() {
    let dir = scratch_dir("remote_lab_not_supported_yet");
    let scenario = write(&dir, "a.yaml", PASSING);

    let args = [
        "scenario",
        scenario.to_str().unwrap(),
        "--lab",
        "http://127.0.0.1:15000",
    ];
    let (code, out) = run_args(&args).await;

    assert_eq!(code, ExitCode::from(EXIT_BAD_INPUT));
    assert!(out.is_empty());
}

#[tokio::test]
async fn lab_start_failure_exits_one() {
    let dir = scratch_dir("lab_start_failure_exits_one");
    let scenario = write(&dir, "a.yaml", PASSING);
    let cli = Cli::try_parse_from(["loadgen", "scenario", scenario.to_str().unwrap()]).unwrap();
    let start_lab = || async { Err::<ScriptedLab, _>(anyhow::anyhow!("binding 127.0.0.10:9080")) };

    let code = run_with_output(cli, start_lab, &mut Vec::new()).await;

    assert_eq!(code, ExitCode::from(EXIT_FAILED));
}

#[test]
fn paths_required() {
    let error = Cli::try_parse_from(["loadgen", "scenario"]).unwrap_err();

    assert_eq!(
        error.kind(),
        clap::error::ErrorKind::MissingRequiredArgument
    );
}
