//! Whether expected version names can come out of a probe: with `--expect-from`, the
//! names the manifests give (or `--version-of` fills in) must be what the probe captures
//! or what the version map names the captures. A name the map gives is fine; any other
//! name must be captured as it is, which the certificate fields make impossible for
//! names of the wrong shape.

use super::spec::{ProbeKind, ProbeSpec};
use crate::tls::CertField;

/// How one expected name can come out of the probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameFit {
    /// The echo protocol's prefix, or a name the version map gives.
    Named,
    /// Only if the probe captures exactly this text (no map entry names it).
    CapturedAsIs,
    /// Never: the value read is of another shape (why).
    CannotMatch(String),
}

/// Whether `name` can be a version of `spec`'s samples.
pub fn fit(spec: &ProbeSpec, name: &str) -> NameFit {
    if spec.version_map.names().contains(&name) {
        return NameFit::Named;
    }
    let from_cert = spec.tls.as_ref().and_then(|t| t.version_from);
    let hex = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase())
    };
    match from_cert {
        Some(CertField::Fingerprint) if !(name.len() == 64 && hex(name)) => {
            NameFit::CannotMatch("cert:fingerprint gives 64 upper-case hex digits".to_owned())
        }
        Some(CertField::Serial) if !(name.len().is_multiple_of(2) && hex(name)) => {
            NameFit::CannotMatch("cert:serial gives upper-case hex digits, two per byte".to_owned())
        }
        Some(CertField::Subject) if !name.contains('=') => {
            NameFit::CannotMatch("cert:subject gives attributes such as CN=name".to_owned())
        }
        Some(_) => NameFit::CapturedAsIs,
        None if spec.kind == ProbeKind::Echo => NameFit::Named,
        None => NameFit::CapturedAsIs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::line::DEFAULT_MAX_REPLY;
    use crate::probe::redis::RedisSpec;
    use crate::tls::TlsSpec;

    fn redis(map: &str) -> ProbeSpec {
        ProbeSpec {
            kind: ProbeKind::Redis(RedisSpec {
                version_from: None,
                max_reply: DEFAULT_MAX_REPLY,
            }),
            version_map: map.parse().unwrap_or_default(),
            tls: None,
        }
    }

    #[test]
    fn mapped_and_echoed_names_fit_others_must_be_captured() {
        assert_eq!(fit(&ProbeSpec::default(), "stable"), NameFit::Named);
        let spec = redis("7.0.15=stable");
        assert_eq!(fit(&spec, "stable"), NameFit::Named);
        assert_eq!(fit(&spec, "canary"), NameFit::CapturedAsIs);
    }

    #[test]
    fn certificate_fields_rule_out_names_of_another_shape() {
        let by = |field| ProbeSpec {
            kind: ProbeKind::Handshake,
            tls: Some(TlsSpec {
                version_from: Some(field),
                ..TlsSpec::default()
            }),
            ..ProbeSpec::default()
        };
        assert!(matches!(
            fit(&by(CertField::Fingerprint), "stable"),
            NameFit::CannotMatch(_)
        ));
        let digest = "AB".repeat(32);
        assert_eq!(
            fit(&by(CertField::Fingerprint), &digest),
            NameFit::CapturedAsIs
        );
        assert!(matches!(
            fit(&by(CertField::Serial), "0a01"),
            NameFit::CannotMatch(_)
        ));
        assert_eq!(fit(&by(CertField::Serial), "0A01"), NameFit::CapturedAsIs);
        assert!(matches!(
            fit(&by(CertField::Subject), "canary"),
            NameFit::CannotMatch(_)
        ));
        let mut mapped = by(CertField::Subject);
        mapped.version_map = "CN=canary=canary".parse().unwrap();
        assert_eq!(fit(&mapped, "canary"), NameFit::Named);
    }
}
