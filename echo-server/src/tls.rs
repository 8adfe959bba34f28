//! TLS on the echo ports: a certificate chain and its private key, read once at start
//! from PEM files (as a Kubernetes `kubernetes.io/tls` Secret mounts them), served with
//! rustls and its ring provider. A renewed certificate takes effect on restart.
//!
//! When the server has a certificate, every echo port speaks TLS (the admin port stays
//! plain HTTP): one kind of listener, and no list of TLS ports to keep in step with the
//! Service in front of the pods.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use input_file::InputError;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// The largest certificate or key file read, in bytes: a chain of a few certificates
/// fits many times over.
pub const MAX_PEM_FILE: u64 = 1 << 20;

/// Where the certificate chain and its key are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, PEM, the server's certificate first.
    pub cert: PathBuf,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Why the certificate and key cannot be served: one sentence naming the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read.
    #[error("cannot read the TLS {what} file {}: {source}", path.display())]
    Read {
        /// `certificate` or `private key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A file is not a regular file (a FIFO, a device, a directory, a loop of links).
    #[error("cannot read the TLS {what} file {}: {why}", path.display())]
    NotAFile {
        /// `certificate` or `private key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What it is instead.
        why: InputError,
    },
    /// A file holds no usable PEM block of its kind.
    #[error("the TLS {what} file {} {reason}", path.display())]
    Pem {
        /// `certificate` or `private key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong, e.g. `holds no PEM certificate`.
        reason: String,
    },
    /// rustls refuses the pair (a key that does not match the certificate, an
    /// unsupported key type).
    #[error("the TLS certificate {} and key {} cannot be served: {source}", cert.display(), key.display())]
    Refused {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls' reason.
        source: rustls::Error,
    },
}

/// The TLS side of every echo listener: the certificate and key, ready to serve (a clone
/// shares them).
#[derive(Clone)]
pub struct Acceptor(pub(crate) TlsAcceptor);

impl fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Acceptor(..)")
    }
}

/// Reads the certificate chain and key and makes the acceptor every echo listener uses.
pub fn acceptor(files: &TlsFiles) -> Result<Acceptor, TlsError> {
    const CERT: &str = "certificate";
    const KEY: &str = "private key";
    let pem_error = |what, path: &Path, e: rustls::pki_types::pem::Error| TlsError::Pem {
        what,
        path: path.to_owned(),
        reason: format!("is not valid PEM: {e}"),
    };
    let cert_pem = read_bounded(&files.cert, CERT)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(CERT, &files.cert, e))?;
    if chain.is_empty() {
        return Err(TlsError::Pem {
            what: CERT,
            path: files.cert.clone(),
            reason: "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned(),
        });
    }
    let key_pem = read_bounded(&files.key, KEY)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::Pem {
            what: KEY,
            path: files.key.clone(),
            reason: "holds no PEM private key (PKCS#8, PKCS#1 or SEC1)".to_owned(),
        },
        other => pem_error(KEY, &files.key, other),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let refused = |source| TlsError::Refused {
        cert: files.cert.clone(),
        key: files.key.clone(),
        source,
    };
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(refused)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(refused)?;
    Ok(Acceptor(TlsAcceptor::from(Arc::new(config))))
}

/// The whole file, refused beyond [`MAX_PEM_FILE`] bytes.
fn read_bounded(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    let failed = |source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    };
    // Opened without blocking and only when regular: a FIFO would hold the start
    // forever waiting for a writer, and /dev/zero never ends.
    input_file::read_bounded(path, MAX_PEM_FILE, "one PEM file").map_err(|why| match why {
        InputError::Read(source) => failed(source),
        InputError::TooLarge { .. } => TlsError::Pem {
            what,
            path: path.to_owned(),
            reason: format!("is larger than {MAX_PEM_FILE} bytes"),
        },
        other => TlsError::NotAFile {
            what,
            path: path.to_owned(),
            why: other,
        },
    })
}
