//! WHERE THRESHOLDS ARE CHECKED: a run's [`Summary`] against the configured [`Threshold`]s,
//! giving one [`Verdict`] per threshold. The exit code that follows is picked in `run/mod.rs`
//! via [`crate::outcome::Outcome`].

use serde::Serialize;

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
    /// Connection setup (TCP connect + WebSocket upgrade) p99, in milliseconds.
    ConnectP99,
    /// (failed + timed out + lost) / sent.
    ErrorRate,
    /// Seconds the target was unavailable: breaker open, or no connection up.
    Unavailable,
}

impl Metric {
    /// The name used in reports and in threshold expressions.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Rps => "rps",
            Metric::P50 => "p50",
            Metric::P90 => "p90",
            Metric::P99 => "p99",
            Metric::P999 => "p99.9",
            Metric::ConnectP99 => "connect_p99",
            Metric::ErrorRate => "error_rate",
            Metric::Unavailable => "unavailable",
        }
    }

    /// Whether the limit is a floor (`>=`) rather than a ceiling.
    fn is_floor(self) -> bool {
        matches!(self, Metric::Rps)
    }

    fn measure(self, s: &Summary) -> f64 {
        match self {
            Metric::Rps => s.throughput(),
            Metric::P50 => s.latency_ms(50.0),
            Metric::P90 => s.latency_ms(90.0),
            Metric::P99 => s.latency_ms(99.0),
            Metric::P999 => s.latency_ms(99.9),
            Metric::ConnectP99 => s.connect_ms(99.0),
            Metric::ErrorRate => s.error_rate(),
            Metric::Unavailable => s.unavailable.as_secs_f64(),
        }
    }

    fn format(self, v: f64) -> String {
        match self {
            Metric::Rps => format!("{v:.0}/s"),
            Metric::ErrorRate => format!("{:.4}%", v * 100.0),
            Metric::Unavailable => format!("{v:.2} s"),
            _ => format!("{} ms", fmt_ms(v)),
        }
    }
}

/// One limit on one metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    pub metric: Metric,
    /// In the metric's unit: per second, milliseconds, or a ratio.
    pub limit: f64,
}

impl Threshold {
    /// The comparison as users write it: `rps >= 50000/s`, `p99 < 5.00 ms`, `error_rate <= 0%`.
    pub fn describe(&self) -> String {
        let op = match self.metric {
            Metric::Rps => ">=",
            Metric::ErrorRate | Metric::Unavailable => "<=",
            _ => "<",
        };
        format!(
            "{} {op} {}",
            self.metric.name(),
            self.metric.format(self.limit)
        )
    }

    fn holds(&self, measured: f64) -> bool {
        if measured.is_nan() {
            return false;
        }
        match self.metric {
            m if m.is_floor() => measured >= self.limit,
            Metric::ErrorRate | Metric::Unavailable => measured <= self.limit,
            _ => measured < self.limit,
        }
    }
}

/// The outcome of one threshold; the JSON `thresholds[]` entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub metric: &'static str,
    /// The limit, in the metric's unit (per second, ms, ratio).
    pub limit: f64,
    /// The measured value, same unit; null when nothing was measured.
    pub measured: Option<f64>,
    pub passed: bool,
    /// Human form of the threshold, e.g. `p99 < 5.00 ms`.
    pub condition: String,
    /// Human form of the measured value.
    pub measured_text: String,
}

/// Checks every threshold against the summary.
pub fn evaluate(summary: &Summary, thresholds: &[Threshold]) -> Vec<Verdict> {
    thresholds
        .iter()
        .map(|t| {
            let measured = t.metric.measure(summary);
            let known = measured.is_finite();
            Verdict {
                metric: t.metric.name(),
                limit: t.limit,
                measured: known.then_some(measured),
                passed: t.holds(measured),
                condition: t.describe(),
                measured_text: if known {
                    t.metric.format(measured)
                } else {
                    "n/a".into()
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_compare_the_way_they_read() {
        let rps = Threshold {
            metric: Metric::Rps,
            limit: 100.0,
        };
        assert!(rps.holds(100.0) && !rps.holds(99.9));
        let p99 = Threshold {
            metric: Metric::P99,
            limit: 5.0,
        };
        assert!(p99.holds(4.99) && !p99.holds(5.0));
        let err = Threshold {
            metric: Metric::ErrorRate,
            limit: 0.0,
        };
        assert!(err.holds(0.0) && !err.holds(1e-9));
        assert!(!p99.holds(f64::NAN), "nothing measured never passes");
        assert_eq!(p99.describe(), "p99 < 5.00 ms");
        assert_eq!(rps.describe(), "rps >= 100/s");
    }
}
