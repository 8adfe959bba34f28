//! A user's steps file (`checker rehearse --plan FILE`, "the plan" to its users): a YAML
//! file listing the rollout's steps, each a manifest source and optionally the split the
//! user expects after it.
//!
//! ```yaml
//! route_port: 31400          # optional: the gateway port whose tcp route to use
//! version_of:                # optional: the version a subset, Service or workload
//!   stable: one              # answers with where its manifests do not show it
//!   canary: two
//! steps:
//!   - name: canary at 10     # optional (default "step N")
//!     path: overlays/2-canary-10   # a file, a directory of YAML/JSON files, or a
//!                                  # kustomize directory; relative to the plan file
//!     expect: one=90,two=10  # optional: must agree with the manifests
//! ```
//!
//! Every step's source is read (a kustomize directory, one holding a
//! `kustomization.yaml`, is rendered with `kubectl kustomize`) and its split derived
//! ([`manifests::derive`]) before anything starts, so a plan that cannot
//! be rehearsed stops at once with one sentence naming the step, the file and the field.
//! `--route-port` on the command line replaces the plan's `route_port`; `--version-of`
//! entries are merged into the plan's `version_of`, the command line's winning for a
//! name both give.
//!
//! A given `expect` that disagrees with the derivation does not stop the plan: the step
//! runs, is verified against the derived split, and fails with a sentence naming both.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use checker_core::expect::Expectation;
use input_file::InputError;
use manifests::kustomize::{Kustomize, RenderError, is_kustomization};
use manifests::{self, Derivation, DeriveOptions, load};

use crate::setting::{Names, Setting};

/// The largest steps file read, in bytes.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// The most replicas one step may run: each is an echo server on this machine.
pub const MAX_STEP_REPLICAS: u64 = 64;

/// The steps file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    /// The gateway port whose tcp route to use.
    #[serde(default)]
    route_port: Option<u32>,
    /// The version a subset, Service or workload answers with where its manifests do
    /// not show it.
    #[serde(default)]
    version_of: BTreeMap<String, String>,
    /// The steps, in order.
    steps: Vec<StepEntry>,
}

/// One step as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepEntry {
    /// Its name in reports.
    #[serde(default)]
    name: Option<String>,
    /// The manifest source, relative to the plan file.
    path: String,
    /// The split the user expects.
    #[serde(default)]
    expect: Option<String>,
}

/// A steps file read and derived, ready to rehearse.
#[derive(Debug, Clone, PartialEq)]
pub struct StepsFile {
    /// The plan file.
    pub file: PathBuf,
    /// Its steps, in order.
    pub steps: Vec<ManifestStep>,
}

/// One step of a plan: its manifests and the split derived from them.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestStep {
    /// Its name in reports.
    pub name: String,
    /// The source as the plan names it (`overlays/2-canary-10`).
    pub source: String,
    /// Whether the source was rendered with `kubectl kustomize`.
    pub kustomize: bool,
    /// The split the plan gives, if any.
    pub given: Option<Expectation>,
    /// The split derived from the manifests.
    pub derivation: Derivation,
    /// The split the step is verified against: the derived one, with the given
    /// expectation's zero-weight versions added when the two agree.
    pub expect: Expectation,
    /// When the given split disagrees with the derived one: a sentence naming both.
    pub mismatch: Option<String>,
}

impl ManifestStep {
    /// Replicas the step's workloads run, over every destination.
    pub fn replicas(&self) -> u64 {
        replicas_of(&self.derivation)
    }
}

/// Replicas a derivation's workloads run, over every destination.
fn replicas_of(derivation: &Derivation) -> u64 {
    derivation
        .destinations
        .iter()
        .flat_map(|d| &d.members)
        .fold(0u64, |sum, m| sum.saturating_add(m.replicas))
}

/// Why a plan cannot be rehearsed (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum StepsFileError {
    /// The plan file cannot be read.
    #[error("cannot read the plan {file}: {message}")]
    Read {
        /// The plan file.
        file: String,
        /// Why.
        message: String,
    },
    /// The plan file is not a plan's YAML at all.
    #[error(
        "cannot read the plan {file}: {message}; a plan is a mapping with `steps:`, a list of `- path: ...`"
    )]
    Shape {
        /// The plan file.
        file: String,
        /// The parser's reason.
        message: String,
    },
    /// A field of the plan is missing or wrong.
    #[error("the plan {file}, field {field}: {message}")]
    Field {
        /// The plan file.
        file: String,
        /// The field path, e.g. `steps[2].expect`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A kustomize directory needs kubectl, which is not on PATH.
    #[error(
        "the plan {file}, step {step} ({name}): {path} is a kustomize directory, rendered with `kubectl kustomize`, but kubectl is not on PATH; install kubectl, or render the step to a file and name that file in the plan"
    )]
    NoKubectl {
        /// The plan file.
        file: String,
        /// The 1-based step.
        step: usize,
        /// The step's name.
        name: String,
        /// The source.
        path: String,
    },
    /// Versions were given for names that no step's route reaches.
    #[error("{}", self.message(Setting::words))]
    UnusedVersions {
        /// The plan file.
        file: String,
        /// The names, in order.
        names: Vec<String>,
    },
    /// A step's manifests cannot be read, rendered or derived.
    #[error("the plan {file}, step {step} ({name}): {message}")]
    Step {
        /// The plan file.
        file: String,
        /// The 1-based step.
        step: usize,
        /// The step's name.
        name: String,
        /// What went wrong.
        message: String,
    },
}

impl StepsFileError {
    /// The error as one sentence, naming the settings as `names` does (a binary: its flags).
    pub fn message(&self, names: Names) -> String {
        match self {
            StepsFileError::UnusedVersions {
                file,
                names: unused,
            } => format!(
                "the plan {file}, field version_of: {} given (here or with {}) but no step's route reaches a subset, Service or workload of that name; check the spelling",
                unused.join(", "),
                names(Setting::VersionOf)
            ),
            other => other.to_string(),
        }
    }
}

/// Reads the plan at `file`, renders and derives every step (rendering kustomize
/// directories with `kustomize`); `overrides` are the command line's `--route-port`
/// (replaces the plan's) and `--version-of` (merged into the plan's, winning per name).
pub fn load(
    file: &Path,
    overrides: &DeriveOptions,
    kustomize: &Kustomize,
) -> Result<StepsFile, StepsFileError> {
    let shown = file.display().to_string();
    let text = read_file(file).map_err(|message| StepsFileError::Read {
        file: shown.clone(),
        message,
    })?;
    // The YAML parser takes time quadratic in the nesting depth: refuse a deep file first.
    if let Some((line, what)) = load::too_deep(&text) {
        return Err(StepsFileError::Read {
            file: shown,
            message: format!("line {line} nests deeper than {what}; a plan never does"),
        });
    }
    let plan = parse(&text).map_err(|(field, message)| {
        if field.is_empty() {
            StepsFileError::Shape {
                file: shown.clone(),
                message: message.replace("struct Document", "a plan"),
            }
        } else {
            StepsFileError::Field {
                file: shown.clone(),
                field,
                message,
            }
        }
    })?;
    let base = file.parent().unwrap_or(Path::new("."));
    let mut version_of = plan.version_of.clone();
    version_of.extend(overrides.version_of.clone());
    let options = DeriveOptions {
        route_port: overrides.route_port.or(plan.route_port),
        sni: None,
        version_of,
        names: overrides.names.clone(),
    };
    let mut unused: BTreeSet<String> = options.version_of.keys().cloned().collect();
    let mut steps = Vec::new();
    for (i, entry) in plan.steps.iter().enumerate() {
        let number = i + 1;
        let name = entry
            .name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| format!("step {number}"));
        let given = match &entry.expect {
            Some(text) => Some(
                text.parse::<Expectation>()
                    .map_err(|e| StepsFileError::Field {
                        file: shown.clone(),
                        field: format!("steps[{i}].expect"),
                        message: e.to_string(),
                    })?,
            ),
            None => None,
        };
        let step_error = |message: String| StepsFileError::Step {
            file: shown.clone(),
            step: number,
            name: name.clone(),
            message,
        };
        let path = base.join(&entry.path);
        let rendered = is_kustomization(&path);
        let set = if rendered {
            manifests::read_rendering(&[path.display().to_string()], kustomize).map_err(
                |e| match e {
                    manifests::ReadError::Render(RenderError::NoKubectl { .. }) => {
                        StepsFileError::NoKubectl {
                            file: shown.clone(),
                            step: number,
                            name: name.clone(),
                            path: entry.path.clone(),
                        }
                    }
                    other => step_error(other.to_string()),
                },
            )?
        } else {
            manifests::read(&[path.display().to_string()]).map_err(|e| {
                let hint = if looks_templated(&path) {
                    "; it looks like an unrendered template (`{{ ... }}`): render it first (`helm template`, or the tool that owns it) and name the rendered file in the plan"
                } else {
                    ""
                };
                step_error(format!("cannot read the manifests: {e}{hint}"))
            })?
        };
        let derivation = manifests::derive(&set, &options).map_err(|e| {
            let hint = if e.wants_version() {
                " (on the command line, or under `version_of:` in the plan)"
            } else {
                ""
            };
            step_error(format!(
                "cannot derive the split from {}: {e}{hint}",
                entry.path
            ))
        })?;
        for v in &derivation.versions {
            for p in &v.provenance {
                if let Some(name) = p.version_given_for() {
                    unused.remove(name);
                }
            }
        }
        let derived = Expectation::from_derivation(&derivation).map_err(|e| {
            step_error(format!(
                "the split derived from {} ({}) cannot be checked: {e}",
                entry.path,
                derivation.expect_text()
            ))
        })?;
        let (expect, mismatch) = match &given {
            Some(g) if !agree(g, &derived) => (
                derived.clone(),
                Some(format!(
                    "the plan expects {g} but the manifests of {} route {} ({})",
                    entry.path,
                    derivation.expect_text(),
                    derivation.route
                )),
            ),
            Some(g) => (with_zero_versions(&derived, g), None),
            None => (derived, None),
        };
        let replicas = replicas_of(&derivation);
        if replicas > MAX_STEP_REPLICAS {
            return Err(step_error(format!(
                "its workloads run {replicas} replicas in all; a rehearsal starts at most {MAX_STEP_REPLICAS} per step on this machine (lower spec.replicas in a copy of the manifests: the split of a replica-ratio canary only needs the ratio)"
            )));
        }
        steps.push(ManifestStep {
            name,
            source: entry.path.clone(),
            kustomize: rendered,
            given,
            derivation,
            expect,
            mismatch,
        });
    }
    if !unused.is_empty() {
        return Err(StepsFileError::UnusedVersions {
            file: shown,
            names: unused.into_iter().collect(),
        });
    }
    Ok(StepsFile {
        file: file.to_path_buf(),
        steps,
    })
}

/// Reads the plan: a regular file only, opened without blocking (a FIFO, a device such as
/// `/dev/zero` or a socket is refused before anything is read) and read through
/// [`MAX_FILE_BYTES`].
fn read_file(file: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(file).map_err(|e| {
        if input_file::is_loop(&e) {
            InputError::Loop.to_string()
        } else {
            e.to_string()
        }
    })?;
    if meta.is_dir() {
        return Err("it is a directory; name the plan's YAML file".to_owned());
    }
    input_file::read_text_bounded(file, MAX_FILE_BYTES, "one plan").map_err(|why| match why {
        InputError::TooLarge { .. } => format!(
            "it is larger than {} KiB, the most a plan may be",
            MAX_FILE_BYTES >> 10
        ),
        InputError::NotUtf8(_) => "it is not UTF-8 text".to_owned(),
        InputError::Read(e) => e.to_string(),
        other => other.to_string(),
    })
}

/// Parses the plan's text: the field path and the message when it is malformed.
fn parse(text: &str) -> Result<Document, (String, String)> {
    let de = yaml_serde::Deserializer::from_str(text);
    let plan: Document = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        // No path: the text is not YAML of the plan's shape at all.
        let field = if path == "." { String::new() } else { path };
        let message = e.into_inner().to_string();
        // The YAML error names a path of its own (`steps[0]: ...`): the field says it.
        let message = match message.split_once(": ") {
            Some((p, rest)) if !p.contains(' ') && field.starts_with(p) => rest.to_owned(),
            _ => message,
        };
        (field, message)
    })?;
    if plan.steps.is_empty() {
        return Err((
            "steps".to_owned(),
            "the plan lists no step; give at least one `- path: DIR`".to_owned(),
        ));
    }
    if let Some(port) = plan.route_port
        && !(1..=65535).contains(&port)
    {
        return Err((
            "route_port".to_owned(),
            format!("{port} is not a TCP port (1 to 65535)"),
        ));
    }
    for (name, version) in &plan.version_of {
        if name.trim().is_empty() {
            return Err((
                "version_of".to_owned(),
                "a name is empty; give a subset, Service or workload name".to_owned(),
            ));
        }
        protocol::validate_version(version)
            .map_err(|e| (format!("version_of.{name}"), e.to_string()))?;
    }
    for (i, step) in plan.steps.iter().enumerate() {
        let fields = [
            ("name", step.name.as_deref()),
            ("path", Some(step.path.as_str())),
        ];
        for (key, value) in fields {
            if value.is_some_and(|v| v.chars().any(char::is_control)) {
                return Err((
                    format!("steps[{i}].{key}"),
                    "it holds a control character (a newline, a tab, an escape); give one line of printable text".to_owned(),
                ));
            }
        }
    }
    if let Some((i, _)) = plan
        .steps
        .iter()
        .enumerate()
        .find(|(_, s)| s.path.trim().is_empty())
    {
        return Err((
            format!("steps[{i}].path"),
            "the path is empty; name a file or directory of manifests".to_owned(),
        ));
    }
    Ok(plan)
}

/// Whether the file at `path`, or a YAML/JSON file directly in the directory at `path`,
/// holds Go template actions (`{{ .Values.x }}`): a Helm chart's or Harness's templates.
fn looks_templated(path: &Path) -> bool {
    let templated = |file: &Path| {
        let mut text = String::new();
        input_file::open_regular(file).is_ok_and(|f| {
            f.take(load::MAX_INPUT_BYTES)
                .read_to_string(&mut text)
                .is_ok()
        }) && text.contains("{{")
            && text.contains("}}")
    };
    if path.is_file() {
        return templated(path);
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return false;
    };
    entries.flatten().map(|e| e.path()).any(|p| {
        let manifest = p
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| matches!(x, "yaml" | "yml" | "json"));
        manifest && p.is_file() && templated(&p)
    })
}

/// Whether two splits give every version the same share (absent: 0).
pub fn agree(a: &Expectation, b: &Expectation) -> bool {
    let share = |e: &Expectation, n: &str| e.share_of(n).unwrap_or(0.0);
    a.versions()
        .iter()
        .chain(b.versions())
        .all(|v| (share(a, &v.name) - share(b, &v.name)).abs() < 1e-9)
}

/// `derived` with the zero-weight versions `given` names that it lacks, so that the
/// verification also asserts they answer nothing and shows them.
fn with_zero_versions(derived: &Expectation, given: &Expectation) -> Expectation {
    let mut pairs: Vec<(String, f64)> = derived
        .versions()
        .iter()
        .map(|v| (v.name.clone(), v.weight))
        .collect();
    for v in given.versions() {
        if derived.share_of(&v.name).is_none() {
            pairs.push((v.name.clone(), 0.0));
        }
    }
    Expectation::new(pairs).unwrap_or_else(|_| derived.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_plans_name_the_field() {
        let err = |t: &str| parse(t).err().unwrap();
        assert_eq!(err("steps: []").0, "steps");
        let (field, message) = err("steps:\n  - path: a\n    expcet: one=1\n");
        assert_eq!(field, "steps[0].expcet");
        assert!(message.contains("unknown field `expcet`"), "{message}");
        let (field, message) = err("steps:\n  - name: x\n");
        assert_eq!(field, "steps[0]");
        assert!(message.contains("missing field `path`"), "{message}");
        assert_eq!(err("steps:\n  - path: ''\n").0, "steps[0].path");
        assert_eq!(err("route_port: x\nsteps: []").0, "route_port");
        assert_eq!(
            err("steps:\n  - name: \"a\\nb\"\n    path: a\n").0,
            "steps[0].name"
        );
        assert_eq!(
            err("steps:\n  - path: \"a\\u001b[31m\"\n").0,
            "steps[0].path"
        );
        assert!(parse("steps:\n  - path: base\n    expect: one=1\n").is_ok());
    }

    #[test]
    fn plan_level_route_port_and_versions_are_checked() {
        let err = |t: &str| parse(t).err().unwrap();
        assert_eq!(
            err("route_port: 70000\nsteps:\n  - path: a\n").0,
            "route_port"
        );
        assert_eq!(err("route_port: 0\nsteps:\n  - path: a\n").0, "route_port");
        let (field, message) = err("version_of: {stable: 'o ne'}\nsteps:\n  - path: a\n");
        assert_eq!(field, "version_of.stable");
        assert!(!message.is_empty());
        let plan = parse("version_of: {stable: one}\nsteps:\n  - path: a\n").unwrap();
        assert_eq!(plan.version_of["stable"], "one");
    }

    #[test]
    fn splits_agree_by_share_with_absent_versions_at_zero() {
        let e = |s: &str| s.parse::<Expectation>().unwrap();
        assert!(agree(&e("one=100,two=0"), &e("one=100")));
        assert!(agree(&e("one=9,two=1"), &e("one=90,two=10")));
        assert!(!agree(&e("one=80,two=20"), &e("one=90,two=10")));
        assert!(!agree(&e("one=100"), &e("two=100")));
        let v = with_zero_versions(&e("one=100"), &e("one=100,two=0"));
        assert_eq!(v.to_string(), "one=100,two=0");
    }
}
