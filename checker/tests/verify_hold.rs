//! `checker verify --hold K --hold-for D` end to end: the real checker binary holds
//! long-lived connections through a target while it samples, against an in-process
//! echo server (nothing cuts them) and a small test server that closes every connection
//! a fixed time after it was accepted (a gateway whose drain time ran out).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use support::{EchoServer, assert_schema_valid, run_checker};

/// Answers `one <line>` on every connection, and closes each one `after` it was accepted.
struct CuttingServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl CuttingServer {
    fn start(after: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        std::thread::spawn(move || serve_until(conn, Instant::now() + after));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        CuttingServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for CuttingServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Echoes lines as `one` until `deadline`, then closes the connection.
fn serve_until(conn: TcpStream, deadline: Instant) {
    conn.set_nodelay(true).unwrap();
    let mut writer = conn.try_clone().unwrap();
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        reader.get_ref().set_read_timeout(Some(left)).unwrap();
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if writer.write_all(format!("one {line}").as_bytes()).is_err() {
                    return;
                }
            }
        }
    }
}

/// `checker verify --target TARGET --expect one=100 --hold K --hold-for D --output json`:
/// exits 0 (cut held connections are reported, not a verdict); the schema-valid report.
fn verify_holding(target: &str, k: &str, hold_for: &str) -> serde_json::Value {
    let run = run_checker(&[
        "verify",
        "--target",
        target,
        "--expect",
        "one=100",
        "--hold",
        k,
        "--hold-for",
        hold_for,
        "--output",
        "json",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    assert_schema_valid(&doc);
    doc
}

#[test]
fn held_connections_through_a_steady_target_all_survive() {
    let server = EchoServer::start("one", 1);
    let target = server.addr().to_string();
    let doc = verify_holding(&target, "4", "2s");
    let held = &doc["held"];
    assert_eq!(held["requested"], 4, "{held}");
    assert_eq!(held["opened"], 4, "{held}");
    assert_eq!(held["survived"], 4, "{held}");
    assert_eq!(held["ended"], 0, "{held}");
    assert_eq!(held["by_version"]["one"], 4, "{held}");
    assert!(held["hold_for_s"].as_f64().unwrap() >= 2.0, "{held}");
    // A line every second for 2 s: at least the first exchange each (a second one is
    // likely, but a loaded machine may not fit it in).
    assert!(held["exchanges"].as_u64().unwrap() >= 4, "{held}");
}

#[test]
fn held_connections_cut_by_the_target_are_counted_with_when_they_ended() {
    let server = CuttingServer::start(Duration::from_millis(1500));
    let target = server.addr.to_string();
    let doc = verify_holding(&target, "3", "3s");
    let held = &doc["held"];
    assert_eq!(held["opened"], 3, "{held}");
    assert_eq!(held["survived"], 0, "{held}");
    assert_eq!(held["ended"], 3, "{held}");
    assert_eq!(held["reasons"]["closed by the other side"], 3, "{held}");
    let first = held["ended_after_s"]["first"].as_f64().unwrap();
    let last = held["ended_after_s"]["last"].as_f64().unwrap();
    // Cut 1.5 s after each was accepted: never seen before that (how soon after it is a
    // measurement; no upper bound is asserted, a loaded machine may notice a close late).
    assert!(first >= 1.4 && last >= first, "{first}..{last}");
    let text = run_checker(&[
        "verify",
        "--target",
        &target,
        "--expect",
        "one=100",
        "--hold",
        "2",
        "--hold-for",
        "2s",
    ]);
    assert!(
        text.stdout.contains("held connections: 0 of 2 survived")
            && text.stdout.contains("2 ended"),
        "{text:?}"
    );
}
