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
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use super::pacer::Pacer;
use super::sample::{ConnReport, Event, Sample, SetupFailure, SetupStamps};
use crate::protocol::{self, Kind, RequestTemplate};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Samples are shipped to the recorder in batches of this size (and at the end).
const BATCH: usize = 1024;
/// Timed-out ids remembered to tell late replies from duplicates; beyond, the set restarts.
const MAX_REMEMBERED_TIMEOUTS: usize = 1 << 20;

/// What every connection of a run shares; read-only except for the atomics.
#[derive(Debug)]
pub struct RunSpec {
    pub url: String,
    pub host: String,
    pub port: u16,
    pub run_id: String,
    pub session_prefix: String,
    pub hello_token: crate::config::Secret,
    pub tool: String,
    pub args: Option<String>,
    pub window: usize,
    pub rate: Option<f64>,
    pub conns: u32,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub drain: Duration,
    pub max_message_size: usize,
}

/// When sending stops: at `at`, on interrupt, or when the request budget is spent.
#[derive(Debug, Clone)]
pub struct Stop {
    pub interrupt: CancellationToken,
    /// Requests left to hand out across all connections (`-n`), if counted.
    pub budget: Option<Arc<AtomicU64>>,
}

impl Stop {
    fn take_ticket(&self) -> bool {
        match &self.budget {
            None => true,
            Some(b) => b
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok(),
        }
    }
}

/// Channels between a connection task and the orchestrator.
pub struct Links {
    pub events: mpsc::UnboundedSender<Event>,
    /// Told once when setup finished, either way.
    pub ready: mpsc::UnboundedSender<()>,
    /// The synchronized start and end of sending, once everyone is ready.
    pub start: watch::Receiver<Option<(Instant, Instant)>>,
}

/// Runs connection `id` to completion and reports what it counted.
pub async fn run(spec: Arc<RunSpec>, id: u32, stop: Stop, mut links: Links) -> ConnReport {
    let mut report = ConnReport {
        id,
        ..ConnReport::default()
    };
    let setup = tokio::select! {
        s = setup(&spec, id) => s,
        _ = stop.interrupt.cancelled() => Err(fail("connect", "interrupted".into(), None, false)),
    };
    let ws = match setup {
        Ok((ws, stamps)) => {
            let _ = links.events.send(Event::Setup(stamps));
            ws
        }
        Err(failure) => {
            report.setup_failure = Some(failure);
            let _ = links.ready.send(());
            return report;
        }
    };
    let _ = links.ready.send(());
    let Ok(start) = links.start.wait_for(Option::is_some).await.map(|s| *s) else {
        return report;
    };
    let (start, stop_at) = start.expect("waited for Some");
    let pacer = match spec.rate {
        Some(rate) => Pacer::fixed(start, rate, id, spec.conns),
        None => Pacer::Closed,
    };
    let id_prefix = format!("{}-{}-", spec.run_id, id);
    let mut load = Load {
        template: RequestTemplate::new(
            &id_prefix,
            &spec.tool,
            spec.args.as_deref(),
            id,
            spec.conns,
        ),
        id_prefix,
        ws,
        spec: &spec,
        window: Window::default(),
        buf: String::with_capacity(256),
        samples: Vec::with_capacity(BATCH),
        events: links.events,
        report,
    };
    load.run(pacer, &stop, stop_at).await;
    load.report
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

/// TCP connect, WebSocket upgrade and hello, all within `connect_timeout`.
async fn setup(spec: &RunSpec, id: u32) -> Result<(Ws, SetupStamps), SetupFailure> {
    let started = Instant::now();
    let deadline = tokio::time::Instant::from_std(started + spec.connect_timeout);
    let timed_out = || format!("timed out after {:?}", spec.connect_timeout);

    let tcp = match tokio::time::timeout_at(
        deadline,
        TcpStream::connect((spec.host.as_str(), spec.port)),
    )
    .await
    {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return Err(fail("connect", e.to_string(), None, false)),
        Err(_) => return Err(fail("connect", timed_out(), None, false)),
    };
    let _ = tcp.set_nodelay(true);
    let tcp_at = Instant::now();

    let ws_config = protocol::ws_config(spec.max_message_size);
    let upgrade = tokio_tungstenite::client_async_with_config(
        spec.url.as_str(),
        MaybeTlsStream::Plain(tcp),
        Some(ws_config),
    );
    let mut ws = match tokio::time::timeout_at(deadline, upgrade).await {
        Ok(Ok((ws, _response))) => ws,
        Ok(Err(e)) => return Err(fail("upgrade", e.to_string(), None, false)),
        Err(_) => return Err(fail("upgrade", timed_out(), None, false)),
    };
    let upgraded = Instant::now();

    let session = format!("{}-{}-{}", spec.session_prefix, spec.run_id, id);
    let hello = protocol::hello_frame(&session, spec.hello_token.expose());
    if let Err(e) = ws.send(Message::text(hello)).await {
        return Err(fail("hello", e.to_string(), None, false));
    }
    loop {
        let msg = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => {
                return Err(fail(
                    "hello",
                    format!("no hello_ack: {}", timed_out()),
                    None,
                    false,
                ));
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
                        let reason = format!(
                            "rejected: {}",
                            c.code.as_deref().unwrap_or("no reason given")
                        );
                        let code = await_close_code(&mut ws).await;
                        return Err(fail("hello", reason, code, true));
                    }
                    // Anything before the ack (a banner, a stray error) is not the ack.
                    _ => continue,
                }
            }
            Message::Close(frame) => {
                let code = frame.map(|f| u16::from(f.code));
                let rejected =
                    code.is_some_and(|c| (4000..=4003).contains(&c) || c == protocol::CLOSE_POLICY);
                let reason = if rejected {
                    "rejected"
                } else {
                    "closed by server"
                };
                return Err(fail("hello", reason.into(), code, rejected));
            }
            _ => continue,
        }
    }
    let acked = Instant::now();
    Ok((
        ws,
        SetupStamps {
            started,
            tcp: tcp_at,
            upgraded,
            acked,
        },
    ))
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
    timed_out: HashSet<u64>,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    intended: Instant,
    sent: Instant,
}

/// What a final reply's id turned out to be.
enum Match {
    InFlight(Slot),
    Late,
    Duplicate,
    Unknown,
}

impl Window {
    fn push(&mut self, slot: Slot) -> u64 {
        let seq = self.next;
        self.slots.push_back(Some(slot));
        self.next += 1;
        self.outstanding += 1;
        seq
    }

    fn take(&mut self, seq: u64) -> Match {
        if seq >= self.next {
            return Match::Unknown;
        }
        let slot = seq
            .checked_sub(self.base)
            .and_then(|i| self.slots.get_mut(i as usize))
            .and_then(Option::take);
        match slot {
            Some(slot) => {
                self.outstanding -= 1;
                while let Some(None) = self.slots.front() {
                    self.slots.pop_front();
                    self.base += 1;
                }
                Match::InFlight(slot)
            }
            None if self.timed_out.remove(&seq) => Match::Late,
            None => Match::Duplicate,
        }
    }

    /// Pops requests sent before `cutoff`; returns how many timed out.
    fn expire(&mut self, cutoff: Instant) -> u64 {
        let mut expired = 0;
        while let Some(front) = self.slots.front() {
            match front {
                Some(slot) if slot.sent > cutoff => break,
                Some(_) => {
                    if self.timed_out.len() >= MAX_REMEMBERED_TIMEOUTS {
                        self.timed_out.clear();
                    }
                    self.timed_out.insert(self.base);
                    self.outstanding -= 1;
                    expired += 1;
                }
                None => {}
            }
            self.slots.pop_front();
            self.base += 1;
        }
        expired
    }

    fn oldest_sent(&self) -> Option<Instant> {
        self.slots.iter().flatten().next().map(|s| s.sent)
    }
}

/// The load phase of one connection.
struct Load<'a> {
    ws: Ws,
    spec: &'a RunSpec,
    template: RequestTemplate,
    id_prefix: String,
    window: Window,
    buf: String,
    samples: Vec<Sample>,
    events: mpsc::UnboundedSender<Event>,
    report: ConnReport,
}

/// Whether the socket is still usable.
type Alive = bool;

impl Load<'_> {
    async fn run(&mut self, mut pacer: Pacer, stop: &Stop, stop_at: Instant) {
        let mut sending = true;
        let mut deadline = stop_at;
        let wake = tokio::time::sleep_until(stop_at.into());
        tokio::pin!(wake);
        let mut wake_at = stop_at;
        loop {
            let now = Instant::now();
            if sending && (now >= stop_at || stop.interrupt.is_cancelled()) {
                sending = false;
                deadline = now + self.spec.drain;
            }
            if let Some(cutoff) = now.checked_sub(self.spec.timeout) {
                self.report.counts.timed_out += self.window.expire(cutoff);
            }
            if sending {
                match self.fill(&mut pacer, stop, now).await {
                    Ok(true) => {}
                    Ok(false) => {
                        // The budget is spent: what is in flight gets the drain.
                        sending = false;
                        deadline = Instant::now() + self.spec.drain;
                    }
                    Err(()) => return self.lost(),
                }
            }
            if !sending && (self.window.outstanding == 0 || now >= deadline) {
                break;
            }

            // Wake for whichever comes first: end of phase, next timeout, next pacer slot.
            let mut target = deadline;
            if let Some(oldest) = self.window.oldest_sent() {
                target = target.min(oldest + self.spec.timeout);
            }
            if sending
                && self.window.outstanding < self.spec.window
                && let Some(due) = pacer.next_due()
            {
                target = target.min(due);
            }
            if target < wake_at || wake.is_elapsed() {
                wake.as_mut().reset(target.into());
                wake_at = target;
            }

            tokio::select! {
                biased;
                msg = self.ws.next() => {
                    if !self.on_message(msg) || !self.read_ready() {
                        return self.lost();
                    }
                }
                _ = &mut wake => {}
                _ = stop.interrupt.cancelled(), if sending => {}
            }
        }
        self.report.counts.unfinished += self.window.outstanding as u64;
        self.flush_samples();
        let ws = &mut self.ws;
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let _ = ws.close(None).await;
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
    }

    /// Sends while the window has room and the pacer allows. `Ok(false)`: budget spent.
    async fn fill(&mut self, pacer: &mut Pacer, stop: &Stop, now: Instant) -> Result<bool, ()> {
        let mut fed = false;
        let mut more = true;
        while self.window.outstanding < self.spec.window {
            let Some(intended) = pacer.due(now) else {
                break;
            };
            if !stop.take_ticket() {
                more = false;
                break;
            }
            self.template.render(self.window.next, &mut self.buf);
            let frame = Message::text(self.buf.as_str());
            if self.ws.feed(frame).await.is_err() {
                return Err(());
            }
            let sent = Instant::now();
            self.window.push(Slot { intended, sent });
            self.report.counts.sent += 1;
            fed = true;
        }
        if fed && self.ws.flush().await.is_err() {
            return Err(());
        }
        Ok(more)
    }

    /// Reads every frame already buffered, without waiting.
    fn read_ready(&mut self) -> Alive {
        while let Some(msg) = self.ws.next().now_or_never() {
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
                self.report.counts.malformed += 1;
                true
            }
            Some(Ok(Message::Close(frame))) => {
                let code = frame.map_or(1005, |f| u16::from(f.code));
                *self.report.close_codes.entry(code).or_default() += 1;
                false
            }
            Some(Ok(_)) => true, // ping/pong: tungstenite answers pings itself
            Some(Err(_)) | None => {
                *self.report.close_codes.entry(1006).or_default() += 1;
                false
            }
        }
    }

    fn on_text(&mut self, text: &str) {
        let received = Instant::now();
        let c = protocol::classify(text);
        let counts = &mut self.report.counts;
        if !c.kind.is_final() {
            match c.kind {
                k if k.is_non_final() => counts.non_final += 1,
                Kind::Malformed | Kind::Binary => counts.malformed += 1,
                _ => counts.unexpected += 1,
            }
            return;
        }
        let Some(id) = c.request_id.as_deref() else {
            if c.kind == Kind::Error {
                // A connection-level error: about no request in particular.
                counts.unexpected += 1;
                let code = c.code.as_deref().unwrap_or("UNKNOWN");
                *self
                    .report
                    .conn_errors_by_code
                    .entry(code.to_owned())
                    .or_default() += 1;
            } else {
                counts.unmatched += 1;
            }
            return;
        };
        let seq = id
            .strip_prefix(self.id_prefix.as_str())
            .and_then(|s| s.parse::<u64>().ok());
        let found = match seq {
            Some(seq) => self.window.take(seq),
            None => Match::Unknown,
        };
        match found {
            Match::InFlight(slot) if c.kind.is_success() => {
                counts.succeeded += 1;
                self.samples.push(Sample {
                    intended: slot.intended,
                    sent: slot.sent,
                    received,
                });
                if self.samples.len() >= BATCH {
                    self.flush_samples();
                }
            }
            Match::InFlight(_) => {
                counts.failed += 1;
                let code = c.code.as_deref().unwrap_or("UNKNOWN");
                *self
                    .report
                    .errors_by_code
                    .entry(code.to_owned())
                    .or_default() += 1;
            }
            Match::Late => counts.late += 1,
            Match::Duplicate => counts.duplicates += 1,
            Match::Unknown => counts.unmatched += 1,
        }
    }

    fn flush_samples(&mut self) {
        if !self.samples.is_empty() {
            let batch = std::mem::replace(&mut self.samples, Vec::with_capacity(BATCH));
            let _ = self.events.send(Event::Samples(batch));
        }
    }

    /// The connection dropped: whatever was in flight is lost.
    fn lost(&mut self) {
        self.report.counts.lost += self.window.outstanding as u64;
        self.window = Window::default();
        self.flush_samples();
    }
}
