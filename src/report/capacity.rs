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
        writeln!(o)?;
        match r.answer {
            Some(a) => writeln!(o, "Capacity: {a:.0} requests/s")?,
            None => writeln!(o, "Capacity: below {:.0} requests/s", r.min_rate)?,
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
        let mut steps: Vec<&Step> = r.steps.iter().collect();
        steps.sort_by(|a, b| a.rate.total_cmp(&b.rate));
        let points = |f: fn(&Step) -> Option<f64>| {
            steps
                .iter()
                .filter_map(|s| f(s).map(|v| (s.rate, v)))
                .collect()
        };
        let chart = svg::line_chart(
            "Latency by request rate",
            XAxis::Linear("requests/s asked"),
            "ms",
            &[
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
            ],
            false,
        );
        let text = String::from_utf8(CapacityText.render(r)?)?;
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        };
        let answer = r
            .answer
            .map_or(format!("below {:.0}", r.min_rate), |a| format!("{a:.0}"));
        let html = format!(
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"/><title>wsbench capacity</title>\
             <style>body{{font-family:sans-serif;max-width:760px;margin:24px auto}}pre{{font-size:12px}}</style></head>\
             <body><h1>Capacity: {answer} requests/s</h1>{chart}<pre>{}</pre></body></html>\n",
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
