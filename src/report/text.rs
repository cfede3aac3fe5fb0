//! The human report printed after a run: what was loaded, the accounting identity, throughput,
//! latency, setup phases, the timeline in brief, fairness, errors and the thresholds table.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::Reporter;
use crate::result::RunResult;
use crate::stats::summary::{Mode, percentile_ms};
use crate::units::{fmt_count, fmt_ms};

pub struct TextReporter;

fn ms(h: &Histogram<u64>, p: f64) -> String {
    let v = percentile_ms(h, p);
    if v.is_finite() { fmt_ms(v) } else { "-".into() }
}

/// `p50 x  p99 y  max z` of a histogram, in ms.
fn brief(h: &Histogram<u64>) -> String {
    format!(
        "p50 {}  p99 {}  max {}",
        ms(h, 50.0),
        ms(h, 99.0),
        ms(h, 100.0)
    )
}

fn full(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "no successful requests".into();
    }
    format!(
        "min {}  mean {}  stdev {}  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
        fmt_ms(h.min() as f64 / 1e3),
        fmt_ms(h.mean() / 1e3),
        fmt_ms(h.stdev() / 1e3),
        ms(h, 50.0),
        ms(h, 90.0),
        ms(h, 99.0),
        ms(h, 99.9),
        fmt_ms(h.max() as f64 / 1e3)
    )
}

impl Reporter for TextReporter {
    fn render(&self, r: &RunResult) -> anyhow::Result<Vec<u8>> {
        let s = &r.summary;
        let c = &r.settings;
        let h = &s.histograms;
        let mut o = String::new();

        let what = if c.embedded {
            " (embedded reference server, in this process)"
        } else {
            ""
        };
        writeln!(o, "wsbench run {} -> {}{what}", r.run_id, s.target)?;
        let stop = match c.requests {
            Some(n) => format!(
                "{} requests (cap {})",
                fmt_count(n),
                humantime::format_duration(c.duration)
            ),
            None => {
                humantime::format_duration(Duration::from_millis(c.duration.as_millis() as u64))
                    .to_string()
            }
        };
        let pacing = match s.mode {
            Mode::Closed => "closed loop".to_owned(),
            Mode::Open { target_rps } => format!("open loop at {target_rps:.0}/s"),
        };
        // The default dialect goes unsaid; another is named, sessions being what it counts.
        let (unit, via) = match c.protocol.as_str() {
            "mcp" => ("MCP sessions", ", tools/call"),
            _ => ("connections", ""),
        };
        // A mix is `tool=weight,...`; one tool is its bare name.
        let what = if c.tool.contains('=') {
            format!("mix {}", c.tool)
        } else {
            format!("tool '{}'", c.tool)
        };
        writeln!(
            o,
            "  {} {unit} x {} in flight{via}, {what}, {stop}, {pacing}",
            c.conns, c.inflight
        )?;
        if !s.versions.is_empty() {
            let chosen: Vec<String> = s
                .versions
                .iter()
                .map(|(v, n)| format!("{v} ({n} sessions)"))
                .collect();
            writeln!(
                o,
                "  protocol version the server chose: {}",
                chosen.join(", ")
            )?;
        }
        if c.transport == "http" {
            writeln!(
                o,
                "  Streamable HTTP over HTTP/1.1: up to {} keep-alive connections per session",
                c.inflight
            )?;
        } else if c.transport == "http2" {
            writeln!(
                o,
                "  Streamable HTTP over HTTP/2: one connection per session, up to {} streams on it",
                c.inflight
            )?;
        }
        if let Some(data) = &c.data {
            let out = if s.rows_ran_out {
                "; the rows ran out: sending stopped there"
            } else {
                ""
            };
            writeln!(o, "  data {data}{out}")?;
        }
        if let Some(log) = &c.stderr_log {
            writeln!(o, "  server processes' stderr: {log}")?;
        }
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
        if k.replayed > 0 {
            writeln!(
                o,
                "  replayed  {} of the successes were answered from the server's cache (from_cache)",
                fmt_count(k.replayed)
            )?;
            if let Some(warning) = replay_warning(k) {
                writeln!(o, "  ! {warning}")?;
            }
        }
        if s.is_open_loop() {
            writeln!(
                o,
                "Schedule    scheduled {} = sent {} + dropped {} (never sent: connection down, breaker open, paused, or queued at the end)",
                fmt_count(k.scheduled()),
                fmt_count(k.sent),
                fmt_count(k.dropped)
            )?;
        }
        writeln!(
            o,
            "Throughput  {:.0} req/s succeeded over {:.2} s measured; error rate {:.4}% (sent but not succeeded)",
            s.throughput(),
            s.duration.as_secs_f64(),
            s.error_rate() * 100.0
        )?;
        if let Mode::Open { target_rps } = s.mode {
            writeln!(
                o,
                "Rate        target {target_rps:.0}/s, achieved {:.0}/s sent; schedule lag max {} ms; client lag p99 {} max {} ms",
                s.send_rate(),
                ms(&h.schedule_lag, 100.0),
                ms(&h.client_lag, 99.0),
                ms(&h.client_lag, 100.0)
            )?;
        }
        if !s.warmup_duration.is_zero() {
            let w = &s.warmup;
            writeln!(
                o,
                "Warmup      {} excluded: sent {} (succeeded {}, failed {}, timed out {}, lost {}, unfinished {})",
                humantime::format_duration(s.warmup_duration),
                fmt_count(w.sent),
                fmt_count(w.succeeded),
                fmt_count(w.failed),
                fmt_count(w.timed_out),
                fmt_count(w.lost),
                fmt_count(w.unfinished)
            )?;
        }
        let after_close = if k.after_close > 0 {
            format!(", after the server's close {}", k.after_close)
        } else {
            String::new()
        };
        writeln!(
            o,
            "Frames      duplicates {}, unmatched {}, late {}, malformed {}, non-final {}, unexpected {}{after_close}",
            k.duplicates, k.unmatched, k.late, k.malformed, k.non_final, k.unexpected
        )?;
        writeln!(o)?;

        if s.is_open_loop() {
            writeln!(
                o,
                "Latency (ms, response time: from each request's scheduled send when the server held it up)"
            )?;
            writeln!(o, "  {}", full(&h.latency))?;
            writeln!(o, "  service time (from actual send): {}", full(&h.service))?;
        } else {
            writeln!(
                o,
                "Latency (ms, service time: closed loop, measured from each actual send)"
            )?;
            writeln!(o, "  {}", full(&h.latency))?;
        }
        for (name, hist) in [
            ("To ack", &h.ack),
            ("To chunk", &h.first_chunk),
            ("To stream end", &h.stream_end),
        ] {
            if !hist.is_empty() {
                writeln!(
                    o,
                    "{name:<12}{} ms   ({} requests)",
                    brief(hist),
                    fmt_count(hist.len())
                )?;
            }
        }
        writeln!(
            o,
            "Connect     {} ms   ({} opened, {} failed)",
            brief(&h.connect),
            s.connections_opened,
            s.connections_failed
        )?;
        let tls = if h.tls.is_empty() {
            String::new()
        } else {
            format!(" / tls {}", ms(&h.tls, 99.0))
        };
        if r.settings.transport == "stdio" {
            // stdio: the process is the connection; spawning it is the connect phase.
            writeln!(
                o,
                "  phases    spawn {} / initialize {} ms (p99)",
                ms(&h.tcp, 99.0),
                ms(&h.hello, 99.0)
            )?;
        } else if r.settings.transport.starts_with("http") {
            // HTTP connects with its first request, the hello: to its response's headers,
            // then the rest of the answer.
            writeln!(
                o,
                "  phases    tcp {}{tls} / first response headers {} / hello {} ms (p99)",
                ms(&h.tcp, 99.0),
                ms(&h.upgrade, 99.0),
                ms(&h.hello, 99.0)
            )?;
        } else {
            writeln!(
                o,
                "  phases    tcp {}{tls} / upgrade {} / hello {} ms (p99)",
                ms(&h.tcp, 99.0),
                ms(&h.upgrade, 99.0),
                ms(&h.hello, 99.0)
            )?;
        }
        self.timeline(&mut o, r)?;
        if let Some((min, med, max)) = s.per_conn_spread() {
            let jain = s.jain_fairness().map_or("-".into(), |j| format!("{j:.3}"));
            writeln!(
                o,
                "Per conn    completed min {}  median {}  max {}; Jain fairness {jain}",
                fmt_count(min),
                fmt_count(med),
                fmt_count(max)
            )?;
            let lowest = s
                .per_conn
                .iter()
                .filter_map(|c| c.available)
                .fold(f64::INFINITY, f64::min);
            if lowest < 0.999 {
                let down = s
                    .per_conn
                    .iter()
                    .filter(|c| c.available.is_some_and(|a| a < 0.999))
                    .count();
                writeln!(
                    o,
                    "  available {down} connection(s) were down part of the window; the least was up {:.1}% of it",
                    lowest * 100.0
                )?;
            }
            let starved = s.starved();
            if !starved.is_empty() {
                let ids: Vec<_> = starved.iter().map(u32::to_string).collect();
                writeln!(
                    o,
                    "  ! starved (under 10% of the median): connection {}",
                    ids.join(", ")
                )?;
            }
        }
        self.resilience(&mut o, r)?;
        for (why, n) in &s.setup_failures {
            writeln!(o, "Conn failed {n} x {why}")?;
        }
        let join = |m: &mut dyn Iterator<Item = String>| m.collect::<Vec<_>>().join(", ");
        if !s.errors_by_code.is_empty() {
            let list = join(
                &mut s
                    .errors_by_code
                    .iter()
                    .map(|(c, n)| format!("{c} {}", fmt_count(*n))),
            );
            writeln!(o, "Errors      {list}")?;
        }
        tools::table(&mut o, s)?;
        if s.first_call_stalls > 0 {
            writeln!(
                o,
                "First call  {} session(s) stalled: the first call timed out while later calls succeeded",
                fmt_count(s.first_call_stalls)
            )?;
        }
        if k.validated > 0 {
            let invalid = s.errors_by_code.get("invalid_reply").copied().unwrap_or(0);
            writeln!(
                o,
                "Validated   {} replies checked, {} invalid",
                fmt_count(k.validated),
                fmt_count(invalid)
            )?;
            for e in &s.invalid_examples {
                writeln!(o, "  ! {e}")?;
            }
        }
        if !s.conn_errors_by_code.is_empty() {
            let list = join(
                &mut s
                    .conn_errors_by_code
                    .iter()
                    .map(|(c, n)| format!("{c} {n}")),
            );
            writeln!(
                o,
                "Conn errors {list}  (error frames without a request id; {} could not be tied to one request, whose requests ended timed out or unfinished)",
                fmt_count(k.uncorrelated_errors)
            )?;
        }
        if !s.close_codes.is_empty() {
            let list = join(&mut s.close_codes.iter().map(|(c, n)| format!("{c} x{n}")));
            writeln!(o, "Closed by   {list}")?;
        }
        let res = &s.resilience;
        if res.closes_unanswered + res.closes_dropped > 0 {
            writeln!(
                o,
                "Closes      {} answered, {} unanswered within 500 ms, {} ended by the server first",
                fmt_count(res.closes_answered),
                fmt_count(res.closes_unanswered),
                fmt_count(res.closes_dropped)
            )?;
        }
        if !s.close_reasons.is_empty() {
            let list = join(
                &mut s
                    .close_reasons
                    .iter()
                    .map(|(why, n)| format!("{n} x {why}")),
            );
            writeln!(o, "  because   {list}")?;
        }
        let cl = &s.client;
        if !r.workers.is_empty() {
            writeln!(
                o,
                "Workers     {:<20} {:>12} {:>10} {:>10} {:>11}",
                "worker", "req/s", "p99 ms", "errors", "start +ms"
            )?;
            for w in &r.workers {
                writeln!(
                    o,
                    "            {:<20} {:>12.0} {:>10} {:>9.4}% {:>11.1}{}",
                    if w.worker_id.is_empty() {
                        &w.run_id
                    } else {
                        &w.worker_id
                    },
                    w.throughput_rps,
                    w.p99_ms.map_or("-".into(), fmt_ms),
                    w.error_rate * 100.0,
                    w.start_offset_ms,
                    if w.saturated {
                        "  (client saturated)"
                    } else {
                        ""
                    }
                )?;
            }
        }
        if cl.cores == 0 {
            writeln!(
                o,
                "Clients     CPU {:.0} ms in all; largest peak RSS {:.1} MiB",
                cl.cpu_ms, cl.peak_rss_mb
            )?;
        } else {
            // A share of the cores and a cost per request only for a run that did some work:
            // over a load that never started they are noise.
            let share = match cl.cpu_us_per_request {
                Some(us) => format!(
                    " = {:.0}% of {} cores; {us:.2} us/request",
                    cl.cpu_share * 100.0,
                    cl.cores
                ),
                None => String::new(),
            };
            writeln!(
                o,
                "Client      CPU {:.0} ms{share}; peak RSS {:.1} MiB{}",
                cl.cpu_ms,
                cl.peak_rss_mb,
                cl.rss_per_conn_kb
                    .map_or(String::new(), |k| format!(", {k:.1} KiB/connection"))
            )?;
        }
        if cl.saturated {
            writeln!(
                o,
                "  ! the client may have been the bottleneck: {}",
                cl.reasons.join("; ")
            )?;
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

        if let Some(b) = &r.baseline {
            writeln!(
                o,
                "Baseline    {} (run {}, {})",
                b.file, b.run_id, b.started_at
            )?;
            for row in &b.rows {
                let now = row.measured.map_or("n/a".into(), |m| format!("{m:.3}"));
                let change = row.change.map_or("-".into(), |c| {
                    if row.metric == "error_rate" {
                        format!("{:+.4} pts", c * 100.0)
                    } else {
                        format!("{:+.1}%", c * 100.0)
                    }
                });
                writeln!(
                    o,
                    "  {:<12} {:>12.3} -> {:>12}  {:>10}  (allowed {:.1}%)  {}",
                    row.metric,
                    row.baseline,
                    now,
                    change,
                    row.allowed * 100.0,
                    match (b.gated, row.passed) {
                        (true, true) => "ok",
                        (true, false) => "REGRESSED",
                        (false, true) => "ok (not gated)",
                        (false, false) => "regressed (not gated)",
                    }
                )?;
            }
            writeln!(o)?;
        }
        if r.verdicts.is_empty() {
            writeln!(o, "Thresholds  none (gate off)")?;
        } else {
            // As wide as the longest condition (a tool's names its tool), at least 26.
            let w = r
                .verdicts
                .iter()
                .map(|v| v.condition.len())
                .max()
                .unwrap_or(0)
                .max(26);
            writeln!(o, "{:<w$} {:<16} RESULT", "THRESHOLD", "MEASURED")?;
            let mut unsure: Vec<(&str, Vec<&str>)> = Vec::new();
            for v in &r.verdicts {
                let res = match (v.passed, &v.inconclusive) {
                    (true, _) => "PASS",
                    (false, Some(why)) => {
                        match unsure.iter_mut().find(|(w, _)| w == why) {
                            Some((_, rows)) => rows.push(&v.metric),
                            None => unsure.push((why, vec![&v.metric])),
                        }
                        "INCONCLUSIVE"
                    }
                    (false, None) => "FAIL",
                };
                writeln!(o, "{:<w$} {:<16} {res}", v.condition, v.measured_text)?;
            }
            for (why, rows) in unsure {
                writeln!(o, "  ? {}: {why}", rows.join(", "))?;
            }
        }
        writeln!(
            o,
            "Verdict: {} (exit {}){}",
            r.outcome.verdict().to_uppercase(),
            r.outcome.code(),
            if c.gate {
                ""
            } else {
                "; the gate was off (--no-gate): nothing was judged"
            }
        )?;
        Ok(o.into_bytes())
    }
}

mod sections;
#[cfg(test)]
mod tests;
mod tools;

pub(crate) use sections::replay_warning;
