use std::path::Path;

use super::*;
use crate::scenario;
use crate::test_util::{Reply, ScriptedLab};

fn parse(text: &str) -> Scenario {
    scenario::parse(text, Path::new("scenarios/test.yaml")).unwrap()
}

/// Records the order of progress calls.
#[derive(Default)]
struct Recorder {
    events: Vec<String>,
}

impl Progress for Recorder {
    fn scenario_started(&mut self, scenario: &Scenario) {
        self.events.push(format!("start {}", scenario.name));
    }

    fn step_finished(&mut self, _scenario: &Scenario, step: &StepOutcome) {
        self.events
            .push(format!("step {} {}", step.index, step.passed));
    }

    fn scenario_finished(&mut self, result: &ScenarioResult) {
        self.events.push(format!("finish {}", result.passed()));
    }
}

#[tokio::test]
async fn resets_then_adds_workloads() {
    let lab = ScriptedLab::answering(200);
    let scenario = parse(
        "name: order
workloads: [{ name: sleep }, { name: outsider, sidecar: false }]
steps:
  - policy: |
      kind: AuthorizationPolicy
  - reset: true
  - request: { from: sleep, to: details }
    expect: { status: 200 }
",
    );
    let mut recorder = Recorder::default();

    let result = run_scenario(&lab, &scenario, &mut recorder).await;

    assert!(result.passed(), "{result:?}");
    assert_eq!(
        lab.calls(),
        [
            "reset",
            "add_workloads sleep,outsider",
            "apply scenarios/test.yaml step 1 inline policy",
            "reset",
            "add_workloads sleep,outsider",
        ]
    );
    assert_eq!(
        recorder.events,
        [
            "start order",
            "step 1 true",
            "step 2 true",
            "step 3 true",
            "finish true"
        ]
    );
}

#[tokio::test]
async fn failed_step_does_not_stop_run() {
    let lab = ScriptedLab::answering(403);
    let scenario = parse(
        "name: keeps going
steps:
  - request: { from: sleep, to: details }
    expect: { status: 200 }
  - request: { from: sleep, to: details }
    expect: { status: 403 }
",
    );

    let result = run_scenario(&lab, &scenario, &mut Silent).await;

    assert!(!result.passed());
    let failed: Vec<usize> = result.failed_steps().map(|step| step.index).collect();
    assert_eq!(failed, [1]);
    assert_eq!(result.steps[0].actual.as_ref().unwrap().status, Some(403));
    assert_eq!(result.steps[0].summary, "GET sleep → details/");
}

#[tokio::test]
async fn invalid_policy_fails_with_lab_error() {
    let lab = ScriptedLab::answering(200);
    let scenario = parse(
        "name: bad policy
steps:
  - policy: |
      action: INVALID
",
    );

    let result = run_scenario(&lab, &scenario, &mut Silent).await;

    let step = &result.steps[0];
    assert!(!step.passed);
    let error = step.error.as_deref().unwrap();
    assert!(error.contains("unknown value \"INVALID\""), "{error}");
    assert_eq!(step.summary, "apply inline policy");
}

#[tokio::test]
async fn expect_error_passes_on_matching_rejection() {
    let lab = ScriptedLab::answering(200);
    let scenario = parse(
        "name: expect error
steps:
  - policy: |
      action: INVALID
    expect_error: unknown value
  - policy: |
      action: INVALID
    expect_error: unknown field
  - policy: |
      action: ALLOW
    expect_error: unknown value
",
    );

    let result = run_scenario(&lab, &scenario, &mut Silent).await;

    let verdicts: Vec<bool> = result.steps.iter().map(|step| step.passed).collect();
    assert_eq!(verdicts, [true, false, false]);
    assert_eq!(
        result.steps[2].checks[0].actual,
        serde_json::json!("no error")
    );
}

#[tokio::test]
async fn repeat_checks_every_repetition() {
    let lab = ScriptedLab::new(|index, _| {
        let status = if index == 2 || index == 4 { 503 } else { 200 };
        Reply::status(status, Duration::ZERO)
    });
    let scenario = parse(
        "name: repeat
steps:
  - request: { from: sleep, to: details, repeat: 5 }
    expect: { status: 200 }
",
    );

    let result = run_scenario(&lab, &scenario, &mut Silent).await;

    let step = &result.steps[0];
    assert!(!step.passed);
    assert_eq!(step.repetitions, 5);
    assert_eq!(step.checks[0].failed_repetitions, 2);
    assert_eq!(step.checks[0].actual, serde_json::json!(503));
    assert_eq!(lab.sent_requests().len(), 5);
    assert_eq!(result.latencies.total.count(), 5);
}

#[tokio::test]
async fn request_without_expect_passes() {
    let lab = ScriptedLab::new(|_, _| Reply::failure(SendFailure::Refused));
    let scenario = parse("name: x\nsteps:\n  - request: { from: sleep, to: details }\n");

    let result = run_scenario(&lab, &scenario, &mut Silent).await;

    assert!(result.passed());
    assert_eq!(
        result.steps[0].actual.as_ref().unwrap().failure,
        Some("refused")
    );
}

#[tokio::test]
async fn jwt_claims_need_a_minting_lab() {
    let lab = ScriptedLab::answering(200);
    let scenario = parse(
        "name: jwt
steps:
  - request: { from: sleep, to: details, jwt: { sub: alice } }
    expect: { status: 200 }
",
    );

    let result = run_scenario(&lab, &scenario, &mut Silent).await;

    let step = &result.steps[0];
    assert!(!step.passed);
    assert_eq!(
        step.error.as_deref(),
        Some("minting the jwt token failed: this lab cannot mint tokens")
    );
    assert!(lab.sent_requests().is_empty());
}

#[tokio::test]
async fn tcp_requests_go_to_send_tcp() {
    let lab = ScriptedLab::answering(200);
    let scenario = parse(
        "name: t\nsteps:\n  - request: { from: a, to: b, port: 9000, protocol: tcp }\n    expect: { status: 200 }\n",
    );

    let result = run_scenario(&lab, &scenario, &mut Silent).await;

    assert!(
        lab.sent_requests().is_empty(),
        "HTTP send is not used for TCP"
    );
    assert!(!result.passed(), "the scripted lab has no TCP support");
}

#[tokio::test]
async fn token_placement() {
    let lab = ScriptedLab::answering(200);
    let scenario = parse(
        "name: tokens
steps:
  - request: { from: a, to: b, token_raw: t1 }
  - request:
      from: a
      to: b
      token_raw: t2
      token_location: { header: x-jwt-assertion, prefix: 'JWT ' }
  - request:
      from: a
      to: b
      path: /headers?x=1
      token_raw: 'a b+c'
      token_location: { query: access_token }
  - request: { from: a, to: b, client: raw, new_connection: true, method: POST, body: hi }
",
    );

    run_scenario(&lab, &scenario, &mut Silent).await;

    let sent = lab.sent_requests();
    assert_eq!(
        sent[0].headers,
        [("Authorization".to_owned(), "Bearer t1".to_owned())]
    );
    assert_eq!(
        sent[1].headers,
        [("x-jwt-assertion".to_owned(), "JWT t2".to_owned())]
    );
    assert_eq!(sent[2].path, "/headers?x=1&access_token=a%20b%2Bc");
    assert!(sent[2].headers.is_empty());
    assert!(sent[3].raw_client);
    assert!(sent[3].new_connection);
    assert_eq!(sent[3].method, "POST");
    assert_eq!(sent[3].body, "hi");
    assert!(!sent[0].raw_client);
}

#[tokio::test]
async fn load_step_reports_counts() {
    let lab = ScriptedLab::answering(200);
    let scenario = parse(
        "name: load
steps:
  - load: { from: a, to: b, requests: 20, connections: 2 }
",
    );

    let result = run_scenario(&lab, &scenario, &mut Silent).await;

    let step = &result.steps[0];
    assert!(step.passed);
    let load = step.load.as_ref().unwrap();
    assert_eq!(load.outcome.sent, 20);
    assert_eq!(load.outcome.statuses[&200], 20);
    assert_eq!(step.repetitions, 20);
    assert_eq!(
        result.latencies.total.count(),
        0,
        "load steps keep their own histograms"
    );
}
