//! The result file: ONE serde type per kind of file (`RunFile` for `run` and `merge`,
//! `CapacityFile` for `capacity`), written by the JSON reporters, read back by `merge` and by
//! `--baseline`, and the source of `schema/result.v1.json`. Key names are a contract with users'
//! scripts: add freely (with `#[serde(default)]` so older files still read), rename none.

use std::collections::BTreeMap;

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Serializer as _, V2DeflateSerializer};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use super::read::{ResultDocument, read_baseline};
use super::{CapacityResult, RunResult, Step, WorkerRow};
use crate::gate::Verdict;
use crate::gate::baseline::BaselineReport;
use crate::model::{ClientCheck, Counts, RESULT_SCHEMA_VERSION, Resilience, StatsSnapshot};
use crate::outcome::Outcome;
use crate::stats::summary::{BreakerEvent, ConnRow, Mode, percentile_ms};

/// A `run` or `merge` result (`--json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "wsbench run or merge result")]
pub struct RunFile {
    pub schema_version: u32,
    pub wsbench_version: String,
    /// pass, fail, could_not_run, inconclusive or interrupted.
    pub verdict: Outcome,
    /// The process exit code that went with the verdict.
    pub exit_code: u8,
    /// Why the run could not run, was inconclusive or was cut short.
    pub reason: Option<String>,
    pub run_id: String,
    /// This worker's id (a merge: "merged").
    #[serde(default)]
    pub worker_id: String,
    pub target: String,
    pub embedded: bool,
    /// Measured time in seconds: the time asked (or the last success, if later), even when the
    /// run ended before it (see `ended_early`).
    pub duration_s: f64,
    /// The run ended before the time asked: how much was left and why (every connection
    /// closed by the server with `--reconnect off`, say). The time left counts as unavailable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_early: Option<crate::stats::summary::EndedEarly>,
    /// Succeeded requests per second of measured time.
    pub throughput_rps: f64,
    /// (sent - succeeded) / sent.
    pub error_rate: f64,
    /// `closed` (send on reply) or `open` (rate schedule).
    pub mode: LoopMode,
    /// What `latency_ms` measures: "service" (closed loop) or "response" (open loop).
    pub latency_kind: LatencyKind,
    /// Wall-clock start and end of the measured window (RFC 3339).
    pub started_at: String,
    pub ended_at: String,
    /// Open loop: target and achieved rates, and how far sending lagged its schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<RateBlock>,
    pub warmup: WarmupBlock,
    pub settings: FileSettings,
    pub counts: Counts,
    /// sent = succeeded + failed + timed_out + lost + unfinished.
    pub identity_holds: bool,
    pub errors_by_code: BTreeMap<String, u64>,
    /// Replies that failed `--validate-sample` checks, first few.
    #[serde(default)]
    pub invalid_examples: Vec<String>,
    pub conn_errors_by_code: BTreeMap<String, u64>,
    /// WebSocket close codes received during load, by code.
    pub close_codes: BTreeMap<String, u64>,
    /// What ended connections beyond the close code: invalid UTF-8, a protocol violation, an
    /// invalid close code (which the WebSocket library reports as 1002).
    #[serde(default)]
    pub close_reasons: BTreeMap<String, u64>,
    pub latency_ms: Percentiles,
    pub service_ms: Percentiles,
    pub connect_ms: Percentiles,
    pub hello_ms: Percentiles,
    /// Setup phases: TCP connect, TLS, WebSocket upgrade, hello.
    pub handshake_ms: BTreeMap<String, Percentiles>,
    /// Tool-call phases the server signalled (absent when it sent none): send to first
    /// `call_tool_ack`, send to first `progress`/`stream_chunk`, send to the stream's end.
    #[serde(default)]
    pub phases_ms: BTreeMap<String, Percentiles>,
    /// Client lag (send minus the moment it could have gone) and schedule lag (send minus slot).
    pub client_lag_ms: Percentiles,
    pub schedule_lag_ms: Percentiles,
    pub connections: Connections,
    pub per_connection: PerConnection,
    /// One entry per second of the measured window.
    pub timeline: Vec<TimelineRow>,
    pub resilience: ResilienceBlock,
    /// The load generator's own CPU and memory, and whether it was the bottleneck.
    pub client: ClientCheck,
    /// `--baseline`: the previous run's figures beside this one's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineReport>,
    /// A merge: one row per worker file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workers: Vec<WorkerRow>,
    pub thresholds: Vec<Verdict>,
    /// Name -> HdrHistogram V2 + deflate, base64: exact, and what `merge` adds.
    pub histograms: BTreeMap<String, String>,
    /// Sessions whose first call timed out while later calls succeeded (`--check first-call`).
    #[serde(default)]
    pub first_call_stalls: u64,
    /// By tool: outcomes, error codes, percentiles and histogram (`result::tools`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub per_tool: BTreeMap<String, super::tools::ToolBlock>,
    /// MCP: the protocol versions the servers chose, by sessions.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub protocol_versions: BTreeMap<String, u64>,
    /// The embedded reference server's own counters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<StatsSnapshot>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LoopMode {
    Closed,
    Open,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LatencyKind {
    Service,
    Response,
}

/// The settings a run was made with; the token itself is never here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FileSettings {
    pub conns: u32,
    pub inflight: u32,
    pub duration_s: f64,
    pub requests: Option<u64>,
    pub tool: String,
    pub args: Option<String>,
    pub session_prefix: String,
    pub connect_timeout_ms: f64,
    pub timeout_ms: f64,
    pub drain_ms: f64,
    /// Whether a token was sent.
    pub token_set: bool,
    /// Whether thresholds could fail the run.
    pub gate: bool,
    /// The dialect spoken: `tool-call` or `mcp`.
    #[serde(default = "tool_call")]
    pub protocol: String,
    /// How messages travelled: `websocket`, `http` or `stdio`.
    #[serde(default = "websocket")]
    pub transport: String,
    /// stdio: the log file of the spawned servers' stderr.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_log: Option<String>,
    /// `--data`: the file, its rows and how requests took them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// `--data-mode unique`: the rows ran out and sending stopped there.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rows_ran_out: bool,
}

fn websocket() -> String {
    "websocket".into()
}

fn tool_call() -> String {
    "tool-call".into()
}

/// Milliseconds; null when nothing was recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Percentiles {
    pub count: u64,
    pub min: Option<f64>,
    pub mean: Option<f64>,
    pub stdev: Option<f64>,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub p999: Option<f64>,
    pub max: Option<f64>,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Self {
        let some = |v: f64| finite(v, h);
        Percentiles {
            count: h.len(),
            min: some(h.min() as f64 / 1e3),
            mean: some(h.mean() / 1e3),
            stdev: some(h.stdev() / 1e3),
            p50: some(percentile_ms(h, 50.0)),
            p90: some(percentile_ms(h, 90.0)),
            p99: some(percentile_ms(h, 99.0)),
            p999: some(percentile_ms(h, 99.9)),
            max: some(h.max() as f64 / 1e3),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Connections {
    pub opened: u64,
    pub failed: u64,
    /// Setup failures by description.
    pub failures: BTreeMap<String, u64>,
    /// What kind of failure each description is (rejected, refused, timeout, breaker,
    /// interrupted, other): what verdicts read.
    #[serde(default)]
    pub failure_kinds: BTreeMap<String, crate::model::SetupKind>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PerConnection {
    pub completed_min: Option<u64>,
    pub completed_median: Option<u64>,
    pub completed_max: Option<u64>,
    /// Jain's fairness index of per-connection throughput (1 = even).
    pub jain_fairness: Option<f64>,
    /// Connections under 10% of the median's throughput.
    pub starved: Vec<u32>,
    pub connections: Vec<ConnRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ResilienceBlock {
    #[serde(flatten)]
    pub counts: Resilience,
    /// Drop to hello_ack on the new connection.
    pub reconnect_ms: Percentiles,
    /// Client ping round trips.
    pub pong_ms: Percentiles,
    #[serde(default)]
    pub reconnect_failures: BTreeMap<String, u64>,
    pub breaker_enabled: bool,
    /// Circuit breaker transitions with their offset from the measured window's start.
    #[serde(default)]
    pub breaker_transitions: Vec<BreakerEvent>,
    /// Seconds of the measured window during which no connection could send: none was up, or
    /// the breaker held requests back.
    #[serde(default)]
    pub unavailable_s: f64,
    /// Seconds the breaker was OPEN, holding connection attempts back (connections that were
    /// up went on sending unless it held requests too).
    #[serde(default)]
    pub connect_held_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RateBlock {
    pub target_rps: f64,
    pub achieved_send_rps: f64,
    pub max_schedule_lag_ms: Option<f64>,
    pub client_lag_p99_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WarmupBlock {
    pub duration_s: f64,
    pub counts: Counts,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TimelineRow {
    pub second: usize,
    pub sent: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub timed_out: u64,
    pub lost: u64,
    #[serde(default)]
    pub dropped: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub open_conns: u32,
    /// This second's response-time histogram (V2 + deflate, base64), for exact merges.
    #[serde(default)]
    pub histogram: String,
}

/// A `capacity` result (`capacity --json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "wsbench capacity result")]
pub struct CapacityFile {
    pub schema_version: u32,
    pub kind: CapacityKind,
    pub wsbench_version: String,
    pub verdict: Outcome,
    pub exit_code: u8,
    pub reason: Option<String>,
    pub target: String,
    /// What was searched: "rate" or "conns".
    #[serde(default = "rate_search")]
    pub find: String,
    /// The highest sustainable rate, requests/s; null when even the lowest failed (or the
    /// search was for connections).
    pub capacity_rps: Option<f64>,
    /// `--find conns`: the most concurrent connections that held; null otherwise.
    #[serde(default)]
    pub capacity_conns: Option<u64>,
    pub min_rate: f64,
    pub max_rate: f64,
    pub precision: f64,
    pub conditions: Vec<String>,
    pub steps: Vec<Step>,
}

fn rate_search() -> String {
    "rate".into()
}

/// The `kind` key that tells a capacity file from a run's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CapacityKind {
    Capacity,
}

/// `v` when the histogram has data, else null.
fn finite(v: f64, h: &Histogram<u64>) -> Option<f64> {
    (!h.is_empty() && v.is_finite()).then_some(v)
}

/// A histogram as HdrHistogram's V2 + deflate encoding, in base64: exact, and mergeable.
pub fn encode_histogram(h: &Histogram<u64>) -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut bytes)
        .map_err(|e| anyhow::anyhow!("could not serialize a histogram: {e:?}"))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// The inverse of [`encode_histogram`].
pub fn decode_histogram(text: &str) -> anyhow::Result<Histogram<u64>> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(text)?;
    hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| anyhow::anyhow!("damaged histogram: {e:?}"))
}

impl RunFile {
    /// The file of a finished run or merge.
    pub fn of(r: &RunResult) -> anyhow::Result<RunFile> {
        let s = &r.summary;
        let c = &r.settings;
        let h = &s.histograms;
        let spread = s.per_conn_spread();
        // Every non-empty histogram, so that `merge` adds them exactly (the first four always).
        let mut histograms = BTreeMap::new();
        for (name, hist) in h.named() {
            if !hist.is_empty() || ["latency", "service", "connect", "hello"].contains(&name) {
                histograms.insert(name.to_owned(), encode_histogram(hist)?);
            }
        }
        let named = |pairs: &[(&str, &Histogram<u64>)],
                     keep: &dyn Fn(&str, &Histogram<u64>) -> bool| {
            pairs
                .iter()
                .filter(|(k, v)| keep(k, v))
                .map(|(k, v)| (k.to_string(), Percentiles::of(v)))
                .collect::<BTreeMap<_, _>>()
        };
        // A second's histogram keeps 2 significant figures, the run's 3: a second's figure is
        // held to the run's max so no second reads slower than the run's slowest reply.
        let run_max_ms = h.latency.max() as f64 / 1e3;
        let capped = |ms: Option<f64>| ms.map(|v| v.min(run_max_ms));
        let timeline = s
            .seconds
            .iter()
            .enumerate()
            .map(|(i, sec)| {
                Ok(TimelineRow {
                    second: i,
                    sent: sec.tally.sent,
                    succeeded: sec.tally.succeeded,
                    failed: sec.tally.failed,
                    timed_out: sec.tally.timed_out,
                    lost: sec.tally.lost,
                    dropped: sec.tally.dropped,
                    p50_ms: capped(finite(percentile_ms(&sec.latency, 50.0), &sec.latency)),
                    p99_ms: capped(finite(percentile_ms(&sec.latency, 99.0), &sec.latency)),
                    max_ms: capped(finite(sec.latency.max() as f64 / 1e3, &sec.latency)),
                    open_conns: sec.open_conns,
                    histogram: encode_histogram(&sec.latency)?,
                })
            })
            .collect::<anyhow::Result<_>>()?;
        let open = s.is_open_loop();
        Ok(RunFile {
            schema_version: RESULT_SCHEMA_VERSION,
            wsbench_version: env!("CARGO_PKG_VERSION").into(),
            verdict: r.outcome,
            exit_code: r.outcome.code(),
            reason: r.reason.clone(),
            run_id: r.run_id.clone(),
            worker_id: c.worker_id.clone(),
            target: s.target.clone(),
            embedded: s.embedded,
            duration_s: s.duration.as_secs_f64(),
            ended_early: s.ended_early.clone(),
            throughput_rps: s.throughput(),
            error_rate: s.error_rate(),
            mode: if open {
                LoopMode::Open
            } else {
                LoopMode::Closed
            },
            latency_kind: if open {
                LatencyKind::Response
            } else {
                LatencyKind::Service
            },
            started_at: humantime::format_rfc3339_millis(s.started_at).to_string(),
            ended_at: humantime::format_rfc3339_millis(s.started_at + s.duration).to_string(),
            rate: match s.mode {
                Mode::Open { target_rps } => Some(RateBlock {
                    target_rps,
                    achieved_send_rps: s.send_rate(),
                    max_schedule_lag_ms: finite(h.schedule_lag.max() as f64 / 1e3, &h.schedule_lag),
                    client_lag_p99_ms: finite(percentile_ms(&h.client_lag, 99.0), &h.client_lag),
                }),
                Mode::Closed => None,
            },
            warmup: WarmupBlock {
                duration_s: s.warmup_duration.as_secs_f64(),
                counts: s.warmup.clone(),
            },
            settings: FileSettings {
                conns: c.conns,
                inflight: c.inflight,
                duration_s: c.duration.as_secs_f64(),
                requests: c.requests,
                tool: c.tool.clone(),
                args: c.args.clone(),
                session_prefix: c.session_prefix.clone(),
                connect_timeout_ms: c.connect_timeout.as_secs_f64() * 1e3,
                timeout_ms: c.timeout.as_secs_f64() * 1e3,
                drain_ms: c.drain.as_secs_f64() * 1e3,
                token_set: c.token_set,
                gate: c.gate,
                protocol: c.protocol.clone(),
                transport: c.transport.clone(),
                stderr_log: c.stderr_log.clone(),
                data: c.data.clone(),
                rows_ran_out: s.rows_ran_out,
            },
            counts: s.counts.clone(),
            identity_holds: s.counts.identity_holds(),
            errors_by_code: s.errors_by_code.clone(),
            invalid_examples: s.invalid_examples.clone(),
            conn_errors_by_code: s.conn_errors_by_code.clone(),
            close_codes: s
                .close_codes
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            close_reasons: s.close_reasons.clone(),
            latency_ms: Percentiles::of(&h.latency),
            service_ms: Percentiles::of(&h.service),
            connect_ms: Percentiles::of(&h.connect),
            hello_ms: Percentiles::of(&h.hello),
            handshake_ms: named(
                &[
                    ("tcp", &h.tcp),
                    ("tls", &h.tls),
                    ("upgrade", &h.upgrade),
                    ("hello", &h.hello),
                ],
                &|k, v| k != "tls" || !v.is_empty(),
            ),
            phases_ms: named(
                &[
                    ("ack", &h.ack),
                    ("first_chunk", &h.first_chunk),
                    ("stream_end", &h.stream_end),
                ],
                &|_, v| !v.is_empty(),
            ),
            client_lag_ms: Percentiles::of(&h.client_lag),
            schedule_lag_ms: Percentiles::of(&h.schedule_lag),
            connections: Connections {
                opened: s.connections_opened,
                failed: s.connections_failed,
                failures: s.setup_failures.clone(),
                failure_kinds: s.setup_kinds.clone(),
            },
            per_connection: PerConnection {
                completed_min: spread.map(|s| s.0),
                completed_median: spread.map(|s| s.1),
                completed_max: spread.map(|s| s.2),
                jain_fairness: s.jain_fairness(),
                starved: s.starved(),
                connections: s.per_conn.clone(),
            },
            timeline,
            resilience: ResilienceBlock {
                counts: s.resilience.clone(),
                reconnect_ms: Percentiles::of(&h.reconnect),
                pong_ms: Percentiles::of(&h.pong),
                reconnect_failures: s.reconnect_failures.clone(),
                breaker_enabled: c.breaker_enabled,
                breaker_transitions: s.transitions.clone(),
                unavailable_s: s.unavailable.as_secs_f64(),
                connect_held_s: s.connect_held.as_secs_f64(),
            },
            client: s.client.clone(),
            baseline: r.baseline.clone(),
            workers: r.workers.clone(),
            thresholds: r.verdicts.clone(),
            histograms,
            server: r.server.clone(),
            first_call_stalls: s.first_call_stalls,
            per_tool: super::tools::blocks(&s.per_tool, s.duration)?,
            protocol_versions: s.versions.clone(),
        })
    }
}

impl CapacityFile {
    pub fn of(r: &CapacityResult) -> CapacityFile {
        CapacityFile {
            schema_version: RESULT_SCHEMA_VERSION,
            kind: CapacityKind::Capacity,
            wsbench_version: env!("CARGO_PKG_VERSION").into(),
            verdict: r.outcome,
            exit_code: r.outcome.code(),
            reason: r.reason.clone(),
            target: r.target.clone(),
            find: r.find.into(),
            capacity_rps: r.answer.filter(|_| r.find == "rate"),
            capacity_conns: r.answer.filter(|_| r.find == "conns").map(|n| n as u64),
            min_rate: r.min_rate,
            max_rate: r.max_rate,
            precision: r.precision,
            conditions: r.conditions.clone(),
            steps: r.steps.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_strings_are_the_outcomes_own() {
        for o in [
            Outcome::Passed,
            Outcome::ThresholdFailed,
            Outcome::BadUsage,
            Outcome::CouldNotRun,
            Outcome::Inconclusive,
            Outcome::Interrupted,
        ] {
            assert_eq!(serde_json::to_value(o).unwrap(), o.verdict());
        }
    }

    #[test]
    fn histograms_survive_the_file() {
        let mut h = Histogram::<u64>::new(3).unwrap();
        for v in [10, 200, 3_000, 40_000] {
            h.record(v).unwrap();
        }
        let back = decode_histogram(&encode_histogram(&h).unwrap()).unwrap();
        assert_eq!(back, h);
        assert!(decode_histogram("not base64!").is_err());
    }
}
