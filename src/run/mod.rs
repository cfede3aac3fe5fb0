//! Orchestrates `wsbench run`: starts the embedded server if asked, spawns the connection tasks
//! and the recorder, releases every connection at one synchronized start, collects their
//! reports into a [`Summary`], applies the gate and picks the [`Outcome`].

pub mod breaker;
pub mod connection;
pub mod pacer;
pub mod selfcheck;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{RunConfig, Target, WsUrl};
use crate::error::ConfigError;
use crate::gate::{self, Verdict};
use crate::model::Event;
use crate::outcome::Outcome;
use crate::serve::{Server, StatsSnapshot};
use crate::stats::recorder::Live;
use crate::stats::summary::{BreakerEvent, Mode};
use crate::stats::{Recorder, Summary};
use breaker::Breaker;
use connection::{Links, RunSpec, Stop, Timing};
use selfcheck::{ClientCheck, CpuMark, ThreadSet};

/// Everything a finished run produced; what the reporters render.
#[derive(Debug)]
pub struct RunResult {
    pub config: RunConfig,
    pub run_id: String,
    pub summary: Summary,
    pub verdicts: Vec<Verdict>,
    pub outcome: Outcome,
    /// Why the run could not run or was cut short, when it was.
    pub reason: Option<String>,
    /// The embedded server's own counters, for embedded runs.
    pub server: Option<StatsSnapshot>,
    /// A merge: one row per worker.
    pub workers: Vec<crate::merge::WorkerRow>,
    /// `--baseline`: this run side by side with the previous one.
    pub baseline: Option<gate::baseline::BaselineReport>,
}

/// The `run` subcommand: run, write every report, return the outcome.
pub async fn main(config: RunConfig) -> anyhow::Result<Outcome> {
    let per_conn = if config.target == Target::Embedded {
        2
    } else {
        1
    };
    crate::resources::ensure_sockets(u64::from(config.conns) * per_conn)?;
    for target in config.outputs.targets() {
        crate::report::check_writable(Some(target))?;
    }
    if config.tls.insecure {
        eprintln!(
            "wsbench: WARNING: --insecure: server certificates are NOT verified; anyone on the path can impersonate the server"
        );
    }
    let interrupt = CancellationToken::new();
    tokio::spawn(watch_signals(interrupt.clone()));
    let result = run(config, interrupt).await?;
    crate::report::emit_all(&result)?;
    Ok(result.outcome)
}

/// How long after the drain connections get to close before the run ends regardless.
const END_SLACK: std::time::Duration = std::time::Duration::from_millis(500);

/// Fires `end` at `at`, or [`connection::INTERRUPT_DRAIN`] + [`END_SLACK`] after an interrupt.
async fn end_at(at: Instant, interrupt: CancellationToken, end: CancellationToken) {
    tokio::select! {
        _ = tokio::time::sleep_until(at.into()) => {}
        _ = interrupt.cancelled() => {
            let cut = Instant::now() + connection::INTERRUPT_DRAIN + END_SLACK;
            tokio::time::sleep_until(cut.min(at).into()).await;
        }
    }
    end.cancel();
}

/// First SIGINT/SIGTERM: stop sending, drain, report. Second: leave at once.
async fn watch_signals(interrupt: CancellationToken) {
    crate::signal::terminated().await;
    tracing::warn!("interrupted: stopping; send the signal again to exit at once");
    interrupt.cancel();
    crate::signal::terminated().await;
    std::process::exit(i32::from(Outcome::Interrupted.code()));
}

/// The reference server for `--embedded`, on a runtime of its own so that its CPU time can be
/// told apart from the client's.
struct Embedded {
    runtime: tokio::runtime::Runtime,
    server: Server,
    threads: ThreadSet,
}

impl Embedded {
    fn start(config: crate::config::ServeConfig) -> anyhow::Result<Embedded> {
        let threads = ThreadSet::default();
        let register = threads.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(std::thread::available_parallelism().map_or(1, |n| n.get()))
            .thread_name("wsbench-embedded")
            .on_thread_start(move || register.register_current())
            .enable_all()
            .build()
            .context("could not start the embedded server's runtime")?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .context("could not start the embedded server")?;
        listener.set_nonblocking(true)?;
        let server = {
            let _inside = runtime.enter();
            Server::start(TcpListener::from_std(listener)?, config)?
        };
        Ok(Embedded {
            runtime,
            server,
            threads,
        })
    }

    async fn shutdown(self) -> anyhow::Result<StatsSnapshot> {
        let stats = self.runtime.spawn(self.server.shutdown()).await??;
        // Dropping a runtime may block; from async code it must be let go in the background.
        self.runtime.shutdown_background();
        Ok(stats)
    }
}

/// Runs the load described by `config` and judges it. Writes nothing.
pub async fn run(config: RunConfig, interrupt: CancellationToken) -> anyhow::Result<RunResult> {
    let embedded = match &config.target {
        Target::Url(_) => None,
        Target::Embedded => Some(Embedded::start(config.embedded_server.clone())?),
    };
    let url = match (&config.target, &embedded) {
        (Target::Url(url), _) => url.clone(),
        (_, Some(e)) => WsUrl::parse(&e.server.url()).map_err(anyhow::Error::msg)?,
        (Target::Embedded, None) => unreachable!("embedded target without a server"),
    };
    let run_id = new_run_id();
    let excluded = embedded.as_ref().map(|e| e.threads.clone());
    let summary = execute(&config, &url, &run_id, interrupt, excluded).await?;
    let server = match embedded {
        Some(e) => Some(e.shutdown().await?),
        None => None,
    };
    let mut verdicts = gate::evaluate(&summary, &config.thresholds);
    let (baseline, regressions) = gate::baseline::check(&summary, &config);
    verdicts.extend(regressions);
    let (outcome, reason) = judge(&summary, &verdicts);
    Ok(RunResult {
        config,
        run_id,
        summary,
        verdicts,
        outcome,
        reason,
        server,
        workers: Vec::new(),
        baseline,
    })
}

/// The exit outcome and, when it is not a plain pass or fail, why.
pub(crate) fn judge(s: &Summary, verdicts: &[Verdict]) -> (Outcome, Option<String>) {
    let first_failure = || s.setup_failures.keys().next().cloned().unwrap_or_default();
    if s.interrupted {
        (Outcome::Interrupted, Some("interrupted by signal".into()))
    } else if s.connections_opened == 0 && s.hello_rejected {
        let why = s
            .setup_failures
            .keys()
            .find(|k| k.contains("rejected"))
            .cloned()
            .unwrap_or_else(first_failure);
        (
            Outcome::CouldNotRun,
            Some(format!("the server rejected a hello: {why}")),
        )
    } else if s.connections_opened == 0 {
        let why = format!("every connection failed ({})", first_failure());
        (Outcome::CouldNotRun, Some(why))
    } else {
        let failed: Vec<_> = verdicts.iter().filter(|v| !v.passed).collect();
        let unsure: Vec<_> = failed
            .iter()
            .filter_map(|v| v.inconclusive.clone())
            .collect();
        if failed.is_empty() {
            (Outcome::Passed, None)
        } else if s.client.saturated {
            // A failure the client may have caused proves nothing about the server.
            let why = format!(
                "the client was the bottleneck ({})",
                s.client.reasons.join("; ")
            );
            (Outcome::Inconclusive, Some(why))
        } else if unsure.len() == failed.len() {
            (Outcome::Inconclusive, Some(unsure.join("; ")))
        } else {
            (Outcome::ThresholdFailed, None)
        }
    }
}

/// Short random run id; it prefixes request and session ids so runs never collide.
fn new_run_id() -> String {
    use std::hash::{BuildHasher as _, RandomState};
    let h = RandomState::new().hash_one((std::process::id(), std::time::SystemTime::now()));
    format!("{:08x}", h as u32)
}

async fn execute(
    config: &RunConfig,
    url: &WsUrl,
    run_id: &str,
    interrupt: CancellationToken,
    excluded: Option<ThreadSet>,
) -> anyhow::Result<Summary> {
    let rss_before = selfcheck::current_rss_kb();
    // The schedule covers warmup too: during warmup the rate is the schedule's starting rate.
    let schedule = config
        .schedule
        .as_ref()
        .map(|s| Arc::new(s.with_warmup(config.warmup)));
    let breaker = Arc::new(Breaker::new(config.breaker.clone()));
    let tls = match url.tls {
        true => {
            Some(
                crate::tls::client_config(&config.tls).map_err(|e| ConfigError::Rejected {
                    name: "--ca-file".into(),
                    reason: format!("{e:#}"),
                })?,
            )
        }
        false => None,
    };
    let spec = Arc::new(RunSpec {
        url: url.url.clone(),
        host: url.host.clone(),
        port: url.port,
        run_id: run_id.to_owned(),
        worker_id: config.worker_id.clone(),
        session_prefix: config.session_prefix.clone(),
        hello_token: config.token.clone(),
        tool: config.tool.clone(),
        args: config.args.clone(),
        window: config.inflight as usize,
        schedule: schedule.clone(),
        conns: config.conns,
        connect_timeout: config.connect_timeout,
        timeout: config.timeout,
        drain: config.drain,
        max_message_size: config.max_frame_size,
        breaker: breaker.clone(),
        reconnect: config.reconnect,
        ping: config.ping,
        honor_retry_after: config.honor_retry_after,
        tls: tls.clone(),
        bind_ips: config.bind_ips.clone(),
        headers: config.headers.clone(),
        subprotocol: config.subprotocol.clone(),
        validation: match &config.validation {
            None => None,
            Some(v) => Some(connection::Validation {
                sample: v.sample,
                schema: match &v.schema {
                    Some(schema) => Some(jsonschema::validator_for(schema).map_err(|e| {
                        ConfigError::Rejected {
                            name: "--expect-output".into(),
                            reason: e.to_string(),
                        }
                    })?),
                    None => None,
                },
            }),
        },
    });
    let live = Arc::new(Mutex::new(Live::default()));
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let recorder = tokio::spawn(Recorder::with_live(live.clone()).run(events_rx));
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let (start_tx, start_rx) = watch::channel(None);
    let budget = config.requests.map(|n| Arc::new(AtomicU64::new(n)));
    let stop = Stop {
        interrupt: interrupt.clone(),
        end: CancellationToken::new(),
        budget: budget.clone(),
    };

    let mut tasks = JoinSet::new();
    for id in 0..config.conns {
        let links = Links {
            events: events_tx.clone(),
            ready: ready_tx.clone(),
            start: start_rx.clone(),
        };
        let delay = config.connect_spacing * id;
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
    for _ in 0..config.conns {
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
    if let Some(at) = config.start_at.filter(|_| up > 0) {
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
    let start = Instant::now();
    let cpu_start = CpuMark::now(excluded.as_ref());
    let rss_connected = selfcheck::current_rss_kb();
    let timing = Timing {
        start,
        measure_from: start + config.warmup,
        stop_at: start + config.warmup + config.duration,
    };
    let started_at = SystemTime::now() + config.warmup;
    // Sent before the start is released, so the recorder knows the window before any sample.
    let _ = events_tx.send(Event::Measure {
        from: timing.measure_from,
    });
    drop(events_tx);
    let _ = start_tx.send(Some(timing));
    // The run's bound: sending, the drain, then a little for closes. An interrupt cuts it to
    // the interrupt's drain. Past it every connection stops at once and reports.
    let hard_end = timing.stop_at + config.drain + END_SLACK;
    let watchdog = tokio::spawn(end_at(hard_end, interrupt.clone(), stop.end.clone()));
    let progress_done = CancellationToken::new();
    let progress = tokio::spawn(crate::progress::show(
        config.progress,
        live,
        timing,
        progress_done.clone(),
    ));

    let mut reports = Vec::with_capacity(config.conns as usize);
    while let Some(joined) = tasks.join_next().await {
        reports.push(joined.context("a connection task failed")?);
    }
    watchdog.abort();
    let cpu = cpu_start.until(&CpuMark::now(excluded.as_ref()));
    let load_wall = start.elapsed();
    progress_done.cancel();
    let _ = progress.await;
    let interrupted = interrupt.is_cancelled();
    let recorder = recorder.await.context("the recorder failed")?;
    let conn_changes = recorder.conn_changes.clone();

    // The measured window ends when sending stopped, or at the last success if later; in
    // count mode it ends at the last success (sending stopped when the budget ran out).
    let budget_spent = budget.is_some_and(|b| b.load(Ordering::Relaxed) == 0);
    let from = timing.measure_from;
    let last = recorder.last_received.unwrap_or(from).max(from);
    let end = if budget_spent {
        last
    } else {
        last.max(timing.stop_at.min(Instant::now()))
    };
    let duration = end.saturating_duration_since(from);
    let mode = match &config.schedule {
        None => Mode::Closed,
        Some(s) => Mode::Open {
            target_rps: s.count_at(config.duration) / config.duration.as_secs_f64(),
        },
    };
    let mut summary = Summary::build(
        url.url.clone(),
        matches!(config.target, Target::Embedded),
        mode,
        duration,
        &reports,
        recorder,
    );
    summary.warmup_duration = config.warmup;
    summary.measured_from = from;
    summary.transitions = breaker
        .transitions()
        .into_iter()
        .map(|t| BreakerEvent {
            at_s: signed_secs(t.at, from),
            from: t.from,
            to: t.to,
        })
        .collect();
    summary.unavailable = unavailable(&breaker.transitions(), &conn_changes, from, end);
    if !budget_spent {
        summary.send_window = timing
            .stop_at
            .min(Instant::now())
            .saturating_duration_since(from);
    }
    summary.started_at = started_at;
    summary.interrupted = interrupted;
    let opened = summary.connections_opened.max(1) as f64;
    let rss_per_conn = match (rss_before, rss_connected) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / opened),
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
    summary.client = ClientCheck::judge(cpu, load_wall, completed, rss_per_conn, open_loop);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::Verdict;

    fn verdict(passed: bool, inconclusive: Option<&str>) -> Verdict {
        Verdict {
            metric: "p99",
            limit: 5.0,
            measured: Some(if passed { 1.0 } else { 9.0 }),
            passed,
            condition: "p99 < 5.00 ms".into(),
            measured_text: "x".into(),
            inconclusive: inconclusive.map(str::to_owned),
        }
    }

    fn summary(saturated: bool) -> Summary {
        let mut s = Summary::build(
            "ws://x".into(),
            false,
            Mode::Closed,
            std::time::Duration::from_secs(1),
            &[crate::model::ConnReport {
                opened: true,
                ..crate::model::ConnReport::default()
            }],
            Recorder::default(),
        );
        s.client.saturated = saturated;
        s.client.reasons = vec!["client CPU at 97% of its 2 cores".into()];
        s
    }

    #[test]
    fn a_failure_under_a_saturated_client_is_inconclusive_and_a_pass_stays_a_pass() {
        let (o, why) = judge(&summary(true), &[verdict(false, None)]);
        assert_eq!(o, Outcome::Inconclusive);
        assert!(why.unwrap().contains("client was the bottleneck"));
        assert_eq!(
            judge(&summary(true), &[verdict(true, None)]).0,
            Outcome::Passed
        );
        assert_eq!(
            judge(&summary(false), &[verdict(false, None)]).0,
            Outcome::ThresholdFailed
        );
        let (o, why) = judge(
            &summary(false),
            &[verdict(false, Some("p99.9 from 12 samples"))],
        );
        assert_eq!(
            (o, why.as_deref()),
            (Outcome::Inconclusive, Some("p99.9 from 12 samples"))
        );
    }
}
