//! Live metrics settings (`--metrics-listen`, `--metrics-linger`, `--otlp-endpoint`,
//! `--otlp-interval`), the same for `run` and `serve`: keys of the `[run]` or `[serve]` table.

use super::source::Resolver;
use crate::cli::MetricsArgs;
use crate::error::ConfigError;
use crate::live::{Otlp, Telemetry};
use crate::units;
use crate::values::*;

pub(super) fn telemetry(
    args: &MetricsArgs,
    r: &Resolver,
    section: &'static str,
) -> Result<Telemetry, ConfigError> {
    let key = |k| (section, k);
    let listen = r.get(
        args.metrics_listen.as_ref(),
        "--metrics-listen",
        key("metrics_listen"),
        listen_addr,
    )?;
    let linger = r.get(
        args.metrics_linger.as_ref(),
        "--metrics-linger",
        key("metrics_linger"),
        units::parse_duration,
    )?;
    let endpoint = r.get(
        args.otlp_endpoint.as_ref(),
        "--otlp-endpoint",
        key("otlp_endpoint"),
        otlp_endpoint,
    )?;
    let interval = r.get(
        args.otlp_interval.as_ref(),
        "--otlp-interval",
        key("otlp_interval"),
        positive_duration,
    )?;
    // A setting that would do nothing is refused rather than ignored.
    let needs = |set: bool, flag: &str, other: &str| {
        if set {
            Err(ConfigError::Rejected {
                name: flag.into(),
                reason: format!("needs {other}"),
            })
        } else {
            Ok(())
        }
    };
    needs(
        linger.is_some() && listen.is_none(),
        "--metrics-linger",
        "--metrics-listen",
    )?;
    needs(
        interval.is_some() && endpoint.is_none(),
        "--otlp-interval",
        "--otlp-endpoint",
    )?;
    Ok(Telemetry {
        listen,
        linger: linger.unwrap_or_default(),
        otlp: endpoint.map(|endpoint| Otlp {
            endpoint,
            interval: interval.unwrap_or(std::time::Duration::from_secs(5)),
        }),
    })
}
