//! What a sample does once connected, as the user asked for it: plain data, checked
//! and compiled by [`super::Probe::new`].

use super::banner::BannerSpec;
use super::http::HttpSpec;
use super::line::LineSpec;
use super::redis::RedisSpec;
use super::version_map::VersionMap;
use crate::tls::TlsSpec;

/// What a sample does once connected, as the user asked for it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProbeSpec {
    /// What is sent and how the version is read.
    pub kind: ProbeKind,
    /// Names for captured values (`7.0.15=stable`); values it does not name keep their own.
    pub version_map: VersionMap,
    /// A TLS handshake on every sample connection before the probe.
    pub tls: Option<TlsSpec>,
}

/// The probe kinds and presets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ProbeKind {
    /// The tcp-canary echo protocol (the default).
    #[default]
    Echo,
    /// Send a text, read the version with a pattern.
    Line(LineSpec),
    /// Send nothing; the version is in the server's first line.
    Banner(BannerSpec),
    /// `INFO server`; the version from `redis_version`.
    Redis(RedisSpec),
    /// `GET PATH HTTP/1.1`; the version from a header or a pattern.
    Http(HttpSpec),
    /// Send and read nothing: the TLS handshake is the whole sample and the server
    /// certificate names the version.
    Handshake,
}

impl ProbeKind {
    /// The kind's name, as in the command line and the reports.
    pub fn name(&self) -> &'static str {
        match self {
            ProbeKind::Echo => "echo",
            ProbeKind::Line(_) => "line",
            ProbeKind::Banner(_) => "banner",
            ProbeKind::Redis(_) => "redis",
            ProbeKind::Http(_) => "http",
            ProbeKind::Handshake => "handshake",
        }
    }
}
