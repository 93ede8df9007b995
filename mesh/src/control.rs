//! The control plane: the mesh CA, the policy store and service discovery, with an HTTP
//! API that `meshctl` talks to.

pub mod api;
pub mod remote;
pub mod server;
pub mod token;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::authn::issuer::{LabIssuer, MintError, MintRequest, LAB_ISSUER};
use crate::authn::jwks::JwksCache;
use crate::identity::ca::{Ca, CaError, Svid, DEFAULT_SVID_LIFETIME};
use crate::identity::{SpiffeId, DEFAULT_TRUST_DOMAIN};
use crate::registry::Registry;
use crate::sidecar::MeshContext;
use crate::store::ConfigStore;
use crate::tls::{SvidCell, TrustBundle};

/// Default address of the control plane's API: istiod's port, on loopback.
pub const DEFAULT_API_ADDR: &str = "127.0.0.1:15012";

/// Settings of a control plane.
#[derive(Clone, Debug)]
pub struct ControlPlaneOptions {
    pub trust_domain: String,
    /// Lifetime of the SVIDs the CA issues; each is renewed at half its lifetime.
    pub svid_lifetime: Duration,
}

impl Default for ControlPlaneOptions {
    fn default() -> Self {
        Self {
            trust_domain: DEFAULT_TRUST_DOMAIN.to_string(),
            svid_lifetime: DEFAULT_SVID_LIFETIME,
        }
    }
}

/// CA, policy store and registry of one mesh. Cheap to clone.
#[derive(Clone)]
pub struct ControlPlane {
    ca: Arc<Ca>,
    /// Signing key of the lab's tokens, made at start-up.
    issuer: Arc<LabIssuer>,
    context: MeshContext,
    options: ControlPlaneOptions,
}

impl ControlPlane {
    pub fn new(options: ControlPlaneOptions) -> Self {
        let ca = Arc::new(Ca::new(&options.trust_domain));
        let issuer = Arc::new(LabIssuer::generate());
        let jwks = JwksCache::new();
        issuer.register(&jwks);
        info!(
            issuer = LAB_ISSUER,
            kid = issuer.kid(),
            "Lab token issuer ready"
        );
        let context = MeshContext {
            store: ConfigStore::default(),
            registry: Registry::default(),
            bundle: TrustBundle::new([ca.root()]),
            jwks,
            policy_version: Default::default(),
        };
        Self {
            ca,
            issuer,
            context,
            options,
        }
    }

    /// Creates a control plane around an existing CA, such as a root kept on disk.
    pub fn with_ca(options: ControlPlaneOptions, ca: Arc<Ca>) -> Self {
        let mut this = Self::new(options);
        this.context.bundle = TrustBundle::new([ca.root()]);
        this.ca = ca;
        this
    }

    /// Replaces the lab issuer, for a control plane that keeps its signing key on disk.
    pub fn with_issuer(mut self, issuer: LabIssuer) -> Self {
        issuer.register(&self.context.jwks);
        info!(
            issuer = LAB_ISSUER,
            kid = issuer.kid(),
            "Lab token issuer loaded"
        );
        self.issuer = Arc::new(issuer);
        self
    }

    pub fn context(&self) -> &MeshContext {
        &self.context
    }

    pub fn store(&self) -> &ConfigStore {
        &self.context.store
    }

    pub fn registry(&self) -> &Registry {
        &self.context.registry
    }

    pub fn ca(&self) -> &Ca {
        &self.ca
    }

    /// The lab issuer, which mints tokens with `iss` [`LAB_ISSUER`].
    pub fn issuer(&self) -> &LabIssuer {
        &self.issuer
    }

    /// Mints a token; see [`MintRequest`] for the defaults.
    pub fn mint_token(&self, request: &MintRequest) -> Result<String, MintError> {
        self.issuer.mint(request)
    }

    pub fn svid_lifetime(&self) -> Duration {
        self.options.svid_lifetime
    }

    /// Issues an SVID for `id` with the configured lifetime.
    pub fn issue(&self, id: &SpiffeId) -> Result<Svid, CaError> {
        let svid = self.ca.issue(id, self.options.svid_lifetime)?;
        info!(id = %id, lifetime = ?self.options.svid_lifetime, "SVID issued");
        Ok(svid)
    }

    /// Renews `cell`'s SVID at half its lifetime until `shutdown`, as Istio's agent rotates
    /// certificates well before expiry; connections already open keep their old one.
    pub fn spawn_rotation(&self, cell: Arc<SvidCell>, shutdown: CancellationToken) {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let remaining = cell
                    .not_after()
                    .duration_since(SystemTime::now())
                    .unwrap_or_default();
                let wait = (remaining / 2).max(Duration::from_millis(100));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.cancelled() => return,
                }
                match this.issue(cell.id()) {
                    Ok(svid) => cell.replace(&svid),
                    Err(error) => warn!(%error, id = %cell.id(), "SVID renewal failed, retrying"),
                }
            }
        });
    }
}
