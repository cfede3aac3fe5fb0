//! The JSON result file (`--json`): the machine-readable run, the format `merge` will read.
//! Key names are a contract with users' scripts: add freely, rename none.

use std::collections::BTreeMap;

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Serializer as _, V2DeflateSerializer};
use serde::Serialize;

use super::Reporter;
use crate::gate::Verdict;
use crate::model::Counts;
use crate::model::StatsSnapshot;
use crate::result::RunResult;
use crate::stats::summary::{Mode, percentile_ms};

/// The result file's schema version (see [`crate::model::RESULT_SCHEMA_VERSION`]).
pub use crate::model::RESULT_SCHEMA_VERSION as SCHEMA_VERSION;

pub struct JsonReporter;

#[derive(Serialize)]
struct ResultFile<'a> {
    schema_version: u32,
    wsbench_version: &'static str,
    verdict: &'static str,
    exit_code: u8,
    reason: Option<&'a str>,
    run_id: &'a str,
    /// This worker's id (a merge: "merged").
    worker_id: &'a str,
    target: &'a str,
    embedded: bool,
    /// Measured time in seconds.
    duration_s: f64,
    /// Succeeded requests per second of measured time.
    throughput_rps: f64,
    error_rate: f64,
    /// `closed` (send on reply) or `open` (rate schedule).
    mode: &'static str,
    /// What `latency_ms` measures: "service" (closed loop) or "response" (open loop).
    latency_kind: &'static str,
    /// Wall-clock start and end of the measured window (RFC 3339).
    started_at: String,
    ended_at: String,
    /// Open loop: target and achieved rates, and how far sending lagged its schedule.
    #[serde(skip_serializing_if = "Option::is_none")]
    rate: Option<RateBlock>,
    warmup: WarmupBlock<'a>,
    settings: Settings<'a>,
    counts: &'a Counts,
    identity_holds: bool,
    errors_by_code: &'a BTreeMap<String, u64>,
    /// Replies that failed `--validate-sample` checks, first few.
    invalid_examples: &'a [String],
    conn_errors_by_code: &'a BTreeMap<String, u64>,
    close_codes: BTreeMap<String, u64>,
    latency_ms: Percentiles,
    service_ms: Percentiles,
    connect_ms: Percentiles,
    hello_ms: Percentiles,
    /// Setup phases: TCP connect, WebSocket upgrade, hello.
    handshake_ms: BTreeMap<&'static str, Percentiles>,
    /// Tool-call phases the server signalled (absent when it sent none): send to first
    /// `call_tool_ack`, send to first `progress`/`stream_chunk`.
    phases_ms: BTreeMap<&'static str, Percentiles>,
    /// Client lag (send minus the moment it could have gone) and schedule lag (send minus slot).
    client_lag_ms: Percentiles,
    schedule_lag_ms: Percentiles,
    connections: Connections<'a>,
    per_connection: PerConnection<'a>,
    /// One entry per second of the measured window.
    timeline: Vec<TimelineRow>,
    resilience: ResilienceBlock<'a>,
    /// The load generator's own CPU and memory, and whether it was the bottleneck.
    client: &'a crate::model::ClientCheck,
    /// `--baseline`: the previous run's figures beside this one's.
    #[serde(skip_serializing_if = "Option::is_none")]
    baseline: Option<&'a crate::gate::baseline::BaselineReport>,
    /// A merge: one row per worker file.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    workers: &'a [crate::result::WorkerRow],
    thresholds: &'a [Verdict],
    histograms: BTreeMap<&'static str, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<&'a StatsSnapshot>,
}

#[derive(Serialize)]
struct Settings<'a> {
    conns: u32,
    inflight: u32,
    duration_s: f64,
    requests: Option<u64>,
    tool: &'a str,
    args: Option<&'a str>,
    session_prefix: &'a str,
    connect_timeout_ms: f64,
    timeout_ms: f64,
    drain_ms: f64,
    /// Whether a token was sent; the token itself is never written.
    token_set: bool,
    gate: bool,
}

/// Milliseconds; null when nothing was recorded.
#[derive(Serialize)]
struct Percentiles {
    count: u64,
    min: Option<f64>,
    mean: Option<f64>,
    stdev: Option<f64>,
    p50: Option<f64>,
    p90: Option<f64>,
    p99: Option<f64>,
    p999: Option<f64>,
    max: Option<f64>,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Self {
        let some = |v: f64| (!h.is_empty() && v.is_finite()).then_some(v);
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

#[derive(Serialize)]
struct Connections<'a> {
    opened: u64,
    failed: u64,
    failures: &'a BTreeMap<String, u64>,
}

#[derive(Serialize)]
struct PerConnection<'a> {
    completed_min: Option<u64>,
    completed_median: Option<u64>,
    completed_max: Option<u64>,
    /// Jain's fairness index of per-connection throughput (1 = even).
    jain_fairness: Option<f64>,
    /// Connections under 10% of the median's throughput.
    starved: Vec<u32>,
    connections: &'a [crate::stats::summary::ConnRow],
}

#[derive(Serialize)]
struct ResilienceBlock<'a> {
    #[serde(flatten)]
    counts: &'a crate::model::Resilience,
    /// Drop to hello_ack on the new connection.
    reconnect_ms: Percentiles,
    /// Client ping round trips.
    pong_ms: Percentiles,
    reconnect_failures: &'a BTreeMap<String, u64>,
    breaker_enabled: bool,
    /// Circuit breaker transitions with their offset from the measured window's start.
    breaker_transitions: &'a [crate::stats::summary::BreakerEvent],
    /// Seconds the target was unavailable: breaker open, or no connection up.
    unavailable_s: f64,
}

#[derive(Serialize)]
struct RateBlock {
    target_rps: f64,
    achieved_send_rps: f64,
    max_schedule_lag_ms: Option<f64>,
    client_lag_p99_ms: Option<f64>,
}

#[derive(Serialize)]
struct WarmupBlock<'a> {
    duration_s: f64,
    counts: &'a Counts,
}

#[derive(Serialize)]
struct TimelineRow {
    second: usize,
    sent: u64,
    succeeded: u64,
    failed: u64,
    timed_out: u64,
    lost: u64,
    dropped: u64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    max_ms: Option<f64>,
    open_conns: u32,
    /// This second's response-time histogram (V2 + deflate, base64), for exact merges.
    histogram: String,
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

impl Reporter for JsonReporter {
    fn render(&self, r: &RunResult) -> anyhow::Result<Vec<u8>> {
        let s = &r.summary;
        let c = &r.settings;
        let h = &s.histograms;
        let spread = s.per_conn_spread();
        // Every non-empty histogram, so that `merge` adds them exactly (the first four always).
        let mut histograms = BTreeMap::new();
        for (name, hist) in h.named() {
            if !hist.is_empty() || ["latency", "service", "connect", "hello"].contains(&name) {
                histograms.insert(name, encode_histogram(hist)?);
            }
        }
        let file = ResultFile {
            schema_version: SCHEMA_VERSION,
            wsbench_version: env!("CARGO_PKG_VERSION"),
            verdict: r.outcome.verdict(),
            exit_code: r.outcome.code(),
            reason: r.reason.as_deref(),
            run_id: &r.run_id,
            worker_id: &r.settings.worker_id,
            target: &s.target,
            embedded: s.embedded,
            duration_s: s.duration.as_secs_f64(),
            throughput_rps: s.throughput(),
            error_rate: s.error_rate(),
            mode: if s.is_open_loop() { "open" } else { "closed" },
            latency_kind: if s.is_open_loop() {
                "response"
            } else {
                "service"
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
                counts: &s.warmup,
            },
            settings: Settings {
                conns: c.conns,
                inflight: c.inflight,
                duration_s: c.duration.as_secs_f64(),
                requests: c.requests,
                tool: &c.tool,
                args: c.args.as_deref(),
                session_prefix: &c.session_prefix,
                connect_timeout_ms: c.connect_timeout.as_secs_f64() * 1e3,
                timeout_ms: c.timeout.as_secs_f64() * 1e3,
                drain_ms: c.drain.as_secs_f64() * 1e3,
                token_set: c.token_set,
                gate: c.gate,
            },
            counts: &s.counts,
            identity_holds: s.counts.identity_holds(),
            errors_by_code: &s.errors_by_code,
            invalid_examples: &s.invalid_examples,
            conn_errors_by_code: &s.conn_errors_by_code,
            close_codes: s
                .close_codes
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            latency_ms: Percentiles::of(&h.latency),
            service_ms: Percentiles::of(&h.service),
            connect_ms: Percentiles::of(&h.connect),
            hello_ms: Percentiles::of(&h.hello),
            handshake_ms: [
                ("tcp", &h.tcp),
                ("tls", &h.tls),
                ("upgrade", &h.upgrade),
                ("hello", &h.hello),
            ]
            .into_iter()
            .filter(|(k, v)| *k != "tls" || !v.is_empty())
            .map(|(k, v)| (k, Percentiles::of(v)))
            .collect(),
            phases_ms: [
                ("ack", &h.ack),
                ("first_chunk", &h.first_chunk),
                ("stream_end", &h.stream_end),
            ]
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k, Percentiles::of(v)))
            .collect(),
            client_lag_ms: Percentiles::of(&h.client_lag),
            schedule_lag_ms: Percentiles::of(&h.schedule_lag),
            connections: Connections {
                opened: s.connections_opened,
                failed: s.connections_failed,
                failures: &s.setup_failures,
            },
            per_connection: PerConnection {
                completed_min: spread.map(|s| s.0),
                completed_median: spread.map(|s| s.1),
                completed_max: spread.map(|s| s.2),
                jain_fairness: s.jain_fairness(),
                starved: s.starved(),
                connections: &s.per_conn,
            },
            client: &s.client,
            workers: &r.workers,
            baseline: r.baseline.as_ref(),
            resilience: ResilienceBlock {
                counts: &s.resilience,
                reconnect_ms: Percentiles::of(&h.reconnect),
                pong_ms: Percentiles::of(&h.pong),
                reconnect_failures: &s.reconnect_failures,
                breaker_enabled: c.breaker_enabled,
                breaker_transitions: &s.transitions,
                unavailable_s: s.unavailable.as_secs_f64(),
            },
            timeline: s
                .seconds
                .iter()
                .enumerate()
                .map(|(i, sec)| TimelineRow {
                    second: i,
                    sent: sec.tally.sent,
                    succeeded: sec.tally.succeeded,
                    failed: sec.tally.failed,
                    timed_out: sec.tally.timed_out,
                    lost: sec.tally.lost,
                    dropped: sec.tally.dropped,
                    p50_ms: finite(percentile_ms(&sec.latency, 50.0), &sec.latency),
                    p99_ms: finite(percentile_ms(&sec.latency, 99.0), &sec.latency),
                    max_ms: finite(sec.latency.max() as f64 / 1e3, &sec.latency),
                    open_conns: sec.open_conns,
                    histogram: encode_histogram(&sec.latency).unwrap_or_default(),
                })
                .collect(),
            thresholds: &r.verdicts,
            histograms,
            server: r.server.as_ref(),
        };
        let mut bytes = serde_json::to_vec_pretty(&file)?;
        bytes.push(b'\n');
        Ok(bytes)
    }
}
