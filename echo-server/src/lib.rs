//! tcp-canary's echo server: prefixes every echoed line with its version.
//!
//! The binary is a thin wrapper over this library; the wire itself lives in the
//! `protocol` crate, shared with the checker. `checker rehearse` runs servers in-process:
//!
//! ```no_run
//! # async fn demo() -> Result<(), echo_server::Error> {
//! let mut config = echo_server::Config::new(vec![0], "canary".to_owned());
//! config.listen = std::net::Ipv4Addr::LOCALHOST.into();
//! config.admin_port = None;
//! let server = echo_server::Server::bind(config).await?;
//! let addr = server.local_addrs()[0];
//! let handle = server.handle();
//! let running = tokio::spawn(server.run());
//! // ... talk to `addr` ...
//! handle.shutdown();
//! # let _ = (addr, running);
//! # Ok(())
//! # }
//! ```
//!
//! The library installs no signal handler and no global tracing subscriber, and each
//! server has its own metrics registry, so several servers can share one process.

pub mod admin;
pub mod config;
pub mod descriptors;
mod handler;
pub mod listener;
pub mod metrics;
mod rate_limit;
pub mod server;
pub mod shutdown;
pub mod tls;

pub use config::{Config, ConfigError};
pub use server::{Error, Server};
pub use shutdown::{ServerHandle, ShutdownReport};

/// Exit code after a clean shutdown.
pub const EXIT_OK: i32 = 0;
/// Exit code when a port cannot be bound or serving fails.
pub const EXIT_FAILURE: i32 = 1;
/// Exit code for bad arguments.
pub const EXIT_USAGE: i32 = 2;
