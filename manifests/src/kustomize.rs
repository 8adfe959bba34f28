//! Rendering a kustomize directory (one holding a `kustomization.yaml`) with `kubectl
//! kustomize`, as `kubectl apply -k` would, for every reader of manifests (`checker lint`,
//! a rollout's steps file): bounded in time, since a remote base on a server that never
//! answers would hang the caller ([`DEFAULT_TIMEOUT`], then kubectl and every process it
//! started are killed), bounded in output ([`crate::load::MAX_INPUT_BYTES`]), and when it
//! fails, kubectl's whole message without its log prefix.

use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::load::{self, LoadError, MAX_INPUT_BYTES, RawDocument};

/// The program that renders kustomize directories, looked up on PATH.
pub const KUBECTL: &str = "kubectl";

/// How long one render may take by default: far above a local render (about 50 ms),
/// short enough that a remote base that never answers fails a pipeline step in time.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The files that make a directory a kustomization.
pub const KUSTOMIZATION_FILES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// The most of kubectl's stderr read for its message.
const MAX_STDERR_BYTES: u64 = 64 * 1024;

/// The longest message kept from kubectl's stderr, in characters.
pub const MAX_MESSAGE_CHARS: usize = 2000;

/// Whether `path` is a directory holding a kustomization file.
pub fn is_kustomization(path: &Path) -> bool {
    path.is_dir() && KUSTOMIZATION_FILES.iter().any(|f| path.join(f).is_file())
}

/// How kustomize directories are rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kustomize {
    /// The kubectl program: a name looked up on PATH, or a path.
    pub program: String,
    /// How long one render may take before kubectl, and every process it started, is
    /// killed.
    pub timeout: Duration,
}

impl Default for Kustomize {
    /// `kubectl` on PATH, [`DEFAULT_TIMEOUT`].
    fn default() -> Self {
        Self {
            program: KUBECTL.to_owned(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// Why a kustomize directory cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// kubectl is not on PATH (or not at the path given).
    #[error(
        "{dir} is a kustomize directory, rendered with `{program} kustomize`, but {program} is not on PATH; install kubectl, or render it to a file and name that file"
    )]
    NoKubectl {
        /// The directory.
        dir: String,
        /// The program looked for.
        program: String,
    },
    /// kubectl cannot be started or waited for.
    #[error("cannot run {command}: {source}")]
    Spawn {
        /// The command line, `kubectl kustomize DIR`.
        command: String,
        /// The I/O error.
        source: io::Error,
    },
    /// kubectl did not finish in time and was killed.
    #[error(
        "{command} did not finish within {} s (a remote base that does not answer?): kubectl and what it started were stopped",
        timeout.as_secs_f64()
    )]
    TimedOut {
        /// The command line.
        command: String,
        /// The limit.
        timeout: Duration,
    },
    /// kubectl exited with an error.
    #[error("{command} failed ({status}): {message}")]
    Failed {
        /// The command line.
        command: String,
        /// How it exited.
        status: ExitStatus,
        /// kubectl's message, without its log prefix.
        message: String,
    },
    /// kubectl printed more than a manifest source may hold.
    #[error("{command} printed more than {} MiB", MAX_INPUT_BYTES >> 20)]
    TooLarge {
        /// The command line.
        command: String,
    },
    /// What kubectl printed is not YAML of Kubernetes objects.
    #[error("cannot read the output of {command}: {source}")]
    Output {
        /// The command line.
        command: String,
        /// Why.
        source: LoadError,
    },
}

/// What the threads watching kubectl report.
enum Event {
    Exited(io::Result<ExitStatus>),
    Stdout(io::Result<Vec<u8>>),
    Stderr(io::Result<Vec<u8>>),
}

impl Kustomize {
    /// Renders the kustomize directory `dir` into documents, named
    /// `kubectl kustomize DIR, document N`.
    pub fn render(&self, dir: &Path) -> Result<Vec<RawDocument>, RenderError> {
        let command = format!("{} kustomize {}", self.program, dir.display());
        let spawned = Command::new(&self.program)
            .arg("kustomize")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so that a timeout stops what kubectl started too
            // (kustomize runs git for remote bases).
            .process_group(0)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(RenderError::NoKubectl {
                    dir: dir.display().to_string(),
                    program: self.program.clone(),
                });
            }
            Err(source) => return Err(RenderError::Spawn { command, source }),
        };
        let (tx, rx) = mpsc::channel();
        let (Some(out_pipe), Some(err_pipe)) = (child.stdout.take(), child.stderr.take()) else {
            kill_group(child.id());
            let _ = child.wait();
            return Err(RenderError::Spawn {
                command,
                source: io::Error::other("its output pipes were not set up"),
            });
        };
        let out_tx = tx.clone();
        thread::spawn(move || {
            let _ = out_tx.send(Event::Stdout(read_at_most(out_pipe, MAX_INPUT_BYTES + 1)));
        });
        let err_tx = tx.clone();
        thread::spawn(move || {
            let _ = err_tx.send(Event::Stderr(read_at_most(err_pipe, MAX_STDERR_BYTES)));
        });
        let group = child.id();
        thread::spawn(move || {
            let _ = tx.send(Event::Exited(child.wait()));
        });

        let Some((status, stdout, stderr)) = outcome(&rx, Instant::now() + self.timeout) else {
            // Still running, or exited with a child of its own holding the pipes: the
            // whole group goes. The waiting thread reaps kubectl.
            kill_group(group);
            return Err(RenderError::TimedOut {
                command,
                timeout: self.timeout,
            });
        };
        let spawn_error = |source| RenderError::Spawn {
            command: command.clone(),
            source,
        };
        let status = status.map_err(spawn_error)?;
        let stdout = stdout.map_err(spawn_error)?;
        let stderr = stderr.unwrap_or_default();
        if stdout.len() as u64 > MAX_INPUT_BYTES {
            return Err(RenderError::TooLarge { command });
        }
        if !status.success() {
            return Err(RenderError::Failed {
                message: kubectl_message(&String::from_utf8_lossy(&stderr)),
                command,
                status,
            });
        }
        let text = String::from_utf8(stdout).map_err(|e| RenderError::Output {
            command: command.clone(),
            source: LoadError::Syntax {
                origin: command.clone(),
                message: format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
            },
        })?;
        load::parse_text(&text, &command).map_err(|source| RenderError::Output { command, source })
    }
}

/// How kubectl exited, its stdout and its stderr, once all three are in; `None` when the
/// deadline passes first.
#[allow(clippy::type_complexity)]
fn outcome(
    events: &mpsc::Receiver<Event>,
    deadline: Instant,
) -> Option<(
    io::Result<ExitStatus>,
    io::Result<Vec<u8>>,
    io::Result<Vec<u8>>,
)> {
    let (mut status, mut stdout, mut stderr) = (None, None, None);
    loop {
        match (status, stdout, stderr) {
            (Some(s), Some(o), Some(e)) => return Some((s, o, e)),
            (s, o, e) => (status, stdout, stderr) = (s, o, e),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left).ok()? {
            Event::Exited(s) => status = Some(s),
            Event::Stdout(o) => stdout = Some(o),
            Event::Stderr(e) => stderr = Some(e),
        }
    }
}

/// Reads at most `limit` bytes, then lets the pipe go.
fn read_at_most(reader: impl Read, limit: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader.take(limit).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Kills every process of the group `leader` leads (kubectl's, see [`Kustomize::render`]).
fn kill_group(leader: u32) {
    let pid = i32::try_from(leader)
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        // Gone already: nothing left to stop.
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

/// kubectl's message from its stderr, whole, for one line: klog's header
/// (`E1130 23:54:55.293838   16492 run.go:72] `) dropped, a structured record's
/// `err="..."` or multi-line `err=<` value in place of the record, `error: ` dropped,
/// the parts joined with `; `, at most [`MAX_MESSAGE_CHARS`] characters.
pub fn kubectl_message(stderr: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut lines = stderr.lines();
    while let Some(line) = lines.next() {
        let line = strip_klog_header(line.trim());
        if line.is_empty() {
            continue;
        }
        if let Some(record) = line.strip_suffix("err=<") {
            // klog writes a value holding newlines as `err=<`, its lines indented by a
            // tab, then ` >`.
            let mut value: Vec<&str> = Vec::new();
            for l in lines.by_ref() {
                if l.trim() == ">" {
                    break;
                }
                value.push(l.trim());
            }
            let value = value.join(" ");
            parts.push(if value.trim().is_empty() {
                record.trim().to_owned()
            } else {
                value
            });
            continue;
        }
        if let Some(value) = quoted_value(line, "err=\"") {
            parts.push(value);
            continue;
        }
        let line = ["error: ", "Error: "]
            .iter()
            .find_map(|p| line.strip_prefix(p))
            .unwrap_or(line);
        parts.push(line.to_owned());
    }
    if parts.is_empty() {
        return "no message on its stderr".to_owned();
    }
    let message = parts.join("; ");
    if message.chars().count() > MAX_MESSAGE_CHARS {
        let cut: String = message.chars().take(MAX_MESSAGE_CHARS).collect();
        format!("{cut}...")
    } else {
        message
    }
}

/// The Go-quoted value after `key` (`err="a \"b\""` gives `a "b"`), when not empty.
fn quoted_value(line: &str, key: &str) -> Option<String> {
    let (_, rest) = line.split_once(key)?;
    let mut text = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('n') => text.push(' '),
                Some('t') => text.push(' '),
                Some(other) => text.push(other),
                None => {}
            },
            '"' => break,
            c => text.push(c),
        }
    }
    (!text.trim().is_empty()).then_some(text)
}

/// `line` without a leading klog header: a severity letter, `MMDD hh:mm:ss.micros`, the
/// thread id and `file:line] `.
fn strip_klog_header(line: &str) -> &str {
    let severity = line.bytes().next().is_some_and(|b| b"IWEF".contains(&b));
    let date = line
        .get(1..5)
        .is_some_and(|d| d.bytes().all(|b| b.is_ascii_digit()));
    if !(severity && date) {
        return line;
    }
    match line.split_once("] ") {
        Some((header, rest)) if header.len() < 64 && !header.contains('"') => rest.trim_start(),
        _ => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_stderr_becomes_its_whole_message() {
        let klog = "E1130 23:54:55.293838   16492 run.go:72] \"command failed\" err=\"accumulating resources: accumulation err='from \\\"x\\\"': no such file\"\n";
        assert_eq!(
            kubectl_message(klog),
            "accumulating resources: accumulation err='from \"x\"': no such file"
        );
        // A value with newlines: klog's `err=<` block, today's real output of a
        // duplicate key in a resource.
        let block = "E1203 08:10:00.470372    5057 run.go:72] \"command failed\" err=<\n\tmap[string]interface {}(nil): yaml: unmarshal errors:\n\t  line 5: mapping key \"name\" already defined at line 4\n >\n";
        assert_eq!(
            kubectl_message(block),
            "map[string]interface {}(nil): yaml: unmarshal errors: line 5: mapping key \"name\" already defined at line 4"
        );
        assert_eq!(
            kubectl_message("\nerror: must build at directory: not found\n"),
            "must build at directory: not found"
        );
        assert_eq!(
            kubectl_message("W1130 00:00:00.1 1 x.go:1] something odd\nerror: it broke\n"),
            "something odd; it broke"
        );
        assert_eq!(kubectl_message("plain text"), "plain text");
        assert_eq!(kubectl_message("  \n"), "no message on its stderr");
        let long = "x".repeat(MAX_MESSAGE_CHARS + 10);
        assert_eq!(
            kubectl_message(&long).chars().count(),
            MAX_MESSAGE_CHARS + 3
        );
    }
}
