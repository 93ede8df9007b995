//! Service discovery: which workloads stand behind a service name, as Kubernetes DNS and
//! endpoints would tell a sidecar.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use crate::workload::{ServiceRef, WorkloadMeta};

const CLUSTER_SUFFIX: &str = "svc.cluster.local";

/// One workload instance behind a service.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub workload: Arc<WorkloadMeta>,
}

/// A service with its endpoints, picked round robin.
#[derive(Debug)]
pub struct ServiceEntry {
    pub service: ServiceRef,
    pub endpoints: Vec<Endpoint>,
    next: AtomicUsize,
}

impl ServiceEntry {
    /// Picks the next endpoint, round robin, as kube-proxy spreads connections.
    pub fn pick(&self) -> Option<&Endpoint> {
        if self.endpoints.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.endpoints.len();
        Some(&self.endpoints[i])
    }
}

/// The mesh's service registry. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    services: Arc<RwLock<BTreeMap<String, Arc<ServiceEntry>>>>,
}

impl Registry {
    /// Adds `workload` at `ip` as an endpoint of each of its services.
    pub fn register(&self, workload: Arc<WorkloadMeta>, ip: IpAddr) {
        let mut services = self
            .services
            .write()
            .expect("registry lock is never poisoned");
        for svc in &workload.services {
            let fqdn = svc.fqdn();
            let mut endpoints = services
                .get(&fqdn)
                .map(|entry| entry.endpoints.clone())
                .unwrap_or_default();
            endpoints.retain(|e| {
                !(e.workload.name == workload.name && e.workload.namespace == workload.namespace)
            });
            endpoints.push(Endpoint {
                ip,
                workload: workload.clone(),
            });
            services.insert(
                fqdn,
                Arc::new(ServiceEntry {
                    service: svc.clone(),
                    endpoints,
                    next: AtomicUsize::new(0),
                }),
            );
        }
    }

    /// Removes the workload named `name` in `namespace` from every service.
    pub fn deregister(&self, namespace: &str, name: &str) {
        let mut services = self
            .services
            .write()
            .expect("registry lock is never poisoned");
        let fqdns: Vec<String> = services.keys().cloned().collect();
        for fqdn in fqdns {
            let entry = &services[&fqdn];
            if !entry
                .endpoints
                .iter()
                .any(|e| e.workload.name == name && e.workload.namespace == namespace)
            {
                continue;
            }
            let endpoints: Vec<Endpoint> = entry
                .endpoints
                .iter()
                .filter(|e| !(e.workload.name == name && e.workload.namespace == namespace))
                .cloned()
                .collect();
            if endpoints.is_empty() {
                services.remove(&fqdn);
            } else {
                let service = entry.service.clone();
                services.insert(
                    fqdn,
                    Arc::new(ServiceEntry {
                        service,
                        endpoints,
                        next: AtomicUsize::new(0),
                    }),
                );
            }
        }
    }

    /// Resolves `host` as Kubernetes DNS does for a client in `client_namespace`:
    /// `details`, `details.default`, `details.default.svc` and the full name all work.
    pub fn resolve(&self, host: &str, client_namespace: &str) -> Option<Arc<ServiceEntry>> {
        let fqdn = qualify(host, client_namespace);
        let services = self
            .services
            .read()
            .expect("registry lock is never poisoned");
        services.get(&fqdn).cloned()
    }

    pub fn services(&self) -> Vec<Arc<ServiceEntry>> {
        let services = self
            .services
            .read()
            .expect("registry lock is never poisoned");
        services.values().cloned().collect()
    }

    /// Every workload known to the registry, once each.
    pub fn workloads(&self) -> Vec<(Arc<WorkloadMeta>, IpAddr)> {
        let mut seen = BTreeMap::new();
        for entry in self.services() {
            for e in &entry.endpoints {
                seen.entry((e.workload.namespace.clone(), e.workload.name.clone()))
                    .or_insert_with(|| (e.workload.clone(), e.ip));
            }
        }
        seen.into_values().collect()
    }
}

/// Expands a service host to `<name>.<namespace>.svc.cluster.local`.
pub fn qualify(host: &str, client_namespace: &str) -> String {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let labels: Vec<&str> = host.split('.').collect();
    match labels.as_slice() {
        [name] => format!("{name}.{client_namespace}.{CLUSTER_SUFFIX}"),
        [name, ns] => format!("{name}.{ns}.{CLUSTER_SUFFIX}"),
        [name, ns, "svc"] => format!("{name}.{ns}.{CLUSTER_SUFFIX}"),
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualify_forms() {
        assert_eq!(
            qualify("details", "default"),
            "details.default.svc.cluster.local"
        );
        assert_eq!(
            qualify("httpbin.foo", "default"),
            "httpbin.foo.svc.cluster.local"
        );
        assert_eq!(
            qualify("httpbin.foo.svc", "bar"),
            "httpbin.foo.svc.cluster.local"
        );
        assert_eq!(
            qualify("Details.Default.svc.cluster.local.", "x"),
            "details.default.svc.cluster.local"
        );
    }
}
