//! The command line: subcommands and their flags (clap derive), every flag with an
//! environment fallback. One file per subcommand (verify, rehearse, watch, merge, plot,
//! lint) holds its flags and its run; [`command`] dispatches, [`output`] prints,
//! [`args`] holds the flags they share.

use clap::{Parser, Subcommand, ValueEnum};

pub mod args;
pub mod command;
pub mod expect_from;
pub mod health_flags;
pub mod lint;
pub mod merge;
pub mod output;
pub mod plot;
#[cfg(feature = "rehearse")]
pub mod rehearse;
pub mod signals;
pub mod verify;
pub mod watch;

/// Verifies that live TCP traffic follows the expected canary weights.
#[derive(Debug, Parser)]
#[command(name = "checker", version, about, propagate_version = true)]
pub struct Cli {
    /// Log format on stderr (the level comes from RUST_LOG, default warn).
    #[arg(long, env = "CHECKER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sample fresh connections through a gateway and judge the split against the weights.
    #[command(after_help = format!("Durations (D): {}.\n\n{}", cli_support::duration::RULE, verify::EXIT_HELP))]
    Verify(Box<verify::VerifyArgs>),
    /// Walk a whole canary rollout on this machine (echo servers, a weighted gateway) with a verdict per step.
    #[cfg(feature = "rehearse")]
    #[command(after_help = rehearse::HELP)]
    Rehearse(rehearse::RehearseArgs),
    /// Sample continuously at a modest rate and show the split over time, with when it stops and starts agreeing.
    #[command(after_help = format!("Durations (D): {}.\n\nExit: 0 when the split agreed at the end, 1 when it disagreed, 3 when undecided, 2 usage, 4 unresolvable target.", cli_support::duration::RULE))]
    Watch(watch::WatchArgs),
    /// Merge JSON reports of one check taken by many processes into one report and verdict.
    #[command(after_help = merge::HELP)]
    Merge(merge::MergeArgs),
    /// Draw a rollout from samples files: shares with intervals, expected steps, latency, errors (SVG or HTML).
    #[command(after_help = plot::HELP)]
    Plot(plot::PlotArgs),
    /// Find the routing mistakes of a TCP canary in its manifests (Istio, Gateway API, Argo Rollouts, Flagger).
    #[command(after_help = lint::help())]
    Lint(lint::LintArgs),
}

/// Turns a command-line parse error into the message and exit code the user sees.
///
/// Help and version requests and structural errors keep clap's own output. A value
/// that does not parse becomes one sentence naming the flag, or the environment
/// variable it came from when the flag was not given.
pub fn parse_error(error: &clap::Error, argv: &[String]) -> Option<String> {
    use cli_support::bad_value::{self, Why};
    let bad = bad_value::from_clap(error, &<Cli as clap::CommandFactory>::command(), argv)?;
    let (flag, value) = (&bad.flag, bad.value.unwrap_or_default());
    let why = match bad.why {
        Why::OneOf(valid) => format!("must be one of {}", valid.join(", ")),
        Why::Parser(reason) => reason,
        Why::Unknown => "is not valid".to_owned(),
    };
    Some(match bad.env {
        Some(name) => format!(
            "invalid value {value:?} in the environment variable {name} (for {flag}): {why}"
        ),
        None => format!("invalid value {value:?} for {flag}: {why}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn samples_and_duration_exclude_each_other() {
        let r = Cli::try_parse_from([
            "checker",
            "verify",
            "--target",
            "h:1",
            "--expect",
            "a=1,b=1",
            "--samples",
            "5",
            "--duration",
            "1s",
        ]);
        assert!(r.is_err());
    }
}
