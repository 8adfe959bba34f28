//! A real HAProxy as the rehearsal's ingress, driven live through its runtime API.
//!
//! HAProxy runs in the foreground (`-db`) and reads its generated configuration from a
//! pipe (`-f /dev/stdin`): one TCP frontend on a free loopback port and one backend
//! with `balance random(1)` (one weighted random draw per new connection, like Envoy;
//! plain `balance random` draws twice and keeps the less loaded server, which skews the
//! split). Its runtime API listens on an abstract unix socket (`abns@`), which has no
//! file and vanishes with the process, so the rehearsal leaves nothing on disk.
//!
//! HAProxy runs under the shared supervisor ([`crate::supervisor`]), so it dies with
//! the checker however the checker ends, even on SIGKILL.
//!
//! The backend declares a fixed number of server slots, all disabled; a replica takes a
//! free slot (`set server ... addr`, `state ready`), a removed replica's slot goes to
//! `state maint` (no new connection, open ones go on), and group weights become
//! per-server weights (`set weight`) over the replicas in rotation, so that each
//! group's total share matches; they are recomputed whenever a replica joins or leaves.
//! Slots are never reused, so a draining replica keeps its own. `retries 0`: a refused
//! connect fails the client's connection, as in Envoy. `option nolinger` on the
//! backend: HAProxy closes its server-side connections with a reset, so that the
//! rehearsal's tens of thousands of short connections leave no TIME_WAIT entries in the
//! kernel's connection-tracking table (see [`crate`]).
//!
//! HAProxy 2.6's dynamic `add server` was measured here to ignore weights with
//! `balance random` (4000 connections at 8:1 all went to one side), hence the slots.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::stats::{BackendStats, GatewayShutdown, GatewayStats};
use super::weights::server_weights;
use crate::setting::{Names, Setting};
use crate::supervisor::{NOT_FOUND, Supervised};

/// The backend's name in the generated configuration.
const BACKEND: &str = "be";
/// The frontend's name in the generated configuration.
const FRONTEND: &str = "fe";
/// How long HAProxy may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one runtime API command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// The length of `sun_path` without its leading NUL: HAProxy pads `abns@` names to it.
const ABNS_LEN: usize = 107;

/// Why HAProxy could not be used.
#[derive(Debug, thiserror::Error)]
pub enum HaproxyError {
    /// The binary was not found.
    #[error("{}", self.message(Setting::words))]
    NotInstalled {
        /// The binary that was looked for.
        binary: String,
    },
    /// A file or process operation failed.
    #[error("haproxy: {what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// HAProxy exited or never became ready.
    #[error("haproxy did not start: {0}")]
    Start(String),
    /// A runtime API command was refused.
    #[error("haproxy refused `{command}`: {answer}")]
    Command {
        /// The command sent.
        command: String,
        /// HAProxy's answer.
        answer: String,
    },
    /// Every server slot is taken.
    #[error("haproxy has no free server slot left (the configuration declares {0})")]
    NoSlot(usize),
}

impl HaproxyError {
    /// The error as one sentence, naming the settings as `names` does (a binary: its flags).
    pub fn message(&self, names: Names) -> String {
        match self {
            HaproxyError::NotInstalled { binary } => format!(
                "haproxy is not installed ({binary} not found); install it (Debian: apt-get install haproxy) or use {} builtin",
                names(Setting::Gateway)
            ),
            other => other.to_string(),
        }
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> HaproxyError {
    let what = what.into();
    move |source| HaproxyError::Io { what, source }
}

#[derive(Debug, Clone)]
struct Slot {
    name: String,
    group: Option<String>,
    addr: Option<SocketAddr>,
    active: bool,
}

/// A running HAProxy child; dropping it kills the process.
#[derive(Debug)]
pub struct Haproxy {
    process: Option<Supervised>,
    api: String,
    addr: SocketAddr,
    slots: Vec<Slot>,
    weights: BTreeMap<String, u32>,
}

impl Haproxy {
    /// Starts `binary` with `slots` server slots on a free loopback port.
    pub async fn start(binary: &str, slots: usize) -> Result<Self, HaproxyError> {
        let mut last = None;
        // The free port is found by binding port 0 and releasing it; another process may
        // take it in between, so a failed start is retried on a fresh port.
        for _ in 0..3 {
            match Self::start_once(binary, slots).await {
                Ok(h) => return Ok(h),
                Err(e @ HaproxyError::Start(_)) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| HaproxyError::Start("no attempt was made".to_owned())))
    }

    async fn start_once(binary: &str, slots: usize) -> Result<Self, HaproxyError> {
        let port = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(io("finding a free port"))?
            .port();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let api = format!(
            "tcp-canary-haproxy-{}-{port}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        let slots: Vec<Slot> = (0..slots)
            .map(|i| Slot {
                name: format!("s{i}"),
                group: None,
                addr: None,
                active: false,
            })
            .collect();
        let args = ["-db", "-f", "/dev/stdin"].map(str::to_owned);
        let config = render_config(&api, addr, &slots);
        let process = Supervised::spawn("tcp-canary-haproxy", &config, None, binary, &args)
            .map_err(io("starting its supervisor (sh)"))?;
        let mut h = Self {
            process: Some(process),
            api,
            addr,
            slots,
            weights: BTreeMap::new(),
        };
        h.wait_ready(binary).await?;
        Ok(h)
    }

    async fn wait_ready(&mut self, binary: &str) -> Result<(), HaproxyError> {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            if let Some(p) = self.process.as_mut() {
                p.pid();
                if let Some(status) = p.exited() {
                    // Give the output reader a moment to take HAProxy's last words.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let last = p.last_line_with("ALERT");
                    self.process = None;
                    // 127: the shell found no such command.
                    if status.code() == Some(NOT_FOUND) {
                        return Err(HaproxyError::NotInstalled {
                            binary: binary.to_owned(),
                        });
                    }
                    return Err(HaproxyError::Start(format!("it exited ({status}): {last}")));
                }
            }
            let api = self.command("show info").await.is_ok();
            if api && tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(HaproxyError::Start(format!(
                    "not listening on {} after {:?}",
                    self.addr, START_TIMEOUT
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The frontend's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// HAProxy's process id, while it runs.
    pub fn pid(&mut self) -> Option<u32> {
        self.process.as_mut().and_then(Supervised::pid)
    }

    /// Sends one runtime API command and returns the answer.
    pub async fn command(&self, command: &str) -> Result<String, HaproxyError> {
        let exchange = async {
            let mut s = connect_abstract(&self.api)?;
            s.write_all(format!("{command}\n").as_bytes()).await?;
            let mut out = String::new();
            s.read_to_string(&mut out).await?;
            Ok::<_, std::io::Error>(out)
        };
        tokio::time::timeout(COMMAND_TIMEOUT, exchange)
            .await
            .map_err(|_| HaproxyError::Io {
                what: format!("`{command}`"),
                source: std::io::ErrorKind::TimedOut.into(),
            })?
            .map_err(io(format!("`{command}`")))
    }

    /// Sends a command that answers nothing (or a notice) on success.
    async fn expect_ok(&self, command: &str) -> Result<(), HaproxyError> {
        let answer = self.command(command).await?;
        let answer = answer.trim();
        let refused = [
            "No such", "Require", "nvalid", "Unknown", "must", "cannot", "rror",
        ];
        if refused.iter().any(|w| answer.contains(w)) {
            return Err(HaproxyError::Command {
                command: command.to_owned(),
                answer: answer.to_owned(),
            });
        }
        Ok(())
    }

    /// Puts a replica in a free slot of `group` and into rotation.
    pub async fn add_replica(&mut self, group: &str, addr: SocketAddr) -> Result<(), HaproxyError> {
        let total = self.slots.len();
        let i = self
            .slots
            .iter()
            .position(|s| s.group.is_none())
            .ok_or(HaproxyError::NoSlot(total))?;
        let name = self.slots[i].name.clone();
        self.expect_ok(&format!(
            "set server {BACKEND}/{name} addr {} port {}",
            addr.ip(),
            addr.port()
        ))
        .await?;
        self.slots[i].group = Some(group.to_owned());
        self.slots[i].addr = Some(addr);
        self.slots[i].active = true;
        self.weights.entry(group.to_owned()).or_insert(0);
        self.apply_weights().await?;
        self.expect_ok(&format!("set server {BACKEND}/{name} state ready"))
            .await
    }

    /// Takes a replica out of rotation (`state maint`); its open connections go on.
    pub async fn remove_replica(
        &mut self,
        group: &str,
        addr: SocketAddr,
    ) -> Result<(), HaproxyError> {
        let found = self
            .slots
            .iter()
            .position(|s| s.active && s.group.as_deref() == Some(group) && s.addr == Some(addr));
        if let Some(i) = found {
            self.slots[i].active = false;
            let name = self.slots[i].name.clone();
            self.expect_ok(&format!("set server {BACKEND}/{name} state maint"))
                .await?;
            self.apply_weights().await?;
        }
        Ok(())
    }

    /// Sets the weights of the named groups; others keep theirs.
    pub async fn set_weights(&mut self, weights: &[(&str, u32)]) -> Result<(), HaproxyError> {
        for (group, w) in weights {
            self.weights.insert((*group).to_owned(), *w);
        }
        self.apply_weights().await
    }

    /// Takes every replica of `group` out of rotation and forgets its weight.
    pub async fn remove_group(&mut self, group: &str) -> Result<(), HaproxyError> {
        let addrs: Vec<SocketAddr> = self
            .slots
            .iter()
            .filter(|s| s.active && s.group.as_deref() == Some(group))
            .filter_map(|s| s.addr)
            .collect();
        for addr in addrs {
            self.remove_replica(group, addr).await?;
        }
        self.weights.remove(group);
        self.apply_weights().await
    }

    async fn apply_weights(&mut self) -> Result<(), HaproxyError> {
        let mut replicas: BTreeMap<&str, u64> = BTreeMap::new();
        for s in self.slots.iter().filter(|s| s.active) {
            if let Some(g) = &s.group {
                *replicas.entry(g.as_str()).or_insert(0) += 1;
            }
        }
        let per_server = server_weights(&self.weights, &replicas);
        let commands: Vec<String> = self
            .slots
            .iter()
            .filter(|s| s.active)
            .filter_map(|s| {
                let g = s.group.as_deref()?;
                let w = per_server.get(g).copied().unwrap_or(0);
                Some(format!("set weight {BACKEND}/{} {w}", s.name))
            })
            .collect();
        for c in commands {
            self.expect_ok(&c).await?;
        }
        Ok(())
    }

    /// Counters from `show stat`: frontend sessions and per-slot server sessions.
    ///
    /// `opened` is the server's total sessions, `active` its current ones,
    /// `connect_failed` its connection errors, `errored` its server-side aborts and
    /// `reset_by_client` its client-side aborts.
    pub async fn stats(&self) -> Result<GatewayStats, HaproxyError> {
        let text = self.command("show stat").await?;
        let mut lines = text.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .trim_start_matches("# ")
            .split(',')
            .collect();
        let col = |name: &str| header.iter().position(|h| *h == name);
        let (
            Some(px),
            Some(sv),
            Some(scur),
            Some(stot),
            Some(econ),
            Some(srv_abrt),
            Some(cli_abrt),
        ) = (
            col("pxname"),
            col("svname"),
            col("scur"),
            col("stot"),
            col("econ"),
            col("srv_abrt"),
            col("cli_abrt"),
        )
        else {
            return Err(HaproxyError::Command {
                command: "show stat".to_owned(),
                answer: "an unexpected header".to_owned(),
            });
        };
        let mut stats = GatewayStats::default();
        for line in lines {
            let f: Vec<&str> = line.split(',').collect();
            let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            let (Some(p), Some(s)) = (f.get(px), f.get(sv)) else {
                continue;
            };
            if *p == FRONTEND && *s == "FRONTEND" {
                stats.accepted = num(stot);
            } else if *p == BACKEND {
                let Some(slot) = self.slots.iter().find(|x| x.name == *s) else {
                    continue;
                };
                let Some(group) = &slot.group else { continue };
                let (opened, active, errored) = (num(stot), num(scur), num(srv_abrt));
                let reset_by_client = num(cli_abrt);
                stats.backends.push(BackendStats {
                    group: group.clone(),
                    addr: slot.addr,
                    opened,
                    closed: opened.saturating_sub(active + errored + reset_by_client),
                    errored,
                    reset_by_client,
                    cut: 0,
                    connect_failed: num(econ),
                    active,
                });
            }
        }
        Ok(stats)
    }

    /// Stops listening, waits up to `deadline` for open sessions to end, then kills HAProxy.
    pub async fn shutdown(mut self, deadline: Duration) -> GatewayShutdown {
        let _ = self.command(&format!("shutdown frontend {FRONTEND}")).await;
        let this = &self;
        let open = move || async move {
            let stats = this.stats().await;
            stats.map_or(0, |s| s.backends.iter().map(|b| b.active).sum::<u64>())
        };
        let result = GatewayShutdown::wait_for(deadline, open).await;
        self.kill();
        result
    }

    fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop();
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Connects to HAProxy's runtime API on the abstract unix socket `name`.
fn connect_abstract(name: &str) -> std::io::Result<UnixStream> {
    use std::os::linux::net::SocketAddrExt;
    // HAProxy binds `abns@name` padded with NULs to the whole of sun_path.
    let mut padded = name.as_bytes().to_vec();
    padded.resize(ABNS_LEN, 0);
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(&padded)?;
    let stream = std::os::unix::net::UnixStream::connect_addr(&addr)?;
    stream.set_nonblocking(true)?;
    UnixStream::from_std(stream)
}

/// How the backend picks a server for each new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// `random(1)`: one weighted random draw per connection, like Envoy's weighted clusters.
    Random,
    /// `roundrobin`: a deterministic weighted rotation (exact splits, for tests).
    RoundRobin,
}

/// One `server` line of the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLine {
    /// The server's name (unique in the backend).
    pub name: String,
    /// Where it sends connections.
    pub addr: SocketAddr,
    /// Its weight, 0 to 256.
    pub weight: u32,
    /// Declared but out of rotation until the runtime API enables it.
    pub disabled: bool,
}

/// A one-frontend TCP configuration: the project's one writer of HAProxy configurations,
/// used by the rehearsal's driver and by the tests that put HAProxy in front of servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaproxyConfig {
    /// The frontend's listening address.
    pub bind: SocketAddr,
    /// The backend's balancing algorithm.
    pub balance: Balance,
    /// An abstract unix socket name for the admin-level runtime API, if any.
    pub runtime_api: Option<String>,
    /// Close server-side connections with a reset (`option nolinger`), leaving no TIME_WAIT.
    pub nolinger: bool,
    /// The backend's servers, in order.
    pub servers: Vec<ServerLine>,
}

impl HaproxyConfig {
    /// The configuration file's text.
    pub fn render(&self) -> String {
        let mut cfg = String::from("# generated by tcp-canary\nglobal\n");
        if let Some(api) = &self.runtime_api {
            cfg.push_str(&format!("    stats socket abns@{api} level admin\n"));
        }
        let balance = match self.balance {
            Balance::Random => "random(1)",
            Balance::RoundRobin => "roundrobin",
        };
        cfg.push_str(&format!(
            "    maxconn 4096

defaults
    mode tcp
    retries 0
    timeout connect 2s
    timeout client 120s
    timeout server 120s

frontend {FRONTEND}
    bind {bind}
    default_backend {BACKEND}

backend {BACKEND}
    balance {balance}
",
            bind = self.bind
        ));
        if self.nolinger {
            cfg.push_str("    option nolinger\n");
        }
        for s in &self.servers {
            let disabled = if s.disabled { " disabled" } else { "" };
            cfg.push_str(&format!(
                "    server {} {} weight {}{disabled}\n",
                s.name, s.addr, s.weight
            ));
        }
        cfg
    }
}

/// The rehearsal's configuration: random(1), a runtime API and every slot disabled (a
/// placeholder address until a replica takes it over the runtime API).
fn render_config(api: &str, addr: SocketAddr, slots: &[Slot]) -> String {
    let placeholder = SocketAddr::from(([127, 0, 0, 1], 1));
    HaproxyConfig {
        bind: addr,
        balance: Balance::Random,
        runtime_api: Some(api.to_owned()),
        nolinger: true,
        servers: slots
            .iter()
            .map(|s| ServerLine {
                name: s.name.clone(),
                addr: placeholder,
                weight: 1,
                disabled: true,
            })
            .collect(),
    }
    .render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_writer_renders_both_configurations() {
        let a: SocketAddr = "127.0.0.1:9001".parse().unwrap();
        let fixed = HaproxyConfig {
            bind: "127.0.0.1:8000".parse().unwrap(),
            balance: Balance::RoundRobin,
            runtime_api: None,
            nolinger: false,
            servers: vec![ServerLine {
                name: "s0".into(),
                addr: a,
                weight: 3,
                disabled: false,
            }],
        }
        .render();
        assert!(fixed.contains("    bind 127.0.0.1:8000\n"));
        assert!(fixed.contains("    balance roundrobin\n"));
        assert!(fixed.contains("    server s0 127.0.0.1:9001 weight 3\n"));
        assert!(!fixed.contains("stats socket") && !fixed.contains("nolinger"));

        let slot = |name: &str| Slot {
            name: name.into(),
            group: None,
            addr: None,
            active: false,
        };
        let rehearsal = render_config("api", "127.0.0.1:8000".parse().unwrap(), &[slot("x0")]);
        assert!(rehearsal.contains("    stats socket abns@api level admin\n"));
        assert!(rehearsal.contains("    balance random(1)\n    option nolinger\n"));
        assert!(rehearsal.contains("    server x0 127.0.0.1:1 weight 1 disabled\n"));
    }
}
