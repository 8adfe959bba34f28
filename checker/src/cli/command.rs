//! Runs one parsed subcommand: each lives in a file of its own.

use super::Command;

/// Runs `command` and returns the process exit code.
pub async fn run(command: Command) -> i32 {
    match command {
        Command::Verify(args) => super::verify::run(&args).await,
        #[cfg(feature = "rehearse")]
        Command::Rehearse(args) => super::rehearse::run(&args).await,
        Command::Watch(args) => super::watch::run(&args).await,
        Command::Merge(args) => super::merge::run(&args),
        Command::Lint(args) => super::lint::run(&args),
        Command::Plot(args) => super::plot::run(&args),
    }
}
