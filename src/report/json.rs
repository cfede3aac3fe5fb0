//! The JSON result file (`--json`): the machine-readable run, the format `merge` will read.
//! Key names are a contract with users' scripts: add freely, rename none.

use std::collections::BTreeMap;

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Serializer as _, V2DeflateSerializer};
use serde::Serialize;

use super::Reporter;
use crate::gate::Verdict;
use crate::run::RunResult;
use crate::run::sample::Counts;
use crate::serve::StatsSnapshot;
use crate::stats::summary::percentile_ms;

/// Bumped whenever a key changes meaning or goes away.
pub const SCHEMA_VERSION: u32 = 1;

pub struct JsonReporter;

#[derive(Serialize)]
struct ResultFile<'a> {
    schema_version: u32,
    wsbench_version: &'static str,
    verdict: &'static str,
    exit_code: u8,
    reason: Option<&'a str>,
    run_id: &'a str,
    target: &'a str,
    embedded: bool,
    /// Measured time in seconds.
    duration_s: f64,
    /// Succeeded requests per second of measured time.
    throughput_rps: f64,
    error_rate: f64,
    /// Which latency the `latency_ms` block is: "service" (closed loop) or "response".
    latency_kind: &'static str,
    settings: Settings<'a>,
    counts: &'a Counts,
    identity_holds: bool,
    errors_by_code: &'a BTreeMap<String, u64>,
    conn_errors_by_code: &'a BTreeMap<String, u64>,
    close_codes: BTreeMap<String, u64>,
    latency_ms: Percentiles,
    service_ms: Percentiles,
    connect_ms: Percentiles,
    hello_ms: Percentiles,
    connections: Connections<'a>,
    per_connection: PerConnection,
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
struct PerConnection {
    completed_min: Option<u64>,
    completed_median: Option<u64>,
    completed_max: Option<u64>,
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
        let c = &r.config;
        let h = &s.histograms;
        let spread = s.per_conn_spread();
        let mut histograms = BTreeMap::new();
        histograms.insert("latency", encode_histogram(&h.latency)?);
        histograms.insert("service", encode_histogram(&h.service)?);
        histograms.insert("connect", encode_histogram(&h.connect)?);
        histograms.insert("hello", encode_histogram(&h.hello)?);
        let file = ResultFile {
            schema_version: SCHEMA_VERSION,
            wsbench_version: env!("CARGO_PKG_VERSION"),
            verdict: r.outcome.verdict(),
            exit_code: r.outcome.code(),
            reason: r.reason.as_deref(),
            run_id: &r.run_id,
            target: &s.target,
            embedded: s.embedded,
            duration_s: s.duration.as_secs_f64(),
            throughput_rps: s.throughput(),
            error_rate: s.error_rate(),
            latency_kind: "service",
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
                token_set: !c.token.is_empty(),
                gate: c.gate,
            },
            counts: &s.counts,
            identity_holds: s.counts.identity_holds(),
            errors_by_code: &s.errors_by_code,
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
            connections: Connections {
                opened: s.connections_opened,
                failed: s.connections_failed,
                failures: &s.setup_failures,
            },
            per_connection: PerConnection {
                completed_min: spread.map(|s| s.0),
                completed_median: spread.map(|s| s.1),
                completed_max: spread.map(|s| s.2),
            },
            thresholds: &r.verdicts,
            histograms,
            server: r.server.as_ref(),
        };
        let mut bytes = serde_json::to_vec_pretty(&file)?;
        bytes.push(b'\n');
        Ok(bytes)
    }
}
