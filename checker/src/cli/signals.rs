//! Signals for the subcommands that sample until stopped (`verify`, `watch`).

use tokio_util::sync::CancellationToken;

/// A token cancelled by the first Ctrl-C (SIGINT) or SIGTERM, for `verify`: either stops
/// sampling and the report of what was collected is still printed. A second signal exits
/// at once (130 after Ctrl-C, 143 after SIGTERM). The handlers are installed before this
/// returns, so a signal that arrives right after is never the default kill.
pub fn stop_token() -> CancellationToken {
    use tokio::signal::unix::{SignalKind, signal};
    let stop = CancellationToken::new();
    let token = stop.clone();
    let watch = |kind: SignalKind, name: &str| match signal(kind) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("cannot watch for {name} ({e}); it will not stop sampling gracefully");
            None
        }
    };
    let mut int = watch(SignalKind::interrupt(), "Ctrl-C");
    let mut term = watch(SignalKind::terminate(), "SIGTERM");
    async fn next(s: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
        match s {
            Some(s) => s.recv().await,
            None => std::future::pending().await,
        }
    }
    tokio::spawn(async move {
        let first = tokio::select! {
            r = next(&mut int) => r.map(|()| "Ctrl-C"),
            r = next(&mut term) => r.map(|()| "SIGTERM"),
        };
        let Some(first) = first else { return };
        tracing::warn!(
            "{first}: stopping sampling and printing the report; a second signal quits at once"
        );
        token.cancel();
        tokio::select! {
            r = next(&mut int) => if r.is_some() { std::process::exit(130) },
            r = next(&mut term) => if r.is_some() { std::process::exit(143) },
        }
    });
    stop
}
