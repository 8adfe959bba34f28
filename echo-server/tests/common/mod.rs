//! Helpers for the black-box tests: start the real `echo-server` binary (found with
//! `env!("CARGO_BIN_EXE_echo-server")`), read its logs, talk to it over loopback, and
//! always kill it, even when a test fails.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Command, ExitStatus, Stdio};

use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use test_support::{ChildGuard, parse_echo_addrs};

/// The longest any single wait in a test may take before the test fails.
pub const BOUND: Duration = Duration::from_secs(60);

/// The server binary of this package.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_echo-server")
}

/// A running server process; dropping it kills and reaps the process (its [`ChildGuard`]).
pub struct ServerProc {
    child: ChildGuard,
    lines: Receiver<String>,
    log: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
    /// The echo listeners, in the order of the command line.
    pub echo: Vec<SocketAddr>,
    /// The admin listener, if any.
    pub admin: Option<SocketAddr>,
}

/// Starts the binary on loopback with a free admin port and the given extra arguments.
pub fn start(args: &[&str]) -> ServerProc {
    let mut cmd = Command::new(binary());
    cmd.args(["--listen", "127.0.0.1", "--admin-port", "0"])
        .args(args);
    ServerProc::spawn(cmd)
}

impl ServerProc {
    /// Spawns `cmd` (which must run the server) and waits for its `listening` line.
    pub fn spawn(mut cmd: Command) -> ServerProc {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("RUST_LOG", "info");
        let mut child = cmd.spawn().expect("start echo-server");
        let stdout = child.stdout.take().expect("stdout piped");
        let stderr = child.stderr.take().expect("stderr piped");
        let (tx, lines) = channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let log_copy = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                log_copy.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let stderr_text = Arc::new(Mutex::new(String::new()));
        let stderr_copy = Arc::clone(&stderr_text);
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = BufReader::new(stderr).read_to_string(&mut text);
            stderr_copy.lock().unwrap().push_str(&text);
        });
        let mut server = ServerProc {
            child: ChildGuard(child),
            lines,
            log,
            stderr: stderr_text,
            echo: Vec::new(),
            admin: None,
        };
        let line = server.wait_log("listening");
        let json: Option<serde_json::Value> = serde_json::from_str(&line).ok();
        let field = |name: &str| match &json {
            Some(value) => value["fields"][name]
                .as_str()
                .unwrap_or_else(|| panic!("no {name} in {line:?}"))
                .to_owned(),
            None => line
                .split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("no {name} in {line:?}"))
                .to_owned(),
        };
        server.echo = parse_echo_addrs(&format!("echo={}", field("echo")))
            .expect("an echo= field")
            .unwrap_or_else(|e| panic!("{e}"));
        let admin = field("admin");
        server.admin = (admin != "none").then(|| admin.parse().expect("admin address"));
        server
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (bounded) for a log line containing `needle` and returns it.
    pub fn wait_log(&mut self, needle: &str) -> String {
        let start = Instant::now();
        if let Some(line) = self.log.lock().unwrap().iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        loop {
            let left = BOUND.saturating_sub(start.elapsed());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => panic!(
                    "no log line with {needle:?} within {BOUND:?}; stdout: {:?}; stderr: {}",
                    self.log.lock().unwrap(),
                    self.stderr.lock().unwrap()
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    // Output ended; the line may have been logged just before.
                    if let Some(line) = self.log.lock().unwrap().iter().find(|l| l.contains(needle))
                    {
                        return line.clone();
                    }
                    let status = self.child.wait().ok();
                    panic!(
                        "server exited ({status:?}) without logging {needle:?}; stdout: {:?}; stderr: {}",
                        self.log.lock().unwrap(),
                        self.stderr.lock().unwrap()
                    )
                }
            }
        }
    }

    /// Sends a signal with the `kill` command (e.g. "TERM", "INT").
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                start.elapsed() < BOUND,
                "server did not exit within {BOUND:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// The first echo listener.
    pub fn addr(&self) -> SocketAddr {
        self.echo[0]
    }

    /// The resident memory of the server process, in KiB (VmRSS).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status")
    }

    /// GET on the admin port: (status code, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.admin.expect("admin port"), path)
    }

    /// The value of metric `echo_<name>` (counters without their `_total`).
    pub fn metric(&self, name: &str) -> u64 {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200);
        for candidate in [format!("echo_{name}_total{{"), format!("echo_{name}{{")] {
            if let Some(line) = body.lines().find(|l| l.starts_with(&candidate)) {
                return line
                    .rsplit(' ')
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("bad metric line {line:?}"));
            }
        }
        panic!("metric {name} not found in {body}")
    }

    /// Polls (bounded) until metric `name` satisfies `ok`.
    pub fn wait_metric(&self, name: &str, ok: impl Fn(u64) -> bool) -> u64 {
        wait_for(&format!("metric {name}"), || {
            let value = self.metric(name);
            ok(value).then_some(value)
        })
    }
}

/// Polls `probe` every 20 ms until it returns `Some`, failing the test after [`BOUND`].
pub fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            start.elapsed() < BOUND,
            "{what}: not reached within {BOUND:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A bare HTTP/1.1 GET: (status code, body).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect admin");
    stream.set_read_timeout(Some(BOUND)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad HTTP response {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A client connection with a bounded read timeout.
pub struct Client {
    /// The socket.
    pub stream: TcpStream,
}

impl Client {
    /// Connects to `addr`.
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(BOUND)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client { stream }
    }

    /// Connects to `addr` with a 4 KiB receive buffer, so that unread replies stay in
    /// the server's memory instead of the kernel's.
    pub fn connect_small_receive_buffer(addr: SocketAddr) -> Client {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            None,
        )
        .unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.connect_timeout(&addr.into(), BOUND).unwrap();
        let stream: TcpStream = socket.into();
        stream.set_read_timeout(Some(BOUND)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client { stream }
    }

    /// Writes all of `bytes`.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Reads exactly `n` bytes.
    pub fn recv(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        self.stream.read_exact(&mut buf).expect("receive");
        buf
    }

    /// Sends `line` and returns the reply of the same length plus `version `.
    pub fn exchange(&mut self, version: &str, line: &[u8]) -> Vec<u8> {
        self.send(line);
        self.recv(version.len() + 1 + line.len())
    }

    /// Closes the sending side.
    pub fn finish(&mut self) {
        self.stream
            .shutdown(Shutdown::Write)
            .expect("shutdown write");
    }

    /// Reads until the server closes; `Err` when the connection was reset.
    pub fn read_to_end(&mut self) -> std::io::Result<Vec<u8>> {
        let mut all = Vec::new();
        self.stream.read_to_end(&mut all)?;
        Ok(all)
    }

    /// Whether the server has closed (or reset) the connection: reads until EOF or error.
    pub fn closed_by_server(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                    ) =>
                {
                    return true;
                }
                Err(_) => return false,
            }
        }
    }
}

/// The reply a server of `version` must send to `line`.
pub fn reply(version: &str, line: &[u8]) -> Vec<u8> {
    let mut out = format!("{version} ").into_bytes();
    out.extend_from_slice(line);
    out
}

/// Reads one `kB` field (e.g. `VmHWM`, `VmRSS`) of `/proc/<pid>/status`, in KiB.
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}

/// The number of file descriptors process `pid` holds open.
pub fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// The soft "Max open files" limit of process `pid`, from `/proc/<pid>/limits`.
pub fn soft_nofile(pid: u32) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files in /proc/<pid>/limits");
    line["Max open files".len()..]
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("bad limits line {line:?}"))
}

/// A command that runs the server under `ulimit <ulimit_args>` (e.g. `-S -n 256`), on
/// loopback with a free admin port.
pub fn under_ulimit(ulimit_args: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("ulimit {ulimit_args} && exec \"$0\" \"$@\""))
        .arg(binary())
        .args(["--listen", "127.0.0.1", "--admin-port", "0"])
        .args(args);
    cmd
}

/// Raises this test process's own soft descriptor limit to its hard limit, so that it
/// can hold thousands of client sockets; returns the hard limit.
pub fn raise_own_nofile() -> u64 {
    let (_, hard) = rlimit::Resource::NOFILE.get().unwrap();
    rlimit::increase_nofile_limit(hard).unwrap();
    hard
}

/// `n` admin connections, each sending the start of a request whose headers never end
/// (up to `header_bytes` of header lines); the server may close any of them.
pub fn half_sent_admin_requests(
    admin: SocketAddr,
    n: usize,
    header_bytes: usize,
) -> Vec<TcpStream> {
    let mut head = format!("GET /healthz HTTP/1.1\r\nHost: {admin}\r\n").into_bytes();
    while head.len() < header_bytes {
        head.extend_from_slice(
            b"X-Never-Ending: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
        );
    }
    (0..n)
        .map(|_| {
            let mut stream = TcpStream::connect_timeout(&admin, BOUND).expect("connect admin");
            stream
                .set_write_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            // The server may cut or evict the connection while this is being written.
            let _ = stream.write_all(&head);
            stream
        })
        .collect()
}
