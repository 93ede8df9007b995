//! The networked control plane's CA: the mesh root kept on disk, so that a restarted
//! control plane signs with the root every running workload already trusts.
//!
//! Leaf SVIDs have the same shape as [`crate::identity::ca::Ca`]'s: ECDSA P-256, an empty
//! subject and exactly one URI SAN, usable for server and client authentication.
//! TODO: `identity::ca::Ca` has no constructor from a stored key, so this module keeps its
//! own copy of the leaf parameters; merge the two once `Ca` can be loaded from PEM.

use std::path::Path;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
    PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tracing::info;

use crate::identity::SpiffeId;

/// Backdating of `notBefore` for peers whose clocks run slightly behind.
const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(60);

const ROOT_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

const CERT_FILE: &str = "ca-cert.pem";
const KEY_FILE: &str = "ca-key.pem";

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("reading or writing CA file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid CA file {path}: {source}")]
    InvalidStored {
        path: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("invalid certificate signing request: {0}")]
    InvalidCsr(#[source] rcgen::Error),
    #[error("certificate signing request asks for {asked}, but the token is for {allowed}")]
    WrongIdentity { asked: String, allowed: String },
    #[error("signing failed: {0}")]
    Signing(#[source] rcgen::Error),
}

/// The mesh root with its key.
pub struct Pki {
    key: KeyPair,
    /// Re-created from the stored PEM on load; signs with the stored key and subject.
    cert: rcgen::Certificate,
    /// The root as stored, which workloads trust.
    root_pem: String,
}

impl Pki {
    /// Loads the root from `dir`, or creates one for `trust_domain` and stores it there.
    pub fn load_or_create(dir: &Path, trust_domain: &str) -> Result<Self, PkiError> {
        let cert_path = dir.join(CERT_FILE);
        let key_path = dir.join(KEY_FILE);
        if cert_path.exists() && key_path.exists() {
            let root_pem = read(&cert_path)?;
            let key_pem = read(&key_path)?;
            let invalid = |source| PkiError::InvalidStored {
                path: cert_path.display().to_string(),
                source,
            };
            let key = KeyPair::from_pem(&key_pem).map_err(invalid)?;
            let params = CertificateParams::from_ca_cert_pem(&root_pem).map_err(invalid)?;
            let cert = params.self_signed(&key).map_err(invalid)?;
            info!(path = %cert_path.display(), "Mesh root loaded");
            return Ok(Self {
                key,
                cert,
                root_pem,
            });
        }
        let pki = Self::generate(trust_domain)?;
        std::fs::create_dir_all(dir).map_err(|source| PkiError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        write_private(&key_path, &pki.key.serialize_pem())?;
        write(&cert_path, &pki.root_pem)?;
        info!(path = %cert_path.display(), "Mesh root created");
        Ok(pki)
    }

    /// Creates a root that lives only in memory.
    pub fn generate(trust_domain: &str) -> Result<Self, PkiError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(PkiError::Signing)?;
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
        params.not_after = (now + ROOT_LIFETIME).into();
        let cert = params.self_signed(&key).map_err(PkiError::Signing)?;
        let root_pem = cert.pem();
        Ok(Self {
            key,
            cert,
            root_pem,
        })
    }

    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    /// The stored root in DER form.
    pub fn root_der(&self) -> CertificateDer<'static> {
        parse_pem_certs(&self.root_pem)
            .into_iter()
            .next()
            .expect("the stored root is one PEM certificate")
    }

    /// Signs `csr_pem` into an SVID for `id`.
    ///
    /// A CSR that names any URI other than `id` is rejected rather than silently rewritten,
    /// so that a workload asking for someone else's identity shows up in the log.
    pub fn sign_csr(
        &self,
        csr_pem: &str,
        id: &SpiffeId,
        lifetime: Duration,
    ) -> Result<Vec<CertificateDer<'static>>, PkiError> {
        let csr =
            CertificateSigningRequestParams::from_pem(csr_pem).map_err(PkiError::InvalidCsr)?;
        let expected = id.uri();
        for san in &csr.params.subject_alt_names {
            let asked = match san {
                SanType::URI(uri) => uri.as_str().to_string(),
                SanType::DnsName(name) => format!("DNS:{}", name.as_str()),
                other => format!("{other:?}"),
            };
            if asked != expected {
                return Err(PkiError::WrongIdentity {
                    asked,
                    allowed: expected,
                });
            }
        }
        let mut params = self.leaf_params(lifetime);
        let uri = expected.try_into().map_err(PkiError::Signing)?;
        params.subject_alt_names = vec![SanType::URI(uri)];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params
            .signed_by(&csr.public_key, &self.cert, &self.key)
            .map_err(PkiError::Signing)?;
        Ok(vec![cert.der().clone(), self.root_der()])
    }

    /// Issues the API server's own certificate for `dns_names`, with a fresh key.
    pub fn issue_server_cert(
        &self,
        dns_names: &[&str],
        lifetime: Duration,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), PkiError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(PkiError::Signing)?;
        let mut params = self.leaf_params(lifetime);
        for name in dns_names {
            let name = (*name).try_into().map_err(PkiError::Signing)?;
            params.subject_alt_names.push(SanType::DnsName(name));
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .map_err(PkiError::Signing)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Ok((vec![cert.der().clone(), self.root_der()], key))
    }

    fn leaf_params(&self, lifetime: Duration) -> CertificateParams {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.is_ca = IsCa::ExplicitNoCa;
        params.use_authority_key_identifier_extension = true;
        let now = SystemTime::now();
        params.not_before = (now - CLOCK_SKEW_ALLOWANCE).into();
        params.not_after = (now + lifetime).into();
        params
    }
}

/// Every certificate in `pem`, in order; anything that is not a certificate is skipped.
pub fn parse_pem_certs(pem: &str) -> Vec<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .filter_map(Result::ok)
        .collect()
}

fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.display().to_string(),
        source,
    })
}

fn write(path: &Path, text: &str) -> Result<(), PkiError> {
    std::fs::write(path, text).map_err(|source| PkiError::Io {
        path: path.display().to_string(),
        source,
    })
}

fn write_private(path: &Path, text: &str) -> Result<(), PkiError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| PkiError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)
}
