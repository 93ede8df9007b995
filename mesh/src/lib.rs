//! meshlab's mesh runtime: a sidecar that runs inside each service's process.
//!
//! It gives every workload a SPIFFE identity from a mesh CA, terminates and originates
//! mutual TLS, and enforces Istio's security resources as they are written in YAML.

pub mod config;
pub mod identity;
pub mod workload;
