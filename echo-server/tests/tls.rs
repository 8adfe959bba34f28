//! TLS on the echo ports, over loopback with certificates made by the test: a TLS client
//! gets `<version> <line>` back; a plain client gets no reply and the server goes on; a
//! handshake that stalls is cut by the idle timeout; a certificate or key that cannot be
//! served stops the server at bind with one sentence naming the file.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use echo_server::tls::{TlsError, TlsFiles};
use echo_server::{Config, Error, Server, ServerHandle};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

/// The longest any wait in these tests may take before the test fails.
const BOUND: Duration = Duration::from_secs(30);

/// The name the certificates are for and the clients send.
const NAME: &str = "tcp-echo.example.com";

/// A self-signed certificate for [`NAME`] written as PEM files in `dir`, and its DER.
fn certificate(dir: &Path, stem: &str) -> (TlsFiles, CertificateDer<'static>) {
    let made = rcgen::generate_simple_self_signed(vec![NAME.to_owned()]).unwrap();
    let files = TlsFiles {
        cert: dir.join(format!("{stem}.crt")),
        key: dir.join(format!("{stem}.key")),
    };
    std::fs::write(&files.cert, made.cert.pem()).unwrap();
    std::fs::write(&files.key, made.signing_key.serialize_pem()).unwrap();
    (files, made.cert.der().clone())
}

fn loopback(version: &str, tls: TlsFiles) -> Config {
    let mut config = Config::new(vec![0, 0], version.to_owned());
    config.listen = Ipv4Addr::LOCALHOST.into();
    config.admin_port = None;
    config.drain_delay = Duration::ZERO;
    config.tls = Some(tls);
    config
}

/// A running server: its echo addresses, handle and task.
struct Running {
    addrs: Vec<SocketAddr>,
    handle: ServerHandle,
    task: JoinHandle<Result<echo_server::ShutdownReport, Error>>,
}

async fn run(config: Config) -> Running {
    let server = Server::bind(config).await.unwrap();
    Running {
        addrs: server.local_addrs(),
        handle: server.handle(),
        task: tokio::spawn(server.run()),
    }
}

impl Running {
    async fn stop(self) -> echo_server::ShutdownReport {
        self.handle.shutdown();
        tokio::time::timeout(BOUND, self.task)
            .await
            .unwrap()
            .unwrap()
            .unwrap()
    }
}

/// A client that trusts `root` only.
fn connector(root: &CertificateDer<'static>) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

async fn tls_client(
    addr: SocketAddr,
    root: &CertificateDer<'static>,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(NAME).unwrap();
    tokio::time::timeout(BOUND, connector(root).connect(name, tcp))
        .await
        .unwrap()
        .unwrap()
}

/// Sends `line` and a `\n` over TLS and returns the reply line (bounded).
async fn ask(
    tls: &mut BufReader<tokio_rustls::client::TlsStream<TcpStream>>,
    line: &str,
) -> String {
    tls.write_all(format!("{line}\n").as_bytes()).await.unwrap();
    tls.flush().await.unwrap();
    let mut reply = String::new();
    tokio::time::timeout(BOUND, tls.read_line(&mut reply))
        .await
        .unwrap()
        .unwrap();
    reply
}

/// Everything the server sends until it closes (bounded).
async fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(BOUND, stream.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the server did not close the connection");
    got
}

#[tokio::test]
async fn a_tls_client_gets_the_version_and_its_line_back_on_every_port() {
    let dir = tempfile::tempdir().unwrap();
    let (files, root) = certificate(dir.path(), "server");
    let server = run(loopback("one", files)).await;
    for &addr in &server.addrs {
        let tls = tls_client(addr, &root).await;
        let mut tls = BufReader::new(tls);
        for line in ["hello", "second line"] {
            assert_eq!(ask(&mut tls, line).await, format!("one {line}\n"));
        }
        // A last line without `\n`, then close_notify: answered, and the server's
        // close_notify ends the stream cleanly (no truncation error).
        tls.write_all(b"last").await.unwrap();
        tls.get_mut().shutdown().await.unwrap();
        let mut rest = String::new();
        tokio::time::timeout(BOUND, tls.read_to_string(&mut rest))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rest, "one last");
    }
    let metrics = server.handle.metrics();
    assert_eq!(metrics.lines_echoed.get(), 6);
    assert_eq!(metrics.tls_handshakes_failed.get(), 0);
    assert_eq!(server.stop().await.cut, 0);
}

#[tokio::test]
async fn a_plain_client_gets_no_reply_and_the_server_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (files, root) = certificate(dir.path(), "server");
    let server = run(loopback("one", files)).await;
    let addr = server.addrs[0];
    for _ in 0..3 {
        let mut plain = TcpStream::connect(addr).await.unwrap();
        plain.write_all(b"hello\n").await.unwrap();
        let got = until_closed(&mut plain).await;
        // At most a TLS alert record (content type 21), never an echo.
        assert!(got.is_empty() || got[0] == 21, "a plain client got {got:?}");
        assert!(!got.windows(5).any(|w| w == b"hello"), "{got:?}");
    }
    assert_eq!(server.handle.metrics().tls_handshakes_failed.get(), 3);
    assert_eq!(server.handle.metrics().lines_echoed.get(), 0);
    // The server survives them: a TLS client is served.
    let mut tls = BufReader::new(tls_client(addr, &root).await);
    assert_eq!(ask(&mut tls, "still here").await, "one still here\n");
    drop(tls);
    server.stop().await;
}

#[tokio::test]
async fn a_handshake_that_stalls_is_cut_by_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (files, _) = certificate(dir.path(), "server");
    let mut config = loopback("one", files);
    config.idle_timeout = Some(Duration::from_millis(200));
    let server = run(config).await;
    let addr = server.addrs[0];
    // Silent from the start, and silent halfway through a ClientHello's record header.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut halfway = TcpStream::connect(addr).await.unwrap();
    halfway.write_all(&[22, 3, 1, 0]).await.unwrap();
    assert!(until_closed(&mut silent).await.is_empty());
    until_closed(&mut halfway).await;
    let metrics = server.handle.metrics();
    assert_eq!(metrics.tls_handshakes_failed.get(), 2);
    assert_eq!(metrics.connections_idle_closed.get(), 2);
    assert_eq!(server.handle.active_connections(), 0);
    server.stop().await;
}

#[tokio::test]
async fn a_shutdown_cuts_a_handshake_in_progress_at_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let (files, _) = certificate(dir.path(), "server");
    let mut config = loopback("one", files);
    config.idle_timeout = None;
    config.shutdown_timeout = Duration::from_millis(100);
    let server = run(config).await;
    let mut silent = TcpStream::connect(server.addrs[0]).await.unwrap();
    // Wait (bounded) until the server holds the connection.
    let deadline = tokio::time::Instant::now() + BOUND;
    while server.handle.active_connections() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "never accepted");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let report = server.stop().await;
    assert_eq!(report.cut, 1);
    assert!(until_closed(&mut silent).await.is_empty());
}

#[tokio::test]
async fn a_certificate_or_key_that_cannot_be_served_stops_the_bind_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (good, _) = certificate(dir.path(), "good");
    let (other, _) = certificate(dir.path(), "other");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let missing = dir.path().join("missing.crt");
    let files = |cert: &Path, key: &Path| TlsFiles {
        cert: cert.to_owned(),
        key: key.to_owned(),
    };
    // (files, what the sentence says, the file it names)
    let cases = [
        (
            files(&missing, &good.key),
            "cannot read the TLS certificate file",
            &missing,
        ),
        (
            files(&garbage, &good.key),
            "holds no PEM certificate",
            &garbage,
        ),
        (
            files(&good.cert, &good.cert),
            "holds no PEM private key",
            &good.cert,
        ),
        (
            files(&good.cert, &other.key),
            "cannot be served",
            &other.key,
        ),
    ];
    for (files, wanted, named) in cases {
        let err = Server::bind(loopback("one", files)).await.unwrap_err();
        assert!(matches!(err, Error::Tls(_)), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(wanted), "{text}");
        assert!(text.contains(&named.display().to_string()), "{text}");
        assert!(!text.contains('\n'), "one sentence: {text}");
    }
    // Bounded: a file beyond the limit is refused before it is parsed.
    let huge = dir.path().join("huge.pem");
    std::fs::write(&huge, vec![b'a'; 1 << 21]).unwrap();
    let err = echo_server::tls::acceptor(&files(&huge, &good.key)).unwrap_err();
    assert!(matches!(err, TlsError::Pem { .. }), "{err:?}");
    assert!(err.to_string().contains("is larger than"), "{err}");
}

/// The binary: the flags (and their variables) turn TLS on; a plain client's failed
/// handshake is counted and logged as one warning a second at most, never per connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_tls_from_its_flags_and_logs_failed_handshakes_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let (files, root) = certificate(dir.path(), "server");
    let mut cmd = std::process::Command::new(common::binary());
    cmd.args(["0", "one", "--listen", "127.0.0.1", "--admin-port", "0"])
        .env("ECHO_SERVER_TLS_CERT", &files.cert)
        .env("ECHO_SERVER_TLS_KEY", &files.key);
    let mut server = tokio::task::spawn_blocking(move || common::ServerProc::spawn(cmd))
        .await
        .unwrap();
    assert!(server.wait_log("listening").contains("tls=true"));
    let addr = server.addr();
    let mut tls = BufReader::new(tls_client(addr, &root).await);
    assert_eq!(ask(&mut tls, "hello").await, "one hello\n");
    drop(tls);

    const PLAIN: u64 = 100;
    let started = std::time::Instant::now();
    for _ in 0..PLAIN {
        let mut plain = TcpStream::connect(addr).await.unwrap();
        plain.write_all(b"hello\n").await.unwrap();
        assert!(
            !until_closed(&mut plain)
                .await
                .windows(5)
                .any(|w| w == b"hello")
        );
    }
    let server = tokio::task::spawn_blocking(move || {
        server.wait_metric("tls_handshakes_failed", |n| n == PLAIN);
        server
    })
    .await
    .unwrap();
    let elapsed = started.elapsed();
    let warnings: Vec<String> = server
        .log()
        .into_iter()
        .filter(|l| l.contains("TLS handshakes failed"))
        .collect();
    assert!(!warnings.is_empty(), "no warning: {:?}", server.log());
    assert!(
        warnings.len() as u64 <= elapsed.as_secs() + 1,
        "{} warnings in {elapsed:?}: {warnings:#?}",
        warnings.len()
    );
    assert!(warnings[0].contains("failed=1"), "{}", warnings[0]);
}

#[test]
fn the_binary_refuses_a_certificate_it_cannot_serve_with_one_sentence_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let (files, _) = certificate(dir.path(), "server");
    let missing = dir.path().join("missing.crt");
    let out = std::process::Command::new(common::binary())
        .args(["0", "one", "--listen", "127.0.0.1", "--admin-port", "0"])
        .arg("--tls-cert")
        .arg(&missing)
        .arg("--tls-key")
        .arg(&files.key)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "echo-server: cannot read the TLS certificate file {}: ",
            missing.display()
        )),
        "{stderr}"
    );
    // One of the pair alone is a usage error naming the other.
    let out = std::process::Command::new(common::binary())
        .args(["0", "one", "--tls-cert"])
        .arg(&files.cert)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--tls-key"),
        "{out:?}"
    );
    // --print-config shows the paths and reads neither file.
    let out = std::process::Command::new(common::binary())
        .args([
            "--print-config",
            "0",
            "one",
            "--tls-cert=/nowhere/tls.crt",
            "--tls-key=/nowhere/tls.key",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(config["tls_cert"], "/nowhere/tls.crt");
    assert_eq!(config["tls_key"], "/nowhere/tls.key");
}

/// A FIFO, a device and a loop of symbolic links given as `--tls-cert` or `--tls-key`:
/// the server neither waits for a writer nor reads the device; it exits 1 (as for any
/// certificate it cannot serve) with one line naming the file and what it is. The wait
/// is bounded: past [`BOUND`] the guard kills the server and the test fails.
#[test]
fn the_binary_refuses_certificate_files_that_are_no_files_without_waiting() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let (files, _) = certificate(dir.path(), "server");
    let fifo = dir.path().join("fifo.pem");
    test_support::mkfifo(&fifo);
    let looped = dir.path().join("loop.pem");
    std::os::unix::fs::symlink(&looped, &looped).unwrap();
    let cases = [
        (
            fifo.as_path(),
            "it is a FIFO (named pipe), not a regular file",
        ),
        (
            Path::new("/dev/zero"),
            "it is a character device, not a regular file",
        ),
        (looped.as_path(), "it is a loop of symbolic links"),
    ];
    for (path, says) in cases {
        for (flag, what, cert, key) in [
            ("--tls-cert", "certificate", path, files.key.as_path()),
            ("--tls-key", "private key", files.cert.as_path(), path),
        ] {
            let mut server = test_support::ChildGuard(
                std::process::Command::new(common::binary())
                    .args(["0", "one", "--listen", "127.0.0.1", "--admin-port", "0"])
                    .arg("--tls-cert")
                    .arg(cert)
                    .arg("--tls-key")
                    .arg(key)
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap(),
            );
            let start = std::time::Instant::now();
            let status = loop {
                if let Some(status) = server.0.try_wait().unwrap() {
                    break status;
                }
                assert!(
                    start.elapsed() < BOUND,
                    "{flag} {}: still running after {BOUND:?}",
                    path.display()
                );
                std::thread::sleep(Duration::from_millis(20));
            };
            let mut stderr = String::new();
            server
                .0
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            assert_eq!(status.code(), Some(1), "{flag} {path:?}: {stderr}");
            assert_eq!(stderr.lines().count(), 1, "{stderr}");
            assert_eq!(
                stderr.trim_end(),
                format!(
                    "echo-server: cannot read the TLS {what} file {}: {says}",
                    path.display()
                ),
            );
        }
    }
}
