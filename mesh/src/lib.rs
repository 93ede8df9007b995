//! meshlab's mesh runtime: a sidecar that runs inside each service's process.
//!
//! It gives every workload a SPIFFE identity from a mesh CA, terminates and originates
//! mutual TLS, and enforces Istio's security resources as they are written in YAML.

pub mod authn;
pub mod authz;
pub mod client_tls;
pub mod config;
pub mod control;
pub mod ctl;
pub mod describe;
pub mod identity;
pub mod peer_authn;
pub mod registry;
pub mod sidecar;
pub mod store;
pub mod tls;
pub mod workload;
