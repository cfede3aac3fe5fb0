//! `--hdr-log`: the per-second response-time histograms as a standard HdrHistogram interval
//! log (V2 + deflate, max column in ms), readable by HdrHistogram's own log tools
//! (HistogramLogProcessor, HdrHistogramVisualizer) and by `IntervalLogIterator`.

use std::time::Duration;

use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;

use super::Reporter;
use crate::result::RunResult;

pub struct HdrLogReporter;

impl Reporter for HdrLogReporter {
    fn render(&self, r: &RunResult) -> anyhow::Result<Vec<u8>> {
        let s = &r.summary;
        let mut out = Vec::new();
        let mut serializer = V2DeflateSerializer::new();
        let mut builder = IntervalLogWriterBuilder::new();
        builder
            .add_comment(&format!(
                "wsbench {} run {} -> {}",
                env!("CARGO_PKG_VERSION"),
                r.run_id,
                s.target
            ))
            .add_comment(if s.is_open_loop() {
                "per-second response time (open loop: from each scheduled slot), values in microseconds"
            } else {
                "per-second service time (closed loop: from each actual send), values in microseconds"
            })
            .with_start_time(s.started_at)
            .with_base_time(s.started_at)
            .with_max_value_divisor(1000.0);
        let mut writer = builder.begin_log_with(&mut out, &mut serializer)?;
        writer.write_comment(
            "Legend: StartTimestamp,Interval_Length,Interval_Max_ms,Interval_Compressed_Histogram",
        )?;
        for (i, sec) in s.seconds.iter().enumerate() {
            writer
                .write_histogram(
                    &sec.latency,
                    Duration::from_secs(i as u64),
                    Duration::from_secs(1),
                    None,
                )
                .map_err(|e| anyhow::anyhow!("could not write the interval log: {e:?}"))?;
        }
        drop(writer);
        Ok(out)
    }
}
