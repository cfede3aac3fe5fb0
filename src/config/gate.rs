//! The gate's settings: the built-in targets, the dedicated flags (`--max-p99` and friends) and
//! threshold expressions, resolved like every other setting (flag > env > profile > default).

use super::source::{Resolver, Source};
use crate::cli::GateArgs;
use crate::error::ConfigError;
use crate::gate::baseline::{Baseline, Tolerance};
use crate::gate::{Metric, Threshold, threshold};
use crate::units;
use crate::values::*;

/// The gate: built-in targets, replaced metric by metric by the dedicated flags (shorthands)
/// and by threshold expressions.
fn thresholds(
    args: &GateArgs,
    r: &Resolver,
    asked_rps: Option<f64>,
) -> Result<Vec<Threshold>, ConfigError> {
    let th = |k| ("thresholds", k);
    let ms = duration_ms;
    let open_loop = asked_rps.is_some();
    // Closed loop: the field's target. Open loop: the server kept up with the rate asked of it
    // (99 % of it succeeded per second), whatever that rate is.
    let default_rps = match asked_rps {
        Some(rate) => format!("{}", (rate * 0.99 * 1000.0).round() / 1000.0),
        None => "50000".into(),
    };
    let mut list = vec![
        (
            Metric::Rps,
            r.get_or(
                args.min_rps.as_ref(),
                "--min-rps",
                th("min_rps"),
                &default_rps,
                rate_floor,
            )?,
        ),
        (
            Metric::P99,
            r.get_or(args.max_p99.as_ref(), "--max-p99", th("max_p99"), "5ms", ms)?,
        ),
        (
            Metric::ConnectP99,
            r.get_or(
                args.max_connect_p99.as_ref(),
                "--max-connect-p99",
                th("max_connect_p99"),
                "10ms",
                ms,
            )?,
        ),
        (
            Metric::ErrorRate,
            r.get_or(
                args.max_error_rate.as_ref(),
                "--max-error-rate",
                th("max_error_rate"),
                "0",
                units::parse_ratio,
            )?,
        ),
    ];
    for (metric, value) in [
        (
            Metric::P50,
            r.get(args.max_p50.as_ref(), "--max-p50", th("max_p50"), ms)?,
        ),
        (
            Metric::P999,
            r.get(args.max_p999.as_ref(), "--max-p999", th("max_p999"), ms)?,
        ),
        (
            Metric::Unavailable,
            r.get(
                args.max_unavailable.as_ref(),
                "--max-unavailable",
                th("max_unavailable"),
                secs,
            )?,
        ),
    ] {
        if let Some(v) = value {
            list.push((metric, v));
        }
    }
    // Nothing unanswered passes: no slot of an open-loop schedule dropped, no connection that
    // could not be set up (override with --threshold 'dropped<=N' / 'connection_errors<=N').
    if open_loop {
        list.push((Metric::Dropped, 0.0));
    }
    list.push((Metric::ConnectionErrors, 0.0));
    let mut thresholds: Vec<Threshold> = list
        .into_iter()
        .map(|(m, v)| Threshold::new(m, v))
        .collect();
    let exprs = if args.threshold.is_empty() {
        None
    } else {
        Some(args.threshold.join(","))
    };
    if let Some(extra) = r.get(
        exprs.as_deref(),
        "--threshold",
        th("threshold"),
        threshold::parse_list,
    )? {
        // An expression on a metric replaces that metric's default; a shorthand set too (by
        // flag, environment or profile) is a conflict, refused rather than one dropped.
        let shorthands = [
            ("min_rps", Metric::Rps),
            ("max_p50", Metric::P50),
            ("max_p99", Metric::P99),
            ("max_p999", Metric::P999),
            ("max_connect_p99", Metric::ConnectP99),
            ("max_error_rate", Metric::ErrorRate),
            ("max_unavailable", Metric::Unavailable),
        ];
        for setting in r.records() {
            let Some((key, metric)) = shorthands
                .iter()
                .find(|(k, _)| setting.key == format!("thresholds.{k}"))
            else {
                continue;
            };
            let given = !matches!(setting.source, Source::Default | Source::Unset);
            if let Some(e) = extra
                .iter()
                .find(|e| e.metric == *metric && e.tool.is_none())
                && given
            {
                return Err(ConfigError::Rejected {
                    name: "--threshold".into(),
                    reason: format!(
                        "'{}' and --{} ({}) both set {}: keep one",
                        e.describe(),
                        key.replace('_', "-"),
                        setting.source,
                        metric.name()
                    ),
                });
            }
        }
        thresholds.retain(|t| !extra.iter().any(|e| e.metric == t.metric));
        thresholds.extend(extra);
    }
    Ok(thresholds)
}

/// What judges a run or a merge: the thresholds (none with the gate off), the baseline and its
/// tolerances, and whether the gate can fail the command at all.
#[derive(Debug, Clone, PartialEq)]
pub struct GateConfig {
    /// Empty when the gate is off.
    pub thresholds: Vec<Threshold>,
    /// `--baseline`: a previous result and how much worse each metric may get.
    pub baseline: Option<(Baseline, Vec<Tolerance>)>,
    /// false with `--no-gate` (or `gate = false`): report only, exit 0.
    pub gate: bool,
}

/// The gate's settings for a run (`asked_rps`, open loop's mean rate, sets the throughput
/// default and adds "nothing dropped") or a merge.
pub(super) fn resolve(
    args: &GateArgs,
    r: &Resolver,
    asked_rps: Option<f64>,
) -> Result<GateConfig, ConfigError> {
    let th = |k| ("thresholds", k);
    let gate =
        !args.no_gate && r.get_or::<_, str>(None, "--no-gate", th("gate"), "true", parse_bool)?;
    let thresholds = thresholds(args, r, asked_rps)?;
    // Validated whether or not a baseline is given, so a typo never passes silently.
    let tolerances = r.get_or(
        args.max_regress.as_deref(),
        "--max-regress",
        th("max_regress"),
        "p99=+10%,rps=-5%",
        crate::gate::baseline::parse_tolerances,
    )?;
    let baseline = r
        .get(
            args.baseline.as_deref(),
            "--baseline",
            th("baseline"),
            |s| crate::result::file::read_baseline(std::path::Path::new(s)),
        )?
        .map(|b| (b, tolerances));
    Ok(GateConfig {
        thresholds: if gate { thresholds } else { Vec::new() },
        baseline,
        gate,
    })
}
