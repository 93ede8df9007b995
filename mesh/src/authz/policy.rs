//! AuthorizationPolicy rules compiled into matchers, and their evaluation against a request.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::sync::Arc;

use http::HeaderName;
use ipnet::IpNet;
use tracing::warn;

use super::matcher::{ip_in_blocks, parse_ip_block, parse_port, Glob, PathMatch, StringMatch};
use super::{normalize_path, HttpAttributes, RequestAttributes};
use crate::config::authorization_policy::{Action, Condition, Operation, Rule, Source};

/// A policy that applies to one workload, ready to match requests.
#[derive(Debug)]
pub(crate) struct CompiledPolicy {
    /// `namespace/name`, as decisions and logs name the policy.
    pub(crate) id: Arc<str>,
    pub(crate) action: Action,
    pub(crate) rules: Vec<CompiledRule>,
}

#[derive(Debug)]
pub(crate) struct CompiledRule {
    /// Set when the rule can never match: an unknown `when` key in any action, or an
    /// invalid value in an ALLOW rule.
    never: bool,
    /// Whether the rule reads any HTTP-only attribute; on a TCP connection such an ALLOW
    /// rule never matches.
    uses_http: bool,
    from: Option<Vec<Vec<Field>>>,
    to: Option<Vec<Vec<Field>>>,
    when: Vec<CompiledCondition>,
}

/// One set list field of a source or operation, such as `principals` or `notPaths`.
#[derive(Debug)]
struct Field {
    negated: bool,
    kind: FieldKind,
}

#[derive(Debug)]
enum FieldKind {
    Principals(Vec<StringMatch>),
    RequestPrincipals(Vec<StringMatch>),
    Namespaces(Vec<NamespaceMatch>),
    ServiceAccounts(Vec<ServiceAccount>),
    IpBlocks(Vec<IpNet>),
    RemoteIpBlocks(Vec<IpNet>),
    Hosts(Vec<StringMatch>),
    Ports(Vec<u16>),
    Methods(Vec<StringMatch>),
    Paths(Vec<PathMatch>),
}

/// A `namespaces` value. Values without `*` compare the peer's namespace directly; values
/// with `*` follow Istio's regex on the whole principal, `*/ns/<value>/*`.
#[derive(Debug)]
enum NamespaceMatch {
    Exact(Box<str>),
    Glob(Glob),
}

/// A `serviceAccounts` value, `namespace/name`, with a bare name resolved against the
/// policy's namespace.
#[derive(Debug)]
struct ServiceAccount {
    namespace: Box<str>,
    name: Box<str>,
}

#[derive(Debug)]
struct CompiledCondition {
    attribute: Attribute,
    values: Option<Values>,
    not_values: Option<Values>,
}

/// The request attribute a `when` key names.
#[derive(Debug)]
pub(crate) enum Attribute {
    /// `request.headers[Name]`; `None` when the name is not a valid header name, so no
    /// request carries it.
    RequestHeader(Option<HeaderName>),
    SourceIp,
    RemoteIp,
    SourceNamespace,
    SourcePrincipal,
    SourceServiceAccount,
    SourceTrustDomain,
    AuthPrincipal,
    AuthAudiences,
    AuthPresenter,
    /// `request.auth.claims[a][b]`: the path of claim names into the JWT payload.
    AuthClaims(Vec<Box<str>>),
    DestinationIp,
    DestinationPort,
    ConnectionSni,
}

#[derive(Debug)]
enum Values {
    Strings(Vec<StringMatch>),
    Namespaces(Vec<NamespaceMatch>),
    ServiceAccounts(Vec<ServiceAccount>),
    Ips(Vec<IpNet>),
    Ports(Vec<u16>),
}

/// `when` keys meshlab evaluates, for error messages.
pub(crate) const SUPPORTED_WHEN_KEYS: &str = "request.headers[<name>], source.ip, remote.ip, \
     source.namespace, source.principal, source.serviceAccount, source.trustDomain, \
     request.auth.principal, request.auth.audiences, request.auth.presenter, \
     request.auth.claims[<name>], destination.ip, destination.port, connection.sni";

impl Attribute {
    /// Parses a `when` key, rejecting keys that Istio rejects or that meshlab cannot
    /// evaluate.
    pub(crate) fn parse(key: &str) -> Result<Self, String> {
        let attribute = match key {
            "source.ip" => Attribute::SourceIp,
            "remote.ip" => Attribute::RemoteIp,
            "source.namespace" => Attribute::SourceNamespace,
            "source.principal" => Attribute::SourcePrincipal,
            "source.serviceAccount" => Attribute::SourceServiceAccount,
            "source.trustDomain" => Attribute::SourceTrustDomain,
            "request.auth.principal" => Attribute::AuthPrincipal,
            "request.auth.audiences" => Attribute::AuthAudiences,
            "request.auth.presenter" => Attribute::AuthPresenter,
            "destination.ip" => Attribute::DestinationIp,
            "destination.port" => Attribute::DestinationPort,
            "connection.sni" => Attribute::ConnectionSni,
            "destination.namespace" => {
                return Err(format!(
                    "unsupported key {key:?}: the policy's metadata.namespace selects the \
                     destination namespace"
                ))
            }
            "destination.name" | "destination.user" => {
                return Err(format!(
                    "unsupported key {key:?}: it existed only in the v1alpha1 RBAC API"
                ))
            }
            _ => return Self::parse_bracketed(key),
        };
        Ok(attribute)
    }

    fn parse_bracketed(key: &str) -> Result<Self, String> {
        if let Some(rest) = key.strip_prefix("request.headers") {
            let names = parse_brackets(key, rest)?;
            let [name] = names.as_slice() else {
                return Err(format!(
                    "invalid key {key:?}: expected request.headers[<name>] with one name"
                ));
            };
            return Ok(Attribute::RequestHeader(
                HeaderName::from_bytes(name.as_bytes()).ok(),
            ));
        }
        if let Some(rest) = key.strip_prefix("request.auth.claims") {
            let names = parse_brackets(key, rest)?;
            return Ok(Attribute::AuthClaims(
                names.into_iter().map(Into::into).collect(),
            ));
        }
        if key.starts_with("destination.labels") {
            return Err(format!(
                "unsupported key {key:?}: the policy's selector selects destination labels"
            ));
        }
        if key.starts_with("experimental.envoy.filters.") {
            return Err(format!(
                "unsupported key {key:?}: meshlab has no Envoy filter metadata"
            ));
        }
        Err(format!(
            "unknown key {key:?}: supported keys are {SUPPORTED_WHEN_KEYS}"
        ))
    }

    /// Returns whether the attribute exists only for HTTP requests.
    fn is_http_only(&self) -> bool {
        matches!(
            self,
            Attribute::RequestHeader(_)
                | Attribute::AuthPrincipal
                | Attribute::AuthAudiences
                | Attribute::AuthPresenter
                | Attribute::AuthClaims(_)
        )
    }
}

/// Splits `[a][b]` into `["a", "b"]`; every name must be non-empty and free of brackets.
fn parse_brackets<'k>(key: &str, mut rest: &'k str) -> Result<Vec<&'k str>, String> {
    let invalid = || format!("invalid key {key:?}: expected names in brackets, like a[b]");
    let mut names = Vec::new();
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[').ok_or_else(invalid)?;
        let end = inner.find(']').ok_or_else(invalid)?;
        let name = &inner[..end];
        if name.is_empty() || name.contains('[') {
            return Err(invalid());
        }
        names.push(name);
        rest = &inner[end + 1..];
    }
    if names.is_empty() {
        return Err(invalid());
    }
    Ok(names)
}

/// Parses a `serviceAccounts` value: `namespace/name`, or `name` in `policy_namespace`.
pub(crate) fn parse_service_account(
    value: &str,
    policy_namespace: &str,
) -> Result<(String, String), String> {
    if value.contains('*') {
        return Err(format!(
            "invalid service account {value:?}: wildcards are not supported"
        ));
    }
    let (namespace, name) = match value.split_once('/') {
        Some((namespace, name)) => (namespace, name),
        None => (policy_namespace, value),
    };
    if namespace.is_empty() || name.is_empty() || name.contains('/') {
        return Err(format!(
            "invalid service account {value:?}: expected <namespace>/<name> or <name>"
        ));
    }
    Ok((namespace.to_string(), name.to_string()))
}

// === compilation ===

impl CompiledPolicy {
    pub(crate) fn compile(
        id: Arc<str>,
        policy_namespace: &str,
        action: Action,
        rules: &[Rule],
    ) -> Self {
        let rules = rules
            .iter()
            .enumerate()
            .map(|(index, rule)| {
                let mut builder = RuleBuilder {
                    policy: &id,
                    index,
                    policy_namespace,
                    strict: action == Action::Allow,
                    never: false,
                };
                builder.build(rule)
            })
            .collect();
        Self { id, action, rules }
    }

    /// Returns the index of the first rule that matches, if any.
    pub(crate) fn first_match(&self, request: &RequestView<'_, '_>) -> Option<usize> {
        let strict = self.action == Action::Allow;
        self.rules
            .iter()
            .position(|rule| rule.matches(request, strict))
    }
}

/// Compiles one rule. Values that validation would have rejected still get Istio's
/// treatment: an ALLOW rule with one never matches, other actions drop the field.
struct RuleBuilder<'p> {
    policy: &'p str,
    index: usize,
    policy_namespace: &'p str,
    strict: bool,
    never: bool,
}

impl RuleBuilder<'_> {
    fn build(&mut self, rule: &Rule) -> CompiledRule {
        let from = rule.from.as_ref().map(|from| {
            from.iter()
                .map(|entry| self.source_fields(&entry.source))
                .collect::<Vec<_>>()
        });
        let to = rule.to.as_ref().map(|to| {
            to.iter()
                .map(|entry| self.operation_fields(&entry.operation))
                .collect::<Vec<_>>()
        });
        let when: Vec<_> = rule
            .when
            .iter()
            .flatten()
            .filter_map(|condition| self.condition(condition))
            .collect();
        let uses_http = from
            .iter()
            .chain(to.iter())
            .flatten()
            .flatten()
            .any(Field::is_http_only)
            || when.iter().any(|c| c.attribute.is_http_only());
        CompiledRule {
            never: self.never,
            uses_http,
            from,
            to,
            when,
        }
    }

    fn reject(&mut self, field: &str, message: String) {
        warn!(
            policy = self.policy,
            rule = self.index,
            field,
            error = %message,
            "Invalid authorization policy value"
        );
        if self.strict {
            self.never = true;
        }
    }

    fn source_fields(&mut self, source: &Source) -> Vec<Field> {
        let mut fields = Vec::new();
        let namespace = self.policy_namespace;
        let lists = [
            (&source.principals, &source.not_principals, "principals"),
            (
                &source.request_principals,
                &source.not_request_principals,
                "requestPrincipals",
            ),
            (&source.namespaces, &source.not_namespaces, "namespaces"),
            (
                &source.service_accounts,
                &source.not_service_accounts,
                "serviceAccounts",
            ),
            (&source.ip_blocks, &source.not_ip_blocks, "ipBlocks"),
            (
                &source.remote_ip_blocks,
                &source.not_remote_ip_blocks,
                "remoteIpBlocks",
            ),
        ];
        for (positive, negative, name) in lists {
            for (values, negated) in [(positive, false), (negative, true)] {
                let Some(values) = values.as_deref().filter(|v| !v.is_empty()) else {
                    continue;
                };
                let kind = match name {
                    "principals" => Ok(FieldKind::Principals(string_matchers(values))),
                    "requestPrincipals" => {
                        Ok(FieldKind::RequestPrincipals(string_matchers(values)))
                    }
                    "namespaces" => Ok(FieldKind::Namespaces(namespace_matchers(values))),
                    "serviceAccounts" => {
                        service_accounts(values, namespace).map(FieldKind::ServiceAccounts)
                    }
                    "ipBlocks" => ip_blocks(values).map(FieldKind::IpBlocks),
                    _ => ip_blocks(values).map(FieldKind::RemoteIpBlocks),
                };
                self.push_field(&mut fields, name, negated, kind);
            }
        }
        fields
    }

    fn operation_fields(&mut self, operation: &Operation) -> Vec<Field> {
        let mut fields = Vec::new();
        let lists = [
            (&operation.hosts, &operation.not_hosts, "hosts"),
            (&operation.ports, &operation.not_ports, "ports"),
            (&operation.methods, &operation.not_methods, "methods"),
            (&operation.paths, &operation.not_paths, "paths"),
        ];
        for (positive, negative, name) in lists {
            for (values, negated) in [(positive, false), (negative, true)] {
                let Some(values) = values.as_deref().filter(|v| !v.is_empty()) else {
                    continue;
                };
                let kind = match name {
                    "hosts" => Ok(FieldKind::Hosts(
                        values
                            .iter()
                            .map(|v| StringMatch::new_ignore_case(v))
                            .collect(),
                    )),
                    "ports" => ports(values).map(FieldKind::Ports),
                    "methods" => Ok(FieldKind::Methods(string_matchers(values))),
                    _ => Ok(FieldKind::Paths(
                        values.iter().map(|v| PathMatch::new(v)).collect(),
                    )),
                };
                self.push_field(&mut fields, name, negated, kind);
            }
        }
        fields
    }

    fn push_field(
        &mut self,
        fields: &mut Vec<Field>,
        name: &str,
        negated: bool,
        kind: Result<FieldKind, String>,
    ) {
        match kind {
            Ok(kind) => fields.push(Field { negated, kind }),
            Err(message) => self.reject(name, message),
        }
    }

    fn condition(&mut self, condition: &Condition) -> Option<CompiledCondition> {
        let attribute = match Attribute::parse(&condition.key) {
            Ok(attribute) => attribute,
            Err(message) => {
                // An unknown key makes the whole rule invalid, whatever the action.
                warn!(
                    policy = self.policy,
                    rule = self.index,
                    error = %message,
                    "Invalid authorization policy condition"
                );
                self.never = true;
                return None;
            }
        };
        let compile = |values: &Option<Vec<String>>| -> Result<Option<Values>, String> {
            match values.as_deref().filter(|v| !v.is_empty()) {
                Some(values) => {
                    condition_values(&attribute, values, self.policy_namespace).map(Some)
                }
                None => Ok(None),
            }
        };
        let compiled = compile(&condition.values).and_then(|values| {
            compile(&condition.not_values).map(|not_values| (values, not_values))
        });
        match compiled {
            Ok((None, None)) => {
                self.reject("when", format!("{:?} has no values", condition.key));
                None
            }
            Ok((values, not_values)) => Some(CompiledCondition {
                attribute,
                values,
                not_values,
            }),
            Err(message) => {
                self.reject("when", message);
                None
            }
        }
    }
}

fn string_matchers(values: &[String]) -> Vec<StringMatch> {
    values.iter().map(|v| StringMatch::new(v)).collect()
}

fn namespace_matchers(values: &[String]) -> Vec<NamespaceMatch> {
    values
        .iter()
        .map(|value| {
            if value.contains('*') {
                NamespaceMatch::Glob(Glob::new(&format!("*/ns/{value}/*")))
            } else {
                NamespaceMatch::Exact(value.as_str().into())
            }
        })
        .collect()
}

fn service_accounts(values: &[String], namespace: &str) -> Result<Vec<ServiceAccount>, String> {
    values
        .iter()
        .map(|value| {
            parse_service_account(value, namespace).map(|(namespace, name)| ServiceAccount {
                namespace: namespace.into(),
                name: name.into(),
            })
        })
        .collect()
}

fn ip_blocks(values: &[String]) -> Result<Vec<IpNet>, String> {
    values.iter().map(|v| parse_ip_block(v)).collect()
}

fn ports(values: &[String]) -> Result<Vec<u16>, String> {
    values.iter().map(|v| parse_port(v)).collect()
}

fn condition_values(
    attribute: &Attribute,
    values: &[String],
    policy_namespace: &str,
) -> Result<Values, String> {
    let compiled = match attribute {
        Attribute::SourceIp | Attribute::RemoteIp | Attribute::DestinationIp => {
            Values::Ips(ip_blocks(values)?)
        }
        Attribute::DestinationPort => Values::Ports(ports(values)?),
        Attribute::SourceNamespace => Values::Namespaces(namespace_matchers(values)),
        Attribute::SourceServiceAccount => {
            Values::ServiceAccounts(service_accounts(values, policy_namespace)?)
        }
        _ => Values::Strings(string_matchers(values)),
    };
    Ok(compiled)
}

// === evaluation ===

/// A request plus the derived values that several matchers read, each computed at most
/// once and only when some matcher needs it.
pub(crate) struct RequestView<'r, 'a> {
    pub(crate) attributes: &'r RequestAttributes<'a>,
    principal: OnceCell<Option<String>>,
    path: OnceCell<Option<Cow<'a, str>>>,
}

impl<'r, 'a> RequestView<'r, 'a> {
    pub(crate) fn new(attributes: &'r RequestAttributes<'a>) -> Self {
        Self {
            attributes,
            principal: OnceCell::new(),
            path: OnceCell::new(),
        }
    }

    fn http(&self) -> Option<&HttpAttributes<'a>> {
        self.attributes.http.as_ref()
    }

    /// Returns the peer principal, `<trust domain>/ns/<namespace>/sa/<name>`, or `None`
    /// without mTLS.
    fn principal(&self) -> Option<&str> {
        self.principal
            .get_or_init(|| self.attributes.source_principal.map(|id| id.principal()))
            .as_deref()
    }

    fn path(&self) -> Option<&str> {
        self.path
            .get_or_init(|| self.http().map(|http| normalize_path(http.path)))
            .as_deref()
    }

    fn auth(&self) -> Option<&super::RequestAuth> {
        self.http().and_then(|http| http.auth)
    }
}

impl CompiledRule {
    fn matches(&self, request: &RequestView<'_, '_>, strict: bool) -> bool {
        let tcp = request.attributes.http.is_none();
        if self.never || (tcp && strict && self.uses_http) {
            return false;
        }
        // On TCP, a non-ALLOW rule keeps only the fields that TCP can evaluate.
        let skip_http = tcp;
        let any_entry = |entries: &Option<Vec<Vec<Field>>>| match entries {
            None => true,
            Some(entries) => entries.iter().any(|fields| {
                fields
                    .iter()
                    .all(|field| (skip_http && field.is_http_only()) || field.matches(request))
            }),
        };
        any_entry(&self.from)
            && any_entry(&self.to)
            && self.when.iter().all(|condition| {
                (skip_http && condition.attribute.is_http_only()) || condition.matches(request)
            })
    }
}

impl Field {
    fn is_http_only(&self) -> bool {
        matches!(
            self.kind,
            FieldKind::RequestPrincipals(_)
                | FieldKind::Hosts(_)
                | FieldKind::Methods(_)
                | FieldKind::Paths(_)
        )
    }

    /// Matches the field: a positive field needs some value to match the attribute, and a
    /// negated one needs none to. An absent attribute matches no value.
    fn matches(&self, request: &RequestView<'_, '_>) -> bool {
        self.any_value_matches(request) != self.negated
    }

    fn any_value_matches(&self, request: &RequestView<'_, '_>) -> bool {
        let attributes = request.attributes;
        let http = request.http();
        match &self.kind {
            FieldKind::Principals(matchers) => any_string(matchers, request.principal()),
            FieldKind::RequestPrincipals(matchers) => any_string(
                matchers,
                request.auth().and_then(|auth| auth.principal.as_deref()),
            ),
            FieldKind::Namespaces(matchers) => any_namespace(matchers, request),
            FieldKind::ServiceAccounts(accounts) => any_service_account(accounts, request),
            FieldKind::IpBlocks(blocks) => ip_in_blocks(blocks, attributes.source_ip),
            FieldKind::RemoteIpBlocks(blocks) => ip_in_blocks(blocks, attributes.remote_ip),
            FieldKind::Hosts(matchers) => {
                http.is_some_and(|http| matchers.iter().any(|m| m.matches_ignore_case(http.host)))
            }
            FieldKind::Ports(ports) => ports.contains(&attributes.destination_port),
            FieldKind::Methods(matchers) => any_string(matchers, http.map(|http| http.method)),
            FieldKind::Paths(matchers) => request
                .path()
                .is_some_and(|path| matchers.iter().any(|m| m.matches(path))),
        }
    }
}

impl CompiledCondition {
    /// `values` must match and `notValues` must not; an absent attribute matches no value,
    /// so a condition with only `notValues` holds for it.
    fn matches(&self, request: &RequestView<'_, '_>) -> bool {
        let positive = self
            .values
            .as_ref()
            .is_none_or(|values| self.any_value_matches(values, request));
        positive
            && self
                .not_values
                .as_ref()
                .is_none_or(|values| !self.any_value_matches(values, request))
    }

    fn any_value_matches(&self, values: &Values, request: &RequestView<'_, '_>) -> bool {
        let attributes = request.attributes;
        let peer = attributes.source_principal;
        let auth = request.auth();
        match (&self.attribute, values) {
            (Attribute::SourceIp, Values::Ips(blocks)) => {
                ip_in_blocks(blocks, attributes.source_ip)
            }
            (Attribute::RemoteIp, Values::Ips(blocks)) => {
                ip_in_blocks(blocks, attributes.remote_ip)
            }
            (Attribute::DestinationIp, Values::Ips(blocks)) => {
                ip_in_blocks(blocks, attributes.destination_ip)
            }
            (Attribute::DestinationPort, Values::Ports(ports)) => {
                ports.contains(&attributes.destination_port)
            }
            (Attribute::SourceNamespace, Values::Namespaces(matchers)) => {
                any_namespace(matchers, request)
            }
            (Attribute::SourceServiceAccount, Values::ServiceAccounts(accounts)) => {
                any_service_account(accounts, request)
            }
            (attribute, Values::Strings(matchers)) => match attribute {
                Attribute::SourcePrincipal => any_string(matchers, request.principal()),
                Attribute::SourceTrustDomain => {
                    any_string(matchers, peer.map(|id| id.trust_domain.as_str()))
                }
                Attribute::ConnectionSni => any_string(matchers, attributes.sni),
                Attribute::AuthPrincipal => {
                    any_string(matchers, auth.and_then(|a| a.principal.as_deref()))
                }
                Attribute::AuthPresenter => {
                    any_string(matchers, auth.and_then(|a| a.presenter.as_deref()))
                }
                Attribute::AuthAudiences => auth.is_some_and(|auth| {
                    auth.audiences
                        .iter()
                        .any(|audience| any_string(matchers, Some(audience)))
                }),
                Attribute::AuthClaims(path) => {
                    auth.is_some_and(|auth| claim_matches(&auth.claims, path, matchers))
                }
                Attribute::RequestHeader(name) => {
                    header_matches(request.http(), name.as_ref(), matchers)
                }
                _ => false,
            },
            _ => false,
        }
    }
}

fn any_string(matchers: &[StringMatch], value: Option<&str>) -> bool {
    value.is_some_and(|value| matchers.iter().any(|m| m.matches(value)))
}

fn any_namespace(matchers: &[NamespaceMatch], request: &RequestView<'_, '_>) -> bool {
    let Some(peer) = request.attributes.source_principal else {
        return false;
    };
    matchers.iter().any(|matcher| match matcher {
        NamespaceMatch::Exact(namespace) => peer.namespace == **namespace,
        NamespaceMatch::Glob(glob) => request.principal().is_some_and(|p| glob.matches(p)),
    })
}

fn any_service_account(accounts: &[ServiceAccount], request: &RequestView<'_, '_>) -> bool {
    request.attributes.source_principal.is_some_and(|peer| {
        accounts.iter().any(|account| {
            peer.namespace == *account.namespace && peer.service_account == *account.name
        })
    })
}

/// Matches a header's value; repeated headers are joined with `,` first, as Envoy does.
fn header_matches(
    http: Option<&HttpAttributes<'_>>,
    name: Option<&HeaderName>,
    matchers: &[StringMatch],
) -> bool {
    let (Some(http), Some(name)) = (http, name) else {
        return false;
    };
    let mut values = http
        .headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok());
    let Some(first) = values.next() else {
        return false;
    };
    let Some(second) = values.next() else {
        return any_string(matchers, Some(first));
    };
    let mut joined = format!("{first},{second}");
    for value in values {
        joined.push(',');
        joined.push_str(value);
    }
    any_string(matchers, Some(&joined))
}

/// Claims whose space-separated string values are compared word by word (Istio 1.22+).
const SPACE_DELIMITED_CLAIMS: [&str; 2] = ["scope", "permission"];

/// Matches the claim at `path`. A string is compared whole, except that a top-level
/// `scope` or `permission` is split on spaces. A list matches when any string element
/// matches. Numbers, booleans and objects never match.
fn claim_matches(claims: &serde_json::Value, path: &[Box<str>], matchers: &[StringMatch]) -> bool {
    let mut value = claims;
    for name in path {
        match value.get(&**name) {
            Some(inner) => value = inner,
            None => return false,
        }
    }
    match value {
        serde_json::Value::String(text) => {
            let split = path.len() == 1 && SPACE_DELIMITED_CLAIMS.contains(&&*path[0]);
            if split {
                text.split(' ').any(|word| any_string(matchers, Some(word)))
            } else {
                any_string(matchers, Some(text))
            }
        }
        serde_json::Value::Array(items) => items
            .iter()
            .filter_map(serde_json::Value::as_str)
            .any(|item| any_string(matchers, Some(item))),
        _ => false,
    }
}
