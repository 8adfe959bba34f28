//! The version an echo-server container answers with, read from its command line or
//! environment the way the echo-server reads them: Istio's sample form
//! (`9000,9001 one`, also behind a `command` such as `/bin/tcp-echo`), `--version X`,
//! `--version=X`, or `ECHO_SERVER_VERSION`.

use std::fmt;

use super::model::Container;

/// echo-server flags that take no value; every other `--flag` takes one (`--flag V` or
/// `--flag=V`). A copy of echo-server's command line (this crate does not depend on the
/// server): echo-server's tests derive the list from its clap command and fail when the
/// two differ.
pub const FLAGS_WITHOUT_VALUE: &[&str] = &[
    "--no-admin",
    "--strict-limits",
    "--print-config",
    "--help",
    "-h",
];

/// echo-server's flag that names the version (`--version V` or `--version=V`); checked
/// against its clap command like [`FLAGS_WITHOUT_VALUE`].
pub const VERSION_FLAG: &str = "--version";

/// echo-server's environment variable that names the version.
pub const VERSION_ENV: &str = "ECHO_SERVER_VERSION";

/// A version read from a container, and where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadVersion {
    /// The version string.
    pub version: String,
    /// Where: `args[1]`, `command[2]`, `--version args[3]`, `env ECHO_SERVER_VERSION`.
    pub source: Place,
}

/// Where in a container's command line or environment a version was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// Istio's positional form, the word at `field`: `args[1]`, `command[2]`.
    Positional {
        /// `args[N]` or `command[N]`.
        field: String,
    },
    /// The value after the version flag, at `field`: `--version args[3]`.
    Flag {
        /// `args[N]` or `command[N]`.
        field: String,
    },
    /// The version flag with its value, `--version=V`, at `field`: `--version= args[0]`.
    FlagWithValue {
        /// `args[N]` or `command[N]`.
        field: String,
    },
    /// The environment variable: `env ECHO_SERVER_VERSION`.
    Env,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Positional { field } => f.write_str(field),
            Place::Flag { field } => write!(f, "{VERSION_FLAG} {field}"),
            Place::FlagWithValue { field } => write!(f, "{VERSION_FLAG}= {field}"),
            Place::Env => write!(f, "env {VERSION_ENV}"),
        }
    }
}

/// The version `container` answers with, or `None` when its command line does not show one.
pub fn read(container: &Container) -> Option<ReadVersion> {
    // command then args, as the kubelet joins them; each word remembers its field.
    let words: Vec<(String, &str)> = container
        .command
        .iter()
        .enumerate()
        .map(|(i, w)| (format!("command[{i}]"), w.as_str()))
        .chain(
            container
                .args
                .iter()
                .enumerate()
                .map(|(i, w)| (format!("args[{i}]"), w.as_str())),
        )
        .collect();
    let mut positional: Vec<(String, &str)> = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let (place, word) = (&words[i].0, words[i].1);
        if word == VERSION_FLAG {
            if let Some((p, v)) = words.get(i + 1) {
                return Some(ReadVersion {
                    version: (*v).to_owned(),
                    source: Place::Flag { field: p.clone() },
                });
            }
        } else if let Some(v) = word
            .strip_prefix(VERSION_FLAG)
            .and_then(|rest| rest.strip_prefix('='))
        {
            return Some(ReadVersion {
                version: v.to_owned(),
                source: Place::FlagWithValue {
                    field: place.clone(),
                },
            });
        } else if word.starts_with('-') {
            if !word.contains('=') && !FLAGS_WITHOUT_VALUE.contains(&word) {
                i += 1;
            }
        } else {
            positional.push((place.clone(), word));
        }
        i += 1;
    }
    // Istio's form: PORTS VERSION, the ports a comma-separated list of numbers. A leading
    // program path (`/bin/tcp-echo`, `echo-server`) is not a port list and is skipped.
    let start = positional.iter().position(|(_, w)| is_port_list(w));
    if let Some((place, v)) = start.and_then(|s| positional.get(s + 1)) {
        return Some(ReadVersion {
            version: (*v).to_owned(),
            source: Place::Positional {
                field: place.clone(),
            },
        });
    }
    container
        .env
        .iter()
        .rev()
        .find(|e| e.name == VERSION_ENV)
        .and_then(|e| e.value.clone())
        .map(|version| ReadVersion {
            version,
            source: Place::Env,
        })
}

fn is_port_list(word: &str) -> bool {
    !word.is_empty()
        && word
            .split(',')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EnvVar;

    fn container(command: &[&str], args: &[&str], env: &[(&str, &str)]) -> Container {
        Container {
            command: command.iter().map(|s| (*s).to_owned()).collect(),
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            env: env
                .iter()
                .map(|(n, v)| EnvVar {
                    name: (*n).to_owned(),
                    value: Some((*v).to_owned()),
                })
                .collect(),
            ..Container::default()
        }
    }

    fn version(c: &Container) -> Option<(String, String)> {
        read(c).map(|r| (r.version, r.source.to_string()))
    }

    #[test]
    fn every_form_the_echo_server_accepts() {
        let v = |s: &str, p: &str| Some((s.to_owned(), p.to_owned()));
        assert_eq!(
            version(&container(
                &[],
                &["9000,9001", "one", "--drain-delay=5s"],
                &[]
            )),
            v("one", "args[1]")
        );
        assert_eq!(
            version(&container(&["/bin/tcp-echo"], &["9000", "hello"], &[])),
            v("hello", "args[1]")
        );
        assert_eq!(
            version(&container(&["/bin/tcp-echo", "9000", "two"], &[], &[])),
            v("two", "command[2]")
        );
        assert_eq!(
            version(&container(
                &[],
                &["--drain-delay", "5s", "9000", "two"],
                &[]
            )),
            v("two", "args[3]")
        );
        assert_eq!(
            version(&container(
                &[],
                &["--ports", "9000", "--version", "two"],
                &[]
            )),
            v("two", "--version args[3]")
        );
        assert_eq!(
            version(&container(&[], &["--version=three"], &[])),
            v("three", "--version= args[0]")
        );
        assert_eq!(
            version(&container(
                &[],
                &["--ports=9000"],
                &[("ECHO_SERVER_VERSION", "four")]
            )),
            v("four", "env ECHO_SERVER_VERSION")
        );
        assert_eq!(version(&container(&[], &["--ports", "9000"], &[])), None);
    }
}
