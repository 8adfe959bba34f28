//! The settings of a rehearsal that its messages name: a wrong value, a way out, a
//! setting that changes the verdict. The library names them in its own words
//! ([`Setting::words`]); a binary passes its own names (its flags) where it shows the
//! messages, so that no flag or environment variable is named in the library.

use std::fmt;

/// A setting of the rehearsal, as messages name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Setting {
    /// The canary weights of the built-in walk's weight steps.
    Steps,
    /// Replicas per version in the built-in walk.
    Replicas,
    /// Samples per step's verification.
    Samples,
    /// The grace period of a draining replica.
    Grace,
    /// The step whose gateway weight is set wrong on purpose.
    Chaos,
    /// The step during whose sampling the weights change.
    ShiftDuring,
    /// The step during whose sampling a canary replica dies.
    KillReplica,
    /// The versions given for subsets, Services or workloads.
    VersionOf,
    /// Whether held connections cut by the gateway fail their step.
    FailOnCut,
    /// Which ingress routes the traffic.
    Gateway,
    /// The Envoy binary.
    EnvoyBinary,
}

/// How messages name a setting: [`Setting::words`], or a binary's flags.
pub type Names = fn(Setting) -> &'static str;

impl Setting {
    /// The library's own name for the setting.
    pub fn words(self) -> &'static str {
        match self {
            Setting::Steps => "the weight steps",
            Setting::Replicas => "the replicas per version",
            Setting::Samples => "the samples per step",
            Setting::Grace => "the grace period",
            Setting::Chaos => "the chaos step",
            Setting::ShiftDuring => "the weight-shift step",
            Setting::KillReplica => "the replica-kill step",
            Setting::VersionOf => "the versions given on the command line",
            Setting::FailOnCut => "failing steps on cuts",
            Setting::Gateway => "the gateway",
            Setting::EnvoyBinary => "the Envoy binary",
        }
    }
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.words())
    }
}
