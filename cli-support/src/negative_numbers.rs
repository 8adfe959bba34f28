//! `--flag -1` read as `--flag=-1` is: clap takes a separate argument that starts with
//! `-` for a flag of its own ("unexpected argument '-1'") unless the flag allows
//! negative numbers. Both binaries allow them on every flag that takes a value, in one
//! place, so that a negative number always reaches the flag's own parser and sentence.

use clap::{Arg, Command};

fn allow(arg: Arg) -> Arg {
    if arg.get_action().takes_values() && !arg.is_positional() {
        arg.allow_negative_numbers(true)
    } else {
        arg
    }
}

/// `command` with every value-taking flag, its subcommands' too, taking a negative
/// number as a separate argument.
pub fn allowed(command: Command) -> Command {
    command.mut_args(allow).mut_subcommands(allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_negative_number_is_the_flags_value_in_both_forms() {
        let command = || {
            allowed(
                Command::new("t")
                    .arg(Arg::new("n").long("n"))
                    .subcommand(Command::new("s").arg(Arg::new("d").long("d"))),
            )
        };
        for argv in [["t", "--n", "-1"], ["t", "--n=-1", "s"]] {
            let m = command().try_get_matches_from(argv).unwrap();
            assert_eq!(m.get_one::<String>("n").map(String::as_str), Some("-1"));
        }
        let m = command()
            .try_get_matches_from(["t", "s", "--d", "-2.5"])
            .unwrap();
        let (_, sub) = m.subcommand().unwrap();
        assert_eq!(sub.get_one::<String>("d").map(String::as_str), Some("-2.5"));
        // Not a number: still read as a flag.
        assert!(command().try_get_matches_from(["t", "--n", "-x"]).is_err());
    }
}
