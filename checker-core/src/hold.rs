//! Long-lived connections held open through a gateway: across a rollout step in
//! `checker rehearse`, and during sampling with `checker verify --hold` ([`HeldReport`]).
//!
//! Each holder opens one connection, then exchanges a line every
//! [`EXCHANGE_EVERY`] and checks every reply (the line echoed back, and always
//! by the same version: an open connection must never move); between exchanges it
//! watches the connection, so a close is seen the moment it happens. When told to stop
//! it closes its side and waits for the gateway to close too. A holder that ends any
//! other way (a reset, an early close, a wrong or moved reply) is *lost*, and the
//! loss is logged the moment it happens, with its time and the version behind it
//! ([`Holders::take_losses`]), so that it is reported in the step where it happened
//! even though the set is closed later. The walk sorts the losses into cuts made by the
//! gateway (the servers were still serving) and losses at the servers, and times the
//! cuts from the first weight change after the set was opened.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use bytes::BytesMut;
use protocol::parse_reply;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Pause between two exchanges of one holder.
pub const EXCHANGE_EVERY: Duration = Duration::from_secs(1);
/// Longest wait for one reply, or for the close at the end.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// How a set of held connections ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HeldSummary {
    /// Connections opened.
    pub opened: u64,
    /// Connections that exchanged lines until told to stop and then closed cleanly.
    pub kept: u64,
    /// Connections that broke (reset, closed early, wrong or moved reply).
    pub lost: u64,
    /// Lines exchanged over all connections.
    pub exchanges: u64,
    /// Kept connections per version that answered them.
    pub by_version: BTreeMap<String, u64>,
    /// Why connections were lost, one entry per reason with its count.
    pub reasons: BTreeMap<String, u64>,
    /// Connections cut by the gateway while the replica behind them was still serving
    /// (not counted in `lost`): a finding, an error only with `--fail-on-cut`.
    pub cut: u64,
    /// When the cuts happened, in seconds after the change their set was opened before.
    pub cut_after_s: Option<CutTimes>,
}

/// The earliest and the latest cut of a set of held connections, in seconds after the
/// change they were opened before.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CutTimes {
    /// The first cut.
    pub first: f64,
    /// The last cut.
    pub last: f64,
}

impl CutTimes {
    fn add(this: &mut Option<CutTimes>, at: f64) {
        *this = Some(match *this {
            None => CutTimes {
                first: at,
                last: at,
            },
            Some(t) => CutTimes {
                first: t.first.min(at),
                last: t.last.max(at),
            },
        });
    }
}

/// One held connection that ended before it was told to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loss {
    /// What happened, e.g. `closed by the other side`.
    pub reason: String,
    /// The version that had answered it, if any had.
    pub version: Option<String>,
    /// When it happened.
    pub at: Instant,
    /// When its set was opened.
    pub opened: Instant,
}

impl HeldSummary {
    /// Counts lost connections from their reasons.
    pub fn add_losses(&mut self, reasons: Vec<String>) {
        for r in reasons {
            self.lost += 1;
            *self.reasons.entry(r).or_insert(0) += 1;
        }
    }

    /// Counts a connection cut by the gateway, `after` the change its set was opened before.
    pub fn add_cut(&mut self, after: Option<Duration>) {
        self.cut += 1;
        if let Some(d) = after {
            CutTimes::add(&mut self.cut_after_s, d.as_secs_f64());
        }
    }

    /// Adds another summary to this one.
    pub fn merge(&mut self, other: &HeldSummary) {
        self.opened += other.opened;
        self.kept += other.kept;
        self.lost += other.lost;
        self.cut += other.cut;
        for t in other.cut_after_s.iter().flat_map(|t| [t.first, t.last]) {
            CutTimes::add(&mut self.cut_after_s, t);
        }
        self.exchanges += other.exchanges;
        for (k, v) in &other.by_version {
            *self.by_version.entry(k.clone()).or_insert(0) += v;
        }
        for (k, v) in &other.reasons {
            *self.reasons.entry(k.clone()).or_insert(0) += v;
        }
    }
}

/// One holder's result.
struct Held {
    version: Option<String>,
    exchanges: u64,
    lost: bool,
}

/// The losses of a set so far.
#[derive(Debug, Default)]
struct Log {
    losses: Vec<Loss>,
}

/// A set of holders running in the background.
#[derive(Debug)]
pub struct Holders {
    stop: CancellationToken,
    tasks: JoinSet<Held>,
    opened: u64,
    log: Arc<Mutex<Log>>,
    opened_at: Instant,
}

impl Holders {
    /// Opens `count` connections to `gateway`, each exchanging its first line before
    /// this returns, so every one of them is routed and open when the step changes things.
    pub async fn open(gateway: SocketAddr, count: usize, stop_all: &CancellationToken) -> Self {
        let mut holders = Self {
            stop: stop_all.child_token(),
            tasks: JoinSet::new(),
            opened: 0,
            log: Arc::new(Mutex::new(Log::default())),
            opened_at: Instant::now(),
        };
        holders.open_more(gateway, count).await;
        holders
    }

    /// Opens `count` more connections into this set, like [`Holders::open`].
    pub async fn open_more(&mut self, gateway: SocketAddr, count: usize) {
        let mut ready = Vec::with_capacity(count);
        for _ in 0..count {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let index = self.opened;
            self.opened += 1;
            let (stop, log) = (self.stop.clone(), Arc::clone(&self.log));
            self.tasks.spawn(hold(gateway, index, stop, tx, log));
            ready.push(rx);
        }
        for rx in ready {
            let _ = rx.await;
        }
    }

    /// When the set was opened (its first connection).
    pub fn opened_at(&self) -> Instant {
        self.opened_at
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The connections lost since the last call.
    pub fn take_losses(&self) -> Vec<Loss> {
        let mut out = std::mem::take(&mut self.lock().losses);
        for l in &mut out {
            l.opened = self.opened_at;
        }
        out
    }

    /// Tells every holder to close and collects how each ended; the losses are left
    /// for [`Holders::take_losses`], which must be called after this (`kept` counts
    /// only the connections that ended cleanly).
    pub async fn close(&mut self) -> HeldSummary {
        self.stop.cancel();
        let mut s = HeldSummary {
            opened: self.opened,
            ..HeldSummary::default()
        };
        while let Some(joined) = self.tasks.join_next().await {
            let held = match joined {
                Ok(held) => held,
                Err(e) => {
                    s.add_losses(vec![format!("holder task failed: {e}")]);
                    continue;
                }
            };
            s.exchanges += held.exchanges;
            if !held.lost {
                s.kept += 1;
                let v = held.version.unwrap_or_else(|| "?".to_owned());
                *s.by_version.entry(v).or_insert(0) += 1;
            }
        }
        s
    }
}

async fn hold(
    gateway: SocketAddr,
    index: u64,
    stop: CancellationToken,
    ready: tokio::sync::oneshot::Sender<()>,
    log: Arc<Mutex<Log>>,
) -> Held {
    let mut held = Held {
        version: None,
        exchanges: 0,
        lost: false,
    };
    let mut ready = Some(ready);
    let result = exchange_until_stopped(gateway, index, &stop, &mut held, &mut ready).await;
    if let Err(reason) = result {
        log.lock()
            .unwrap_or_else(|p| p.into_inner())
            .losses
            .push(Loss {
                reason,
                version: held.version.clone(),
                at: Instant::now(),
                opened: Instant::now(),
            });
        held.lost = true;
    }
    held
}

async fn exchange_until_stopped(
    gateway: SocketAddr,
    index: u64,
    stop: &CancellationToken,
    held: &mut Held,
    ready: &mut Option<tokio::sync::oneshot::Sender<()>>,
) -> Result<(), String> {
    let stream = tokio::time::timeout(REPLY_TIMEOUT, TcpStream::connect(gateway))
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| format!("connect failed: {}", e.kind()))?;
    let _ = stream.set_nodelay(true);
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut line = Vec::new();
    let mut n: u64 = 0;
    loop {
        let sent = format!("hold {index} {n}\n");
        w.write_all(sent.as_bytes())
            .await
            .map_err(|e| format!("write failed: {}", e.kind()))?;
        line.clear();
        let read = tokio::time::timeout(REPLY_TIMEOUT, r.read_until(b'\n', &mut line))
            .await
            .map_err(|_| "reply timed out".to_owned())?
            .map_err(|e| format!("read failed: {}", e.kind()))?;
        if read == 0 {
            return Err("closed by the other side".to_owned());
        }
        let version = parse_reply(&line, sent.as_bytes())
            .map_err(|e| format!("bad reply: {e}"))?
            .to_owned();
        match &held.version {
            None => held.version = Some(version),
            Some(first) if *first != version => {
                return Err(format!("moved from {first} to {version}"));
            }
            Some(_) => {}
        }
        held.exchanges += 1;
        n += 1;
        if let Some(tx) = ready.take() {
            let _ = tx.send(());
        }
        // Between exchanges, watch the connection: a close is seen when it happens.
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(EXCHANGE_EVERY) => {}
            got = r.fill_buf() => {
                return Err(match got {
                    Ok([]) => "closed by the other side".to_owned(),
                    Ok(_) => "unexpected bytes between exchanges".to_owned(),
                    Err(e) => format!("read failed: {}", e.kind()),
                });
            }
        }
    }
    // Close our side, then expect a clean end of stream and nothing else.
    w.shutdown()
        .await
        .map_err(|e| format!("close failed: {}", e.kind()))?;
    let mut rest = BytesMut::new();
    let got = tokio::time::timeout(REPLY_TIMEOUT, r.read_buf(&mut rest))
        .await
        .map_err(|_| "the close was not answered".to_owned())?
        .map_err(|e| format!("close failed: {}", e.kind()))?;
    if got != 0 {
        return Err("unexpected bytes after the last reply".to_owned());
    }
    Ok(())
}

/// `checker verify --hold K --hold-for D`: what the long-lived connections opened
/// before sampling did while they were held (the report's `held` section).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeldReport {
    /// Connections asked for (`--hold`).
    pub requested: u64,
    /// Seconds they were held (`--hold-for`, else the sampling time).
    pub hold_for_s: f64,
    /// Connections opened (each was routed and answered its first line).
    pub opened: u64,
    /// Connections that kept exchanging lines until the end, then closed cleanly.
    pub survived: u64,
    /// Connections that ended before (closed or reset by the other side, a wrong or
    /// missing reply).
    pub ended: u64,
    /// When they ended, in seconds after the held connections were opened.
    pub ended_after_s: Option<CutTimes>,
    /// Why they ended, with counts.
    pub reasons: BTreeMap<String, u64>,
    /// Surviving connections per version that answered them.
    pub by_version: BTreeMap<String, u64>,
    /// Lines exchanged over all held connections.
    pub exchanges: u64,
}

/// Holds `count` connections to `target` while `work` (the sampling) runs: opened
/// before it starts, exchanging a line every [`EXCHANGE_EVERY`], and kept until
/// `hold_for` after they were opened (default: until `work` ends); `stop` ends the
/// wait early. With `count` 0 this is just `work`.
pub async fn hold_while<T>(
    target: &str,
    count: usize,
    hold_for: Option<Duration>,
    stop: &CancellationToken,
    work: impl std::future::Future<Output = T>,
) -> Result<(T, Option<HeldReport>), crate::target::TargetError> {
    if count == 0 {
        return Ok((work.await, None));
    }
    let addrs = crate::target::resolve(target).await?;
    let Some(addr) = addrs.first().copied() else {
        return Ok((work.await, None));
    };
    let mut holders = Holders::open(addr, count, stop).await;
    let opened_at = holders.opened_at();
    let out = work.await;
    let until = opened_at + hold_for.unwrap_or_else(|| opened_at.elapsed());
    tokio::select! {
        () = stop.cancelled() => {}
        () = tokio::time::sleep_until(until) => {}
    }
    let held_for = opened_at.elapsed();
    let summary = holders.close().await;
    let mut report = HeldReport {
        requested: count as u64,
        hold_for_s: held_for.as_secs_f64(),
        opened: 0,
        survived: summary.kept,
        ended: 0,
        ended_after_s: None,
        reasons: BTreeMap::new(),
        by_version: summary.by_version,
        exchanges: summary.exchanges,
    };
    for loss in holders.take_losses() {
        // A connection that never answered its first line was never held.
        if loss.version.is_none() && loss.reason.starts_with("connect") {
            continue;
        }
        report.ended += 1;
        *report.reasons.entry(loss.reason).or_insert(0) += 1;
        CutTimes::add(
            &mut report.ended_after_s,
            loss.at.saturating_duration_since(opened_at).as_secs_f64(),
        );
    }
    report.opened = report.survived + report.ended;
    Ok((out, Some(report)))
}
