//! The sampler: one fresh TCP connection per sample, with concurrency, optional
//! open-model pacing, a count or a duration, timeouts and classified errors.
//!
//! It knows sockets and time, not statistics: every finished sample is handed to a
//! [`Sink`] as a [`Sample`] and the sink decides what to keep. The sink is called on
//! the sampling task itself (no channel, no task wake-up per sample), so it must be quick.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use crate::error_class::ErrorClass;
use crate::probe::Probe;
pub use crate::probe::buffers::ProbeBuffers;
pub use crate::probe::head::{LINE_SENT, REPLY_HEAD_BYTES, reply_head};

/// One finished sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample id sent in the probe line, unique within a run.
    pub id: u64,
    /// The address connected to.
    pub addr: SocketAddr,
    /// Wall-clock time the sample started (also the timestamp in the probe line).
    pub started_at: SystemTime,
    /// Time since the run started at which the sample started.
    pub offset: Duration,
    /// The version that answered, or why none did.
    pub result: Result<String, ErrorClass>,
    /// Microseconds to establish the connection, when it was established.
    pub connect_us: Option<u64>,
    /// With TLS: microseconds from the connection to the completed handshake.
    pub handshake_us: Option<u64>,
    /// Microseconds from sending the probe to the complete reply, when one arrived.
    pub reply_us: Option<u64>,
    /// With `--rate`: microseconds between the scheduled and the actual start.
    pub lag_us: Option<u64>,
    /// For a malformed or no-version reply: its first bytes, escaped (see [`reply_head`]).
    pub reply_head: Option<String>,
    /// Why the sample failed, when its class alone does not say: the TLS failure, or a
    /// captured value that is no version name. One line, escaped.
    pub reason: Option<String>,
}

/// Where finished samples go.
pub trait Sink: Send + Sync + 'static {
    /// Takes one finished sample; returning false stops this sampling task.
    fn accept(&self, sample: Sample) -> bool;

    /// Sample `id`, begun `offset` after the start, was abandoned in flight by the stop
    /// (its task aborted): it never reaches [`Sink::accept`], though its connection may
    /// have reached the target.
    fn abandoned(&self, _id: u64, _offset: Duration) {}
}

/// Tells the sink about a sample dropped before it finished (see [`Sink::abandoned`]).
struct InFlight<'a, S: Sink> {
    out: &'a S,
    id: u64,
    offset: Duration,
    finished: bool,
}

impl<S: Sink> Drop for InFlight<'_, S> {
    fn drop(&mut self) {
        if !self.finished {
            self.out.abandoned(self.id, self.offset);
        }
    }
}

/// A channel is a sink (handy in tests and for callers that want every sample).
impl Sink for mpsc::UnboundedSender<Sample> {
    fn accept(&self, sample: Sample) -> bool {
        self.send(sample).is_ok()
    }
}

/// Timeouts for one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Longest wait for the connection to be established.
    pub connect: Duration,
    /// Longest wait from sending the probe to the end of the reply line.
    pub reply: Duration,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// What one connection gave: see the fields of [`Sample`] with the same names.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeResult {
    /// Wall-clock start, also the probe line's timestamp.
    pub started_at: SystemTime,
    /// The version that answered, or why none did.
    pub result: Result<String, ErrorClass>,
    /// Microseconds to connect, when connected.
    pub connect_us: Option<u64>,
    /// With TLS: microseconds from connected to the completed handshake.
    pub handshake_us: Option<u64>,
    /// Microseconds from sending to the complete reply, when one arrived.
    pub reply_us: Option<u64>,
    /// For a malformed or no-version reply: its first bytes, escaped.
    pub reply_head: Option<String>,
    /// Why the sample failed, when the class alone does not say.
    pub reason: Option<String>,
}

/// Takes one sample: connect, shake hands when the probe has TLS, exchange, close.
pub async fn probe(
    addr: SocketAddr,
    id: u64,
    probe: &Probe,
    timeouts: Timeouts,
    buffers: &mut ProbeBuffers,
) -> ProbeResult {
    probe_closing(addr, id, probe, timeouts, buffers, false).await
}

/// Like [`probe`]; with `reset_on_close` the connection is closed with a reset
/// (`SO_LINGER` 0) instead of a FIN, which leaves no TIME_WAIT behind (see
/// [`SamplerConfig::reset_on_close`]).
///
/// The TLS handshake is bounded by the connect timeout; the exchange after it by the
/// reply timeout, and the reply time counts from the end of the handshake.
pub async fn probe_closing(
    addr: SocketAddr,
    id: u64,
    probe: &Probe,
    timeouts: Timeouts,
    buffers: &mut ProbeBuffers,
    reset_on_close: bool,
) -> ProbeResult {
    let started_at = SystemTime::now();
    let start = Instant::now();
    let mut taken = ProbeResult {
        started_at,
        result: Err(ErrorClass::Other),
        connect_us: None,
        handshake_us: None,
        reply_us: None,
        reply_head: None,
        reason: None,
    };
    let stream = match tokio::time::timeout(timeouts.connect, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            taken.result = Err(ErrorClass::from_connect_error(&e));
            return taken;
        }
        Err(_) => {
            taken.result = Err(ErrorClass::ConnectTimeout);
            return taken;
        }
    };
    let connected = Instant::now();
    taken.connect_us = Some(micros(connected - start));

    let Some(tls) = probe.tls() else {
        let mut stream = stream;
        let exchanged = probe
            .exchange(&mut stream, id, started_at, timeouts.reply, buffers)
            .await;
        taken.reply_us = exchanged
            .result
            .as_ref()
            .is_ok_and(Option::is_some)
            .then(|| micros(connected.elapsed()));
        if reset_on_close {
            // Best effort: without it the close is an ordinary FIN.
            let _ = stream.set_zero_linger();
        }
        drop(stream);
        taken.result = exchanged
            .result
            .and_then(|v| v.ok_or(ErrorClass::NoVersion));
        taken.reply_head = exchanged.reply_head;
        taken.reason = exchanged.reason;
        return taken;
    };

    if reset_on_close {
        // Set before the handshake, which takes the stream: SO_LINGER acts at the close.
        let _ = stream.set_zero_linger();
    }
    let mut stream = match tls.handshake(stream, timeouts.connect).await {
        Ok(stream) => stream,
        Err(failure) => {
            taken.result = Err(failure.class);
            taken.reason = Some(failure.reason);
            return taken;
        }
    };
    let shaken = Instant::now();
    taken.handshake_us = Some(micros(shaken - connected));
    let from_cert = tls
        .version_from()
        .map(|field| tls.certificate_value(field, &stream));
    let exchanged = probe
        .exchange(&mut stream, id, started_at, timeouts.reply, buffers)
        .await;
    drop(stream);
    if exchanged.result.as_ref().is_ok_and(Option::is_some) {
        taken.reply_us = Some(micros(shaken.elapsed()));
    }
    taken.reply_head = exchanged.reply_head;
    taken.reason = exchanged.reason;
    taken.result = match (exchanged.result, from_cert) {
        (Err(class), _) => Err(class),
        // The probe answered; the certificate names the version.
        (Ok(_), Some(value)) => match value.and_then(|v| probe.name_of(v.as_bytes())) {
            Ok(name) => Ok(name),
            Err(reason) => {
                taken.reason = Some(reason);
                Err(ErrorClass::NoVersion)
            }
        },
        (Ok(Some(version)), None) => Ok(version),
        (Ok(None), None) => Err(ErrorClass::NoVersion),
    };
    taken
}

/// What the sampler is asked to do.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerConfig {
    /// Addresses to connect to, used in turn by sample id.
    pub addrs: Vec<SocketAddr>,
    /// Stop after this many samples.
    pub samples: Option<u64>,
    /// Stop starting samples after this long.
    pub duration: Option<Duration>,
    /// Most samples in flight at once.
    pub concurrency: usize,
    /// Start samples at this fixed rate per second (open model) instead of back to back.
    pub rate: Option<f64>,
    /// Connect and reply timeouts.
    pub timeouts: Timeouts,
    /// Close each connection with a reset (`SO_LINGER` 0) instead of a FIN. A FIN close
    /// leaves a TIME_WAIT socket and a connection-tracking entry for about 120 s per
    /// connection; the rehearsal's tens of thousands of loopback connections would fill
    /// the kernel's table. Real targets keep the graceful close (false).
    pub reset_on_close: bool,
    /// What each sample does once connected (the echo protocol by default), and TLS.
    pub probe: Probe,
}

/// Why sampling stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The requested number of samples was taken.
    Samples,
    /// The requested duration elapsed.
    Duration,
    /// The stop signal (Ctrl-C or SIGTERM) arrived first.
    Interrupted,
    /// At least [`GIVE_UP_AFTER`] connections over at least [`GIVE_UP_SPAN`] all failed
    /// and none was ever established: the target is unreachable, sampling on would only
    /// hammer it.
    Unreachable,
    /// Sequential sampling: the evidence decided every version before the cap.
    Decided,
}

/// Consecutive failed connections, with none established before, after which the
/// sampler gives up on the target (once [`GIVE_UP_SPAN`] has passed too).
pub const GIVE_UP_AFTER: u64 = 100;
/// How long the run must have lasted before the sampler gives up, so that a gateway
/// that refuses for a moment at the start (a listener being replaced) is waited for.
pub const GIVE_UP_SPAN: Duration = Duration::from_secs(3);
/// The first pause of a worker after a failed connection; it doubles per failure in a row.
pub const BACKOFF_FIRST: Duration = Duration::from_millis(10);
/// The longest pause of a worker between failed connections.
pub const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The pause after `streak` failed connections in a row (0 = none): exponential, capped.
pub fn backoff(streak: u32) -> Duration {
    if streak == 0 {
        return Duration::ZERO;
    }
    BACKOFF_FIRST
        .checked_mul(1u32 << (streak - 1).min(16))
        .map_or(BACKOFF_MAX, |d| d.min(BACKOFF_MAX))
}

struct Shared<S> {
    config: SamplerConfig,
    start: Instant,
    deadline: Option<Instant>,
    next_id: AtomicU64,
    stop: CancellationToken,
    out: Arc<S>,
    /// Failed connections in a row, over all workers.
    connect_failures: AtomicU64,
    /// Some connection was established.
    connected_once: AtomicBool,
    /// The sampler gave up: see [`StopReason::Unreachable`].
    gave_up: AtomicBool,
}

impl<S: Sink> Shared<S> {
    fn addr_for(&self, id: u64) -> SocketAddr {
        let n = self.config.addrs.len().max(1) as u64;
        let i = usize::try_from(id % n).unwrap_or(0);
        self.config.addrs[i]
    }

    fn past_deadline(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    fn exhausted(&self, id: u64) -> bool {
        self.config.samples.is_some_and(|n| id >= n) || self.gave_up.load(Ordering::Relaxed)
    }

    /// Notes whether a sample connected; gives up after [`GIVE_UP_AFTER`] failures in a
    /// row when nothing ever connected. Returns whether this sample failed to connect.
    fn note_connect(&self, connected: bool) -> bool {
        if connected {
            self.connected_once.store(true, Ordering::Relaxed);
            self.connect_failures.store(0, Ordering::Relaxed);
            return false;
        }
        let failures = self.connect_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= GIVE_UP_AFTER
            && !self.connected_once.load(Ordering::Relaxed)
            && self.start.elapsed() >= GIVE_UP_SPAN
        {
            self.gave_up.store(true, Ordering::Relaxed);
        }
        true
    }

    /// Takes sample `id`; returns whether it failed to connect, and false as the second
    /// value when the sink wants no more.
    ///
    /// Cancellation is not checked here (that would register with the token on every
    /// poll): the task running this is aborted instead when `stop` fires.
    async fn take(&self, id: u64, lag_us: Option<u64>, buffers: &mut ProbeBuffers) -> (bool, bool) {
        let addr = self.addr_for(id);
        let begun = Instant::now();
        let offset = begun - self.start;
        let mut in_flight = InFlight {
            out: &*self.out,
            id,
            offset,
            finished: false,
        };
        let taken = probe_closing(
            addr,
            id,
            &self.config.probe,
            self.config.timeouts,
            buffers,
            self.config.reset_on_close,
        )
        .await;
        in_flight.finished = true;
        let failed = self.note_connect(taken.connect_us.is_some());
        let sample = Sample {
            id,
            addr,
            started_at: taken.started_at,
            offset,
            result: taken.result,
            connect_us: taken.connect_us,
            handshake_us: taken.handshake_us,
            reply_us: taken.reply_us,
            lag_us,
            reply_head: taken.reply_head,
            reason: taken.reason,
        };
        (failed, self.out.accept(sample))
    }
}

/// Runs the sampler until the count, the duration or `stop`, handing every sample to `out`.
///
/// Samples in flight when `stop` fires are abandoned (their tasks aborted), not reported
/// to [`Sink::accept`]; each is counted by [`Sink::abandoned`].
pub async fn run<S: Sink>(
    config: SamplerConfig,
    stop: CancellationToken,
    out: Arc<S>,
) -> StopReason {
    let start = Instant::now();
    let shared = Arc::new(Shared {
        // A duration beyond what an Instant can hold never ends: no deadline, not a panic.
        deadline: config.duration.and_then(|d| start.checked_add(d)),
        config,
        start,
        next_id: AtomicU64::new(0),
        stop,
        out,
        connect_failures: AtomicU64::new(0),
        connected_once: AtomicBool::new(false),
        gave_up: AtomicBool::new(false),
    });
    match shared.config.rate {
        Some(rate) => run_paced(&shared, rate).await,
        None => run_closed(&shared).await,
    }
    if shared.stop.is_cancelled() {
        StopReason::Interrupted
    } else if shared.gave_up.load(Ordering::Relaxed) {
        StopReason::Unreachable
    } else if shared.past_deadline() {
        StopReason::Duration
    } else {
        StopReason::Samples
    }
}

/// Waits for every task in `tasks`, aborting them all as soon as `stop` fires.
async fn join_or_abort<T: 'static>(tasks: &mut JoinSet<T>, stop: &CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => {
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                return;
            }
            next = tasks.join_next() => {
                if next.is_none() {
                    return;
                }
            }
        }
    }
}

/// Closed model: `concurrency` workers, each starting its next sample when the last ends.
/// A worker whose connections fail pauses before the next one ([`backoff`]), so a
/// refusing target is not hammered as fast as the kernel can refuse.
async fn run_closed<S: Sink>(shared: &Arc<Shared<S>>) {
    let mut workers = JoinSet::new();
    for _ in 0..shared.config.concurrency.max(1) {
        let shared = Arc::clone(shared);
        workers.spawn(async move {
            let mut buffers = ProbeBuffers::default();
            let mut streak = 0u32;
            while !shared.stop.is_cancelled() && !shared.past_deadline() {
                let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
                if shared.exhausted(id) {
                    break;
                }
                let (failed, more) = shared.take(id, None, &mut buffers).await;
                if !more {
                    break;
                }
                streak = if failed { streak.saturating_add(1) } else { 0 };
                let pause = backoff(streak);
                if !pause.is_zero() {
                    let until = Instant::now() + pause;
                    let until = shared.deadline.map_or(until, |d| until.min(d));
                    tokio::time::sleep_until(until).await;
                }
            }
        });
    }
    join_or_abort(&mut workers, &shared.stop).await;
}

/// Open model: sample `i` is due at `start + i / rate` whatever the gateway's speed; a
/// sample that cannot start on time (all `concurrency` slots busy) records its lag.
async fn run_paced<S: Sink>(shared: &Arc<Shared<S>>, rate: f64) {
    let slots = shared.config.concurrency.max(1);
    let semaphore = Arc::new(Semaphore::new(slots));
    let mut pool: Vec<ProbeBuffers> = Vec::new();
    let mut inflight: JoinSet<ProbeBuffers> = JoinSet::new();
    for id in 0u64.. {
        if shared.exhausted(id) {
            break;
        }
        // At absurdly low rates the next start lies beyond what an Instant can hold: it
        // never comes, so only `stop` (or a deadline, necessarily earlier) ends the run.
        let Some(due) = Duration::try_from_secs_f64(id as f64 / rate)
            .ok()
            .and_then(|offset| shared.start.checked_add(offset))
        else {
            if shared.deadline.is_none() {
                shared.stop.cancelled().await;
            }
            break;
        };
        if shared.deadline.is_some_and(|d| due >= d) {
            break;
        }
        let slot = async {
            tokio::time::sleep_until(due).await;
            Arc::clone(&semaphore).acquire_owned().await
        };
        let permit = tokio::select! {
            biased;
            () = shared.stop.cancelled() => break,
            permit = slot => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let lag_us = micros(Instant::now().saturating_duration_since(due));
        while let Some(done) = inflight.try_join_next() {
            if let Ok(buffers) = done {
                pool.push(buffers);
            }
        }
        let mut buffers = pool.pop().unwrap_or_default();
        let shared = Arc::clone(shared);
        inflight.spawn(async move {
            let _ = shared.take(id, Some(lag_us), &mut buffers).await;
            drop(permit);
            buffers
        });
    }
    join_or_abort(&mut inflight, &shared.stop).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn server(reply: fn(&[u8]) -> Vec<u8>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 1024];
                    let Some(len) = read_line(&mut s, &mut buf).await else {
                        return;
                    };
                    let _ = s.write_all(&reply(&buf[..len])).await;
                    let _ = s.read(&mut buf).await;
                });
            }
        });
        addr
    }

    /// Reads into `buf` until it holds a newline; the length read, or `None` on EOF or error.
    async fn read_line(s: &mut TcpStream, buf: &mut [u8]) -> Option<usize> {
        let mut len = 0;
        while !buf[..len].contains(&b'\n') {
            match s.read(&mut buf[len..]).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => len += n,
            }
        }
        Some(len)
    }

    fn timeouts() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(5),
            reply: Duration::from_millis(500),
        }
    }

    #[test]
    fn os_errors_map_to_their_classes() {
        use std::io::Error;
        // Linux errno values: ECONNREFUSED 111, ETIMEDOUT 110, ECONNRESET 104,
        // EADDRNOTAVAIL 99 (no local port left), EPIPE 32, ENETUNREACH 101.
        let connect = |errno| ErrorClass::from_connect_error(&Error::from_raw_os_error(errno));
        let exchange = |errno| ErrorClass::from_exchange_error(&Error::from_raw_os_error(errno));
        assert_eq!(connect(111), ErrorClass::Refused);
        assert_eq!(connect(110), ErrorClass::ConnectTimeout);
        assert_eq!(connect(99), ErrorClass::LocalAddressExhausted);
        assert_eq!(connect(101), ErrorClass::Other);
        assert_eq!(exchange(104), ErrorClass::Reset);
        assert_eq!(exchange(32), ErrorClass::Reset);
        assert_eq!(exchange(110), ErrorClass::ReplyTimeout);
        let names: Vec<&str> = ErrorClass::ALL.iter().map(|c| c.as_str()).collect();
        let json: Vec<String> = ErrorClass::ALL
            .iter()
            .map(|c| {
                serde_json::to_value(c)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(names, json);
        for (i, c) in ErrorClass::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
        }
    }

    #[tokio::test]
    async fn a_correct_echo_gives_its_version() {
        let addr = server(|line| [b"two ".as_slice(), line].concat()).await;
        let taken = probe(
            addr,
            7,
            &Probe::echo(),
            timeouts(),
            &mut ProbeBuffers::default(),
        )
        .await;
        assert_eq!(taken.result, Ok("two".to_owned()));
        assert!(taken.connect_us.is_some() && taken.reply_us.is_some());
    }

    #[tokio::test]
    async fn reset_on_close_ends_the_connection_with_a_reset() {
        // A server that answers one line, then reports how the client closed.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 1024];
                    let Some(len) = read_line(&mut s, &mut buf).await else {
                        return;
                    };
                    let _ = s
                        .write_all(&[b"one ".as_slice(), &buf[..len]].concat())
                        .await;
                    let end = match s.read(&mut buf).await {
                        Ok(0) => "fin",
                        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => "reset",
                        _ => "other",
                    };
                    let _ = tx.send(end);
                });
            }
        });
        for (reset, expected) in [(false, "fin"), (true, "reset")] {
            let taken = probe_closing(
                addr,
                1,
                &Probe::echo(),
                timeouts(),
                &mut ProbeBuffers::default(),
                reset,
            )
            .await;
            assert_eq!(taken.result, Ok("one".to_owned()));
            assert_eq!(rx.recv().await, Some(expected));
        }
    }

    #[tokio::test]
    async fn wrong_echo_and_extra_bytes_are_malformed() {
        let garbage = server(|_| b"HTTP/1.1 400 Bad Request\r\n".to_vec()).await;
        let extra = server(|line| [b"one ".as_slice(), line, b"more\n"].concat()).await;
        for addr in [garbage, extra] {
            let taken = probe(
                addr,
                1,
                &Probe::echo(),
                timeouts(),
                &mut ProbeBuffers::default(),
            )
            .await;
            assert_eq!(taken.result, Err(ErrorClass::MalformedReply));
            assert_eq!(taken.reply_us, None);
        }
    }

    #[tokio::test]
    async fn the_closed_model_takes_exactly_the_count_with_unique_ids() {
        let addr = server(|line| [b"one ".as_slice(), line].concat()).await;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let config = SamplerConfig {
            addrs: vec![addr],
            samples: Some(50),
            duration: None,
            concurrency: 4,
            rate: None,
            timeouts: timeouts(),
            reset_on_close: false,
            probe: Probe::echo(),
        };
        let run = tokio::spawn(run(config, CancellationToken::new(), Arc::new(tx)));
        let mut ids = Vec::new();
        while let Some(s) = rx.recv().await {
            assert_eq!(s.result, Ok("one".to_owned()));
            ids.push(s.id);
        }
        ids.sort_unstable();
        assert_eq!(ids, (0..50).collect::<Vec<_>>());
        assert_eq!(run.await.unwrap(), StopReason::Samples);
    }

    #[tokio::test]
    async fn the_paced_model_records_lag_and_stops_at_the_count() {
        let addr = server(|line| [b"one ".as_slice(), line].concat()).await;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let config = SamplerConfig {
            addrs: vec![addr],
            samples: Some(20),
            duration: None,
            concurrency: 2,
            rate: Some(2000.0),
            timeouts: timeouts(),
            reset_on_close: false,
            probe: Probe::echo(),
        };
        let run = tokio::spawn(run(config, CancellationToken::new(), Arc::new(tx)));
        let mut n = 0;
        while let Some(s) = rx.recv().await {
            assert!(s.lag_us.is_some());
            n += 1;
        }
        assert_eq!(n, 20);
        assert_eq!(run.await.unwrap(), StopReason::Samples);
    }

    #[tokio::test]
    async fn stop_abandons_samples_stuck_in_flight() {
        // A server that accepts and never answers: with a one-hour reply timeout, only the
        // abort on stop can end these runs (the 60 s guard only bounds a failing test).
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        /// Counts the samples abandoned in flight, finished ones go to the channel.
        struct Counting(mpsc::UnboundedSender<Sample>, AtomicU64);
        impl Sink for Counting {
            fn accept(&self, sample: Sample) -> bool {
                self.0.accept(sample)
            }
            fn abandoned(&self, _id: u64, _offset: Duration) {
                self.1.fetch_add(1, Ordering::Relaxed);
            }
        }
        for rate in [None, Some(1000.0)] {
            let (tx, mut rx) = mpsc::unbounded_channel();
            let sink = Arc::new(Counting(tx, AtomicU64::new(0)));
            let stop = CancellationToken::new();
            let config = SamplerConfig {
                addrs: vec![addr],
                samples: None,
                duration: None,
                concurrency: 4,
                rate,
                timeouts: Timeouts {
                    connect: Duration::from_secs(3600),
                    reply: Duration::from_secs(3600),
                },
                reset_on_close: false,
                probe: Probe::echo(),
            };
            let run = tokio::spawn(run(config, stop.clone(), Arc::clone(&sink)));
            tokio::time::sleep(Duration::from_millis(100)).await;
            stop.cancel();
            let reason = tokio::time::timeout(Duration::from_secs(60), run)
                .await
                .expect("the run ended after stop")
                .unwrap();
            assert_eq!(reason, StopReason::Interrupted);
            // Every slot held a sample when the stop came: each is counted as abandoned.
            assert_eq!(sink.1.load(Ordering::Relaxed), 4, "rate {rate:?}");
            drop(sink);
            assert!(rx.recv().await.is_none(), "no sample finished");
        }
    }

    #[tokio::test]
    async fn absurd_durations_and_rates_do_not_panic() {
        let addr = server(|line| [b"one ".as_slice(), line].concat()).await;
        // A duration past the end of representable time: the count ends the run.
        let (tx, mut rx) = mpsc::unbounded_channel();
        let config = SamplerConfig {
            addrs: vec![addr],
            samples: Some(3),
            duration: Some(Duration::from_secs(u64::MAX)),
            concurrency: 1,
            rate: None,
            timeouts: timeouts(),
            reset_on_close: false,
            probe: Probe::echo(),
        };
        let reason = run(config, CancellationToken::new(), Arc::new(tx)).await;
        assert_eq!(reason, StopReason::Samples);
        let mut n = 0;
        while rx.recv().await.is_some() {
            n += 1;
        }
        assert_eq!(n, 3);
        // A rate so low that the second sample is never due: one sample, then stop ends it.
        let (tx, mut rx) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let config = SamplerConfig {
            addrs: vec![addr],
            samples: Some(3),
            duration: None,
            concurrency: 1,
            rate: Some(1e-30),
            timeouts: timeouts(),
            reset_on_close: false,
            probe: Probe::echo(),
        };
        let run = tokio::spawn(run(config, stop.clone(), Arc::new(tx)));
        let first = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .expect("the first sample is due at once");
        assert_eq!(first.map(|s| s.id), Some(0));
        stop.cancel();
        let reason = tokio::time::timeout(Duration::from_secs(60), run)
            .await
            .expect("the run ended after stop")
            .unwrap();
        assert_eq!(reason, StopReason::Interrupted);
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn stop_ends_an_endless_run() {
        let addr = server(|line| [b"one ".as_slice(), line].concat()).await;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let config = SamplerConfig {
            addrs: vec![addr],
            samples: None,
            duration: None,
            concurrency: 2,
            rate: None,
            timeouts: timeouts(),
            reset_on_close: false,
            probe: Probe::echo(),
        };
        let run = tokio::spawn(run(config, stop.clone(), Arc::new(tx)));
        let mut n = 0;
        while rx.recv().await.is_some() {
            n += 1;
            if n == 10 {
                stop.cancel();
            }
        }
        assert_eq!(run.await.unwrap(), StopReason::Interrupted);
    }

    #[test]
    fn backoff_doubles_from_the_first_pause_and_is_capped() {
        assert_eq!(backoff(0), Duration::ZERO);
        assert_eq!(backoff(1), BACKOFF_FIRST);
        assert_eq!(backoff(2), BACKOFF_FIRST * 2);
        assert_eq!(backoff(4), BACKOFF_FIRST * 8);
        assert_eq!(backoff(40), BACKOFF_MAX);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }

    #[tokio::test]
    async fn a_target_that_refuses_everything_is_given_up_on() {
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let (tx, mut rx) = mpsc::unbounded_channel();
        let config = SamplerConfig {
            addrs: vec![addr],
            samples: None,
            duration: Some(Duration::from_secs(3600)),
            concurrency: 4,
            rate: None,
            timeouts: timeouts(),
            reset_on_close: false,
            probe: Probe::echo(),
        };
        // Without giving up this run would last an hour; the guard only bounds a failing test.
        let reason = tokio::time::timeout(
            Duration::from_secs(60),
            run(config, CancellationToken::new(), Arc::new(tx)),
        )
        .await
        .expect("the sampler gave up by itself");
        assert_eq!(reason, StopReason::Unreachable);
        let mut n = 0;
        while let Some(s) = rx.recv().await {
            assert_eq!(s.result, Err(ErrorClass::Refused));
            n += 1;
        }
        assert!(
            (GIVE_UP_AFTER..GIVE_UP_AFTER + 4).contains(&n),
            "{n} samples"
        );
    }
}
