//! The networked control plane's CA: the mesh root kept on disk, so that a restarted
//! control plane signs with the root every running workload already trusts. Signing is
//! [`Ca`]'s; this module adds the files and the check that a CSR asks for nothing but the
//! identity its bootstrap token names.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{CertificateSigningRequestParams, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tracing::info;

use crate::identity::ca::{Ca, CaError};
use crate::identity::SpiffeId;

const CERT_FILE: &str = "ca-cert.pem";
const KEY_FILE: &str = "ca-key.pem";

/// Why the control plane's CA could not be loaded, stored or used.
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
    #[error(transparent)]
    Ca(#[from] CaError),
}

/// The mesh root and its CA.
pub struct Pki {
    ca: Arc<Ca>,
    root_pem: String,
}

impl Pki {
    /// Loads the root kept in `dir`, or creates one there.
    pub fn load_or_create(dir: &Path, trust_domain: &str) -> Result<Self, PkiError> {
        let cert_path = dir.join(CERT_FILE);
        let key_path = dir.join(KEY_FILE);
        if cert_path.exists() && key_path.exists() {
            let root_pem = read(&cert_path)?;
            let key_pem = read(&key_path)?;
            let ca =
                Ca::from_pem(trust_domain, &root_pem, &key_pem).map_err(|error| PkiError::Io {
                    path: cert_path.display().to_string(),
                    source: std::io::Error::new(std::io::ErrorKind::InvalidData, error),
                })?;
            info!(path = %cert_path.display(), "Mesh root loaded");
            return Ok(Self {
                ca: Arc::new(ca),
                root_pem,
            });
        }
        let pki = Self::generate(trust_domain)?;
        std::fs::create_dir_all(dir).map_err(|source| PkiError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        write_private(&key_path, &pki.ca.key_pem())?;
        write(&cert_path, &pki.root_pem)?;
        info!(path = %cert_path.display(), "Mesh root created");
        Ok(pki)
    }

    /// Creates a root that lives in memory only.
    pub fn generate(trust_domain: &str) -> Result<Self, PkiError> {
        let ca = Ca::new(trust_domain);
        let root_pem = ca.root_pem();
        Ok(Self {
            ca: Arc::new(ca),
            root_pem,
        })
    }

    pub fn ca(&self) -> &Arc<Ca> {
        &self.ca
    }

    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    pub fn root_der(&self) -> CertificateDer<'static> {
        self.ca.root()
    }

    /// Signs `csr_pem` for `id` after checking that every SAN it asks for is `id`: a
    /// workload asking for another identity is refused, not silently corrected.
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
        Ok(self.ca.sign_csr(csr_pem, id, lifetime)?)
    }

    /// Issues the API server's own certificate for `dns_names`, with a fresh key.
    pub fn issue_server_cert(
        &self,
        dns_names: &[&str],
        lifetime: Duration,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), PkiError> {
        Ok(self.ca.issue_server_cert(dns_names, lifetime)?)
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
