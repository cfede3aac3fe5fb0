//! `wsbench capacity`: the highest request rate (or, `--find conns`, the most concurrent
//! connections) at which the thresholds still hold. A connection search bisects the connection
//! count the same way, each step a closed-loop run judged also on connection setup (p99 and
//! errors). For the rate search: each step
//! is a full open-loop run (so queueing counts) with its own warmup; the rate is bisected
//! between `--min-rate` and `--max-rate` until the answer is known within `--precision`. A
//! step where the client itself saturated is never called sustainable. A step the server could
//! not keep up with shows its ceiling (the throughput it did sustain): once the bisection is
//! done, one more step just under that ceiling refines the answer, so a server-limited knee is
//! found closely whatever the precision.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::cli::CapacityArgs;
use crate::config::RunConfig;
use crate::error::ConfigError;
use crate::gate::{Metric, Verdict};
use crate::outcome::Outcome;
use crate::run::pacer::RateSchedule;
use crate::units;

pub use crate::result::{CapacityResult, Step};

/// The search's settings, validated.
#[derive(Debug, Clone, Copy)]
struct Search {
    /// Connections instead of the rate.
    conns: bool,
    min: f64,
    max: f64,
    precision: f64,
    step: Duration,
    warmup: Duration,
}

fn invalid(name: &str, value: &str, reason: String) -> ConfigError {
    ConfigError::Invalid {
        name: name.into(),
        value: value.into(),
        reason,
    }
}

fn search_of(args: &CapacityArgs) -> Result<Search, ConfigError> {
    let rate = |name: &str, v: &str| match units::parse_count(v.trim_end_matches("/s")) {
        Ok(r) if r > 0.0 => Ok(r),
        Ok(_) => Err(invalid(name, v, "must be above 0".into())),
        Err(e) => Err(invalid(name, v, e)),
    };
    let dur = |name: &str, v: &str| units::parse_duration(v).map_err(|e| invalid(name, v, e));
    let conns = args.find == "conns";
    let count = |name: &str, v: &str| match crate::values::positive_u32(v) {
        Ok(n) => Ok(f64::from(n)),
        Err(e) => Err(invalid(name, v, e)),
    };
    let (min, max, min_flag, max_flag) = if conns {
        (
            count("--min-conns", &args.min_conns)?,
            count("--max-conns", &args.max_conns)?,
            ("--min-conns", &args.min_conns),
            ("--max-conns", &args.max_conns),
        )
    } else {
        (
            rate("--min-rate", &args.min_rate)?,
            rate("--max-rate", &args.max_rate)?,
            ("--min-rate", &args.min_rate),
            ("--max-rate", &args.max_rate),
        )
    };
    let s = Search {
        conns,
        min,
        max,
        precision: units::parse_ratio(&args.precision)
            .map_err(|e| invalid("--precision", &args.precision, e))?,
        step: dur("--step-duration", &args.step_duration)?,
        warmup: dur("--step-warmup", &args.step_warmup)?,
    };
    if s.max <= s.min {
        return Err(invalid(
            max_flag.0,
            max_flag.1,
            format!("must be above {}", min_flag.0),
        ));
    }
    if s.step.is_zero() {
        return Err(invalid(
            "--step-duration",
            &args.step_duration,
            "must be longer than 0".into(),
        ));
    }
    if s.precision <= 0.0 {
        return Err(invalid(
            "--precision",
            &args.precision,
            "must be above 0".into(),
        ));
    }
    let r = &args.run;
    const OWN: &str =
        "capacity sets the rate and the step length itself (see --min-rate, --step-duration)";
    const LIVE: &str = "live metrics are for run and serve";
    for (set, flag, reason) in [
        (r.rate.is_some(), "--rate", OWN),
        (r.stages.is_some(), "--stages", OWN),
        (r.duration.is_some(), "--duration", OWN),
        (r.requests.is_some(), "--requests", OWN),
        (r.warmup.is_some(), "--warmup", OWN),
        (r.junit.is_some(), "--junit", OWN),
        (r.plot.is_some(), "--plot", OWN),
        (r.hdr_log.is_some(), "--hdr-log", OWN),
        (r.metrics.metrics_listen.is_some(), "--metrics-listen", LIVE),
        (r.metrics.otlp_endpoint.is_some(), "--otlp-endpoint", LIVE),
        (
            conns && r.conns.is_some(),
            "--conns",
            "--find conns sets the connections itself (see --min-conns, --max-conns)",
        ),
    ] {
        if set {
            return Err(ConfigError::Rejected {
                name: flag.into(),
                reason: reason.into(),
            });
        }
    }
    Ok(s)
}

/// Runs one step at `rate`.
async fn step(
    base: &RunConfig,
    s: &Search,
    rate: f64,
    interrupt: &CancellationToken,
) -> anyhow::Result<Step> {
    let mut config = base.clone();
    if s.conns {
        // Closed loop at --inflight: every connection busy, so the requests judge the load.
        config.conns = rate as u32;
        config.schedule = None;
    } else {
        config.schedule = Some(RateSchedule::constant(rate, s.step));
    }
    config.duration = s.step;
    config.warmup = s.warmup;
    config.requests = None;
    let r = crate::app::run::run(config, interrupt.clone()).await?;
    let sm = &r.summary;
    let failed: Vec<String> = r
        .verdicts
        .iter()
        .filter(|v| !v.passed)
        .map(|v: &Verdict| format!("{} (measured {})", v.condition, v.measured_text))
        .collect();
    let ms = |p: f64| Some(sm.latency_ms(p)).filter(|v| v.is_finite());
    let connect_p99 = crate::stats::summary::percentile_ms(&sm.histograms.connect, 99.0);
    let step = Step {
        rate: if s.conns { 0.0 } else { rate },
        conns: if s.conns { rate as u32 } else { base.conns },
        connect_p99_ms: Some(connect_p99).filter(|v| v.is_finite()),
        conn_errors: sm.connections_failed,
        achieved: sm.send_rate(),
        throughput: sm.throughput(),
        p50_ms: ms(50.0),
        p99_ms: ms(99.0),
        error_rate: sm.error_rate(),
        sustainable: failed.is_empty() && !sm.client.saturated && r.outcome != Outcome::CouldNotRun,
        client_saturated: sm.client.saturated,
        failed,
    };
    let asked = if s.conns {
        format!(
            "{:>8} conns, setup p99 {} ms, {} failed",
            step.conns,
            step.connect_p99_ms.map_or("-".into(), units::fmt_ms),
            step.conn_errors
        )
    } else {
        format!(
            "{:>10.0}/s asked, {:>10.0}/s sent",
            step.rate, step.achieved
        )
    };
    eprintln!(
        "capacity: {asked}, p99 {} ms, errors {:.4}% -> {}",
        step.p99_ms.map_or("-".into(), units::fmt_ms),
        step.error_rate * 100.0,
        if step.sustainable {
            "sustainable"
        } else if step.client_saturated {
            "client saturated"
        } else {
            "not sustainable"
        }
    );
    if r.outcome == Outcome::CouldNotRun {
        anyhow::bail!("{}", r.reason.unwrap_or_else(|| "could not run".into()));
    }
    Ok(step)
}

fn min_some(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// How far under a measured ceiling the search probes.
const CEILING_MARGIN: f64 = 0.02;

/// The server's ceiling shown by an unsustainable step: the throughput it sustained, when that
/// fell well short of the rate asked and the client was not the one that fell short.
fn ceiling(step: &Step) -> Option<f64> {
    (!step.sustainable && !step.client_saturated && step.throughput < 0.95 * step.rate)
        .then_some(step.throughput)
        .filter(|t| *t > 0.0)
}

/// The search. Every step is recorded; the answer is the highest sustainable rate.
pub async fn search(
    args: &CapacityArgs,
    interrupt: CancellationToken,
) -> anyhow::Result<CapacityResult> {
    let s = search_of(args)?;
    let mut base = RunConfig::from_args(&args.run)?;
    // Capacity judges latency and errors at each rate; a throughput floor or connection setup
    // time would not say anything about the rate.
    // (A connection search keeps setup time: it is what more connections cost.)
    base.thresholds.retain(|t| match t.metric {
        Metric::Rps => false,
        Metric::ConnectP99 => s.conns,
        _ => true,
    });
    if base.thresholds.is_empty() {
        anyhow::bail!(ConfigError::Rejected {
            name: "--no-gate".into(),
            reason: "capacity needs thresholds to judge each step".into(),
        });
    }
    let conditions = base.thresholds.iter().map(|t| t.describe()).collect();
    let per_step_outputs = std::mem::take(&mut base.outputs);
    base.progress = crate::config::ProgressMode::Off;
    base.stdout = crate::config::StdoutMode::Quiet;

    let mut steps = Vec::new();
    let run_step = |rate: f64| {
        let base = &base;
        let interrupt = &interrupt;
        async move { step(base, &s, rate, interrupt).await }
    };
    let mut lo: Option<f64> = None;
    let mut hi: Option<(f64, bool)> = None;
    let first = run_step(s.min).await?;
    let first_ok = first.sustainable;
    let first_sat = first.client_saturated;
    steps.push(first);
    if first_ok {
        lo = Some(s.min);
        let top = run_step(s.max).await?;
        // The lowest server ceiling seen (see `ceiling`).
        let mut ceil = ceiling(&top);
        if top.sustainable {
            lo = Some(s.max);
        } else {
            hi = Some((s.max, top.client_saturated));
        }
        steps.push(top);
        while let (Some(l), Some((h, _))) = (lo, hi) {
            if (h - l) / l <= s.precision || interrupt.is_cancelled() {
                break;
            }
            let mid = if s.conns {
                // Whole connections: done when the two are neighbours.
                if h - l <= 1.0 {
                    break;
                }
                ((l + h) / 2.0).floor()
            } else {
                (l + h) / 2.0
            };
            let st = run_step(mid).await?;
            if st.sustainable {
                lo = Some(mid);
            } else {
                ceil = min_some(ceil, ceiling(&st));
                hi = Some((mid, st.client_saturated));
            }
            steps.push(st);
        }
        // Bisection is done within the precision; when the server showed its ceiling above
        // the answer, one more step just under that ceiling refines it (a server-limited knee
        // is then found closely whatever the precision). Measured under overload a ceiling can
        // read low, so it only ever adds a step; the bisection above never relies on it.
        let probe = ceil
            .filter(|_| !s.conns)
            .map(|c| c * (1.0 - CEILING_MARGIN));
        if let (Some(l), Some((h, _)), Some(rate)) = (lo, hi, probe)
            && rate > l * (1.0 + CEILING_MARGIN / 2.0)
            && rate < h
            && !interrupt.is_cancelled()
        {
            let st = run_step(rate).await?;
            if st.sustainable {
                lo = Some(rate);
            } else {
                hi = Some((rate, st.client_saturated));
            }
            steps.push(st);
        }
    } else {
        hi = Some((s.min, first_sat));
    }

    let target = match &base.target {
        crate::config::Target::Url(u) => u.url.clone(),
        crate::config::Target::Embedded => "embedded reference server".into(),
        crate::config::Target::Command(c) => format!("stdio: {c}"),
    };
    let (outcome, reason) = if interrupt.is_cancelled() {
        (
            Outcome::Interrupted,
            Some("interrupted by signal".to_owned()),
        )
    } else {
        match (lo, hi) {
            (_, Some((h, true))) => (
                Outcome::Inconclusive,
                Some(format!(
                    "the client saturated at {h:.0}/s: the server may sustain more than the answer"
                )),
            ),
            (None, _) if s.conns => (
                Outcome::ThresholdFailed,
                Some(format!("even --min-conns {:.0} does not hold", s.min)),
            ),
            (None, _) => (
                Outcome::ThresholdFailed,
                Some(format!("even --min-rate {:.0}/s is not sustainable", s.min)),
            ),
            (Some(l), None) if s.conns => (
                Outcome::Passed,
                Some(format!("holds up to --max-conns ({l:.0}) at least")),
            ),
            (Some(l), None) => (
                Outcome::Passed,
                Some(format!("sustainable up to --max-rate ({l:.0}/s) at least")),
            ),
            (Some(_), Some(_)) => (Outcome::Passed, None),
        }
    };
    base.outputs = per_step_outputs;
    Ok(CapacityResult {
        target,
        find: if s.conns { "conns" } else { "rate" },
        settings: base.settings(),
        steps,
        answer: lo,
        min_rate: s.min,
        max_rate: s.max,
        precision: s.precision,
        conditions,
        outcome,
        reason,
    })
}

/// The `capacity` subcommand.
pub async fn main(args: &CapacityArgs) -> anyhow::Result<Outcome> {
    let run_config = RunConfig::from_args(&args.run)?;
    let s = search_of(args)?;
    if s.conns {
        // The largest step's sockets, checked (and the limit raised) before the first step.
        let per_conn = if run_config.target == crate::config::Target::Embedded {
            2
        } else {
            1
        };
        crate::resources::ensure_sockets(s.max as u64 * per_conn)?;
    }
    run_config.outputs.check_writable()?;
    let interrupt = CancellationToken::new();
    tokio::spawn({
        let interrupt = interrupt.clone();
        async move {
            crate::signal::terminated().await;
            interrupt.cancel();
            crate::signal::terminated().await;
            std::process::exit(i32::from(Outcome::Interrupted.code()));
        }
    });
    let result = search(args, interrupt).await?;
    crate::report::capacity::emit(&result, &run_config.outputs, run_config.stdout)?;
    Ok(result.outcome)
}
