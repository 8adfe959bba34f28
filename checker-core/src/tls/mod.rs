//! TLS on every sample connection: a rustls client (ring provider) set up once per run,
//! a full handshake per sample (no session resumption, so every sample is a fresh
//! routing decision and shows the certificate of the server that answered), failures
//! classified as [`ErrorClass::TlsHandshake`] or [`ErrorClass::TlsCertificate`] with
//! the reason, and the version read from the server certificate when asked ([`cert`]).

pub mod cert;
mod insecure;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::error_class::ErrorClass;
pub use cert::CertField;
use input_file::InputError;

/// The largest CA file read, in bytes (a whole public bundle is about 200 KiB); a
/// larger file, and any file that is not regular (a FIFO, a device), is refused.
pub const MAX_CA_FILE: u64 = 4 << 20;
/// The longest reason kept for a failed handshake, in bytes.
pub const MAX_REASON: usize = 200;

/// How the server's certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Verify {
    /// Against the platform's trust store.
    #[default]
    PlatformRoots,
    /// Against the certificates of this PEM file only.
    CaFile(PathBuf),
    /// Not at all (self-signed test services); the handshake's signatures still are.
    Insecure,
}

/// TLS as the user asked for it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsSpec {
    /// How the certificate is checked.
    pub verify: Verify,
    /// The server name sent (SNI) and checked; `None` = the target's host.
    pub sni: Option<String>,
    /// Read the version from the server certificate instead of the reply.
    pub version_from: Option<CertField>,
}

/// Why the TLS client cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The platform's trust store gave no usable certificate.
    #[error("the platform's trust store holds no usable CA certificate{0}")]
    NoPlatformRoots(String),
    /// The CA file cannot be used.
    #[error("the CA file {path}: {reason}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The server name is neither a DNS name nor an IP address.
    #[error("{0:?} is not a server name (a DNS name or an IP address)")]
    ServerName(String),
    /// rustls refused the configuration.
    #[error("the TLS client cannot be set up: {0}")]
    Config(String),
}

/// A failed handshake: its class and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFailure {
    /// [`ErrorClass::TlsHandshake`] or [`ErrorClass::TlsCertificate`].
    pub class: ErrorClass,
    /// What went wrong, one line, escaped.
    pub reason: String,
}

/// The TLS client of a run.
#[derive(Clone)]
pub struct Tls {
    connector: TlsConnector,
    server_name: ServerName<'static>,
    version_from: Option<CertField>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("server_name", &self.server_name)
            .field("version_from", &self.version_from)
            .finish_non_exhaustive()
    }
}

/// The host part of `HOST:PORT` (brackets of an IPv6 literal removed).
fn target_host(target: &str) -> &str {
    let host = target.rsplit_once(':').map_or(target, |(host, _)| host);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// The platform's trust store.
fn platform_roots() -> Result<RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        return Err(TlsError::NoPlatformRoots(why));
    }
    Ok(roots)
}

/// The certificates of a PEM file, read with a size limit.
fn file_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let bad = |reason: String| TlsError::CaFile {
        path: path.to_path_buf(),
        reason,
    };
    // Opened without blocking and only when regular (a FIFO would wait for a writer
    // forever, /dev/zero never ends), read through the limit.
    let pem = input_file::read_bounded(path, MAX_CA_FILE, "one CA file").map_err(|why| {
        bad(match why {
            InputError::Read(e) => format!("cannot be opened: {e}"),
            other => other.to_string(),
        })
    })?;
    let mut certs = Vec::new();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        certs.push(cert.map_err(|e| bad(format!("is not valid PEM: {e}")))?);
    }
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(bad(if ignored == 0 {
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned()
        } else {
            format!("holds {ignored} certificate(s), none usable as a CA")
        }));
    }
    Ok(roots)
}

impl Tls {
    /// Sets up the client for `target` (`HOST:PORT`): reads the trust store or CA file.
    pub fn new(spec: &TlsSpec, target: &str) -> Result<Self, TlsError> {
        let name = spec.sni.as_deref().unwrap_or_else(|| target_host(target));
        let server_name = ServerName::try_from(name.to_owned())
            .map_err(|_| TlsError::ServerName(protocol::escape(name)))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let mut config = match &spec.verify {
            Verify::Insecure => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(insecure::AcceptAnyCertificate::new(
                    provider,
                )))
                .with_no_client_auth(),
            Verify::PlatformRoots => builder
                .with_root_certificates(platform_roots()?)
                .with_no_client_auth(),
            Verify::CaFile(path) => builder
                .with_root_certificates(file_roots(path)?)
                .with_no_client_auth(),
        };
        // Every sample is a full handshake: a resumed session would skip the server's
        // certificate and time a different thing.
        config.resumption = Resumption::disabled();
        Ok(Self {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
            version_from: spec.version_from,
        })
    }

    /// The server name sent and checked.
    pub fn server_name(&self) -> &ServerName<'static> {
        &self.server_name
    }

    /// Where the version comes from when it is the certificate's.
    pub fn version_from(&self) -> Option<CertField> {
        self.version_from
    }

    /// Shakes hands on `tcp` within `timeout`.
    pub async fn handshake(
        &self,
        tcp: TcpStream,
        timeout: Duration,
    ) -> Result<TlsStream<TcpStream>, TlsFailure> {
        let connect = self.connector.connect(self.server_name.clone(), tcp);
        match tokio::time::timeout(timeout, connect).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(classify(&e, &self.server_name)),
            Err(_) => Err(TlsFailure {
                class: ErrorClass::TlsHandshake,
                reason: format!(
                    "no handshake within {}",
                    humantime::format_duration(timeout)
                ),
            }),
        }
    }

    /// The value of the certificate field that names the version, from the end-entity
    /// certificate the server presented; otherwise why not.
    pub fn certificate_value(
        &self,
        field: CertField,
        stream: &TlsStream<TcpStream>,
    ) -> Result<String, String> {
        let (_, connection) = stream.get_ref();
        match connection.peer_certificates().and_then(|c| c.first()) {
            Some(der) => cert::value(field, der),
            None => Err("the server presented no certificate".to_owned()),
        }
    }
}

/// One line, escaped and cut to [`MAX_REASON`].
fn reason(text: &str) -> String {
    let mut out = protocol::escape(text);
    if out.len() > MAX_REASON {
        let mut cut = MAX_REASON;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("...");
    }
    out
}

/// Classifies a failed handshake.
pub fn classify(error: &io::Error, server_name: &ServerName<'_>) -> TlsFailure {
    let sni = match server_name {
        ServerName::DnsName(name) => format!("SNI {:?}", name.as_ref()),
        other => format!("{} (no SNI is sent for an address)", other.to_str()),
    };
    let handshake = |why: String| TlsFailure {
        class: ErrorClass::TlsHandshake,
        reason: reason(&why),
    };
    if let Some(tls) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return match tls {
            rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
                TlsFailure {
                    class: ErrorClass::TlsCertificate,
                    reason: reason(&format!("{tls} (for {sni})")),
                }
            }
            rustls::Error::AlertReceived(alert) => handshake(format!(
                "the server refused the handshake for {sni}: alert {alert:?}"
            )),
            other => handshake(other.to_string()),
        };
    }
    match error.kind() {
        io::ErrorKind::UnexpectedEof => handshake(format!(
            "the connection closed during the handshake: no route or server for {sni}, or not a TLS service"
        )),
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => handshake(format!(
            "the connection was reset during the handshake: no route or server for {sni}, or not a TLS service"
        )),
        _ => handshake(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_server_name_is_the_targets_host() {
        assert_eq!(target_host("gw.example:443"), "gw.example");
        assert_eq!(target_host("[::1]:443"), "::1");
        assert_eq!(target_host("127.0.0.1:8443"), "127.0.0.1");
        let tls = Tls::new(
            &TlsSpec {
                verify: Verify::Insecure,
                ..TlsSpec::default()
            },
            "[::1]:443",
        )
        .unwrap();
        assert!(matches!(tls.server_name(), ServerName::IpAddress(_)));
        let err = Tls::new(
            &TlsSpec {
                verify: Verify::Insecure,
                sni: Some("bad name!".into()),
                version_from: None,
            },
            "gw:443",
        )
        .unwrap_err();
        assert!(matches!(err, TlsError::ServerName(_)), "{err}");
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let spec = |path: &PathBuf| TlsSpec {
            verify: Verify::CaFile(path.clone()),
            ..TlsSpec::default()
        };
        let err = Tls::new(&spec(&empty), "gw:443").unwrap_err().to_string();
        assert!(err.contains("holds no PEM certificate"), "{err}");
        let missing = dir.path().join("missing.pem");
        let err = Tls::new(&spec(&missing), "gw:443").unwrap_err().to_string();
        assert!(err.contains("cannot be opened"), "{err}");
    }

    #[test]
    fn handshake_errors_are_classified_with_their_reason() {
        let name = ServerName::try_from("canary.test").unwrap();
        let eof = classify(&io::ErrorKind::UnexpectedEof.into(), &name);
        assert_eq!(eof.class, ErrorClass::TlsHandshake);
        assert!(eof.reason.contains("SNI \"canary.test\""), "{}", eof.reason);
        let cert = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let cert = classify(&cert, &name);
        assert_eq!(cert.class, ErrorClass::TlsCertificate);
        assert!(cert.reason.contains("UnknownIssuer"), "{}", cert.reason);
        let alert = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::UnrecognisedName),
        );
        let alert = classify(&alert, &name);
        assert_eq!(alert.class, ErrorClass::TlsHandshake);
        assert!(
            alert.reason.contains("UnrecognisedName"),
            "{}",
            alert.reason
        );
        assert!(reason(&"x".repeat(500)).ends_with("..."));
    }
}
