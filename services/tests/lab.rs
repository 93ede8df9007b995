//! The lab launcher: workloads added beyond Bookinfo.

use std::collections::BTreeMap;

use services::apps::AppKind;
use services::lab::{Lab, LabError, LabOptions, WorkloadSpec};

fn spec(name: &str, namespace: &str) -> WorkloadSpec {
    WorkloadSpec {
        name: name.to_string(),
        namespace: namespace.to_string(),
        service_account: name.to_string(),
        labels: BTreeMap::from([("app".to_string(), name.to_string())]),
        sidecar: true,
        app: AppKind::Httpbin,
        service: name.to_string(),
        ports: vec![(8000, 80)],
    }
}

async fn lab() -> Lab {
    Lab::start(LabOptions {
        base_ip: None,
        ..LabOptions::default()
    })
    .await
    .expect("lab starts")
}

#[tokio::test]
async fn added_workload_gets_its_own_address() {
    let lab = lab().await;
    lab.add(spec("httpbin", "foo")).await.unwrap();
    let (_, ip) = lab
        .workloads()
        .into_iter()
        .find(|(w, _)| w.name == "httpbin")
        .unwrap();
    assert!(ip.is_loopback());
    assert!(lab.client("httpbin.foo").is_some());
    lab.reset_workloads().await;
    assert!(
        lab.client("httpbin.foo").is_none(),
        "reset removes added workloads"
    );
    lab.add(spec("httpbin", "foo"))
        .await
        .expect("the address is free again");
}

#[tokio::test]
async fn bookinfo_service_names_are_taken() {
    let lab = lab().await;
    let error = lab.add(spec("details", "default")).await.unwrap_err();
    assert!(matches!(error, LabError::ServiceTaken { .. }), "{error}");
    lab.add(spec("details", "other"))
        .await
        .expect("another namespace is fine");
}

#[tokio::test]
async fn names_must_be_dns_labels() {
    let lab = lab().await;
    for (name, namespace) in [
        ("Sle ep", "default"),
        ("sleep", "a/b"),
        ("-x", "default"),
        ("", "default"),
    ] {
        let error = lab.add(spec(name, namespace)).await.unwrap_err();
        assert!(
            matches!(error, LabError::InvalidName { .. }),
            "{name:?}.{namespace:?}: {error}"
        );
    }
}
