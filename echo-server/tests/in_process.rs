//! The library API that `checker rehearse` uses: several servers in one process,
//! graceful shutdown and abort through a `ServerHandle`, over loopback.

use std::net::Ipv4Addr;
use std::time::Duration;

use echo_server::{Config, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn loopback(version: &str) -> Config {
    let mut config = Config::new(vec![0], version.to_owned());
    config.listen = Ipv4Addr::LOCALHOST.into();
    config.admin_port = None;
    config.drain_delay = Duration::ZERO;
    config.shutdown_timeout = Duration::from_secs(30);
    config
}

async fn exchange(stream: &mut TcpStream, version: &str, line: &[u8]) -> Vec<u8> {
    stream.write_all(line).await.expect("send");
    let mut reply = vec![0; version.len() + 1 + line.len()];
    stream.read_exact(&mut reply).await.expect("reply");
    reply
}

#[tokio::test]
async fn two_servers_share_a_process_and_shut_down_gracefully() {
    let stable = Server::bind(loopback("stable")).await.unwrap();
    let canary = Server::bind(loopback("canary")).await.unwrap();
    assert_eq!(stable.admin_addr(), None);
    let (stable_addr, canary_addr) = (stable.local_addrs()[0], canary.local_addrs()[0]);
    let (stable_handle, canary_handle) = (stable.handle(), canary.handle());
    let stable_run = tokio::spawn(stable.run());
    let canary_run = tokio::spawn(canary.run());

    let mut a = TcpStream::connect(stable_addr).await.unwrap();
    let mut b = TcpStream::connect(canary_addr).await.unwrap();
    assert_eq!(exchange(&mut a, "stable", b"x\n").await, b"stable x\n");
    assert_eq!(exchange(&mut b, "canary", b"x\n").await, b"canary x\n");
    assert_eq!(stable_handle.active_connections(), 1);
    assert_eq!(stable_handle.metrics().lines_echoed.get(), 1);

    // A graceful shutdown lets the open connection finish its conversation.
    stable_handle.shutdown();
    assert!(!stable_handle.is_ready());
    assert_eq!(
        exchange(&mut a, "stable", b"after\n").await,
        b"stable after\n"
    );
    drop(a);
    let report = stable_run.await.unwrap().unwrap();
    assert_eq!((report.drained, report.cut, report.aborted), (1, 0, false));

    // The other server is untouched.
    assert!(canary_handle.is_ready());
    assert_eq!(exchange(&mut b, "canary", b"y\n").await, b"canary y\n");
    drop(b);
    canary_handle.shutdown();
    let report = canary_run.await.unwrap().unwrap();
    assert_eq!(report.cut, 0);
}

#[tokio::test]
async fn abort_cuts_open_connections_and_closes_the_listener() {
    let server = Server::bind(loopback("doomed")).await.unwrap();
    let addr = server.local_addrs()[0];
    let handle = server.handle();
    let run = tokio::spawn(server.run());
    let mut open = TcpStream::connect(addr).await.unwrap();
    assert_eq!(exchange(&mut open, "doomed", b"hi\n").await, b"doomed hi\n");

    handle.abort();
    let mut rest = Vec::new();
    // EOF or reset: either way the server closed the connection.
    let _ = open.read_to_end(&mut rest).await;
    assert!(rest.is_empty());
    let report = run.await.unwrap().unwrap();
    assert!(report.aborted);
    assert_eq!(report.cut, 1);
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener must be closed"
    );
}

#[tokio::test]
async fn binding_a_taken_port_names_it_and_releases_the_others() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let mut config = loopback("one");
    config.ports = vec![0, taken_port];
    let err = Server::bind(config).await.unwrap_err();
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{taken_port}")),
        "{err}"
    );
    let mut config = loopback("one");
    config.version = "not valid".into();
    assert!(Server::bind(config).await.is_err());
}

#[tokio::test]
async fn a_stalled_admin_request_does_not_outlive_the_shutdown_timeout() {
    let mut config = loopback("one");
    config.admin_port = Some(0);
    config.shutdown_timeout = Duration::from_millis(500);
    let server = Server::bind(config).await.unwrap();
    let admin = server.admin_addr().expect("admin server");
    let handle = server.handle();
    let run = tokio::spawn(server.run());
    // An HTTP request whose headers never end (a hung scraper or probe).
    let mut stalled = TcpStream::connect(admin).await.unwrap();
    stalled
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    handle.shutdown();
    let report = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the server must exit by its shutdown timeout")
        .unwrap()
        .unwrap();
    assert_eq!(report.cut, 0);
    drop(stalled);
}

#[tokio::test]
async fn dropping_the_run_future_closes_connections_and_listeners() {
    let mut config = loopback("dropped");
    config.admin_port = Some(0);
    let server = Server::bind(config).await.unwrap();
    let addr = server.local_addrs()[0];
    let admin = server.admin_addr().expect("admin server");
    let run = tokio::spawn(server.run());
    let mut open = TcpStream::connect(addr).await.unwrap();
    assert_eq!(
        exchange(&mut open, "dropped", b"hi\n").await,
        b"dropped hi\n"
    );

    // The caller gives up on the server (a timeout, a select!, an aborted task).
    run.abort();
    assert!(run.await.unwrap_err().is_cancelled());
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), open.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "a connection outlived its server");
    for _ in 0..100 {
        if TcpStream::connect(admin).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the admin listener outlived its server");
}
