//! The regression gate: this run against a previous result file (`--baseline prev.json`),
//! metric by metric, with a tolerance each (`--max-regress p99=+10%,rps=-5%`). Each comparison
//! becomes a verdict like any threshold's, so it shows in the table, the JSON and JUnit.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Metric, Verdict};
use crate::stats::Summary;

/// A previous result, reduced to the figures a regression check compares (read by
/// `result::file::read_baseline`).
#[derive(Debug, Clone, PartialEq)]
pub struct Baseline {
    pub path: PathBuf,
    pub run_id: String,
    pub started_at: String,
    /// Metric name -> value, in the metric's unit (per second, ms, ratio).
    pub values: BTreeMap<&'static str, f64>,
}

/// How much worse a metric may get: a share of the baseline (error rate: percentage points).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    pub metric: Metric,
    /// 0.10 = 10%.
    pub allowed: f64,
}

/// What a report shows of the comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BaselineReport {
    pub file: String,
    pub run_id: String,
    pub started_at: String,
    pub rows: Vec<Comparison>,
    /// Whether the comparison could fail the run (false with `--no-gate`: report only).
    pub gated: bool,
}

/// Compares, and returns the report and the verdicts the gate adds (none with the gate off).
pub fn check(
    s: &Summary,
    baseline: Option<&(Baseline, Vec<Tolerance>)>,
    gate: bool,
) -> (Option<BaselineReport>, Vec<Verdict>) {
    let Some((baseline, tolerances)) = baseline else {
        return (None, Vec::new());
    };
    let rows = compare(s, baseline, tolerances);
    let mut gated = if gate { verdicts(&rows) } else { Vec::new() };
    if s.client.saturated {
        // As for thresholds: a regression a saturated client can explain proves nothing.
        for v in gated.iter_mut().filter(|v| !v.passed) {
            let metric = Metric::from_name(&v.metric).unwrap_or(Metric::P99);
            let op = if metric == Metric::Rps {
                super::Cmp::Ge
            } else {
                super::Cmp::Le
            };
            let t = super::Threshold {
                metric,
                op,
                limit: v.limit,
                tool: None,
            };
            if t.saturation_can_explain(s) {
                v.inconclusive = Some(format!(
                    "the client was the bottleneck ({})",
                    s.client.reasons.join("; ")
                ));
            }
        }
    }
    let report = BaselineReport {
        file: baseline.path.display().to_string(),
        run_id: baseline.run_id.clone(),
        started_at: baseline.started_at.clone(),
        rows,
        gated: gate,
    };
    (Some(report), gated)
}

/// One row of the side-by-side comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Comparison {
    pub metric: String,
    pub baseline: f64,
    pub measured: Option<f64>,
    /// (measured - baseline) / baseline; error rate: measured - baseline.
    pub change: Option<f64>,
    pub allowed: f64,
    pub passed: bool,
}

/// `p99=+10%,rps=-5%,error_rate=+0.1%`. The direction is the metric's: throughput may fall by
/// the amount, everything else may rise by it; a sign that says otherwise is refused.
pub fn parse_tolerances(spec: &str) -> Result<Vec<Tolerance>, String> {
    spec.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|part| {
            let (name, amount) = part
                .split_once('=')
                .ok_or_else(|| format!("'{part}' is not METRIC=+N%"))?;
            let name = name.trim();
            let metric = Metric::from_name(name)
                .filter(|m| m.compares())
                .ok_or_else(|| {
                    let can: Vec<_> = Metric::ALL
                        .iter()
                        .filter(|m| m.compares())
                        .map(|m| m.name())
                        .collect();
                    format!("'{name}' cannot be compared ({})", can.join(", "))
                })?;
            let amount = amount.trim();
            let (sign, digits) = match amount.as_bytes().first() {
                Some(b'+') => (1.0, &amount[1..]),
                Some(b'-') => (-1.0, &amount[1..]),
                _ => (0.0, amount),
            };
            let worse = if metric == Metric::Rps { -1.0 } else { 1.0 };
            if sign != 0.0 && sign != worse {
                return Err(format!(
                    "{name} gets worse by going {}; write {name}={}{digits}",
                    if worse > 0.0 { "up" } else { "down" },
                    if worse > 0.0 { '+' } else { '-' }
                ));
            }
            let v: f64 = digits
                .trim_end_matches('%')
                .parse()
                .map_err(|_| format!("'{amount}' is not a percentage"))?;
            if !v.is_finite() || v < 0.0 {
                return Err(format!("'{amount}' is not a percentage"));
            }
            Ok(Tolerance {
                metric,
                allowed: v / 100.0,
            })
        })
        .collect()
}

/// Compares the run with the baseline; one comparison per tolerance.
pub fn compare(s: &Summary, baseline: &Baseline, tolerances: &[Tolerance]) -> Vec<Comparison> {
    tolerances
        .iter()
        .filter_map(|t| {
            let name = t.metric.name();
            let base = *baseline.values.get(name)?;
            let now = t.metric.measure(s);
            let measured = now.is_finite().then_some(now);
            let limit = match t.metric {
                Metric::Rps => base * (1.0 - t.allowed),
                Metric::ErrorRate => base + t.allowed,
                _ => base * (1.0 + t.allowed),
            };
            let passed = match (t.metric, measured) {
                (_, None) => false,
                (Metric::Rps, Some(m)) => m >= limit,
                (_, Some(m)) => m <= limit,
            };
            let change = measured.map(|m| match t.metric {
                Metric::ErrorRate => m - base,
                _ if base != 0.0 => (m - base) / base,
                _ => 0.0,
            });
            Some(Comparison {
                metric: name.to_owned(),
                baseline: base,
                measured,
                change,
                allowed: t.allowed,
                passed,
            })
        })
        .collect()
}

/// The comparisons as verdicts for the gate.
pub fn verdicts(comparisons: &[Comparison]) -> Vec<Verdict> {
    comparisons
        .iter()
        .map(|c| {
            let metric = Metric::from_name(&c.metric).unwrap_or(Metric::P99);
            let (dir, limit) = match metric {
                Metric::Rps => (">=", c.baseline * (1.0 - c.allowed)),
                Metric::ErrorRate => ("<=", c.baseline + c.allowed),
                _ => ("<=", c.baseline * (1.0 + c.allowed)),
            };
            let sign = if metric == Metric::Rps { '-' } else { '+' };
            Verdict {
                metric: c.metric.clone(),
                limit,
                measured: c.measured,
                passed: c.passed,
                condition: format!(
                    "{} {dir} baseline {}{:.1}%",
                    c.metric,
                    sign,
                    c.allowed * 100.0
                ),
                measured_text: match (c.measured, c.change) {
                    (Some(m), Some(ch)) if metric == Metric::ErrorRate => {
                        format!("{:.4}% ({:+.4} pts)", m * 100.0, ch * 100.0)
                    }
                    (Some(m), Some(ch)) => format!("{} ({:+.1}%)", metric.format(m), ch * 100.0),
                    _ => "n/a".into(),
                },
                inconclusive: None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerances_read_in_the_metric_direction() {
        let t = parse_tolerances("p99=+10%,rps=-5%,error_rate=+0.1%").unwrap();
        assert_eq!(
            t[0],
            Tolerance {
                metric: Metric::P99,
                allowed: 0.10
            }
        );
        assert_eq!(
            t[1],
            Tolerance {
                metric: Metric::Rps,
                allowed: 0.05
            }
        );
        assert!((t[2].allowed - 0.001).abs() < 1e-12);
        assert!(
            parse_tolerances("p99=-10%")
                .unwrap_err()
                .contains("p99=+10%")
        );
        assert!(parse_tolerances("rps=+5%").is_err());
        assert!(
            parse_tolerances("p98=+1%")
                .unwrap_err()
                .contains("cannot be compared")
        );
        assert!(parse_tolerances("p99=lots").is_err());
    }
}
