use std::path::{Path, PathBuf};

use super::*;

/// Creates an empty scratch directory for one test of this process.
fn scratch_dir(test: &str) -> PathBuf {
    let process = format!("loadgen-scenario-{}", std::process::id());
    let dir = std::env::temp_dir().join(process).join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    path
}

fn parse_str(text: &str) -> Result<Scenario, ScenarioError> {
    parse(text, Path::new("scenarios/test.yaml"))
}

fn error_text(text: &str) -> String {
    parse_str(text).unwrap_err().to_string()
}

#[test]
fn workload_defaults() {
    let scenario = parse_str(
        "name: defaults
workloads:
  - name: sleep
  - name: httpbin
    namespace: foo
  - name: outsider
    sidecar: false
  - name: ratings-v2
    app: ratings
    serviceAccount: bookinfo-ratings
    labels: { app: ratings, version: v2 }
    ports: { 9080: 9081 }
steps: []
",
    )
    .unwrap();

    let [sleep, httpbin, outsider, ratings] = scenario.workloads.as_slice() else {
        panic!("expected 4 workloads, got {:?}", scenario.workloads);
    };
    assert_eq!(sleep.namespace, "default");
    assert_eq!(sleep.service_account, "sleep");
    assert_eq!(sleep.app, "sleep");
    assert_eq!(sleep.labels["app"], "sleep");
    assert_eq!(sleep.labels["version"], "v1");
    assert!(sleep.sidecar);
    assert_eq!(sleep.ports, vec![(9080, 9080)]);

    assert_eq!(httpbin.namespace, "foo");
    assert_eq!(httpbin.app, "httpbin");
    assert_eq!(httpbin.ports, vec![(8000, 80)]);

    assert!(!outsider.sidecar);
    assert_eq!(outsider.app, "sleep");

    assert_eq!(ratings.app, "ratings");
    assert_eq!(ratings.service_account, "bookinfo-ratings");
    assert_eq!(ratings.labels["version"], "v2");
    assert_eq!(ratings.ports, vec![(9080, 9081)]);
}

#[test]
fn request_defaults() {
    let scenario = parse_str(
        "name: request
steps:
  - request: { from: sleep, to: details }
",
    )
    .unwrap();

    let Action::Request(step) = &scenario.steps[0].action else {
        panic!("expected a request step");
    };
    assert_eq!(step.request.method, "GET");
    assert_eq!(step.request.path, "/");
    assert_eq!(step.request.repeat, 1);
    assert_eq!(step.request.protocol, Protocol::Http);
    assert_eq!(step.request.port, None);
    assert!(!step.request.new_connection);
    assert_eq!(step.expect, Expect::default());
}

#[test]
fn design_example_parses() {
    let dir = scratch_dir("design_example_parses");
    write(
        &dir,
        "policies/mtls-strict.yaml",
        "kind: PeerAuthentication\n",
    );
    let path = write(
        &dir,
        "mtls-enforce.yaml",
        r#"name: mtls-enforce
description: Plaintext calls fail once mutual TLS is required.
workloads:
  - name: sleep
  - name: httpbin
    namespace: foo
    app: httpbin
  - name: outsider
    sidecar: false
steps:
  - apply: policies/mtls-strict.yaml
  - request: { from: outsider, to: details, path: /details/0 }
    expect: { connection: failed }
  - request: { from: sleep, to: httpbin.foo, port: 8000, path: /headers }
    expect: { status: 200, mtls: true, peer: cluster.local/ns/default/sa/sleep }
  - request:
      from: outsider
      to: productpage
      path: /productpage
      jwt: { sub: noah@example.com, claims: { foo: bar } }
    expect: { status: 403, body_contains: "RBAC: access denied" }
  - delete: policies/mtls-strict.yaml
  - reset: true
  - load: { from: sleep, to: productpage, qps: 200, connections: 4, duration: 5s }
"#,
    );

    let scenario = load_file(&path).unwrap();

    assert_eq!(scenario.steps.len(), 7);
    let Action::Apply(change) = &scenario.steps[0].action else {
        panic!("expected apply");
    };
    assert_eq!(change.origin, "policies/mtls-strict.yaml");
    assert_eq!(change.yaml, "kind: PeerAuthentication\n");
    let Action::Request(step) = &scenario.steps[1].action else {
        panic!("expected request");
    };
    assert_eq!(step.expect.connection, Some(ConnectionState::Failed));
    let Action::Request(step) = &scenario.steps[3].action else {
        panic!("expected request");
    };
    assert_eq!(
        step.request.jwt.as_ref().unwrap()["sub"],
        "noah@example.com"
    );
    assert!(matches!(scenario.steps[4].action, Action::Delete(_)));
    assert!(matches!(scenario.steps[5].action, Action::Reset));
    let Action::Load(load) = &scenario.steps[6].action else {
        panic!("expected load");
    };
    assert_eq!(load.qps, 200.0);
    assert_eq!(load.connections, 4);
    assert_eq!(load.time_limit(), Duration::from_secs(5));
}

#[test]
fn inline_policy_origin_names_step() {
    let scenario = parse_str(
        "name: inline
steps:
  - name: deny everything
    policy: |
      kind: AuthorizationPolicy
    expect_error: unknown
  - delete_policy: |
      kind: AuthorizationPolicy
",
    )
    .unwrap();

    let Action::Apply(change) = &scenario.steps[0].action else {
        panic!("expected apply");
    };
    assert_eq!(change.origin, "scenarios/test.yaml step 1 inline policy");
    assert_eq!(change.expect_error.as_deref(), Some("unknown"));
    assert_eq!(scenario.steps[0].name.as_deref(), Some("deny everything"));
    assert!(matches!(scenario.steps[1].action, Action::Delete(_)));
}

#[test]
fn unknown_request_key_names_step_and_field() {
    let error = error_text(
        "name: typo
steps:
  - reset: true
  - request: { from: sleep, to: details, methd: POST }
",
    );

    assert!(
        error.starts_with("scenarios/test.yaml: step 2: request.methd: unknown field `methd`"),
        "{error}"
    );
}

#[test]
fn unknown_expect_key_names_field() {
    let error = error_text(
        "name: typo
steps:
  - request: { from: sleep, to: details }
    expect: { stauts: 200 }
",
    );

    assert!(
        error.starts_with("scenarios/test.yaml: step 1: expect.stauts: unknown field `stauts`"),
        "{error}"
    );
}

#[test]
fn unknown_top_level_key() {
    let error = error_text("name: x\nstep: []\n");

    assert!(
        error.starts_with("scenarios/test.yaml: step: unknown field `step`"),
        "{error}"
    );
}

#[test]
fn unknown_workload_key_names_workload() {
    let error = error_text("name: x\nworkloads:\n  - name: a\n    sa: b\nsteps: []\n");

    assert!(
        error.starts_with("scenarios/test.yaml: workload 1: sa: unknown field `sa`"),
        "{error}"
    );
}

#[test]
fn wrong_value_type_names_field() {
    let error = error_text(
        "name: x
steps:
  - request: { from: sleep, to: details, port: high }
",
    );

    assert!(
        error.starts_with("scenarios/test.yaml: step 1: request.port: invalid type"),
        "{error}"
    );
}

#[test]
fn step_with_two_actions() {
    let error = error_text(
        "name: x
steps:
  - apply: a.yaml
    request: { from: sleep, to: details }
",
    );

    assert_eq!(
        error,
        "scenarios/test.yaml: step 1: step: more than one action: apply, request"
    );
}

#[test]
fn step_without_action() {
    let error = error_text("name: x\nsteps:\n  - name: nothing\n");

    assert!(
        error.starts_with("scenarios/test.yaml: step 1: step: no action"),
        "{error}"
    );
}

#[test]
fn expect_without_request() {
    let error = error_text("name: x\nsteps:\n  - reset: true\n    expect: { status: 200 }\n");

    assert_eq!(
        error,
        "scenarios/test.yaml: step 1: expect: only allowed with request, not reset"
    );
}

#[test]
fn expect_error_only_on_policy_changes() {
    let error = error_text(
        "name: x
steps:
  - request: { from: sleep, to: details }
    expect_error: boom
",
    );

    assert!(
        error.starts_with("scenarios/test.yaml: step 1: expect_error"),
        "{error}"
    );
}

#[test]
fn reset_false_rejected() {
    let error = error_text("name: x\nsteps:\n  - reset: false\n");

    assert!(
        error.starts_with("scenarios/test.yaml: step 1: reset: must be true"),
        "{error}"
    );
}

#[test]
fn missing_policy_file() {
    let dir = scratch_dir("missing_policy_file");
    let path = write(
        &dir,
        "s.yaml",
        "name: x\nsteps:\n  - reset: true\n  - apply: policies/absent.yaml\n",
    );

    let error = load_file(&path).unwrap_err().to_string();

    let expected = format!(
        "{}: step 2: apply: reading policies/absent.yaml",
        path.display()
    );
    assert!(error.starts_with(&expected), "{error}");
}

#[test]
fn missing_scenario_file() {
    let error = load_file(Path::new("/nonexistent/scenario.yaml")).unwrap_err();

    assert!(matches!(error, ScenarioError::Read { .. }));
    assert_eq!(
        error.to_string(),
        "/nonexistent/scenario.yaml: reading scenario"
    );
}

#[test]
fn token_file_trailing_newline_trimmed() {
    let dir = scratch_dir("token_file_trailing_newline_trimmed");
    write(&dir, "tokens/demo.jwt", "aaa.bbb.ccc\n");
    let path = write(
        &dir,
        "s.yaml",
        "name: x
steps:
  - request:
      from: sleep
      to: details
      token: tokens/demo.jwt
      token_location: { header: x-jwt-assertion }
",
    );

    let scenario = load_file(&path).unwrap();

    let Action::Request(step) = &scenario.steps[0].action else {
        panic!("expected request");
    };
    assert_eq!(step.token_from_file.as_deref(), Some("aaa.bbb.ccc"));
}

#[test]
fn two_token_sources_rejected() {
    let error = error_text(
        "name: x
steps:
  - request: { from: sleep, to: details, token_raw: a, jwt: { sub: b } }
",
    );

    assert_eq!(
        error,
        "scenarios/test.yaml: step 1: request: set only one of jwt, token and token_raw"
    );
}

#[test]
fn token_location_needs_one_place() {
    let error = error_text(
        "name: x
steps:
  - request:
      from: sleep
      to: details
      token_raw: a
      token_location: { header: a, query: b }
",
    );

    assert!(
        error.contains("request.token_location: set header or query, not both"),
        "{error}"
    );
}

#[test]
fn tcp_protocol_parses() {
    let scenario = parse_str(
        "name: x
steps:
  - request: { from: sleep, to: tcp-echo, port: 9000, protocol: tcp }
",
    )
    .unwrap();

    let Action::Request(step) = &scenario.steps[0].action else {
        panic!("expected request");
    };
    assert_eq!(step.request.protocol, Protocol::Tcp);
}

#[test]
fn status_with_connection_failed_rejected() {
    let error = error_text(
        "name: x
steps:
  - request: { from: sleep, to: details }
    expect: { failure: reset, status: 200 }
",
    );

    assert!(
        error.contains("step 1: expect: status cannot be checked"),
        "{error}"
    );
}

#[test]
fn unknown_failure_kind_rejected() {
    let error = error_text(
        "name: x
steps:
  - request: { from: sleep, to: details }
    expect: { failure: closed }
",
    );

    assert!(
        error.starts_with("scenarios/test.yaml: step 1: expect.failure"),
        "{error}"
    );
}

#[test]
fn unknown_app_rejected() {
    let error = error_text("name: x\nworkloads:\n  - name: a\n    app: nginx\nsteps: []\n");

    assert!(
        error.starts_with("scenarios/test.yaml: workload 1: app: unknown app \"nginx\""),
        "{error}"
    );
}

#[test]
fn load_bounds() {
    let cases = [
        (
            "duration: 11m",
            "load.duration: must be above 0 and at most 10m",
        ),
        ("duration: soon", "load.duration: invalid duration \"soon\""),
        ("connections: 0", "load.connections: must be between 1"),
        ("qps: -1", "load.qps: must be 0 or more"),
        ("requests: 0", "load.requests: must be at least 1"),
    ];
    for (field, expected) in cases {
        let text = format!("name: x\nsteps:\n  - load: {{ from: a, to: b, {field} }}\n");
        let error = error_text(&text);
        assert!(error.contains(expected), "{field}: {error}");
    }
}

#[test]
fn load_time_limit_defaults() {
    let scenario = parse_str(
        "name: x
steps:
  - load: { from: a, to: b }
  - load: { from: a, to: b, requests: 100 }
",
    )
    .unwrap();

    let limits: Vec<Duration> = scenario
        .steps
        .iter()
        .map(|step| match &step.action {
            Action::Load(load) => load.time_limit(),
            other => panic!("expected load, got {other:?}"),
        })
        .collect();
    assert_eq!(limits, vec![DEFAULT_LOAD_DURATION, MAX_LOAD_DURATION]);
}

#[test]
fn repeat_bounds() {
    let error = error_text("name: x\nsteps:\n  - request: { from: a, to: b, repeat: 0 }\n");

    assert!(
        error.contains("step 1: request.repeat: must be between 1 and"),
        "{error}"
    );
}

#[test]
fn directory_lists_yaml_sorted() {
    let dir = scratch_dir("directory_lists_yaml_sorted");
    write(&dir, "b.yaml", "");
    write(&dir, "a.yaml", "");
    write(&dir, "notes.md", "");
    write(&dir, "policies/p.yaml", "");

    let files = scenario_files(&dir).unwrap();

    assert_eq!(files, vec![dir.join("a.yaml"), dir.join("b.yaml")]);
}

#[test]
fn repository_scenarios_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let files = scenario_files(&dir).unwrap();

    let errors: Vec<String> = files
        .iter()
        .filter_map(|file| load_file(file).err())
        .map(|error| error.to_string())
        .collect();

    assert!(
        errors.is_empty(),
        "invalid scenarios:\n{}",
        errors.join("\n")
    );
}
