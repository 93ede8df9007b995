//! What the mesh knows about a workload: its place in the cluster, as policies see it.

use std::collections::BTreeMap;

use crate::identity::{SpiffeId, DEFAULT_TRUST_DOMAIN};

/// A workload (a pod, in Kubernetes terms) as selectors and scopes see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadMeta {
    /// Unique name within its namespace, e.g. `reviews-v2`.
    pub name: String,
    pub namespace: String,
    pub service_account: String,
    pub labels: BTreeMap<String, String>,
    /// Services that select this workload, with their port mappings.
    pub services: Vec<ServiceRef>,
    /// False for workloads outside the mesh (no sidecar, no identity).
    pub sidecar: bool,
}

/// A Kubernetes-style service in front of a workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceRef {
    pub name: String,
    pub namespace: String,
    pub ports: Vec<ServicePort>,
}

/// One service port and the workload (container) port it forwards to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    pub port: u16,
    pub target_port: u16,
    /// Port name, e.g. `http`; legacy `targets[].ports[].name` refers to it.
    pub name: String,
}

impl WorkloadMeta {
    pub fn spiffe_id(&self) -> SpiffeId {
        SpiffeId::new(DEFAULT_TRUST_DOMAIN, &self.namespace, &self.service_account)
    }

    /// Returns the ports the workload listens on: every service port's target
    /// port, sorted, each once.
    pub fn target_ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self
            .services
            .iter()
            .flat_map(|s| s.ports.iter().map(|p| p.target_port))
            .collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    }

    /// Service ports that forward to `workload_port`, with their service.
    pub fn service_ports_for(
        &self,
        workload_port: u16,
    ) -> impl Iterator<Item = (&ServiceRef, &ServicePort)> {
        self.services.iter().flat_map(move |svc| {
            svc.ports
                .iter()
                .filter(move |p| p.target_port == workload_port)
                .map(move |p| (svc, p))
        })
    }
}

impl ServicePort {
    /// True for a TCP (non-HTTP) port, by Istio's port naming convention: `tcp` or `tcp-*`.
    pub fn is_tcp(&self) -> bool {
        self.name == "tcp" || self.name.starts_with("tcp-")
    }
}

impl ServiceRef {
    /// Fully qualified host, `<name>.<namespace>.svc.cluster.local`.
    pub fn fqdn(&self) -> String {
        format!("{}.{}.svc.cluster.local", self.name, self.namespace)
    }
}
