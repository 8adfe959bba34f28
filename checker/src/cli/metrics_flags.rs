//! `--metrics-listen`, shared by `watch` and `observe`: the flag, its address rule and
//! the start of the listener ([`crate::metrics_http`]).

use std::net::SocketAddr;

use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::metrics_http::{self, Render};

/// The `--metrics-listen` flag.
#[derive(Debug, Clone, Args)]
pub struct MetricsListenArgs {
    /// Serve Prometheus metrics (/metrics) and /healthz on this address while running:
    /// PORT or the bare flag listen on loopback (127.0.0.1, port 9464 by default); any
    /// other address must be written out as an IP (0.0.0.0:9464 in a pod), never a name.
    #[arg(
        long,
        env = "CHECKER_METRICS_LISTEN",
        value_name = "ADDR",
        num_args = 0..=1,
        default_missing_value = DEFAULT_METRICS_LISTEN,
        value_parser = parse_metrics_listen
    )]
    pub metrics_listen: Option<SocketAddr>,
}

/// Where the bare `--metrics-listen` listens: loopback only.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";

/// Parses `--metrics-listen`: `PORT` (or `:PORT`) and `localhost:PORT` are loopback; a
/// non-loopback address is taken only as an IP written out (`0.0.0.0:9464`,
/// `[::]:9464`), never from a host name that could resolve anywhere.
pub fn parse_metrics_listen(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    let port_only = s.strip_prefix(':').unwrap_or(s);
    if let Ok(port) = port_only.parse::<u16>() {
        return Ok(SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port)));
    }
    if let Some(port) = s.strip_prefix("localhost:") {
        return port
            .parse::<u16>()
            .map(|port| SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port)))
            .map_err(|_| format!("{port:?} is not a port number"));
    }
    s.parse::<SocketAddr>().map_err(|_| {
        "must be PORT (loopback), localhost:PORT, or an IP address and port such as \
         127.0.0.1:9464 or 0.0.0.0:9464 (a host name is refused: it could resolve to \
         an address open to the network)"
            .to_owned()
    })
}

/// Starts the metrics listener on `addr` serving `metrics` (stopped with `stop`); says
/// on stderr where it listens.
pub async fn serve<M: Render>(
    addr: SocketAddr,
    metrics: M,
    stop: &CancellationToken,
) -> Result<(), String> {
    let listener = metrics_http::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} for --metrics-listen: {e}"))?;
    let bound = listener.local_addr().unwrap_or(addr);
    if !bound.ip().is_loopback() {
        tracing::warn!(%bound, "--metrics-listen: serving the metrics beyond this machine");
    }
    eprintln!("checker: metrics on http://{bound}/metrics");
    tokio::spawn(metrics_http::serve(
        listener,
        metrics,
        metrics_http::Limits::default(),
        stop.child_token(),
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_alone_are_loopback_and_names_are_refused() {
        let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
        assert_eq!(parse_metrics_listen("9464"), Ok(loopback(9464)));
        assert_eq!(parse_metrics_listen(":9465"), Ok(loopback(9465)));
        assert_eq!(parse_metrics_listen("localhost:1"), Ok(loopback(1)));
        assert_eq!(
            parse_metrics_listen("0.0.0.0:9464"),
            Ok(SocketAddr::from(([0, 0, 0, 0], 9464)))
        );
        assert!(parse_metrics_listen("metrics.example:9464").is_err());
        assert!(parse_metrics_listen("localhost:x").is_err());
    }
}
