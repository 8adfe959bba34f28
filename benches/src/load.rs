//! Loopback workloads. Every loop is bounded by a deadline or a count.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

/// The request line every workload sends (the checker's probe shape).
pub const LINE: &[u8] = b"tcp-canary 123456 2026-11-27T13:37:49.123456789Z\n";
/// Longest wait for one connect or reply before it counts as an error.
pub const OP_TIMEOUT: Duration = Duration::from_secs(5);

/// How many operations succeeded and failed over how long.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rate {
    /// Successful operations.
    pub ok: u64,
    /// Failed operations (connect refused or reset, timeout, wrong reply).
    pub errors: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl Rate {
    /// Successful operations per second.
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

/// The reply a server of `version` sends to [`LINE`].
pub fn expected_reply(version: &str) -> Vec<u8> {
    let mut reply = format!("{version} ").into_bytes();
    reply.extend_from_slice(LINE);
    reply
}

/// Connects to `addr`; to a loopback IPv4 server from a rotating 127.0.0.x source, so that
/// tens of thousands of client-side TIME_WAIT sockets per second do not exhaust the
/// ephemeral ports of one source address.
pub async fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    match addr {
        SocketAddr::V4(v4) if v4.ip().is_loopback() => {
            let host = 2 + NEXT.fetch_add(1, Ordering::Relaxed) % 250;
            let source = Ipv4Addr::new(127, 0, 0, u8::try_from(host).unwrap_or(2));
            let socket = TcpSocket::new_v4()?;
            socket.set_reuseaddr(true)?;
            socket.bind(SocketAddr::from((source, 0)))?;
            socket.connect(addr).await
        }
        _ => TcpStream::connect(addr).await,
    }
}

async fn one_sample(
    addr: SocketAddr,
    expected: &[u8],
    buf: &mut [u8],
    reset: bool,
) -> std::io::Result<bool> {
    let mut stream = connect(addr).await?;
    stream.write_all(LINE).await?;
    let reply = &mut buf[..expected.len()];
    stream.read_exact(reply).await?;
    if reset {
        // Close with RST: no TIME_WAIT socket and no 120 s conntrack entry per sample.
        socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO))?;
    }
    Ok(reply == expected)
}

/// Fresh-connection samples (connect, one line, read the reply, close), `concurrency` at a time.
///
/// With `reset` the client closes with RST instead of FIN (see `loopback --help`).
pub async fn fresh_connections(
    addr: SocketAddr,
    version: &str,
    concurrency: usize,
    duration: Duration,
    reset: bool,
) -> Rate {
    let expected: Arc<[u8]> = expected_reply(version).into();
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency {
        let expected = Arc::clone(&expected);
        tasks.spawn(async move {
            let mut rate = Rate::default();
            let mut buf = vec![0u8; expected.len()];
            while Instant::now() < deadline {
                match tokio::time::timeout(OP_TIMEOUT, one_sample(addr, &expected, &mut buf, reset))
                    .await
                {
                    Ok(Ok(true)) => rate.ok += 1,
                    _ => rate.errors += 1,
                }
            }
            rate
        });
    }
    collect(tasks, start).await
}

/// Ping-pong lines over `connections` persistent connections.
pub async fn ping_pong(
    addr: SocketAddr,
    version: &str,
    connections: usize,
    duration: Duration,
) -> Rate {
    let expected: Arc<[u8]> = expected_reply(version).into();
    let mut streams = Vec::with_capacity(connections);
    for _ in 0..connections {
        match TcpStream::connect(addr).await {
            Ok(stream) => streams.push(stream),
            Err(_) => {
                return Rate {
                    errors: 1,
                    ..Rate::default()
                };
            }
        }
    }
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = JoinSet::new();
    for mut stream in streams {
        let expected = Arc::clone(&expected);
        tasks.spawn(async move {
            let mut rate = Rate::default();
            let mut buf = vec![0u8; expected.len()];
            while Instant::now() < deadline {
                let exchange = async {
                    stream.write_all(LINE).await?;
                    stream.read_exact(&mut buf).await?;
                    std::io::Result::Ok(buf[..] == expected[..])
                };
                match tokio::time::timeout(OP_TIMEOUT, exchange).await {
                    Ok(Ok(true)) => rate.ok += 1,
                    _ => {
                        rate.errors += 1;
                        break;
                    }
                }
            }
            rate
        });
    }
    collect(tasks, start).await
}

async fn collect(mut tasks: JoinSet<Rate>, start: Instant) -> Rate {
    let mut total = Rate::default();
    while let Some(done) = tasks.join_next().await {
        if let Ok(rate) = done {
            total.ok += rate.ok;
            total.errors += rate.errors;
        } else {
            total.errors += 1;
        }
    }
    total.elapsed = start.elapsed();
    total
}

/// Opens `count` connections, each answered once, and keeps them open; returns them.
pub async fn open_idle(
    addr: SocketAddr,
    version: &str,
    count: usize,
    concurrency: usize,
) -> Result<Vec<TcpStream>, String> {
    let expected: Arc<[u8]> = expected_reply(version).into();
    let mut open = Vec::with_capacity(count);
    let mut tasks = JoinSet::new();
    let mut started = 0;
    while open.len() < count {
        while started < count && tasks.len() < concurrency {
            let expected = Arc::clone(&expected);
            tasks.spawn(async move {
                let mut stream = connect(addr).await?;
                stream.write_all(LINE).await?;
                let mut buf = vec![0u8; expected.len()];
                stream.read_exact(&mut buf).await?;
                if buf[..] != expected[..] {
                    return Err(std::io::Error::other("wrong reply"));
                }
                Ok(stream)
            });
            started += 1;
        }
        match tasks.join_next().await {
            Some(Ok(Ok(stream))) => open.push(stream),
            Some(Ok(Err(e))) => return Err(format!("opening idle connections: {e}")),
            Some(Err(e)) => return Err(format!("opening idle connections: {e}")),
            None => break,
        }
    }
    Ok(open)
}
