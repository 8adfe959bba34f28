//! `--expect-from` and its companions: the expected split read from Kubernetes manifests
//! instead of typed by hand, printed with its provenance before sampling.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use clap::Args;

use checker_core::expect::Expectation;
use checker_core::probe::naming::{self, NameFit};
use checker_core::probe::{ProbeKind, ProbeSpec};
use manifests::kustomize::{self, Kustomize};
use manifests::{self, Derivation, DeriveOptions, OptionNames};

/// How a split is derived from manifests (`verify --expect-from`, `lint`).
#[derive(Debug, Clone, Args)]
pub struct DeriveArgs {
    /// Use the tcp route that matches this gateway port [default: the only tcp route].
    #[arg(long, env = "CHECKER_ROUTE_PORT", value_name = "PORT", value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub route_port: Option<u32>,
    /// The version a subset, Service or workload answers with where the manifests do not show it, e.g. stable=one,canary=two.
    #[arg(long, env = "CHECKER_VERSION_OF", value_name = "NAME=VERSION,...", value_delimiter = ',', value_parser = parse_version_of)]
    pub version_of: Vec<(String, String)>,
}

/// The server name TLS clients send, for `lint` (verify's is its probe's `--sni`, which
/// also sends it): it chooses among the manifests' tls routes.
#[derive(Debug, Clone, Args)]
pub struct SniArgs {
    /// The server name (SNI) the client sends in the TLS handshake; with --expect-from
    /// (and in lint) it picks the tls route whose sniHosts or TLSRoute hostnames match it
    /// [default: the only tls route of the port].
    #[arg(long, env = "CHECKER_SNI", value_name = "NAME", value_parser = parse_server_name)]
    pub sni: Option<String>,
}

/// Parses a server name as TLS sends it: a DNS name (letters, digits, `-`, dot-separated
/// labels of at most 63, 253 in all), no wildcard and no IP address.
pub fn parse_server_name(s: &str) -> Result<String, String> {
    let name = s.trim().trim_end_matches('.');
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(
            "must be a DNS name such as tcp-echo.example.com (letters, digits, '-' and dots)"
                .to_owned(),
        );
    }
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Err("must be a DNS name: TLS sends no server name for an IP address".to_owned());
    }
    Ok(name.to_owned())
}

impl DeriveArgs {
    /// The library's derivation options (no server name: see [`DeriveArgs::options_with`]).
    pub fn options(&self) -> DeriveOptions {
        DeriveOptions {
            route_port: self.route_port,
            sni: None,
            version_of: self.version_of.iter().cloned().collect::<BTreeMap<_, _>>(),
            names: Self::names(),
        }
    }

    /// The library's derivation options with the server name TLS clients send.
    pub fn options_with(&self, sni: Option<&str>) -> DeriveOptions {
        DeriveOptions {
            sni: sni.map(str::to_owned),
            ..self.options()
        }
    }

    /// The flags, as messages and provenance name them.
    pub fn names() -> OptionNames {
        OptionNames {
            route_port: "--route-port".to_owned(),
            version_of: "--version-of".to_owned(),
            sni: "--sni".to_owned(),
        }
    }
}

/// How kustomize directories are rendered (`lint`, `rehearse --plan`).
#[derive(Debug, Clone, Args)]
pub struct KustomizeArgs {
    /// How long `kubectl kustomize` may take to render one kustomize directory; then it,
    /// and what it started (git for a remote base), is stopped and the run fails.
    #[arg(long, env = "CHECKER_KUSTOMIZE_TIMEOUT", value_name = "D", default_value = KUSTOMIZE_TIMEOUT,
        value_parser = super::args::parse_positive_duration, allow_negative_numbers = true)]
    pub kustomize_timeout: Duration,
}

/// The default of `--kustomize-timeout`: [`kustomize::DEFAULT_TIMEOUT`] (a test keeps
/// them equal).
const KUSTOMIZE_TIMEOUT: &str = "60s";

impl KustomizeArgs {
    /// The renderer these flags describe.
    pub fn kustomize(&self) -> Kustomize {
        Kustomize {
            timeout: self.kustomize_timeout,
            ..Kustomize::default()
        }
    }
}

/// One sentence for a kustomize render that ran out of time: the library's, and the flag
/// that raises the limit.
pub fn render_hint(e: &manifests::ReadError) -> &'static str {
    match e {
        manifests::ReadError::Render(kustomize::RenderError::TimedOut { .. }) => {
            " (--kustomize-timeout raises the limit)"
        }
        _ => "",
    }
}

/// Parses `NAME=VERSION`.
pub fn parse_version_of(s: &str) -> Result<(String, String), String> {
    match s.trim().split_once('=') {
        Some((name, version)) if !name.trim().is_empty() && !version.trim().is_empty() => {
            protocol::validate_version(version.trim()).map_err(|e| e.to_string())?;
            Ok((name.trim().to_owned(), version.trim().to_owned()))
        }
        _ => Err("must be NAME=VERSION (a subset, Service or workload name and the version it answers with)".to_owned()),
    }
}

/// The split derived from `sources` (kustomize directories rendered), or one sentence
/// saying why there is none.
pub fn derive(
    sources: &[String],
    args: &DeriveArgs,
    sni: Option<&str>,
) -> Result<(Expectation, Derivation), String> {
    // The sentences quote the manifests: escaped for the terminal.
    let set = manifests::read_rendering(sources, &Kustomize::default()).map_err(|e| {
        format!(
            "cannot read the manifests: {}",
            protocol::escape(e.to_string())
        )
    })?;
    let derivation = manifests::derive(&set, &args.options_with(sni)).map_err(|e| {
        format!(
            "cannot derive the expected split from the manifests: {}",
            protocol::escape(e.to_string())
        )
    })?;
    let expectation = Expectation::from_derivation(&derivation).map_err(|e| {
        protocol::escape(format!(
            "the split derived from the manifests ({}) cannot be checked: {e}",
            derivation.expect_text()
        ))
    })?;
    Ok((expectation, derivation))
}

/// What the derivation output says about its version names when a probe other than the
/// echo reads the versions: the names must be what the probe captures, or what
/// `--version-map` calls the captures. `None` for the echo protocol without a map.
pub fn probe_names_note(spec: &ProbeSpec, expect: &Expectation) -> Option<String> {
    if spec.kind == ProbeKind::Echo && spec.tls.is_none() && spec.version_map.is_empty() {
        return None;
    }
    let source = match spec.tls.as_ref().and_then(|t| t.version_from) {
        Some(field) => format!("--tls-version-from {field}"),
        None => format!("--probe {}", spec.kind.name()),
    };
    let (mut named, mut as_is, mut never) = (Vec::new(), Vec::new(), Vec::new());
    for v in expect.versions() {
        match naming::fit(spec, &v.name) {
            NameFit::Named => named.push(v.name.as_str()),
            NameFit::CapturedAsIs => as_is.push(v.name.as_str()),
            NameFit::CannotMatch(why) => never.push(format!("{} ({why})", v.name)),
        }
    }
    let mut out = String::new();
    if !named.is_empty() {
        let _ = writeln!(
            out,
            "versions {} are named by the probe or --version-map",
            named.join(", ")
        );
    }
    if !as_is.is_empty() {
        let _ = writeln!(
            out,
            "versions {} count only if {source} captures exactly these values: no --version-map entry names them",
            as_is.join(", ")
        );
    }
    if !never.is_empty() {
        let _ = writeln!(
            out,
            "⚠ versions {} cannot match what {source} reads; name the values with --version-map VALUE=NAME",
            never.join(", ")
        );
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_name_is_a_dns_name() {
        assert_eq!(
            parse_server_name("tcp-echo.example.com."),
            Ok("tcp-echo.example.com".to_owned())
        );
        assert_eq!(parse_server_name("localhost"), Ok("localhost".to_owned()));
        for bad in [
            "",
            "*.example.com",
            "a..b",
            "-a.b",
            "a b",
            "10.0.0.1",
            "::1",
            "é.example",
        ] {
            assert!(parse_server_name(bad).is_err(), "{bad:?}");
        }
        assert!(parse_server_name(&"a".repeat(64)).is_err());
    }

    #[test]
    fn the_kustomize_timeout_defaults_to_the_librarys() {
        assert_eq!(
            super::super::args::parse_positive_duration(KUSTOMIZE_TIMEOUT),
            Ok(kustomize::DEFAULT_TIMEOUT)
        );
    }
}
