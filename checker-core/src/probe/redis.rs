//! The redis preset: sends the inline command `INFO server` (`INFO server\r\n`) and reads
//! the version from the `redis_version:` line of the reply (or another pattern).
//! A server that wants a password answers `-NOAUTH ...`: a `no_version` sample showing it.

use super::error::ProbeError;
use super::line::LineProbe;
use super::pattern::{Matcher, compile};

/// What the preset sends.
pub const SEND: &[u8] = b"INFO server\r\n";
/// The default pattern: the value of the `redis_version` field.
pub const DEFAULT_VERSION_FROM: &str = r"(?m)^redis_version:([^\s]+)\r?$";

/// The redis preset as the user gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSpec {
    /// The pattern tried on the reply; `None` = [`DEFAULT_VERSION_FROM`].
    pub version_from: Option<String>,
    /// The most reply bytes read.
    pub max_reply: usize,
}

/// Compiles the preset into a line probe.
pub fn compile_spec(spec: &RedisSpec) -> Result<LineProbe, ProbeError> {
    let pattern = spec.version_from.as_deref().unwrap_or(DEFAULT_VERSION_FROM);
    LineProbe::new(
        SEND.to_vec(),
        Matcher::Anywhere(compile(pattern)?),
        spec.max_reply,
    )
}
