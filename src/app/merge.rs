//! `wsbench merge`: many workers' result files, one verdict. Histograms are added (exact
//! percentiles, never averaged ones), counters summed, per-second timelines aligned on
//! wall-clock seconds, and the thresholds applied again to the whole.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;

use crate::cli::MergeArgs;
use crate::config::{GateConfig, MergeConfig};
use crate::error::ConfigError;
use crate::model::Tally;
use crate::outcome::Outcome;
use crate::result::file::{ResultDocument, RunFile, decode_histogram};
use crate::result::{RunResult, Settings, WorkerRow};
use crate::stats::recorder::{Histograms, Second};
use crate::stats::summary::{BreakerEvent, ConnRow, Mode, Summary, percentile_ms};

fn bad(path: &Path, reason: impl Into<String>) -> ConfigError {
    ConfigError::ResultFile {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

fn load(path: &Path) -> Result<RunFile, ConfigError> {
    ResultDocument::read_run(path).map_err(|e| bad(path, e))
}

fn time(path: &Path, s: &str) -> Result<SystemTime, ConfigError> {
    humantime::parse_rfc3339_weak(s).map_err(|e| bad(path, format!("bad started_at: {e}")))
}

fn hist(path: &Path, text: &str) -> Result<Histogram<u64>, ConfigError> {
    decode_histogram(text).map_err(|e| bad(path, format!("{e:#}")))
}

fn add(into: &mut Histogram<u64>, from: &Histogram<u64>, path: &Path) -> Result<(), ConfigError> {
    into.add(from)
        .map_err(|e| bad(path, format!("histogram does not merge: {e:?}")))
}

fn add_all<K: Ord + Clone>(into: &mut BTreeMap<K, u64>, from: &BTreeMap<K, u64>) {
    for (k, v) in from {
        *into.entry(k.clone()).or_default() += v;
    }
}

/// Merges the files into one result, judged by `gate`. A file given twice
/// (same run and worker id) is refused; so are workers whose measured windows do not overlap,
/// unless `allow_disjoint`.
pub fn merge(
    files: &[PathBuf],
    gate: &GateConfig,
    allow_disjoint: bool,
) -> Result<RunResult, ConfigError> {
    let loaded: Vec<(PathBuf, RunFile)> = files
        .iter()
        .map(|p| load(p).map(|r| (p.clone(), r)))
        .collect::<Result<_, _>>()?;
    let mut seen = BTreeMap::new();
    for (path, r) in &loaded {
        if let Some(first) = seen.insert((&r.run_id, &r.worker_id), path) {
            return Err(bad(
                path,
                format!(
                    "the same worker's result as {} (run {}, worker '{}'): each worker counts once",
                    first.display(),
                    r.run_id,
                    r.worker_id
                ),
            ));
        }
    }
    let starts: Vec<SystemTime> = loaded
        .iter()
        .map(|(p, r)| time(p, &r.started_at))
        .collect::<Result<_, _>>()?;
    let ends: Vec<SystemTime> = loaded
        .iter()
        .zip(&starts)
        .map(|((_, r), s)| *s + Duration::from_secs_f64(r.duration_s.max(0.0)))
        .collect();
    let (latest_start, earliest_end) = (starts.iter().max().copied(), ends.iter().min().copied());
    if let (Some(ls), Some(ee)) = (latest_start, earliest_end)
        && ls >= ee
        && loaded.len() > 1
        && !allow_disjoint
    {
        let i = starts.iter().position(|s| *s == ls).unwrap_or(0);
        return Err(bad(
            &loaded[i].0,
            "its measured window does not overlap the other workers' (start them together with \
             --start-at, or pass --allow-disjoint to merge them anyway)",
        ));
    }
    let base = *starts
        .iter()
        .min()
        .expect("clap requires at least one file");
    let end = loaded
        .iter()
        .zip(&starts)
        .map(|((_, r), s)| *s + Duration::from_secs_f64(r.duration_s.max(0.0)))
        .max()
        .unwrap_or(base);

    let mut histograms = Histograms::default();
    let duration = end.duration_since(base).unwrap_or_default();
    let mut s = Summary::empty(String::new(), false, Mode::Closed, duration);
    s.send_window = Duration::ZERO;
    s.request_timeout = Duration::ZERO;
    s.started_at = base;
    let mut workers = Vec::new();
    let mut targets = std::collections::BTreeSet::new();
    let mut target_rps = 0.0;
    let (mut conns, mut cpu_ms, mut rss) = (0u32, 0.0, 0.0f64);
    for ((path, r), start) in loaded.iter().zip(&starts) {
        targets.insert(r.target.clone());
        s.embedded |= r.embedded;
        s.rows_ran_out |= r.settings.rows_ran_out;
        s.first_call_stalls += r.first_call_stalls;
        s.counts += &r.counts;
        s.warmup += &r.warmup.counts;
        s.warmup_duration = s
            .warmup_duration
            .max(Duration::from_secs_f64(r.warmup.duration_s.max(0.0)));
        add_all(&mut s.errors_by_code, &r.errors_by_code);
        add_all(&mut s.conn_errors_by_code, &r.conn_errors_by_code);
        add_all(&mut s.close_reasons, &r.close_reasons);
        for (code, n) in &r.close_codes {
            let code: u16 = code
                .parse()
                .map_err(|_| bad(path, format!("bad close code '{code}'")))?;
            *s.close_codes.entry(code).or_default() += n;
        }
        add_all(&mut s.setup_failures, &r.connections.failures);
        s.setup_kinds.extend(r.connections.failure_kinds.clone());
        s.connections_opened += r.connections.opened;
        s.connections_failed += r.connections.failed;
        s.resilience += &r.resilience.counts;
        add_all(&mut s.reconnect_failures, &r.resilience.reconnect_failures);
        // The target was unavailable to the whole as long as it was to any worker.
        s.unavailable = s
            .unavailable
            .max(Duration::from_secs_f64(r.resilience.unavailable_s.max(0.0)));
        s.connect_held = s.connect_held.max(Duration::from_secs_f64(
            r.resilience.connect_held_s.max(0.0),
        ));
        if let Some(e) = &r.ended_early {
            let who = if r.worker_id.is_empty() {
                &r.run_id
            } else {
                &r.worker_id
            };
            let left = s.ended_early.as_ref().map_or(0.0, |x| x.left_s);
            s.ended_early = Some(crate::stats::summary::EndedEarly {
                left_s: left.max(e.left_s),
                why: format!("worker {who}: {}", e.why),
            });
        }
        s.request_timeout = s.request_timeout.max(Duration::from_secs_f64(
            r.settings.timeout_ms.max(0.0) / 1e3,
        ));
        let offset_s = start.duration_since(base).unwrap_or_default().as_secs_f64();
        s.transitions.extend(
            r.resilience
                .breaker_transitions
                .iter()
                .map(|t| BreakerEvent {
                    at_s: t.at_s + offset_s,
                    ..t.clone()
                }),
        );
        s.interrupted |= r.verdict == Outcome::Interrupted;
        add_all(&mut s.versions, &r.protocol_versions);
        s.hello_rejected |= r
            .connections
            .failure_kinds
            .values()
            .any(|k| *k == crate::model::SetupKind::Rejected);
        if let Some(rate) = &r.rate {
            target_rps += rate.target_rps;
        }
        conns += r.settings.conns;
        cpu_ms += r.client.cpu_ms;
        rss = rss.max(r.client.peak_rss_mb);
        if r.client.saturated {
            s.client.saturated = true;
            let who = if r.worker_id.is_empty() {
                &r.run_id
            } else {
                &r.worker_id
            };
            s.client.reasons.extend(
                r.client
                    .reasons
                    .iter()
                    .map(|x| format!("worker {who}: {x}")),
            );
        }
        for (name, text) in &r.histograms {
            if let Some(h) = histograms.by_name_mut(name) {
                add(h, &hist(path, text)?, path)?;
            }
        }
        crate::result::tools::add_into(&mut s.per_tool, &r.per_tool)
            .map_err(|e| bad(path, format!("per_tool: {e:#}")))?;
        // Align on wall-clock seconds: this worker's second i is the merge's second i + offset.
        let offset = start
            .duration_since(base)
            .unwrap_or_default()
            .as_secs_f64()
            .round() as usize;
        for t in &r.timeline {
            let i = t.second + offset;
            if s.seconds.len() <= i {
                s.seconds.resize_with(i + 1, Second::default);
            }
            let sec = &mut s.seconds[i];
            sec.tally += &Tally {
                sent: t.sent,
                succeeded: t.succeeded,
                failed: t.failed,
                timed_out: t.timed_out,
                lost: t.lost,
                dropped: t.dropped,
            };
            sec.open_conns += t.open_conns;
            if !t.histogram.is_empty() {
                let h = hist(path, &t.histogram)?;
                let _ = sec.latency.add(&h);
            }
        }
        let secs = r.duration_s.max(1e-9);
        for c in &r.per_connection.connections {
            s.per_conn.push(ConnRow {
                id: s.per_conn.len() as u32,
                sent: c.sent,
                succeeded: c.succeeded,
                failed: c.failed,
                rps: c.succeeded as f64 / secs,
                p99_ms: c.p99_ms,
                starved: false,
                available: c.available,
            });
        }
        let latency = r
            .histograms
            .get("latency")
            .map(|t| hist(path, t))
            .transpose()?;
        let errors = r.counts.not_succeeded();
        workers.push(WorkerRow {
            worker_id: r.worker_id.clone(),
            run_id: r.run_id.clone(),
            file: path.display().to_string(),
            throughput_rps: r.counts.succeeded as f64 / secs,
            sent: r.counts.sent,
            succeeded: r.counts.succeeded,
            error_rate: if r.counts.sent > 0 {
                errors as f64 / r.counts.sent as f64
            } else {
                0.0
            },
            p99_ms: latency
                .filter(|h| !h.is_empty())
                .map(|h| percentile_ms(&h, 99.0)),
            start_offset_ms: start.duration_since(base).unwrap_or_default().as_secs_f64() * 1e3,
            saturated: r.client.saturated,
        });
        // A merge of merges keeps the original workers.
        workers.extend(r.workers.iter().cloned());
    }
    s.histograms = histograms;
    s.send_window = s.duration;
    s.transitions.sort_by(|a, b| {
        a.at_s
            .partial_cmp(&b.at_s)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    if target_rps > 0.0 {
        s.mode = Mode::Open { target_rps };
    }
    s.mark_starved();
    s.client.cpu_ms = cpu_ms;
    s.client.peak_rss_mb = rss;
    s.client.cores = 0;
    s.target = if targets.len() == 1 {
        targets.into_iter().next().unwrap_or_default()
    } else {
        format!("{} targets", targets.len())
    };

    // The workers' settings as the first one ran them (a merge runs nothing of its own).
    let first = &loaded[0].1;
    let f = &first.settings;
    let ms = |v: f64| Duration::from_secs_f64(v.max(0.0) / 1e3);
    let settings = Settings {
        conns,
        inflight: f.inflight,
        duration: s.duration,
        requests: None,
        tool: f.tool.clone(),
        args: f.args.clone(),
        session_prefix: f.session_prefix.clone(),
        worker_id: "merged".into(),
        connect_timeout: ms(f.connect_timeout_ms),
        timeout: ms(f.timeout_ms),
        drain: ms(f.drain_ms),
        token_set: loaded.iter().any(|(_, r)| r.settings.token_set),
        gate: gate.gate,
        breaker_enabled: loaded.iter().any(|(_, r)| r.resilience.breaker_enabled),
        // The text report's "(embedded …, in this process)" is about a run, never a merge.
        embedded: false,
        protocol: f.protocol.clone(),
        stderr_log: f.stderr_log.clone(),
        data: f.data.clone(),
        transport: f.transport.clone(),
    };
    let mut verdicts = crate::gate::evaluate(&s, &gate.thresholds);
    let (baseline, regressions) =
        crate::gate::baseline::check(&s, gate.baseline.as_ref(), gate.gate);
    verdicts.extend(regressions);
    let (outcome, reason) = crate::result::judge(&s, &verdicts);
    Ok(RunResult {
        settings,
        run_id: format!("merge-of-{}", loaded.len()),
        summary: s,
        verdicts,
        outcome,
        reason,
        server: None,
        workers,
        baseline,
    })
}

/// The `compare` subcommand: NEW read as a merge of one file, judged only against OLD as its
/// baseline (no thresholds of its own), reported like any result.
pub fn compare(args: &crate::cli::CompareArgs) -> anyhow::Result<Outcome> {
    let merge_args = MergeArgs {
        files: vec![args.new.clone()],
        config: None,
        output: args.output.clone(),
        json: None,
        junit: None,
        html: None,
        markdown: None,
        allow_disjoint: true,
        gate: crate::cli::GateArgs {
            baseline: Some(args.old.display().to_string()),
            max_regress: args.max_regress.clone(),
            ..Default::default()
        },
    };
    let mut config = MergeConfig::from_args(&merge_args)?;
    // Only the comparison judges: the default thresholds are a run's, not a comparison's.
    config.gate.thresholds.clear();
    let result = merge(&merge_args.files, &config.gate, true)?;
    crate::report::emit_all(&result, &config.outputs, config.stdout)?;
    Ok(result.outcome)
}

/// The `merge` subcommand.
pub fn main(args: &MergeArgs) -> anyhow::Result<Outcome> {
    let config = MergeConfig::from_args(args)?;
    config.outputs.check_writable()?;
    let result = merge(&args.files, &config.gate, args.allow_disjoint)?;
    crate::report::emit_all(&result, &config.outputs, config.stdout)?;
    Ok(result.outcome)
}
