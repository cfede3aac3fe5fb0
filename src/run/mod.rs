//! The load engine: runs a [`Plan`] and measures it. Spawns the connection tasks and the
//! recorder, releases every connection at one synchronized start, bounds the run, and folds the
//! reports into a [`Summary`]. It knows no configuration, gate or output: the `run` command
//! (`app/run.rs`) builds the plan, judges the summary and writes the reports.

pub mod breaker;
pub mod clock;
pub mod connection;
pub mod mix;
pub mod pacer;
pub mod probe;
pub mod selfcheck;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::model::ClientCheck;
use crate::stats::summary::{BreakerEvent, Mode, Window};
use crate::stats::{Recorders, Summary};
use connection::{Links, RunSpec, Stop, Timing};
use pacer::RateSchedule;
use selfcheck::{CpuMark, ThreadSet};

/// What the engine runs: the connections' shared spec and the run's shape.
pub struct Plan {
    pub spec: Arc<RunSpec>,
    /// The URL loaded, as reports show it.
    pub target: String,
    /// Whether that is the embedded reference server.
    pub embedded: bool,
    /// Open loop: the measured window's schedule (the spec's includes the warmup).
    pub schedule: Option<RateSchedule>,
    /// Ramp-up: connection n starts its setup n x this after the first.
    pub connect_spacing: Duration,
    pub warmup: Duration,
    pub duration: Duration,
    pub drain: Duration,
    /// Stop after this many requests (all connections together).
    pub requests: Option<u64>,
    /// A synchronized start across workers.
    pub start_at: Option<SystemTime>,
}

/// How long after the drain connections get to close before the run ends regardless.
const END_SLACK: std::time::Duration = std::time::Duration::from_millis(500);

/// Fires `end` at `at`, or [`connection::INTERRUPT_DRAIN`] + [`END_SLACK`] after an interrupt.
async fn end_at(at: Instant, interrupt: CancellationToken, end: CancellationToken) {
    tokio::select! {
        _ = tokio::time::sleep_until(at.into()) => {}
        _ = interrupt.cancelled() => {
            let cut = clock::now() + connection::INTERRUPT_DRAIN + END_SLACK;
            tokio::time::sleep_until(cut.min(at).into()).await;
        }
    }
    end.cancel();
}

/// Runs the load the plan describes and measures it: spawns the connection tasks and the
/// recorder, releases every connection at one synchronized start, bounds the run, and folds the
/// connections' reports into a [`Summary`]. `recorders` take the stamps (live progress may read
/// them meanwhile); `started` the run's
/// clock once load begins (for live progress). Judges nothing and writes nothing.
pub async fn execute(
    plan: &Plan,
    interrupt: CancellationToken,
    excluded: Option<ThreadSet>,
    recorders: Recorders,
    started: oneshot::Sender<Timing>,
) -> anyhow::Result<Summary> {
    let rss_before = selfcheck::current_rss_kb();
    let spec = plan.spec.clone();
    let breaker = spec.breaker.clone();
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let (start_tx, start_rx) = watch::channel(None);
    let budget = plan.requests.map(|n| Arc::new(AtomicU64::new(n)));
    let stop = Stop {
        interrupt: interrupt.clone(),
        end: CancellationToken::new(),
        budget: budget.clone(),
    };

    let mut tasks = JoinSet::new();
    for id in 0..plan.spec.conns {
        let links = Links {
            events: recorders.shard(),
            ready: ready_tx.clone(),
            start: start_rx.clone(),
        };
        let delay = plan.connect_spacing * id;
        tasks.spawn(connection::run(
            spec.clone(),
            id,
            delay,
            stop.clone(),
            links,
        ));
    }
    drop((ready_tx, start_rx));

    // Everyone connects first; load starts for all at once, so setup never counts as load.
    // Each connection reports within its ramp-up delay + --connect-timeout, whatever happens.
    let mut up = 0u32;
    for _ in 0..plan.spec.conns {
        match ready_rx.recv().await {
            Some(ok) => up += u32::from(ok),
            None => break,
        }
    }
    if up == 0 {
        // Nothing to measure: the run could not run, and says so now rather than retrying
        // for the whole duration. (With some connections up, failed ones keep retrying.)
        stop.end.cancel();
    }
    // A synchronized start across workers: everyone is connected; wait for the agreed instant.
    if let Some(at) = plan.start_at.filter(|_| up > 0) {
        match at.duration_since(SystemTime::now()) {
            Ok(wait) => {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = interrupt.cancelled() => {}
                }
            }
            Err(late) => {
                tracing::warn!(late = ?late.duration(), "--start-at has already passed; starting now")
            }
        }
    }
    let start = clock::now();
    let cpu_start = CpuMark::now(excluded.as_ref());
    let rss_connected = selfcheck::current_rss_kb();
    let timing = Timing {
        start,
        measure_from: start + plan.warmup,
        stop_at: start + plan.warmup + plan.duration,
    };
    let started_at = SystemTime::now() + plan.warmup;
    // Sent before the start is released, so the recorder knows the window before any sample.
    recorders.measure_from(timing.measure_from);
    let _ = start_tx.send(Some(timing));
    // The run's bound: sending, the drain, then a little for closes. An interrupt cuts it to
    // the interrupt's drain. Past it every connection stops at once and reports.
    // A ramp-down (--close-rate) adds its length and one close's wait.
    let ramp_down = plan.spec.close_rate.map_or(Duration::ZERO, |rate| {
        Duration::from_secs_f64(f64::from(plan.spec.conns) / rate) + connection::CLOSE_LIMIT
    });
    let hard_end = timing.stop_at + plan.drain + ramp_down + END_SLACK;
    let watchdog = tokio::spawn(end_at(hard_end, interrupt.clone(), stop.end.clone()));
    let _ = started.send(timing);

    let mut reports = Vec::with_capacity(plan.spec.conns as usize);
    while let Some(joined) = tasks.join_next().await {
        reports.push(joined.context("a connection task failed")?);
    }
    watchdog.abort();
    let cpu = cpu_start.until(&CpuMark::now(excluded.as_ref()));
    let load_wall = start.elapsed();
    let interrupted = interrupt.is_cancelled();
    let recorder = recorders.finish();
    let conn_changes = recorder.conn_changes.clone();

    // The measured window ends when sending stopped, or at the last success if later; in
    // count mode it ends at the last success (sending stopped when the budget ran out).
    let budget_spent = budget.is_some_and(|b| b.load(Ordering::Relaxed) == 0);
    let from = timing.measure_from;
    let last = recorder.last_received.unwrap_or(from).max(from);
    let end = if budget_spent {
        last
    } else {
        last.max(timing.stop_at.min(clock::now()))
    };
    let duration = end.saturating_duration_since(from);
    let mode = match &plan.schedule {
        None => Mode::Closed,
        Some(s) => Mode::Open {
            target_rps: s.count_at(plan.duration) / plan.duration.as_secs_f64(),
        },
    };
    let transitions = breaker
        .transitions()
        .into_iter()
        .map(|t| BreakerEvent {
            at_s: signed_secs(t.at, from),
            from: t.from,
            to: t.to,
        })
        .collect();
    let send_window = if budget_spent {
        duration
    } else {
        timing
            .stop_at
            .min(clock::now())
            .saturating_duration_since(from)
    };
    let window = Window {
        target: plan.target.clone(),
        embedded: plan.embedded,
        mode,
        duration,
        send_window,
        warmup_duration: plan.warmup,
        measured_from: from,
        started_at,
        interrupted,
        transitions,
        unavailable: unavailable(&breaker.transitions(), &conn_changes, from, end),
        versions: std::mem::take(
            &mut *plan.spec.versions.lock().unwrap_or_else(|e| e.into_inner()),
        ),
        tools: plan.spec.mix.stat_names(),
    };
    let summary = Summary::build(window, &reports, recorder, |summary| {
        // Per connection only when some opened: memory over none is no figure.
        let opened = summary.connections_opened as f64;
        let rss_per_conn = match (rss_before, rss_connected) {
            (Some(a), Some(b)) if opened > 0.0 => Some(b.saturating_sub(a) as f64 / opened),
            _ => None,
        };
        let open_loop = match summary.mode {
            Mode::Open { target_rps } => Some((
                crate::stats::summary::percentile_ms(&summary.histograms.client_lag, 99.0),
                target_rps,
                summary.send_rate(),
            )),
            Mode::Closed => None,
        };
        let completed = summary.counts.succeeded
            + summary.counts.failed
            + summary.warmup.succeeded
            + summary.warmup.failed;
        ClientCheck::judge(cpu, load_wall, completed, rss_per_conn, open_loop)
    });
    Ok(summary)
}

/// Seconds from `origin` to `at`, negative when `at` came first.
fn signed_secs(at: Instant, origin: Instant) -> f64 {
    if at >= origin {
        at.duration_since(origin).as_secs_f64()
    } else {
        -origin.duration_since(at).as_secs_f64()
    }
}

/// Time within [from, end] when the target was unavailable: the breaker was OPEN, or no
/// connection was up.
fn unavailable(
    transitions: &[breaker::Transition],
    conn_changes: &[(Instant, bool)],
    from: Instant,
    end: Instant,
) -> std::time::Duration {
    // Replay both event streams in time order and add up the time spent unavailable.
    let mut events: Vec<(Instant, Option<breaker::State>, i64)> = transitions
        .iter()
        .map(|t| (t.at, Some(t.to), 0))
        .chain(
            conn_changes
                .iter()
                .map(|(at, open)| (*at, None, if *open { 1 } else { -1 })),
        )
        .collect();
    events.sort_by_key(|e| e.0);
    let (mut open_conns, mut state) = (0i64, breaker::State::Closed);
    let mut total = std::time::Duration::ZERO;
    let mut last = from;
    let down = |state, conns| state == breaker::State::Open || conns <= 0;
    for (at, to, delta) in events {
        let at = at.clamp(from, end);
        if down(state, open_conns) {
            total += at.saturating_duration_since(last);
        }
        last = at;
        if let Some(to) = to {
            state = to;
        }
        open_conns += delta;
    }
    if down(state, open_conns) {
        total += end.saturating_duration_since(last);
    }
    total
}
