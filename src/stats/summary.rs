//! `Summary`: everything a run measured, merged from the connection reports and the
//! recorder's histograms. Reporters and the gate read it; nothing here does I/O.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::Histograms;
use crate::run::sample::{ConnReport, Counts};

/// A finished run's measurements.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The URL loaded (for embedded runs, the ephemeral one).
    pub target: String,
    pub embedded: bool,
    /// Measured time: from the synchronized start to the end of sending, or to the last
    /// success if that came later.
    pub duration: Duration,
    pub counts: Counts,
    pub errors_by_code: BTreeMap<String, u64>,
    pub conn_errors_by_code: BTreeMap<String, u64>,
    pub close_codes: BTreeMap<u16, u64>,
    /// Connections that completed the handshake.
    pub connections_opened: u64,
    /// Connections whose setup failed, and why (description -> count).
    pub connections_failed: u64,
    pub setup_failures: BTreeMap<String, u64>,
    /// Whether any server refused a hello (wrong token and the like).
    pub hello_rejected: bool,
    /// Completed requests (succeeded + failed) of each opened connection.
    pub per_conn_completed: Vec<u64>,
    pub histograms: Histograms,
    /// Whether the run was cut short by a signal.
    pub interrupted: bool,
}

impl Summary {
    /// Folds connection reports and histograms into one summary.
    pub fn build(
        target: String,
        embedded: bool,
        duration: Duration,
        reports: &[ConnReport],
        histograms: Histograms,
    ) -> Summary {
        let mut s = Summary {
            target,
            embedded,
            duration,
            counts: Counts::default(),
            errors_by_code: BTreeMap::new(),
            conn_errors_by_code: BTreeMap::new(),
            close_codes: BTreeMap::new(),
            connections_opened: 0,
            connections_failed: 0,
            setup_failures: BTreeMap::new(),
            hello_rejected: false,
            per_conn_completed: Vec::new(),
            histograms,
            interrupted: false,
        };
        for r in reports {
            s.counts += &r.counts;
            add_all(&mut s.errors_by_code, &r.errors_by_code);
            add_all(&mut s.conn_errors_by_code, &r.conn_errors_by_code);
            add_all(&mut s.close_codes, &r.close_codes);
            match &r.setup_failure {
                Some(f) => {
                    s.connections_failed += 1;
                    s.hello_rejected |= f.rejected;
                    *s.setup_failures.entry(f.describe()).or_default() += 1;
                }
                None => {
                    s.connections_opened += 1;
                    s.per_conn_completed
                        .push(r.counts.succeeded + r.counts.failed);
                }
            }
        }
        s
    }

    /// Succeeded requests per second of measured time.
    pub fn throughput(&self) -> f64 {
        let secs = self.duration.as_secs_f64();
        if secs > 0.0 {
            self.counts.succeeded as f64 / secs
        } else {
            0.0
        }
    }

    /// (failed + timed_out + lost) / sent; 0 when nothing was sent.
    pub fn error_rate(&self) -> f64 {
        let c = &self.counts;
        if c.sent == 0 {
            return 0.0;
        }
        (c.failed + c.timed_out + c.lost) as f64 / c.sent as f64
    }

    /// Request latency (response time) at percentile `p` (0-100), in ms; NaN when empty.
    pub fn latency_ms(&self, p: f64) -> f64 {
        percentile_ms(&self.histograms.latency, p)
    }

    /// Connection setup time at percentile `p`, in ms; NaN when empty.
    pub fn connect_ms(&self, p: f64) -> f64 {
        percentile_ms(&self.histograms.connect, p)
    }

    /// Per-connection completed requests: (min, median, max).
    pub fn per_conn_spread(&self) -> Option<(u64, u64, u64)> {
        let mut v = self.per_conn_completed.clone();
        v.sort_unstable();
        Some((*v.first()?, v[v.len() / 2], *v.last()?))
    }
}

/// Percentile `p` (0-100) of a microsecond histogram, in ms; NaN when empty.
pub fn percentile_ms(h: &Histogram<u64>, p: f64) -> f64 {
    if h.is_empty() {
        return f64::NAN;
    }
    h.value_at_quantile(p / 100.0) as f64 / 1e3
}

fn add_all<K: Ord + Clone>(into: &mut BTreeMap<K, u64>, from: &BTreeMap<K, u64>) {
    for (k, v) in from {
        *into.entry(k.clone()).or_default() += v;
    }
}
