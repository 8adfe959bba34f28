//! The server: binds every listener, serves, and runs the shutdown sequence.
//!
//! ```text
//! config --> listeners (per port) --permit--> handler (per connection) --> protocol --> socket
//!                 ^                                   ^
//!             shutdown state --------------------------+     admin reads metrics + shutdown state
//! ```

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::{self, AdminState, VersionInfo};
use crate::config::{Config, ConfigError};
use crate::handler::HandlerContext;
use crate::listener;
use crate::metrics::Metrics;
use crate::shutdown::{ServerHandle, Shared, ShutdownReport};
use crate::tls::Acceptor;

/// Why a server could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An echo port could not be bound.
    #[error("cannot listen on echo port {addr}: {source}")]
    Bind {
        /// The address that could not be bound.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The admin port could not be bound.
    #[error("cannot listen on admin port {addr}: {source}")]
    AdminBind {
        /// The address that could not be bound.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The admin HTTP server stopped with an error.
    #[error("the admin HTTP server failed: {0}")]
    Admin(io::Error),
    /// The TLS certificate or key cannot be served (boxed: it names two files and
    /// rustls' reason, and every other error is small).
    #[error(transparent)]
    Tls(Box<crate::tls::TlsError>),
}

impl From<crate::tls::TlsError> for Error {
    fn from(e: crate::tls::TlsError) -> Self {
        Error::Tls(Box::new(e))
    }
}

/// Stops what [`Server::run`] started when its future is dropped: not ready, no more
/// accepting, every connection cut, the admin server aborted. A no-op after a completed run.
struct StopOnDrop {
    shared: Arc<Shared>,
    admin: Option<tokio::task::AbortHandle>,
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.shared.ready.store(false, Ordering::SeqCst);
        self.shared.stop_accepting.cancel();
        self.shared.cut.cancel();
        if let Some(admin) = &self.admin {
            admin.abort();
        }
    }
}

/// A bound echo server, ready to [`run`](Server::run).
#[derive(Debug)]
pub struct Server {
    config: Config,
    listeners: Vec<TcpListener>,
    local_addrs: Vec<SocketAddr>,
    admin: Option<(TcpListener, SocketAddr)>,
    registry: Registry,
    shared: Arc<Shared>,
    tls: Option<Acceptor>,
}

impl Server {
    /// Validates `config` and binds every echo listener and the admin listener.
    ///
    /// Port 0 asks for a free port. If any port cannot be bound, the ones already
    /// bound are closed again and the error names the failing address.
    pub async fn bind(config: Config) -> Result<Server, Error> {
        config.validate()?;
        // The certificate first: a bad file is refused before any port is taken.
        let tls = config.tls.as_ref().map(crate::tls::acceptor).transpose()?;
        let mut listeners = Vec::with_capacity(config.ports.len());
        let mut local_addrs = Vec::with_capacity(config.ports.len());
        for &port in &config.ports {
            let addr = SocketAddr::new(config.listen, port);
            let buffer = config
                .socket_buffer
                .map(|b| u32::try_from(b).unwrap_or(u32::MAX));
            let bound =
                listener::bind(addr, buffer).map_err(|source| Error::Bind { addr, source })?;
            let local = bound
                .local_addr()
                .map_err(|source| Error::Bind { addr, source })?;
            listeners.push(bound);
            local_addrs.push(local);
        }
        let admin = match config.admin_port {
            None => None,
            Some(port) => {
                let addr = SocketAddr::new(config.listen, port);
                let bound = listener::bind(addr, None)
                    .map_err(|source| Error::AdminBind { addr, source })?;
                let local = bound
                    .local_addr()
                    .map_err(|source| Error::AdminBind { addr, source })?;
                Some((bound, local))
            }
        };
        let (metrics, registry) = Metrics::new(&config.version);
        Ok(Server {
            config,
            listeners,
            local_addrs,
            admin,
            registry,
            shared: Arc::new(Shared::new(metrics)),
            tls,
        })
    }

    /// The echo listeners' addresses, in config order.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.local_addrs.clone()
    }

    /// The admin server's address, if it runs.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|(_, addr)| *addr)
    }

    /// A handle to shut down or abort the server and read its state.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The configuration the server was bound with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Serves until the shutdown sequence completes, then reports drained and cut connections.
    ///
    /// The phases: start serving (accept loops, admin server, ready), wait for a shutdown
    /// or abort, the drain delay, stop accepting and let open connections finish until
    /// the deadline, stop the admin server, report.
    pub async fn run(self) -> Result<ShutdownReport, Error> {
        let Server {
            config,
            listeners,
            local_addrs,
            admin,
            registry,
            shared,
            tls,
        } = self;
        log_listening(&config, &local_addrs, admin.as_ref().map(|(_, addr)| *addr));
        // If this future is dropped before the sequence completes (a timeout, a select!,
        // an aborted task), its spawned handlers and admin server must not live on.
        let mut on_drop = StopOnDrop {
            shared: Arc::clone(&shared),
            admin: None,
        };
        let running = start(&config, listeners, admin, registry, &shared, tls);
        on_drop.admin = running
            .admin_task
            .as_ref()
            .map(tokio::task::JoinHandle::abort_handle);
        if !shared.shutting_down.load(Ordering::SeqCst) {
            shared.ready.store(true, Ordering::SeqCst);
        }

        let deadline = wait_for_shutdown(&config, &shared).await;
        let Running {
            accepting,
            tracker,
            admin_task,
            admin_stop,
        } = running;
        stop_accepting_and_finish(&shared, accepting, &tracker, deadline).await;
        admin_stop.cancel();
        let admin_result = stop_admin(admin_task, deadline, &shared).await;
        let report = final_report(&shared);
        admin_result.map_err(Error::Admin)?;
        Ok(report)
    }
}

/// What [`start`] spawned: the accept loops, the connection handlers' tracker and the
/// admin server with its stop token.
struct Running {
    accepting: JoinSet<()>,
    tracker: TaskTracker,
    admin_task: Option<JoinHandle<io::Result<()>>>,
    admin_stop: CancellationToken,
}

/// Logs the one "listening" line with the resolved limits.
fn log_listening(config: &Config, local_addrs: &[SocketAddr], admin: Option<SocketAddr>) {
    let echo = local_addrs
        .iter()
        .map(SocketAddr::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let admin_shown = admin.map_or_else(|| "none".to_owned(), |addr| addr.to_string());
    tracing::info!(
        version = %config.version,
        echo = %echo,
        admin = %admin_shown,
        max_line = config.max_line,
        max_connections = config.max_connections,
        tls = config.tls.is_some(),
        socket_buffer = config.socket_buffer.map_or_else(|| "auto".to_owned(), |b| b.to_string()),
        idle_timeout = %config.idle_timeout.map_or_else(|| "none".to_owned(), |d| humantime::format_duration(d).to_string()),
        drain_delay = %humantime::format_duration(config.drain_delay),
        shutdown_timeout = %humantime::format_duration(config.shutdown_timeout),
        "listening"
    );
}

/// Spawns one accept loop per echo listener (sharing the connection permits) and the
/// admin server.
fn start(
    config: &Config,
    listeners: Vec<TcpListener>,
    admin: Option<(TcpListener, SocketAddr)>,
    registry: Registry,
    shared: &Arc<Shared>,
    tls: Option<Acceptor>,
) -> Running {
    let ctx = Arc::new(HandlerContext {
        version: config.version.as_bytes().into(),
        max_line: config.max_line,
        idle_timeout: config.idle_timeout,
        shared: Arc::clone(shared),
        too_long_log: std::sync::Mutex::new(crate::rate_limit::RateLimitedLog::new()),
        tls,
        tls_failure_log: std::sync::Mutex::new(crate::rate_limit::RateLimitedLog::new()),
    });
    let limit = Arc::new(Semaphore::new(config.max_connections));
    let tracker = TaskTracker::new();
    let mut accepting = JoinSet::new();
    for bound in listeners {
        accepting.spawn(listener::accept_loop(
            bound,
            Arc::clone(&limit),
            Arc::clone(&ctx),
            tracker.clone(),
        ));
    }
    let admin_stop = CancellationToken::new();
    let admin_task = admin.map(|(bound, _)| {
        let state = Arc::new(AdminState {
            shared: Arc::clone(shared),
            registry,
            info: VersionInfo::new(&config.version),
        });
        tokio::spawn(admin::serve(
            bound,
            admin::router(state),
            config.admin_limits,
            admin_stop.clone(),
            Arc::clone(shared),
        ))
    });
    Running {
        accepting,
        tracker,
        admin_task,
        admin_stop,
    }
}

/// Waits for a shutdown or an abort, then (unless aborted) keeps accepting for the drain
/// delay. Returns the deadline for open connections, counted from the request.
async fn wait_for_shutdown(config: &Config, shared: &Shared) -> Instant {
    tokio::select! {
        () = shared.requested.cancelled() => {}
        () = shared.aborted.cancelled() => {}
    }
    let deadline = crate::handler::deadline_after(config.shutdown_timeout);
    if shared.aborted.is_cancelled() {
        tracing::warn!(
            open = shared.metrics.connections_active.get(),
            "aborting: cutting every connection"
        );
    } else {
        tracing::info!(
            open = shared.metrics.connections_active.get(),
            drain_delay = %humantime::format_duration(config.drain_delay),
            shutdown_timeout = %humantime::format_duration(config.shutdown_timeout),
            "shutdown started: /readyz is 503, still accepting during the drain delay"
        );
        tokio::select! {
            () = tokio::time::sleep(config.drain_delay) => {}
            () = shared.aborted.cancelled() => {}
        }
    }
    deadline
}

/// Stops the accept loops, lets open connections finish until `deadline` (or an abort),
/// then cuts the rest and waits for every handler to end.
async fn stop_accepting_and_finish(
    shared: &Shared,
    mut accepting: JoinSet<()>,
    tracker: &TaskTracker,
    deadline: Instant,
) {
    shared.stop_accepting.cancel();
    while accepting.join_next().await.is_some() {}
    tracker.close();
    if !shared.cut.is_cancelled() {
        tracing::info!(
            open = shared.metrics.connections_active.get(),
            "stopped accepting; letting open connections finish"
        );
        tokio::select! {
            () = tracker.wait() => {}
            () = tokio::time::sleep_until(deadline) => {}
            () = shared.aborted.cancelled() => {}
        }
        if !tracker.is_empty() {
            tracing::info!(
                open = shared.metrics.connections_active.get(),
                "shutdown deadline reached: cutting open connections"
            );
        }
    }
    shared.cut.cancel();
    tracker.wait().await;
}

/// Waits for the admin server (already told to stop) until `deadline` or an abort.
///
/// A graceful HTTP shutdown waits for requests in flight, and one whose headers never
/// end would wait forever: the admin server gets no later deadline.
async fn stop_admin(
    admin_task: Option<JoinHandle<io::Result<()>>>,
    deadline: Instant,
    shared: &Shared,
) -> io::Result<()> {
    let Some(mut task) = admin_task else {
        return Ok(());
    };
    tokio::select! {
        biased;
        joined = &mut task => joined.unwrap_or(Ok(())),
        () = tokio::time::sleep_until(deadline) => {
            task.abort();
            Ok(())
        }
        () = shared.aborted.cancelled() => {
            task.abort();
            Ok(())
        }
    }
}

/// The drained/cut counts, logged as the last line.
fn final_report(shared: &Shared) -> ShutdownReport {
    let metrics = &shared.metrics;
    let report = ShutdownReport {
        drained: metrics.connections_drained.get(),
        cut: metrics.connections_cut.get(),
        aborted: shared.aborted.is_cancelled(),
        accepted: metrics.connections_accepted.get(),
        rejected: metrics.connections_rejected.get(),
    };
    tracing::info!(
        drained = report.drained,
        cut = report.cut,
        aborted = report.aborted,
        accepted = report.accepted,
        rejected = report.rejected,
        "shutdown complete"
    );
    report
}
