//! Parsing Istio YAML: the course files under `scenarios/policies`, and the errors a trainee
//! gets for broken ones.

use std::path::{Path, PathBuf};

use mesh::config::destination_rule::TlsMode;
use mesh::config::legacy_policy::{LegacyMtlsMode, PrincipalBinding, StringMatch};
use mesh::config::peer_authentication::MtlsMode;
use mesh::config::{parse_documents, ConfigError, Document, Kind, Spec};
use mesh::store::ConfigStore;

fn policies_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/policies")
}

fn parse_file(name: &str) -> Vec<Document> {
    let path = policies_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse_documents(&text, name).unwrap_or_else(|e| panic!("{e}"))
}

fn parse_error(text: &str) -> ConfigError {
    match parse_documents(text, "policies/bad.yaml") {
        Ok(documents) => panic!("expected an error, parsed {documents:?}"),
        Err(error) => error,
    }
}

fn only(documents: Vec<Document>) -> Document {
    assert_eq!(documents.len(), 1, "{documents:?}");
    documents.into_iter().next().unwrap()
}

#[test]
fn every_policy_file_parses() {
    let mut count = 0;
    for entry in std::fs::read_dir(policies_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let documents = parse_documents(&text, &name).unwrap_or_else(|e| panic!("{e}"));
        assert!(!documents.is_empty(), "{name} has no documents");
        count += 1;
    }
    assert!(count >= 11, "only {count} policy files found");
}

#[test]
fn mesh_policy_strict_file() {
    let document = only(parse_file("mesh-policy-strict.yaml"));
    assert_eq!(document.kind(), Kind::MeshPolicy);
    assert_eq!(document.meta.name, "default");
    assert_eq!(document.meta.namespace, "", "MeshPolicy is cluster-scoped");
    let Spec::MeshPolicy(spec) = document.spec else {
        panic!("not a MeshPolicy");
    };
    let mtls = spec.mtls().expect("an mtls peer");
    assert_eq!(mtls.mode, LegacyMtlsMode::Strict);
    assert!(!mtls.allow_tls);
}

#[test]
fn mesh_policy_permissive_file() {
    let Spec::MeshPolicy(spec) = only(parse_file("mesh-policy-permissive.yaml")).spec else {
        panic!("not a MeshPolicy");
    };
    assert_eq!(spec.mtls().unwrap().mode, LegacyMtlsMode::Permissive);
}

#[test]
fn productpage_policy_file() {
    let document = only(parse_file("productpage-policy-strict.yaml"));
    assert_eq!(document.meta.namespace, "default");
    let Spec::Policy(spec) = document.spec else {
        panic!("not a Policy");
    };
    assert_eq!(spec.targets.len(), 1);
    assert_eq!(spec.targets[0].name, "productpage");
    assert!(spec.targets[0].ports.is_empty());
    assert_eq!(spec.mtls().unwrap().mode, LegacyMtlsMode::Strict);
}

#[test]
fn mtls_strict_file_has_two_documents() {
    let documents = parse_file("mtls-strict.yaml");
    let kinds: Vec<Kind> = documents.iter().map(Document::kind).collect();
    assert_eq!(kinds, [Kind::MeshPolicy, Kind::DestinationRule]);
    let Spec::DestinationRule(rule) = &documents[1].spec else {
        panic!("not a DestinationRule");
    };
    assert_eq!(rule.host, "*.default.svc.cluster.local");
    let tls = rule.traffic_policy.as_ref().unwrap().tls.as_ref().unwrap();
    assert_eq!(tls.mode, TlsMode::IstioMutual);
}

#[test]
fn peer_authentication_files() {
    let cases = [
        (
            "peer-authentication-mesh-strict.yaml",
            "istio-system",
            MtlsMode::Strict,
            false,
        ),
        (
            "peer-authentication-mesh-permissive.yaml",
            "istio-system",
            MtlsMode::Permissive,
            false,
        ),
        (
            "peer-authentication-namespace-strict.yaml",
            "default",
            MtlsMode::Strict,
            false,
        ),
        (
            "peer-authentication-productpage-strict.yaml",
            "default",
            MtlsMode::Strict,
            true,
        ),
    ];
    for (file, namespace, mode, has_selector) in cases {
        let document = only(parse_file(file));
        assert_eq!(document.meta.namespace, namespace, "{file}");
        let Spec::PeerAuthentication(spec) = document.spec else {
            panic!("{file}: not a PeerAuthentication");
        };
        assert_eq!(spec.mode(), mode, "{file}");
        assert_eq!(spec.has_selector(), has_selector, "{file}");
    }
}

#[test]
fn legacy_mtls_spellings_are_strict() {
    for peers in ["- mtls: {}", "- mtls:", "- mtls: null"] {
        let text = format!(
            "apiVersion: authentication.istio.io/v1alpha1\nkind: Policy\n\
             metadata: {{name: default, namespace: foo}}\nspec:\n  peers:\n  {peers}\n"
        );
        let Spec::Policy(spec) = only(parse_documents(&text, "t").unwrap()).spec else {
            panic!("not a Policy");
        };
        assert_eq!(
            spec.mtls().map(|m| m.mode),
            Some(LegacyMtlsMode::Strict),
            "{peers}"
        );
    }
}

#[test]
fn legacy_origins_accept_snake_case() {
    let text = r#"
apiVersion: "authentication.istio.io/v1alpha1"
kind: "Policy"
metadata:
  name: "jwt-example"
  namespace: foo
spec:
  targets:
  - name: httpbin
    ports:
    - number: 8000
    - name: http
  peers:
  - mtls: {}
  origins:
  - jwt:
      issuer: "testing@secure.istio.io"
      jwks_uri: "https://raw.githubusercontent.com/istio/istio/release-1.4/security/tools/jwt/samples/jwks.json"
      trigger_rules:
      - excluded_paths:
        - exact: /ip
        included_paths:
        - prefix: /headers
  - jwt:
      issuer: other
      jwksUri: https://example.com/jwks.json
      triggerRules:
      - excludedPaths:
        - suffix: /health
  principalBinding: USE_ORIGIN
  origin_is_optional: true
"#;
    let Spec::Policy(spec) = only(parse_documents(text, "t").unwrap()).spec else {
        panic!("not a Policy");
    };
    assert_eq!(spec.principal_binding, PrincipalBinding::UseOrigin);
    assert!(spec.origin_is_optional);
    assert_eq!(spec.targets[0].ports.len(), 2);
    let first = &spec.origins[0].jwt;
    assert!(first.jwks_uri.as_deref().unwrap().ends_with("jwks.json"));
    assert_eq!(
        first.trigger_rules[0].excluded_paths,
        [StringMatch::Exact("/ip".into())]
    );
    assert_eq!(
        first.trigger_rules[0].included_paths,
        [StringMatch::Prefix("/headers".into())]
    );
    let second = &spec.origins[1].jwt;
    assert_eq!(
        second.trigger_rules[0].excluded_paths,
        [StringMatch::Suffix("/health".into())]
    );
}

#[test]
fn port_level_mtls_keys_int_or_string() {
    let text = r#"
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata:
  name: httpbin
  namespace: foo
spec:
  selector:
    matchLabels:
      app: httpbin
  mtls:
    mode: STRICT
  portLevelMtls:
    80:
      mode: DISABLE
    "8080":
      mode: PERMISSIVE
"#;
    let Spec::PeerAuthentication(spec) = only(parse_documents(text, "t").unwrap()).spec else {
        panic!("not a PeerAuthentication");
    };
    assert_eq!(spec.port_mode(80), Some(MtlsMode::Disable));
    assert_eq!(spec.port_mode(8080), Some(MtlsMode::Permissive));
    assert_eq!(spec.port_mode(8000), None);
}

#[test]
fn modern_resources_parse() {
    let text = r#"
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata:
  name: jwt-example
  namespace: foo
spec:
  selector:
    matchLabels:
      app: httpbin
  jwtRules:
  - issuer: "testing@secure.istio.io"
    jwksUri: "https://raw.githubusercontent.com/istio/istio/release-1.22/security/tools/jwt/samples/jwks.json"
    fromHeaders:
    - name: x-jwt-assertion
      prefix: "Bearer "
    outputClaimToHeaders:
    - header: "x-jwt-claim-foo"
      claim: "foo"
    forwardOriginalToken: true
    timeout: 5s
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  trafficPolicy:
    loadBalancer:
      simple: RANDOM
    connectionPool:
      tcp: {maxConnections: 100}
    outlierDetection:
      consecutive5xxErrors: 7
    portLevelSettings:
    - port:
        number: 9080
      tls:
        mode: ISTIO_MUTUAL
        sni: reviews.default.svc.cluster.local
  subsets:
  - name: v1
    labels:
      version: v1
    trafficPolicy:
      tls:
        mode: ISTIO_MUTUAL
"#;
    let documents = parse_documents(text, "t").unwrap();
    assert_eq!(documents.len(), 2);
    let Spec::RequestAuthentication(spec) = &documents[0].spec else {
        panic!("not a RequestAuthentication");
    };
    assert_eq!(
        spec.jwt_rules[0].issuer.as_deref(),
        Some("testing@secure.istio.io")
    );
    assert_eq!(spec.jwt_rules[0].from_headers[0].prefix, "Bearer ");
    assert!(spec.jwt_rules[0].forward_original_token);
    assert_eq!(
        documents[1].meta.namespace, "default",
        "namespace defaults to default"
    );
    let Spec::DestinationRule(rule) = &documents[1].spec else {
        panic!("not a DestinationRule");
    };
    assert_eq!(rule.subsets[0].name, "v1");
    assert!(rule
        .traffic_policy
        .as_ref()
        .unwrap()
        .load_balancer
        .is_some());
}

#[test]
fn kubernetes_metadata_is_accepted() {
    let text = r#"
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata:
  name: default
  namespace: foo
  uid: 1c7c2f5e-8a43-4c4b-9e0b-6d3f2b0c1a11
  creationTimestamp: "2020-03-01T10:00:00Z"
  resourceVersion: "12345"
  generation: 1
  labels:
    team: security
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: "{}"
spec:
  mtls:
    mode: STRICT
"#;
    let document = only(parse_documents(text, "t").unwrap());
    assert_eq!(
        document.meta.labels.get("team").map(String::as_str),
        Some("security")
    );
    assert_eq!(document.meta.annotations.len(), 1);
}

#[test]
fn empty_documents_are_skipped() {
    let text = "---\n---\n# only a comment\n---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\n\
                metadata: {name: default}\nspec: {}\n---\n";
    let document = only(parse_documents(text, "t").unwrap());
    assert_eq!(document.meta.namespace, "default");
    assert!(parse_documents("", "t").unwrap().is_empty());
}

#[test]
fn list_items_are_documents() {
    let text = r#"
apiVersion: v1
kind: List
items:
- apiVersion: security.istio.io/v1beta1
  kind: PeerAuthentication
  metadata: {name: default, namespace: foo}
  spec: {mtls: {mode: STRICT}}
- apiVersion: security.istio.io/v1beta1
  kind: PeerAuthentication
  metadata: {name: default, namespace: bar}
  spec: {mtls: {mode: STRCT}}
"#;
    let error = parse_error(text);
    assert_eq!(error.document, 1);
    assert_eq!(error.path, "items[1].spec.mtls.mode");
    assert_eq!(
        error.resource.as_deref(),
        Some("PeerAuthentication bar/default")
    );

    let fixed = text.replace("STRCT", "DISABLE");
    let documents = parse_documents(&fixed, "t").unwrap();
    assert_eq!(documents.len(), 2);
}

#[test]
fn invalid_mode_error_reads_well() {
    let text = r#"
apiVersion: authentication.istio.io/v1alpha1
kind: MeshPolicy
metadata:
  name: default
spec:
  peers:
  - mtls: {}
---
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata:
  name: default
  namespace: default
spec:
  mtls:
    mode: STRCT
"#;
    let error = parse_documents(text, "policies/mtls.yaml").unwrap_err();
    assert_eq!(error.origin, "policies/mtls.yaml");
    assert_eq!(error.document, 2);
    assert_eq!(error.path, "spec.mtls.mode");
    assert_eq!(
        error.message,
        "unknown variant \"STRCT\", expected one of UNSET, DISABLE, PERMISSIVE, STRICT"
    );
    assert_eq!(error.hint.as_deref(), Some("did you mean STRICT?"));
    assert_eq!(
        error.to_string(),
        "policies/mtls.yaml: document 2 (PeerAuthentication default/default): spec.mtls.mode: \
         unknown variant \"STRCT\", expected one of UNSET, DISABLE, PERMISSIVE, STRICT; \
         did you mean STRICT?"
    );
}

#[test]
fn unknown_kind_is_rejected() {
    let text = "apiVersion: security.istio.io/v1beta1\nkind: PeerAuthentcation\n\
                metadata: {name: default}\nspec: {}\n";
    let error = parse_error(text);
    assert_eq!(error.document, 1);
    assert_eq!(error.path, "kind");
    assert!(
        error
            .message
            .contains("unsupported kind \"PeerAuthentcation\""),
        "{error}"
    );
    assert!(
        error
            .message
            .contains("networking.istio.io/v1alpha3 DestinationRule"),
        "{error}"
    );
    assert_eq!(
        error.hint.as_deref(),
        Some("did you mean PeerAuthentication?")
    );
}

#[test]
fn unsupported_api_version_is_rejected() {
    let text = "apiVersion: security.istio.io/v1alpha1\nkind: PeerAuthentication\n\
                metadata: {name: default}\nspec: {}\n";
    let error = parse_error(text);
    assert_eq!(error.path, "apiVersion");
    assert!(
        error
            .hint
            .as_deref()
            .unwrap()
            .contains("security.istio.io/v1beta1"),
        "{error}"
    );
}

#[test]
fn rbac_kinds_are_rejected() {
    let text = "apiVersion: rbac.istio.io/v1alpha1\nkind: ServiceRole\n\
                metadata: {name: viewer}\nspec: {rules: []}\n";
    let error = parse_error(text);
    assert_eq!(error.path, "kind");
}

#[test]
fn unknown_field_is_rejected() {
    let text = r#"
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: details
spec:
  host: details
  trafficPolicy:
    tls:
      mode: ISTIO_MUTUAL
      sniHost: details
"#;
    let error = parse_error(text);
    assert_eq!(error.document, 1);
    assert_eq!(
        error.resource.as_deref(),
        Some("DestinationRule default/details")
    );
    assert!(error.path.starts_with("spec.trafficPolicy.tls"), "{error}");
    assert!(
        error.message.starts_with("unknown field \"sniHost\""),
        "{error}"
    );
}

#[test]
fn unknown_metadata_field_is_rejected() {
    let text = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n\
                metadata: {name: default, namepsace: foo}\nspec: {}\n";
    let error = parse_error(text);
    assert!(error.path.starts_with("metadata"), "{error}");
    assert_eq!(error.hint.as_deref(), Some("did you mean namespace?"));
}

#[test]
fn missing_name_is_rejected() {
    let text = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n\
                metadata: {namespace: foo}\nspec: {}\n";
    let error = parse_error(text);
    assert_eq!(error.path, "metadata.name");
    assert_eq!(error.message, "missing name");
}

#[test]
fn port_level_mtls_needs_selector() {
    let text = r#"
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata:
  name: default
  namespace: foo
spec:
  mtls:
    mode: STRICT
  portLevelMtls:
    80:
      mode: DISABLE
"#;
    let error = parse_error(text);
    assert_eq!(error.document, 1);
    assert_eq!(error.path, "spec.portLevelMtls");
    assert!(error.message.contains("selector"), "{error}");
}

#[test]
fn port_level_mtls_port_range() {
    let text = "apiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\n\
                metadata: {name: httpbin, namespace: foo}\nspec:\n  selector: {matchLabels: {app: httpbin}}\n  \
                portLevelMtls:\n    70000: {mode: DISABLE}\n";
    let error = parse_error(text);
    assert_eq!(error.path, "spec.portLevelMtls.70000");
    let text = text.replace("70000", "http");
    let error = parse_error(&text);
    assert!(error.path.starts_with("spec.portLevelMtls"), "{error}");
}

#[test]
fn bad_yaml_names_its_document() {
    let text = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: a}\nspec: {}\n\
                ---\nspec: [unclosed\n---\nkind: Policy\n";
    let error = parse_error(text);
    assert_eq!(error.document, 2);
    assert_eq!(error.path, "");
    assert!(error.message.starts_with("invalid YAML"), "{error}");
    assert!(
        error
            .to_string()
            .starts_with("policies/bad.yaml: document 2: invalid YAML"),
        "{error}"
    );
}

#[test]
fn scalar_document_is_rejected() {
    let error = parse_error("just a string\n");
    assert_eq!(error.document, 1);
    assert!(error.message.contains("expected a mapping"), "{error}");
}

#[test]
fn legacy_naming_rules() {
    let mesh_named = "apiVersion: authentication.istio.io/v1alpha1\nkind: MeshPolicy\n\
                      metadata: {name: mesh}\nspec: {peers: [{mtls: {}}]}\n";
    let error = parse_error(mesh_named);
    assert_eq!(error.path, "metadata.name");
    assert_eq!(error.resource.as_deref(), Some("MeshPolicy mesh"));

    let mesh_targets = "apiVersion: authentication.istio.io/v1alpha1\nkind: MeshPolicy\n\
                        metadata: {name: default}\nspec: {targets: [{name: details}]}\n";
    assert_eq!(parse_error(mesh_targets).path, "spec.targets");

    let untargeted = "apiVersion: authentication.istio.io/v1alpha1\nkind: Policy\n\
                      metadata: {name: strict, namespace: foo}\nspec: {peers: [{mtls: {}}]}\n";
    assert_eq!(parse_error(untargeted).path, "metadata.name");

    let default_targets = "apiVersion: authentication.istio.io/v1alpha1\nkind: Policy\n\
                           metadata: {name: default, namespace: foo}\nspec: {targets: [{name: details}]}\n";
    assert_eq!(parse_error(default_targets).path, "spec.targets");
}

#[test]
fn request_authentication_checks() {
    let no_issuer = "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\n\
                     metadata: {name: jwt, namespace: foo}\nspec:\n  jwtRules:\n  - jwksUri: https://example.com/jwks\n";
    let error = parse_error(no_issuer);
    assert_eq!(error.path, "spec.jwtRules[0].issuer");

    let both_keys = "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\n\
                     metadata: {name: jwt, namespace: foo}\nspec:\n  jwtRules:\n  - issuer: a\n    \
                     jwksUri: https://example.com/jwks\n    jwks: '{\"keys\": []}'\n";
    let error = parse_error(both_keys);
    assert_eq!(error.path, "spec.jwtRules[0]");
    assert!(error.message.contains("not both"), "{error}");
}

#[test]
fn destination_rule_checks() {
    let no_host = "apiVersion: networking.istio.io/v1alpha3\nkind: DestinationRule\n\
                   metadata: {name: details}\nspec:\n  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}\n";
    assert_eq!(parse_error(no_host).path, "spec.host");

    let istio_mutual_files = "apiVersion: networking.istio.io/v1alpha3\nkind: DestinationRule\n\
                              metadata: {name: details}\nspec:\n  host: details\n  trafficPolicy:\n    \
                              tls: {mode: ISTIO_MUTUAL, clientCertificate: /etc/certs/cert-chain.pem}\n";
    let error = parse_error(istio_mutual_files);
    assert_eq!(error.path, "spec.trafficPolicy.tls.clientCertificate");

    let mutual_without_key = "apiVersion: networking.istio.io/v1alpha3\nkind: DestinationRule\n\
                              metadata: {name: details}\nspec:\n  host: details\n  trafficPolicy:\n    \
                              portLevelSettings:\n    - port: {number: 9080}\n      \
                              tls: {mode: MUTUAL, clientCertificate: /etc/certs/cert-chain.pem}\n";
    let error = parse_error(mutual_without_key);
    assert_eq!(
        error.path,
        "spec.trafficPolicy.portLevelSettings[0].tls.privateKey"
    );

    let credential = mutual_without_key.replace(
        "clientCertificate: /etc/certs/cert-chain.pem",
        "credentialName: details-cert",
    );
    assert!(parse_documents(&credential, "t").is_ok());

    let bad_wildcard = "apiVersion: networking.istio.io/v1alpha3\nkind: DestinationRule\n\
                        metadata: {name: details}\nspec:\n  host: \"details.*.svc.cluster.local\"\n";
    assert_eq!(parse_error(bad_wildcard).path, "spec.host");
}

#[test]
fn rejected_file_leaves_store_unchanged() {
    let store = ConfigStore::new();
    store.apply(parse_file("mesh-policy-strict.yaml"));
    let before = store.snapshot();

    let text = r#"
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: default
  namespace: default
spec:
  host: "*.default.svc.cluster.local"
  trafficPolicy:
    tls:
      mode: ISTIO_MUTUAL
---
apiVersion: authentication.istio.io/v1alpha1
kind: MeshPolicy
metadata:
  name: default
spec:
  peers:
  - mtls: {mode: STRICTER}
"#;
    let error = parse_documents(text, "policies/broken.yaml").unwrap_err();
    assert_eq!(error.document, 2);
    assert_eq!(error.path, "spec.peers[0].mtls.mode");

    let after = store.snapshot();
    assert_eq!(after.version, before.version);
    assert_eq!(after.resources, before.resources);
    assert!(after.destination_rules().next().is_none());
}

#[test]
fn apply_and_delete_course_file() {
    let store = ConfigStore::new();
    let documents = parse_file("mtls-strict.yaml");
    let version = store.apply(documents.clone());
    let snapshot = store.snapshot();
    assert_eq!(snapshot.version, version);
    assert!(snapshot.mesh_policy().is_some());
    assert!(snapshot
        .get(Kind::DestinationRule, "default", "default")
        .is_some());
    assert!(snapshot.get(Kind::MeshPolicy, "", "default").is_some());

    store.delete(&documents);
    assert!(store.snapshot().is_empty());
}

#[test]
fn deeply_nested_yaml_is_rejected() {
    let nested = format!("a: {}{}", "[".repeat(100_000), "]".repeat(100_000));
    let error = parse_documents(&nested, "nested.yaml")
        .unwrap_err()
        .to_string();
    assert!(error.contains("nested.yaml"), "{error}");
    assert!(error.contains("nested more than"), "{error}");
}

#[test]
fn oversized_file_is_rejected() {
    let big = format!("# {}\n", "x".repeat(2 * 1024 * 1024));
    let error = parse_documents(&big, "big.yaml").unwrap_err().to_string();
    assert!(error.contains("big.yaml"), "{error}");
    assert!(error.contains("larger than"), "{error}");
}
