//! A finished run as everything downstream reads it: the summary, the verdicts, the outcome and
//! its reason, and what came with it (the embedded server's counters, a merge's workers, the
//! baseline comparison). Produced by `run` and by `merge`; reporters render it.

pub mod file;
mod read;
pub mod tools;

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::gate::{Verdict, baseline::BaselineReport};
use crate::model::StatsSnapshot;
use crate::outcome::Outcome;
use crate::stats::Summary;

/// The settings a run (or a merge, or a capacity search) was made with, as reports show them.
/// The token is never here, only whether one was set.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Settings {
    pub conns: u32,
    pub inflight: u32,
    pub duration: Duration,
    pub requests: Option<u64>,
    pub tool: String,
    pub args: Option<String>,
    pub session_prefix: String,
    pub worker_id: String,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub drain: Duration,
    pub token_set: bool,
    /// Whether thresholds could fail the run (`--no-gate` turns it off).
    pub gate: bool,
    pub breaker_enabled: bool,
    /// The target was the embedded reference server.
    pub embedded: bool,
    /// The dialect spoken (`tool-call`, `mcp`).
    pub protocol: String,
    /// stdio: the log file of the spawned servers' stderr.
    pub stderr_log: Option<String>,
    /// How messages travel: `websocket`, `http` (MCP Streamable HTTP) or `stdio`.
    pub transport: String,
    /// `--data`: `rows.jsonl: 10,000 rows (1.2 MiB), round-robin`.
    pub data: Option<String>,
}

/// Everything a finished run produced; what the reporters render.
#[derive(Debug)]
pub struct RunResult {
    /// The settings it ran with, as reports show them.
    pub settings: Settings,
    pub run_id: String,
    pub summary: Summary,
    pub verdicts: Vec<Verdict>,
    pub outcome: Outcome,
    /// Why the run could not run or was cut short, when it was.
    pub reason: Option<String>,
    /// The embedded server's own counters, for embedded runs.
    pub server: Option<StatsSnapshot>,
    /// A merge: one row per worker.
    pub workers: Vec<WorkerRow>,
    /// `--baseline`: this run side by side with the previous one.
    pub baseline: Option<BaselineReport>,
}

/// One worker of a merge, as the per-worker table shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WorkerRow {
    pub worker_id: String,
    pub run_id: String,
    pub file: String,
    pub throughput_rps: f64,
    pub sent: u64,
    pub succeeded: u64,
    pub error_rate: f64,
    pub p99_ms: Option<f64>,
    /// When this worker's measured window began, relative to the earliest worker's.
    pub start_offset_ms: f64,
    pub saturated: bool,
}

/// The exit outcome and, when it is not a plain pass or fail, why. A failed verdict that
/// proves nothing (too few samples; a client that was the bottleneck and could have caused
/// it) is inconclusive; the run is inconclusive only when every failed verdict is.
pub fn judge(s: &Summary, verdicts: &[Verdict]) -> (Outcome, Option<String>) {
    use crate::model::SetupKind;
    // The most frequent cause: a breaker that opened after the failures is their consequence.
    let first_failure = || {
        let mut causes: Vec<_> = s
            .setup_failures
            .iter()
            .filter(|(why, _)| s.setup_kinds.get(*why) != Some(&SetupKind::Breaker))
            .collect();
        causes.sort_by_key(|(_, n)| std::cmp::Reverse(**n));
        causes
            .first()
            .map(|(why, _)| (*why).clone())
            .or_else(|| s.setup_failures.keys().next().cloned())
            .unwrap_or_default()
    };
    if s.interrupted {
        (Outcome::Interrupted, Some("interrupted by signal".into()))
    } else if s.connections_opened == 0 && s.hello_rejected {
        let why = s
            .setup_failures
            .keys()
            .find(|k| s.setup_kinds.get(*k) == Some(&SetupKind::Rejected))
            .cloned()
            .unwrap_or_else(first_failure);
        // A refused token says where a token goes; a web page is no session at all.
        let refused = ["rejected", "HTTP 401", "HTTP 403"]
            .iter()
            .any(|w| why.contains(w));
        let why = if refused {
            format!(
                "the server rejected a hello: {why} (pass the token with --token or \
                 WSBENCH_TOKEN; MCP sends it as Authorization: Bearer)"
            )
        } else {
            format!("the server refused the session: {why}")
        };
        (Outcome::CouldNotRun, Some(why))
    } else if s.connections_opened == 0 {
        let why = format!("every connection failed ({})", first_failure());
        (Outcome::CouldNotRun, Some(why))
    } else {
        let failed: Vec<_> = verdicts.iter().filter(|v| !v.passed).collect();
        let mut unsure: Vec<String> = Vec::new();
        for why in failed.iter().filter_map(|v| v.inconclusive.as_ref()) {
            if !unsure.contains(why) {
                unsure.push(why.clone());
            }
        }
        let early = s.ended_early.as_ref().map(|e| {
            format!(
                "the run ended {:.2} s before the time asked: {}",
                e.left_s, e.why
            )
        });
        if failed.is_empty() {
            (Outcome::Passed, early)
        } else if failed.iter().all(|v| v.inconclusive.is_some()) {
            (Outcome::Inconclusive, Some(unsure.join("; ")))
        } else {
            (Outcome::ThresholdFailed, early)
        }
    }
}

/// One step of a `wsbench capacity` search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Step {
    /// The rate asked for, requests/s (0 in a connection search: closed loop).
    pub rate: f64,
    /// The connections the step ran with (the searched number in `--find conns`).
    #[serde(default)]
    pub conns: u32,
    /// Connection setup p99 over every connection of the step, ms.
    #[serde(default)]
    pub connect_p99_ms: Option<f64>,
    /// Connections that could not be set up.
    #[serde(default)]
    pub conn_errors: u64,
    /// The rate sent.
    pub achieved: f64,
    /// Succeeded requests per second (what the server sustained).
    pub throughput: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub error_rate: f64,
    /// The thresholds held and the client was not saturated.
    pub sustainable: bool,
    /// The client was the bottleneck at this step.
    pub client_saturated: bool,
    /// What failed, in words.
    pub failed: Vec<String>,
}

/// The search and its answer.
#[derive(Debug, Clone)]
pub struct CapacityResult {
    pub target: String,
    /// What was searched: "rate" (requests/s) or "conns" (concurrent connections).
    pub find: &'static str,
    /// The settings it ran with, as reports show them.
    pub settings: Settings,
    pub steps: Vec<Step>,
    /// The highest sustainable rate (or connection count) found; `None` when even the lowest
    /// fails.
    pub answer: Option<f64>,
    /// The searched range: `--min-rate`/`--max-rate`, or `--min-conns`/`--max-conns`.
    pub min_rate: f64,
    pub max_rate: f64,
    pub precision: f64,
    /// The conditions each step was judged by.
    pub conditions: Vec<String>,
    pub outcome: Outcome,
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::Verdict;
    use crate::stats::Recorder;
    use crate::stats::summary::Window;

    fn verdict(passed: bool, inconclusive: Option<&str>) -> Verdict {
        Verdict {
            metric: "p99".into(),
            limit: 5.0,
            measured: Some(if passed { 1.0 } else { 9.0 }),
            passed,
            condition: "p99 < 5.00 ms".into(),
            measured_text: "x".into(),
            inconclusive: inconclusive.map(str::to_owned),
        }
    }

    fn summary(saturated: bool) -> Summary {
        Summary::build(
            Window::closed("ws://x", std::time::Duration::from_secs(1)),
            &[crate::model::ConnReport {
                opened: true,
                ..crate::model::ConnReport::default()
            }],
            Recorder::default(),
            |_| crate::model::ClientCheck {
                saturated,
                reasons: vec!["client CPU at 97% of its 2 cores".into()],
                ..Default::default()
            },
        )
    }

    #[test]
    fn a_failure_under_a_saturated_client_is_inconclusive_and_a_pass_stays_a_pass() {
        let s = summary(true);
        let p99 = crate::gate::Threshold::new(crate::gate::Metric::P99, 0.001);
        let v = crate::gate::evaluate(&s, &[p99]);
        let (o, why) = judge(&s, &v);
        assert_eq!(o, Outcome::Inconclusive);
        assert!(why.unwrap().contains("client was the bottleneck"));
        assert_eq!(
            judge(&summary(true), &[verdict(true, None)]).0,
            Outcome::Passed
        );
        assert_eq!(
            judge(&summary(false), &[verdict(false, None)]).0,
            Outcome::ThresholdFailed
        );
        let (o, why) = judge(
            &summary(false),
            &[verdict(false, Some("p99.9 from 12 samples"))],
        );
        assert_eq!(
            (o, why.as_deref()),
            (Outcome::Inconclusive, Some("p99.9 from 12 samples"))
        );
    }
}
