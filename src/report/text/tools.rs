//! The text report's per-tool table: one row per tool of a mix, with its outcomes, response
//! time and error codes, so "which tool is slow?" has its answer on one screen.

use std::fmt::Write as _;

use crate::stats::summary::{Summary, percentile_ms};
use crate::units::{fmt_count, fmt_ms};

/// The table, when the run called more than one tool.
pub(super) fn table(o: &mut String, s: &Summary) -> std::fmt::Result {
    if s.per_tool.len() < 2 {
        return Ok(());
    }
    let width = s.per_tool.keys().map(|k| k.len()).max().unwrap_or(4).max(4);
    let secs = s.duration.as_secs_f64();
    writeln!(
        o,
        "Per tool    {:<width$}  {:>9}  {:>9}  {:>7}  {:>9}  {:>8}  {:>8}  {:>8}  {:>8}  errors",
        "tool", "sent", "succeeded", "failed", "timed out", "req/s", "p50 ms", "p99 ms", "max ms"
    )?;
    for (name, t) in &s.per_tool {
        let c = &t.counts;
        let pct = |p| {
            if t.histograms.latency.is_empty() {
                "-".to_owned()
            } else {
                fmt_ms(percentile_ms(&t.histograms.latency, p))
            }
        };
        let rps = if secs > 0.0 {
            c.succeeded as f64 / secs
        } else {
            0.0
        };
        let errors = t
            .errors_by_code
            .iter()
            .map(|(code, n)| format!("{code} {}", fmt_count(*n)))
            .collect::<Vec<_>>()
            .join(", ");
        writeln!(
            o,
            "            {name:<width$}  {:>9}  {:>9}  {:>7}  {:>9}  {:>8.0}  {:>8}  {:>8}  {:>8}  {}",
            fmt_count(c.sent),
            fmt_count(c.succeeded),
            fmt_count(c.failed),
            fmt_count(c.timed_out),
            rps,
            pct(50.0),
            pct(99.0),
            pct(100.0),
            if errors.is_empty() { "-" } else { &errors },
        )?;
    }
    Ok(())
}
