//! The signals that stop a command line: the first one stops gracefully (what that
//! means is the binary's: print the report so far, stop the rehearsal's children, drain
//! the echo server), a second one sooner.
//!
//! [`Signals::watch`] installs every handler before it returns, so a signal that arrives
//! a moment later is queued, never the default kill.

use std::fmt;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A signal that asks the process to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stop {
    /// SIGINT: Ctrl-C.
    Interrupt,
    /// SIGTERM: a service manager, `kill`, Kubernetes.
    Terminate,
    /// SIGHUP: the terminal closed.
    Hangup,
}

impl Stop {
    /// The signal's number (2, 15, 1).
    pub fn number(self) -> i32 {
        match self {
            Stop::Interrupt => 2,
            Stop::Terminate => 15,
            Stop::Hangup => 1,
        }
    }

    /// The signal's name: `SIGINT`, `SIGTERM`, `SIGHUP`.
    pub fn name(self) -> &'static str {
        match self {
            Stop::Interrupt => "SIGINT",
            Stop::Terminate => "SIGTERM",
            Stop::Hangup => "SIGHUP",
        }
    }

    /// The exit status a shell reports for a process the signal ended: 128 + its number
    /// (130 after Ctrl-C, 143 after SIGTERM, 129 after SIGHUP).
    pub fn exit_code(self) -> i32 {
        128 + self.number()
    }

    fn kind(self) -> SignalKind {
        match self {
            Stop::Interrupt => SignalKind::interrupt(),
            Stop::Terminate => SignalKind::terminate(),
            Stop::Hangup => SignalKind::hangup(),
        }
    }
}

/// A signal whose handler cannot be installed.
#[derive(Debug)]
pub struct WatchError {
    /// The signal.
    pub signal: Stop,
    /// Why.
    pub source: std::io::Error,
}

impl fmt::Display for WatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot watch {}: {}", self.signal.name(), self.source)
    }
}

impl std::error::Error for WatchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Stop signals being watched, received in the order they arrive.
#[derive(Debug)]
pub struct Signals {
    received: mpsc::UnboundedReceiver<Stop>,
}

impl Signals {
    /// Watches `stops` from now on; fails when one cannot be watched. Call it inside a
    /// tokio runtime.
    pub fn watch(stops: &[Stop]) -> Result<Self, WatchError> {
        let (signals, unwatched) = Self::install(stops);
        match unwatched.into_iter().next() {
            Some(error) => Err(error),
            None => Ok(signals),
        }
    }

    /// Watches `stops` from now on; one that cannot be watched keeps its default action,
    /// with a warning. Call it inside a tokio runtime.
    pub fn watch_or_warn(stops: &[Stop]) -> Self {
        let (signals, unwatched) = Self::install(stops);
        for WatchError { signal, source } in unwatched {
            tracing::warn!(
                "cannot watch for {} ({source}); it will not stop gracefully",
                signal.name()
            );
        }
        signals
    }

    /// Installs a handler for each of `stops`, forwarding what it receives; the ones
    /// that cannot be installed are returned beside.
    fn install(stops: &[Stop]) -> (Self, Vec<WatchError>) {
        let (sender, received) = mpsc::unbounded_channel();
        let mut unwatched = Vec::new();
        for &stop in stops {
            match signal(stop.kind()) {
                Ok(mut stream) => {
                    let sender = sender.clone();
                    tokio::spawn(async move {
                        while stream.recv().await.is_some() {
                            if sender.send(stop).is_err() {
                                return;
                            }
                        }
                    });
                }
                Err(source) => unwatched.push(WatchError {
                    signal: stop,
                    source,
                }),
            }
        }
        (Self { received }, unwatched)
    }

    /// The next signal; `None` once none can arrive any more (the runtime is shutting
    /// down, or none was watched).
    pub async fn recv(&mut self) -> Option<Stop> {
        self.received.recv().await
    }

    /// The usual two steps, run by a task of their own: the first signal calls `first`
    /// and then cancels the returned token; a second one exits the process at once with
    /// its [`Stop::exit_code`].
    pub fn cancel_then_exit(
        mut self,
        first: impl FnOnce(Stop) + Send + 'static,
    ) -> CancellationToken {
        let stop = CancellationToken::new();
        let token = stop.clone();
        tokio::spawn(async move {
            let Some(signal) = self.recv().await else {
                return;
            };
            first(signal);
            token.cancel();
            if let Some(again) = self.recv().await {
                std::process::exit(again.exit_code());
            }
        });
        stop
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_the_shell_s() {
        assert_eq!(Stop::Interrupt.exit_code(), 130);
        assert_eq!(Stop::Terminate.exit_code(), 143);
        assert_eq!(Stop::Hangup.exit_code(), 129);
    }
}
