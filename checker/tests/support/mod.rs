//! Shared helpers of the checker's black-box tests.
//!
//! * the checker binary comes from `env!("CARGO_BIN_EXE_checker")` (this package);
//! * the echo servers run in process (the `echo_server` library): these tests test the
//!   checker; the echo-server binary has its own tests;
//! * the process guard and free ports come from the shared `test-support` crate;
//! * fault servers (garbage, early close, silence, reset) are small threads in the test;
//! * HAProxy (Debian package) runs as `haproxy -db -f <temp cfg>`.
//!
//! Every process is killed and reaped on drop, every wait is bounded by [`BOUND`], and
//! every listener binds port 0 (or a port just handed out by the kernel).
#![allow(dead_code)]

pub mod envoy;

use std::io::BufRead;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The longest any single wait in a test may take before the test fails.
pub const BOUND: Duration = Duration::from_secs(120);

/// `--confidence` of every run that expects a PASS through a gateway that draws at
/// random: Envoy, and the rehearsal's HAProxy (`balance random(1)`).
///
/// Such a gateway picks a version at random for each connection, so a fixed plan leaves
/// a correctly routed split undecided in up to 1 - confidence of runs: 1% at the
/// default 99% (measured by the binomial sum: 0.96% at 90/10 over 1,169 connections,
/// 0.99% at 80/20 over 1,883; CI once met it at 70/30, 1,619 of 2,432 for `one`). A
/// sequential run (the rehearsal's steps through HAProxy and Envoy, `verify`'s default)
/// misses far less often in practice, but 1 - confidence is all it guarantees. A CI run
/// has some fifty such steps; at 99.99% each is a chance failure in at most 0.01% of
/// runs and all of them together in 0.5%, so these tests stay tests of the gateway view
/// and the walk, not coin tosses. A misrouted split is still found: power rises with
/// confidence. (The test HAProxy of `servers`
/// (`roundrobin`) and nginx rotate their servers, and the built-in gateway draws from a
/// seed: their splits are the same in every run.)
pub const RANDOM_PICK_CONFIDENCE: &str = "99.99%";

/// The checker binary under test: this package's build, or the one named by
/// `TCP_CANARY_TEST_CHECKER` (.ci/run points the million-sample runs at the release
/// build, which does in seconds what the debug build takes minutes for).
pub fn checker() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        std::env::var("TCP_CANARY_TEST_CHECKER")
            .ok()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_checker").to_owned())
    })
}

/// An in-process echo server (the `echo_server` library on its own runtime thread).
///
/// These tests test the checker, not the echo-server binary (whose own tests do), so
/// the server runs in the test process: no second binary to build or find. Dropping it
/// aborts the server and joins its thread.
pub struct EchoServer {
    handle: echo_server::ServerHandle,
    thread: Option<JoinHandle<()>>,
    /// Its echo listeners, in the order asked for.
    pub addrs: Vec<SocketAddr>,
    /// Holds its certificate and key while it serves TLS.
    _tls_dir: Option<tempfile::TempDir>,
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.handle.abort();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl EchoServer {
    /// Istio's form on IPv4 loopback: version `version` on `ports` free ports.
    pub fn start(version: &str, ports: usize) -> EchoServer {
        Self::start_on("127.0.0.1", version, ports)
    }

    /// Like [`EchoServer::start`], listening on `listen` (e.g. `::1`).
    pub fn start_on(listen: &str, version: &str, ports: usize) -> EchoServer {
        Self::start_with(listen, version, ports, None)
    }

    /// Like [`EchoServer::start`] on one port, terminating TLS with a self-signed
    /// certificate for `names` (clients use `--tls --insecure`).
    pub fn start_tls(version: &str, names: &[&str]) -> EchoServer {
        let dir = tempfile::tempdir().expect("a directory for the certificate");
        let files = test_support::tls::self_signed(names, names[0]).write(dir.path(), "echo");
        let tls = echo_server::tls::TlsFiles {
            cert: files.cert,
            key: files.key,
        };
        Self::start_with("127.0.0.1", version, 1, Some((tls, dir)))
    }

    fn start_with(
        listen: &str,
        version: &str,
        ports: usize,
        tls: Option<(echo_server::tls::TlsFiles, tempfile::TempDir)>,
    ) -> EchoServer {
        let mut config = echo_server::Config::new(vec![0; ports.max(1)], version.to_owned());
        config.listen = listen.parse().expect("a listen address");
        config.admin_port = None;
        let (tls, tls_dir) = match tls {
            Some((files, dir)) => (Some(files), Some(dir)),
            None => (None, None),
        };
        config.tls = tls;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime for the echo server");
        let server = runtime
            .block_on(echo_server::Server::bind(config))
            .expect("bind the in-process echo server");
        let (addrs, handle) = (server.local_addrs(), server.handle());
        let thread = std::thread::spawn(move || {
            let _ = runtime.block_on(server.run());
        });
        EchoServer {
            handle,
            thread: Some(thread),
            addrs,
            _tls_dir: tls_dir,
        }
    }

    /// The first echo address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }
}

/// What a fault server does with each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Replies `garbage\n` whatever was sent.
    Garbage,
    /// Reads the probe and closes without replying.
    CloseEarly,
    /// Reads the probe and never answers (waits for the client to give up).
    Silent,
    /// Reads the probe and resets the connection (SO_LINGER 0).
    Reset,
    /// Echoes correctly as `one`, except every third connection gets garbage.
    EveryThirdGarbage,
    /// Echoes in another format: `one\t<the line>` (a tab where the protocol has a space).
    TabSeparated,
    /// Echoes as `one` and `two` in turn, one connection each, except that from its
    /// connection number `n` (0-based) on it never answers `two`'s: those stay open,
    /// unanswered, until the client closes them (a canary whose replies are in flight).
    SilentTwoFrom(u64),
}

/// A test-only TCP server that misbehaves in one way; stops on drop.
pub struct FaultServer {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    accepted: Arc<AtomicU64>,
    finished: Arc<AtomicU64>,
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn read_line(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match s.read(&mut byte) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {
                line.push(byte[0]);
                if byte[0] == b'\n' {
                    return Some(line);
                }
            }
        }
    }
}

fn drain(s: &mut TcpStream) {
    let mut buf = [0u8; 256];
    while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
}

impl FaultServer {
    /// Starts a fault server on IPv4 loopback.
    pub fn start(fault: Fault) -> FaultServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fault server");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("fault server address");
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stop);
        let accepted = Arc::new(AtomicU64::new(0));
        let finished = Arc::new(AtomicU64::new(0));
        let (count, done) = (Arc::clone(&accepted), Arc::clone(&finished));
        let thread = std::thread::spawn(move || {
            while !stop_flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
                        let n = count.fetch_add(1, Ordering::SeqCst);
                        let done = Arc::clone(&done);
                        std::thread::spawn(move || {
                            handle(fault, n, &mut s);
                            done.fetch_add(1, Ordering::SeqCst);
                        });
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        FaultServer {
            addr,
            stop,
            thread: Some(thread),
            accepted,
            finished,
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Connections done with: answered (or not) and closed by the client.
    pub fn finished(&self) -> u64 {
        self.finished.load(Ordering::SeqCst)
    }
}

fn handle(fault: Fault, n: u64, s: &mut TcpStream) {
    let Some(line) = read_line(s) else { return };
    match fault {
        Fault::Garbage => {
            let _ = s.write_all(b"garbage\n");
            drain(s);
        }
        Fault::CloseEarly => {}
        Fault::Silent => drain(s),
        Fault::Reset => {
            let _ = socket2::SockRef::from(&*s).set_linger(Some(Duration::ZERO));
        }
        Fault::TabSeparated => {
            let _ = s.write_all(&[b"one\t".as_slice(), &line].concat());
            drain(s);
        }
        Fault::SilentTwoFrom(from) => {
            if n % 2 == 1 && n >= from {
                // No read timeout: held until the client closes, however long it takes.
                let _ = s.set_read_timeout(None);
            } else {
                let version: &[u8] = if n.is_multiple_of(2) {
                    b"one "
                } else {
                    b"two "
                };
                let _ = s.write_all(&[version, &line].concat());
            }
            drain(s);
        }
        Fault::EveryThirdGarbage => {
            if n % 3 == 2 {
                let _ = s.write_all(b"garbage\n");
            } else {
                let _ = s.write_all(&[b"one ".as_slice(), &line].concat());
            }
            drain(s);
        }
    }
}

#[allow(unused_imports)] // each test file uses a different part
pub use test_support::{ChildGuard as Guard, closed_port, free_port};

/// The result of one checker run.
pub struct Run {
    /// The exit code.
    pub code: i32,
    /// Everything on stdout.
    pub stdout: String,
    /// Everything on stderr.
    pub stderr: String,
}

impl Run {
    /// Parses stdout as the JSON report.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `checker <args>` to completion (bounded) and collects its output.
pub fn run_checker(args: &[&str]) -> Run {
    run_checker_env(args, &[])
}

/// Runs `checker <args>` with the variables `env` set, to completion (bounded), and
/// collects its output.
pub fn run_checker_env(args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Run {
    wait_output(spawn_checker(args, env))
}

/// Starts `checker <args>` with the variables `env` set, its output piped.
fn spawn_checker(args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Guard {
    let child = Command::new(checker())
        .args(args)
        .envs(env.iter().copied())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start checker");
    Guard(child)
}

/// Waits (bounded by [`BOUND`]) for a spawned checker and collects its piped output (stdout may have been taken).
pub fn wait_output(guard: Guard) -> Run {
    wait_output_measured(guard, None).0
}

/// Runs `checker <args>` to completion (bounded), watching its peak resident memory
/// (VmHWM); a checker that grows past `ceiling_kib` is killed and the test fails, so a
/// regression cannot exhaust the shared machine. Returns the run and its peak, KiB.
pub fn run_checker_measured(args: &[&str], ceiling_kib: u64) -> (Run, u64) {
    wait_output_measured(spawn_checker(args, &[]), Some(ceiling_kib))
}

/// Three inputs that are no regular files and what the checker says of each: a FIFO
/// (`fifo.EXT` in `dir`, no writer: opening it the usual way waits forever), the endless
/// `/dev/zero` and a loop of symbolic links (`loop.EXT`).
pub fn no_files(dir: &std::path::Path, ext: &str) -> [(String, &'static str); 3] {
    let fifo = dir.join(format!("fifo.{ext}"));
    test_support::mkfifo(&fifo);
    let looped = dir.join(format!("loop.{ext}"));
    std::os::unix::fs::symlink(&looped, &looped).expect("symlink loop");
    [
        (
            fifo.display().to_string(),
            "it is a FIFO (named pipe), not a regular file",
        ),
        (
            "/dev/zero".to_owned(),
            "it is a character device, not a regular file",
        ),
        (
            looped.display().to_string(),
            "it is a loop of symbolic links",
        ),
    ]
}

/// Runs `checker <args>`, where `path` (one of the args) is an input that is no regular
/// file (a FIFO, a device, a loop of symbolic links), and asserts that it is refused,
/// not waited on or read: exit 2, one line on stderr naming `path` and saying `says`,
/// and a peak far below the limit of any input (64 MiB; a FIFO opened blocking is
/// killed at [`BOUND`] and the test fails).
pub fn assert_refused_unread(args: &[&str], path: &str, says: &str) {
    let (run, peak) = run_checker_measured(args, 256 * 1024);
    assert_eq!(run.code, 2, "{args:?}: {run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "{args:?}: {run:?}");
    assert!(
        run.stderr.contains(path) && run.stderr.contains(says),
        "{args:?}: {run:?}"
    );
    assert!(peak < 64 * 1024, "{args:?}: {peak} KiB");
}

/// The peak resident memory (VmHWM) of process `pid`, KiB, while it runs.
pub fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// [`wait_output`], polling the peak resident memory (see [`run_checker_measured`]).
pub fn wait_output_measured(mut guard: Guard, ceiling_kib: Option<u64>) -> (Run, u64) {
    let stdout = guard.0.stdout.take();
    let mut stderr = guard.0.stderr.take().expect("stderr piped");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut stdout) = stdout {
            let _ = stdout.read_to_string(&mut s);
        }
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + BOUND;
    let pid = guard.0.id();
    let mut peak = 0;
    let status = loop {
        if let Some(kib) = vm_hwm_kib(pid) {
            peak = peak.max(kib);
        }
        if let Some(status) = guard.0.try_wait().expect("wait for checker") {
            break status;
        }
        if let Some(ceiling) = ceiling_kib {
            assert!(
                peak <= ceiling,
                "checker grew to {peak} KiB, over {ceiling} KiB"
            );
        }
        assert!(
            Instant::now() < deadline,
            "checker ran longer than {BOUND:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let output = Output {
        status,
        stdout: out.join().expect("stdout reader").into_bytes(),
        stderr: err.join().expect("stderr reader").into_bytes(),
    };
    let run = Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    (run, peak)
}

/// Validates `document` against report/schema/report.schema.json, panicking with every error.
pub fn assert_schema_valid(document: &serde_json::Value) {
    let schema: serde_json::Value =
        serde_json::from_str(report::json::SCHEMA).expect("the schema is JSON");
    assert_valid_against(&schema, document);
}

/// Validates `document` against rehearse/schema/rehearsal.schema.json (the schema the
/// rehearse crate embeds), panicking with every error.
#[cfg(feature = "rehearse")]
pub fn assert_rehearsal_schema_valid(document: &serde_json::Value) {
    let schema: serde_json::Value =
        serde_json::from_str(rehearse::summary::json::SCHEMA).expect("the schema is JSON");
    assert_valid_against(&schema, document);
}

/// Validates `document` against `schema`, panicking with every error.
pub fn assert_valid_against(schema: &serde_json::Value, document: &serde_json::Value) {
    let validator = jsonschema::validator_for(schema).expect("the schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(document)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "schema errors: {errors:#?}\n{document:#}"
    );
}

/// A running HAProxy (`mode tcp`, `balance roundrobin`), killed on drop. Its configuration
/// comes from the rehearsal's HAProxy writer, so it needs the `rehearse` feature.
#[cfg(feature = "rehearse")]
pub struct HaProxy {
    _child: Guard,
    _dir: tempfile::TempDir,
    /// The frontend address to point the checker at.
    pub addr: SocketAddr,
}

#[cfg(feature = "rehearse")]
impl HaProxy {
    /// Starts HAProxy in front of `servers` (`(address, weight)`), round robin by weight.
    ///
    /// Panics (the test fails) when the `haproxy` binary is missing.
    pub fn start(servers: &[(SocketAddr, u32)]) -> HaProxy {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let cfg = rehearse::ingress::haproxy::HaproxyConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], port)),
            balance: rehearse::ingress::haproxy::Balance::RoundRobin,
            runtime_api: None,
            nolinger: false,
            servers: servers
                .iter()
                .enumerate()
                .map(
                    |(i, (addr, weight))| rehearse::ingress::haproxy::ServerLine {
                        name: format!("s{i}"),
                        addr: *addr,
                        weight: *weight,
                        disabled: false,
                    },
                )
                .collect(),
        }
        .render();
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, cfg).expect("write haproxy.cfg");
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start haproxy ({e}); install the Debian package: apt-get install -y haproxy")
            });
        let mut child = Guard(child);
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
        let deadline = Instant::now() + BOUND;
        loop {
            if let Some(status) = child.0.try_wait().expect("wait for haproxy") {
                panic!("haproxy exited at start: {status}");
            }
            if TcpStream::connect(addr).is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "haproxy did not listen within {BOUND:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        HaProxy {
            _child: child,
            _dir: dir,
            addr,
        }
    }
}

/// The value of the Prometheus sample line that starts with `series` (name and labels,
/// written as served), from a scrape's text.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// A fake gateway admin / scrape endpoint on loopback: answers each GET with what
/// `answer(path, n)` gives for the n-th request of that path (from 0). Stops on drop.
pub struct FakeAdmin {
    /// Its base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for FakeAdmin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl FakeAdmin {
    /// Serves `answer` until dropped.
    pub fn start(answer: impl Fn(&str, usize) -> String + Send + 'static) -> FakeAdmin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake admin");
        listener
            .set_nonblocking(true)
            .expect("a nonblocking listener");
        let url = format!("http://{}", listener.local_addr().expect("its address"));
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let counts: Arc<Mutex<std::collections::BTreeMap<String, usize>>> = Arc::default();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                let Ok((mut s, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                s.set_nonblocking(false).expect("a blocking stream");
                s.set_read_timeout(Some(Duration::from_secs(5)))
                    .expect("a read timeout");
                let mut request = String::new();
                let mut reader = std::io::BufReader::new(s.try_clone().expect("a second handle"));
                if reader.read_line(&mut request).is_err() {
                    continue;
                }
                let mut header = String::new();
                while matches!(reader.read_line(&mut header), Ok(n) if n > 2) {
                    header.clear();
                }
                let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let key = path.split('?').next().unwrap_or("/").to_owned();
                let n = {
                    let mut c = counts.lock().expect("the request counts");
                    let e = c.entry(key.clone()).or_default();
                    *e += 1;
                    *e - 1
                };
                let body = answer(&key, n);
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        FakeAdmin {
            url,
            stop,
            thread: Some(thread),
        }
    }
}
