//! Signals for the subcommands that sample until stopped (`verify`, `watch`); the
//! watching itself is cli-support's, shared with `rehearse` and the echo server.

use cli_support::signals::{Signals, Stop};
use tokio_util::sync::CancellationToken;

/// A token cancelled by the first Ctrl-C (SIGINT) or SIGTERM, for `verify`: either stops
/// sampling and the report of what was collected is still printed. A second signal exits
/// at once (130 after Ctrl-C, 143 after SIGTERM). The handlers are installed before this
/// returns, so a signal that arrives right after is never the default kill.
pub fn stop_token() -> CancellationToken {
    Signals::watch_or_warn(&[Stop::Interrupt, Stop::Terminate]).cancel_then_exit(|stop| {
        let name = match stop {
            Stop::Interrupt => "Ctrl-C",
            other => other.name(),
        };
        tracing::warn!(
            "{name}: stopping sampling and printing the report; a second signal quits at once"
        );
    })
}
