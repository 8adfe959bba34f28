//! A value the command line refused, as the parts of the one sentence each binary writes:
//! the flag, the value, why, and the environment variable it came from when the flag was
//! not on the command line (`CHECKER_SAMPLES=-3 checker verify ...` names the variable).

use clap::error::{ContextKind, ContextValue, ErrorKind};

/// Why a value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// The flag takes one of these values only.
    OneOf(Vec<String>),
    /// The value parser's message, such as `must be a whole number of at least 1`.
    Parser(String),
    /// Clap gave no reason.
    Unknown,
}

/// A refused value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadValue {
    /// The flag as the user writes it (`--samples`), or a positional argument's name.
    pub flag: String,
    /// The value refused, when clap says it.
    pub value: Option<String>,
    /// Why it was refused.
    pub why: Why,
    /// The environment variable it came from: the flag is absent from the command line
    /// and its variable is set.
    pub env: Option<String>,
}

/// The parts of `error` when it refused a value (a value parser failed or a value is not
/// one of the flag's choices); `None` for every other error (help, version, a missing or
/// unknown argument), which keeps clap's own text. `command` is the binary's command
/// (`Cli::command()`), `argv` its arguments with the program name first.
pub fn from_clap(
    error: &clap::Error,
    command: &clap::Command,
    argv: &[String],
) -> Option<BadValue> {
    if !matches!(
        error.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return None;
    }
    let text = |kind| match error.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        _ => None,
    };
    // "--name <VALUE>" -> "--name"
    let arg = text(ContextKind::InvalidArg)?;
    let flag = arg.split_whitespace().next().unwrap_or(&arg).to_owned();
    let why = match (error.kind(), error.get(ContextKind::ValidValue)) {
        (ErrorKind::InvalidValue, Some(ContextValue::Strings(valid))) => Why::OneOf(valid.clone()),
        _ => std::error::Error::source(error).map_or(Why::Unknown, |e| Why::Parser(e.to_string())),
    };
    Some(BadValue {
        env: env_source(command, &flag, argv),
        value: text(ContextKind::InvalidValue),
        flag,
        why,
    })
}

/// The environment variable that set the long flag `flag` (e.g. `--samples`): the flag
/// is not on the command line `argv` (before a `--`) and its variable is set. The flag is
/// looked up in the subcommand `argv` names, then in the commands above it.
pub fn env_source(command: &clap::Command, flag: &str, argv: &[String]) -> Option<String> {
    let long = flag.strip_prefix("--")?;
    let given = argv.iter().skip(1).take_while(|a| a.as_str() != "--");
    let on_command_line = given.clone().any(|a| {
        a.strip_prefix(flag)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('='))
    });
    if on_command_line {
        return None;
    }
    // The chain of commands argv selects: the binary, then each subcommand named.
    let mut chain = vec![command];
    for word in given {
        let current = chain[chain.len() - 1];
        if let Some(sub) = current.find_subcommand(word) {
            chain.push(sub);
        }
    }
    let name = chain
        .iter()
        .rev()
        .flat_map(|c| c.get_arguments())
        .find(|a| a.get_long() == Some(long))?
        .get_env()?
        .to_str()?
        .to_owned();
    std::env::var_os(&name).is_some().then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, Command};

    /// A variable every test run has (PATH), and one none has: edition 2024 makes
    /// `set_var` unsafe and the workspace forbids unsafe code.
    const SET: &str = "PATH";
    const UNSET: &str = "CLI_SUPPORT_TEST_NEVER_SET";

    fn command() -> Command {
        let small = |s: &str| {
            s.parse::<u8>()
                .map_err(|_| "must be a small number".to_owned())
        };
        Command::new("tool")
            .arg(Arg::new("level").long("level").env(SET))
            .subcommand(
                Command::new("run")
                    .arg(
                        Arg::new("count")
                            .long("count")
                            .env(UNSET)
                            .value_parser(small),
                    )
                    .arg(Arg::new("mode").long("mode").value_parser(["fast", "slow"])),
            )
            .subcommand(Command::new("other").arg(Arg::new("count").long("count").env(SET)))
    }

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    fn refused(words: &[&str]) -> Option<BadValue> {
        let args = argv(words);
        let error = command().try_get_matches_from(&args).unwrap_err();
        from_clap(&error, &command(), &args)
    }

    #[test]
    fn a_parser_error_names_the_flag_the_value_and_the_reason() {
        let bad = refused(&["tool", "run", "--count", "x"]).unwrap();
        assert_eq!(bad.flag, "--count");
        assert_eq!(bad.value.as_deref(), Some("x"));
        assert_eq!(bad.why, Why::Parser("must be a small number".to_owned()));
        assert_eq!(bad.env, None);
    }

    #[test]
    fn a_choice_error_lists_the_choices() {
        let bad = refused(&["tool", "run", "--mode=medium"]).unwrap();
        assert_eq!(bad.flag, "--mode");
        assert_eq!(
            bad.why,
            Why::OneOf(vec!["fast".to_owned(), "slow".to_owned()])
        );
    }

    #[test]
    fn other_errors_keep_clap_s_text() {
        assert_eq!(refused(&["tool", "run", "--unknown"]), None);
        assert_eq!(refused(&["tool", "run", "--help"]), None);
    }

    #[test]
    fn the_variable_is_the_one_of_the_subcommand_used_and_set() {
        let c = command();
        let source = |flag, words: &[&str]| env_source(&c, flag, &argv(words));
        assert_eq!(source("--count", &["tool", "other"]).as_deref(), Some(SET));
        assert_eq!(
            source("--count", &["tool", "run"]),
            None,
            "run's variable is unset"
        );
        // An argument of the command above the subcommand.
        assert_eq!(source("--level", &["tool", "run"]).as_deref(), Some(SET));
        // On the command line, the flag is named, not the variable.
        for given in [
            &["tool", "other", "--count", "1"][..],
            &["tool", "other", "--count=1"],
        ] {
            assert_eq!(source("--count", given), None, "{given:?}");
        }
        // After `--` it is not a flag.
        assert_eq!(
            source("--count", &["tool", "other", "--", "--count"]).as_deref(),
            Some(SET)
        );
        assert_eq!(source("--counts", &["tool", "other"]), None, "no such flag");
    }
}
