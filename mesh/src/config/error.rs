//! Errors for rejected configuration files.

use std::fmt;

/// A rejected configuration file: the first problem found, located by file, document and
/// field path.
///
/// Displays as `policies/mtls.yaml: document 2 (PeerAuthentication default/default):
/// spec.mtls.mode: unknown variant "STRCT", expected one of UNSET, DISABLE, PERMISSIVE,
/// STRICT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// File name or other label of the source, as the caller passed it.
    pub origin: String,
    /// 1-based index of the document in the file, or 0 when the error concerns the whole file.
    pub document: usize,
    /// `Kind namespace/name` of the document, when it got far enough to read them.
    pub resource: Option<String>,
    /// Field path from the document root, such as `spec.mtls.mode`. It is empty when the error
    /// has no field (for example broken YAML).
    pub path: String,
    pub message: String,
    /// How to fix it, when the fix is obvious.
    pub hint: Option<String>,
}

impl std::error::Error for ConfigError {}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if self.document > 0 {
            write!(f, ": document {}", self.document)?;
        }
        if let Some(resource) = &self.resource {
            write!(f, " ({resource})")?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "; {hint}")?;
        }
        Ok(())
    }
}

/// A problem with one field of a resource `spec`, before the file and document are known.
///
/// `path` runs from the document root, such as `spec.rules[0].to[0].operation.methods`. A path
/// that starts with neither `spec` nor `metadata` is taken as relative to `spec`, and an empty
/// one means the spec as a whole.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FieldError {
    pub path: String,
    pub message: String,
    pub hint: Option<String>,
}

impl FieldError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl FieldError {
    /// Returns the path from the document root, applying the `spec`-relative rule above.
    pub fn document_path(&self) -> String {
        let rooted = ["spec", "metadata"].iter().any(|root| {
            self.path == *root
                || self.path.starts_with(&format!("{root}."))
                || self.path.starts_with(&format!("{root}["))
        });
        if rooted {
            self.path.clone()
        } else if self.path.is_empty() {
            "spec".to_string()
        } else if self.path.starts_with('[') {
            format!("spec{}", self.path)
        } else {
            format!("spec.{}", self.path)
        }
    }
}
