//! Value matchers compiled from policy strings, and request path normalization.
//!
//! Every matcher is built once when a policy is compiled, so matching a request compares
//! bytes and never parses a policy value.

use std::borrow::Cow;
use std::net::IpAddr;

use ipnet::IpNet;

/// Istio's string match: exact, `abc*` prefix, `*abc` suffix, or `*` for "present and
/// non-empty". A `*` anywhere else is an ordinary character.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StringMatch {
    Exact(Box<str>),
    Prefix(Box<str>),
    Suffix(Box<str>),
    Present,
}

impl StringMatch {
    pub(crate) fn new(value: &str) -> Self {
        if value == "*" {
            StringMatch::Present
        } else if let Some(prefix) = value.strip_suffix('*') {
            StringMatch::Prefix(prefix.into())
        } else if let Some(suffix) = value.strip_prefix('*') {
            StringMatch::Suffix(suffix.into())
        } else {
            StringMatch::Exact(value.into())
        }
    }

    /// Builds a matcher for a case-insensitive field, such as `hosts`.
    pub(crate) fn new_ignore_case(value: &str) -> Self {
        Self::new(&value.to_ascii_lowercase())
    }

    pub(crate) fn matches(&self, value: &str) -> bool {
        match self {
            StringMatch::Exact(expected) => value == &**expected,
            StringMatch::Prefix(prefix) => value.starts_with(&**prefix),
            StringMatch::Suffix(suffix) => value.ends_with(&**suffix),
            StringMatch::Present => !value.is_empty(),
        }
    }

    /// Matches `value` ignoring ASCII case; the matcher must come from `new_ignore_case`.
    pub(crate) fn matches_ignore_case(&self, value: &str) -> bool {
        let value = value.as_bytes();
        match self {
            StringMatch::Exact(expected) => value.eq_ignore_ascii_case(expected.as_bytes()),
            StringMatch::Prefix(prefix) => {
                value.len() >= prefix.len()
                    && value[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
            }
            StringMatch::Suffix(suffix) => {
                value.len() >= suffix.len()
                    && value[value.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
            }
            StringMatch::Present => !value.is_empty(),
        }
    }
}

/// A pattern in which every `*` matches any run of characters, `/` included.
///
/// Istio turns `namespaces: ["foo"]` into the regex `.*/ns/foo/.*` on the peer's URI SAN,
/// and each `*` of the value becomes `.*`. This type matches that regex without a regex
/// engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Glob {
    /// Literal pieces between the `*`s; the pattern starts and ends with a literal piece,
    /// which may be empty.
    pieces: Vec<Box<str>>,
}

impl Glob {
    pub(crate) fn new(pattern: &str) -> Self {
        Self {
            pieces: pattern.split('*').map(Into::into).collect(),
        }
    }

    pub(crate) fn matches(&self, value: &str) -> bool {
        let (first, rest) = match self.pieces.split_first() {
            Some(split) => split,
            None => return value.is_empty(),
        };
        let Some(mut remaining) = value.strip_prefix(&**first) else {
            return false;
        };
        let Some((last, middle)) = rest.split_last() else {
            return remaining.is_empty();
        };
        // The leftmost occurrence of each middle piece leaves the most room for the
        // pieces after it, so a greedy scan finds a match whenever one exists.
        for piece in middle {
            match remaining.find(&**piece) {
                Some(at) => remaining = &remaining[at + piece.len()..],
                None => return false,
            }
        }
        remaining.ends_with(&**last)
    }
}

/// Parses an `ipBlocks` entry or an IP `when` value: an address or a CIDR range.
pub(crate) fn parse_ip_block(value: &str) -> Result<IpNet, String> {
    if value.contains('/') {
        value
            .parse::<IpNet>()
            .map_err(|_| format!("invalid CIDR range {value:?}"))
    } else {
        value
            .parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|_| format!("invalid IP address {value:?}"))
    }
}

/// Parses a port given as a string of decimal digits, `0` to `65535`.
pub(crate) fn parse_port(value: &str) -> Result<u16, String> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid port {value:?}: expected decimal digits"));
    }
    value
        .parse::<u16>()
        .map_err(|_| format!("invalid port {value:?}: expected 0 to 65535"))
}

/// Returns whether any block contains `ip`. IPv4-mapped IPv6 addresses count as IPv4.
pub(crate) fn ip_in_blocks(blocks: &[IpNet], ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    blocks.iter().any(|block| block.contains(&ip))
}

/// One `paths` entry: an Istio string match, or a path template with `{*}` and `{**}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PathMatch {
    String(StringMatch),
    Template(PathTemplate),
}

impl PathMatch {
    pub(crate) fn new(value: &str) -> Self {
        if is_path_template(value) {
            PathMatch::Template(PathTemplate::new(value))
        } else {
            PathMatch::String(StringMatch::new(value))
        }
    }

    pub(crate) fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::String(matcher) => matcher.matches(path),
            PathMatch::Template(template) => template.matches(path),
        }
    }
}

pub(crate) fn is_path_template(value: &str) -> bool {
    value.contains("{*}") || value.contains("{**}")
}

/// A path template: `{*}` is one non-empty path segment, `{**}` is any rest of the path
/// (possibly empty, `/` included) and may only be the last operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PathTemplate {
    /// Literals and `{*}` operators before `{**}`, in order.
    head: Vec<TemplatePart>,
    /// The literal text after `{**}`, when the template has one.
    tail: Option<Box<str>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum TemplatePart {
    Literal(Box<str>),
    Segment,
}

impl PathTemplate {
    /// Compiles a template; malformed templates are rejected by validation, and here any
    /// text that is not exactly `{*}` or `{**}` is taken literally.
    pub(crate) fn new(template: &str) -> Self {
        let (head_text, tail) = match template.split_once("{**}") {
            Some((head, tail)) => (head, Some(tail.into())),
            None => (template, None),
        };
        let mut head = Vec::new();
        for (index, literal) in head_text.split("{*}").enumerate() {
            if index > 0 {
                head.push(TemplatePart::Segment);
            }
            if !literal.is_empty() {
                head.push(TemplatePart::Literal(literal.into()));
            }
        }
        Self { head, tail }
    }

    pub(crate) fn matches(&self, path: &str) -> bool {
        let mut remaining = path;
        for part in &self.head {
            match part {
                TemplatePart::Literal(literal) => match remaining.strip_prefix(&**literal) {
                    Some(rest) => remaining = rest,
                    None => return false,
                },
                TemplatePart::Segment => {
                    let end = remaining.find('/').unwrap_or(remaining.len());
                    if end == 0 {
                        return false;
                    }
                    remaining = &remaining[end..];
                }
            }
        }
        match &self.tail {
            Some(tail) => remaining.ends_with(&**tail),
            None => remaining.is_empty(),
        }
    }
}

/// Reduces a request target to the path that `paths` rules see.
///
/// This follows Envoy's default normalization in Istio (`pathNormalization: BASE`): drop
/// the query and fragment, take the path of an absolute-form target, turn `\` into `/`,
/// decode percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`), and resolve `.`
/// and `..` segments as RFC 3986 section 5.2.4 does. `//` is kept and `%2F` stays encoded,
/// as in that mode. Returns the input unchanged, without allocating, when it is already
/// normal.
pub fn normalize_path(target: &str) -> Cow<'_, str> {
    let path = strip_to_path(target);
    // Asterisk-form (`OPTIONS *`) and other targets without a leading `/` have no
    // segments to resolve.
    if !path.starts_with('/') || !needs_normalization(path) {
        return Cow::Borrowed(path);
    }
    let decoded = decode_unreserved(&path.replace('\\', "/"));
    Cow::Owned(remove_dot_segments(&decoded))
}

fn strip_to_path(target: &str) -> &str {
    let end = target.find(['?', '#']).unwrap_or(target.len());
    let path = &target[..end];
    if path.starts_with('/') {
        return path;
    }
    // Absolute form, `http://host:port/path`: the path starts at the first `/` after the
    // authority, and is `/` when there is none.
    match path.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |at| &rest[at..]),
        None => path,
    }
}

fn needs_normalization(path: &str) -> bool {
    path.contains(['\\', '%'])
        || path
            .split('/')
            .any(|segment| segment == "." || segment == "..")
}

fn decode_unreserved(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' && index + 2 < bytes.len() {
            let decoded = hex_value(bytes[index + 1])
                .zip(hex_value(bytes[index + 2]))
                .map(|(high, low)| high * 16 + low);
            if let Some(byte) = decoded.filter(|b| is_unreserved(*b)) {
                out.push(byte as char);
                index += 3;
                continue;
            }
        }
        let len = utf8_len(bytes[index]);
        out.push_str(&path[index..index + len]);
        index += len;
    }
    out
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

fn remove_dot_segments(path: &str) -> String {
    // `path` starts with `/`, so the first segment is the empty root, which `..` never
    // removes.
    let mut output: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    let last = segments.len() - 1;
    for (index, segment) in segments.iter().enumerate() {
        match *segment {
            "." | ".." => {
                if *segment == ".." && output.len() > 1 {
                    output.pop();
                }
                // A trailing `.` or `..` names a directory, so the result keeps a
                // trailing `/`.
                if index == last {
                    output.push("");
                }
            }
            _ => output.push(segment),
        }
    }
    output.join("/")
}
