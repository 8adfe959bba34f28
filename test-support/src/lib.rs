//! Shared helpers of the workspace's tests (a dev-dependency only): a kill-on-drop
//! process guard, free loopback ports and the parser of a server's `echo=` line.
//!
//! [`fault`] holds an in-process echo server that serves several versions in turn
//! and can be slowed or made to corrupt replies on purpose.
//!
//! [`servers`] (feature `servers`) starts real servers (nginx, redis-server, sshd,
//! HAProxy, Envoy) on loopback ports for the probe tests. [`tls`] (feature `tls`) makes a CA and server certificates for the TLS tests.
//!
//! It depends on no workspace library, so any package can use it without building
//! another copy of them; its features add rcgen and serde_json.

use std::net::{SocketAddr, TcpListener};
use std::process::Child;

pub mod fault;
#[cfg(feature = "servers")]
pub mod servers;
#[cfg(feature = "tls")]
pub mod tls;

/// A child process that is killed and reaped when dropped, also when a test panics.
#[derive(Debug)]
pub struct ChildGuard(pub Child);

impl ChildGuard {
    /// The process id.
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for ChildGuard {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for ChildGuard {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

/// A loopback address with a port that nothing listens on (bound, read back, released).
///
/// # Panics
/// When IPv4 loopback cannot be bound (the test cannot run).
pub fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("the bound address")
}

/// Makes a FIFO (named pipe) at `path` with coreutils' `mkfifo` (no unsafe code): a file
/// that blocks whoever opens it for reading until a writer comes.
///
/// # Panics
/// When `mkfifo` cannot run or fails (the test cannot run).
pub fn mkfifo(path: &std::path::Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// A free loopback port for a process that cannot bind port 0 itself (HAProxy).
pub fn free_port() -> u16 {
    closed_port().port()
}

/// The addresses of a `listening ... echo=<addr>[,<addr>...]` line, `None` without `echo=`.
///
/// Both servers print this line once bound: the echo server and the benches' epoll loop.
pub fn parse_echo_addrs(line: &str) -> Option<Result<Vec<SocketAddr>, String>> {
    let list = line
        .split_whitespace()
        .find_map(|word| word.strip_prefix("echo="))?;
    Some(
        list.split(',')
            .map(|a| {
                a.parse()
                    .map_err(|e| format!("bad echo address {a:?} in {line:?}: {e}"))
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_line_parses_every_address() {
        let line = "2026-01-01T00:00:00Z INFO listening echo=127.0.0.1:9000,[::1]:9001 admin=none";
        let addrs = parse_echo_addrs(line).expect("has echo=").expect("valid");
        assert_eq!(
            addrs,
            vec![
                "127.0.0.1:9000".parse::<SocketAddr>().expect("addr"),
                "[::1]:9001".parse().expect("addr")
            ]
        );
        assert!(parse_echo_addrs("listening admin=127.0.0.1:1").is_none());
        assert!(matches!(parse_echo_addrs("echo=nonsense"), Some(Err(_))));
    }

    #[test]
    fn a_closed_port_refuses_and_the_guard_kills() {
        let addr = closed_port();
        assert!(std::net::TcpStream::connect(addr).is_err());
        let child = std::process::Command::new("sleep")
            .arg("600")
            .spawn()
            .expect("start sleep");
        let pid = child.id();
        drop(ChildGuard(child));
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    }
}
