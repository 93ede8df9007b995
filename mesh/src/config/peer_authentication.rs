//! `security.istio.io` `PeerAuthentication` (v1beta1 and v1), as written in YAML.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{FieldError, WorkloadSelector};

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeerAuthenticationSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtls: Option<PeerMtls>,
    /// Keyed by **workload** (container) port, not service port. YAML writes the keys as
    /// integers or strings (`80:` or `"80":`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub port_level_mtls: BTreeMap<PortKey, PeerMtls>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeerMtls {
    #[serde(default)]
    pub mode: MtlsMode,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MtlsMode {
    /// Inherit from the next wider scope; PERMISSIVE at mesh scope.
    #[default]
    Unset,
    Disable,
    Permissive,
    Strict,
}

/// A `portLevelMtls` key. Range-checked by [`validate`], so an out-of-range port is reported
/// with its path rather than as a type error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortKey(pub u32);

impl PeerAuthenticationSpec {
    /// True when the selector names at least one label, which makes this a workload-scope
    /// policy.
    pub fn has_selector(&self) -> bool {
        self.selector.as_ref().is_some_and(|s| !s.is_empty())
    }

    pub fn mode(&self) -> MtlsMode {
        self.mtls.map(|m| m.mode).unwrap_or_default()
    }

    /// Returns the `portLevelMtls` mode for a workload port, if the port has an entry.
    pub fn port_mode(&self, workload_port: u16) -> Option<MtlsMode> {
        self.port_level_mtls
            .get(&PortKey(u32::from(workload_port)))
            .map(|m| m.mode)
    }
}

/// Checks what the schema cannot: `portLevelMtls` needs a non-empty selector (the CEL rule of
/// Istio 1.22+ CRDs) and its keys must be ports.
pub(crate) fn validate(spec: &PeerAuthenticationSpec) -> Result<(), FieldError> {
    if !spec.port_level_mtls.is_empty() && !spec.has_selector() {
        return Err(FieldError::new(
            "spec.portLevelMtls",
            "portLevelMtls requires a selector with at least one label",
        )
        .with_hint(
            "add selector.matchLabels naming the workload, or use mtls.mode for all ports",
        ));
    }
    for PortKey(port) in spec.port_level_mtls.keys() {
        if !(1..=65535).contains(port) {
            return Err(FieldError::new(
                format!("spec.portLevelMtls.{port}"),
                format!("port {port} is out of range 1..65535"),
            ));
        }
    }
    Ok(())
}

impl fmt::Display for MtlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MtlsMode::Unset => "UNSET",
            MtlsMode::Disable => "DISABLE",
            MtlsMode::Permissive => "PERMISSIVE",
            MtlsMode::Strict => "STRICT",
        })
    }
}

// === impl PortKey ===

impl Serialize for PortKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for PortKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PortKeyVisitor)
    }
}

struct PortKeyVisitor;

impl Visitor<'_> for PortKeyVisitor {
    type Value = PortKey;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a port number")
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<PortKey, E> {
        u32::try_from(value)
            .map(PortKey)
            .map_err(|_| E::custom(format!("port {value} is out of range 1..65535")))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<PortKey, E> {
        u32::try_from(value)
            .map(PortKey)
            .map_err(|_| E::custom(format!("port {value} is out of range 1..65535")))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<PortKey, E> {
        value
            .trim()
            .parse::<u32>()
            .map(PortKey)
            .map_err(|_| E::custom(format!("invalid port {value:?}, expected a port number")))
    }
}
