//! Every scenario in `scenarios/` against its own embedded lab, so that the course's
//! exercises are part of the test suite. Each lab takes a random /24 in 127.0.0.0/8, so
//! these run beside a `bookinfo up` or another test.

use std::path::{Path, PathBuf};

use loadgen::embedded::EmbeddedLab;
use loadgen::runner::{run_scenario, Progress, ScenarioResult, StepOutcome};
use loadgen::scenario::{load_file, Scenario};
use services::lab::LabOptions;

/// Collects failing steps so the assertion message lists them all.
#[derive(Default)]
struct Failures(Vec<String>);

impl Progress for Failures {
    fn step_finished(&mut self, _scenario: &Scenario, step: &StepOutcome) {
        if !step.passed {
            self.0.push(format!("{step:#?}"));
        }
    }
}

async fn run(file: &str) -> (ScenarioResult, Failures) {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(file);
    let scenario = load_file(&path).expect("scenario file is valid");
    let lab = EmbeddedLab::start_with(LabOptions {
        base_ip: None,
        ..LabOptions::default()
    })
    .await
    .expect("embedded lab starts");
    let mut failures = Failures::default();
    let result = run_scenario(&lab, &scenario, &mut failures).await;
    (result, failures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_hack() {
    let (result, failures) = run("01-plaintext-hack.yaml").await;
    assert!(result.passed(), "failed steps:\n{}", failures.0.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_enforce() {
    let (result, failures) = run("02-mtls-enforce.yaml").await;
    assert!(result.passed(), "failed steps:\n{}", failures.0.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authz() {
    let (result, failures) = run("03-authz.yaml").await;
    assert!(result.passed(), "failed steps:\n{}", failures.0.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_claims() {
    let (result, failures) = run("04-jwt-claims.yaml").await;
    assert!(result.passed(), "failed steps:\n{}", failures.0.join("\n"));
}
