//! Long-lived connections held open through the gateway across a rollout step.
//!
//! Each holder opens one connection, then exchanges a line every
//! [`EXCHANGE_EVERY`] and checks every reply (the line echoed back, and always
//! by the same version: an open connection must never move). When told to stop it
//! closes its side and waits for the gateway to close too. A holder that ends any
//! other way (a reset, an early close, a wrong or moved reply) is *lost*, and the
//! loss is logged the moment it happens ([`Holders::take_losses`]), so that it is
//! reported in the step where it happened even though the set is closed later.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use protocol::parse_reply;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Pause between two exchanges of one holder.
pub const EXCHANGE_EVERY: Duration = Duration::from_millis(25);
/// Longest wait for one reply, or for the close at the end.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// How a set of held connections ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
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
}

impl HeldSummary {
    /// Counts lost connections from their reasons.
    pub fn add_losses(&mut self, reasons: Vec<String>) {
        for r in reasons {
            self.lost += 1;
            *self.reasons.entry(r).or_insert(0) += 1;
        }
    }

    /// Adds another summary to this one.
    pub fn merge(&mut self, other: &HeldSummary) {
        self.opened += other.opened;
        self.kept += other.kept;
        self.lost += other.lost;
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
    lost: Option<String>,
}

/// A set of holders running in the background.
#[derive(Debug)]
pub struct Holders {
    stop: CancellationToken,
    tasks: JoinSet<Held>,
    opened: u64,
    losses: Arc<Mutex<Vec<String>>>,
}

impl Holders {
    /// Opens `count` connections to `gateway`, each exchanging its first line before
    /// this returns, so every one of them is routed and open when the step changes things.
    pub async fn open(gateway: SocketAddr, count: usize, stop_all: &CancellationToken) -> Self {
        let mut holders = Self {
            stop: stop_all.child_token(),
            tasks: JoinSet::new(),
            opened: 0,
            losses: Arc::new(Mutex::new(Vec::new())),
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
            let (stop, losses) = (self.stop.clone(), Arc::clone(&self.losses));
            self.tasks.spawn(hold(gateway, index, stop, tx, losses));
            ready.push(rx);
        }
        for rx in ready {
            let _ = rx.await;
        }
    }

    /// The reasons of the connections lost since the last call.
    pub fn take_losses(&self) -> Vec<String> {
        std::mem::take(&mut *self.losses.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Tells every holder to close and collects how each ended; the losses counted are
    /// those not already taken with [`Holders::take_losses`].
    pub async fn close(mut self) -> HeldSummary {
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
            if held.lost.is_none() {
                s.kept += 1;
                let v = held.version.unwrap_or_else(|| "?".to_owned());
                *s.by_version.entry(v).or_insert(0) += 1;
            }
        }
        s.add_losses(self.take_losses());
        s
    }
}

async fn hold(
    gateway: SocketAddr,
    index: u64,
    stop: CancellationToken,
    ready: tokio::sync::oneshot::Sender<()>,
    losses: Arc<Mutex<Vec<String>>>,
) -> Held {
    let mut held = Held {
        version: None,
        exchanges: 0,
        lost: None,
    };
    let mut ready = Some(ready);
    let result = exchange_until_stopped(gateway, index, &stop, &mut held, &mut ready).await;
    if let Err(reason) = result {
        losses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(reason.clone());
        held.lost = Some(reason);
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
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(EXCHANGE_EVERY) => {}
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
