//! An in-process echo server that speaks the line protocol for several versions at
//! once and misbehaves on purpose: each connection is answered by the next version in
//! a weighted round robin (one connection = one routing decision, like Envoy), and a
//! version may add a delay before its reply or corrupt its replies. Threads and std
//! sockets only, on IPv4 loopback; dropping the server stops it and joins its threads.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// How one version answers.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// The version prefix of its replies.
    pub version: String,
    /// Its weight in the round robin (connections per turn).
    pub weight: u32,
    /// Added before every reply.
    pub delay: Duration,
    /// Every `n`-th connection it answers gets `<version> corrupted\n` instead of the echo.
    pub corrupt_every: Option<u64>,
}

impl Behaviour {
    /// A well-behaved version with weight `weight`.
    pub fn healthy(version: &str, weight: u32) -> Self {
        Self {
            version: version.to_owned(),
            weight,
            delay: Duration::ZERO,
            corrupt_every: None,
        }
    }

    /// This version, `delay` slower on every reply.
    pub fn slowed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// This version, corrupting every `n`-th reply.
    pub fn corrupting(mut self, n: u64) -> Self {
        self.corrupt_every = Some(n.max(1));
        self
    }
}

/// The running server.
pub struct FaultServer {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    names: Vec<String>,
    delays_us: Arc<Vec<AtomicU64>>,
    accept: Option<JoinHandle<()>>,
}

/// The longest a connection may stay silent before the server gives up on it.
const IDLE: Duration = Duration::from_secs(10);

fn serve(mut stream: TcpStream, behaviour: &Behaviour, delay: Duration, corrupt: bool) {
    let _ = stream.set_read_timeout(Some(IDLE));
    let _ = stream.set_nodelay(true);
    let mut line = Vec::new();
    let Ok(clone) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(clone);
    if !matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
        return;
    }
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
    let mut reply = Vec::with_capacity(behaviour.version.len() + 1 + line.len());
    reply.extend_from_slice(behaviour.version.as_bytes());
    reply.push(b' ');
    if corrupt {
        reply.extend_from_slice(b"corrupted\n");
    } else {
        reply.extend_from_slice(&line);
    }
    let _ = stream.write_all(&reply);
    // Wait for the client to close, so that the client closes first (no TIME_WAIT here).
    let _ = reader.read_until(b'\n', &mut line);
}

impl FaultServer {
    /// Starts the server on a free IPv4 loopback port.
    ///
    /// # Panics
    /// When the port cannot be bound or `versions` is empty or all weights are zero.
    pub fn start(versions: Vec<Behaviour>) -> FaultServer {
        let turn: Vec<usize> = versions
            .iter()
            .enumerate()
            .flat_map(|(i, b)| std::iter::repeat_n(i, b.weight as usize))
            .collect();
        assert!(
            !turn.is_empty(),
            "a fault server needs a version with weight"
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("the bound address");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let names = versions.iter().map(|b| b.version.clone()).collect();
        let delays_us: Arc<Vec<AtomicU64>> = Arc::new(
            versions
                .iter()
                .map(|b| AtomicU64::new(u64::try_from(b.delay.as_micros()).unwrap_or(u64::MAX)))
                .collect(),
        );
        let delays = Arc::clone(&delays_us);
        let versions = Arc::new(versions);
        let accept = std::thread::spawn(move || {
            let mut answered = vec![0u64; versions.len()];
            let mut workers: Vec<JoinHandle<()>> = Vec::new();
            for (n, stream) in listener.incoming().enumerate() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let i = turn[n % turn.len()];
                answered[i] += 1;
                let corrupt = versions[i]
                    .corrupt_every
                    .is_some_and(|every| answered[i].is_multiple_of(every));
                let versions = Arc::clone(&versions);
                let delay = Duration::from_micros(delays[i].load(Ordering::SeqCst));
                workers.retain(|w| !w.is_finished());
                workers.push(std::thread::spawn(move || {
                    serve(stream, &versions[i], delay, corrupt)
                }));
            }
            for w in workers {
                let _ = w.join();
            }
        });
        FaultServer {
            addr,
            stop,
            names,
            delays_us,
            accept: Some(accept),
        }
    }

    /// From now on, `version` waits `delay` before each reply (a regression on purpose).
    ///
    /// # Panics
    /// When the server has no such version.
    pub fn set_delay(&self, version: &str, delay: Duration) {
        let i = self
            .names
            .iter()
            .position(|n| n == version)
            .expect("a version of this server");
        let us = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.delays_us[i].store(us, Ordering::SeqCst);
    }

    /// The address as `HOST:PORT` for `--target`.
    pub fn target(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop with one last connection.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn ask(addr: SocketAddr) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"hello\n").unwrap();
        let mut reply = Vec::new();
        let mut byte = [0u8; 1];
        while s.read(&mut byte).unwrap() == 1 {
            reply.push(byte[0]);
            if byte[0] == b'\n' {
                break;
            }
        }
        String::from_utf8(reply).unwrap()
    }

    #[test]
    fn versions_take_turns_and_misbehave_as_told() {
        let server = FaultServer::start(vec![
            Behaviour::healthy("one", 1),
            Behaviour::healthy("two", 1).corrupting(2),
        ]);
        let replies: Vec<String> = (0..4).map(|_| ask(server.addr)).collect();
        assert_eq!(
            replies,
            [
                "one hello\n",
                "two hello\n",
                "one hello\n",
                "two corrupted\n"
            ]
        );
    }
}
