//! A run's live metrics from the recorders' live view: requests by tool and outcome, errors by
//! tool and code, in flight, open connections, the breaker's state, response times by tool and
//! the last second's p50/p99. All of the measured window, as the final report counts them.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use super::{Family, Kind, Value};
use crate::model::{BreakerState, Tally};
use crate::stats::recorder::{Live, LiveDetail};

/// What a reading of a run holds.
pub struct RunReading<'a> {
    pub live: &'a Live,
    pub detail: &'a LiveDetail,
    /// `None` when the breaker is off.
    pub breaker: Option<BreakerState>,
    /// The per-tool names by `Mix::stat` place (a tool twice in the mix is one series).
    pub tools: &'a [String],
}

pub fn families(r: &RunReading<'_>) -> Vec<Family> {
    let name = |i: usize| r.tools.get(i).cloned().unwrap_or_else(|| "other".into());
    // By tool name, summed where a tool is in the mix twice.
    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    for (i, t) in r.detail.tools.iter().enumerate() {
        *tallies.entry(name(i)).or_default() += t;
    }
    let mut latency: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
    for (i, h) in r.detail.latency.iter().enumerate() {
        match latency.entry(name(i)) {
            std::collections::btree_map::Entry::Occupied(mut e) => {
                let _ = e.get_mut().add(h);
            }
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(h.clone());
            }
        }
    }
    let mut sent = Family::new(
        "wsbench_requests_sent",
        Kind::Counter,
        "Requests sent in the measured window.",
    );
    let mut done = Family::new(
        "wsbench_requests",
        Kind::Counter,
        "Requests ended, by outcome: succeeded, failed (an error reply), timed_out, lost (the connection dropped).",
    );
    for (tool, t) in &tallies {
        sent.point(vec![("tool", tool.clone())], Value::Count(t.sent));
        for (outcome, n) in [
            ("succeeded", t.succeeded),
            ("failed", t.failed),
            ("timed_out", t.timed_out),
            ("lost", t.lost),
        ] {
            done.point(
                vec![("tool", tool.clone()), ("outcome", outcome.into())],
                Value::Count(n),
            );
        }
    }
    let t = &r.live.totals;
    let mut dropped = Family::new(
        "wsbench_requests_dropped",
        Kind::Counter,
        "Open loop: slots of the schedule never sent.",
    );
    dropped.point(Vec::new(), Value::Count(t.dropped));
    let mut in_flight = Family::new(
        "wsbench_requests_in_flight",
        Kind::Gauge,
        "Requests sent and not yet ended (after the run: unfinished).",
    );
    let ended = t.succeeded + t.failed + t.timed_out + t.lost;
    in_flight.point(Vec::new(), Value::Count(t.sent.saturating_sub(ended)));
    let mut errors = Family::new(
        "wsbench_errors",
        Kind::Counter,
        "Error replies by tool and code.",
    );
    let mut by_code: BTreeMap<(String, &str), u64> = BTreeMap::new();
    for ((stat, code), n) in &r.detail.errors {
        *by_code.entry((name(usize::from(*stat)), code)).or_default() += n;
    }
    for ((tool, code), n) in by_code {
        errors.point(
            vec![("tool", tool), ("code", code.to_owned())],
            Value::Count(n),
        );
    }
    let mut conns = Family::new(
        "wsbench_connections_open",
        Kind::Gauge,
        "Connections open (handshake done).",
    );
    conns.point(Vec::new(), Value::Count(u64::from(r.live.open_conns)));
    let mut breaker = Family::new(
        "wsbench_breaker_state",
        Kind::Gauge,
        "The circuit breaker's state: 1 for the current one (all 0 when the breaker is off).",
    );
    for (state, label) in [
        (BreakerState::Closed, "closed"),
        (BreakerState::HalfOpen, "half_open"),
        (BreakerState::Open, "open"),
    ] {
        let on = u64::from(r.breaker == Some(state));
        breaker.point(vec![("state", label.into())], Value::Count(on));
    }
    let mut histogram = Family::new(
        "wsbench_latency_seconds",
        Kind::Histogram,
        "Response time of successes, by tool.",
    )
    .unit("seconds");
    for (tool, h) in latency {
        histogram.point(vec![("tool", tool)], Value::Micros(h));
    }
    let mut last = Family::new(
        "wsbench_latency_last_second_seconds",
        Kind::Gauge,
        "Response-time percentiles of the last complete second.",
    )
    .unit("seconds");
    if let Some(l) = r.live.last_second.filter(|l| l.count > 0) {
        for (q, ms) in [("0.5", l.p50_ms), ("0.99", l.p99_ms)] {
            last.point(vec![("quantile", q.into())], Value::Number(ms / 1e3));
        }
    }
    vec![
        sent, done, dropped, in_flight, errors, conns, breaker, histogram, last,
    ]
}
