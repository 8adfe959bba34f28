//! Why the walk could not run at all, and the exit code that says so.

use crate::fleet::FleetError;
use crate::ingress::IngressError;
use crate::ingress::envoy::EnvoyError;
use crate::ingress::haproxy::HaproxyError;
use crate::setting::{Names, Setting};
use checker_core::expect::ExpectError;

/// Why the walk could not run at all (a step that fails is a report, not an error).
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    /// A setting's value is unusable.
    #[error("{}", self.message(Setting::words))]
    Invalid {
        /// The setting.
        setting: Setting,
        /// Its value as given, when one value is to blame.
        value: Option<String>,
        /// What is wrong with it and what it must be.
        reason: String,
    },
    /// The ingress failed to start or to take a change.
    #[error(transparent)]
    Ingress(#[from] IngressError),
    /// A replica could not start.
    #[error(transparent)]
    Fleet(#[from] FleetError),
    /// A step's expectation could not be built.
    #[error(transparent)]
    Expect(#[from] ExpectError),
}

impl WalkError {
    /// `setting`'s value `value` is unusable: `reason`.
    pub(super) fn invalid(
        setting: Setting,
        value: Option<String>,
        reason: impl Into<String>,
    ) -> Self {
        WalkError::Invalid {
            setting,
            value,
            reason: reason.into(),
        }
    }

    /// The error as one sentence, naming the settings as `names` does (a binary: its flags).
    pub fn message(&self, names: Names) -> String {
        match self {
            WalkError::Invalid {
                setting,
                value: Some(value),
                reason,
            } => format!("{} {value}: {reason}", names(*setting)),
            WalkError::Invalid {
                setting,
                value: None,
                reason,
            } => format!("{}: {reason}", names(*setting)),
            WalkError::Ingress(e) => e.message(names),
            other => other.to_string(),
        }
    }

    /// The exit code: 2 for bad settings and a missing HAProxy, 4 for anything that broke.
    pub fn exit_code(&self) -> i32 {
        match self {
            WalkError::Invalid { .. } | WalkError::Expect(_) => checker_core::exit::USAGE,
            WalkError::Ingress(IngressError::Haproxy(HaproxyError::NotInstalled { .. })) => {
                checker_core::exit::USAGE
            }
            WalkError::Ingress(IngressError::Envoy(EnvoyError::NotInstalled { .. })) => {
                checker_core::exit::USAGE
            }
            _ => checker_core::exit::ERRORS,
        }
    }
}
