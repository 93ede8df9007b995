//! The lab: Bookinfo and any extra workloads, each with its own sidecar, identity and
//! loopback address, on one in-process mesh.
//!
//! Each workload gets its own address in 127.0.0.0/8 and its real ports (9080 for
//! Bookinfo), so source IPs, `ipBlocks` and workload ports mean what they mean in a
//! cluster, and outbound connections leave from the caller's own address.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};

use axum::Router;
use bytes::Bytes;
use http_body_util::BodyExt;
use mesh::control::{ControlPlane, ControlPlaneOptions};
use mesh::sidecar::inbound::{AppBody, TcpApp};
use mesh::sidecar::{AppService, InboundOptions, OutboundClient, SendOptions, Sidecar};
use mesh::workload::{ServicePort, ServiceRef, WorkloadMeta};

use crate::apps::{self, AppEnv, AppKind};
use crate::upstream::{HttpSend, SendFuture};

/// Name of the built-in client that has no sidecar and no identity.
pub const OUTSIDER: &str = "outsider";

/// First address of the default layout: productpage is 127.0.0.10, details 127.0.0.11, ...
pub const DEFAULT_BASE_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 10);

/// A workload to run in the lab.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadSpec {
    pub name: String,
    pub namespace: String,
    pub service_account: String,
    pub labels: BTreeMap<String, String>,
    pub sidecar: bool,
    pub app: AppKind,
    /// Service in front of the workload (several workloads may share one).
    pub service: String,
    /// Service port to workload port.
    pub ports: Vec<(u16, u16)>,
}

impl WorkloadSpec {
    /// Returns the workload as the mesh models it: identity, labels and one service.
    pub fn meta(&self) -> WorkloadMeta {
        WorkloadMeta {
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            service_account: self.service_account.clone(),
            labels: self.labels.clone(),
            services: vec![ServiceRef {
                name: self.service.clone(),
                namespace: self.namespace.clone(),
                ports: self
                    .ports
                    .iter()
                    .map(|&(port, target_port)| ServicePort {
                        port,
                        target_port,
                        // Istio identifies TCP ports by their name.
                        name: if self.app == AppKind::TcpEcho {
                            "tcp"
                        } else {
                            "http"
                        }
                        .to_string(),
                    })
                    .collect(),
            }],
            sidecar: self.sidecar,
        }
    }
}

/// Bookinfo as `platform/kube/bookinfo.yaml` deploys it: namespace `default`, service
/// accounts `bookinfo-<service>`, port 9080, three reviews versions behind `reviews`.
pub fn bookinfo() -> Vec<WorkloadSpec> {
    let workload = |name: &str, service: &str, version: &str, app: AppKind| WorkloadSpec {
        name: name.to_string(),
        namespace: "default".to_string(),
        service_account: format!("bookinfo-{service}"),
        labels: BTreeMap::from([
            ("app".to_string(), service.to_string()),
            ("version".to_string(), version.to_string()),
        ]),
        sidecar: true,
        app,
        service: service.to_string(),
        ports: vec![(9080, 9080)],
    };
    vec![
        workload("productpage-v1", "productpage", "v1", AppKind::Productpage),
        workload("details-v1", "details", "v1", AppKind::Details),
        workload(
            "reviews-v1",
            "reviews",
            "v1",
            "reviews-v1".parse().expect("known app"),
        ),
        workload(
            "reviews-v2",
            "reviews",
            "v2",
            "reviews-v2".parse().expect("known app"),
        ),
        workload(
            "reviews-v3",
            "reviews",
            "v3",
            "reviews-v3".parse().expect("known app"),
        ),
        workload("ratings-v1", "ratings", "v1", AppKind::Ratings),
    ]
}

/// Settings of a lab.
#[derive(Clone, Debug)]
pub struct LabOptions {
    /// Address of the first workload; the others follow it. `None` picks a free /24 in
    /// 127.0.0.0/8 at random, so that several labs (tests) can run side by side.
    pub base_ip: Option<Ipv4Addr>,
    pub control: ControlPlaneOptions,
    pub inbound: InboundOptions,
    /// Start Bookinfo's workloads.
    pub bookinfo: bool,
}

impl Default for LabOptions {
    fn default() -> Self {
        Self {
            base_ip: Some(DEFAULT_BASE_IP),
            control: ControlPlaneOptions::default(),
            inbound: InboundOptions::default(),
            bookinfo: true,
        }
    }
}

/// A running lab.
pub struct Lab {
    control: ControlPlane,
    options: LabOptions,
    base: Ipv4Addr,
    state: Mutex<LabState>,
    outsider: OutboundClient,
}

struct LabState {
    next_offset: u32,
    workloads: Vec<Running>,
    free_ips: Vec<IpAddr>,
}

struct Running {
    spec: WorkloadSpec,
    sidecar: Sidecar,
    builtin: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("workload {0} already exists")]
    Duplicate(String),
    #[error("workload {name}: {source}")]
    Start {
        name: String,
        #[source]
        source: mesh::sidecar::SidecarError,
    },
    #[error("invalid {field} {value:?}: expected a DNS-1123 label (lower-case letters, digits and '-', at most 63, starting and ending with a letter or digit)")]
    InvalidName { field: &'static str, value: String },
    #[error("workload {name}: service {service} in namespace {namespace} already exists; pick another name")]
    ServiceTaken {
        name: String,
        service: String,
        namespace: String,
    },
    #[error("no free address range in 127.0.0.0/8 after {0} attempts")]
    NoAddressRange(u32),
}

impl Lab {
    /// Starts the control plane and, unless disabled, Bookinfo.
    pub async fn start(options: LabOptions) -> Result<Lab, LabError> {
        match options.base_ip {
            Some(base) => Self::start_at(options.clone(), base).await,
            None => {
                const ATTEMPTS: u32 = 8;
                for _ in 0..ATTEMPTS {
                    let base = random_base();
                    match Self::start_at(options.clone(), base).await {
                        Ok(lab) => return Ok(lab),
                        Err(LabError::Start { .. }) => continue,
                        Err(other) => return Err(other),
                    }
                }
                Err(LabError::NoAddressRange(ATTEMPTS))
            }
        }
    }

    async fn start_at(options: LabOptions, base: Ipv4Addr) -> Result<Lab, LabError> {
        let control = ControlPlane::new(options.control.clone());
        // The outsider sits just below the first workload, outside the mesh.
        let outsider_ip = IpAddr::V4(Ipv4Addr::from(u32::from(base) - 1));
        let outsider = OutboundClient::new(
            None,
            "default",
            outsider_ip,
            None,
            control.context().clone(),
            options.inbound.timeouts.clone(),
        );
        let lab = Lab {
            control,
            base,
            state: Mutex::new(LabState {
                next_offset: 0,
                workloads: Vec::new(),
                free_ips: Vec::new(),
            }),
            outsider,
            options,
        };
        if lab.options.bookinfo {
            for spec in bookinfo() {
                lab.start_workload(spec, true).await?;
            }
        }
        Ok(lab)
    }

    pub fn control(&self) -> &ControlPlane {
        &self.control
    }

    pub fn base_ip(&self) -> Ipv4Addr {
        self.base
    }

    /// Adds a workload beyond Bookinfo; `reset_workloads` removes it again. Its names must
    /// be DNS-1123 labels, as Kubernetes requires, and its service must be new.
    pub async fn add(&self, spec: WorkloadSpec) -> Result<(), LabError> {
        for (field, value) in [
            ("name", &spec.name),
            ("namespace", &spec.namespace),
            ("service account", &spec.service_account),
        ] {
            if !is_dns_label(value) {
                return Err(LabError::InvalidName {
                    field,
                    value: value.clone(),
                });
            }
        }
        {
            let state = self.state.lock().expect("lab lock is never poisoned");
            if state
                .workloads
                .iter()
                .any(|w| w.spec.service == spec.service && w.spec.namespace == spec.namespace)
            {
                return Err(LabError::ServiceTaken {
                    name: spec.name.clone(),
                    service: spec.service.clone(),
                    namespace: spec.namespace.clone(),
                });
            }
        }
        self.start_workload(spec, false).await
    }

    async fn start_workload(&self, spec: WorkloadSpec, builtin: bool) -> Result<(), LabError> {
        let ip = {
            let mut state = self.state.lock().expect("lab lock is never poisoned");
            if state
                .workloads
                .iter()
                .any(|w| w.spec.name == spec.name && w.spec.namespace == spec.namespace)
            {
                return Err(LabError::Duplicate(format!(
                    "{}.{}",
                    spec.name, spec.namespace
                )));
            }
            match state.free_ips.pop() {
                Some(ip) => ip,
                None => {
                    let ip = IpAddr::V4(Ipv4Addr::from(u32::from(self.base) + state.next_offset));
                    state.next_offset += 1;
                    ip
                }
            }
        };
        let app_kind = spec.app;
        let pod_name = spec.name.clone();
        let make_app = move |client: OutboundClient| {
            let env = AppEnv::new(Arc::new(MeshHttp(client)), pod_name);
            app_service(apps::router(&app_kind, env))
        };
        let inbound = inbound_options(app_kind, self.options.inbound.clone());
        let sidecar = Sidecar::start(&self.control, spec.meta(), ip, make_app, inbound)
            .await
            .map_err(|source| LabError::Start {
                name: spec.name.clone(),
                source,
            })?;
        let mut state = self.state.lock().expect("lab lock is never poisoned");
        state.workloads.push(Running {
            spec,
            sidecar,
            builtin,
        });
        Ok(())
    }

    /// Stops every workload added beyond Bookinfo and waits until their addresses are free.
    pub async fn reset_workloads(&self) {
        let removed: Vec<Running> = {
            let mut state = self.state.lock().expect("lab lock is never poisoned");
            let (keep, removed): (Vec<Running>, Vec<Running>) =
                state.workloads.drain(..).partition(|w| w.builtin);
            state.workloads = keep;
            removed
        };
        for running in removed {
            let ip = running.sidecar.ip();
            running.sidecar.shutdown().await;
            let mut state = self.state.lock().expect("lab lock is never poisoned");
            state.free_ips.push(ip);
        }
    }

    /// Returns the outbound client of workload `from` (`name`, `name.namespace`, or `outsider`).
    pub fn client(&self, from: &str) -> Option<OutboundClient> {
        let state = self.state.lock().expect("lab lock is never poisoned");
        let (name, namespace) = from.split_once('.').unwrap_or((from, "default"));
        let by_name = state
            .workloads
            .iter()
            .find(|w| w.spec.namespace == namespace && w.spec.name == name);
        // A service name means its first workload: `productpage` is `productpage-v1`.
        let found = by_name.or_else(|| {
            state
                .workloads
                .iter()
                .find(|w| w.spec.namespace == namespace && w.spec.service == name)
        });
        match found {
            Some(w) => Some(w.sidecar.outbound().clone()),
            None if from == OUTSIDER => Some(self.outsider.clone()),
            None => None,
        }
    }

    /// Lists every running workload with its address.
    pub fn workloads(&self) -> Vec<(WorkloadSpec, IpAddr)> {
        let state = self.state.lock().expect("lab lock is never poisoned");
        state
            .workloads
            .iter()
            .map(|w| (w.spec.clone(), w.sidecar.ip()))
            .collect()
    }

    /// Stops every workload.
    pub fn shutdown(&self) {
        let mut state = self.state.lock().expect("lab lock is never poisoned");
        for running in state.workloads.drain(..) {
            running.sidecar.stop();
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// True for a Kubernetes DNS-1123 label: 1-63 lower-case letters, digits or '-', starting
/// and ending with a letter or digit.
fn is_dns_label(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// Picks a /24 in 127.0.0.0/8 away from 127.0.0.x, which the default layout uses.
fn random_base() -> Ipv4Addr {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        ^ std::process::id().wrapping_mul(2654435761);
    let second = 1 + (seed % 250) as u8;
    let third = ((seed >> 8) % 250) as u8;
    Ipv4Addr::new(127, second, third, 10)
}

/// Wraps an axum router as the sidecar's app service.
pub fn app_service(router: Router) -> AppService {
    let service = tower::ServiceExt::<http::Request<AppBody>>::map_response(
        router,
        |response: http::Response<axum::body::Body>| {
            response.map(|body| body.map_err(box_error).boxed_unsync())
        },
    );
    AppService::new(service)
}

fn box_error(error: axum::Error) -> mesh::sidecar::inbound::BoxError {
    Box::new(error)
}

/// `base` with the TCP handler that `app` needs, if any.
pub fn inbound_options(app: AppKind, mut base: InboundOptions) -> InboundOptions {
    if app == AppKind::TcpEcho {
        base.tcp_app = Some(TcpApp(Arc::new(|stream| {
            Box::pin(apps::tcp_echo::serve(stream))
        })));
    }
    base
}

/// The sidecar's outbound client as the apps' [`HttpSend`].
pub struct MeshHttp(pub OutboundClient);

impl HttpSend for MeshHttp {
    fn send(&self, request: http::Request<Bytes>) -> SendFuture<'_> {
        Box::pin(async move {
            self.0
                .send(request, SendOptions::default())
                .await
                .map(|(response, _)| response)
                .map_err(|e| e.into())
        })
    }
}
