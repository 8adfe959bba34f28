//! The probe and TLS flags of `verify` and `watch`: what each fresh connection sends and
//! how the version is read from the reply (or the server's certificate), and TLS.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::args::parse_bool;
use checker_core::probe::{
    BannerSpec, DEFAULT_MAX_REPLY, HttpSpec, LineSpec, ProbeKind, ProbeSpec, RedisSpec, VersionMap,
    http, parse_send,
};
use checker_core::tls::{CertField, TlsSpec, Verify};

/// The probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProbeName {
    /// tcp-canary's echo protocol: sends `tcp-canary <id> <time>`, reads `<version> <the same line>`.
    Echo,
    /// Sends --send (maybe nothing); the version is the first group of --version-from.
    Line,
    /// Sends nothing; reads the server's first line (SSH `SSH-2.0-...`, SMTP, FTP, POP3, IMAP greetings).
    Banner,
    /// Sends `INFO server`; reads the `redis_version` field.
    Redis,
    /// Sends `GET --path HTTP/1.1` with Host --host; reads the x-version header.
    Http,
}

/// What each sample does once connected, and TLS.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Probe (your own service) and TLS")]
pub struct ProbeArgs {
    /// What each connection sends and how the version is read [default: echo; with
    /// --tls-version-from alone: nothing is exchanged].
    #[arg(long, env = "CHECKER_PROBE", value_enum, value_name = "PROBE")]
    pub probe: Option<ProbeName>,
    /// --probe line: the text sent once connected, with \n, \r, \t, \0, \\ and \xNN
    /// escapes; empty or absent sends nothing (servers that speak first).
    #[arg(long, env = "CHECKER_SEND", value_name = "TEXT")]
    pub send: Option<String>,
    /// The regular expression whose first group is the version, tried on the complete
    /// lines received so far (on everything once the reply ends). line: required; banner:
    /// tried on the first line [default: the whole line]; redis [default:
    /// `^redis_version:(\S+)`]; http: `header:NAME` or a pattern over the response
    /// [default: header:x-version].
    #[arg(long, env = "CHECKER_VERSION_FROM", value_name = "REGEX")]
    pub version_from: Option<String>,
    /// Most bytes of a reply read while looking for the version (not echo) [default: 65536].
    #[arg(long, env = "CHECKER_MAX_REPLY", value_name = "BYTES", value_parser = parse_bytes)]
    pub max_reply: Option<usize>,
    /// --probe http: the Host header [default: the target's HOST:PORT, without the port
    /// when it is 80, or 443 with --tls].
    #[arg(long, env = "CHECKER_HOST", value_name = "HOST")]
    pub host: Option<String>,
    /// --probe http: the path requested [default: /].
    #[arg(long, env = "CHECKER_PATH", value_name = "PATH")]
    pub path: Option<String>,
    /// Names for captured values, e.g. 7.0.15=stable,7.2.4=canary, so that --expect reads
    /// stable=90,canary=10; a captured value no entry names is a version of that name.
    #[arg(long, env = "CHECKER_VERSION_MAP", value_name = "VALUE=NAME,...")]
    pub version_map: Option<VersionMap>,
    /// A TLS handshake on every connection (rustls), then the probe inside it; the
    /// server's certificate is checked against the platform's trust store, --ca-file, or
    /// not at all with --insecure.
    #[arg(long, env = "CHECKER_TLS", value_parser = parse_bool)]
    pub tls: bool,
    /// With --tls: trust only the CA certificates of this PEM file.
    #[arg(long, env = "CHECKER_CA_FILE", value_name = "FILE", requires = "tls")]
    pub ca_file: Option<PathBuf>,
    /// With --tls: do not check the server's certificate (self-signed test services);
    /// anyone on the path could answer.
    #[arg(long, env = "CHECKER_INSECURE", value_parser = parse_bool, requires = "tls", conflicts_with = "ca_file")]
    pub insecure: bool,
    /// With --tls: the server name sent (SNI) and checked in the certificate; with
    /// --expect-from it also picks the tls route whose sniHosts or TLSRoute hostnames
    /// match it [default: the target's host, none sent for an IP address; the manifests'
    /// only tls route of the port].
    #[arg(long, env = "CHECKER_SNI", value_name = "NAME", requires = "tls",
        value_parser = super::expect_from::parse_server_name)]
    pub sni: Option<String>,
    /// With --tls: the version is this field of the server's certificate:
    /// cert:serial (hex), cert:subject (CN=...), cert:fingerprint (SHA-256, hex).
    #[arg(
        long,
        env = "CHECKER_TLS_VERSION_FROM",
        value_name = "cert:FIELD",
        requires = "tls"
    )]
    pub tls_version_from: Option<CertField>,
}

/// Parses a byte count: a whole number of at least 1, optionally with KiB or MiB.
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let (number, scale) = if let Some(n) = s.strip_suffix("KiB") {
        (n, 1024)
    } else if let Some(n) = s.strip_suffix("MiB") {
        (n, 1024 * 1024)
    } else {
        (s, 1)
    };
    match number.trim().parse::<usize>() {
        Ok(n) if n >= 1 => n
            .checked_mul(scale)
            .ok_or_else(|| "is too large".to_owned()),
        _ => Err("must be a whole number of bytes of at least 1 (or NKiB, NMiB)".to_owned()),
    }
}

impl ProbeArgs {
    /// The probe these flags describe; a flag that does not fit the probe is an error.
    pub fn spec(&self) -> Result<ProbeSpec, String> {
        let name = match (self.probe, self.tls_version_from) {
            (Some(name), _) => Some(name),
            (None, Some(_)) => None,
            (None, None) => Some(ProbeName::Echo),
        };
        let only = |flag: &str, set: bool, probes: &str| {
            if set {
                Err(format!("{flag} is for --probe {probes}"))
            } else {
                Ok(())
            }
        };
        let is = |n: ProbeName| name == Some(n);
        only(
            "--send",
            self.send.is_some() && !is(ProbeName::Line),
            "line",
        )?;
        only(
            "--version-from",
            self.version_from.is_some() && matches!(name, Some(ProbeName::Echo) | None),
            "line, banner, redis or http",
        )?;
        only(
            "--max-reply",
            self.max_reply.is_some() && matches!(name, Some(ProbeName::Echo) | None),
            "line, banner, redis or http",
        )?;
        only(
            "--host",
            self.host.is_some() && !is(ProbeName::Http),
            "http",
        )?;
        only(
            "--path",
            self.path.is_some() && !is(ProbeName::Http),
            "http",
        )?;
        let max_reply = self.max_reply.unwrap_or(DEFAULT_MAX_REPLY);
        let kind = match name {
            None => ProbeKind::Handshake,
            Some(ProbeName::Echo) => ProbeKind::Echo,
            Some(ProbeName::Line) => ProbeKind::Line(LineSpec {
                send: match &self.send {
                    Some(text) => parse_send(text).map_err(|e| format!("--send: {e}"))?,
                    None => Vec::new(),
                },
                version_from: self.version_from.clone().ok_or(
                    "--probe line needs --version-from, a pattern whose first group is the version",
                )?,
                max_reply,
            }),
            Some(ProbeName::Banner) => ProbeKind::Banner(BannerSpec {
                version_from: self.version_from.clone(),
                max_reply,
            }),
            Some(ProbeName::Redis) => ProbeKind::Redis(RedisSpec {
                version_from: self.version_from.clone(),
                max_reply,
            }),
            Some(ProbeName::Http) => ProbeKind::Http(HttpSpec {
                path: self
                    .path
                    .clone()
                    .unwrap_or_else(|| http::DEFAULT_PATH.to_owned()),
                host: self.host.clone(),
                version_from: self.version_from.clone(),
                max_reply,
            }),
        };
        let tls = self.tls.then(|| TlsSpec {
            verify: match (&self.ca_file, self.insecure) {
                (Some(path), _) => Verify::CaFile(path.clone()),
                (None, true) => Verify::Insecure,
                (None, false) => Verify::PlatformRoots,
            },
            sni: self.sni.clone(),
            version_from: self.tls_version_from,
        });
        Ok(ProbeSpec {
            kind,
            version_map: self.version_map.clone().unwrap_or_default(),
            tls,
        })
    }

    /// The warning `--insecure` deserves, once, on stderr.
    pub fn warn(&self) {
        if self.insecure {
            eprintln!(
                "checker: warning: --insecure: the server's certificate is not checked, so \
                 any server on the path could answer; use it for self-signed test services only"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        probe: ProbeArgs,
    }

    fn spec(args: &[&str]) -> Result<ProbeSpec, String> {
        let cli = Cli::try_parse_from(std::iter::once("checker").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        cli.probe.spec()
    }

    #[test]
    fn the_default_is_echo_over_plain_tcp() {
        assert_eq!(spec(&[]).unwrap(), ProbeSpec::default());
    }

    #[test]
    fn each_probe_takes_its_own_flags() {
        let line = spec(&[
            "--probe",
            "line",
            "--send",
            "PING\\r\\n",
            "--version-from",
            "v(\\d+)",
        ])
        .unwrap();
        let ProbeKind::Line(l) = line.kind else {
            panic!("{line:?}");
        };
        assert_eq!(l.send, b"PING\r\n");
        assert!(
            spec(&["--probe", "line"])
                .unwrap_err()
                .contains("--version-from")
        );
        assert!(spec(&["--send", "x"]).unwrap_err().contains("--probe line"));
        assert!(
            spec(&["--probe", "redis", "--path", "/"])
                .unwrap_err()
                .contains("--probe http")
        );
        assert!(
            spec(&["--version-from", "(x)"])
                .unwrap_err()
                .contains("--version-from")
        );
        let http = spec(&[
            "--probe",
            "http",
            "--path",
            "/version",
            "--max-reply",
            "4KiB",
        ])
        .unwrap();
        assert_eq!(
            http.kind,
            ProbeKind::Http(HttpSpec {
                path: "/version".into(),
                host: None,
                version_from: None,
                max_reply: 4096,
            })
        );
        assert!(spec(&["--probe", "banner", "--max-reply", "0"]).is_err());
    }

    #[test]
    fn tls_flags_need_tls_and_the_certificate_alone_exchanges_nothing() {
        assert!(spec(&["--sni", "a.test"]).is_err());
        assert!(spec(&["--tls", "--insecure", "--ca-file", "ca.pem"]).is_err());
        let by_cert = spec(&["--tls", "--insecure", "--tls-version-from", "cert:subject"]).unwrap();
        assert_eq!(by_cert.kind, ProbeKind::Handshake);
        let tls = by_cert.tls.unwrap();
        assert_eq!(tls.verify, Verify::Insecure);
        assert_eq!(tls.version_from, Some(CertField::Subject));
        let with_probe = spec(&[
            "--tls",
            "--probe",
            "echo",
            "--tls-version-from",
            "cert:serial",
        ])
        .unwrap();
        assert_eq!(with_probe.kind, ProbeKind::Echo);
        assert!(spec(&["--tls", "--tls-version-from", "cert:issuer"]).is_err());
        let map = spec(&["--probe", "redis", "--version-map", "7.0.15=stable"]).unwrap();
        assert_eq!(map.version_map.name_of("7.0.15"), Some("stable"));
    }
}
