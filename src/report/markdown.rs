//! `--markdown`: the run as GitHub-flavoured Markdown, for a CI job summary
//! (`$GITHUB_STEP_SUMMARY`) or a pull-request comment: the verdict and why, the request
//! identity, latency, the thresholds as a table, and the per-tool table when there is one.

use std::fmt::Write as _;

use super::Reporter;
use crate::result::RunResult;
use crate::stats::summary::percentile_ms;
use crate::units::{fmt_count, fmt_ms};

pub struct MarkdownReporter;

/// Text safe inside a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

impl Reporter for MarkdownReporter {
    fn render(&self, r: &RunResult) -> anyhow::Result<Vec<u8>> {
        let s = &r.summary;
        let c = &s.counts;
        let mut o = String::new();
        let verdict = r.outcome.verdict().to_uppercase();
        let mark = if r.outcome.code() == 0 { "✅" } else { "❌" };
        writeln!(
            o,
            "### {mark} wsbench: {verdict} (exit {})",
            r.outcome.code()
        )?;
        writeln!(o)?;
        writeln!(o, "`{}` · run `{}`", cell(&s.target), r.run_id)?;
        if let Some(reason) = &r.reason {
            writeln!(o, "\n> {}", cell(reason))?;
        }
        writeln!(o)?;
        writeln!(
            o,
            "| requests | succeeded | failed | timed out | lost | unfinished | req/s | p50 ms | p99 ms |"
        )?;
        writeln!(o, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|")?;
        writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {:.0} | {} | {} |",
            fmt_count(c.sent),
            fmt_count(c.succeeded),
            fmt_count(c.failed),
            fmt_count(c.timed_out),
            fmt_count(c.lost),
            fmt_count(c.unfinished),
            s.throughput(),
            fmt_ms(s.latency_ms(50.0)),
            fmt_ms(s.latency_ms(99.0)),
        )?;
        if c.replayed > 0 {
            writeln!(
                o,
                "\n{} of the successes were replayed from the server's cache (`from_cache`).",
                fmt_count(c.replayed)
            )?;
            if let Some(w) = super::text::replay_warning(c) {
                writeln!(o, "\n> ⚠️ {}", cell(&w))?;
            }
        }
        if !r.verdicts.is_empty() {
            writeln!(o, "\n| threshold | measured | result |")?;
            writeln!(o, "|---|---|---|")?;
            for v in &r.verdicts {
                let result = match (v.passed, &v.inconclusive) {
                    (true, _) => "pass",
                    (false, Some(_)) => "inconclusive",
                    (false, None) => "**FAIL**",
                };
                writeln!(
                    o,
                    "| `{}` | {} | {result} |",
                    cell(&v.condition),
                    cell(&v.measured_text)
                )?;
            }
        }
        if s.per_tool.len() > 1 {
            writeln!(o, "\n| tool | sent | succeeded | failed | p99 ms |")?;
            writeln!(o, "|---|---:|---:|---:|---:|")?;
            for (name, t) in &s.per_tool {
                let p99 = if t.histograms.latency.is_empty() {
                    "-".to_owned()
                } else {
                    fmt_ms(percentile_ms(&t.histograms.latency, 99.0))
                };
                writeln!(
                    o,
                    "| `{}` | {} | {} | {} | {p99} |",
                    cell(name),
                    fmt_count(t.counts.sent),
                    fmt_count(t.counts.succeeded),
                    fmt_count(t.counts.failed)
                )?;
            }
        }
        if !s.errors_by_code.is_empty() {
            let list: Vec<String> = s
                .errors_by_code
                .iter()
                .map(|(code, n)| format!("`{}` {}", cell(code), fmt_count(*n)))
                .collect();
            writeln!(o, "\nErrors: {}", list.join(", "))?;
        }
        Ok(o.into_bytes())
    }
}
