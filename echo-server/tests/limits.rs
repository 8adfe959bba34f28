//! Limits: connection limit, idle timeout, and running out of file descriptors.

mod common;

use std::process::Command;

use common::{Client, ServerProc, binary, reply, start};

#[test]
fn connections_beyond_the_limit_are_closed_at_once_and_counted() {
    let server = start(&["0", "one", "--max-connections", "2"]);
    let mut first = Client::connect(server.addr());
    let mut second = Client::connect(server.addr());
    assert_eq!(first.exchange("one", b"1\n"), reply("one", b"1\n"));
    assert_eq!(second.exchange("one", b"2\n"), reply("one", b"2\n"));
    server.wait_metric("connections_active", |v| v == 2);

    let mut third = Client::connect(server.addr());
    assert!(
        third.closed_by_server(),
        "a connection beyond the limit must be closed"
    );
    assert_eq!(server.wait_metric("connections_rejected", |v| v >= 1), 1);

    // Open connections are unaffected.
    assert_eq!(first.exchange("one", b"again\n"), reply("one", b"again\n"));
    assert_eq!(second.exchange("one", b"again\n"), reply("one", b"again\n"));

    // Once one closes, a new connection is served.
    drop(first);
    server.wait_metric("connections_active", |v| v == 1);
    let mut fourth = Client::connect(server.addr());
    assert_eq!(fourth.exchange("one", b"4\n"), reply("one", b"4\n"));
    assert_eq!(server.metric("connections_rejected"), 1);
}

#[test]
fn idle_connections_are_closed_after_the_idle_timeout() {
    // Long enough that the first exchange surely happens before it, short enough to wait for.
    let server = start(&["0", "one", "--idle-timeout", "1s"]);
    let mut talker = Client::connect(server.addr());
    assert_eq!(talker.exchange("one", b"hi\n"), reply("one", b"hi\n"));
    let mut silent = Client::connect(server.addr());
    assert!(
        talker.closed_by_server(),
        "idle after a reply: must be closed"
    );
    assert!(silent.closed_by_server(), "never spoke: must be closed");
    assert_eq!(server.wait_metric("connections_idle_closed", |v| v >= 2), 2);
    assert_eq!(server.metric("connections_active"), 0);
}

#[test]
fn idle_timeout_zero_never_closes() {
    let server = start(&["0", "one", "--idle-timeout", "0"]);
    let mut client = Client::connect(server.addr());
    assert_eq!(client.exchange("one", b"hi\n"), reply("one", b"hi\n"));
    client
        .stream
        .set_read_timeout(Some(std::time::Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 1];
    let err = std::io::Read::read(&mut client.stream, &mut buf).expect_err("no close, no data");
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err}"
    );
    client.stream.set_read_timeout(Some(common::BOUND)).unwrap();
    assert_eq!(client.exchange("one", b"still\n"), reply("one", b"still\n"));
}

#[test]
fn the_server_serves_again_after_running_out_of_file_descriptors() {
    // 40 descriptors: a handful for the runtime and listeners, the rest for clients.
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -n 40 && exec \"$0\" \"$@\"")
        .arg(binary())
        .args(["0", "one", "--listen", "127.0.0.1", "--admin-port", "0"]);
    let mut server = ServerProc::spawn(cmd);

    // Far more connections than descriptors: the kernel completes them all (backlog),
    // the server accepts until EMFILE and must then back off instead of dying.
    let clients: Vec<Client> = (0..80).map(|_| Client::connect(server.addr())).collect();
    server.wait_log("accept failed");
    drop(clients);

    // Descriptors come back as the server sees the closed connections; it serves again.
    let mut client = Client::connect(server.addr());
    assert_eq!(client.exchange("one", b"back\n"), reply("one", b"back\n"));
    assert!(server.metric("accept_errors") >= 1);
    assert_eq!(server.get("/healthz").0, 200);
}
