//! The probes and TLS over real loopback sockets, against in-process servers: servers
//! that speak first (a banner), a Redis-shaped `INFO server` answer, an HTTP server with
//! a version header, and rustls servers (echo inside TLS, certificates signed by a CA
//! made by the test, self-signed ones, and peers that fail the handshake). The real
//! servers (nginx, redis-server, sshd, Envoy) are in the checker's tests.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use checker_core::probe::{
    BannerSpec, DEFAULT_MAX_REPLY, HttpSpec, LineSpec, Probe, ProbeKind, ProbeSpec, RedisSpec,
    VersionMap,
};
use checker_core::sampler::{self, ErrorClass, ProbeBuffers, Timeouts};
use checker_core::tls::{CertField, TlsSpec, Verify};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use test_support::tls::{ServerCert, TestCa, self_signed};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

mod support;

use support::{sample, timeouts};

/// What an in-process server does with one accepted connection, as `version`.
type Handler = fn(Box<dyn Stream>, &'static str) -> Served;
/// The handling of one connection.
type Served = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A loopback server answering every connection with `handler`, as `version`, plain or
/// inside TLS with `cert`.
async fn server(version: &'static str, handler: Handler, cert: Option<&ServerCert>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = cert.map(acceptor);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let stream: Box<dyn Stream> = match acceptor {
                    None => Box::new(tcp),
                    Some(acceptor) => match acceptor.accept(tcp).await {
                        Ok(tls) => Box::new(tls),
                        Err(_) => return,
                    },
                };
                handler(stream, version).await;
            });
        }
    });
    addr
}

fn acceptor(cert: &ServerCert) -> TlsAcceptor {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.cert_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_der.clone())),
        )
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

/// Reads until `end` has arrived (or EOF); what was read.
async fn read_until(s: &mut Box<dyn Stream>, end: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(end.len()).any(|w| w == end) {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

/// The tcp-canary echo: `<version> <line>`.
fn echo(mut s: Box<dyn Stream>, version: &'static str) -> Served {
    Box::pin(async move {
        let line = read_until(&mut s, b"\n").await;
        let _ = s
            .write_all(&[version.as_bytes(), b" ", &line].concat())
            .await;
        let _ = s.flush().await;
        let _ = s.read(&mut [0u8; 16]).await;
    })
}

/// An SSH-like greeting, sent first, then silence.
fn banner(mut s: Box<dyn Stream>, version: &'static str) -> Served {
    Box::pin(async move {
        let greeting = format!("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3 {version}\r\n");
        let _ = s.write_all(greeting.as_bytes()).await;
        let _ = s.read(&mut [0u8; 16]).await;
    })
}

/// `INFO server` answered as Redis does (a bulk string), in two writes.
fn redis(mut s: Box<dyn Stream>, version: &'static str) -> Served {
    Box::pin(async move {
        let request = read_until(&mut s, b"\r\n").await;
        if request != b"INFO server\r\n" {
            let _ = s.write_all(b"-ERR unknown command\r\n").await;
            return;
        }
        let body = format!("# Server\r\nredis_version:{version}\r\nredis_mode:standalone\r\n");
        let whole = format!("${}\r\n{body}\r\n", body.len());
        let (a, b) = whole.split_at(whole.len() / 2);
        let _ = s.write_all(a.as_bytes()).await;
        let _ = s.flush().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        let _ = s.write_all(b.as_bytes()).await;
        let _ = s.read(&mut [0u8; 16]).await;
    })
}

/// A Redis that wants a password: answers and waits.
fn redis_auth(mut s: Box<dyn Stream>, _: &'static str) -> Served {
    Box::pin(async move {
        read_until(&mut s, b"\r\n").await;
        let _ = s.write_all(b"-NOAUTH Authentication required.\r\n").await;
        let _ = s.read(&mut [0u8; 16]).await;
    })
}

/// HTTP/1.1: `GET /version` with a Host answers `X-Version` and a JSON body; else 404.
fn http(mut s: Box<dyn Stream>, version: &'static str) -> Served {
    Box::pin(async move {
        let request = String::from_utf8(read_until(&mut s, b"\r\n\r\n").await).unwrap_or_default();
        let ok = request.starts_with("GET /version HTTP/1.1\r\n")
            && request.to_ascii_lowercase().contains("\r\nhost: ");
        let response = if ok {
            let body = format!("{{\"version\":\"{version}\"}}\n");
            format!(
                "HTTP/1.1 200 OK\r\nServer: test\r\nx-version: {version}\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        } else {
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_owned()
        };
        let _ = s.write_all(response.as_bytes()).await;
        let _ = s.flush().await;
        let _ = s.read(&mut [0u8; 16]).await;
    })
}

/// Reads and never answers.
fn silent(mut s: Box<dyn Stream>, _: &'static str) -> Served {
    Box::pin(async move { while let Ok(1..) = s.read(&mut [0u8; 1024]).await {} })
}

/// Closes at once (a gateway with no route for the name).
fn close(_: Box<dyn Stream>, _: &'static str) -> Served {
    Box::pin(async {})
}

fn compile(spec: ProbeSpec, target: &str) -> Probe {
    Probe::new(&spec, target).unwrap()
}

/// One sample; a reply that does not come is waited for one second.
async fn one(addr: SocketAddr, probe: &Probe) -> sampler::ProbeResult {
    let timeouts = Timeouts {
        reply: Duration::from_secs(1),
        ..timeouts()
    };
    sampler::probe(addr, 1, probe, timeouts, &mut ProbeBuffers::default()).await
}

#[tokio::test]
async fn the_banner_preset_splits_two_servers_by_their_greeting() {
    let stable = server("stable", banner, None).await;
    let canary = server("canary", banner, None).await;
    let probe = compile(
        ProbeSpec {
            kind: ProbeKind::Banner(BannerSpec {
                version_from: Some(r" (\S+)$".into()),
                max_reply: DEFAULT_MAX_REPLY,
            }),
            ..ProbeSpec::default()
        },
        "127.0.0.1:1",
    );
    let (counts, tally, _) = sample(vec![stable, canary], &probe, 40).await;
    assert_eq!(
        counts,
        BTreeMap::from([("canary".into(), 20), ("stable".into(), 20)])
    );
    assert_eq!(tally.errors(), 0);

    // The default takes the whole line, which holds spaces: no version, with the reason.
    let whole = compile(
        ProbeSpec {
            kind: ProbeKind::Banner(BannerSpec {
                version_from: None,
                max_reply: DEFAULT_MAX_REPLY,
            }),
            ..ProbeSpec::default()
        },
        "127.0.0.1:1",
    );
    let taken = one(stable, &whole).await;
    assert_eq!(taken.result, Err(ErrorClass::NoVersion));
    let reason = taken.reason.unwrap();
    assert!(
        reason.contains("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3 stable"),
        "{reason}"
    );
    assert!(reason.contains("not a version name"), "{reason}");
    assert!(taken.reply_head.unwrap().starts_with("SSH-2.0-"));

    // ... unless a version map names the line.
    let mapped = compile(
        ProbeSpec {
            kind: whole.spec().kind.clone(),
            version_map: "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3 stable=v1"
                .parse()
                .unwrap(),
            tls: None,
        },
        "127.0.0.1:1",
    );
    assert_eq!(one(stable, &mapped).await.result, Ok("v1".to_owned()));
    assert_eq!(
        one(canary, &mapped).await.result,
        Err(ErrorClass::NoVersion)
    );
}

#[tokio::test]
async fn the_redis_preset_reads_info_server_and_names_it_with_the_map() {
    let stable = server("7.0.15", redis, None).await;
    let canary = server("7.2.4", redis, None).await;
    let spec = ProbeSpec {
        kind: ProbeKind::Redis(RedisSpec {
            version_from: None,
            max_reply: DEFAULT_MAX_REPLY,
        }),
        version_map: "7.0.15=stable".parse().unwrap(),
        tls: None,
    };
    let probe = compile(spec.clone(), "127.0.0.1:1");
    let (counts, _, samples) = sample(vec![stable, canary], &probe, 20).await;
    // An unnamed capture keeps its own name (an unexpected version, as today).
    assert_eq!(
        counts,
        BTreeMap::from([("7.2.4".into(), 10), ("stable".into(), 10)])
    );
    assert!(
        samples
            .iter()
            .all(|s| s.reply_us.is_some() && s.handshake_us.is_none())
    );

    let locked = server("", redis_auth, None).await;
    let taken = one(locked, &probe).await;
    assert_eq!(taken.result, Err(ErrorClass::NoVersion));
    assert_eq!(
        taken.reply_head.as_deref(),
        Some("-NOAUTH Authentication required.\\r\\n")
    );
}

#[tokio::test]
async fn the_http_preset_reads_a_header_or_the_body() {
    let one_addr = server("v1", http, None).await;
    let two_addr = server("v2", http, None).await;
    let target = one_addr.to_string();
    let spec = |path: &str, from: Option<&str>| ProbeSpec {
        kind: ProbeKind::Http(HttpSpec {
            path: path.into(),
            host: None,
            version_from: from.map(str::to_owned),
            max_reply: DEFAULT_MAX_REPLY,
        }),
        ..ProbeSpec::default()
    };
    let header = compile(spec("/version", None), &target);
    let (counts, _, _) = sample(vec![one_addr, two_addr], &header, 10).await;
    assert_eq!(counts, BTreeMap::from([("v1".into(), 5), ("v2".into(), 5)]));
    let body = compile(spec("/version", Some(r#""version":"([^"]+)""#)), &target);
    assert_eq!(one(two_addr, &body).await.result, Ok("v2".to_owned()));
    // A 404 has no x-version header: no version, its head shown.
    let missing = compile(spec("/nothing", None), &target);
    let taken = one(one_addr, &missing).await;
    assert_eq!(taken.result, Err(ErrorClass::NoVersion));
    assert!(taken.reply_head.unwrap().starts_with("HTTP/1.1 404"));
}

#[tokio::test]
async fn a_line_probe_sends_its_text_and_bounds_what_it_reads() {
    // The echo server answers "<version> <line>": a line probe reads it with a pattern.
    let addr = server("one", echo, None).await;
    let spec = |version_from: &str, max_reply| ProbeSpec {
        kind: ProbeKind::Line(LineSpec {
            send: checker_core::probe::parse_send("hello\\n").unwrap(),
            version_from: version_from.into(),
            max_reply,
        }),
        ..ProbeSpec::default()
    };
    let probe = compile(spec(r"^(\S+) hello", DEFAULT_MAX_REPLY), "127.0.0.1:1");
    assert_eq!(one(addr, &probe).await.result, Ok("one".to_owned()));
    let short = compile(spec(r"^(\S+) hello", 4), "127.0.0.1:1");
    let taken = one(addr, &short).await;
    assert_eq!(taken.result, Err(ErrorClass::NoVersion));
    assert_eq!(taken.reply_head.as_deref(), Some("one "));
}

/// A CA, two servers' certificates (CN stable / canary) for `echo.test`, and the CA file.
struct Pki {
    _dir: tempfile::TempDir,
    ca_file: PathBuf,
    stable: ServerCert,
    canary: ServerCert,
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let ca_file = ca.write(dir.path());
    Pki {
        stable: ca.issue(&["echo.test"], "stable", 0x0a01),
        canary: ca.issue(&["echo.test"], "canary", 0xbeef01),
        ca_file,
        _dir: dir,
    }
}

fn tls_spec(
    kind: ProbeKind,
    verify: Verify,
    sni: &str,
    version_from: Option<CertField>,
) -> ProbeSpec {
    ProbeSpec {
        kind,
        version_map: VersionMap::default(),
        tls: Some(TlsSpec {
            verify,
            sni: Some(sni.into()),
            version_from,
        }),
    }
}

#[tokio::test]
async fn echo_inside_tls_is_verified_with_the_ca_file_and_timed() {
    let pki = pki();
    let stable = server("stable", echo, Some(&pki.stable)).await;
    let canary = server("canary", echo, Some(&pki.canary)).await;
    let probe = compile(
        tls_spec(
            ProbeKind::Echo,
            Verify::CaFile(pki.ca_file.clone()),
            "echo.test",
            None,
        ),
        "127.0.0.1:1",
    );
    let (counts, tally, samples) = sample(vec![stable, canary], &probe, 40).await;
    assert_eq!(
        counts,
        BTreeMap::from([("canary".into(), 20), ("stable".into(), 20)])
    );
    assert!(
        samples
            .iter()
            .all(|s| s.handshake_us.is_some() && s.reply_us.is_some())
    );
    assert_eq!(tally.versions()["stable"].handshake_us.len(), 20);
    assert_eq!(tally.versions()["canary"].connect_us.len(), 20);
}

#[tokio::test]
async fn the_certificate_names_the_version_by_serial_subject_or_fingerprint() {
    let pki = pki();
    let stable = server("ignored", echo, Some(&pki.stable)).await;
    let canary = server("ignored", echo, Some(&pki.canary)).await;
    let verify = Verify::CaFile(pki.ca_file.clone());
    let by = |field| {
        compile(
            tls_spec(
                ProbeKind::Handshake,
                verify.clone(),
                "echo.test",
                Some(field),
            ),
            "127.0.0.1:1",
        )
    };

    let (counts, _, samples) = sample(vec![stable, canary], &by(CertField::Subject), 10).await;
    assert_eq!(
        counts,
        BTreeMap::from([("CN=canary".into(), 5), ("CN=stable".into(), 5)])
    );
    // Nothing is exchanged: no reply time, a handshake time.
    assert!(
        samples
            .iter()
            .all(|s| s.reply_us.is_none() && s.handshake_us.is_some())
    );

    assert_eq!(
        one(stable, &by(CertField::Serial)).await.result,
        Ok("0A01".to_owned())
    );
    assert_eq!(
        one(canary, &by(CertField::Serial)).await.result,
        Ok("BEEF01".to_owned())
    );
    let fingerprint: String = ring::digest::digest(&ring::digest::SHA256, &pki.canary.cert_der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    assert_eq!(
        one(canary, &by(CertField::Fingerprint)).await.result,
        Ok(fingerprint)
    );

    // With a probe too, the probe must answer and the certificate still names the version.
    let mut spec = tls_spec(
        ProbeKind::Echo,
        verify,
        "echo.test",
        Some(CertField::Subject),
    );
    spec.version_map = "CN=stable=stable,CN=canary=canary".parse().unwrap();
    let mapped = compile(spec, "127.0.0.1:1");
    assert_eq!(one(stable, &mapped).await.result, Ok("stable".to_owned()));
    let plain = server("canary", echo, None).await;
    assert_eq!(
        one(plain, &mapped).await.result.unwrap_err(),
        ErrorClass::TlsHandshake
    );
}

#[tokio::test]
async fn handshake_failures_are_classified_and_named() {
    let pki = pki();
    let signed = server("stable", echo, Some(&pki.stable)).await;
    let lone = self_signed(&["echo.test"], "self");
    let unsigned = server("self", echo, Some(&lone)).await;
    let ca = Verify::CaFile(pki.ca_file.clone());

    // A certificate the CA did not sign.
    let probe = compile(
        tls_spec(ProbeKind::Echo, ca.clone(), "echo.test", None),
        "127.0.0.1:1",
    );
    let taken = one(unsigned, &probe).await;
    assert_eq!(taken.result, Err(ErrorClass::TlsCertificate));
    assert!(
        taken.reason.as_deref().unwrap().contains("UnknownIssuer"),
        "{taken:?}"
    );
    // A name the certificate is not for.
    let wrong = compile(
        tls_spec(ProbeKind::Echo, ca.clone(), "other.test", None),
        "127.0.0.1:1",
    );
    let taken = one(signed, &wrong).await;
    assert_eq!(taken.result, Err(ErrorClass::TlsCertificate));
    assert!(
        taken.reason.as_deref().unwrap().contains("other.test"),
        "{taken:?}"
    );
    // Insecure mode takes the self-signed one.
    let insecure = compile(
        tls_spec(ProbeKind::Echo, Verify::Insecure, "echo.test", None),
        "127.0.0.1:1",
    );
    assert_eq!(one(unsigned, &insecure).await.result, Ok("self".to_owned()));
    // A peer that closes at once (a gateway with no route for the name); closing with
    // the ClientHello unread, its kernel resets the connection.
    let closing = server("", close, None).await;
    let taken = one(closing, &probe).await;
    assert_eq!(taken.result, Err(ErrorClass::TlsHandshake));
    let reason = taken.reason.unwrap();
    assert!(
        reason.contains("SNI \"echo.test\"") && reason.contains("during the handshake"),
        "{reason}"
    );
    // A plain service that speaks first: not TLS.
    let speaking = server("one", banner, None).await;
    let taken = one(speaking, &probe).await;
    assert_eq!(taken.result, Err(ErrorClass::TlsHandshake));
    assert!(
        taken.reason.as_deref().unwrap().contains("corrupt message"),
        "{taken:?}"
    );
    // A service that never answers: the handshake is bounded by the connect timeout.
    let mute = server("", silent, None).await;
    let quick = Timeouts {
        connect: Duration::from_millis(300),
        reply: Duration::from_secs(2),
    };
    let taken = sampler::probe(mute, 1, &probe, quick, &mut ProbeBuffers::default()).await;
    assert_eq!(taken.result, Err(ErrorClass::TlsHandshake));
    assert!(taken.reason.unwrap().contains("no handshake within 300ms"));
}
