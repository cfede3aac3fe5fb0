//! One client connection task: connect, upgrade and hello (each stamped), then the load loop,
//! then drain and close. The loop is the only one there is: a [`Pacer`] decides when to send and
//! [`Stop`] when to stop. It stamps times and classifies frames; it computes no statistics.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{FutureExt as _, SinkExt as _, StreamExt as _};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;

use super::breaker::{Breaker, Call};
use super::pacer::{Pacer, RateSchedule};
use super::sample::{ConnReport, Counts, Event, Sample, SetupFailure, SetupStamps, Tally};
use crate::protocol::{self, Kind, RequestTemplate};
use crate::tls::{self, Stream};

type Ws = WebSocketStream<Stream>;
use crate::wsio::{Duplex, Io};

/// Samples go to the recorder when this many have gathered...
const BATCH: usize = 512;
/// ...or when the oldest is this old, so live progress stays current at low rates.
const BATCH_AGE: Duration = Duration::from_millis(250);
/// Frames read per turn of the loop before it looks at the clock again.
const READ_BATCH: usize = 256;
/// Unanswered ids remembered to tell late replies from duplicates; beyond, the set restarts.
const MAX_REMEMBERED_UNANSWERED: usize = 1 << 20;

/// What every connection of a run shares; read-only except for the atomics.
#[derive(Debug)]
pub struct RunSpec {
    pub url: String,
    pub host: String,
    pub port: u16,
    pub run_id: String,
    pub worker_id: String,
    pub session_prefix: String,
    pub hello_token: crate::config::Secret,
    pub tool: String,
    pub args: Option<String>,
    pub window: usize,
    /// Open loop when set; closed loop otherwise.
    pub schedule: Option<Arc<RateSchedule>>,
    pub conns: u32,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub drain: Duration,
    pub max_message_size: usize,
    pub breaker: Arc<Breaker>,
    /// Reconnect after a drop, with exponential backoff and full jitter.
    pub reconnect: Option<Backoff>,
    /// Client pings: (interval, pong timeout).
    pub ping: Option<(Duration, Duration)>,
    /// Pause a connection's sending for an error's `retry_after`.
    pub honor_retry_after: bool,
    /// Source addresses to connect from, round-robin by connection.
    pub bind_ips: Vec<std::net::IpAddr>,
    /// wss://: the TLS client settings.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Extra upgrade request headers (validated when the config was read).
    pub headers: Vec<(String, String)>,
    pub subprotocol: Option<String>,
    /// `--validate-sample`: which replies to check and against what.
    pub validation: Option<Validation>,
}

/// Sampled response validation, compiled once per run.
#[derive(Debug)]
pub struct Validation {
    pub sample: f64,
    /// JSON Schema for `outputs`; `None` = the echo check.
    pub schema: Option<jsonschema::Validator>,
}

/// Replies described when they fail validation, per connection.
const MAX_EXAMPLES: usize = 3;

impl Validation {
    /// Checks one successful reply. `expected_args` renders what request `seq` was sent with.
    fn check(&self, reply: &str, expected_args: impl FnOnce() -> String) -> Result<(), String> {
        let v: serde_json::Value =
            serde_json::from_str(reply).map_err(|e| format!("reply is not JSON: {e}"))?;
        let outputs = v.get("outputs").ok_or("reply has no outputs")?;
        match &self.schema {
            Some(schema) => match schema.iter_errors(outputs).next() {
                None => Ok(()),
                Some(e) => Err(format!(
                    "outputs do not match the schema: {e} at {}",
                    e.instance_path()
                )),
            },
            None => {
                let text = outputs
                    .get(0)
                    .and_then(|o| o.get("text"))
                    .and_then(|t| t.as_str())
                    .ok_or("echo reply has no outputs[0].text")?;
                let got: serde_json::Value = serde_json::from_str(text)
                    .map_err(|_| format!("echo text is not the arguments: {text:.80}"))?;
                let want: serde_json::Value =
                    serde_json::from_str(&expected_args()).map_err(|e| e.to_string())?;
                if got == want {
                    Ok(())
                } else {
                    Err(format!("echo returned {got:.80} for arguments {want:.80}"))
                }
            }
        }
    }
}

impl RunSpec {
    /// The upgrade request: the URL, plus `--header`s and `--subprotocol`.
    fn request(&self) -> Result<http::Request<()>, tungstenite::Error> {
        let mut req = self.url.as_str().into_client_request()?;
        let headers = req.headers_mut();
        for (name, value) in &self.headers {
            let name = http::HeaderName::from_bytes(name.as_bytes()).map_err(http::Error::from)?;
            let value = http::HeaderValue::from_str(value).map_err(http::Error::from)?;
            headers.append(name, value);
        }
        if let Some(p) = &self.subprotocol {
            let value = http::HeaderValue::from_str(p).map_err(http::Error::from)?;
            headers.insert(http::header::SEC_WEBSOCKET_PROTOCOL, value);
        }
        Ok(req)
    }
}

/// Reconnect backoff: attempt n waits a uniform random time in [0, min(max, base * 2^n)].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    fn delay(&self, attempt: u32, rng: &mut fastrand::Rng) -> Duration {
        let cap = self
            .base
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.max);
        cap.mul_f64(rng.f64())
    }
}

/// When sending stops: at the end of the run, on interrupt, or when the request budget is spent;
/// and when everything stops at once.
#[derive(Debug, Clone)]
pub struct Stop {
    /// The first signal: stop sending, cut the drain to at most [`INTERRUPT_DRAIN`].
    pub interrupt: CancellationToken,
    /// The run's time is up (its bound, or the interrupt's drain): every connection counts what
    /// is still in flight as unfinished and returns its report at once.
    pub end: CancellationToken,
    /// Requests left to hand out across all connections (`-n`), if counted.
    pub budget: Option<Arc<AtomicU64>>,
}

/// The longest drain an interrupted run waits for.
pub const INTERRUPT_DRAIN: Duration = Duration::from_secs(1);
/// The longest a connection waits for the server's close reply after the drain.
const CLOSE_LIMIT: Duration = Duration::from_millis(500);

impl Stop {
    fn take_ticket(&self) -> bool {
        match &self.budget {
            None => true,
            Some(b) => b
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok(),
        }
    }

    /// Resolves on the interrupt or the end, whichever comes first.
    async fn either(&self) {
        tokio::select! {
            _ = self.interrupt.cancelled() => {}
            _ = self.end.cancelled() => {}
        }
    }
}

/// The run's clock, shared by every connection once all are set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Sending starts (warmup first).
    pub start: Instant,
    /// The measured window starts (= start without warmup).
    pub measure_from: Instant,
    /// Sending stops.
    pub stop_at: Instant,
}

/// Channels between a connection task and the orchestrator.
pub struct Links {
    pub events: mpsc::UnboundedSender<Event>,
    /// Told once when setup finished: whether the connection is up.
    pub ready: mpsc::UnboundedSender<bool>,
    /// The run's clock, once everyone is ready.
    pub start: watch::Receiver<Option<Timing>>,
}

/// A set-up connection: the socket, its stamps, and the frames that came before `hello_ack`.
type Established = (Ws, SetupStamps, Vec<Message>);

/// Runs connection `id` to completion and reports what it counted. `setup_delay` spreads
/// connection setup over a ramp-up. A connection that is not up by the synchronized start is
/// reported as failed; with reconnects on it keeps trying (through the breaker) and joins the
/// load when it gets through.
pub async fn run(
    spec: Arc<RunSpec>,
    id: u32,
    setup_delay: Duration,
    stop: Stop,
    mut links: Links,
) -> ConnReport {
    let mut report = ConnReport {
        id,
        ..ConnReport::default()
    };
    let first = tokio::select! {
        s = async {
            tokio::time::sleep(setup_delay).await;
            connect_through_breaker(&spec, id).await
        } => s,
        _ = stop.either() => Err(fail("connect", "interrupted".into(), None, false)),
    };
    let _ = links.ready.send(first.is_ok());
    let timing = tokio::select! {
        t = links.start.wait_for(Option::is_some) => t.ok().and_then(|t| *t),
        _ = stop.end.cancelled() => None,
    };
    let Some(timing) = timing else {
        report.setup_failure = first.err();
        return report;
    };
    let mut pacer = match &spec.schedule {
        Some(schedule) => Pacer::open(schedule.clone(), timing.start, id, spec.conns),
        None => Pacer::Closed,
    };
    let mut tallies = Tallies::new(timing.measure_from, links.events.clone());
    let mut rng = fastrand::Rng::new();
    let (ws, early, retried) = match first {
        Ok((ws, stamps, early)) => {
            let _ = links.events.send(Event::Setup(stamps));
            (ws, early, false)
        }
        Err(failure) => {
            // A refused hello (token, format) fails the same way every time: no retry.
            let retry_it = !failure.rejected;
            report.setup_failure = Some(failure);
            let retried = match spec.reconnect {
                Some(backoff) if retry_it => {
                    let stop_at = timing.stop_at;
                    retry(&spec, id, &stop, stop_at, backoff, &mut rng, &mut report).await
                }
                _ => None,
            };
            match retried {
                Some((ws, stamps, early)) => {
                    let _ = links.events.send(Event::Setup(stamps));
                    (ws, early, true)
                }
                None => {
                    // Never up: its whole share of an open-loop schedule is dropped.
                    let mut idle = Idle {
                        report: &mut report,
                        tallies: &mut tallies,
                        timing,
                    };
                    idle.finish_schedule(&mut pacer, &stop, false).await;
                    tallies.flush();
                    return report;
                }
            }
        }
    };
    report.opened = true;
    let up = if retried {
        Instant::now()
    } else {
        timing.start
    };
    let _ = links.events.send(Event::Conn { at: up, open: true });
    let id_prefix = format!("{}-{}-{}-", spec.run_id, spec.worker_id, id);
    let mut load = Load {
        template: RequestTemplate::new(
            &id_prefix,
            &spec.tool,
            spec.args.as_deref(),
            id,
            spec.conns,
        ),
        id_prefix,
        ws: Duplex::new(ws),
        spec: &spec,
        id,
        timing,
        window: Window::default(),
        blocked_until: timing.start,
        buf: String::with_capacity(256),
        samples: Vec::new(),
        batch_started: timing.start,
        tallies,
        events: links.events,
        report,
        sending: true,
        budget_spent: false,
        interrupted: false,
        deadline: timing.stop_at,
        paused_until: None,
        ping: spec
            .ping
            .map(|(every, timeout)| Pinger::new(every, timeout, timing.start)),
        rng,
        // Connections start their sampling at different points, so 1% means 1% of all.
        sample_credit: f64::from(id) / f64::from(spec.conns.max(1)),
        early: false,
    };
    load.early_frames(early);
    if retried {
        // Came up on a retry: the slots that passed meanwhile were dropped.
        load.resume(&mut pacer, up);
    }
    while let End::Dropped(at) = load.run(&mut pacer, &stop).await {
        let _ = load.events.send(Event::Conn { at, open: false });
        let Some((ws, stamps, early)) = load.reconnect(&stop).await else {
            load.report.resilience.reconnects_abandoned += 1;
            break;
        };
        let up = Instant::now();
        let _ = load.events.send(Event::Setup(stamps));
        let _ = load.events.send(Event::Reconnect { dropped: at, up });
        let _ = load.events.send(Event::Conn { at: up, open: true });
        load.ws = Duplex::new(ws);
        load.early_frames(early);
        load.resume(&mut pacer, up);
    }
    let closed = Instant::now();
    let _ = load.events.send(Event::Conn {
        at: closed,
        open: false,
    });
    let budget_spent = load.budget_spent;
    let mut idle = Idle {
        report: &mut load.report,
        tallies: &mut load.tallies,
        timing,
    };
    idle.finish_schedule(&mut pacer, &stop, budget_spent).await;
    load.tallies.flush();
    load.report
}

/// One connect attempt, if the breaker lets it through, with its outcome told to the breaker.
async fn connect_through_breaker(spec: &RunSpec, id: u32) -> Result<Established, SetupFailure> {
    if !spec.breaker.try_connect() {
        return Err(fail(
            "connect",
            "blocked: circuit breaker open".into(),
            None,
            false,
        ));
    }
    let s = setup(spec, id).await;
    spec.breaker.record(Call::Connect, s.is_ok(), false);
    s
}

/// Connects again with backoff, through the breaker, until `stop_at`; `None` when the run
/// ended (or sending stopped) first. No attempt outlives `stop_at`: a server that accepts TCP
/// and then hangs the upgrade cannot hold the run past its end.
#[allow(
    clippy::too_many_arguments,
    reason = "the connection's parts a retry touches"
)]
async fn retry(
    spec: &RunSpec,
    id: u32,
    stop: &Stop,
    stop_at: Instant,
    backoff: Backoff,
    rng: &mut fastrand::Rng,
    report: &mut ConnReport,
) -> Option<Established> {
    let mut attempt = 0;
    let mut at = Instant::now() + backoff.delay(attempt, rng);
    loop {
        if at >= stop_at {
            return None;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(at.into()) => {}
            _ = stop.either() => return None,
        }
        // Asked right before the attempt: the breaker may have opened during the backoff.
        if !spec.breaker.try_connect() {
            // Open: no attempt at all until the breaker says so.
            at = spec.breaker.retry_at();
            continue;
        }
        report.resilience.reconnect_attempts += 1;
        let result = tokio::select! {
            r = setup(spec, id) => r,
            _ = stop.either() => return None,
            _ = tokio::time::sleep_until(stop_at.into()) => return None,
        };
        spec.breaker.record(Call::Connect, result.is_ok(), false);
        match result {
            Ok(established) => {
                report.resilience.reconnects += 1;
                return Some(established);
            }
            Err(f) => {
                *report.reconnect_failures.entry(f.describe()).or_default() += 1;
                attempt += 1;
                at = Instant::now() + backoff.delay(attempt, rng);
            }
        }
    }
}

fn fail(
    stage: &'static str,
    reason: String,
    close_code: Option<u16>,
    rejected: bool,
) -> SetupFailure {
    SetupFailure {
        stage,
        reason,
        close_code,
        rejected,
    }
}

/// TCP connect, WebSocket upgrade and hello, all within `connect_timeout`. Frames the server
/// sends before its `hello_ack` are kept, to be counted like any other frame.
async fn setup(spec: &RunSpec, id: u32) -> Result<Established, SetupFailure> {
    let started = Instant::now();
    let deadline = tokio::time::Instant::from_std(started + spec.connect_timeout);
    let timed_out = || format!("timed out after {:?}", spec.connect_timeout);

    let tcp = match tokio::time::timeout_at(deadline, tcp_connect(spec, id)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return Err(fail("connect", e.to_string(), None, false)),
        Err(_) => return Err(fail("connect", timed_out(), None, false)),
    };
    let _ = tcp.set_nodelay(true);
    let tcp_at = Instant::now();

    let (stream, tls_at) = match &spec.tls {
        None => (Stream::Plain(tcp), None),
        Some(config) => {
            match tokio::time::timeout_at(deadline, tls::connect(config.clone(), &spec.host, tcp))
                .await
            {
                Ok(Ok(stream)) => (stream, Some(Instant::now())),
                Ok(Err(e)) => return Err(fail("tls", e.to_string(), None, false)),
                Err(_) => return Err(fail("tls", timed_out(), None, false)),
            }
        }
    };
    let request = spec
        .request()
        .map_err(|e| fail("upgrade", e.to_string(), None, false))?;
    let upgrade = tokio_tungstenite::client_async_with_config(
        request,
        stream,
        Some(protocol::ws_config(spec.max_message_size)),
    );
    let mut ws = match tokio::time::timeout_at(deadline, upgrade).await {
        Ok(Ok((ws, _response))) => ws,
        Ok(Err(e)) => return Err(fail("upgrade", e.to_string(), None, false)),
        Err(_) => return Err(fail("upgrade", timed_out(), None, false)),
    };
    let upgraded = Instant::now();

    // Within the protocol's 64 characters: prefix (<= 32) + worker (<= 24) + connection, which
    // stays last so that a server can single out a connection by suffix.
    let session = format!("{}-{}-{}", spec.session_prefix, spec.worker_id, id);
    let hello = protocol::hello_frame(&session, spec.hello_token.expose());
    match tokio::time::timeout_at(deadline, ws.send(Message::text(hello))).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(fail("hello", e.to_string(), None, false)),
        Err(_) => {
            return Err(fail(
                "hello",
                format!("hello not taken: {}", timed_out()),
                None,
                false,
            ));
        }
    }
    let mut early = Vec::new();
    loop {
        let msg = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => {
                let why = format!("no hello_ack: {}", timed_out());
                return Err(fail("hello", why, None, false));
            }
            Ok(None) => return Err(fail("hello", "connection closed".into(), Some(1006), false)),
            Ok(Some(Err(e))) => return Err(fail("hello", e.to_string(), None, false)),
            Ok(Some(Ok(msg))) => msg,
        };
        match msg {
            Message::Text(text) => {
                let c = protocol::classify(text.as_str());
                match c.kind {
                    Kind::HelloAck { ok: true } => break,
                    Kind::HelloAck { ok: false } => {
                        let why = c.code.as_deref().unwrap_or("no reason given");
                        let code = await_close_code(&mut ws).await;
                        return Err(fail("hello", format!("rejected: {why}"), code, true));
                    }
                    // Anything before the ack (a banner, a stray result) is not the ack, but
                    // it is a frame the server sent: counted once the connection is up.
                    _ if early.len() < MAX_EARLY_FRAMES => early.push(Message::Text(text)),
                    _ => {}
                }
            }
            Message::Close(frame) => {
                let code = frame.map(|f| u16::from(f.code));
                // 4000-4003: the server refused this hello (token, format): a setting to fix,
                // not load to measure. 1008 (too many connections) is a connection error.
                let rejected = code.is_some_and(|c| (4000..=4003).contains(&c));
                let why = if rejected || code == Some(protocol::CLOSE_POLICY) {
                    "rejected"
                } else {
                    "closed by server"
                };
                return Err(fail("hello", why.into(), code, rejected));
            }
            Message::Binary(b) if early.len() < MAX_EARLY_FRAMES => early.push(Message::Binary(b)),
            _ => continue,
        }
    }
    let acked = Instant::now();
    let stamps = SetupStamps {
        started,
        tcp: tcp_at,
        tls: tls_at,
        upgraded,
        acked,
    };
    Ok((ws, stamps, early))
}

/// Frames kept from before `hello_ack`; a server that floods them is cut off by the deadline.
const MAX_EARLY_FRAMES: usize = 1024;

/// TCP connect, from the connection's `--bind-ip` address when there are some.
async fn tcp_connect(spec: &RunSpec, id: u32) -> std::io::Result<TcpStream> {
    if spec.bind_ips.is_empty() {
        return TcpStream::connect((spec.host.as_str(), spec.port)).await;
    }
    let local = spec.bind_ips[id as usize % spec.bind_ips.len()];
    let mut last = None;
    for addr in tokio::net::lookup_host((spec.host.as_str(), spec.port)).await? {
        if addr.is_ipv4() != local.is_ipv4() {
            continue;
        }
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.bind(std::net::SocketAddr::new(local, 0))?;
        match socket.connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            format!("no address of the target matches {local}"),
        )
    }))
}

/// After a refused hello the server closes; its close code says why.
async fn await_close_code(ws: &mut Ws) -> Option<u16> {
    let wait = async {
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Close(frame) = msg {
                return frame.map(|f| u16::from(f.code));
            }
        }
        None
    };
    tokio::time::timeout(Duration::from_secs(1), wait)
        .await
        .ok()
        .flatten()
}

/// In-flight requests of one connection, by sequence number. Requests are sent in sequence
/// order, so a ring indexed by `seq - base` finds a reply's slot without hashing or allocating,
/// and its front is always the oldest request (the next to time out).
#[derive(Debug, Default)]
struct Window {
    slots: VecDeque<Option<Slot>>,
    /// Sequence number of `slots[0]`.
    base: u64,
    /// Sequence number the next request gets.
    next: u64,
    outstanding: usize,
    /// Requests that ended without a reply (timed out, lost, unfinished): a reply that still
    /// comes for one is late (once), not a duplicate.
    unanswered: HashSet<u64>,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    scheduled: Instant,
    ready: Instant,
    sent: Instant,
    /// Sent during warmup: counted apart, never sampled.
    warm: bool,
    acked: Option<Instant>,
    first_chunk: Option<Instant>,
    stream_end: Option<Instant>,
}

/// What a final reply's id turned out to be.
enum Match {
    InFlight(Slot),
    Late,
    Duplicate,
    Unknown,
}

impl Window {
    fn push(&mut self, slot: Slot) {
        self.slots.push_back(Some(slot));
        self.next += 1;
        self.outstanding += 1;
    }

    fn get_mut(&mut self, seq: u64) -> Option<&mut Slot> {
        let i = seq.checked_sub(self.base)?;
        self.slots.get_mut(usize::try_from(i).ok()?)?.as_mut()
    }

    fn take(&mut self, seq: u64) -> Match {
        if seq >= self.next {
            return Match::Unknown;
        }
        match self.get_mut(seq).map(|s| *s) {
            Some(slot) => {
                self.slots[(seq - self.base) as usize] = None;
                self.outstanding -= 1;
                while let Some(None) = self.slots.front() {
                    self.slots.pop_front();
                    self.base += 1;
                }
                Match::InFlight(slot)
            }
            None if self.unanswered.remove(&seq) => Match::Late,
            None => Match::Duplicate,
        }
    }

    /// The sequence number of the one request in flight, when exactly one is.
    fn only(&self) -> Option<u64> {
        if self.outstanding != 1 {
            return None;
        }
        let i = self.slots.iter().position(Option::is_some)?;
        Some(self.base + i as u64)
    }

    fn remember_unanswered(&mut self, seq: u64) {
        if self.unanswered.len() >= MAX_REMEMBERED_UNANSWERED {
            self.unanswered.clear();
        }
        self.unanswered.insert(seq);
    }

    /// Pops requests sent at or before `cutoff`, calling `expired` for each.
    fn expire(&mut self, cutoff: Instant, mut expired: impl FnMut(&Slot)) {
        while let Some(front) = self.slots.front() {
            match front {
                Some(slot) if slot.sent > cutoff => break,
                Some(slot) => {
                    expired(slot);
                    let seq = self.base;
                    self.remember_unanswered(seq);
                    self.outstanding -= 1;
                }
                None => {}
            }
            self.slots.pop_front();
            self.base += 1;
        }
    }

    fn oldest_sent(&self) -> Option<Instant> {
        self.slots.iter().flatten().next().map(|s| s.sent)
    }

    /// Empties the window, returning what was in flight; each is remembered as unanswered.
    fn clear(&mut self) -> Vec<Slot> {
        self.outstanding = 0;
        let base = self.base;
        self.base = self.next;
        let slots: Vec<(u64, Slot)> = std::mem::take(&mut self.slots)
            .into_iter()
            .enumerate()
            .filter_map(|(i, s)| s.map(|s| (base + i as u64, s)))
            .collect();
        slots
            .into_iter()
            .map(|(seq, slot)| {
                self.remember_unanswered(seq);
                slot
            })
            .collect()
    }
}

/// Per-second counts of one connection, sent to the recorder when the second turns and at
/// least every [`BATCH_AGE`], so live progress shows what happened even when traffic stops.
struct Tallies {
    measure_from: Instant,
    sec: u32,
    tally: Tally,
    flushed_at: Instant,
    events: mpsc::UnboundedSender<Event>,
}

impl Tallies {
    fn new(measure_from: Instant, events: mpsc::UnboundedSender<Event>) -> Self {
        Tallies {
            measure_from,
            sec: 0,
            tally: Tally::default(),
            flushed_at: Instant::now(),
            events,
        }
    }

    /// The tally of the measured second `at` falls in, flushing the previous one first.
    fn at(&mut self, at: Instant) -> &mut Tally {
        let sec = at.saturating_duration_since(self.measure_from).as_secs() as u32;
        if sec != self.sec {
            self.flush();
            self.sec = sec;
        }
        &mut self.tally
    }

    fn flush(&mut self) {
        self.flushed_at = Instant::now();
        if self.tally != Tally::default() {
            let tally = std::mem::take(&mut self.tally);
            let _ = self.events.send(Event::Tally {
                sec: self.sec,
                tally,
            });
        }
    }

    /// When the tally should next go out, if it holds anything.
    fn due(&self) -> Option<Instant> {
        (self.tally != Tally::default()).then(|| self.flushed_at + BATCH_AGE)
    }
}

/// What a connection without a socket still accounts for: its share of the schedule.
struct Idle<'a> {
    report: &'a mut ConnReport,
    tallies: &'a mut Tallies,
    timing: Timing,
}

impl Idle<'_> {
    /// Counts open-loop slots that fall due by `until` and will never be sent as dropped.
    fn drop_due(&mut self, pacer: &mut Pacer, until: Instant) {
        if !matches!(pacer, Pacer::Open { .. }) {
            return;
        }
        while let Some(slot) = pacer.due(until) {
            if slot < self.timing.measure_from {
                self.report.warmup.dropped += 1;
            } else {
                self.report.counts.dropped += 1;
                self.tallies.at(slot).dropped += 1;
            }
        }
    }

    /// The end of a connection's schedule: every slot due until sending stopped for the run
    /// (its end, or the interrupt) that was not sent is dropped. A connection that ended early
    /// waits for that moment, so the count is exact: scheduled = sent + dropped.
    async fn finish_schedule(&mut self, pacer: &mut Pacer, stop: &Stop, budget_spent: bool) {
        if !matches!(pacer, Pacer::Open { .. }) || budget_spent || pacer.finished() {
            return;
        }
        let stop_at = self.timing.stop_at;
        if Instant::now() < stop_at {
            tokio::select! {
                _ = tokio::time::sleep_until(stop_at.into()) => {}
                _ = stop.either() => {}
            }
        }
        self.drop_due(pacer, Instant::now().min(stop_at));
    }
}

/// The load phase of one connection.
struct Load<'a> {
    ws: Duplex<Stream>,
    spec: &'a RunSpec,
    id: u32,
    timing: Timing,
    template: RequestTemplate,
    id_prefix: String,
    window: Window,
    /// The last moment the connection could not send: window full, or a write flushing.
    blocked_until: Instant,
    buf: String,
    samples: Vec<Sample>,
    batch_started: Instant,
    tallies: Tallies,
    events: mpsc::UnboundedSender<Event>,
    report: ConnReport,
    /// Still in the sending phase (survives reconnects).
    sending: bool,
    /// `-n` ran out: the schedule ended there, nothing after it was dropped.
    budget_spent: bool,
    /// The interrupt has been seen (the drain is cut short once).
    interrupted: bool,
    /// End of the current phase: `stop_at` while sending, then the end of the drain.
    deadline: Instant,
    /// Sending paused until then (an honoured `retry_after`).
    paused_until: Option<Instant>,
    ping: Option<Pinger>,
    rng: fastrand::Rng,
    /// Validation sampler: accumulates the sample share per success, checks at each whole.
    sample_credit: f64,
    /// Frames being counted arrived before `hello_ack`: they go to the measured counts.
    early: bool,
}

/// How a load phase ended.
enum End {
    /// Sending and draining are over.
    Done,
    /// The connection dropped while sending; reconnecting may continue the run.
    Dropped(Instant),
}

/// Client keepalive: one ping at a time, every `every`; no pong within `timeout` = dead.
#[derive(Debug)]
struct Pinger {
    every: Duration,
    timeout: Duration,
    next_at: Instant,
    outstanding: Option<(u64, Instant)>,
    seq: u64,
}

impl Pinger {
    fn new(every: Duration, timeout: Duration, start: Instant) -> Self {
        Pinger {
            every,
            timeout,
            next_at: start + every,
            outstanding: None,
            seq: 0,
        }
    }

    /// When the pinger next needs the loop awake.
    fn wake_at(&self) -> Instant {
        match self.outstanding {
            Some((_, sent)) => sent + self.timeout,
            None => self.next_at,
        }
    }

    fn overdue(&self, now: Instant) -> bool {
        self.outstanding
            .is_some_and(|(_, sent)| now >= sent + self.timeout)
    }
}

/// Whether the socket is still usable.
type Alive = bool;

/// Bytes a connection queues before it waits for the socket to take them: a server that stops
/// reading holds the connection's sending up (its queueing, counted from the schedule), while
/// the connection goes on reading replies.
const WRITE_BACKLOG: usize = 256 << 10;

impl Load<'_> {
    /// Sending stops at `now`: the drain begins, and open-loop slots due by then are dropped.
    fn stop_sending(&mut self, pacer: &mut Pacer, now: Instant) {
        if self.sending {
            self.sending = false;
            self.deadline = now + self.spec.drain;
            if !self.budget_spent {
                self.skip_due(pacer, now.min(self.timing.stop_at));
            }
        }
    }

    /// The first signal: stop sending and give what is in flight at most [`INTERRUPT_DRAIN`].
    fn interrupt(&mut self, pacer: &mut Pacer, now: Instant) {
        if !self.interrupted {
            self.interrupted = true;
            self.stop_sending(pacer, now);
            self.deadline = self.deadline.min(now + INTERRUPT_DRAIN);
        }
    }

    /// Whether sending is held back right now: breaker open, or an honoured `retry_after`.
    fn held(&mut self, now: Instant) -> bool {
        if self.paused_until.is_some_and(|t| now < t) {
            return true;
        }
        self.paused_until = None;
        !self.spec.breaker.allows_request()
    }

    /// Open loop: slots that fall due while sending is held back are not made, but counted.
    fn skip_due(&mut self, pacer: &mut Pacer, until: Instant) {
        Idle {
            report: &mut self.report,
            tallies: &mut self.tallies,
            timing: self.timing,
        }
        .drop_due(pacer, until);
    }

    /// Back on a fresh connection after a reconnect.
    fn resume(&mut self, pacer: &mut Pacer, now: Instant) {
        self.skip_due(pacer, now.min(self.timing.stop_at));
        self.blocked_until = now;
        if let Some(p) = &mut self.ping {
            *p = Pinger::new(p.every, p.timeout, now);
        }
    }

    /// Counts the frames a server sent before its `hello_ack`, like any other frames.
    fn early_frames(&mut self, frames: Vec<Message>) {
        self.early = true;
        for msg in frames {
            self.on_message(Some(Ok(msg)));
        }
        self.early = false;
    }

    /// Runs the load until it is over or the connection drops. Reading never waits on writing:
    /// requests are queued on the socket and flushed as it takes them, while replies are read.
    async fn run(&mut self, pacer: &mut Pacer, stop: &Stop) -> End {
        let stop_at = self.timing.stop_at;
        let wake = tokio::time::sleep_until(self.deadline.into());
        tokio::pin!(wake);
        let mut wake_at = self.deadline;
        loop {
            let now = Instant::now();
            if stop.end.is_cancelled() {
                return self.finish(false).await;
            }
            if stop.interrupt.is_cancelled() {
                self.interrupt(pacer, now);
            }
            if let Some(cutoff) = now.checked_sub(self.spec.timeout) {
                self.expire(cutoff, now);
            }
            if self.ping.as_ref().is_some_and(|p| p.overdue(now)) {
                // No pong in time: the peer is gone even if the socket says otherwise.
                self.report.resilience.pong_timeouts += 1;
                return self.dropped(now);
            }
            // An open-loop schedule ends at `stop_at`, so slots that fell due just before it
            // still go out after the timer wakes late; a closed loop stops at once.
            let held = self.sending && self.held(now);
            if self.sending && (now < stop_at || matches!(pacer, Pacer::Open { .. })) {
                if held {
                    self.skip_due(pacer, now.min(stop_at));
                } else if self.ws.backlog_bytes() < WRITE_BACKLOG {
                    match self.fill(pacer, stop, now.min(stop_at)) {
                        Ok(true) => {}
                        // The budget is spent: what is in flight gets the drain.
                        Ok(false) => {
                            self.budget_spent = true;
                            self.stop_sending(pacer, Instant::now());
                        }
                        Err(()) => return self.dropped(Instant::now()),
                    }
                }
            }
            if self.sending && (now >= stop_at || pacer.finished()) {
                self.stop_sending(pacer, now);
            }
            if !self.sending && (self.window.outstanding == 0 || now >= self.deadline) {
                return self.finish(true).await;
            }
            if let Some(p) = &mut self.ping
                && p.outstanding.is_none()
                && now >= p.next_at
            {
                p.seq += 1;
                p.outstanding = Some((p.seq, now));
                let payload = p.seq.to_be_bytes().to_vec();
                if self.ws.queue(Message::Ping(payload.into())).is_err()
                    || self.ws.try_flush().is_err()
                {
                    return self.dropped(now);
                }
            }
            if self.tallies.due().is_some_and(|t| now >= t) {
                self.tallies.flush();
            }

            // Wake for whichever comes first: end of phase, next timeout, next pacer slot,
            // the keepalive, the end of a hold, the live tally.
            let mut target = self.deadline;
            if let Some(oldest) = self.window.oldest_sent() {
                target = target.min(oldest + self.spec.timeout);
            }
            if self.sending
                && self.window.outstanding < self.spec.window
                && let Some(due) = pacer.next_due()
            {
                target = target.min(due);
            }
            if let Some(p) = &self.ping {
                target = target.min(p.wake_at());
            }
            if let Some(t) = self.tallies.due() {
                target = target.min(t);
            }
            if held {
                let until = self
                    .paused_until
                    .unwrap_or_else(|| self.spec.breaker.retry_at());
                target = target.min(until);
            }
            if target < wake_at || wake.is_elapsed() {
                wake.as_mut().reset(target.into());
                wake_at = target;
            }

            tokio::select! {
                biased;
                io = self.ws.next_io(true) => match io {
                    Io::Frame(msg) => {
                        if !self.on_message(msg) || !self.read_ready() {
                            return self.dropped(Instant::now());
                        }
                    }
                    // The socket took a backlog it could not take at once: what fell due
                    // meanwhile was held up by the server not reading.
                    Io::Flushed => self.blocked_until = Instant::now(),
                    Io::WriteFailed(_) => {
                        *self.report.close_codes.entry(1006).or_default() += 1;
                        return self.dropped(Instant::now());
                    }
                },
                _ = &mut wake => {}
                _ = stop.interrupt.cancelled(), if !self.interrupted => {}
                _ = stop.end.cancelled() => {}
            }
        }
    }

    /// Sending and draining are over: what is still in flight is unfinished. With `close`, the
    /// close handshake follows (briefly): frames that arrive before the server's close reply
    /// are still this run's and are counted; the reply itself is the echo of our own close.
    async fn finish(&mut self, close: bool) -> End {
        for slot in self.window.clear() {
            bucket(&mut self.report, slot.warm).unfinished += 1;
        }
        self.flush_samples();
        if close {
            let mut trailing = Vec::new();
            self.ws
                .close(None, CLOSE_LIMIT, |msg| {
                    if trailing.len() < READ_BATCH {
                        trailing.push(msg)
                    }
                })
                .await;
            for msg in trailing {
                if !matches!(msg, Message::Close(_)) {
                    self.on_message(Some(Ok(msg)));
                }
            }
            self.flush_samples();
        }
        self.tallies.flush();
        End::Done
    }

    /// The connection is gone: in-flight requests are lost; reconnect if still sending.
    fn dropped(&mut self, at: Instant) -> End {
        self.lost();
        self.report.resilience.disconnects += 1;
        self.tallies.flush();
        if self.sending && self.spec.reconnect.is_some() {
            End::Dropped(at)
        } else {
            if !self.sending {
                self.report.resilience.disconnects_after_stop += 1;
            }
            End::Done
        }
    }

    /// Connects again with backoff, through the breaker; `None` when the run ended first.
    async fn reconnect(&mut self, stop: &Stop) -> Option<Established> {
        let backoff = self.spec.reconnect?;
        retry(
            self.spec,
            self.id,
            stop,
            self.timing.stop_at,
            backoff,
            &mut self.rng,
            &mut self.report,
        )
        .await
    }

    /// Queues requests while the window has room, the pacer allows and the socket keeps up.
    /// Never waits. `Ok(false)`: budget spent; `Err`: the connection is unusable.
    fn fill(&mut self, pacer: &mut Pacer, stop: &Stop, now: Instant) -> Result<bool, ()> {
        let mut queued = false;
        let mut more = true;
        while self.window.outstanding < self.spec.window && self.ws.backlog_bytes() < WRITE_BACKLOG
        {
            let Some(scheduled) = pacer.due(now) else {
                break;
            };
            if !stop.take_ticket() {
                more = false;
                break;
            }
            self.template.render(self.window.next, &mut self.buf);
            if self.ws.queue(Message::text(self.buf.as_str())).is_err() {
                return Err(());
            }
            let sent = Instant::now();
            let warm = sent < self.timing.measure_from;
            self.window.push(Slot {
                scheduled,
                ready: scheduled.max(self.blocked_until),
                sent,
                warm,
                acked: None,
                first_chunk: None,
                stream_end: None,
            });
            if warm {
                self.report.warmup.sent += 1;
            } else {
                self.report.counts.sent += 1;
                self.tallies.at(sent).sent += 1;
            }
            queued = true;
        }
        if queued && self.ws.try_flush().is_err() {
            return Err(());
        }
        Ok(more)
    }

    fn expire(&mut self, cutoff: Instant, now: Instant) {
        let was_full = self.window.outstanding >= self.spec.window;
        let mut expired = Vec::new();
        self.window.expire(cutoff, |slot| expired.push(slot.warm));
        for warm in expired {
            self.spec.breaker.record(Call::Request, false, true);
            bucket(&mut self.report, warm).timed_out += 1;
            if !warm {
                self.tallies.at(now).timed_out += 1;
            }
        }
        if was_full && self.window.outstanding < self.spec.window {
            self.blocked_until = now;
        }
    }

    /// Reads the frames already buffered, without waiting; at most a batch, so a server that
    /// floods frames cannot keep the loop from sending, timing out or stopping.
    fn read_ready(&mut self) -> Alive {
        for _ in 0..READ_BATCH {
            let Some(msg) = self.ws.ws.next().now_or_never() else {
                break;
            };
            if !self.on_message(msg) {
                return false;
            }
        }
        true
    }

    fn on_message(&mut self, msg: Option<Result<Message, tungstenite::Error>>) -> Alive {
        match msg {
            Some(Ok(Message::Text(text))) => {
                self.on_text(text.as_str());
                true
            }
            Some(Ok(Message::Binary(_))) => {
                self.frame_counts().malformed += 1;
                true
            }
            Some(Ok(Message::Close(frame))) => {
                let code = frame.map_or(1005, |f| u16::from(f.code));
                *self.report.close_codes.entry(code).or_default() += 1;
                false
            }
            Some(Ok(Message::Pong(payload))) => {
                if let Some(p) = &mut self.ping
                    && let Some((seq, sent)) = p.outstanding
                    && payload.as_ref() == seq.to_be_bytes()
                {
                    p.outstanding = None;
                    p.next_at = sent + p.every;
                    let _ = self.events.send(Event::Pong {
                        sent,
                        received: Instant::now(),
                    });
                }
                true
            }
            Some(Ok(_)) => true, // pings: tungstenite queues the pong and sends it as it reads
            Some(Err(tungstenite::Error::Capacity(_))) => {
                // Over --max-frame-size: the connection cannot go on; 1009 is "message too big".
                self.report.resilience.oversized_frames += 1;
                *self.report.close_codes.entry(1009).or_default() += 1;
                false
            }
            Some(Err(_)) | None => {
                *self.report.close_codes.entry(1006).or_default() += 1;
                false
            }
        }
    }

    /// Frame-level counters go to warmup or measured by when the frame arrived; frames from
    /// before `hello_ack` always count as measured.
    fn frame_counts(&mut self) -> &mut Counts {
        let warm = !self.early && Instant::now() < self.timing.measure_from;
        bucket(&mut self.report, warm)
    }

    /// The sequence number in one of this connection's request ids, only when the id is
    /// byte for byte one it sent: the prefix, then the decimal number as rendered (no sign, no
    /// leading zero, nothing after).
    fn seq_of(&self, id: &str) -> Option<u64> {
        let digits = id.strip_prefix(self.id_prefix.as_str())?;
        let canonical = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits.len() == 1 || !digits.starts_with('0'));
        if canonical { digits.parse().ok() } else { None }
    }

    fn on_text(&mut self, text: &str) {
        let received = Instant::now();
        let c = protocol::classify(text);
        if !c.kind.is_final() {
            if c.kind.is_non_final() {
                self.frame_counts().non_final += 1;
                let slot = c.request_id.as_deref().and_then(|id| self.seq_of(id));
                if let Some(slot) = slot.and_then(|seq| self.window.get_mut(seq)) {
                    let stamp = match c.kind {
                        Kind::CallToolAck => &mut slot.acked,
                        Kind::StreamComplete => &mut slot.stream_end,
                        _ => &mut slot.first_chunk,
                    };
                    stamp.get_or_insert(received);
                }
            } else if matches!(c.kind, Kind::Malformed | Kind::Binary) {
                self.frame_counts().malformed += 1;
            } else {
                self.frame_counts().unexpected += 1;
            }
            return;
        }
        let Some(id) = c.request_id.as_deref() else {
            if c.kind == Kind::Error {
                let code = c.code.as_deref().unwrap_or("UNKNOWN");
                // With one request in flight, an error with no id can only be about that one
                // (PROTOCOL.md section 2); with more, it stays unattributed and the request it
                // rejected ends timed out or unfinished, never a success.
                if let Some(seq) = self.window.only()
                    && let Match::InFlight(slot) = self.window.take(seq)
                {
                    self.spec.breaker.record(Call::Request, false, false);
                    self.honor_retry_after(c.retry_after, received);
                    let code = code.to_owned();
                    self.complete(slot, received, false, Some(&code));
                } else {
                    self.frame_counts().uncorrelated_errors += 1;
                    let code = code.to_owned();
                    *self.report.conn_errors_by_code.entry(code).or_default() += 1;
                }
            } else {
                self.frame_counts().unmatched += 1;
            }
            return;
        };
        let was_full = self.window.outstanding >= self.spec.window;
        let seq = self.seq_of(id);
        let found = match seq {
            Some(seq) => self.window.take(seq),
            None => Match::Unknown,
        };
        match found {
            Match::InFlight(slot) => {
                if was_full {
                    self.blocked_until = received;
                }
                let mut ok = c.kind.is_success();
                let mut code = c.code.as_deref();
                if ok
                    && c.kind == Kind::Result
                    && let (Some(seq), Some(v)) = (seq, &self.spec.validation)
                {
                    self.sample_credit += v.sample;
                    if self.sample_credit >= 1.0 {
                        self.sample_credit -= 1.0;
                        let counts = bucket(&mut self.report, slot.warm);
                        counts.validated += 1;
                        let template = &self.template;
                        let check = v.check(text, || {
                            let mut buf = String::new();
                            template.render_args(seq, &mut buf);
                            buf
                        });
                        if let Err(why) = check {
                            ok = false;
                            code = Some("invalid_reply");
                            if self.report.invalid_examples.len() < MAX_EXAMPLES {
                                self.report.invalid_examples.push(format!("{id}: {why}"));
                            }
                        }
                    }
                }
                self.spec.breaker.record(Call::Request, ok, false);
                if !ok {
                    self.honor_retry_after(c.retry_after, received);
                }
                let code = code.map(str::to_owned);
                self.complete(slot, received, ok, code.as_deref());
            }
            Match::Late => self.frame_counts().late += 1,
            Match::Duplicate => self.frame_counts().duplicates += 1,
            Match::Unknown => self.frame_counts().unmatched += 1,
        }
    }

    /// `--honor-retry-after`: an error's `retry_after` pauses this connection's sending.
    fn honor_retry_after(&mut self, retry_after: Option<f64>, received: Instant) {
        if self.spec.honor_retry_after
            && let Some(secs) = retry_after
        {
            self.paused_until = Some(received + Duration::from_secs_f64(secs.min(3600.0)));
            self.report.resilience.retry_after_pauses += 1;
        }
    }

    fn complete(&mut self, slot: Slot, received: Instant, success: bool, code: Option<&str>) {
        let counts = bucket(&mut self.report, slot.warm);
        if success {
            counts.succeeded += 1;
        } else {
            counts.failed += 1;
        }
        if slot.warm {
            return;
        }
        if success {
            self.tallies.at(received).succeeded += 1;
            if self.samples.is_empty() {
                self.batch_started = received;
            }
            self.samples.push(Sample {
                conn: self.id,
                scheduled: slot.scheduled,
                ready: slot.ready,
                sent: slot.sent,
                received,
                acked: slot.acked,
                first_chunk: slot.first_chunk,
                stream_end: slot.stream_end,
            });
            if self.samples.len() >= BATCH || received - self.batch_started >= BATCH_AGE {
                self.flush_samples();
            }
        } else {
            self.tallies.at(received).failed += 1;
            let code = code.unwrap_or("UNKNOWN").to_owned();
            *self.report.errors_by_code.entry(code).or_default() += 1;
        }
    }

    fn flush_samples(&mut self) {
        if !self.samples.is_empty() {
            let batch = std::mem::take(&mut self.samples);
            let _ = self.events.send(Event::Samples(batch));
        }
    }

    /// The connection dropped: whatever was in flight is lost (a reply that still comes on a
    /// new connection of this session is late, not a duplicate).
    fn lost(&mut self) {
        let now = Instant::now();
        for slot in self.window.clear() {
            bucket(&mut self.report, slot.warm).lost += 1;
            if !slot.warm {
                self.tallies.at(now).lost += 1;
            }
        }
        self.flush_samples();
    }
}

fn bucket(report: &mut ConnReport, warm: bool) -> &mut Counts {
    if warm {
        &mut report.warmup
    } else {
        &mut report.counts
    }
}
