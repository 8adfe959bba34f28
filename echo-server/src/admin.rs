//! The admin HTTP server: `/healthz`, `/readyz`, `/version` and `/metrics`.
//!
//! `/readyz` answers 503 as soon as a shutdown starts, so Kubernetes takes the pod out
//! of its endpoints while the echo listeners keep accepting for the drain delay.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::metrics;
use crate::shutdown::Shared;

/// The crate version this binary was built from.
pub const BUILD_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git revision baked in at build time (`GIT_REVISION`, else `git rev-parse`, else `unknown`).
pub const GIT_REVISION: &str = env!("ECHO_SERVER_GIT_REVISION");

/// The body of `/version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct VersionInfo {
    /// The version that prefixes replies (`one`, `v2`, ...).
    pub version: String,
    /// The echo-server crate version.
    pub build_version: String,
    /// The git revision of the build.
    pub git_revision: String,
}

impl VersionInfo {
    /// The version information of this build serving `version`.
    pub fn new(version: &str) -> Self {
        Self {
            version: version.to_owned(),
            build_version: BUILD_VERSION.to_owned(),
            git_revision: GIT_REVISION.to_owned(),
        }
    }
}

/// What the admin handlers read.
#[derive(Debug)]
pub(crate) struct AdminState {
    pub(crate) shared: Arc<Shared>,
    pub(crate) registry: Registry,
    pub(crate) info: VersionInfo,
}

/// The admin routes.
pub(crate) fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<Arc<AdminState>>) -> (StatusCode, &'static str) {
    if state.shared.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn version(State(state): State<Arc<AdminState>>) -> Json<VersionInfo> {
    Json(state.info.clone())
}

async fn metrics(State(state): State<Arc<AdminState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::render(&state.registry),
    )
}
