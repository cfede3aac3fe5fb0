//! The capacity search's outputs: a text table of every step with the answer, the JSON result
//! (`kind: "capacity"`), and an HTML page charting p99 against the rate asked.

use std::fmt::Write as _;

use crate::result::file::CapacityFile;

use super::svg::{self, Series, XAxis};
use super::{Outputs, Reporter, StdoutMode, write_stderr, write_stdout};
use crate::result::{CapacityResult, Step};
use crate::units::fmt_ms;

pub struct CapacityText;
pub struct CapacityJson;
pub struct CapacityHtml;

impl Reporter<CapacityResult> for CapacityText {
    fn render(&self, r: &CapacityResult) -> anyhow::Result<Vec<u8>> {
        let mut o = String::new();
        writeln!(o, "wsbench capacity -> {}", r.target)?;
        if r.find == "conns" {
            return conns_text(r, o);
        }
        writeln!(
            o,
            "  {} connections, rates {:.0}..{:.0}/s, precision {:.1}%, sustainable when: {}",
            r.settings.conns,
            r.min_rate,
            r.max_rate,
            r.precision * 100.0,
            r.conditions.join(", ")
        )?;
        writeln!(o)?;
        writeln!(
            o,
            "{:>12} {:>12} {:>9} {:>9} {:>9}  VERDICT",
            "RATE/s", "SENT/s", "P50 ms", "P99 ms", "ERRORS"
        )?;
        for s in &r.steps {
            let verdict = if s.sustainable {
                "sustainable".to_owned()
            } else if s.client_saturated {
                "client saturated".to_owned()
            } else {
                format!("not sustainable: {}", s.failed.join("; "))
            };
            writeln!(
                o,
                "{:>12.0} {:>12.0} {:>9} {:>9} {:>8.4}%  {verdict}",
                s.rate,
                s.achieved,
                s.p50_ms.map_or("-".into(), fmt_ms),
                s.p99_ms.map_or("-".into(), fmt_ms),
                s.error_rate * 100.0
            )?;
        }
        answer(r, o, "requests/s", "requests/s")
    }
}

/// The text of a connection search: each step's connections, setup p99 and failures beside
/// the request figures.
fn conns_text(r: &CapacityResult, mut o: String) -> anyhow::Result<Vec<u8>> {
    writeln!(
        o,
        "  connections {:.0}..{:.0}, closed loop, {} in flight each; holds when: {}",
        r.min_rate,
        r.max_rate,
        r.settings.inflight,
        r.conditions.join(", ")
    )?;
    writeln!(o)?;
    writeln!(
        o,
        "{:>8} {:>12} {:>9} {:>12} {:>9} {:>9}  VERDICT",
        "CONNS", "SETUP P99", "FAILED", "REQ/s", "P99 ms", "ERRORS"
    )?;
    for s in &r.steps {
        let verdict = if s.sustainable {
            "holds".to_owned()
        } else if s.client_saturated {
            "client saturated".to_owned()
        } else {
            format!("does not hold: {}", s.failed.join("; "))
        };
        writeln!(
            o,
            "{:>8} {:>9} ms {:>9} {:>12.0} {:>9} {:>8.4}%  {verdict}",
            s.conns,
            s.connect_p99_ms.map_or("-".into(), fmt_ms),
            s.conn_errors,
            s.throughput,
            s.p99_ms.map_or("-".into(), fmt_ms),
            s.error_rate * 100.0
        )?;
    }
    answer(r, o, "concurrent connections", "connections")
}

/// The text's end, for either search: the answer in its unit, why, and the verdict.
fn answer(r: &CapacityResult, mut o: String, unit: &str, below: &str) -> anyhow::Result<Vec<u8>> {
    writeln!(o)?;
    match r.answer {
        Some(a) => writeln!(o, "Capacity: {a:.0} {unit}")?,
        None => writeln!(o, "Capacity: below {:.0} {below}", r.min_rate)?,
    }
    if let Some(reason) = &r.reason {
        writeln!(o, "  {reason}")?;
    }
    writeln!(
        o,
        "Verdict: {} (exit {})",
        r.outcome.verdict().to_uppercase(),
        r.outcome.code()
    )?;
    Ok(o.into_bytes())
}

impl Reporter<CapacityResult> for CapacityJson {
    fn render(&self, r: &CapacityResult) -> anyhow::Result<Vec<u8>> {
        let mut bytes = serde_json::to_vec_pretty(&CapacityFile::of(r))?;
        bytes.push(b'\n');
        Ok(bytes)
    }
}

impl Reporter<CapacityResult> for CapacityHtml {
    fn render(&self, r: &CapacityResult) -> anyhow::Result<Vec<u8>> {
        let conns = r.find == "conns";
        let x = |s: &Step| if conns { f64::from(s.conns) } else { s.rate };
        let mut steps: Vec<&Step> = r.steps.iter().collect();
        steps.sort_by(|a, b| x(a).total_cmp(&x(b)));
        let points = |f: fn(&Step) -> Option<f64>| {
            steps
                .iter()
                .filter_map(|s| f(s).map(|v| (x(s), v)))
                .collect()
        };
        let mut series = vec![
            Series {
                name: "p50",
                color: "#2e86c1",
                points: points(|s| s.p50_ms),
            },
            Series {
                name: "p99",
                color: "#c0392b",
                points: points(|s| s.p99_ms),
            },
        ];
        if conns {
            series.push(Series {
                name: "setup p99",
                color: "#8e44ad",
                points: points(|s| s.connect_p99_ms),
            });
        }
        let (title, axis) = if conns {
            ("Latency by connections", "connections")
        } else {
            ("Latency by request rate", "requests/s asked")
        };
        let chart = svg::line_chart(title, XAxis::Linear(axis), "ms", &series, false);
        let text = String::from_utf8(CapacityText.render(r)?)?;
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        };
        let unit = if conns {
            "concurrent connections"
        } else {
            "requests/s"
        };
        let answer = r
            .answer
            .map_or(format!("below {:.0}", r.min_rate), |a| format!("{a:.0}"));
        let html = format!(
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"/><title>wsbench capacity</title>\
             <style>body{{font-family:sans-serif;max-width:760px;margin:24px auto}}pre{{font-size:12px}}</style></head>\
             <body><h1>Capacity: {answer} {unit}</h1>{chart}<pre>{}</pre></body></html>\n",
            esc(&text)
        );
        Ok(html.into_bytes())
    }
}

/// Prints and writes the capacity search's outputs, as `run` does its own.
pub fn emit(r: &CapacityResult, o: &Outputs, stdout: StdoutMode) -> anyhow::Result<()> {
    let claimed = o.targets().any(|t| t == "-");
    match stdout {
        StdoutMode::Json => {
            write_stderr(&CapacityText.render(r)?);
            write_stdout(&CapacityJson.render(r)?)?;
        }
        _ if claimed => write_stderr(&CapacityText.render(r)?),
        _ => write_stdout(&CapacityText.render(r)?)?,
    }
    if let Some(t) = &o.json {
        emit_to(t, &CapacityJson.render(r)?)?;
    }
    if let Some(t) = &o.html {
        emit_to(t, &CapacityHtml.render(r)?)?;
    }
    Ok(())
}

fn emit_to(target: &str, bytes: &[u8]) -> anyhow::Result<()> {
    super::emit(target, bytes)
}
