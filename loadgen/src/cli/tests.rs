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
async fn remote_lab_without_credentials_is_bad_input() {
    // Neither MESHLAB_TOKEN nor MESHLAB_CA_CERT is set in the test environment.
    let dir = scratch_dir("remote_lab_without_credentials");
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

#[test]
fn duration_accepts_units_and_seconds() {
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_duration("2.5"), Ok(Duration::from_millis(2500)));
    assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    assert!(parse_duration("-1").unwrap_err().contains("negative"));
    assert!(parse_duration("soon")
        .unwrap_err()
        .contains("invalid duration"));
}

fn parse_load(args: &[&str]) -> LoadArgs {
    let cli = Cli::try_parse_from(["loadgen", "load"].iter().chain(args)).unwrap();
    match cli.command {
        Command::Load(args) => *args,
        other => panic!("parsed {other:?}"),
    }
}

#[test]
fn load_flags_follow_fortio() {
    let args = parse_load(&[
        "http://127.0.0.1:8080/",
        "-c",
        "16",
        "-t",
        "10s",
        "-n",
        "100",
        "-H",
        "X-A: 1",
        "--header",
        "X-B: 2",
        "--fail-if",
        "p99>2ms",
        "--fail-if",
        "qps<1000",
    ]);

    assert_eq!(args.connections, 16);
    assert_eq!(args.duration, Some(Duration::from_secs(10)));
    assert_eq!(args.requests, Some(100));
    assert_eq!(args.headers, vec!["X-A: 1", "X-B: 2"]);
    assert_eq!(args.outputs.fail_if.len(), 2);
    assert_eq!(args.outputs.fail_if[1].expression, "qps<1000");
}

#[test]
fn load_defaults() {
    let args = parse_load(&["http://127.0.0.1:8080/"]);

    assert_eq!(args.qps, 8.0);
    assert_eq!(args.connections, 4);
    assert_eq!(args.duration, None);
    assert_eq!(args.warmup, Duration::ZERO);
    assert_eq!(args.timeout, Duration::from_secs(3));
    assert_eq!(args.method, "GET");
    assert_eq!(args.threads, 1);
    assert!(args.from.is_none());
}

#[test]
fn load_rejects_mesh_flags_without_as() {
    for flag in [&["--raw"][..], &["--resume"], &["--apply", "x.yaml"]] {
        let argv = ["loadgen", "load", "http://x/"].iter().chain(flag);
        assert!(Cli::try_parse_from(argv).is_err(), "{flag:?} needs --as");
    }
    let bad = Cli::try_parse_from(["loadgen", "load", "http://x/", "--fail-if", "p99>"]);
    assert!(bad.unwrap_err().to_string().contains("invalid threshold"));
}
