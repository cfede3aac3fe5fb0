//! `--html`: one self-contained HTML file (inline CSS and SVG, nothing fetched) with the
//! summary, the thresholds, and charts of throughput and latency per second, the latency
//! percentile spectrum, and per-connection throughput. `--plot` writes the spectrum alone.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use super::Reporter;
use super::svg::{self, Series, XAxis};
use crate::result::RunResult;
use crate::stats::summary::percentile_ms;
use crate::units::{fmt_count, fmt_ms};

pub struct HtmlReporter;
pub struct PlotReporter;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Points of the percentile spectrum: x = log10(1/(1-q)), y = latency in ms, up to the
/// resolution the sample count supports.
fn spectrum(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let max_x = (h.len() as f64).log10().clamp(1.0, 5.0);
    let steps = (max_x * 40.0) as usize;
    (0..=steps)
        .map(|i| {
            let x = max_x * i as f64 / steps as f64;
            let q = 1.0 - 10f64.powf(-x);
            (x, h.value_at_quantile(q) as f64 / 1e3)
        })
        .collect()
}

fn spectrum_chart(r: &RunResult, standalone: bool) -> String {
    let h = &r.summary.histograms;
    let mut series = vec![Series {
        name: if r.summary.is_open_loop() {
            "response time"
        } else {
            "service time"
        },
        color: "#c0392b",
        points: spectrum(&h.latency),
    }];
    if r.summary.is_open_loop() {
        series.push(Series {
            name: "service time",
            color: "#2e86c1",
            points: spectrum(&h.service),
        });
    }
    svg::line_chart(
        "Latency by percentile",
        XAxis::Percentile,
        "ms",
        &series,
        standalone,
    )
}

impl Reporter for PlotReporter {
    fn render(&self, r: &RunResult) -> anyhow::Result<Vec<u8>> {
        Ok(spectrum_chart(r, true).into_bytes())
    }
}

impl Reporter for HtmlReporter {
    fn render(&self, r: &RunResult) -> anyhow::Result<Vec<u8>> {
        let s = &r.summary;
        let h = &s.histograms;
        // Whole seconds of the measured window only: the last, partial one (the drain) would
        // read as a collapse.
        let whole = (s.duration.as_secs() as usize).min(s.seconds.len()).max(1);
        let secs: Vec<_> = s.seconds.iter().enumerate().take(whole).collect();
        let per_sec = |f: &dyn Fn(&crate::stats::recorder::Second) -> Option<f64>| {
            secs.iter()
                .filter_map(|(i, x)| f(x).map(|v| (*i as f64, v)))
                .collect::<Vec<_>>()
        };
        let throughput = svg::line_chart(
            "Throughput per second",
            XAxis::Linear("second"),
            "requests/s",
            &[
                Series {
                    name: "succeeded",
                    color: "#27ae60",
                    points: per_sec(&|x| Some(x.tally.succeeded as f64)),
                },
                Series {
                    name: "failed",
                    color: "#c0392b",
                    points: per_sec(&|x| {
                        Some((x.tally.failed + x.tally.timed_out + x.tally.lost) as f64)
                    }),
                },
                Series {
                    name: "dropped",
                    color: "#8e44ad",
                    points: per_sec(&|x| Some(x.tally.dropped as f64)),
                },
            ],
            false,
        );
        let pct = |x: &crate::stats::recorder::Second, p: f64| {
            (!x.latency.is_empty()).then(|| percentile_ms(&x.latency, p))
        };
        let latency = svg::line_chart(
            "Latency per second",
            XAxis::Linear("second"),
            "ms",
            &[
                Series {
                    name: "p50",
                    color: "#2e86c1",
                    points: per_sec(&|x| pct(x, 50.0)),
                },
                Series {
                    name: "p99",
                    color: "#c0392b",
                    points: per_sec(&|x| pct(x, 99.0)),
                },
            ],
            false,
        );
        let bars: Vec<_> = s
            .per_conn
            .iter()
            .map(|c| (c.id.to_string(), c.rps))
            .collect();
        let conns = svg::bar_chart(
            "Throughput per connection",
            "connection",
            "requests/s",
            &bars,
            "#8e44ad",
        );

        let mut o = String::new();
        let verdict = r.outcome.verdict();
        let color = if r.outcome.code() == 0 {
            "#27ae60"
        } else {
            "#c0392b"
        };
        write!(
            o,
            r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"/><title>wsbench {id}</title><style>
body{{font-family:sans-serif;max-width:760px;margin:24px auto;color:#222}}table{{border-collapse:collapse;margin:8px 0 16px}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}}.pass{{color:#27ae60}}.fail{{color:#c0392b}}
.verdict{{font-size:20px;font-weight:bold;color:{color}}}svg{{display:block;margin:12px 0}}</style></head><body>
<h1>wsbench run {id}</h1><p>{target}{embedded} · {conns} connections × {inflight} in flight · tool <code>{tool}</code> · {mode}</p>
<p class="verdict">{verdict_up} (exit {code})</p>"#,
            id = esc(&r.run_id),
            target = esc(&s.target),
            embedded = if s.embedded {
                " (embedded reference server)"
            } else {
                ""
            },
            conns = r.settings.conns,
            inflight = r.settings.inflight,
            tool = esc(&r.settings.tool),
            mode = if s.is_open_loop() {
                "open loop (response time)"
            } else {
                "closed loop (service time)"
            },
            verdict_up = verdict.to_uppercase(),
            code = r.outcome.code(),
        )?;
        if let Some(reason) = &r.reason {
            write!(o, "<p>{}</p>", esc(reason))?;
        }
        let c = &s.counts;
        o.push_str("<h2>Summary</h2><table>");
        let rows = [
            (
                "throughput",
                format!(
                    "{:.0} req/s over {:.2} s",
                    s.throughput(),
                    s.duration.as_secs_f64()
                ),
            ),
            (
                "requests",
                format!(
                    "sent {} = succeeded {} + failed {} + timed out {} + lost {} + unfinished {}",
                    fmt_count(c.sent),
                    fmt_count(c.succeeded),
                    fmt_count(c.failed),
                    fmt_count(c.timed_out),
                    fmt_count(c.lost),
                    fmt_count(c.unfinished)
                ),
            ),
            (
                "schedule",
                if s.is_open_loop() {
                    format!(
                        "scheduled {} = sent {} + dropped {}",
                        fmt_count(c.scheduled()),
                        fmt_count(c.sent),
                        fmt_count(c.dropped)
                    )
                } else {
                    "closed loop (no schedule)".into()
                },
            ),
            (
                "replayed",
                match super::text::replay_warning(c) {
                    Some(w) => format!("{} from the server's cache; {w}", fmt_count(c.replayed)),
                    None => format!("{} from the server's cache", fmt_count(c.replayed)),
                },
            ),
            (
                "error rate",
                format!("{:.4}% (sent but not succeeded)", s.error_rate() * 100.0),
            ),
            (
                "latency (ms)",
                format!(
                    "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
                    fmt_ms(percentile_ms(&h.latency, 50.0)),
                    fmt_ms(percentile_ms(&h.latency, 90.0)),
                    fmt_ms(percentile_ms(&h.latency, 99.0)),
                    fmt_ms(percentile_ms(&h.latency, 99.9)),
                    fmt_ms(percentile_ms(&h.latency, 100.0))
                ),
            ),
            (
                "connect p99",
                format!("{} ms", fmt_ms(percentile_ms(&h.connect, 99.0))),
            ),
            (
                "connections",
                format!(
                    "{} opened, {} failed",
                    s.connections_opened, s.connections_failed
                ),
            ),
        ];
        for (k, v) in rows {
            write!(o, "<tr><th>{k}</th><td>{}</td></tr>", esc(&v))?;
        }
        o.push_str("</table><h2>Thresholds</h2><table><tr><th>threshold</th><th>measured</th><th>result</th></tr>");
        if r.verdicts.is_empty() {
            o.push_str("<tr><td colspan=\"3\">none (gate off)</td></tr>");
        }
        for v in &r.verdicts {
            let (class, word) = if v.passed {
                ("pass", "PASS")
            } else {
                ("fail", "FAIL")
            };
            write!(
                o,
                r#"<tr><td>{}</td><td>{}</td><td class="{class}">{word}</td></tr>"#,
                esc(&v.condition),
                esc(&v.measured_text)
            )?;
        }
        o.push_str("</table><h2>Charts</h2>");
        for chart in [throughput, latency, spectrum_chart(r, false), conns] {
            o.push_str(&chart);
        }
        // A mix: which tool is slow, at a glance.
        if s.per_tool.len() > 1 {
            let bars: Vec<(String, f64)> = s
                .per_tool
                .iter()
                .filter(|(_, t)| !t.histograms.latency.is_empty())
                .map(|(name, t)| {
                    let p99 = crate::stats::summary::percentile_ms(&t.histograms.latency, 99.0);
                    (name.clone(), p99)
                })
                .collect();
            o.push_str(&svg::bar_chart(
                "p99 response time by tool",
                "tool",
                "ms",
                &bars,
                "#d35400",
            ));
        }
        o.push_str("</body></html>\n");
        Ok(o.into_bytes())
    }
}
