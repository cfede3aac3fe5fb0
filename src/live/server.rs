//! The reference server's live metrics from its counters (`StatsSnapshot`): connections,
//! handshakes, calls and results, errors by code, frames, session memory, and what fault
//! injection did.

use super::{Family, Kind, Value};
use crate::model::StatsSnapshot;

pub fn families(s: &StatsSnapshot) -> Vec<Family> {
    let counter = |name, help, n: u64| {
        let mut f = Family::new(name, Kind::Counter, help);
        f.point(Vec::new(), Value::Count(n));
        f
    };
    let mut active = Family::new(
        "wsbench_server_connections_active",
        Kind::Gauge,
        "Connections open now.",
    );
    active.point(Vec::new(), Value::Count(s.active));
    let mut peak = Family::new(
        "wsbench_server_connections_peak",
        Kind::Gauge,
        "The most connections open at once.",
    );
    peak.point(Vec::new(), Value::Count(s.peak_active));
    let mut memory = Family::new(
        "wsbench_server_memory_per_connection_bytes",
        Kind::Gauge,
        "The server's memory beyond its start, per open connection.",
    )
    .unit("bytes");
    if let Some(b) = s.rss_per_conn_bytes {
        memory.point(Vec::new(), Value::Count(b));
    }
    let mut rss = Family::new(
        "wsbench_server_resident_memory_bytes",
        Kind::Gauge,
        "The server process's resident memory.",
    )
    .unit("bytes");
    if let Some(kb) = s.rss_kb {
        rss.point(Vec::new(), Value::Count(kb * 1024));
    }
    let mut state = Family::new(
        "wsbench_server_session_memory_bytes",
        Kind::Gauge,
        "Session state held now (--session-memory).",
    )
    .unit("bytes");
    state.point(Vec::new(), Value::Count(s.session_memory_bytes));
    let mut hellos = Family::new(
        "wsbench_server_hellos",
        Kind::Counter,
        "Handshakes by result.",
    );
    hellos.point(vec![("result", "ok".into())], Value::Count(s.hello_ok));
    hellos.point(
        vec![("result", "rejected".into())],
        Value::Count(s.hello_rejected),
    );
    let mut results = Family::new(
        "wsbench_server_results",
        Kind::Counter,
        "Final replies sent, by outcome (replays apart).",
    );
    results.point(vec![("outcome", "ok".into())], Value::Count(s.results_ok));
    results.point(
        vec![("outcome", "error".into())],
        Value::Count(s.results_error),
    );
    let mut frames = Family::new(
        "wsbench_server_frames",
        Kind::Counter,
        "Frames after the handshake, by direction.",
    );
    frames.point(vec![("direction", "in".into())], Value::Count(s.frames_in));
    frames.point(
        vec![("direction", "out".into())],
        Value::Count(s.frames_out),
    );
    let mut errors = Family::new(
        "wsbench_server_errors",
        Kind::Counter,
        "Error replies by code.",
    );
    for (code, n) in &s.errors_by_code {
        errors.point(vec![("code", code.clone())], Value::Count(*n));
    }
    let mut injected = Family::new(
        "wsbench_server_injected",
        Kind::Counter,
        "Faults injected, by kind (the serve --fault flags).",
    );
    // Every counter of the snapshot's fault section, by its field name.
    if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(&s.injected) {
        for (fault, n) in map {
            if let Some(n) = n.as_u64() {
                injected.point(vec![("fault", fault)], Value::Count(n));
            }
        }
    }
    vec![
        counter(
            "wsbench_server_connections",
            "Connections accepted (upgrade done), refused ones included.",
            s.connections,
        ),
        active,
        peak,
        memory,
        rss,
        state,
        counter(
            "wsbench_server_connections_refused",
            "Connections closed because of --max-conns.",
            s.refused,
        ),
        counter(
            "wsbench_server_sessions_out_of_memory",
            "Sessions opened without state because --memory-limit was spent.",
            s.sessions_out_of_memory,
        ),
        hellos,
        counter("wsbench_server_calls", "Tool calls received.", s.call_tool),
        results,
        counter(
            "wsbench_server_replays",
            "Repeated request ids answered from the result cache.",
            s.replays,
        ),
        counter(
            "wsbench_server_cancelled",
            "Cancellations received (MCP).",
            s.cancelled,
        ),
        frames,
        errors,
        injected,
    ]
}
