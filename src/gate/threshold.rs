//! Threshold expressions as users write them, k6-style: `p99<5ms`, `rps>=50k`,
//! `error_rate<0.1%`, `connect_p99<10ms`, `p99.9<20ms`, `unavailable<=1s`. A metric the gate
//! does not know is an error, never a silent pass.

use super::{Cmp, Metric, Threshold};
use crate::units;

/// Parses one expression.
pub fn parse(expr: &str) -> Result<Threshold, String> {
    let expr = expr.trim();
    let at = expr
        .find(['<', '>'])
        .ok_or_else(|| format!("'{expr}' has no comparison; write e.g. p99<5ms or rps>=50k"))?;
    let (name, rest) = expr.split_at(at);
    let (op, value) = if let Some(v) = rest.strip_prefix("<=") {
        (Cmp::Le, v)
    } else if let Some(v) = rest.strip_prefix(">=") {
        (Cmp::Ge, v)
    } else if let Some(v) = rest.strip_prefix('<') {
        (Cmp::Lt, v)
    } else {
        (Cmp::Gt, &rest[1..])
    };
    let name = name.trim();
    // `p99{tool=search}`: the metric of one tool's calls.
    let (name, tool) = match name.split_once('{') {
        Some((metric, selector)) => {
            let tool = selector
                .strip_suffix('}')
                .and_then(|s| s.trim().strip_prefix("tool="))
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| format!("'{name}': write a tool's metric as p99{{tool=NAME}}"))?;
            (metric.trim(), Some(tool.to_owned()))
        }
        None => (name, None),
    };
    let metric = Metric::from_name(name).ok_or_else(|| {
        let known = Metric::names().join(", ");
        format!("unknown metric '{name}' (known: {known})")
    })?;
    let value = value.trim();
    let limit = match metric {
        Metric::Rps => units::parse_count(value.trim_end_matches("/s"))?,
        Metric::ErrorRate => units::parse_ratio(value)?,
        Metric::Unavailable => units::parse_duration(value)?.as_secs_f64(),
        Metric::Dropped | Metric::ConnectionErrors => value
            .parse::<u64>()
            .map(|n| n as f64)
            .map_err(|_| format!("'{value}' is not a whole number"))?,
        _ => {
            if value.parse::<f64>().is_ok() {
                return Err(format!("'{value}' needs a unit, e.g. 5ms or 250us"));
            }
            units::parse_duration(value)?.as_secs_f64() * 1e3
        }
    };
    // Every metric is at least 0 and a ratio at most 1: a limit beyond that can never pass (or
    // never fail), which is a typo, not a gate.
    let never = match op {
        Cmp::Lt => limit <= 0.0,
        Cmp::Le => limit < 0.0,
        Cmp::Gt | Cmp::Ge => metric == Metric::ErrorRate && limit >= 1.0 && op == Cmp::Gt,
    };
    if never {
        return Err(format!("'{expr}' can never pass"));
    }
    if tool.is_some()
        && !matches!(
            metric,
            Metric::P50
                | Metric::P90
                | Metric::P99
                | Metric::P999
                | Metric::Max
                | Metric::ErrorRate
                | Metric::Rps
        )
    {
        return Err(format!(
            "{} is a whole run's figure; per tool: p50, p90, p99, p99.9, max, error_rate, rps",
            metric.name()
        ));
    }
    Ok(Threshold {
        metric,
        op,
        limit,
        tool,
    })
}

/// Parses a comma-separated list (repeated flags and TOML arrays arrive joined by commas).
pub fn parse_list(list: &str) -> Result<Vec<Threshold>, String> {
    list.split(',')
        .filter(|e| !e.trim().is_empty())
        .map(parse)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_k6_users_write() {
        let t = parse("p99<5ms").unwrap();
        assert_eq!((t.metric, t.op, t.limit), (Metric::P99, Cmp::Lt, 5.0));
        let t = parse("rps>=50k").unwrap();
        assert_eq!((t.metric, t.op, t.limit), (Metric::Rps, Cmp::Ge, 50_000.0));
        let t = parse("error_rate<0.1%").unwrap();
        assert_eq!((t.metric, t.op), (Metric::ErrorRate, Cmp::Lt));
        assert!((t.limit - 0.001).abs() < 1e-12);
        assert_eq!(parse("p99.9 < 20ms").unwrap().metric, Metric::P999);
        assert_eq!(parse("connect_p99<=10ms").unwrap().op, Cmp::Le);
        assert_eq!(parse("p50<250us").unwrap().limit, 0.25);
        assert_eq!(parse("unavailable<=1s").unwrap().limit, 1.0);
        assert_eq!(parse_list("p99<5ms, rps>=1k").unwrap().len(), 2);
        let t = parse("p99{tool=search}<50ms").unwrap();
        assert_eq!((t.metric, t.tool.as_deref()), (Metric::P99, Some("search")));
        assert_eq!(t.describe(), "p99{tool=search} < 50.00 ms");
        let t = parse("error_rate{ tool=fetch }<1%").unwrap();
        assert_eq!(t.tool.as_deref(), Some("fetch"));
        assert!(parse("p99{search}<5ms").unwrap_err().contains("tool=NAME"));
        assert!(
            parse("connect_p99{tool=a}<5ms")
                .unwrap_err()
                .contains("per tool")
        );
    }

    #[test]
    fn unknown_metrics_and_bad_values_are_errors() {
        assert!(
            parse("p98<5ms")
                .unwrap_err()
                .contains("unknown metric 'p98'")
        );
        assert!(parse("p99<5").unwrap_err().contains("needs a unit"));
        assert!(parse("p99=5ms").is_err());
        assert!(parse("rps>=lots").is_err());
        assert!(parse("error_rate<200%").is_err());
    }
}
