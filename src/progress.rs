//! Live progress on stderr while a run goes on: an indicatif bar on a terminal, one plain line
//! every few seconds otherwise (CI logs get no control codes). Reads the recorders' live view;
//! owns no result data.

use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;

use crate::run::connection::Timing;
use crate::stats::Recorders;
use crate::stats::recorder::Live;
use crate::units::{fmt_count, fmt_ms};

/// How live progress is shown on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, plain lines otherwise.
    Auto,
    Bar,
    Lines,
    Off,
}

/// Shows progress until `done` is cancelled.
pub async fn show(mode: ProgressMode, live: Recorders, timing: Timing, done: CancellationToken) {
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

/// One status line: elapsed/total, the last complete second's rate and p99, errors, open
/// connections. (Counts reach the recorder in per-second batches, so a rate taken between two
/// ticks would jump; the last whole second is the honest figure.)
fn status(live: &Live, timing: &Timing, now: Instant) -> String {
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
        Some(l) if l.p99_ms.is_finite() => format!("{} ms", fmt_ms(l.p99_ms)),
        _ => "-".into(),
    };
    let rate = live.last_second.map_or(0, |l| l.count);
    let t = &live.totals;
    format!(
        "[{elapsed:>6.1}s/{total:.0}s{phase}] sent {} ok {} err {}  last second: {}/s, p99 {p99}  conns {}",
        fmt_count(t.sent),
        fmt_count(t.succeeded),
        fmt_count(t.failed + t.timed_out + t.lost),
        fmt_count(rate),
        live.open_conns
    )
}

async fn lines(live: Recorders, timing: Timing, total: Duration, done: CancellationToken) {
    let every = (total / 15).clamp(Duration::from_secs(2), Duration::from_secs(10));
    let mut tick = tokio::time::interval_at((Instant::now() + every).into(), every);
    loop {
        tokio::select! {
            _ = done.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        let snapshot = live.live(now);
        let line = status(&snapshot, &timing, now);
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }
}

async fn bar(live: Recorders, timing: Timing, total: Duration, done: CancellationToken) {
    let pb =
        ProgressBar::with_draw_target(Some(total.as_millis() as u64), ProgressDrawTarget::stderr());
    pb.set_style(
        ProgressStyle::with_template("{bar:30.cyan/blue} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = done.cancelled() => break,
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        let snapshot = live.live(now);
        pb.set_position(now.saturating_duration_since(timing.start).as_millis() as u64);
        pb.set_message(status(&snapshot, &timing, now));
    }
    pb.finish_and_clear();
}
