//! A test PKI (feature `tls`): a CA made fresh per test and server certificates it
//! signs, each with its own common name and serial, written as PEM files that servers
//! (nginx, Envoy, in-process rustls) and the checker's `--ca-file` read.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SerialNumber,
};

/// A certificate authority for one test.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

/// A server certificate and its key.
#[derive(Debug, Clone)]
pub struct ServerCert {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
    /// The private key, PKCS#8 DER.
    pub key_der: Vec<u8>,
}

/// The files of a certificate written by [`ServerCert::write`].
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// The certificate chain file (the server certificate only).
    pub cert: PathBuf,
    /// The key file.
    pub key: PathBuf,
}

impl TestCa {
    /// A new CA named `tcp-canary test CA`.
    ///
    /// # Panics
    /// When a key cannot be generated (the test cannot run).
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "tcp-canary test CA");
        let key = KeyPair::generate().expect("CA key");
        Self {
            issuer: CertifiedIssuer::self_signed(params, key).expect("CA certificate"),
        }
    }

    /// The CA certificate, PEM (what `--ca-file` reads).
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// Writes the CA certificate to `dir/ca.pem` and returns the path.
    ///
    /// # Panics
    /// When the file cannot be written.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, self.pem()).expect("write ca.pem");
        path
    }

    /// A certificate for the DNS names `names`, subject `CN=<common_name>`, serial `serial`.
    ///
    /// # Panics
    /// When the certificate cannot be made.
    pub fn issue(&self, names: &[&str], common_name: &str, serial: u64) -> ServerCert {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.serial_number = Some(SerialNumber::from(serial));
        let key = KeyPair::generate().expect("server key");
        let cert = params.signed_by(&key, &self.issuer).expect("server cert");
        ServerCert {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
        }
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

/// A self-signed certificate for `names` (no CA): what `--insecure` is for.
///
/// # Panics
/// When the certificate cannot be made.
pub fn self_signed(names: &[&str], common_name: &str) -> ServerCert {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut params = CertificateParams::new(names).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    let key = KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("self-signed certificate");
    ServerCert {
        cert_pem: cert.pem(),
        cert_der: cert.der().to_vec(),
        key_pem: key.serialize_pem(),
        key_der: key.serialize_der(),
    }
}

impl ServerCert {
    /// Writes `dir/<stem>.crt` and `dir/<stem>.key`.
    ///
    /// # Panics
    /// When the files cannot be written.
    pub fn write(&self, dir: &Path, stem: &str) -> CertFiles {
        let cert = dir.join(format!("{stem}.crt"));
        let key = dir.join(format!("{stem}.key"));
        std::fs::write(&cert, &self.cert_pem).expect("write certificate");
        std::fs::write(&key, &self.key_pem).expect("write key");
        CertFiles { cert, key }
    }
}
