//! The banner preset, for servers that speak first (SSH `SSH-2.0-...`, SMTP, FTP, POP3,
//! IMAP greetings): nothing is sent; the first line the server sends (without its line
//! end) holds the version, and the pattern picks the part of it that tells versions apart.

use super::error::ProbeError;
use super::line::LineProbe;
use super::pattern::{Matcher, compile};

/// The default pattern: the whole first line.
pub const DEFAULT_VERSION_FROM: &str = r"^(.*)$";

/// The banner preset as the user gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BannerSpec {
    /// The pattern tried on the first line; `None` = [`DEFAULT_VERSION_FROM`].
    pub version_from: Option<String>,
    /// The most reply bytes read.
    pub max_reply: usize,
}

/// Compiles the preset into a line probe.
pub fn compile_spec(spec: &BannerSpec) -> Result<LineProbe, ProbeError> {
    let pattern = spec.version_from.as_deref().unwrap_or(DEFAULT_VERSION_FROM);
    LineProbe::new(
        Vec::new(),
        Matcher::FirstLine(compile(pattern)?),
        spec.max_reply,
    )
}
