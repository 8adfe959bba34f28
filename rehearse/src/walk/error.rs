//! Why the walk could not run at all, and the exit code that says so.

use crate::fleet::FleetError;
use crate::ingress::IngressError;
use crate::ingress::envoy::EnvoyError;
use crate::ingress::haproxy::HaproxyError;
use checker_core::expect::ExpectError;

/// Why the walk could not run at all (a step that fails is a report, not an error).
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    /// A flag value is unusable.
    #[error("{0}")]
    Invalid(String),
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
    /// The exit code: 2 for bad flags and a missing HAProxy, 4 for anything that broke.
    pub fn exit_code(&self) -> i32 {
        match self {
            WalkError::Invalid(_) | WalkError::Expect(_) => checker_core::exit::USAGE,
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
