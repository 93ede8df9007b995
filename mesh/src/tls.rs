//! rustls configuration for workload-to-workload mutual TLS with SPIFFE SVIDs.
//!
//! SVIDs carry no DNS name, so server certificates are checked the way Istio checks
//! them: the chain must lead to the mesh root, and the URI SAN must be one of the
//! identities the destination service runs as (secure naming). That last check happens
//! after the handshake, in the outbound sidecar, because one client configuration serves
//! every destination.

use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::identity::ca::Svid;
use crate::identity::SpiffeId;

/// ALPN protocol the sidecars negotiate, as plain HTTP/1.1 inside the tunnel.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// Returns the ring provider, the one crypto provider of the whole tree.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The mesh roots a workload trusts.
#[derive(Clone, Debug)]
pub struct TrustBundle {
    roots: Arc<RootCertStore>,
}

impl TrustBundle {
    pub fn new(roots: impl IntoIterator<Item = CertificateDer<'static>>) -> Self {
        let mut store = RootCertStore::empty();
        for root in roots {
            store
                .add(root)
                .expect("mesh roots are certificates this crate generated");
        }
        Self {
            roots: Arc::new(store),
        }
    }

    pub fn roots(&self) -> &Arc<RootCertStore> {
        &self.roots
    }
}

/// A workload's current SVID, swapped in place when it is renewed so that new handshakes
/// pick up the new certificate while existing connections carry on.
#[derive(Debug)]
pub struct SvidCell {
    id: SpiffeId,
    current: ArcSwap<CertifiedKey>,
    not_after: ArcSwap<SystemTime>,
}

impl SvidCell {
    pub fn new(svid: &Svid) -> Arc<Self> {
        Arc::new(Self {
            id: svid.id.clone(),
            current: ArcSwap::new(svid.certified_key()),
            not_after: ArcSwap::from_pointee(svid.not_after),
        })
    }

    pub fn id(&self) -> &SpiffeId {
        &self.id
    }

    pub fn replace(&self, svid: &Svid) {
        self.current.store(svid.certified_key());
        self.not_after.store(Arc::new(svid.not_after));
    }

    pub fn not_after(&self) -> SystemTime {
        **self.not_after.load()
    }

    pub fn leaf(&self) -> CertificateDer<'static> {
        self.current.load().cert[0].clone()
    }
}

impl ResolvesServerCert for SvidCell {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

impl ResolvesClientCert for SvidCell {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Server side of mutual TLS: the workload's SVID, and a client certificate that chains
/// to the mesh root is required.
pub fn server_config(svid: Arc<SvidCell>, bundle: &TrustBundle) -> Arc<ServerConfig> {
    let provider = provider();
    let verifier =
        WebPkiClientVerifier::builder_with_provider(bundle.roots().clone(), provider.clone())
            .build()
            .expect("a non-empty mesh root store builds a client verifier");
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("ring supports TLS 1.3")
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(svid);
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Arc::new(config)
}

/// Client side of mutual TLS (`ISTIO_MUTUAL` and auto mTLS): presents the workload's SVID
/// and accepts any server SVID from the mesh root. The caller checks the server's identity.
pub fn client_config(
    svid: Arc<SvidCell>,
    bundle: &TrustBundle,
    resumption: bool,
) -> Arc<ClientConfig> {
    let provider = provider();
    let verifier = Arc::new(MeshServerVerifier::new(bundle.clone(), &provider));
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("ring supports TLS 1.3")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(svid);
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    if !resumption {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Arc::new(config)
}

/// Client side of one-way TLS (`SIMPLE`): no client certificate.
pub fn simple_client_config(bundle: &TrustBundle) -> Arc<ClientConfig> {
    let provider = provider();
    let verifier = Arc::new(MeshServerVerifier::new(bundle.clone(), &provider));
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("ring supports TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Arc::new(config)
}

/// Builds a server verifier that accepts any certificate chaining to `bundle`'s roots, with no
/// name check (for SIMPLE and MUTUAL DestinationRules, whose peers may be mesh workloads).
pub fn chain_only_verifier(bundle: &TrustBundle) -> Arc<dyn ServerCertVerifier> {
    Arc::new(MeshServerVerifier::new(bundle.clone(), &provider()))
}

/// Returns a certificate's serial number in hex, as `openssl x509 -serial` prints it.
pub fn serial_of(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(cert).ok()?;
    Some(hex::encode_upper(cert.raw_serial()))
}

/// Returns the SPIFFE ID in a leaf certificate's URI SAN, if it has exactly one that parses.
pub fn spiffe_id_of(cert: &CertificateDer<'_>) -> Option<SpiffeId> {
    let (_, cert) = X509Certificate::from_der(cert).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    let mut uris = san
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) => Some(*uri),
            _ => None,
        });
    let uri = uris.next()?;
    if uris.next().is_some() {
        return None;
    }
    uri.parse().ok()
}

/// Verifies a server chain against the mesh roots without checking a DNS name, because
/// SVIDs have none.
#[derive(Debug)]
struct MeshServerVerifier {
    bundle: TrustBundle,
    algorithms: WebPkiSupportedAlgorithms,
}

impl MeshServerVerifier {
    fn new(bundle: TrustBundle, provider: &CryptoProvider) -> Self {
        Self {
            bundle,
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for MeshServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|e| rustls::Error::General(format!("invalid server certificate: {e}")))?;
        cert.verify_for_usage(
            self.algorithms.all,
            &self.bundle.roots().roots,
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .map_err(|e| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
                Arc::new(WebpkiError(e.to_string())),
            )))
        })?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct WebpkiError(String);
