//! The OpenMetrics text exposition (and Prometheus' 0.0.4 text, for scrapers that do not ask
//! for OpenMetrics) of metric families: counters as `_total`, response times as fixed-bucket
//! histograms, the identity's labels on every series.

use std::fmt::Write as _;

use super::{BUCKETS_S, Family, Kind, Value};

/// The content type of each form.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders `families` with `common` labels first on every series. `openmetrics`: the
/// OpenMetrics form (`# UNIT`, counter families named without `_total`, `# EOF`).
pub fn render(families: &[Family], common: &[(&str, String)], openmetrics: bool) -> String {
    let mut out = String::with_capacity(4096);
    for f in families {
        let kind = match f.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        // Prometheus' text names a counter family by its sample's name.
        let family = if f.kind == Kind::Counter && !openmetrics {
            format!("{}_total", f.name)
        } else {
            f.name.to_owned()
        };
        let _ = writeln!(out, "# HELP {family} {}", f.help);
        let _ = writeln!(out, "# TYPE {family} {kind}");
        if let (Some(unit), true) = (f.unit, openmetrics) {
            let _ = writeln!(out, "# UNIT {family} {unit}");
        }
        for p in &f.points {
            let labels = |extra: Option<(&str, String)>| {
                let all = common
                    .iter()
                    .map(|(k, v)| (*k, v.as_str()))
                    .chain(p.labels.iter().map(|(k, v)| (*k, v.as_str())));
                let mut s = String::new();
                for (k, v) in all.chain(extra.as_ref().map(|(k, v)| (*k, v.as_str()))) {
                    let sep = if s.is_empty() { '{' } else { ',' };
                    let _ = write!(s, "{sep}{k}=\"{}\"", escape(v));
                }
                if !s.is_empty() {
                    s.push('}');
                }
                s
            };
            match (&p.value, f.kind) {
                (Value::Micros(h), _) => {
                    let base = labels(None);
                    for b in BUCKETS_S {
                        let n = h.count_between(0, (b * 1e6) as u64);
                        let le = labels(Some(("le", format!("{b}"))));
                        let _ = writeln!(out, "{}_bucket{le} {n}", f.name);
                    }
                    let inf = labels(Some(("le", "+Inf".into())));
                    let _ = writeln!(out, "{}_bucket{inf} {}", f.name, h.len());
                    let _ = writeln!(out, "{}_count{base} {}", f.name, h.len());
                    let sum = h.mean() * h.len() as f64 / 1e6;
                    let _ = writeln!(out, "{}_sum{base} {sum}", f.name);
                }
                (Value::Count(n), Kind::Counter) => {
                    let _ = writeln!(out, "{}_total{} {n}", f.name, labels(None));
                }
                (Value::Count(n), _) => {
                    let _ = writeln!(out, "{}{} {n}", f.name, labels(None));
                }
                (Value::Number(x), _) => {
                    let _ = writeln!(out, "{}{} {}", f.name, labels(None), number(*x));
                }
            }
        }
    }
    if openmetrics {
        out.push_str("# EOF\n");
    }
    out
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

fn number(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else if x.is_infinite() {
        if x > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        // Nanosecond resolution: no binary-fraction tails (9.900000000000001e-5).
        format!("{}", (x * 1e9).round() / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::Family;

    fn families() -> Vec<Family> {
        let mut requests = Family::new("wsbench_requests", Kind::Counter, "Requests by outcome.");
        requests.point(vec![("outcome", "ok \"x\"".into())], Value::Count(7));
        let mut latency = Family::new("wsbench_latency_seconds", Kind::Histogram, "Response time.")
            .unit("seconds");
        let mut h = crate::stats::recorder::new_histogram();
        for us in [50, 900, 900, 20_000] {
            h.record(us).unwrap();
        }
        latency.point(vec![("tool", "echo".into())], Value::Micros(h));
        vec![requests, latency]
    }

    #[test]
    fn openmetrics_form_has_units_totals_buckets_and_eof() {
        let text = render(&families(), &[("run_id", "r1".into())], true);
        assert!(text.contains("# TYPE wsbench_requests counter\n"));
        assert!(
            text.contains("wsbench_requests_total{run_id=\"r1\",outcome=\"ok \\\"x\\\"\"} 7\n")
        );
        assert!(text.contains("# UNIT wsbench_latency_seconds seconds\n"));
        assert!(text.contains(
            "wsbench_latency_seconds_bucket{run_id=\"r1\",tool=\"echo\",le=\"0.0001\"} 1\n"
        ));
        assert!(text.contains(
            "wsbench_latency_seconds_bucket{run_id=\"r1\",tool=\"echo\",le=\"0.001\"} 3\n"
        ));
        assert!(text.contains(
            "wsbench_latency_seconds_bucket{run_id=\"r1\",tool=\"echo\",le=\"+Inf\"} 4\n"
        ));
        assert!(text.contains("wsbench_latency_seconds_count{run_id=\"r1\",tool=\"echo\"} 4\n"));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn prometheus_form_names_counter_families_by_their_sample() {
        let text = render(&families(), &[], false);
        assert!(text.contains("# TYPE wsbench_requests_total counter\n"));
        assert!(!text.contains("# UNIT") && !text.contains("# EOF"));
    }
}
