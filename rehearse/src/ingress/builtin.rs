//! The rehearsal's local weighted gateway: Envoy's weighted TCP route in miniature.
//!
//! It accepts TCP connections on one port and, like Envoy's weighted clusters, draws
//! a backend *group* (a version, a Deployment) at random ONCE PER NEW CONNECTION from
//! the current weights, then a replica within the group round robin, and splices the
//! bytes both ways. Weights and replica sets change live: only new connections see a
//! change, open connections stay where they are until either side closes them (a
//! removed replica gets no new connection, its open ones go on). Shutdown stops
//! accepting, lets open connections finish and cuts what is left after a deadline.
//!
//! The random choice comes from a seeded [`StdRng`], drawn once per accepted
//! connection in accept order, so N connections at fixed weights always split the same
//! way for the same seed. Zero-weight groups are never drawn; a drawn group without
//! replicas fails the connection (Envoy's "no healthy upstream"), and so does a refused
//! upstream connect: the client sees its connection closed without a reply.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use checker_core::sync::lock;

use super::stats::{BackendStats, GatewayShutdown, GatewayStats};

/// The listening socket's accept queue. `TcpListener::bind` gave 128 here (seen with
/// `ss -ltn`); a burst beyond it has SYNs dropped and retried a second later, which a
/// high `--concurrency` turns into connect timeouts. The kernel caps it at somaxconn.
pub const BACKLOG: u32 = 4096;
/// How long the gateway waits for a replica to accept a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the gateway cannot do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The listening socket could not be opened.
    #[error("the gateway cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A weight names a group the gateway does not know.
    #[error("the gateway has no backend group {0:?}")]
    UnknownGroup(String),
    /// Every weight is zero.
    #[error("all gateway weights are zero; at least one group must receive traffic")]
    AllZero,
}

#[derive(Debug)]
struct Group {
    name: String,
    weight: u32,
    replicas: Vec<SocketAddr>,
    next: usize,
}

#[derive(Debug)]
struct Router {
    groups: Vec<Group>,
    rng: StdRng,
}

/// Where one new connection goes.
enum Route {
    Replica { group: String, addr: SocketAddr },
    NoReplica,
    Unroutable,
}

impl Router {
    fn route(&mut self) -> Route {
        let total: u64 = self.groups.iter().map(|g| u64::from(g.weight)).sum();
        if total == 0 {
            return Route::Unroutable;
        }
        let mut draw = self.rng.random_range(0..total);
        for g in &mut self.groups {
            let w = u64::from(g.weight);
            if draw < w {
                if g.replicas.is_empty() {
                    return Route::NoReplica;
                }
                let addr = g.replicas[g.next % g.replicas.len()];
                g.next = g.next.wrapping_add(1);
                return Route::Replica {
                    group: g.name.clone(),
                    addr,
                };
            }
            draw -= w;
        }
        Route::Unroutable
    }

    fn group_mut(&mut self, name: &str) -> &mut Group {
        let pos = match self.groups.iter().position(|g| g.name == name) {
            Some(pos) => pos,
            None => {
                self.groups.push(Group {
                    name: name.to_owned(),
                    weight: 0,
                    replicas: Vec::new(),
                    next: 0,
                });
                self.groups.len() - 1
            }
        };
        &mut self.groups[pos]
    }
}

#[derive(Debug, Default)]
struct Counters {
    accepted: u64,
    no_replica: u64,
    unroutable: u64,
    backends: BTreeMap<(String, SocketAddr), BackendStats>,
}

impl Counters {
    fn backend(&mut self, group: &str, addr: SocketAddr) -> &mut BackendStats {
        self.backends
            .entry((group.to_owned(), addr))
            .or_insert_with(|| BackendStats {
                group: group.to_owned(),
                addr: Some(addr),
                ..BackendStats::default()
            })
    }
}

#[derive(Debug)]
struct Shared {
    router: Mutex<Router>,
    counters: Mutex<Counters>,
}

/// A running gateway; dropping it without [`Gateway::shutdown`] aborts everything.
#[derive(Debug)]
pub struct Gateway {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<Option<Duration>>,
    accept: Option<JoinHandle<GatewayShutdown>>,
}

impl Gateway {
    /// Listens on `addr` (port 0 picks a free port) and routes with a generator seeded by `seed`.
    pub async fn bind(addr: SocketAddr, seed: u64) -> Result<Self, GatewayError> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        };
        let listener = socket
            .and_then(|s| {
                s.set_reuseaddr(true)?;
                s.bind(addr)?;
                s.listen(BACKLOG)
            })
            .map_err(|source| GatewayError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| GatewayError::Bind { addr, source })?;
        let shared = Arc::new(Shared {
            router: Mutex::new(Router {
                groups: Vec::new(),
                rng: StdRng::seed_from_u64(seed),
            }),
            counters: Mutex::new(Counters::default()),
        });
        let (stop, stop_rx) = watch::channel(None);
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&shared), stop_rx));
        Ok(Self {
            local_addr,
            shared,
            stop,
            accept: Some(accept),
        })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Sets the weight of every named group at once; groups not named keep theirs.
    ///
    /// Fails, changing nothing, when a group is unknown or the resulting weights are all zero.
    pub fn set_weights(&self, weights: &[(&str, u32)]) -> Result<(), GatewayError> {
        let mut router = lock(&self.shared.router);
        for (name, _) in weights {
            if !router.groups.iter().any(|g| g.name == *name) {
                return Err(GatewayError::UnknownGroup((*name).to_owned()));
            }
        }
        let total: u64 = router
            .groups
            .iter()
            .map(|g| {
                weights
                    .iter()
                    .find(|(n, _)| *n == g.name)
                    .map_or(u64::from(g.weight), |(_, w)| u64::from(*w))
            })
            .sum();
        if total == 0 {
            return Err(GatewayError::AllZero);
        }
        for (name, weight) in weights {
            router.group_mut(name).weight = *weight;
        }
        Ok(())
    }

    /// Adds a replica to a group, creating the group with weight 0 when it is new.
    pub fn add_replica(&self, group: &str, addr: SocketAddr) {
        let mut router = lock(&self.shared.router);
        let g = router.group_mut(group);
        if !g.replicas.contains(&addr) {
            g.replicas.push(addr);
        }
    }

    /// Takes a replica out of its group: no new connection goes to it, open ones go on.
    pub fn remove_replica(&self, group: &str, addr: SocketAddr) {
        let mut router = lock(&self.shared.router);
        if let Some(g) = router.groups.iter_mut().find(|g| g.name == group) {
            g.replicas.retain(|a| *a != addr);
        }
    }

    /// Removes a whole group (its weight no longer counts); open connections go on.
    pub fn remove_group(&self, group: &str) {
        lock(&self.shared.router).groups.retain(|g| g.name != group);
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> GatewayStats {
        let c = lock(&self.shared.counters);
        GatewayStats {
            accepted: c.accepted,
            no_replica: c.no_replica,
            unroutable: c.unroutable,
            backends: c.backends.values().cloned().collect(),
        }
    }

    /// Stops accepting, waits up to `deadline` for open connections to finish, cuts the rest.
    pub async fn shutdown(mut self, deadline: Duration) -> GatewayShutdown {
        self.stop.send_replace(Some(deadline));
        match self.accept.take() {
            Some(task) => task.await.unwrap_or_default(),
            None => GatewayShutdown::default(),
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(task) = self.accept.take() {
            task.abort();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<Option<Duration>>,
) -> GatewayShutdown {
    let mut open: JoinSet<()> = JoinSet::new();
    let deadline = loop {
        tokio::select! {
            changed = stop.changed() => {
                let deadline = *stop.borrow_and_update();
                match (changed, deadline) {
                    (Ok(()), Some(d)) => break d,
                    (Ok(()), None) => continue,
                    // The handle is gone without a shutdown: cut at once.
                    (Err(_), _) => break Duration::ZERO,
                }
            }
            Some(_) = open.join_next(), if !open.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    open.spawn(serve(client, Arc::clone(&shared)));
                }
                Err(e) => {
                    // Typically EMFILE: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "gateway accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
        }
    };
    drop(listener);
    let mut report = GatewayShutdown::default();
    let finish = async {
        while open.join_next().await.is_some() {
            report.drained += 1;
        }
    };
    if tokio::time::timeout(deadline, finish).await.is_err() {
        report.cut = open.len() as u64;
        open.shutdown().await;
    }
    report
}

/// One client connection: route, connect, splice, count.
async fn serve(client: TcpStream, shared: Arc<Shared>) {
    let route = lock(&shared.router).route();
    lock(&shared.counters).accepted += 1;
    let (group, addr) = match route {
        Route::Replica { group, addr } => (group, addr),
        Route::NoReplica => {
            lock(&shared.counters).no_replica += 1;
            return;
        }
        Route::Unroutable => {
            lock(&shared.counters).unroutable += 1;
            return;
        }
    };
    let upstream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(_)) | Err(_) => {
            lock(&shared.counters).backend(&group, addr).connect_failed += 1;
            return;
        }
    };
    {
        let mut c = lock(&shared.counters);
        let b = c.backend(&group, addr);
        b.opened += 1;
        b.active += 1;
    }
    // Counts the end of the splice even when the task is aborted at the shutdown deadline.
    let mut guard = SpliceGuard {
        shared: &shared,
        group: &group,
        addr,
        ended: None,
    };
    let (mut client, mut upstream) = (client, upstream);
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let end = splice(&mut client, &mut upstream).await;
    // A reset is passed on as a reset, as a proxy does: the other leg then leaves no
    // TIME_WAIT (nor its connection-tracking entry) behind either.
    match end {
        Err(Side::Client) => {
            let _ = upstream.set_zero_linger();
        }
        Err(Side::Upstream) => {
            let _ = client.set_zero_linger();
        }
        Ok(()) => {}
    }
    guard.ended = Some(end);
}

/// One end of a spliced connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Upstream,
}

/// Copies bytes both ways until both directions ended with a FIN (passed on with a
/// shutdown), or until one side fails, which ends both at once and names that side.
async fn splice(client: &mut TcpStream, upstream: &mut TcpStream) -> Result<(), Side> {
    let (mut client_r, mut client_w) = client.split();
    let (mut upstream_r, mut upstream_w) = upstream.split();
    let up = copy_one_way(&mut client_r, &mut upstream_w, Side::Client, Side::Upstream);
    let down = copy_one_way(&mut upstream_r, &mut client_w, Side::Upstream, Side::Client);
    tokio::pin!(up, down);
    let (mut up_done, mut down_done) = (false, false);
    while !(up_done && down_done) {
        tokio::select! {
            r = &mut up, if !up_done => {
                r?;
                up_done = true;
            }
            r = &mut down, if !down_done => {
                r?;
                down_done = true;
            }
        }
    }
    Ok(())
}

/// Copies `from` to `to` until `from` ends, then shuts `to` down; an error names the
/// side whose socket failed.
async fn copy_one_way<R, W>(
    from: &mut R,
    to: &mut W,
    from_side: Side,
    to_side: Side,
) -> Result<(), Side>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = [0u8; 8192];
    loop {
        let n = from.read(&mut buf).await.map_err(|_| from_side)?;
        if n == 0 {
            return to.shutdown().await.map_err(|_| to_side);
        }
        to.write_all(&buf[..n]).await.map_err(|_| to_side)?;
    }
}

struct SpliceGuard<'a> {
    shared: &'a Shared,
    group: &'a str,
    addr: SocketAddr,
    /// How the splice ended; `None` when it was cut before the end.
    ended: Option<Result<(), Side>>,
}

impl Drop for SpliceGuard<'_> {
    fn drop(&mut self) {
        let mut c = lock(&self.shared.counters);
        let b = c.backend(self.group, self.addr);
        b.active = b.active.saturating_sub(1);
        match self.ended {
            Some(Ok(())) => b.closed += 1,
            Some(Err(Side::Client)) => b.reset_by_client += 1,
            Some(Err(Side::Upstream)) => b.errored += 1,
            None => b.cut += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(weights: &[(&str, u32, usize)], seed: u64) -> Router {
        Router {
            groups: weights
                .iter()
                .enumerate()
                .map(|(i, (name, weight, replicas))| Group {
                    name: (*name).to_owned(),
                    weight: *weight,
                    replicas: (0..*replicas)
                        .map(|r| SocketAddr::from(([127, 0, 0, 1], (1000 * (i + 1) + r) as u16)))
                        .collect(),
                    next: 0,
                })
                .collect(),
            rng: StdRng::seed_from_u64(seed),
        }
    }

    fn draw(r: &mut Router, n: usize) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for _ in 0..n {
            let key = match r.route() {
                Route::Replica { group, .. } => group,
                Route::NoReplica => "<no replica>".to_owned(),
                Route::Unroutable => "<unroutable>".to_owned(),
            };
            *out.entry(key).or_insert(0) += 1;
        }
        out
    }

    #[test]
    fn draws_follow_the_weights_and_repeat_for_a_seed() {
        let mut a = router(&[("stable", 80, 3), ("canary", 20, 2)], 7);
        let counts = draw(&mut a, 10_000);
        let canary = counts["canary"] as f64 / 10_000.0;
        assert!((canary - 0.2).abs() < 0.02, "canary share {canary}");
        let mut b = router(&[("stable", 80, 3), ("canary", 20, 2)], 7);
        assert_eq!(draw(&mut b, 10_000), counts);
        let mut c = router(&[("stable", 80, 3), ("canary", 20, 2)], 8);
        assert_ne!(draw(&mut c, 10_000), counts);
    }

    #[test]
    fn zero_weight_is_never_drawn_and_empty_groups_fail() {
        let mut r = router(&[("stable", 100, 2), ("canary", 0, 2)], 1);
        assert_eq!(draw(&mut r, 1000).get("canary"), None);
        let mut r = router(&[("stable", 0, 2), ("canary", 1, 0)], 1);
        assert_eq!(draw(&mut r, 10)["<no replica>"], 10);
        let mut r = router(&[("stable", 0, 2)], 1);
        assert_eq!(draw(&mut r, 3)["<unroutable>"], 3);
    }

    #[test]
    fn replicas_take_turns_within_a_group() {
        let mut r = router(&[("stable", 1, 3)], 1);
        let addrs: Vec<u16> = (0..6)
            .map(|_| match r.route() {
                Route::Replica { addr, .. } => addr.port(),
                _ => 0,
            })
            .collect();
        assert_eq!(addrs, vec![1000, 1001, 1002, 1000, 1001, 1002]);
    }
}
