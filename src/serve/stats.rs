//! The reference server's exact counters: what it received and what it sent, by outcome.
//!
//! Tests compare these with the load generator's own counts, so every frame the handler
//! answers bumps exactly one outcome counter. Atomics keep the hot path lock-free; the error
//! map takes a lock, but only on error replies.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Live counters shared by every connection of one server.
#[derive(Debug, Default)]
pub struct ServerStats {
    connections: AtomicU64,
    active: AtomicU64,
    refused: AtomicU64,
    hello_ok: AtomicU64,
    hello_rejected: AtomicU64,
    call_tool: AtomicU64,
    results_ok: AtomicU64,
    results_error: AtomicU64,
    replays: AtomicU64,
    cancelled: AtomicU64,
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    errors_by_code: Mutex<BTreeMap<String, u64>>,
    injected: Injected,
    /// When each TCP connection was accepted (bounded), for tests that line events up in time.
    accept_times: Mutex<Vec<std::time::Instant>>,
    /// The most connections open at once.
    peak_active: AtomicU64,
    /// Bytes of session state held now (`--session-memory`).
    session_memory: AtomicU64,
    /// Sessions that got no state: the budget (`--memory-limit`) was spent.
    out_of_memory: AtomicU64,
    /// The process's resident memory when the server started, KiB: what connections add is
    /// measured from it.
    base_rss_kb: Option<u64>,
}

/// Counters of injected faults, one per kind.
#[derive(Debug, Default)]
struct Injected {
    dropped: AtomicU64,
    errors: AtomicU64,
    malformed: AtomicU64,
    duplicates: AtomicU64,
    non_final: AtomicU64,
    forced_closes: AtomicU64,
    frozen: AtomicU64,
    down_closes: AtomicU64,
    down_refused: AtomicU64,
    pings_sent: AtomicU64,
    pongs_received: AtomicU64,
    corrupted: AtomicU64,
    uncorrelated_errors: AtomicU64,
    mixed_sessions: AtomicU64,
    first_call_stalls: AtomicU64,
    diverged: AtomicU64,
}

/// A kind of injected fault, for [`ServerStats::injected`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Dropped,
    Error,
    Malformed,
    Duplicate,
    NonFinal,
    ForcedClose,
    Frozen,
    DownClose,
    DownRefused,
    PingSent,
    PongReceived,
    Corrupted,
    Uncorrelated,
    MixedSessions,
    FirstCallStall,
    Diverged,
}

pub use crate::model::{InjectedSnapshot, StatsSnapshot};

/// Outcome of a final reply, for [`ServerStats::reply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply<'a> {
    Ok,
    Error(&'a str),
    Replay,
}

impl ServerStats {
    /// Counters at zero, and the memory baseline connections are measured from.
    pub(crate) fn new() -> ServerStats {
        ServerStats {
            base_rss_kb: crate::resources::current_rss_kb(),
            ..ServerStats::default()
        }
    }

    pub(crate) fn connection_opened(&self) {
        self.connections.fetch_add(1, Relaxed);
        let now = self.active.fetch_add(1, Relaxed) + 1;
        self.peak_active.fetch_max(now, Relaxed);
    }

    /// Returns the number of connections open after this one closed.
    pub(crate) fn connection_closed(&self) -> u64 {
        self.active.fetch_sub(1, Relaxed) - 1
    }

    pub(crate) fn active(&self) -> u64 {
        self.active.load(Relaxed)
    }

    /// Takes `bytes` of the session-state budget; false (and counted) when `limit` would be
    /// passed.
    pub(crate) fn reserve_memory(&self, bytes: u64, limit: Option<u64>) -> bool {
        let fits = self
            .session_memory
            .fetch_update(Relaxed, Relaxed, |held| {
                let after = held.checked_add(bytes)?;
                limit.is_none_or(|l| after <= l).then_some(after)
            })
            .is_ok();
        if !fits {
            self.out_of_memory.fetch_add(1, Relaxed);
        }
        fits
    }

    pub(crate) fn release_memory(&self, bytes: u64) {
        self.session_memory.fetch_sub(bytes, Relaxed);
    }

    pub(crate) fn refused(&self) {
        self.refused.fetch_add(1, Relaxed);
    }

    pub(crate) fn hello(&self, ok: bool) {
        let c = if ok {
            &self.hello_ok
        } else {
            &self.hello_rejected
        };
        c.fetch_add(1, Relaxed);
    }

    pub(crate) fn call_tool(&self) {
        self.call_tool.fetch_add(1, Relaxed);
    }

    /// A client's `notifications/cancelled` (MCP).
    pub(crate) fn cancelled(&self) {
        self.cancelled.fetch_add(1, Relaxed);
    }

    pub(crate) fn frame_in(&self) {
        self.frames_in.fetch_add(1, Relaxed);
    }

    pub(crate) fn frames_out(&self, n: u64) {
        self.frames_out.fetch_add(n, Relaxed);
    }

    pub(crate) fn reply(&self, reply: Reply<'_>) {
        match reply {
            Reply::Ok => self.results_ok.fetch_add(1, Relaxed),
            Reply::Replay => self.replays.fetch_add(1, Relaxed),
            Reply::Error(code) => {
                self.error_code(code);
                self.results_error.fetch_add(1, Relaxed)
            }
        };
    }

    /// Counts a connection-level error frame by code (not a request outcome).
    pub(crate) fn error_code(&self, code: &str) {
        let mut map = self
            .errors_by_code
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *map.entry(code.to_owned()).or_default() += 1;
    }

    pub(crate) fn injected(&self, fault: Fault) {
        let i = &self.injected;
        let c = match fault {
            Fault::Dropped => &i.dropped,
            Fault::Error => &i.errors,
            Fault::Malformed => &i.malformed,
            Fault::Duplicate => &i.duplicates,
            Fault::NonFinal => &i.non_final,
            Fault::ForcedClose => &i.forced_closes,
            Fault::Frozen => &i.frozen,
            Fault::DownClose => &i.down_closes,
            Fault::DownRefused => &i.down_refused,
            Fault::PingSent => &i.pings_sent,
            Fault::PongReceived => &i.pongs_received,
            Fault::Corrupted => &i.corrupted,
            Fault::Uncorrelated => &i.uncorrelated_errors,
            Fault::MixedSessions => &i.mixed_sessions,
            Fault::FirstCallStall => &i.first_call_stalls,
            Fault::Diverged => &i.diverged,
        };
        c.fetch_add(1, Relaxed);
    }

    pub(crate) fn accepted_at(&self, at: std::time::Instant) {
        let mut log = self.accept_times.lock().unwrap_or_else(|e| e.into_inner());
        if log.len() < 100_000 {
            log.push(at);
        }
    }

    /// When TCP connections were accepted (the first 100,000).
    pub fn accept_times(&self) -> Vec<std::time::Instant> {
        self.accept_times
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Copies the counters.
    pub fn snapshot(&self) -> StatsSnapshot {
        let active = self.active.load(Relaxed);
        let rss_kb = crate::resources::current_rss_kb();
        // What each open connection costs the server: its memory beyond the start's, shared
        // out (for a server in a process of its own; an embedded one shares the client's).
        let rss_per_conn_bytes = match (rss_kb, self.base_rss_kb) {
            (Some(now), Some(base)) if active > 0 => Some(now.saturating_sub(base) * 1024 / active),
            _ => None,
        };
        StatsSnapshot {
            connections: self.connections.load(Relaxed),
            active,
            peak_active: self.peak_active.load(Relaxed),
            rss_kb,
            rss_per_conn_bytes,
            session_memory_bytes: self.session_memory.load(Relaxed),
            sessions_out_of_memory: self.out_of_memory.load(Relaxed),
            refused: self.refused.load(Relaxed),
            hello_ok: self.hello_ok.load(Relaxed),
            hello_rejected: self.hello_rejected.load(Relaxed),
            call_tool: self.call_tool.load(Relaxed),
            results_ok: self.results_ok.load(Relaxed),
            results_error: self.results_error.load(Relaxed),
            replays: self.replays.load(Relaxed),
            cancelled: self.cancelled.load(Relaxed),
            frames_in: self.frames_in.load(Relaxed),
            frames_out: self.frames_out.load(Relaxed),
            errors_by_code: self
                .errors_by_code
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            injected: {
                let i = &self.injected;
                InjectedSnapshot {
                    dropped: i.dropped.load(Relaxed),
                    errors: i.errors.load(Relaxed),
                    malformed: i.malformed.load(Relaxed),
                    duplicates: i.duplicates.load(Relaxed),
                    non_final: i.non_final.load(Relaxed),
                    forced_closes: i.forced_closes.load(Relaxed),
                    frozen: i.frozen.load(Relaxed),
                    down_closes: i.down_closes.load(Relaxed),
                    down_refused: i.down_refused.load(Relaxed),
                    pings_sent: i.pings_sent.load(Relaxed),
                    pongs_received: i.pongs_received.load(Relaxed),
                    corrupted: i.corrupted.load(Relaxed),
                    mixed_sessions: i.mixed_sessions.load(Relaxed),
                    first_call_stalls: i.first_call_stalls.load(Relaxed),
                    diverged: i.diverged.load(Relaxed),
                    uncorrelated_errors: i.uncorrelated_errors.load(Relaxed),
                }
            },
        }
    }
}
