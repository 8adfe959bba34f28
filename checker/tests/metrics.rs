//! `checker watch --metrics-listen`: the real binary serving its metrics over a real
//! socket while it watches an in-process echo server; the listener's bounds (a request
//! head too large, a flood of stalled connections) and the address rule; `--compare`'s
//! verdict per metric against the fault server (a canary corrupting replies).

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{
    BOUND, EchoServer, Guard, checker, free_port, metric_value as value, run_checker, wait_output,
};
use test_support::fault::{Behaviour, FaultServer};

/// Starts `checker watch` against `target` expecting `expect`, with metrics on a free
/// loopback port; returns the guard and the metrics address once it answers.
fn watch_with_metrics(target: SocketAddr, expect: &str) -> (Guard, SocketAddr) {
    watch_with_metrics_and(&target.to_string(), expect, &[])
}

/// [`watch_with_metrics`] of a `target` written out, with `extra` flags.
fn watch_with_metrics_and(target: &str, expect: &str, extra: &[&str]) -> (Guard, SocketAddr) {
    let port = free_port();
    let child = Command::new(checker())
        .args([
            "watch",
            "--target",
            target,
            "--expect",
            expect,
            "--rate",
            "200",
            "--interval",
            "200ms",
            "--duration",
            "60s",
            "--metrics-listen",
            &port.to_string(),
        ])
        .args(extra)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start checker");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let guard = Guard(child);
    let deadline = Instant::now() + BOUND;
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "no metrics listener on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
    (guard, addr)
}

/// Sends `request` (a whole HTTP/1.1 request) and returns the whole answer.
fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).expect("connect to the metrics listener");
    s.set_read_timeout(Some(BOUND)).expect("a read timeout");
    s.write_all(request).expect("send the request");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn get(addr: SocketAddr, path: &str) -> String {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

#[test]
fn the_watch_serves_its_metrics_and_health_and_nothing_else() {
    let server = EchoServer::start("one", 1);
    let (guard, addr) = watch_with_metrics(server.addr(), "one=100,two=0");
    // Bounded by the 60 s watch and BOUND: agreement reaches 1 on a server that answers `one` only.
    let deadline = Instant::now() + BOUND;
    let text = loop {
        let answer = get(addr, "/metrics");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        if value(&answer, "tcp_canary_agreement") == Some(1.0) {
            break answer;
        }
        assert!(Instant::now() < deadline, "never agreed: {answer}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        text.contains("content-type: application/openmetrics-text"),
        "{text}"
    );
    assert!(value(&text, r#"tcp_canary_connections_total{version="one"}"#).unwrap() > 0.0);
    assert_eq!(
        value(&text, r#"tcp_canary_expected_share{version="two"}"#),
        Some(0.0)
    );
    assert!(text.contains(r#"tcp_canary_reply_duration_seconds_bucket{le="+Inf",version="one"}"#));
    assert!(get(addr, "/healthz").ends_with("\r\n\r\nok\n"));
    assert!(get(addr, "/").starts_with("HTTP/1.1 404"));
    let post = exchange(
        addr,
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    drop(guard);
}

#[test]
fn the_listener_is_bounded_in_head_size_and_connections() {
    let server = EchoServer::start("one", 1);
    let (guard, addr) = watch_with_metrics(server.addr(), "one=100");
    // A request head over the 8 KiB limit is refused, not buffered.
    let huge = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let answer = exchange(addr, huge.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:.200}");
    // 100 connections that never send a byte: the oldest make room, the scrape still answers.
    let stalled: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    let answer = get(addr, "/healthz");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // The stalled connections were closed: at the limit (16), or by the 5 s head timeout.
    let closed = stalled
        .into_iter()
        .filter(|s| {
            let mut s = s;
            s.set_read_timeout(Some(BOUND)).unwrap();
            matches!(s.read(&mut [0u8; 16]), Ok(0) | Err(_))
        })
        .count();
    assert_eq!(closed, 100);
    let run = wait_output({
        let mut g = guard;
        let _ = g.0.kill();
        g
    });
    assert!(
        run.stderr.contains("checker: metrics on http://127.0.0.1:"),
        "{run:?}"
    );
}

#[test]
fn a_host_name_is_refused_and_a_port_alone_means_loopback() {
    let run = run_checker(&[
        "watch",
        "--target",
        "127.0.0.1:1",
        "--expect",
        "one=100",
        "--metrics-listen",
        "metrics.example:9464",
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("a host name is refused"), "{run:?}");
    let run = run_checker(&[
        "watch",
        "--target",
        "127.0.0.1:1",
        "--expect",
        "one=100",
        "--duration",
        "1s",
        "--metrics-listen",
        &free_port().to_string(),
    ]);
    assert!(
        run.stderr.contains("metrics on http://127.0.0.1:"),
        "{run:?}"
    );
}

#[test]
fn compare_serves_the_health_verdict_per_metric() {
    // Versions in turn; every 10th reply of the canary is corrupt: a 10% attributed error
    // rate against the stable's 0%, far beyond the 0.5-point margin.
    let server = FaultServer::start(vec![
        Behaviour::healthy("one", 1),
        Behaviour::healthy("two", 1).corrupting(10),
    ]);
    let (guard, addr) =
        watch_with_metrics_and(&server.target(), "one=50,two=50", &["--compare", "two=one"]);
    let first = get(addr, "/metrics");
    // Every compared metric has its series from the start (undecided until judged).
    for metric in ["error_rate", "p99_connect", "p99_reply"] {
        let series = format!(r#"tcp_canary_health_verdict{{metric="{metric}"}}"#);
        assert!(value(&first, &series).is_some(), "{series}: {first}");
    }
    // Bounded by the 60 s watch and BOUND: the error rate is decided FAIL.
    let deadline = Instant::now() + BOUND;
    let text = loop {
        let answer = get(addr, "/metrics");
        if value(&answer, r#"tcp_canary_health_verdict{metric="error_rate"}"#) == Some(-1.0) {
            break answer;
        }
        assert!(
            Instant::now() < deadline,
            "error_rate never failed: {answer}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        text.contains("# TYPE tcp_canary_health_verdict gauge"),
        "{text}"
    );
    for line in text.lines().filter(|l| l.contains("health_verdict")) {
        println!("{line}");
    }
    drop(guard);

    // Without --compare there is no such series.
    let server = EchoServer::start("one", 1);
    let (guard, addr) = watch_with_metrics(server.addr(), "one=100");
    assert!(!get(addr, "/metrics").contains("health_verdict"));
    drop(guard);
}

#[test]
fn compare_needs_the_metrics_and_takes_no_critical() {
    let base = [
        "watch",
        "--target",
        "127.0.0.1:1",
        "--expect",
        "one=50,two=50",
    ];
    let with = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        run_checker(&args)
    };
    let run = with(&["--compare", "two=one"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("give --metrics-listen too"), "{run:?}");
    let port = free_port().to_string();
    let run = with(&[
        "--compare",
        "two=one",
        "--critical",
        "p99",
        "--metrics-listen",
        &port,
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("--critical and --strict-health decide verify's exit code"),
        "{run:?}"
    );
    let run = with(&["--direction", "p99=either", "--metrics-listen", &port]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("give --compare CANARY=STABLE too"),
        "{run:?}"
    );
}
