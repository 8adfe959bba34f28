//! The http preset, for HTTP services routed as TCP: sends
//! `GET PATH HTTP/1.1` with `Host`, `User-Agent: tcp-canary` and `Connection: close`,
//! and reads the version from a response header (`header:NAME`, the default
//! `header:x-version`) or with a pattern over the response as it arrives (status line,
//! headers and body).

use std::fmt::Write;

use super::error::ProbeError;
use super::line::LineProbe;
use super::pattern::{Matcher, compile};

/// The default source of the version: the `x-version` response header.
pub const DEFAULT_VERSION_FROM: &str = "header:x-version";
/// The default path.
pub const DEFAULT_PATH: &str = "/";
/// The longest path or host accepted, in bytes.
pub const MAX_FIELD_LEN: usize = 2048;

/// The http preset as the user gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSpec {
    /// The request path (starts with `/`).
    pub path: String,
    /// The `Host` header; `None` = the target's host (with its port unless 80, or 443
    /// with TLS).
    pub host: Option<String>,
    /// `header:NAME`, or a pattern over the response; `None` = [`DEFAULT_VERSION_FROM`].
    pub version_from: Option<String>,
    /// The most reply bytes read.
    pub max_reply: usize,
}

/// Header names are RFC 9110 tokens.
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A request-line or header value: printable ASCII, no spaces.
fn is_field(text: &str) -> bool {
    !text.is_empty() && text.len() <= MAX_FIELD_LEN && text.bytes().all(|b| b.is_ascii_graphic())
}

/// The default `Host` for `target` (`HOST:PORT` as given): curl's choice.
pub fn default_host(target: &str, tls: bool) -> String {
    match target.rsplit_once(':') {
        Some((host, "80")) if !tls => host.to_owned(),
        Some((host, "443")) if tls => host.to_owned(),
        _ => target.to_owned(),
    }
}

/// Compiles the preset into a line probe for `target`.
pub fn compile_spec(spec: &HttpSpec, target: &str, tls: bool) -> Result<LineProbe, ProbeError> {
    if !spec.path.starts_with('/') || !is_field(&spec.path) {
        return Err(ProbeError::Path(protocol::escape(&spec.path)));
    }
    let host = spec
        .host
        .clone()
        .unwrap_or_else(|| default_host(target, tls));
    if !is_field(&host) {
        return Err(ProbeError::Host(protocol::escape(&host)));
    }
    let source = spec.version_from.as_deref().unwrap_or(DEFAULT_VERSION_FROM);
    let matcher = match source.strip_prefix("header:") {
        Some(name) => {
            if !is_token(name) {
                return Err(ProbeError::Header(protocol::escape(name)));
            }
            let pattern = format!(r"(?im)^{}:[ \t]*([^\r\n]*?)[ \t]*\r?$", regex::escape(name));
            Matcher::Headers(compile(&pattern)?)
        }
        None => Matcher::Anywhere(compile(source)?),
    };
    let mut request = String::new();
    // Writing to a String cannot fail.
    let _ = write!(
        request,
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: tcp-canary\r\nAccept: */*\r\n\
         Connection: close\r\n\r\n",
        spec.path
    );
    LineProbe::new(request.into_bytes(), matcher, spec.max_reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::line::DEFAULT_MAX_REPLY;

    fn spec() -> HttpSpec {
        HttpSpec {
            path: "/version".into(),
            host: None,
            version_from: None,
            max_reply: DEFAULT_MAX_REPLY,
        }
    }

    #[test]
    fn the_request_names_path_and_host() {
        let probe = compile_spec(&spec(), "gw.example:8080", false).unwrap();
        let sent = String::from_utf8(probe.send().to_vec()).unwrap();
        assert!(sent.starts_with("GET /version HTTP/1.1\r\nHost: gw.example:8080\r\n"));
        assert!(sent.ends_with("Connection: close\r\n\r\n"));
        assert_eq!(default_host("gw:80", false), "gw");
        assert_eq!(default_host("gw:443", true), "gw");
        assert_eq!(default_host("gw:443", false), "gw:443");
        assert_eq!(default_host("[::1]:80", false), "[::1]");
    }

    #[test]
    fn fields_that_would_break_the_request_are_refused() {
        for (path, host, from) in [
            ("version", None, None),
            ("/a b", None, None),
            ("/v\r\nX: y", None, None),
            ("/", Some("a b"), None),
            ("/", None, Some("header:x version")),
            ("/", None, Some("header:")),
            ("/", None, Some("no group")),
        ] {
            let spec = HttpSpec {
                path: path.into(),
                host: host.map(str::to_owned),
                version_from: from.map(str::to_owned),
                max_reply: DEFAULT_MAX_REPLY,
            };
            assert!(compile_spec(&spec, "gw:80", false).is_err(), "{spec:?}");
        }
    }
}
