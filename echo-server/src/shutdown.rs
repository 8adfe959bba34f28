//! The shutdown sequence's shared state: ready -> draining -> closing -> done.
//!
//! [`ServerHandle::shutdown`] starts the graceful sequence (what SIGTERM does in the
//! binary): `/readyz` turns 503 at once, listeners keep accepting for the drain
//! delay, then stop; open connections may finish until the shutdown deadline
//! (counted from the signal), when the rest are cut. [`ServerHandle::abort`] does all
//! of it at once, like a crashed replica. The library installs no signal handler.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// The state every part of one server reads to know where the shutdown stands.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The server's counters.
    pub(crate) metrics: Metrics,
    /// Whether `/readyz` answers 200.
    pub(crate) ready: AtomicBool,
    /// Set once a shutdown (graceful or not) has begun; connections ending after it count as drained.
    pub(crate) shutting_down: AtomicBool,
    /// Cancelled by [`ServerHandle::shutdown`].
    pub(crate) requested: CancellationToken,
    /// Cancelled by [`ServerHandle::abort`].
    pub(crate) aborted: CancellationToken,
    /// Cancelled when the listeners must stop accepting.
    pub(crate) stop_accepting: CancellationToken,
    /// Cancelled when every open connection must be closed now.
    pub(crate) cut: CancellationToken,
}

impl Shared {
    /// Fresh state for a server that is not ready yet.
    pub(crate) fn new(metrics: Metrics) -> Self {
        Self {
            metrics,
            ready: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            requested: CancellationToken::new(),
            aborted: CancellationToken::new(),
            stop_accepting: CancellationToken::new(),
            cut: CancellationToken::new(),
        }
    }

    /// Whether `/readyz` answers 200: serving and no shutdown begun. Reading both flags
    /// keeps a shutdown that races the server's start from being reported ready.
    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst) && !self.shutting_down.load(Ordering::SeqCst)
    }
}

/// Controls a running [`crate::Server`] from anywhere; cheap to clone.
#[derive(Debug, Clone)]
pub struct ServerHandle {
    pub(crate) shared: Arc<Shared>,
}

impl ServerHandle {
    /// Starts the graceful shutdown sequence (what SIGTERM does); returns at once.
    pub fn shutdown(&self) {
        self.shared.ready.store(false, Ordering::SeqCst);
        self.shared.shutting_down.store(true, Ordering::SeqCst);
        self.shared.requested.cancel();
    }

    /// Dies now: closes the listeners and cuts every open connection (a crashed replica).
    pub fn abort(&self) {
        self.shared.ready.store(false, Ordering::SeqCst);
        self.shared.shutting_down.store(true, Ordering::SeqCst);
        self.shared.aborted.cancel();
        self.shared.stop_accepting.cancel();
        self.shared.cut.cancel();
    }

    /// Connections open right now.
    pub fn active_connections(&self) -> u64 {
        u64::try_from(self.shared.metrics.connections_active.get()).unwrap_or(0)
    }

    /// The server's live counters (a clone shares them), for in-process users.
    pub fn metrics(&self) -> Metrics {
        self.shared.metrics.clone()
    }

    /// Whether `/readyz` answers 200 (serving and not shutting down).
    pub fn is_ready(&self) -> bool {
        self.shared.is_ready()
    }
}

/// What a finished server reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShutdownReport {
    /// Connections that finished on their own after the shutdown began.
    pub drained: u64,
    /// Connections the server closed at the shutdown deadline (or on abort).
    pub cut: u64,
    /// Whether the server was aborted rather than shut down gracefully.
    pub aborted: bool,
    /// Connections accepted over the server's life.
    pub accepted: u64,
    /// Connections rejected over the server's life because of the connection limit.
    pub rejected: u64,
}
