//! The server's counters, in one Prometheus registry per [`crate::Server`].
//!
//! Every metric carries the `version` label. Handlers add to the counters once per
//! read batch, never once per line, and nothing here is global, so several servers
//! can share one process.

use std::borrow::Cow;
use std::sync::atomic::AtomicI64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The prefix of every metric name.
pub const PREFIX: &str = "echo";

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The counters of one server; cloning shares them.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// Connections handed to a handler.
    pub connections_accepted: Counter,
    /// Connections open right now.
    pub connections_active: Gauge<i64, AtomicI64>,
    /// Connections closed at once because the connection limit was reached.
    pub connections_rejected: Counter,
    /// Connections closed because they were idle longer than the idle timeout.
    pub connections_idle_closed: Counter,
    /// Connections that finished on their own while the server was shutting down.
    pub connections_drained: Counter,
    /// Connections closed by the server at the shutdown deadline or on abort.
    pub connections_cut: Counter,
    /// Connections closed because a line exceeded the line limit.
    pub lines_too_long: Counter,
    /// Lines answered.
    pub lines_echoed: Counter,
    /// Bytes read from clients.
    pub bytes_received: Counter,
    /// Bytes written to clients.
    pub bytes_sent: Counter,
    /// Failed `accept` calls (out of file descriptors and the like).
    pub accept_errors: Counter,
    /// TLS handshakes that failed or stalled past the idle timeout (TLS ports only).
    pub tls_handshakes_failed: Counter,
    /// Admin HTTP connections open right now.
    pub admin_connections_active: Gauge<i64, AtomicI64>,
    /// Admin HTTP connections closed to make room at the admin connection limit.
    pub admin_connections_evicted: Counter,
}

impl Metrics {
    /// Fresh counters and the registry that exposes them, labelled with `version`.
    pub fn new(version: &str) -> (Self, Registry) {
        let metrics = Self::default();
        let labels = [(Cow::Borrowed("version"), Cow::Owned(version.to_owned()))];
        let mut registry = Registry::with_prefix_and_labels(PREFIX, labels.into_iter());
        let m = &metrics;
        registry.register(
            "connections_accepted",
            "Connections handed to a handler",
            m.connections_accepted.clone(),
        );
        registry.register(
            "connections_active",
            "Connections open right now",
            m.connections_active.clone(),
        );
        registry.register(
            "connections_rejected",
            "Connections closed at once because the connection limit was reached",
            m.connections_rejected.clone(),
        );
        registry.register(
            "connections_idle_closed",
            "Connections closed after the idle timeout",
            m.connections_idle_closed.clone(),
        );
        registry.register(
            "connections_drained",
            "Connections that finished on their own during shutdown",
            m.connections_drained.clone(),
        );
        registry.register(
            "connections_cut",
            "Connections closed by the server at the shutdown deadline or on abort",
            m.connections_cut.clone(),
        );
        registry.register(
            "lines_too_long",
            "Connections closed because a line exceeded the line limit",
            m.lines_too_long.clone(),
        );
        registry.register("lines_echoed", "Lines answered", m.lines_echoed.clone());
        registry.register(
            "bytes_received",
            "Bytes read from clients",
            m.bytes_received.clone(),
        );
        registry.register(
            "bytes_sent",
            "Bytes written to clients",
            m.bytes_sent.clone(),
        );
        registry.register(
            "accept_errors",
            "Failed accept calls, retried after a back-off",
            m.accept_errors.clone(),
        );
        registry.register(
            "tls_handshakes_failed",
            "TLS handshakes that failed or stalled past the idle timeout",
            m.tls_handshakes_failed.clone(),
        );
        registry.register(
            "admin_connections_active",
            "Admin HTTP connections open right now",
            m.admin_connections_active.clone(),
        );
        registry.register(
            "admin_connections_evicted",
            "Admin HTTP connections closed to make room at the admin connection limit",
            m.admin_connections_evicted.clone(),
        );
        (metrics, registry)
    }
}

/// Renders `registry` in the OpenMetrics text format that Prometheus scrapes.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail; an error would only mean a malformed metric.
    if encode(&mut out, registry).is_err() {
        out.clear();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_labelled_with_the_version() {
        let (metrics, registry) = Metrics::new("canary");
        metrics.lines_echoed.inc_by(3);
        metrics.connections_active.set(2);
        let text = render(&registry);
        assert!(
            text.contains("echo_lines_echoed_total{version=\"canary\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("echo_connections_active{version=\"canary\"} 2"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
