//! The gateway's own view on the command line (`verify`, `observe`): Envoy admin
//! addresses, a saved config dump, the listener's port and the admin's timeout, turned
//! into the library's [`GatewayConfig`] with one sentence (and exit code) when they
//! cannot be.

use std::time::Duration;

use clap::Args;

use checker_core::exit;
use checker_core::gateway::config_dump::{self, ChainChoice, ConfigDumpError, ports_text};
use checker_core::gateway::fetch::{self, Limits};
use checker_core::gateway::input::{MAX_CONFIG_DUMP_BYTES, MAX_STATS_BYTES, read_source};
use checker_core::gateway::mapping::MapError;
use checker_core::gateway::view::{self, GatewayConfig, SavedDump, ViewError};
use manifests::Derivation;

use super::args::parse_positive_duration;
use super::expect_from::DeriveArgs;

/// Where the gateway's own view is read.
#[derive(Debug, Clone, Args)]
pub struct GatewayArgs {
    /// An Envoy admin address of the gateway, e.g. http://127.0.0.1:15000 (Istio: kubectl port-forward deploy/istio-ingressgateway -n istio-system 15000); repeat it for several gateway pods: their counts add.
    #[arg(
        long,
        env = "CHECKER_GATEWAY_ADMIN",
        value_name = "URL",
        value_delimiter = ','
    )]
    pub gateway_admin: Vec<String>,
    /// What the gateway was told, saved: Envoy's /config_dump, or the array `istioctl proxy-config listener POD --port P -o json` prints; - reads standard input.
    #[arg(long, env = "CHECKER_CONFIG_DUMP", value_name = "FILE|-")]
    pub config_dump: Option<String>,
    /// The gateway listener's port [default: --route-port, else the port the manifests' route matches, else (verify) the target's port].
    #[arg(long, env = "CHECKER_LISTENER_PORT", value_name = "PORT", value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub listener_port: Option<u32>,
    /// How long one request to an admin (or a scrape, or Prometheus) may take.
    #[arg(long, env = "CHECKER_ADMIN_TIMEOUT", value_name = "D", default_value = "10s", value_parser = parse_positive_duration, allow_negative_numbers = true)]
    pub admin_timeout: Duration,
}

/// One sentence and its exit code.
pub type Failure = (String, i32);

impl GatewayArgs {
    /// Whether any gateway source was given.
    pub fn given(&self) -> bool {
        !self.gateway_admin.is_empty() || self.config_dump.is_some()
    }

    /// The bounds of every request to an admin.
    pub fn limits(&self) -> Limits {
        Limits {
            timeout: self.admin_timeout,
            max_bytes: MAX_STATS_BYTES,
        }
    }

    /// The saved dump, read and parsed (bounded).
    fn saved_dump(&self) -> Result<Option<SavedDump>, Failure> {
        let Some(name) = &self.config_dump else {
            return Ok(None);
        };
        let parsed = read_source(name, MAX_CONFIG_DUMP_BYTES)
            .map_err(ConfigDumpError::from)
            .and_then(|bytes| config_dump::parse(&bytes));
        match parsed {
            Ok(dump) => Ok(Some(SavedDump {
                name: name.clone(),
                dump,
            })),
            Err(e) => Err((
                format!(
                    "--config-dump {}: {}",
                    protocol::escape(name),
                    protocol::escape(e.to_string())
                ),
                exit::USAGE,
            )),
        }
    }

    /// The library's configuration, `None` when no gateway source was given. `port`
    /// is the listener's port when the flags and manifests do not say (the target's).
    pub async fn config(
        &self,
        derive: &DeriveArgs,
        derivation: Option<&Derivation>,
        port: Option<u32>,
    ) -> Result<Option<GatewayConfig>, Failure> {
        if !self.given() {
            return Ok(None);
        }
        for url in &self.gateway_admin {
            check_url(url, "--gateway-admin")?;
        }
        let dump = self.saved_dump()?;
        let port = match listener_port(self.listener_port, derive.route_port, derivation)? {
            Some(p) => p,
            None => match port {
                Some(p) => p,
                None => return Err(self.unknown_port(dump.as_ref()).await),
            },
        };
        Ok(Some(GatewayConfig {
            admins: self.gateway_admin.clone(),
            dump,
            port,
            chain: ChainChoice::PlainTcp,
            overrides: derive.version_of.iter().cloned().collect(),
            derivation: derivation.cloned(),
            limits: self.limits(),
        }))
    }

    /// The sentence when no flag, manifest or target names the listener's port: it
    /// names the ports the gateway's listeners bind.
    async fn unknown_port(&self, dump: Option<&SavedDump>) -> Failure {
        let ports = match (dump, self.gateway_admin.first()) {
            (Some(saved), _) => Ok(saved.dump.ports()),
            (None, Some(admin)) => view::fetch_dump(admin, self.limits())
                .await
                .map(|d| d.ports()),
            (None, None) => Ok(Vec::new()),
        };
        match ports {
            Ok(ports) => (
                format!(
                    "name the gateway listener's port with --listener-port or --route-port (the gateway's listeners are on {})",
                    ports_text(&ports)
                ),
                exit::USAGE,
            ),
            Err(e) => view_failure(&e),
        }
    }
}

/// The listener's port from the flags, else from the manifests' route; `None` when neither says.
pub fn listener_port(
    listener_port: Option<u32>,
    route_port: Option<u32>,
    derivation: Option<&Derivation>,
) -> Result<Option<u32>, Failure> {
    if let Some(p) = listener_port.or(route_port) {
        return Ok(Some(p));
    }
    let Some(d) = derivation else {
        return Ok(None);
    };
    let mut ports = d.route_ports.clone();
    ports.sort_unstable();
    ports.dedup();
    match ports.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        several => Err((
            format!(
                "the manifests' route {} matches {}: name the gateway listener's with --listener-port",
                protocol::escape(&d.route),
                ports_text(several)
            ),
            exit::USAGE,
        )),
    }
}

/// Checks that `url` is usable before anything is read from it.
pub fn check_url(url: &str, flag: &str) -> Result<(), Failure> {
    match fetch::check_url(url) {
        Ok(()) => Ok(()),
        Err(e) => Err((
            format!("{flag}: {}", protocol::escape(e.to_string())),
            exit::USAGE,
        )),
    }
}

/// The sentence and exit code of a view that could not be read.
pub fn view_failure(e: &ViewError) -> Failure {
    let hint = match e {
        ViewError::Fetch(_) => {
            " (--gateway-admin; in Istio: kubectl port-forward deploy/istio-ingressgateway -n istio-system 15000)"
        }
        ViewError::Map {
            error: MapError::Unmapped { .. } | MapError::SeveralVersions { .. },
            ..
        } => " (--version-of CLUSTER_OR_SUBSET=VERSION names it, or --expect-from the manifests)",
        ViewError::Counters(_) => " (--gateway-admin)",
        _ => "",
    };
    (
        format!("{}{hint}", protocol::escape(e.to_string())),
        e.exit_code(),
    )
}

/// The target's port, when the target is `HOST:PORT`.
pub fn target_port(target: &str) -> Option<u32> {
    target.rsplit_once(':')?.1.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listener_port_comes_from_the_flags_then_the_manifests() {
        assert_eq!(listener_port(Some(1), Some(2), None), Ok(Some(1)));
        assert_eq!(listener_port(None, Some(2), None), Ok(Some(2)));
        assert_eq!(listener_port(None, None, None), Ok(None));
        assert_eq!(target_port("gw.example:31400"), Some(31400));
        assert_eq!(target_port("[::1]:9"), Some(9));
    }
}
