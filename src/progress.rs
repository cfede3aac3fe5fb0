//! Live progress on stderr while a run goes on: an indicatif bar on a terminal, one plain line
//! every few seconds otherwise (CI logs get no control codes). Reads the recorder's live view;
//! owns no result data.

use std::io::{IsTerminal as _, Write as _};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;

use crate::config::ProgressMode;
use crate::run::connection::Timing;
use crate::stats::recorder::Live;
use crate::units::{fmt_count, fmt_ms};

/// Shows progress until `done` is cancelled.
pub async fn show(
    mode: ProgressMode,
    live: Arc<Mutex<Live>>,
    timing: Timing,
    done: CancellationToken,
) {
    let mode = match mode {
        ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Bar,
        ProgressMode::Auto => ProgressMode::Lines,
        m => m,
    };
    let total = timing.stop_at.saturating_duration_since(timing.start);
    match mode {
        ProgressMode::Off | ProgressMode::Auto => {}
        ProgressMode::Bar => bar(live, timing, total, done).await,
        ProgressMode::Lines => lines(live, timing, total, done).await,
    }
}

/// One status line: elapsed/total, rate, last-second p99, errors, open connections.
fn status(live: &Live, timing: &Timing, rate: f64, now: Instant) -> String {
    let elapsed = now.saturating_duration_since(timing.start).as_secs_f64();
    let total = timing
        .stop_at
        .saturating_duration_since(timing.start)
        .as_secs_f64();
    let phase = if now < timing.measure_from {
        " warmup"
    } else {
        ""
    };
    let p99 = match live.last_second {
        Some((p, _)) if p.is_finite() => format!("{} ms", fmt_ms(p)),
        _ => "-".into(),
    };
    let t = &live.totals;
    format!(
        "[{elapsed:>6.1}s/{total:.0}s{phase}] sent {} ok {} err {}  {:.0}/s  p99(last s) {p99}  conns {}",
        fmt_count(t.sent),
        fmt_count(t.succeeded),
        fmt_count(t.failed + t.timed_out + t.lost),
        rate,
        live.open_conns
    )
}

async fn lines(live: Arc<Mutex<Live>>, timing: Timing, total: Duration, done: CancellationToken) {
    let every = (total / 15).clamp(Duration::from_secs(2), Duration::from_secs(10));
    let mut tick = tokio::time::interval_at((Instant::now() + every).into(), every);
    let mut last = (Instant::now(), 0u64);
    loop {
        tokio::select! {
            _ = done.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        let snapshot = live.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let rate = (snapshot.totals.succeeded.saturating_sub(last.1)) as f64
            / now.duration_since(last.0).as_secs_f64().max(1e-3);
        last = (now, snapshot.totals.succeeded);
        let line = status(&snapshot, &timing, rate, now);
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }
}

async fn bar(live: Arc<Mutex<Live>>, timing: Timing, total: Duration, done: CancellationToken) {
    let pb =
        ProgressBar::with_draw_target(Some(total.as_millis() as u64), ProgressDrawTarget::stderr());
    pb.set_style(
        ProgressStyle::with_template("{bar:30.cyan/blue} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut last = (Instant::now(), 0u64);
    loop {
        tokio::select! {
            _ = done.cancelled() => break,
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        let snapshot = live.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let rate = (snapshot.totals.succeeded.saturating_sub(last.1)) as f64
            / now.duration_since(last.0).as_secs_f64().max(1e-3);
        last = (now, snapshot.totals.succeeded);
        pb.set_position(now.saturating_duration_since(timing.start).as_millis() as u64);
        pb.set_message(status(&snapshot, &timing, rate, now));
    }
    pb.finish_and_clear();
}
