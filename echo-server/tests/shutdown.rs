//! Graceful shutdown on SIGTERM/SIGINT, as Kubernetes needs it.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};

use common::{Client, reply, start, wait_for};

/// The `name=<number>` field of a log line.
fn field(line: &str, name: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name}= in {line:?}"))
}

#[test]
fn sigterm_with_200_connections_mid_conversation_drains_them_all() {
    const CONNECTIONS: usize = 200;
    const AFTER_SIGNAL: usize = 20;
    let mut server = start(&[
        "0",
        "one",
        "--drain-delay",
        "5s",
        "--shutdown-timeout",
        "60s",
    ]);
    let addr = server.addr();
    let signalled = Arc::new(AtomicBool::new(false));
    let connected = Arc::new(Barrier::new(CONNECTIONS + 1));
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|id| {
            let signalled = Arc::clone(&signalled);
            let connected = Arc::clone(&connected);
            std::thread::spawn(move || {
                let mut client = Client::connect(addr);
                let mut exchange = |n: usize| {
                    let line = format!("client {id} request {n}\n");
                    assert_eq!(
                        client.exchange("one", line.as_bytes()),
                        reply("one", line.as_bytes()),
                        "client {id} request {n}"
                    );
                };
                exchange(0);
                connected.wait();
                // Keep talking across the signal, then a fixed number of requests after the
                // server has begun its shutdown.
                let mut n = 1;
                while !signalled.load(Ordering::SeqCst) {
                    exchange(n);
                    n += 1;
                }
                for _ in 0..AFTER_SIGNAL {
                    exchange(n);
                    n += 1;
                }
                n
            })
        })
        .collect();
    connected.wait();
    server.signal("TERM");
    // Readiness fails at once; the clients go on talking until the server shows it.
    wait_for("/readyz 503", || {
        (server.get("/readyz").0 == 503).then_some(())
    });
    signalled.store(true, Ordering::SeqCst);

    // The listener still accepts during the drain delay.
    assert_eq!(server.get("/healthz").0, 200);
    let mut late = Client::connect(addr);
    assert_eq!(
        late.exchange("one", b"during drain\n"),
        reply("one", b"during drain\n")
    );
    drop(late);

    let mut requests = 0;
    for client in clients {
        requests += client.join().expect("every request gets its reply");
    }
    assert!(requests >= CONNECTIONS * (AFTER_SIGNAL + 1));

    let status = server.wait_exit();
    assert!(status.success(), "exit status {status:?}");
    let done = server.wait_log("shutdown complete");
    assert_eq!(field(&done, "cut"), 0, "{done}");
    assert_eq!(field(&done, "drained"), CONNECTIONS as u64 + 1, "{done}");
}

#[test]
fn connections_still_open_at_the_deadline_are_cut_and_the_exit_is_clean() {
    let mut server = start(&[
        "0",
        "one",
        "--drain-delay",
        "0s",
        "--shutdown-timeout",
        "500ms",
    ]);
    let mut idle = Client::connect(server.addr());
    assert_eq!(idle.exchange("one", b"hi\n"), reply("one", b"hi\n"));
    server.signal("INT");
    assert!(
        idle.closed_by_server(),
        "the open connection must be cut at the deadline"
    );
    let status = server.wait_exit();
    assert!(status.success(), "exit status {status:?}");
    let done = server.wait_log("shutdown complete");
    assert_eq!(field(&done, "cut"), 1, "{done}");
    assert_eq!(field(&done, "drained"), 0, "{done}");
}

#[test]
fn a_second_signal_cuts_everything_at_once() {
    let mut server = start(&[
        "0",
        "one",
        "--drain-delay",
        "10m",
        "--shutdown-timeout",
        "20m",
    ]);
    let mut open = Client::connect(server.addr());
    assert_eq!(open.exchange("one", b"hi\n"), reply("one", b"hi\n"));
    server.signal("TERM");
    wait_for("/readyz 503", || {
        (server.get("/readyz").0 == 503).then_some(())
    });
    server.signal("TERM");
    assert!(open.closed_by_server());
    let status = server.wait_exit();
    assert!(status.success(), "exit status {status:?}");
    let done = server.wait_log("shutdown complete");
    assert_eq!(field(&done, "cut"), 1, "{done}");
}
