//! The result file's `per_tool` block: each tool's outcomes, error codes, throughput,
//! response-time percentiles and exact histogram (what `merge` adds), from the summary's
//! per-tool figures and back.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::file::{Percentiles, decode_histogram, encode_histogram};
use crate::model::Counts;
use crate::stats::summary::ToolSummary;

/// One tool's share of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ToolBlock {
    pub counts: Counts,
    /// (sent - succeeded) / sent, as the run's.
    pub error_rate: f64,
    /// Successes per second over the measured window.
    pub throughput_rps: f64,
    pub errors_by_code: BTreeMap<String, u64>,
    /// Response time, as the run's `latency_ms`.
    pub latency_ms: Percentiles,
    /// Service time, as the run's `service_ms`.
    pub service_ms: Percentiles,
    /// Its non-empty per-request histograms by name (as the run's `histograms`), exact:
    /// what `merge` adds.
    pub histograms: BTreeMap<String, String>,
}

/// The blocks of a summary's tools.
pub fn blocks(
    per_tool: &BTreeMap<String, ToolSummary>,
    duration: Duration,
) -> anyhow::Result<BTreeMap<String, ToolBlock>> {
    let secs = duration.as_secs_f64();
    per_tool
        .iter()
        .map(|(name, t)| {
            Ok((
                name.clone(),
                ToolBlock {
                    counts: t.counts.clone(),
                    error_rate: t.error_rate(),
                    throughput_rps: if secs > 0.0 {
                        t.counts.succeeded as f64 / secs
                    } else {
                        0.0
                    },
                    errors_by_code: t.errors_by_code.clone(),
                    latency_ms: Percentiles::of(&t.histograms.latency),
                    service_ms: Percentiles::of(&t.histograms.service),
                    histograms: t
                        .histograms
                        .named()
                        .into_iter()
                        .filter(|(_, h)| !h.is_empty())
                        .map(|(n, h)| Ok((n.to_owned(), encode_histogram(h)?)))
                        .collect::<anyhow::Result<_>>()?,
                },
            ))
        })
        .collect()
}

/// Adds a file's tool blocks into a summary's per-tool figures (a merge).
pub fn add_into(
    into: &mut BTreeMap<String, ToolSummary>,
    from: &BTreeMap<String, ToolBlock>,
) -> anyhow::Result<()> {
    for (name, b) in from {
        let t = into.entry(name.clone()).or_insert_with(|| ToolSummary {
            counts: Counts::default(),
            errors_by_code: BTreeMap::new(),
            histograms: crate::stats::recorder::Histograms::default(),
        });
        t.counts += &b.counts;
        for (code, n) in &b.errors_by_code {
            *t.errors_by_code.entry(code.clone()).or_default() += n;
        }
        for (h, text) in &b.histograms {
            if let Some(into) = t.histograms.by_name_mut(h) {
                into.add(decode_histogram(text)?)
                    .map_err(|e| anyhow::anyhow!("tool {name}, {h}: {e}"))?;
            }
        }
    }
    Ok(())
}
