//! WHERE THRESHOLDS ARE CHECKED: a run's [`Summary`] against the configured [`Threshold`]s,
//! giving one [`Verdict`] per threshold. The exit code that follows is picked in `run/mod.rs`
//! via [`crate::outcome::Outcome`].

pub mod baseline;
pub mod threshold;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::stats::Summary;
use crate::units::fmt_ms;

/// A measured quantity a threshold can limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Succeeded requests per second of measured time; higher is better.
    Rps,
    /// Request latency percentiles (response time), in milliseconds.
    P50,
    P90,
    P99,
    P999,
    /// Slowest request, in milliseconds.
    Max,
    /// Connection setup (TCP connect + WebSocket upgrade) p99, in milliseconds.
    ConnectP99,
    /// hello to hello_ack p99, in milliseconds.
    HelloP99,
    /// (sent - succeeded) / sent: failed, timed out, lost and unfinished.
    ErrorRate,
    /// Seconds the target was unavailable: breaker open, or no connection up.
    Unavailable,
    /// Open loop: slots of the schedule never sent.
    Dropped,
    /// Connections not set up by the synchronized start.
    ConnectionErrors,
}

impl Metric {
    /// Every metric, in the order reports list them.
    pub const ALL: [Metric; 12] = [
        Metric::Rps,
        Metric::P50,
        Metric::P90,
        Metric::P99,
        Metric::P999,
        Metric::Max,
        Metric::ConnectP99,
        Metric::HelloP99,
        Metric::ErrorRate,
        Metric::Unavailable,
        Metric::Dropped,
        Metric::ConnectionErrors,
    ];

    /// The metric a name stands for: its own, or the alias `p999`. The one name table that
    /// threshold expressions, `--max-regress` and the baseline's verdicts all read.
    pub fn from_name(name: &str) -> Option<Metric> {
        if name == "p999" {
            return Some(Metric::P999);
        }
        Metric::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Every name an expression accepts, aliases included.
    pub fn names() -> Vec<&'static str> {
        let mut names: Vec<_> = Metric::ALL.iter().map(|m| m.name()).collect();
        names.push("p999");
        names
    }

    /// Whether `--max-regress` can compare it with a baseline (counts and downtime are judged
    /// by thresholds only).
    pub fn compares(self) -> bool {
        !matches!(
            self,
            Metric::Unavailable | Metric::Dropped | Metric::ConnectionErrors
        )
    }

    /// Where the result file keeps this metric (a JSON pointer into `RunFile`): what
    /// `--baseline` reads of a previous run.
    pub fn pointer(self) -> &'static str {
        match self {
            Metric::Rps => "/throughput_rps",
            Metric::P50 => "/latency_ms/p50",
            Metric::P90 => "/latency_ms/p90",
            Metric::P99 => "/latency_ms/p99",
            Metric::P999 => "/latency_ms/p999",
            Metric::Max => "/latency_ms/max",
            Metric::ConnectP99 => "/connect_ms/p99",
            Metric::HelloP99 => "/hello_ms/p99",
            Metric::ErrorRate => "/error_rate",
            Metric::Unavailable => "/resilience/unavailable_s",
            Metric::Dropped => "/counts/dropped",
            Metric::ConnectionErrors => "/connections/failed",
        }
    }

    /// The name used in reports and in threshold expressions.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Rps => "rps",
            Metric::P50 => "p50",
            Metric::P90 => "p90",
            Metric::P99 => "p99",
            Metric::P999 => "p99.9",
            Metric::Max => "max",
            Metric::ConnectP99 => "connect_p99",
            Metric::HelloP99 => "hello_p99",
            Metric::ErrorRate => "error_rate",
            Metric::Unavailable => "unavailable",
            Metric::Dropped => "dropped",
            Metric::ConnectionErrors => "connection_errors",
        }
    }

    /// The comparison a bare limit on this metric means: a floor for throughput, a strict
    /// ceiling for latencies, an inclusive one for error rate and downtime (0 = none at all).
    pub fn default_cmp(self) -> Cmp {
        match self {
            Metric::Rps => Cmp::Ge,
            Metric::ErrorRate
            | Metric::Unavailable
            | Metric::Dropped
            | Metric::ConnectionErrors => Cmp::Le,
            _ => Cmp::Lt,
        }
    }

    /// The metric's value in this run (NaN when nothing was measured).
    pub fn measure(self, s: &Summary) -> f64 {
        match self {
            Metric::Rps => s.throughput(),
            Metric::P50 => s.latency_ms(50.0),
            Metric::P90 => s.latency_ms(90.0),
            Metric::P99 => s.latency_ms(99.0),
            Metric::P999 => s.latency_ms(99.9),
            Metric::Max => s.latency_ms(100.0),
            Metric::HelloP99 => crate::stats::summary::percentile_ms(&s.histograms.hello, 99.0),
            Metric::ConnectP99 => s.connect_ms(99.0),
            Metric::ErrorRate => s.error_rate(),
            Metric::Unavailable => s.unavailable.as_secs_f64(),
            Metric::Dropped => s.counts.dropped as f64,
            Metric::ConnectionErrors => s.connections_failed as f64,
        }
    }

    /// The histogram a percentile metric reads, its quantile, and so the samples it needs:
    /// at least 1/(1-q) (p99.9 needs 1,000 requests to mean anything). Only request latencies
    /// are samples; connection setup and hello are a census (every connection is measured), so
    /// their percentiles are exact over any number.
    fn samples(self, s: &Summary) -> Option<(u64, u64)> {
        let h = &s.histograms;
        let (hist, q): (_, f64) = match self {
            Metric::P50 => (&h.latency, 0.5),
            Metric::P90 => (&h.latency, 0.9),
            Metric::P99 => (&h.latency, 0.99),
            Metric::P999 => (&h.latency, 0.999),
            _ => return None,
        };
        Some((hist.len(), (1.0 / (1.0 - q)).round() as u64))
    }

    /// The value in the metric's unit, for people.
    pub fn format(self, v: f64) -> String {
        match self {
            Metric::Rps => format!("{v:.0}/s"),
            Metric::ErrorRate => format!("{:.4}%", v * 100.0),
            Metric::Unavailable => format!("{v:.2} s"),
            Metric::Dropped | Metric::ConnectionErrors => format!("{v:.0}"),
            _ => format!("{} ms", fmt_ms(v)),
        }
    }
}

/// How a measured value must compare with its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    fn symbol(self) -> &'static str {
        match self {
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
        }
    }
}

/// One limit on one metric, of the whole run or of one tool's calls.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub metric: Metric,
    pub op: Cmp,
    /// In the metric's unit: per second, milliseconds, a ratio, or seconds (unavailable).
    pub limit: f64,
    /// `p99{tool=search}`: judged on that tool's calls alone.
    pub tool: Option<String>,
}

impl Threshold {
    /// A limit with the metric's usual comparison (what the dedicated flags mean).
    pub fn new(metric: Metric, limit: f64) -> Self {
        Threshold {
            metric,
            op: metric.default_cmp(),
            limit,
            tool: None,
        }
    }

    /// The metric as written: `p99`, or `p99{tool=search}`.
    pub fn name(&self) -> String {
        match &self.tool {
            Some(tool) => format!("{}{{tool={tool}}}", self.metric.name()),
            None => self.metric.name().to_owned(),
        }
    }

    /// What the threshold judges, measured: the run's figure, or its tool's (NaN when the
    /// tool made no call).
    fn measure(&self, s: &Summary) -> f64 {
        let Some(tool) = &self.tool else {
            return self.metric.measure(s);
        };
        let Some(t) = s.per_tool.get(tool) else {
            return f64::NAN;
        };
        let pct = |p| {
            if t.histograms.latency.is_empty() {
                f64::NAN
            } else {
                crate::stats::summary::percentile_ms(&t.histograms.latency, p)
            }
        };
        match self.metric {
            Metric::P50 => pct(50.0),
            Metric::P90 => pct(90.0),
            Metric::P99 => pct(99.0),
            Metric::P999 => pct(99.9),
            Metric::Max => pct(100.0),
            Metric::ErrorRate if t.counts.sent == 0 => f64::NAN,
            Metric::ErrorRate => t.error_rate(),
            Metric::Rps => {
                let secs = s.duration.as_secs_f64();
                if secs > 0.0 {
                    t.counts.succeeded as f64 / secs
                } else {
                    f64::NAN
                }
            }
            _ => f64::NAN,
        }
    }

    /// The comparison as users write it: `rps >= 50000/s`, `p99 < 5.00 ms`, `error_rate <= 0%`.
    pub fn describe(&self) -> String {
        let op = self.op.symbol();
        format!("{} {op} {}", self.name(), self.metric.format(self.limit))
    }

    fn holds(&self, measured: f64) -> bool {
        if measured.is_nan() {
            return false;
        }
        match self.op {
            Cmp::Lt => measured < self.limit,
            Cmp::Le => measured <= self.limit,
            Cmp::Gt => measured > self.limit,
            Cmp::Ge => measured >= self.limit,
        }
    }
}

/// The outcome of one threshold; the JSON `thresholds[]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Verdict {
    pub metric: String,
    /// The limit, in the metric's unit (per second, ms, ratio).
    pub limit: f64,
    /// The measured value, same unit; null when nothing was measured.
    pub measured: Option<f64>,
    pub passed: bool,
    /// Human form of the threshold, e.g. `p99 < 5.00 ms`.
    pub condition: String,
    /// Human form of the measured value.
    pub measured_text: String,
    /// Why this verdict proves nothing (too few samples for the percentile), if so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inconclusive: Option<String>,
}

/// A timeout this many times the client's own worst lag or more cannot be the client's doing.
const FAR_LONGER: f64 = 10.0;

impl Threshold {
    /// Whether a client that was the bottleneck (its CPU, or its pacer's lateness) can explain
    /// this threshold's failure. Latency, throughput and dropped slots: yes. An error rate or
    /// connection errors: only the part a slow client can cause (requests unfinished at the
    /// end, timeouts not far longer than its lag, setups that timed out); explicit errors,
    /// unmatched ids, refusals and losses are the server's, so when the rest alone fails the
    /// threshold the failure stands. Downtime never.
    fn saturation_can_explain(&self, s: &Summary) -> bool {
        match self.metric {
            Metric::Rps
            | Metric::P50
            | Metric::P90
            | Metric::P99
            | Metric::P999
            | Metric::Max
            | Metric::ConnectP99
            | Metric::HelloP99
            | Metric::Dropped => true,
            Metric::Unavailable => false,
            Metric::ConnectionErrors => {
                let timeouts = s.setup_failures_of(crate::model::SetupKind::Timeout);
                self.holds(s.connections_failed.saturating_sub(timeouts) as f64)
            }
            Metric::ErrorRate => {
                let c = match &self.tool {
                    None => &s.counts,
                    Some(tool) => match s.per_tool.get(tool) {
                        Some(t) => &t.counts,
                        None => return false,
                    },
                };
                if c.sent == 0 {
                    return false;
                }
                let lag_max_ms = s.histograms.client_lag.max() as f64 / 1e3;
                let timeout_ms = s.request_timeout.as_secs_f64() * 1e3;
                let slow_client_timeouts = if timeout_ms < FAR_LONGER * lag_max_ms {
                    c.timed_out
                } else {
                    0
                };
                let servers = c.not_succeeded() - c.unfinished.min(c.not_succeeded());
                let servers = servers.saturating_sub(slow_client_timeouts);
                self.holds(servers as f64 / c.sent as f64)
            }
        }
    }
}

/// Checks every threshold against the summary. A threshold that failed while the client was
/// the bottleneck is inconclusive when the client's saturation can explain it
/// ([`Threshold::saturation_can_explain`]), and says so; the rest stand.
pub fn evaluate(summary: &Summary, thresholds: &[Threshold]) -> Vec<Verdict> {
    thresholds
        .iter()
        .map(|t| {
            let measured = t.measure(summary);
            let known = measured.is_finite();
            let samples = match &t.tool {
                None => t.metric.samples(summary),
                // A tool's percentiles are over its own successes.
                Some(tool) => t.metric.samples(summary).map(|(_, need)| {
                    let n = summary
                        .per_tool
                        .get(tool)
                        .map_or(0, |x| x.histograms.latency.len());
                    (n, need)
                }),
            };
            let passed = t.holds(measured);
            let saturated = (!passed
                && summary.client.saturated
                && t.saturation_can_explain(summary))
            .then(|| {
                format!(
                    "the client was the bottleneck ({})",
                    summary.client.reasons.join("; ")
                )
            });
            let inconclusive = saturated.or_else(|| {
                samples.and_then(|(n, need)| {
                    (n > 0 && n < need).then(|| {
                        format!("{} from {n} samples proves little (needs {need})", t.name())
                    })
                })
            });
            Verdict {
                metric: t.name(),
                limit: t.limit,
                measured: known.then_some(measured),
                passed,
                condition: t.describe(),
                measured_text: if known {
                    t.metric.format(measured)
                } else {
                    "n/a".into()
                },
                inconclusive,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_compare_the_way_they_read() {
        let rps = Threshold::new(Metric::Rps, 100.0);
        assert!(rps.holds(100.0) && !rps.holds(99.9));
        let p99 = Threshold::new(Metric::P99, 5.0);
        assert!(p99.holds(4.99) && !p99.holds(5.0));
        let err = Threshold::new(Metric::ErrorRate, 0.0);
        assert!(err.holds(0.0) && !err.holds(1e-9));
        assert!(!p99.holds(f64::NAN), "nothing measured never passes");
        assert_eq!(p99.describe(), "p99 < 5.00 ms");
        assert_eq!(rps.describe(), "rps >= 100/s");
    }
}
