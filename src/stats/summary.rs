//! `Summary`: everything a run measured, merged from the connection reports and the
//! recorder. Reporters and the gate read it; nothing here does I/O.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use serde::Serialize;

use super::recorder::{Histograms, Recorder, Second};
use crate::model::BreakerState as State;
use crate::model::ClientCheck;
use crate::model::{ConnReport, Counts, Resilience, SetupKind};

/// How requests were paced.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// Send when a reply frees a slot; latency is service time.
    Closed,
    /// Follow a rate schedule; latency is response time from the intended send.
    Open {
        /// Requests the schedule asked for in the measured window, per second.
        target_rps: f64,
    },
}

/// A circuit breaker transition, `at_s` seconds after the measured window began.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct BreakerEvent {
    pub at_s: f64,
    pub from: State,
    pub to: State,
    /// An OPEN that held requests back too (opened by failed requests), not only connects.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub holds_requests: bool,
}

/// One connection's share of the run.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ConnRow {
    pub id: u32,
    pub sent: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Succeeded per second of measured time.
    pub rps: f64,
    /// Response-time p99 in ms; null without successes.
    pub p99_ms: Option<f64>,
    /// Under 10% of the median connection's completions (succeeded + failed).
    pub starved: bool,
    /// The share of the measured window it was up and could send (0-1); null in files from
    /// before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available: Option<f64>,
}

/// A run that ended before the time it was asked to run.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct EndedEarly {
    /// Seconds of the asked window left when it ended.
    pub left_s: f64,
    /// Why, in words: "every connection was closed by the server".
    pub why: String,
}

/// What the engine knows of a run beside its reports and recorder: where the measured window
/// was, how it was paced, and what happened to the target as a whole.
#[derive(Debug, Clone)]
pub struct Window {
    /// The URL loaded (for embedded runs, the ephemeral one).
    pub target: String,
    pub embedded: bool,
    pub mode: Mode,
    /// Measured time (see [`Summary::duration`]).
    pub duration: Duration,
    /// How long sending went on within the measured window.
    pub send_window: Duration,
    pub warmup_duration: Duration,
    pub measured_from: std::time::Instant,
    pub started_at: SystemTime,
    pub interrupted: bool,
    pub transitions: Vec<BreakerEvent>,
    pub unavailable: Duration,
    /// Time the breaker was OPEN, holding connection attempts back.
    pub connect_held: Duration,
    /// The run ended before the asked window did, and why.
    pub ended_early: Option<EndedEarly>,
    /// `--timeout`: what a timed-out request waited (what a client lag must approach to cause
    /// one).
    pub request_timeout: Duration,
    /// The protocol versions servers chose, by sessions (empty for dialects without one).
    pub versions: BTreeMap<String, u64>,
    /// The tools of the run's calls, in the mix's order (each request's call is an index).
    pub tools: Vec<String>,
}

impl Window {
    /// A closed-loop window of `duration` starting now, nothing else known (tests, examples).
    pub fn closed(target: &str, duration: Duration) -> Window {
        Window {
            target: target.to_owned(),
            embedded: false,
            mode: Mode::Closed,
            duration,
            send_window: duration,
            warmup_duration: Duration::ZERO,
            measured_from: std::time::Instant::now(),
            started_at: SystemTime::now(),
            interrupted: false,
            transitions: Vec::new(),
            unavailable: Duration::ZERO,
            connect_held: Duration::ZERO,
            ended_early: None,
            request_timeout: Duration::from_secs(10),
            versions: BTreeMap::new(),
            tools: Vec::new(),
        }
    }
}

/// A finished run's measurements.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The URL loaded (for embedded runs, the ephemeral one).
    pub target: String,
    pub embedded: bool,
    pub mode: Mode,
    /// Measured time: from the end of warmup to the end of sending, or to the last success
    /// if that came later.
    pub duration: Duration,
    /// How long sending went on within the measured window (the rate's denominator).
    pub send_window: Duration,
    pub counts: Counts,
    /// Requests sent during warmup, by outcome (not in `counts`).
    pub warmup: Counts,
    pub warmup_duration: Duration,
    pub errors_by_code: BTreeMap<String, u64>,
    pub conn_errors_by_code: BTreeMap<String, u64>,
    pub close_codes: BTreeMap<u16, u64>,
    /// What ended connections beyond the close code (`ConnReport::close_reasons`).
    pub close_reasons: BTreeMap<String, u64>,
    /// Connections that carried load (set up by the start, or later on a retry).
    pub connections_opened: u64,
    /// Connections not set up by the synchronized start (some may have come up later on a
    /// retry), and why (description -> count).
    pub connections_failed: u64,
    pub setup_failures: BTreeMap<String, u64>,
    /// What kind of failure each of those descriptions is.
    pub setup_kinds: BTreeMap<String, SetupKind>,
    /// Whether any server refused a hello (wrong token and the like).
    pub hello_rejected: bool,
    /// One row per opened connection.
    pub per_conn: Vec<ConnRow>,
    pub histograms: Histograms,
    /// Per-second intervals of the measured window.
    pub seconds: Vec<Second>,
    pub resilience: Resilience,
    /// Failed reconnect attempts, by description.
    pub reconnect_failures: BTreeMap<String, u64>,
    /// The first few replies that failed validation.
    pub invalid_examples: Vec<String>,
    /// Circuit breaker state changes, in order.
    pub transitions: Vec<BreakerEvent>,
    /// Time within the measured window during which no connection could send: none was up,
    /// or the breaker held requests back.
    pub unavailable: Duration,
    /// Time the breaker was OPEN and held connection attempts back (requests on healthy
    /// connections went on unless it also held those: then it is unavailable time too).
    pub connect_held: Duration,
    /// The run ended before the asked window did, and why.
    pub ended_early: Option<EndedEarly>,
    /// `--timeout`.
    pub request_timeout: Duration,
    /// When the measured window started (transitions' `at_s` count from here).
    pub measured_from: std::time::Instant,
    /// Wall-clock time the measured window started.
    pub started_at: SystemTime,
    /// Whether the run was cut short by a signal.
    pub interrupted: bool,
    /// The client's own CPU, memory, and whether it was the bottleneck.
    pub client: ClientCheck,
    /// The protocol versions servers chose, by sessions (MCP).
    pub versions: BTreeMap<String, u64>,
    /// By tool: outcomes, error codes and response times of its measured requests.
    pub per_tool: BTreeMap<String, ToolSummary>,
    /// `--data-mode unique`: some connection stopped sending because the rows ran out.
    pub rows_ran_out: bool,
    /// Sessions whose first call timed out while later calls succeeded.
    pub first_call_stalls: u64,
}

/// One tool's share of a run.
#[derive(Debug, Clone)]
pub struct ToolSummary {
    pub counts: Counts,
    pub errors_by_code: BTreeMap<String, u64>,
    /// Its successes' per-request histograms (response and service time, lags, phases),
    /// microseconds; the setup ones stay empty (sessions are not any one tool's).
    pub histograms: Histograms,
}

impl ToolSummary {
    /// Failed share: (sent - succeeded) / sent, as the run's.
    pub fn error_rate(&self) -> f64 {
        if self.counts.sent == 0 {
            0.0
        } else {
            (self.counts.sent - self.counts.succeeded.min(self.counts.sent)) as f64
                / self.counts.sent as f64
        }
    }
}

impl Summary {
    /// A summary with nothing counted yet: what `build` folds reports into, and what a merge
    /// adds result files to.
    pub fn empty(target: String, embedded: bool, mode: Mode, duration: Duration) -> Summary {
        Summary {
            target,
            embedded,
            mode,
            duration,
            send_window: duration,
            counts: Counts::default(),
            warmup: Counts::default(),
            warmup_duration: Duration::ZERO,
            errors_by_code: BTreeMap::new(),
            conn_errors_by_code: BTreeMap::new(),
            close_codes: BTreeMap::new(),
            close_reasons: BTreeMap::new(),
            connections_opened: 0,
            connections_failed: 0,
            setup_failures: BTreeMap::new(),
            setup_kinds: BTreeMap::new(),
            hello_rejected: false,
            per_conn: Vec::new(),
            histograms: Histograms::default(),
            seconds: Vec::new(),
            started_at: SystemTime::now(),
            measured_from: std::time::Instant::now(),
            resilience: Resilience::default(),
            reconnect_failures: BTreeMap::new(),
            invalid_examples: Vec::new(),
            transitions: Vec::new(),
            unavailable: Duration::ZERO,
            connect_held: Duration::ZERO,
            ended_early: None,
            request_timeout: Duration::from_secs(10),
            interrupted: false,
            client: ClientCheck::default(),
            versions: BTreeMap::new(),
            per_tool: BTreeMap::new(),
            rows_ran_out: false,
            first_call_stalls: 0,
        }
    }

    /// Folds the run's window, the connection reports and the recorder into one summary, with
    /// the client's self-check judged on it last (it reads the figures); nothing is patched in
    /// afterwards.
    pub fn build(
        window: Window,
        reports: &[ConnReport],
        recorder: Recorder,
        client: impl FnOnce(&Summary) -> ClientCheck,
    ) -> Summary {
        let mut s = Summary::empty(window.target, window.embedded, window.mode, window.duration);
        s.send_window = window.send_window;
        s.warmup_duration = window.warmup_duration;
        s.measured_from = window.measured_from;
        s.started_at = window.started_at;
        s.interrupted = window.interrupted;
        s.transitions = window.transitions;
        s.unavailable = window.unavailable;
        s.connect_held = window.connect_held;
        s.ended_early = window.ended_early;
        s.request_timeout = window.request_timeout;
        s.versions = window.versions;
        // The first call's histograms are the run's minus the others' (recorded apart only
        // for the second call on).
        let mut per_tool_histograms = recorder.per_tool;
        if !window.tools.is_empty() {
            let mut first = recorder.histograms.clone();
            for other in per_tool_histograms.iter().skip(1) {
                first.subtract(other);
            }
            if per_tool_histograms.is_empty() {
                per_tool_histograms.push(first);
            } else {
                per_tool_histograms[0] = first;
            }
        }
        for (i, tool) in window.tools.iter().enumerate() {
            // Steps may call one tool more than once: its figures add up under its name.
            let t = s
                .per_tool
                .entry(tool.clone())
                .or_insert_with(|| ToolSummary {
                    counts: Counts::default(),
                    errors_by_code: BTreeMap::new(),
                    histograms: Histograms::default(),
                });
            if let Some(h) = per_tool_histograms.get(i) {
                t.histograms.add(h);
            }
            for tally in reports.iter().filter_map(|r| r.per_tool.get(i)) {
                t.counts += &tally.counts;
                add_all(&mut t.errors_by_code, &tally.errors_by_code);
            }
        }
        s.histograms = recorder.histograms;
        s.seconds = recorder.seconds;
        let secs = s.duration.as_secs_f64();
        for r in reports {
            s.counts += &r.counts;
            s.warmup += &r.warmup;
            add_all(&mut s.errors_by_code, &r.errors_by_code);
            add_all(&mut s.conn_errors_by_code, &r.conn_errors_by_code);
            add_all(&mut s.close_codes, &r.close_codes);
            add_all(&mut s.close_reasons, &r.close_reasons);
            add_all(&mut s.reconnect_failures, &r.reconnect_failures);
            if s.invalid_examples.len() < 5 {
                s.invalid_examples.extend(
                    r.invalid_examples
                        .iter()
                        .take(5 - s.invalid_examples.len())
                        .cloned(),
                );
            }
            s.resilience += &r.resilience;
            s.rows_ran_out |= r.rows_ran_out;
            s.first_call_stalls += u64::from(r.first_call_stall);
            if let Some(f) = &r.setup_failure {
                s.connections_failed += 1;
                s.hello_rejected |= f.rejected();
                *s.setup_failures.entry(f.describe()).or_default() += 1;
                s.setup_kinds.insert(f.describe(), f.kind);
            }
            match r.opened {
                false => {}
                true => {
                    s.connections_opened += 1;
                    let p99 = r.p99_ms;
                    s.per_conn.push(ConnRow {
                        id: r.id,
                        sent: r.counts.sent,
                        succeeded: r.counts.succeeded,
                        failed: r.counts.failed,
                        rps: if secs > 0.0 {
                            r.counts.succeeded as f64 / secs
                        } else {
                            0.0
                        },
                        p99_ms: p99,
                        starved: false,
                        available: (secs > 0.0).then(|| (r.up.as_secs_f64() / secs).min(1.0)),
                    });
                }
            }
        }
        // Tasks finish in any order; people read connections in theirs.
        s.per_conn.sort_by_key(|c| c.id);
        s.mark_starved();
        s.client = client(&s);
        s
    }

    /// Flags connections under 10% of the median connection's completions (succeeded +
    /// failed: a connection whose calls all fail at the others' pace is not starved).
    pub fn mark_starved(&mut self) {
        if let Some((_, median, _)) = self.per_conn_spread() {
            for row in &mut self.per_conn {
                row.starved = ((row.succeeded + row.failed) as f64) < 0.1 * median as f64;
            }
        }
    }

    /// Setup failures of one kind.
    pub fn setup_failures_of(&self, kind: SetupKind) -> u64 {
        self.setup_failures
            .iter()
            .filter(|(why, _)| self.setup_kinds.get(*why) == Some(&kind))
            .map(|(_, n)| n)
            .sum()
    }

    /// Succeeded requests per second of measured time.
    pub fn throughput(&self) -> f64 {
        per_second(self.counts.succeeded, self.duration)
    }

    /// Requests sent per second of measured time.
    pub fn send_rate(&self) -> f64 {
        per_second(self.counts.sent, self.send_window)
    }

    /// (sent - succeeded) / sent: failed, timed out, lost and unfinished all count, since
    /// anything not answered is not a success. 0 when nothing was sent.
    pub fn error_rate(&self) -> f64 {
        let c = &self.counts;
        if c.sent == 0 {
            return 0.0;
        }
        c.not_succeeded() as f64 / c.sent as f64
    }

    /// Request latency (response time) at percentile `p` (0-100), in ms; NaN when empty.
    pub fn latency_ms(&self, p: f64) -> f64 {
        percentile_ms(&self.histograms.latency, p)
    }

    /// Connection setup time at percentile `p`, in ms; NaN when empty.
    pub fn connect_ms(&self, p: f64) -> f64 {
        percentile_ms(&self.histograms.connect, p)
    }

    /// Per-connection completed requests (succeeded + failed): (min, median, max).
    pub fn per_conn_spread(&self) -> Option<(u64, u64, u64)> {
        let mut v: Vec<u64> = self
            .per_conn
            .iter()
            .map(|c| c.succeeded + c.failed)
            .collect();
        v.sort_unstable();
        Some((*v.first()?, v[v.len() / 2], *v.last()?))
    }

    /// Jain's fairness index of per-connection throughput: 1 = perfectly even, 1/n = one
    /// connection got everything.
    pub fn jain_fairness(&self) -> Option<f64> {
        let xs: Vec<f64> = self.per_conn.iter().map(|c| c.succeeded as f64).collect();
        let sum: f64 = xs.iter().sum();
        let sq: f64 = xs.iter().map(|x| x * x).sum();
        (sq > 0.0).then(|| sum * sum / (xs.len() as f64 * sq))
    }

    /// Connections that starved (under 10% of the median's throughput).
    pub fn starved(&self) -> Vec<u32> {
        self.per_conn
            .iter()
            .filter(|c| c.starved)
            .map(|c| c.id)
            .collect()
    }

    /// Whether latency is response time (open loop) rather than service time.
    pub fn is_open_loop(&self) -> bool {
        matches!(self.mode, Mode::Open { .. })
    }
}

fn per_second(n: u64, d: Duration) -> f64 {
    let secs = d.as_secs_f64();
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
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
