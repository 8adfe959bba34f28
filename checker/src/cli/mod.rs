//! The command line: subcommands and their flags (clap derive), every flag with an
//! environment fallback. One file per subcommand (verify, rehearse, watch, merge, plot,
//! lint, observe) holds its flags and its run; [`command`] dispatches, [`output`] prints,
//! [`args`] holds the flags they share.

use clap::{Parser, Subcommand, ValueEnum};

pub mod args;
pub mod command;
pub mod expect_from;
pub mod gateway_flags;
pub mod health_flags;
pub mod lint;
pub mod merge;
pub mod metrics_flags;
pub mod observe;
pub mod output;
pub mod plot;
pub mod probe_flags;
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
    Rehearse(Box<rehearse::RehearseArgs>),
    /// Sample continuously at a modest rate and show the split over time, with when it stops and starts agreeing.
    #[command(after_help = format!("Durations (D): {}.\n\nExit: 0 when the split agreed at the end, 1 when it disagreed, 3 when undecided, 2 usage, 4 unresolvable target.", cli_support::duration::RULE))]
    Watch(Box<watch::WatchArgs>),
    /// Judge the split of every connection the gateway opened (real users' included) from its own counters: no load of our own.
    #[command(after_help = format!("Durations (D): {}.\n\n{}", cli_support::duration::RULE, observe::HELP))]
    Observe(Box<observe::ObserveArgs>),
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

/// The command line as parsed: [`Cli`]'s, every flag that takes a value also taking one
/// that starts with `-` when it is a number, so that `--hold -1` reaches the flag's own
/// parser and its sentence (as `--hold=-1` does) instead of "unexpected argument '-1'".
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    cli_support::negative_numbers::allowed(Cli::command())
}

/// Parses the process's command line by [`command`].
pub fn parse() -> Result<Cli, clap::Error> {
    use clap::FromArgMatches;
    let mut matches = command().try_get_matches()?;
    Cli::from_arg_matches_mut(&mut matches)
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
        command().debug_assert();
    }

    /// `--flag -1` must reach the flag's own parser (and its sentence), not read as an
    /// unknown flag "-1": every flag that takes a value, in every subcommand, accepts a
    /// value starting with `-` as `--flag=-1` does.
    #[test]
    fn every_flag_with_a_value_takes_a_negative_number_as_a_separate_argument() {
        let mut command = command();
        command.build();
        let mut missing = Vec::new();
        for sub in command.get_subcommands() {
            for arg in sub.get_arguments() {
                let takes_value = arg.get_action().takes_values();
                if !takes_value || arg.is_positional() || !arg.get_possible_values().is_empty() {
                    continue;
                }
                if !(arg.is_allow_negative_numbers_set() || arg.is_allow_hyphen_values_set()) {
                    missing.push(format!(
                        "{} --{}",
                        sub.get_name(),
                        arg.get_long().unwrap_or("?")
                    ));
                }
            }
        }
        assert!(missing.is_empty(), "{missing:#?}");
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
