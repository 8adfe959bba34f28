//! The probe: what a sample sends once connected (and, with TLS, once the handshake is
//! done), and how the version is read from what comes back.
//!
//! [`ProbeSpec`] is what the user asked for, as plain data; [`Probe::new`] checks it and
//! compiles it once per run (patterns, presets, the TLS client), and the sampler calls
//! [`Probe::exchange`] for every sample. The kinds are one enum, matched per sample: the
//! echo path (the default) is today's exchange with the worker's reused buffers, no
//! boxed trait object and no allocation beyond the version string.
//!
//! - [`echo`]: the tcp-canary protocol (`<version> <the line sent>`);
//! - [`line`]: send a text, read until a pattern's first group names the version;
//! - presets, each a line probe: [`banner`] (servers that speak first), [`redis`]
//!   (`INFO server`), [`http`] (`GET PATH`, a header or a pattern);
//! - [`version_map`]: names for captured values; [`naming`]: whether expected names
//!   can come out of a probe.
//!
//! A reply that arrives but names no version is [`ErrorClass::NoVersion`], its head kept
//! (escaped) like a malformed echo's; it never counts for a version.

pub mod banner;
pub mod buffers;
pub mod echo;
pub mod error;
pub mod head;
pub mod http;
pub mod line;
pub mod naming;
pub mod pattern;
pub mod redis;
pub mod spec;
pub mod version_map;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use regex::bytes::CaptureLocations;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error_class::ErrorClass;
use crate::tls::Tls;
pub use banner::BannerSpec;
pub use buffers::ProbeBuffers;
pub use error::ProbeError;
use head::reply_head;
pub use http::HttpSpec;
pub use line::{DEFAULT_MAX_REPLY, LineProbe, LineSpec, parse_send};
pub use redis::RedisSpec;
pub use spec::{ProbeKind, ProbeSpec};
pub use version_map::{VersionMap, VersionMapError};

/// The compiled probe, shared by every sample of a run (cloning it is cheap).
#[derive(Debug, Clone)]
pub struct Probe {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    spec: ProbeSpec,
    kind: Compiled,
    tls: Option<Tls>,
}

#[derive(Debug)]
enum Compiled {
    Echo,
    Line(LineProbe),
    Handshake,
}

/// Two probes are the same when they were compiled from the same spec.
impl PartialEq for Probe {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner) || self.inner.spec == other.inner.spec
    }
}

impl Default for Probe {
    fn default() -> Self {
        Self::echo()
    }
}

/// What the exchange of one sample gave.
#[derive(Debug, Clone, PartialEq)]
pub struct Exchanged {
    /// The version named by the reply; `Ok(None)` when nothing was to be read.
    pub result: Result<Option<String>, ErrorClass>,
    /// For a reply that named no version: its first bytes, escaped.
    pub reply_head: Option<String>,
    /// Why a reply that arrived is not a version, when the class alone does not say.
    pub reason: Option<String>,
}

impl Exchanged {
    fn failed(class: ErrorClass) -> Self {
        Self {
            result: Err(class),
            reply_head: None,
            reason: None,
        }
    }
}

/// The most bytes of a captured value quoted in a reason.
const QUOTED: usize = 64;

impl Probe {
    /// The default probe: the echo protocol, plain TCP.
    pub fn echo() -> Self {
        Self {
            inner: Arc::new(Inner {
                spec: ProbeSpec::default(),
                kind: Compiled::Echo,
                tls: None,
            }),
        }
    }

    /// Checks and compiles `spec` for `target` (`HOST:PORT`, whose host is the default
    /// TLS server name and HTTP `Host`). Reads the trust store or CA file once.
    pub fn new(spec: &ProbeSpec, target: &str) -> Result<Self, ProbeError> {
        let tls = spec.tls.is_some();
        let kind = match &spec.kind {
            ProbeKind::Echo => Compiled::Echo,
            ProbeKind::Line(l) => Compiled::Line(LineProbe::new(
                l.send.clone(),
                pattern::Matcher::Anywhere(pattern::compile(&l.version_from)?),
                l.max_reply,
            )?),
            ProbeKind::Banner(b) => Compiled::Line(banner::compile_spec(b)?),
            ProbeKind::Redis(r) => Compiled::Line(redis::compile_spec(r)?),
            ProbeKind::Http(h) => Compiled::Line(http::compile_spec(h, target, tls)?),
            ProbeKind::Handshake => {
                if spec.tls.as_ref().and_then(|t| t.version_from).is_none() {
                    return Err(ProbeError::NothingToRead);
                }
                Compiled::Handshake
            }
        };
        let tls = match &spec.tls {
            Some(t) => Some(Tls::new(t, target)?),
            None => None,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                spec: spec.clone(),
                kind,
                tls,
            }),
        })
    }

    /// What this probe was compiled from.
    pub fn spec(&self) -> &ProbeSpec {
        &self.inner.spec
    }

    /// The TLS client, when samples shake hands.
    pub fn tls(&self) -> Option<&Tls> {
        self.inner.tls.as_ref()
    }

    /// The name of a captured value: the version map's, else the value itself when it
    /// is a valid version name; otherwise why not.
    pub fn name_of(&self, value: &[u8]) -> Result<String, String> {
        let quoted = || {
            let cut = &value[..value.len().min(QUOTED)];
            let dots = if value.len() > QUOTED { "..." } else { "" };
            format!("\"{}{dots}\"", protocol::escape(cut))
        };
        let Ok(text) = std::str::from_utf8(value) else {
            return Err(format!("captured {} is not UTF-8 text", quoted()));
        };
        if let Some(name) = self.inner.spec.version_map.name_of(text) {
            return Ok(name.to_owned());
        }
        match protocol::validate_version(text) {
            Ok(()) => Ok(text.to_owned()),
            Err(e) => Err(format!(
                "captured {} is not a version name ({e}) and no version map names it",
                quoted()
            )),
        }
    }

    /// Sends the probe on `stream` and reads the version, within `timeout`.
    ///
    /// The stream is the sample's fresh connection (TCP, or TLS after the handshake);
    /// `id` and `started_at` make the echo line. The caller closes the stream.
    pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        id: u64,
        started_at: SystemTime,
        timeout: Duration,
        buffers: &mut ProbeBuffers,
    ) -> Exchanged {
        match &self.inner.kind {
            Compiled::Echo => {
                self.exchange_echo(stream, id, started_at, timeout, buffers)
                    .await
            }
            Compiled::Line(line) => self.exchange_line(line, stream, timeout, buffers).await,
            Compiled::Handshake => Exchanged {
                result: Ok(None),
                reply_head: None,
                reason: None,
            },
        }
    }

    async fn exchange_echo<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        id: u64,
        started_at: SystemTime,
        timeout: Duration,
        buffers: &mut ProbeBuffers,
    ) -> Exchanged {
        buffers.timestamp.clear();
        crate::clock::write_rfc3339_nanos(started_at, &mut buffers.timestamp);
        buffers.probe.clear();
        protocol::encode_probe(id, &buffers.timestamp, &mut buffers.probe);
        let limit = protocol::max_reply_len(buffers.probe.len());
        buffers.reply.clear();
        buffers.reply.resize(limit, 0);
        let exchange = echo::exchange(stream, &buffers.probe, &mut buffers.reply);
        let exchanged = tokio::time::timeout(timeout, exchange).await;
        let malformed = |len: usize| Exchanged {
            result: Err(ErrorClass::MalformedReply),
            reply_head: Some(reply_head(&buffers.reply[..len], &buffers.probe)),
            reason: None,
        };
        match exchanged {
            Ok(Ok(len)) => match protocol::parse_reply(&buffers.reply[..len], &buffers.probe) {
                Ok(version) => {
                    let map = &self.inner.spec.version_map;
                    Exchanged {
                        result: Ok(Some(map.name_of(version).unwrap_or(version).to_owned())),
                        reply_head: None,
                        reason: None,
                    }
                }
                Err(_) => malformed(len),
            },
            Ok(Err((ErrorClass::MalformedReply, len))) => malformed(len),
            Ok(Err((class, _))) => Exchanged::failed(class),
            Err(_) => Exchanged::failed(ErrorClass::ReplyTimeout),
        }
    }

    async fn exchange_line<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        line: &LineProbe,
        stream: &mut S,
        timeout: Duration,
        buffers: &mut ProbeBuffers,
    ) -> Exchanged {
        // The slots are the worker's, made once per pattern.
        let groups = line.captures_len();
        if buffers.locs.as_ref().is_some_and(|l| l.len() != groups) {
            buffers.locs = None;
        }
        let locs: &mut CaptureLocations =
            buffers.locs.get_or_insert_with(|| line.capture_locations());
        let (outcome, filled) = line
            .exchange(stream, timeout, &mut buffers.reply, locs)
            .await;
        let head = || Some(reply_head(&buffers.reply[..filled], line.send()));
        match outcome {
            line::LineOutcome::Found { range } => match self.name_of(&buffers.reply[range]) {
                Ok(name) => Exchanged {
                    result: Ok(Some(name)),
                    reply_head: None,
                    reason: None,
                },
                Err(reason) => Exchanged {
                    result: Err(ErrorClass::NoVersion),
                    reply_head: head(),
                    reason: Some(reason),
                },
            },
            line::LineOutcome::Failed(ErrorClass::NoVersion, _) => Exchanged {
                result: Err(ErrorClass::NoVersion),
                reply_head: head(),
                reason: None,
            },
            line::LineOutcome::Failed(class, _) => Exchanged::failed(class),
        }
    }
}
