//! The rehearsal gateway over real loopback sockets: weighted per-connection routing,
//! live weight and replica changes that keep open connections, clean shutdown.
//!
//! The backends here are minimal line echoers written in the test (`<name> <line>`), so
//! that the gateway is tested on its own; the full walk with the real echo servers is
//! in `rehearse.rs`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use rehearse::ingress::builtin::Gateway;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A line echoer that answers `<name> <line>`; aborted on drop.
struct Backend {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn backend(name: &'static str) -> Backend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (r, mut w) = stream.into_split();
                let mut lines = BufReader::new(r).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if w.write_all(format!("{name} {line}\n").as_bytes())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    Backend { addr, task }
}

/// One line through a fresh connection; returns the answering name, or None if closed.
async fn ask_once(gateway: SocketAddr) -> Option<String> {
    let mut c = Conn::open(gateway).await;
    let name = c.ask("hi").await;
    c.close().await;
    name
}

struct Conn {
    lines: tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
    w: tokio::net::tcp::OwnedWriteHalf,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Self {
        let (r, w) = TcpStream::connect(addr).await.unwrap().into_split();
        Self {
            lines: BufReader::new(r).lines(),
            w,
        }
    }

    async fn ask(&mut self, line: &str) -> Option<String> {
        self.w
            .write_all(format!("{line}\n").as_bytes())
            .await
            .ok()?;
        let reply = tokio::time::timeout(Duration::from_secs(5), self.lines.next_line())
            .await
            .ok()?
            .ok()??;
        let (name, echoed) = reply.split_once(' ')?;
        assert_eq!(echoed, line);
        Some(name.to_owned())
    }

    async fn close(mut self) {
        let _ = self.w.shutdown().await;
        // Wait for the other side's close so the gateway counts the connection as ended.
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            self.lines.get_mut().read_to_end(&mut rest),
        )
        .await;
    }
}

async fn gateway_with(groups: &[(&str, u32, &[&Backend])], seed: u64) -> Gateway {
    let gw = Gateway::bind("127.0.0.1:0".parse().unwrap(), seed)
        .await
        .unwrap();
    for (name, _, replicas) in groups {
        for r in *replicas {
            gw.add_replica(name, r.addr);
        }
    }
    let weights: Vec<(&str, u32)> = groups.iter().map(|(n, w, _)| (*n, *w)).collect();
    gw.set_weights(&weights).unwrap();
    gw
}

/// Waits (bounded) until the gateway has counted every spliced connection as ended.
async fn settle(gw: &Gateway) {
    for _ in 0..200 {
        if gw.stats().active() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn each_new_connection_draws_a_group_by_weight_and_the_seed_repeats() {
    let (s1, s2, c1) = (
        backend("one").await,
        backend("one").await,
        backend("two").await,
    );
    let mut runs = Vec::new();
    for _ in 0..2 {
        let gw = gateway_with(&[("stable", 75, &[&s1, &s2]), ("canary", 25, &[&c1])], 42).await;
        let mut seen: BTreeMap<String, u64> = BTreeMap::new();
        // Concurrent clients: the draw order is the accept order, the totals still repeat.
        let tasks: Vec<_> = (0..400)
            .map(|_| tokio::spawn(ask_once(gw.local_addr())))
            .collect();
        for t in tasks {
            *seen.entry(t.await.unwrap().unwrap()).or_insert(0) += 1;
        }
        settle(&gw).await;
        let stats = gw.stats();
        assert_eq!(stats.accepted, 400);
        let by_group = stats.opened_by_group();
        assert_eq!(by_group["stable"], seen["one"]);
        assert_eq!(by_group["canary"], seen["two"]);
        assert_eq!(stats.lost(), 0);
        // Round robin inside the group: the two stable replicas share evenly.
        let stable: Vec<u64> = stats
            .backends
            .iter()
            .filter(|b| b.group == "stable")
            .map(|b| b.opened)
            .collect();
        assert_eq!(stable.len(), 2);
        assert!(stable[0].abs_diff(stable[1]) <= 1, "{stable:?}");
        let share = seen["two"] as f64 / 400.0;
        assert!((0.15..0.35).contains(&share), "canary share {share}");
        runs.push(seen);
        let down = gw.shutdown(Duration::from_secs(1)).await;
        assert_eq!(down.cut, 0);
    }
    assert_eq!(runs[0], runs[1], "the same seed gives the same split");
}

#[tokio::test]
async fn weight_and_replica_changes_keep_open_connections() {
    let (a, b) = (backend("one").await, backend("two").await);
    let gw = gateway_with(&[("stable", 100, &[&a]), ("canary", 0, &[&b])], 1).await;
    let mut held = Vec::new();
    for i in 0..10 {
        let mut c = Conn::open(gw.local_addr()).await;
        assert_eq!(c.ask(&format!("before {i}")).await.as_deref(), Some("one"));
        held.push(c);
    }
    // Everything to the canary, and the stable replica taken out of rotation.
    gw.set_weights(&[("stable", 0), ("canary", 100)]).unwrap();
    gw.remove_replica("stable", a.addr);
    for _ in 0..10 {
        assert_eq!(ask_once(gw.local_addr()).await.as_deref(), Some("two"));
    }
    // The open connections still talk to the replica they started on.
    for (i, c) in held.iter_mut().enumerate() {
        assert_eq!(c.ask(&format!("after {i}")).await.as_deref(), Some("one"));
    }
    gw.remove_group("stable");
    for c in held {
        c.close().await;
    }
    settle(&gw).await;
    let stats = gw.stats();
    assert_eq!(stats.lost(), 0);
    assert_eq!(stats.opened_by_group()["stable"], 10);
    assert_eq!(stats.opened_by_group()["canary"], 10);
    assert_eq!(
        stats.backends.iter().map(|b| b.closed).sum::<u64>(),
        20,
        "{stats:?}"
    );
    assert!(
        gw.set_weights(&[("stable", 1)]).is_err(),
        "group was removed"
    );
    assert!(
        gw.set_weights(&[("canary", 0)]).is_err(),
        "all zero refused"
    );
}

#[tokio::test]
async fn shutdown_stops_accepting_lets_open_connections_finish_and_cuts_stragglers() {
    let a = backend("one").await;
    let gw = gateway_with(&[("stable", 1, &[&a])], 1).await;
    let addr = gw.local_addr();
    let mut finishing = Conn::open(addr).await;
    assert_eq!(finishing.ask("x").await.as_deref(), Some("one"));
    let mut straggler = Conn::open(addr).await;
    assert_eq!(straggler.ask("y").await.as_deref(), Some("one"));

    let down = tokio::spawn(gw.shutdown(Duration::from_millis(500)));
    // No new connection is served once shutdown began (bounded wait for the listener to close).
    let mut refused = false;
    for _ in 0..100 {
        if TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "the gateway kept accepting after shutdown");
    // An open connection keeps working during the drain, then closes cleanly.
    assert_eq!(finishing.ask("z").await.as_deref(), Some("one"));
    finishing.close().await;
    let report = down.await.unwrap();
    assert_eq!(report.drained, 1);
    assert_eq!(report.cut, 1);
    // The cut connection is closed from the gateway's side.
    assert_eq!(straggler.ask("late").await, None);
}

#[tokio::test]
async fn a_dead_replica_fails_its_connections_and_is_counted() {
    let a = backend("one").await;
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let gw = Gateway::bind("127.0.0.1:0".parse().unwrap(), 3)
        .await
        .unwrap();
    gw.add_replica("stable", a.addr);
    gw.add_replica("stable", dead);
    gw.set_weights(&[("stable", 1)]).unwrap();
    let mut answered = 0;
    let mut failed = 0;
    for _ in 0..10 {
        match ask_once(gw.local_addr()).await {
            Some(_) => answered += 1,
            None => failed += 1,
        }
    }
    assert_eq!((answered, failed), (5, 5));
    let stats = gw.stats();
    let dead_stats = stats
        .backends
        .iter()
        .find(|b| b.addr == Some(dead))
        .unwrap();
    assert_eq!(dead_stats.connect_failed, 5);
    assert_eq!(dead_stats.opened, 0);
    // A drawn group without replicas fails the connection too.
    gw.add_replica("canary", a.addr);
    gw.remove_replica("canary", a.addr);
    gw.set_weights(&[("stable", 0), ("canary", 1)]).unwrap();
    assert_eq!(ask_once(gw.local_addr()).await, None);
    assert_eq!(gw.stats().no_replica, 1);
}

#[tokio::test]
async fn a_client_reset_is_passed_on_to_the_replica_as_a_reset() {
    // A replica that answers one line, then reports how its connection ended.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let replica = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 256];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let _ = s.write_all(&[b"one ", &buf[..n]].concat()).await;
                let end = match s.read(&mut buf).await {
                    Ok(0) => "eof",
                    Ok(_) => "data",
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => "reset",
                    Err(_) => "error",
                };
                let _ = tx.send(end);
            });
        }
    });
    let gw = Gateway::bind("127.0.0.1:0".parse().unwrap(), 1)
        .await
        .unwrap();
    gw.add_replica("stable", addr);
    gw.set_weights(&[("stable", 1)]).unwrap();
    // A client that closes gracefully: the replica sees an end of stream.
    assert_eq!(ask_once(gw.local_addr()).await.as_deref(), Some("one"));
    let end = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
    assert_eq!(end.unwrap(), Some("eof"));
    // A client that resets (as the rehearsal's sampler does): the replica sees a reset,
    // so neither leg leaves a TIME_WAIT behind, and the gateway counts a client abort.
    let mut c = Conn::open(gw.local_addr()).await;
    assert_eq!(c.ask("x").await.as_deref(), Some("one"));
    let stream = c.lines.into_inner().into_inner().reunite(c.w).unwrap();
    stream.set_zero_linger().unwrap();
    drop(stream);
    let end = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
    assert_eq!(end.unwrap(), Some("reset"));
    settle(&gw).await;
    let b = gw.stats().backends[0].clone();
    assert_eq!(
        (b.opened, b.closed, b.reset_by_client, b.errored),
        (2, 1, 1, 0)
    );
    replica.abort();
}
