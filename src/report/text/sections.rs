//! The text report's sections beside the main body: resilience (drops, reconnects, the
//! breaker, downtime, pauses), the timeline in brief, and the replay warning.

use std::fmt::Write as _;

use super::{TextReporter, brief, ms};
use crate::result::RunResult;
use crate::units::fmt_count;

/// When replays are more than half of the successes: the server measured its cache.
pub(crate) fn replay_warning(k: &crate::model::Counts) -> Option<String> {
    (k.replayed * 2 > k.succeeded).then(|| {
        format!(
            "the server answered {} of {} successes from its cache: vary the arguments, e.g. with {{{{seq}}}}",
            fmt_count(k.replayed),
            fmt_count(k.succeeded)
        )
    })
}

impl TextReporter {
    /// Drops, reconnects, the breaker's path and downtime; silent when nothing happened.
    pub(super) fn resilience(&self, o: &mut String, r: &RunResult) -> std::fmt::Result {
        let s = &r.summary;
        let x = &s.resilience;
        let h = &s.histograms;
        let happened =
            x.disconnects + x.reconnect_attempts + x.pong_timeouts + x.retry_after_pauses;
        if happened > 0 || !s.unavailable.is_zero() || !s.connect_held.is_zero() {
            writeln!(
                o,
                "Resilience  disconnects {}, reconnects {}/{} attempts, pong timeouts {}, retry-after pauses {}; unavailable {:.2} s (no connection could send), connection attempts held {:.2} s (breaker open)",
                x.disconnects,
                x.reconnects,
                x.reconnect_attempts,
                x.pong_timeouts,
                x.retry_after_pauses,
                s.unavailable.as_secs_f64(),
                s.connect_held.as_secs_f64()
            )?;
        }
        if x.retry_after_pauses + x.retry_after_invalid > 0 {
            writeln!(
                o,
                "Retry-after {:.2} s paused in all (summed over connections); {} value(s) invalid or absurd, clamped",
                x.retry_after_paused_ms as f64 / 1e3,
                x.retry_after_invalid
            )?;
        }
        if !h.reconnect.is_empty() {
            writeln!(o, "Reconnect   {} ms", brief(&h.reconnect))?;
        }
        if !h.pong.is_empty() {
            writeln!(o, "Ping-pong   {} ms", brief(&h.pong))?;
        }
        if !s.transitions.is_empty() {
            let path: Vec<_> = s
                .transitions
                .iter()
                .map(|t| {
                    // Before the measured window: while connecting (or in the warmup).
                    let when = if t.at_s < 0.0 {
                        "before the measured window".to_owned()
                    } else {
                        format!("at {:.2}s", t.at_s)
                    };
                    format!("{:?}->{:?} {when}", t.from, t.to)
                })
                .collect();
            writeln!(o, "Breaker     {}", path.join(", "))?;
        }
        for (why, n) in &s.reconnect_failures {
            writeln!(o, "Reconn fail {n} x {why}")?;
        }
        Ok(())
    }

    /// The timeline in two lines: the spread of per-second throughput and the slowest second.
    pub(super) fn timeline(&self, o: &mut String, r: &RunResult) -> std::fmt::Result {
        let secs = &r.summary.seconds;
        // The last second is usually partial (drain); judge whole seconds only.
        let whole = &secs[..secs.len().saturating_sub(1)];
        if whole.is_empty() {
            return Ok(());
        }
        let mut rates: Vec<u64> = whole.iter().map(|s| s.tally.succeeded).collect();
        rates.sort_unstable();
        let slowest = whole
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.latency.is_empty())
            .max_by_key(|(_, s)| s.latency.value_at_quantile(0.99));
        write!(
            o,
            "Timeline    {} s: succeeded/s min {}  median {}  max {}",
            whole.len(),
            fmt_count(rates[0]),
            fmt_count(rates[rates.len() / 2]),
            fmt_count(rates[rates.len() - 1])
        )?;
        if let Some((i, s)) = slowest {
            write!(o, "; slowest second #{i}: p99 {} ms", ms(&s.latency, 99.0))?;
        }
        writeln!(o)
    }
}
