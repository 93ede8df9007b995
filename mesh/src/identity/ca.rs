//! The mesh CA: signs workload certificate signing requests into X.509 SVIDs.
//!
//! SVIDs follow Istio's shape: ECDSA P-256, an empty subject, exactly one URI SAN
//! (`spiffe://<trust domain>/ns/<namespace>/sa/<service account>`), usable for both
//! server and client authentication. The CA ignores whatever identity a CSR asks for
//! and signs only the SPIFFE ID its caller vouches for.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
    PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;

use super::SpiffeId;

/// Default SVID lifetime. Istio issues 24 h certificates; the lab can go down to seconds.
pub const DEFAULT_SVID_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Backdating of `notBefore`, so that peers with slightly different clocks accept an SVID
/// at once.
const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("invalid certificate signing request: {0}")]
    InvalidCsr(#[source] rcgen::Error),
    #[error("signing failed: {0}")]
    Signing(#[source] rcgen::Error),
    #[error("invalid stored CA certificate or key: {0}")]
    InvalidStored(#[source] rcgen::Error),
}

/// An X.509 SVID with its private key.
#[derive(Clone)]
pub struct Svid {
    pub id: SpiffeId,
    /// Leaf first, then the CA certificate.
    pub chain: Vec<CertificateDer<'static>>,
    pub key: Arc<PrivatePkcs8KeyDer<'static>>,
    pub not_after: SystemTime,
}

impl std::fmt::Debug for Svid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Svid")
            .field("id", &self.id.to_string())
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl Svid {
    /// The SVID as rustls wants it for signing handshakes.
    pub fn certified_key(&self) -> Arc<CertifiedKey> {
        let key = PrivateKeyDer::Pkcs8(self.key.as_ref().clone_key());
        let signing_key = rustls::crypto::ring::sign::any_ecdsa_type(&key)
            .expect("SVID keys are ECDSA P-256 PKCS#8, which ring supports");
        Arc::new(CertifiedKey::new(self.chain.clone(), signing_key))
    }
}

/// A self-signed mesh root that issues SVIDs.
pub struct Ca {
    trust_domain: String,
    key: KeyPair,
    cert: rcgen::Certificate,
}

impl Ca {
    /// Creates a new root for `trust_domain`, valid for ten years.
    pub fn new(trust_domain: &str) -> Self {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .expect("ring generates ECDSA P-256 keys");
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, trust_domain);
        dn.push(DnType::CommonName, "meshlab root CA");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = SystemTime::now();
        params.not_before = (now - CLOCK_SKEW_ALLOWANCE).into();
        params.not_after = (now + Duration::from_secs(10 * 365 * 24 * 3600)).into();
        let cert = params
            .self_signed(&key)
            .expect("a fresh CA certificate can be self-signed");
        Self {
            trust_domain: trust_domain.to_string(),
            key,
            cert,
        }
    }

    /// Loads a root kept on disk: its certificate and its private key, both PEM.
    pub fn from_pem(trust_domain: &str, cert_pem: &str, key_pem: &str) -> Result<Self, CaError> {
        let key = KeyPair::from_pem(key_pem).map_err(CaError::InvalidStored)?;
        let params =
            CertificateParams::from_ca_cert_pem(cert_pem).map_err(CaError::InvalidStored)?;
        // Re-signing the parsed parameters with the same key reproduces the certificate's
        // contents; workloads trust it by subject and key, which are unchanged.
        let cert = params.self_signed(&key).map_err(CaError::InvalidStored)?;
        Ok(Self {
            trust_domain: trust_domain.to_string(),
            key,
            cert,
        })
    }

    /// The root's private key as PEM, for a control plane that keeps its root on disk.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The root certificate that every workload trusts.
    pub fn root(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    pub fn root_pem(&self) -> String {
        self.cert.pem()
    }

    /// Signs `csr_pem` into an SVID for `id`, valid for `lifetime`.
    ///
    /// Only the CSR's public key is used: its subject and SANs are replaced, so a workload
    /// cannot obtain an identity other than the one its caller vouched for.
    pub fn sign_csr(
        &self,
        csr_pem: &str,
        id: &SpiffeId,
        lifetime: Duration,
    ) -> Result<Vec<CertificateDer<'static>>, CaError> {
        let csr =
            CertificateSigningRequestParams::from_pem(csr_pem).map_err(CaError::InvalidCsr)?;
        let params = self.leaf_params(id, lifetime)?;
        let cert = params
            .signed_by(&csr.public_key, &self.cert, &self.key)
            .map_err(CaError::Signing)?;
        Ok(vec![cert.der().clone(), self.root()])
    }

    /// Generates a key pair and CSR for `id` and signs it: the in-process path, which still
    /// goes through a real CSR so it exercises the same checks as a remote workload.
    pub fn issue(&self, id: &SpiffeId, lifetime: Duration) -> Result<Svid, CaError> {
        let (key, csr_pem) = generate_csr(id)?;
        let chain = self.sign_csr(&csr_pem, id, lifetime)?;
        Ok(Svid {
            id: id.clone(),
            chain,
            key: Arc::new(PrivatePkcs8KeyDer::from(key.serialize_der())),
            not_after: SystemTime::now() + lifetime,
        })
    }

    /// Issues a TLS server certificate for `dns_names` with a fresh key, for a control plane
    /// API that workloads reach by host name; it is not an SVID.
    pub fn issue_server_cert(
        &self,
        dns_names: &[&str],
        lifetime: Duration,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), CaError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(CaError::Signing)?;
        let mut params = base_leaf_params(lifetime);
        for name in dns_names {
            let name = (*name).try_into().map_err(CaError::Signing)?;
            params.subject_alt_names.push(SanType::DnsName(name));
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .map_err(CaError::Signing)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Ok((vec![cert.der().clone(), self.root()], key))
    }

    fn leaf_params(&self, id: &SpiffeId, lifetime: Duration) -> Result<CertificateParams, CaError> {
        let mut params = base_leaf_params(lifetime);
        let uri = id.uri().try_into().map_err(CaError::Signing)?;
        params.subject_alt_names = vec![SanType::URI(uri)];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        Ok(params)
    }
}

/// A leaf with an empty subject, valid from a minute ago for `lifetime`.
fn base_leaf_params(lifetime: Duration) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    let now = SystemTime::now();
    params.not_before = (now - CLOCK_SKEW_ALLOWANCE).into();
    params.not_after = (now + lifetime).into();
    params
}

/// Creates a fresh P-256 key pair and a PEM CSR naming `id`.
pub fn generate_csr(id: &SpiffeId) -> Result<(KeyPair, String), CaError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(CaError::Signing)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    let uri = id.uri().try_into().map_err(CaError::Signing)?;
    params.subject_alt_names = vec![SanType::URI(uri)];
    let csr = params.serialize_request(&key).map_err(CaError::Signing)?;
    let pem = csr.pem().map_err(CaError::Signing)?;
    Ok((key, pem))
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::*;

    #[test]
    fn svid_has_istio_shape() {
        let ca = Ca::new("cluster.local");
        let id = SpiffeId::new("cluster.local", "default", "bookinfo-details");
        let svid = ca.issue(&id, Duration::from_secs(60)).unwrap();
        let (_, cert) = X509Certificate::from_der(&svid.chain[0]).unwrap();
        assert!(
            cert.subject().iter().next().is_none(),
            "subject must be empty"
        );
        let san = cert.subject_alternative_name().unwrap().unwrap();
        let uris: Vec<_> = san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::URI(u) => Some(*u),
                _ => None,
            })
            .collect();
        assert_eq!(
            uris,
            vec!["spiffe://cluster.local/ns/default/sa/bookinfo-details"]
        );
        assert_eq!(san.value.general_names.len(), 1);
        let validity = cert.validity().time_to_expiration().unwrap();
        assert!(validity.whole_seconds() <= 60);
    }

    #[test]
    fn csr_identity_is_ignored() {
        let ca = Ca::new("cluster.local");
        let asked = SpiffeId::new("cluster.local", "istio-system", "admin");
        let vouched = SpiffeId::new("cluster.local", "default", "sleep");
        let (_, csr) = generate_csr(&asked).unwrap();
        let chain = ca
            .sign_csr(&csr, &vouched, Duration::from_secs(60))
            .unwrap();
        let (_, cert) = X509Certificate::from_der(&chain[0]).unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        assert_eq!(
            san.value.general_names,
            vec![GeneralName::URI(
                "spiffe://cluster.local/ns/default/sa/sleep"
            )]
        );
    }
}
