//! The gateway's own view: what the gateway was told (its listener's `tcp_proxy`
//! clusters and weights, from an Envoy `/config_dump` or `istioctl proxy-config listener
//! -o json`), which version each cluster is, and what it counted (`upstream_cx_total`
//! per cluster from Envoy's admin `/stats` or `/stats/prometheus`, Istio's
//! `istio_tcp_connections_opened_total` by `destination_version`, or a Prometheus
//! server's API).
//!
//! One module per job, data flowing one way:
//! [`input`] (bounded reads) → [`config_dump`] (the programmed route) → [`cluster`]
//! (Istio's cluster names) → [`mapping`] (cluster → version) → [`stats`] /
//! [`exposition`] (counter texts) → [`counters`] (snapshots, deltas, resets, sources
//! added up) → [`observe`] (the split of every connection the gateway opened, judged)
//! and [`layers`] (intent vs programmed vs counted). [`fetch`] is the bounded HTTP GET
//! client for admin and scrape URLs, [`prometheus`] the Prometheus server's query API.
//! [`view`] puts them together for one check: the programmed layer of every gateway set
//! against the intent, waiting until it is programmed, and the counters around sampling.
//!
//! Everything here returns plain data and typed errors; nothing prints, and no message
//! names a command-line flag (the binary adds those).

pub mod cluster;
pub mod config_dump;
pub mod counters;
pub mod exposition;
pub mod fetch;
pub mod input;
pub mod layers;
pub mod mapping;
pub mod observe;
pub mod prometheus;
pub mod stats;
pub mod view;
