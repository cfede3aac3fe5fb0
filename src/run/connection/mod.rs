//! One client connection task: connect, upgrade and hello (each stamped), then the load loop,
//! then drain and close. The loop is the only one there is: a [`Pacer`] decides when to send and
//! [`Stop`] when to stop. It stamps times and classifies frames; it computes no statistics.
//!
//! One concern per file: `setup` (TCP, TLS, upgrade, hello), `reconnect` (backoff through the
//! breaker), `window` (requests in flight by sequence number), `keepalive` (client pings),
//! `validate` (sampled reply checks), `account` (per-second tallies and the schedule's dropped
//! slots), `load` (the loop: send, read, time out, drain, close) and `replies` (what a frame
//! means for the requests in flight). This file holds what they share and the task itself.

mod account;
mod ending;
mod keepalive;
mod load;
mod reconnect;
mod replies;
mod setup;
mod validate;
mod window;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::breaker::Breaker;
use super::pacer::{Pacer, RateSchedule};
use crate::model::{ConnReport, Counts, Event, SetupStamps};
use crate::run::clock;
use crate::stats::Shard;
use crate::wsio::{BoxIo, Duplex};
use account::{Idle, Tallies};
use keepalive::Pinger;
use load::{End, Load};
use reconnect::{connect_through_breaker, retry};
use setup::fail;
use window::Window;

pub use reconnect::Backoff;
pub use validate::Validation;

type Ws = BoxIo;

/// Samples go to the recorder when this many have gathered...
const BATCH: usize = 512;
/// ...or when the oldest is this old, so live progress stays current at low rates.
const BATCH_AGE: Duration = Duration::from_millis(250);
/// Frames read per turn of the loop before it looks at the clock again.
const READ_BATCH: usize = 256;

/// What every connection of a run shares; read-only except for the atomics.
#[derive(Debug)]
pub struct RunSpec {
    pub url: String,
    pub host: String,
    pub port: u16,
    pub run_id: String,
    pub worker_id: String,
    pub session_prefix: String,
    pub hello_token: crate::net::secret::Secret,
    /// The dialect spoken: how a session opens, how calls are written, what replies mean.
    pub wire: Arc<dyn crate::protocol::Wire>,
    /// The protocol versions servers chose, by sessions (MCP's `initialize` answers).
    pub versions: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
    /// What each request calls.
    pub mix: crate::run::mix::Mix,
    /// `--data`: the rows requests take their `{{row.<column>}}` text from.
    pub data: Option<crate::protocol::rows::Data>,
    pub window: usize,
    /// Open loop when set; closed loop otherwise.
    pub schedule: Option<Arc<RateSchedule>>,
    pub conns: u32,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub drain: Duration,
    /// Ramp-down: after the drain, connections close at this many per second (by id) rather
    /// than all at once.
    pub close_rate: Option<f64>,
    pub max_message_size: usize,
    pub breaker: Arc<Breaker>,
    /// Reconnect after a drop, with exponential backoff and full jitter.
    pub reconnect: Option<Backoff>,
    /// Client pings: (interval, pong timeout).
    pub ping: Option<(Duration, Duration)>,
    /// Pause a connection's sending for an error's `retry_after`, at most this long
    /// (`--retry-after honor`, `--retry-after-max`); `None` ignores it.
    pub retry_after: Option<Duration>,
    /// Whose failure an error frame without a request id is.
    pub uncorrelated: crate::protocol::Uncorrelated,
    /// `url` is http://: MCP's Streamable HTTP, each message a POST.
    pub http: bool,
    /// Streamable HTTP over HTTP/2.
    pub http2: bool,
    /// stdio: the server command each connection spawns (instead of connecting to `url`).
    pub command: Option<String>,
    /// stdio: where the spawned servers' stderr goes.
    pub stderr_log: Option<std::path::PathBuf>,
    /// Source addresses to connect from, round-robin by connection.
    pub bind_ips: Vec<std::net::IpAddr>,
    /// wss://: the TLS client settings.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Extra upgrade request headers (validated when the config was read).
    pub headers: Vec<(String, String)>,
    pub subprotocol: Option<String>,
    /// `--validate-sample`: which replies to check and against what.
    pub validation: Option<Validation>,
    /// `--check isolation`: the JSON pointer, in each successful result's text, of the value
    /// that must be the request's own id.
    pub isolation: Option<String>,
    /// `--check consistent`: each call's reference result text (set before load by a probe
    /// session): a different one is `divergent`.
    pub consistent: Option<std::sync::OnceLock<Vec<String>>>,
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
pub(crate) const CLOSE_LIMIT: Duration = Duration::from_millis(500);

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
    /// The recorder this connection's stamps go to.
    pub events: Shard,
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
            // Boxed: the setup's state (TLS, upgrade, hello) is freed once it is done, instead
            // of sizing every connection's task for it for the whole run.
            Box::pin(connect_through_breaker(&spec, id)).await
        } => s,
        _ = stop.either() => Err(fail(
            "connect",
            "interrupted".into(),
            None,
            crate::model::SetupKind::Interrupted,
        )),
    };
    match &first {
        Ok(_) => tracing::debug!(conn = id, "connected"),
        Err(f) => tracing::info!(conn = id, "connection failed: {}", f.describe()),
    }
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
            links.events.record(Event::Setup(stamps));
            (ws, early, false)
        }
        Err(failure) => {
            // A refused hello (token, format) fails the same way every time: no retry.
            let retry_it = !failure.rejected();
            report.setup_failure = Some(failure);
            let retried = match spec.reconnect {
                Some(backoff) if retry_it => {
                    let stop_at = timing.stop_at;
                    Box::pin(retry(
                        &spec,
                        id,
                        &stop,
                        stop_at,
                        backoff,
                        &mut rng,
                        &mut report,
                    ))
                    .await
                }
                _ => None,
            };
            match retried {
                Some((ws, stamps, early)) => {
                    links.events.record(Event::Setup(stamps));
                    (ws, early, true)
                }
                None => {
                    // Never up: its whole share of an open-loop schedule is dropped.
                    report.departed = Some(crate::model::Departure::NeverUp);
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
    let up = if retried { clock::now() } else { timing.start };
    let id_prefix = format!("{}-{}-{}-", spec.run_id, spec.worker_id, id);
    let mut load = Load {
        templates: spec
            .mix
            .calls()
            .iter()
            .map(|c| {
                let t = spec
                    .wire
                    .template(&id_prefix, &c.tool, c.args.as_deref(), id, spec.conns);
                match &spec.data {
                    // Columns were checked when the configuration was read.
                    Some(d) => t.with_data(d.clone()).unwrap_or_else(|_| {
                        spec.wire
                            .template(&id_prefix, &c.tool, c.args.as_deref(), id, spec.conns)
                    }),
                    None => t,
                }
            })
            .collect(),
        previous: None,
        id_prefix,
        ws: Duplex::new(ws),
        spec: &spec,
        id,
        timing,
        window: Window::default(),
        blocked_until: timing.start,
        unflushed_from: None,
        buf: String::with_capacity(256),
        samples: Vec::new(),
        batch_started: timing.start,
        tallies,
        events: links.events,
        latency: None,
        report,
        sending: true,
        budget_spent: false,
        interrupted: false,
        deadline: timing.stop_at,
        paused_until: None,
        ping: spec.ping.map(|(every, timeout)| {
            let phase = f64::from(id + 1) / f64::from(spec.conns.max(1));
            Pinger::new(every, timeout, timing.start, phase)
        }),
        rng,
        // Connections start their sampling at different points, so 1% means 1% of all.
        sample_credit: f64::from(id) / f64::from(spec.conns.max(1)),
        early: false,
        peer_closed: false,
        up_since: None,
        counted: stop.budget.is_some(),
        pending_blame: Vec::new(),
    };
    load.conn_event(up, true);
    load.early_frames(early);
    if retried {
        // Came up on a retry: the slots that passed meanwhile were dropped.
        load.resume(&mut pacer, up);
    }
    while let End::Dropped(at) = load.run(&mut pacer, &stop).await {
        load.conn_event(at, false);
        let Some((ws, stamps, early)) = load.reconnect(&stop).await else {
            load.report.resilience.reconnects_abandoned += 1;
            break;
        };
        let up = clock::now();
        load.events.record(Event::Setup(stamps));
        load.events.record(Event::Reconnect { dropped: at, up });
        load.conn_event(up, true);
        load.ws = Duplex::new(ws);
        load.early_frames(early);
        load.resume(&mut pacer, up);
    }
    load.conn_event(clock::now(), false);
    let budget_spent = load.budget_spent;
    let mut idle = Idle {
        report: &mut load.report,
        tallies: &mut load.tallies,
        timing,
    };
    idle.finish_schedule(&mut pacer, &stop, budget_spent).await;
    load.tallies.flush();
    if let Some(h) = load.latency.as_ref().filter(|h| !h.is_empty()) {
        load.report.p99_ms = Some(h.value_at_quantile(0.99) as f64 / 1e3);
    }
    load.report
}

/// One session set up outside a run (the tool probe): the transport after the hello.
pub async fn open_session(spec: &RunSpec) -> Result<BoxIo, String> {
    setup::setup(spec, 0)
        .await
        .map(|(io, _, _)| io)
        .map_err(|f| f.describe())
}

fn bucket(report: &mut ConnReport, warm: bool) -> &mut Counts {
    if warm {
        &mut report.warmup
    } else {
        &mut report.counts
    }
}
