//! The human report printed after a run: what was loaded, the accounting identity, throughput,
//! latency, setup times, errors and the thresholds table with the verdict.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use super::Reporter;
use crate::config::Target;
use crate::run::RunResult;
use crate::stats::summary::percentile_ms;
use crate::units::{fmt_count, fmt_ms};

pub struct TextReporter;

fn ms(h: &Histogram<u64>, p: f64) -> String {
    let v = percentile_ms(h, p);
    if v.is_finite() { fmt_ms(v) } else { "-".into() }
}

impl Reporter for TextReporter {
    fn render(&self, r: &RunResult) -> anyhow::Result<Vec<u8>> {
        let s = &r.summary;
        let c = &r.config;
        let h = &s.histograms;
        let mut o = String::new();

        let what = match c.target {
            Target::Embedded => " (embedded reference server, in this process)",
            Target::Url(_) => "",
        };
        writeln!(o, "wsbench run {} -> {}{what}", r.run_id, s.target)?;
        let stop = match c.requests {
            Some(n) => format!(
                "{} requests (cap {})",
                fmt_count(n),
                humantime::format_duration(c.duration)
            ),
            None => humantime::format_duration(c.duration).to_string(),
        };
        writeln!(
            o,
            "  {} connections x {} in flight, tool '{}', {stop}, closed loop",
            c.conns, c.inflight, c.tool
        )?;
        if let Some(reason) = &r.reason {
            writeln!(o, "  ! {reason}")?;
        }
        writeln!(o)?;

        let k = &s.counts;
        let mark = if k.identity_holds() {
            "holds"
        } else {
            "BROKEN"
        };
        writeln!(
            o,
            "Requests    sent {} = succeeded {} + failed {} + timed out {} + lost {} + unfinished {}  [identity {mark}]",
            fmt_count(k.sent),
            fmt_count(k.succeeded),
            fmt_count(k.failed),
            fmt_count(k.timed_out),
            fmt_count(k.lost),
            fmt_count(k.unfinished)
        )?;
        writeln!(
            o,
            "Throughput  {:.0} req/s succeeded over {:.2} s measured; error rate {:.4}%",
            s.throughput(),
            s.duration.as_secs_f64(),
            s.error_rate() * 100.0
        )?;
        writeln!(
            o,
            "Frames      duplicates {}, unmatched {}, late {}, malformed {}, non-final {}, unexpected {}",
            k.duplicates, k.unmatched, k.late, k.malformed, k.non_final, k.unexpected
        )?;
        writeln!(o)?;

        let lat = &h.latency;
        writeln!(
            o,
            "Latency (ms, service time: closed loop, measured from each actual send)"
        )?;
        if lat.is_empty() {
            writeln!(o, "  no successful requests")?;
        } else {
            writeln!(
                o,
                "  min {}  mean {}  stdev {}  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
                fmt_ms(lat.min() as f64 / 1e3),
                fmt_ms(lat.mean() / 1e3),
                fmt_ms(lat.stdev() / 1e3),
                ms(lat, 50.0),
                ms(lat, 90.0),
                ms(lat, 99.0),
                ms(lat, 99.9),
                fmt_ms(lat.max() as f64 / 1e3)
            )?;
        }
        writeln!(
            o,
            "Connect     p50 {}  p99 {}  max {} ms   ({} opened, {} failed)",
            ms(&h.connect, 50.0),
            ms(&h.connect, 99.0),
            ms(&h.connect, 100.0),
            s.connections_opened,
            s.connections_failed
        )?;
        writeln!(
            o,
            "Hello       p50 {}  p99 {}  max {} ms",
            ms(&h.hello, 50.0),
            ms(&h.hello, 99.0),
            ms(&h.hello, 100.0)
        )?;
        if let Some((min, med, max)) = s.per_conn_spread() {
            writeln!(
                o,
                "Per conn    completed min {}  median {}  max {}",
                fmt_count(min),
                fmt_count(med),
                fmt_count(max)
            )?;
        }
        for (why, n) in &s.setup_failures {
            writeln!(o, "Conn failed {n} x {why}")?;
        }
        if !s.errors_by_code.is_empty() {
            let list: Vec<_> = s
                .errors_by_code
                .iter()
                .map(|(c, n)| format!("{c} {}", fmt_count(*n)))
                .collect();
            writeln!(o, "Errors      {}", list.join(", "))?;
        }
        if !s.conn_errors_by_code.is_empty() {
            let list: Vec<_> = s
                .conn_errors_by_code
                .iter()
                .map(|(c, n)| format!("{c} {n}"))
                .collect();
            writeln!(o, "Conn errors {}", list.join(", "))?;
        }
        if !s.close_codes.is_empty() {
            let list: Vec<_> = s
                .close_codes
                .iter()
                .map(|(c, n)| format!("{c} x{n}"))
                .collect();
            writeln!(o, "Closed by   {}", list.join(", "))?;
        }
        if let Some(srv) = &r.server {
            writeln!(
                o,
                "Server      call_tool {}  results ok {}  error {}  replays {}",
                fmt_count(srv.call_tool),
                fmt_count(srv.results_ok),
                fmt_count(srv.results_error),
                fmt_count(srv.replays)
            )?;
        }
        writeln!(o)?;

        if r.verdicts.is_empty() {
            writeln!(o, "Thresholds  none (gate off)")?;
        } else {
            writeln!(o, "{:<26} {:<16} RESULT", "THRESHOLD", "MEASURED")?;
            for v in &r.verdicts {
                let res = if v.passed { "PASS" } else { "FAIL" };
                writeln!(o, "{:<26} {:<16} {res}", v.condition, v.measured_text)?;
            }
        }
        writeln!(
            o,
            "Verdict: {} (exit {})",
            r.outcome.verdict().to_uppercase(),
            r.outcome.code()
        )?;
        Ok(o.into_bytes())
    }
}
