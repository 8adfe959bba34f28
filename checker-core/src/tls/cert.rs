//! The version read from the server certificate, for services whose replies carry none
//! but whose canary has its own certificate.
//!
//! - `cert:serial`: the serial number in upper-case hex, two digits per byte, leading
//!   zero bytes dropped (as `openssl x509 -noout -serial` prints it);
//! - `cert:subject`: the subject's attributes in certificate order, `CN=value` joined
//!   by `,` (values may hold spaces: name such a subject with a version map);
//! - `cert:fingerprint`: the SHA-256 of the certificate's DER, 64 upper-case hex digits
//!   (`openssl x509 -noout -fingerprint -sha256` without the colons).

use std::fmt::{self, Write};
use std::str::FromStr;

use x509_parser::objects::{oid_registry, oid2abbrev};
use x509_parser::prelude::{FromDer, X509Certificate};

/// Which certificate field names the version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertField {
    /// The serial number.
    Serial,
    /// The subject name.
    Subject,
    /// The SHA-256 fingerprint.
    Fingerprint,
}

/// A field name other than `cert:serial`, `cert:subject` or `cert:fingerprint`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected cert:serial, cert:subject or cert:fingerprint, got {0:?}")]
pub struct CertFieldError(pub String);

impl FromStr for CertField {
    type Err = CertFieldError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cert:serial" => Ok(CertField::Serial),
            "cert:subject" => Ok(CertField::Subject),
            "cert:fingerprint" => Ok(CertField::Fingerprint),
            other => Err(CertFieldError(protocol::escape(other))),
        }
    }
}

impl fmt::Display for CertField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CertField::Serial => "cert:serial",
            CertField::Subject => "cert:subject",
            CertField::Fingerprint => "cert:fingerprint",
        })
    }
}

fn upper_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02X}");
    }
    out
}

/// The value of `field` in the DER certificate `der`; otherwise why it cannot be read.
pub fn value(field: CertField, der: &[u8]) -> Result<String, String> {
    let parse = || {
        X509Certificate::from_der(der)
            .map(|(_, cert)| cert)
            .map_err(|e| format!("the server certificate cannot be read: {e}"))
    };
    match field {
        CertField::Fingerprint => Ok(upper_hex(
            ring::digest::digest(&ring::digest::SHA256, der).as_ref(),
        )),
        CertField::Serial => {
            let cert = parse()?;
            let raw = cert.raw_serial();
            let first = raw
                .iter()
                .position(|&b| b != 0)
                .unwrap_or(raw.len().saturating_sub(1));
            Ok(upper_hex(&raw[first..]))
        }
        CertField::Subject => subject(&parse()?),
    }
}

/// The subject as `CN=value` pairs joined by `,`, in certificate order.
fn subject(cert: &X509Certificate<'_>) -> Result<String, String> {
    let mut out = String::new();
    for rdn in cert.subject().iter() {
        for attr in rdn.iter() {
            let oid = attr.attr_type();
            let name =
                oid2abbrev(oid, oid_registry()).map_or_else(|_| oid.to_id_string(), str::to_owned);
            let text = attr
                .as_str()
                .map_err(|_| format!("the subject attribute {name} is not text"))?;
            if !out.is_empty() {
                out.push(',');
            }
            let _ = write!(out, "{name}={text}");
        }
    }
    if out.is_empty() {
        return Err("the server certificate has an empty subject".to_owned());
    }
    Ok(out)
}
