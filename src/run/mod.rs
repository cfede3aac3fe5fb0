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
use crate::stats::summary::{BreakerEvent, EndedEarly, Mode, Window};
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

    // The measured window is the one asked for: it ends when sending was to stop (or at the
    // last success, if later), even when every connection ended before that (what was left
    // counts as unavailable and ended_early says why). A count run (`-n`) ends when its
    // budget is spent, or when it ended; an interrupted run where the signal stopped it.
    let budget_spent = budget.is_some_and(|b| b.load(Ordering::Relaxed) == 0);
    let from = timing.measure_from;
    let now = clock::now();
    let last = recorder.last_received.unwrap_or(from).max(from);
    let sending_ended = if budget_spent {
        last
    } else if interrupted || plan.requests.is_some() {
        timing.stop_at.min(now)
    } else {
        timing.stop_at
    };
    let end = if budget_spent {
        last
    } else {
        last.max(sending_ended)
    };
    let ended_early =
        (!interrupted && !budget_spent && up > 0 && now < timing.stop_at).then(|| EndedEarly {
            left_s: timing.stop_at.saturating_duration_since(now).as_secs_f64(),
            why: departures(&reports, plan.spec.reconnect.is_none()),
        });
    let duration = end.saturating_duration_since(from);
    let mode = match &plan.schedule {
        None => Mode::Closed,
        Some(s) => Mode::Open {
            target_rps: s.count_at(plan.duration) / plan.duration.as_secs_f64(),
        },
    };
    let transitions = breaker.transitions();
    let events = transitions
        .iter()
        .map(|t| BreakerEvent {
            at_s: signed_secs(t.at, from),
            from: t.from,
            to: t.to,
            holds_requests: t.holds_requests,
        })
        .collect();
    let send_window = sending_ended.saturating_duration_since(from);
    let (unavailable, connect_held) = availability(&transitions, &conn_changes, from, end);
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
        transitions: events,
        unavailable,
        connect_held,
        ended_early,
        request_timeout: plan.spec.timeout,
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

/// Why a run ended before its asked window: what its connections said as they left.
fn departures(reports: &[crate::model::ConnReport], reconnect_off: bool) -> String {
    use crate::model::Departure;
    let count = |d| reports.iter().filter(|r| r.departed == Some(d)).count();
    let (never, closed, paused) = (
        count(Departure::NeverUp),
        count(Departure::ServerClosed),
        count(Departure::Paused),
    );
    let all = reports.len();
    if closed == all {
        let off = if reconnect_off {
            " (--reconnect off)"
        } else {
            ""
        };
        format!("every connection was closed by the server{off}")
    } else if paused == all {
        "the server asked every connection to pause (retry_after) past the end of sending".into()
    } else if reports
        .iter()
        .all(|r| r.rows_ran_out || r.departed.is_some())
    {
        let mut parts = Vec::new();
        for (n, what) in [
            (closed, "closed by the server"),
            (never, "never set up"),
            (paused, "paused past the end"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        let ran_out = reports.iter().filter(|r| r.rows_ran_out).count();
        if ran_out > 0 {
            parts.push(format!("{ran_out} out of --data rows"));
        }
        format!("no connection was left ({})", parts.join(", "))
    } else {
        "every connection ended before the asked time".into()
    }
}

/// Time within [from, end] during which no connection could send (none was up, or an OPEN
/// breaker held requests back), and the time the breaker held connection attempts (OPEN, for
/// whatever cause).
fn availability(
    transitions: &[breaker::Transition],
    conn_changes: &[(Instant, bool)],
    from: Instant,
    end: Instant,
) -> (Duration, Duration) {
    // Replay both event streams in time order and add up the time in each condition.
    // (when, the breaker's new state and whether it holds requests, connections +1/-1)
    type Change = (Instant, Option<(breaker::State, bool)>, i64);
    let mut events: Vec<Change> = transitions
        .iter()
        .map(|t| (t.at, Some((t.to, t.holds_requests)), 0))
        .chain(
            conn_changes
                .iter()
                .map(|(at, open)| (*at, None, if *open { 1 } else { -1 })),
        )
        .collect();
    events.sort_by_key(|e| e.0);
    let (mut open_conns, mut state, mut holds) = (0i64, breaker::State::Closed, false);
    let (mut unavailable, mut held) = (Duration::ZERO, Duration::ZERO);
    let mut last = from;
    for (at, to, delta) in events.into_iter().chain([(end, None, 0)]) {
        let at = at.clamp(from, end);
        let span = at.saturating_duration_since(last);
        let open = state == breaker::State::Open;
        if open_conns <= 0 || (open && holds) {
            unavailable += span;
        }
        if open {
            held += span;
        }
        last = at;
        if let Some((to, h)) = to {
            state = to;
            holds = h;
        }
        open_conns += delta;
    }
    (unavailable, held)
}
