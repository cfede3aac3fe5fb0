//! The model: plain data that connection tasks record and everything downstream reads (time
//! stamps, counts, events, per-connection reports). No arithmetic on stamps here, and no
//! dependency on any other part of the crate; the recorder (`stats/recorder.rs`) turns stamps
//! into histograms and timelines.

use std::collections::BTreeMap;
use std::ops::AddAssign;
use std::time::Instant;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The result file's `schema_version`: bumped whenever a key changes meaning or goes away.
/// Writers, merge and the baseline all check it.
pub const RESULT_SCHEMA_VERSION: u32 = 1;

/// One request's stamps as it left the window. A success carries them all; any other ending
/// (failed, timed out, lost, unfinished) only its send stamps, so that schedule and client lag
/// are measured over every request sent, not over the successes alone.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub conn: u32,
    /// It ended in success: response and service time and the phases are recorded; otherwise
    /// only the lags (`received` is then when it ended).
    pub succeeded: bool,
    /// Which call of the mix it was (an index into the run's calls).
    pub call: u8,
    /// Its slot in the pacer's schedule (closed loop: the send time).
    pub scheduled: Instant,
    /// When the connection could first have sent it: `scheduled`, or later if the window was
    /// full or a write was still flushing then. `ready > scheduled` means the server held it up.
    pub ready: Instant,
    /// When the connection handed its frame to the writer: the client's own send time.
    pub queued: Instant,
    /// When the socket took the frame (the flush that carried it completed); later than
    /// `queued` only when the server was slow to read.
    pub sent: Instant,
    /// When its final reply was read.
    pub received: Instant,
    /// First `call_tool_ack`, if any.
    pub acked: Option<Instant>,
    /// First `progress` or `stream_chunk`, if any.
    pub first_chunk: Option<Instant>,
    /// `stream_complete` (the stream's end; the result follows it), if any.
    pub stream_end: Option<Instant>,
}

impl Sample {
    /// Where response time starts. If the server held the request up (a full window), from
    /// its scheduled slot: that queueing is the server's. Otherwise from the client's own send
    /// (`queued`), so the client's timer lateness never leaks into server latency (it is client
    /// lag) while a socket the server was slow to drain does count.
    pub fn response_start(&self) -> Instant {
        if self.ready > self.scheduled {
            self.scheduled
        } else {
            self.queued
        }
    }
}

/// The stamps of one connection's setup.
#[derive(Debug, Clone, Copy)]
pub struct SetupStamps {
    pub started: Instant,
    /// TCP connected.
    pub tcp: Instant,
    /// TLS handshake done (wss:// only).
    pub tls: Option<Instant>,
    /// WebSocket upgrade answered.
    pub upgraded: Instant,
    /// hello_ack received.
    pub acked: Instant,
}

/// Per-second counts of one connection, attributed to the second each event happened in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Tally {
    pub sent: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub timed_out: u64,
    pub lost: u64,
    /// Open loop: slots of the schedule that fell due in this second and were never sent.
    #[serde(default)]
    pub dropped: u64,
}

impl AddAssign<&Tally> for Tally {
    fn add_assign(&mut self, o: &Tally) {
        self.sent += o.sent;
        self.succeeded += o.succeeded;
        self.failed += o.failed;
        self.timed_out += o.timed_out;
        self.lost += o.lost;
        self.dropped += o.dropped;
    }
}

/// What flows from connection tasks (and the orchestrator) to the recorder.
#[derive(Debug, Clone)]
pub enum Event {
    /// The measured window starts here (after warmup); sent before any sample.
    Measure {
        from: Instant,
    },
    Setup(SetupStamps),
    Samples(Vec<Sample>),
    /// A connection's counts for second `sec` of the measured window; for live metrics also
    /// by tool (`tools[stat]`, `Mix::stat`) and the failures' codes by tool since the last one.
    Tally {
        sec: u32,
        tally: Tally,
        tools: Vec<Tally>,
        errors: Vec<(u8, String)>,
    },
    /// A connection opened (hello done) or closed.
    Conn {
        at: Instant,
        open: bool,
    },
    /// A dropped connection came back: dropped at `dropped`, hello done at `up`.
    Reconnect {
        dropped: Instant,
        up: Instant,
    },
    /// A client ping answered.
    Pong {
        sent: Instant,
        received: Instant,
    },
}

/// What a connection went through besides requests: drops, reconnects, the breaker, pings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Resilience {
    /// Times the server closed or dropped the connection during load.
    pub disconnects: u64,
    /// Reconnect attempts made (each a full connect + upgrade + hello).
    pub reconnect_attempts: u64,
    /// Reconnect attempts that succeeded.
    pub reconnects: u64,
    /// Drops after sending had stopped (nothing to reconnect for).
    pub disconnects_after_stop: u64,
    /// Drops whose reconnect was given up because the run ended first.
    pub reconnects_abandoned: u64,
    /// Pings that got no pong within `--pong-timeout` (the connection was then closed).
    pub pong_timeouts: u64,
    /// Times sending paused to honour an error's `retry_after`.
    pub retry_after_pauses: u64,
    /// Connections closed because the server sent a frame over `--max-frame-size`.
    pub oversized_frames: u64,
    /// Cancellations sent for calls that timed out (MCP `notifications/cancelled`).
    #[serde(default)]
    pub cancels_sent: u64,
    /// Closes at the end the server answered with a close frame (the handshake completed).
    #[serde(default)]
    pub closes_answered: u64,
    /// Closes at the end the server did not answer within 500 ms.
    #[serde(default)]
    pub closes_unanswered: u64,
    /// Connections the server ended (an error, or no close frame) while the client closed, or
    /// while it waited for its turn under --close-rate.
    #[serde(default)]
    pub closes_dropped: u64,
    /// `retry_after` values that were negative, not a number, not finite or absurd (over a
    /// day): counted, and clamped (a negative or non-numeric one pauses nothing, a huge one
    /// `--retry-after-max`).
    #[serde(default)]
    pub retry_after_invalid: u64,
    /// Milliseconds connections spent paused for `retry_after`, summed over connections.
    #[serde(default)]
    pub retry_after_paused_ms: u64,
}

impl AddAssign<&Resilience> for Resilience {
    fn add_assign(&mut self, o: &Resilience) {
        self.disconnects += o.disconnects;
        self.reconnect_attempts += o.reconnect_attempts;
        self.reconnects += o.reconnects;
        self.disconnects_after_stop += o.disconnects_after_stop;
        self.reconnects_abandoned += o.reconnects_abandoned;
        self.pong_timeouts += o.pong_timeouts;
        self.retry_after_pauses += o.retry_after_pauses;
        self.oversized_frames += o.oversized_frames;
        self.cancels_sent += o.cancels_sent;
        self.closes_answered += o.closes_answered;
        self.closes_unanswered += o.closes_unanswered;
        self.closes_dropped += o.closes_dropped;
        self.retry_after_invalid += o.retry_after_invalid;
        self.retry_after_paused_ms += o.retry_after_paused_ms;
    }
}

/// Why a connection stopped taking part before sending ended for the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    /// Never set up: its setup failed and was not retried (`--reconnect off`, or a refused
    /// hello).
    NeverUp,
    /// The server closed it, and it was not reconnected (`--reconnect off`).
    ServerClosed,
    /// The server asked it to pause (`retry_after`) past the end of sending.
    Paused,
}

/// Request and frame counts. Every request sent ends in exactly one of succeeded, failed,
/// timed_out, lost or unfinished; in open loop every slot of the schedule is either sent or
/// dropped. The other fields count frames, not requests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Counts {
    /// Requests handed to the socket.
    pub sent: u64,
    /// Final success reply received in time.
    pub succeeded: u64,
    /// Final error reply received in time (see `errors_by_code`).
    pub failed: u64,
    /// No final reply within `--timeout`.
    pub timed_out: u64,
    /// In flight when the connection dropped.
    pub lost: u64,
    /// Still in flight when the run ended (after the drain).
    pub unfinished: u64,
    /// Open loop: slots of the schedule never sent (the connection was down, reconnecting,
    /// blocked by the breaker or paused by `retry_after`, or the run ended with them queued).
    #[serde(default)]
    pub dropped: u64,
    /// A second final reply for an already answered id.
    pub duplicates: u64,
    /// A final reply for an id this connection never sent (or with no id).
    pub unmatched: u64,
    /// A final reply for a request that had already timed out.
    pub late: u64,
    /// Frames that were not JSON objects with a string `op`, or binary.
    pub malformed: u64,
    /// progress / call_tool_ack / stream_chunk frames.
    pub non_final: u64,
    /// Other frames: connection-level errors, unknown ops, unsolicited replies.
    pub unexpected: u64,
    /// Error frames without a `request_id` that could not be tied to one request (more than
    /// one was in flight): the request they rejected ends timed out or unfinished.
    #[serde(default)]
    pub uncorrelated_errors: u64,
    /// Successful replies whose content was checked (`--validate-sample`); the ones that
    /// failed the check are in `failed` under `invalid_reply`.
    #[serde(default)]
    pub validated: u64,
    /// Successes the server marked as answered from its cache (`from_cache: true`): a part of
    /// `succeeded`, work the server did not do.
    #[serde(default)]
    pub replayed: u64,
    /// Closes after which the server still sent frames (a protocol violation): the first such
    /// frame is counted and not taken; the WebSocket library reads no further, so one close
    /// counts at most one.
    #[serde(default)]
    pub after_close: u64,
}

impl Counts {
    /// sent = succeeded + failed + timed_out + lost + unfinished.
    pub fn identity_holds(&self) -> bool {
        self.sent == self.succeeded + self.failed + self.timed_out + self.lost + self.unfinished
    }

    /// Open loop: slots of the schedule that fell due, sent or not (= sent + dropped).
    pub fn scheduled(&self) -> u64 {
        self.sent + self.dropped
    }

    /// Requests that did not succeed: failed, timed out, lost or unfinished.
    pub fn not_succeeded(&self) -> u64 {
        self.sent.saturating_sub(self.succeeded)
    }
}

impl AddAssign<&Counts> for Counts {
    fn add_assign(&mut self, o: &Counts) {
        self.sent += o.sent;
        self.succeeded += o.succeeded;
        self.failed += o.failed;
        self.timed_out += o.timed_out;
        self.lost += o.lost;
        self.unfinished += o.unfinished;
        self.dropped += o.dropped;
        self.uncorrelated_errors += o.uncorrelated_errors;
        self.duplicates += o.duplicates;
        self.unmatched += o.unmatched;
        self.late += o.late;
        self.malformed += o.malformed;
        self.non_final += o.non_final;
        self.unexpected += o.unexpected;
        self.validated += o.validated;
        self.replayed += o.replayed;
        self.after_close += o.after_close;
    }
}

/// What kind of failure ended a connection's setup: what verdicts read, never the words.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SetupKind {
    /// The server refused the session itself: a hello rejected, 401/403, close 4000-4003, a
    /// page that is no WebSocket endpoint, a revision we cannot speak. A setting to fix; never
    /// retried.
    Rejected,
    /// Turned away for now: TCP refused, too many connections (1008), 5xx or 429 at the
    /// upgrade, closed before the hello was answered.
    Refused,
    /// No answer within `--connect-timeout`: the one kind a saturated client can cause.
    Timeout,
    /// Held back by the circuit breaker: no attempt was made.
    Breaker,
    /// The run ended (a signal) before it was up.
    Interrupted,
    /// Anything else: I/O, TLS, a process that could not be spawned.
    Other,
}

/// How a connection's setup failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupFailure {
    /// `connect`, `upgrade` or `hello`.
    pub stage: &'static str,
    pub reason: String,
    /// The server's close code, when it closed.
    pub close_code: Option<u16>,
    pub kind: SetupKind,
}

impl SetupFailure {
    /// Whether the server refused the session (as opposed to a network failure): no retry.
    pub fn rejected(&self) -> bool {
        self.kind == SetupKind::Rejected
    }

    /// One line for reports, e.g. `hello: rejected: unauthorized (close 4003)`.
    pub fn describe(&self) -> String {
        let mut s = format!("{}: {}", self.stage, self.reason);
        if let Some(code) = self.close_code {
            s.push_str(&format!(" (close {code})"));
        }
        s
    }
}

/// All a connection task reports when it ends.
#[derive(Debug, Clone, Default)]
pub struct ConnReport {
    pub id: u32,
    /// Why the connection was not up by the synchronized start, if it was not.
    pub setup_failure: Option<SetupFailure>,
    /// Whether the connection carried load at all (a failed one may come up on a retry).
    pub opened: bool,
    /// Requests sent in the measured window, by outcome.
    pub counts: Counts,
    /// Requests sent during warmup, by outcome (excluded from everything else).
    pub warmup: Counts,
    /// Failed requests by error code.
    pub errors_by_code: BTreeMap<String, u64>,
    /// Connection-level error frames (no request id) by code.
    pub conn_errors_by_code: BTreeMap<String, u64>,
    /// Close codes received from the server during load (1006 = closed without a close frame).
    pub close_codes: BTreeMap<u16, u64>,
    /// What ended connections, as the client saw it when the close code alone would mislead:
    /// invalid UTF-8, a protocol violation, an invalid close code (shown as 1002).
    pub close_reasons: BTreeMap<String, u64>,
    pub resilience: Resilience,
    /// Response-time p99 of this connection's measured successes, ms (kept by the connection
    /// in a histogram of its own).
    pub p99_ms: Option<f64>,
    /// Failed reconnect attempts, by description.
    pub reconnect_failures: BTreeMap<String, u64>,
    /// The first few replies that failed validation, described.
    pub invalid_examples: Vec<String>,
    /// Measured requests by call of the mix (index into the run's calls): their outcomes and
    /// error codes.
    pub per_tool: Vec<ToolTally>,
    /// `--data-mode unique`: the connection stopped because its rows were all sent.
    pub rows_ran_out: bool,
    /// The session's first call timed out...
    pub first_call_timed_out: bool,
    /// ...while a later one succeeded: a first-call stall.
    pub first_call_stall: bool,
    /// How long it was up (set up, able to send) within the measured window.
    pub up: std::time::Duration,
    /// Why it left before sending ended for the run, if it did.
    pub departed: Option<Departure>,
}

/// One call's (tool's) outcomes on one connection, or summed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolTally {
    pub counts: Counts,
    pub errors_by_code: BTreeMap<String, u64>,
}

impl ConnReport {
    /// The measured tally of call `call`, made when first needed.
    pub fn tool(&mut self, call: u8) -> &mut ToolTally {
        let i = usize::from(call);
        if self.per_tool.len() <= i {
            self.per_tool.resize_with(i + 1, ToolTally::default);
        }
        &mut self.per_tool[i]
    }
}

/// The load generator's own figures, and whether it was the bottleneck.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ClientCheck {
    /// CPU time (user + system) over the load, in ms.
    pub cpu_ms: f64,
    /// Cores the process could use.
    pub cores: usize,
    /// CPU time as a share of those cores over the load (1.0 = all of them, all the time).
    pub cpu_share: f64,
    /// CPU microseconds per completed request.
    pub cpu_us_per_request: Option<f64>,
    /// Peak resident memory, MiB.
    pub peak_rss_mb: f64,
    /// Resident memory per open connection, KiB (setup growth / connections).
    pub rss_per_conn_kb: Option<f64>,
    /// Whether the client was near saturation, and why.
    pub saturated: bool,
    pub reasons: Vec<String>,
}

/// A circuit breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub(crate) fn from_u8(v: u8) -> BreakerState {
        match v {
            1 => BreakerState::Open,
            2 => BreakerState::HalfOpen,
            _ => BreakerState::Closed,
        }
    }
}

/// Injected-fault counters in a snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InjectedSnapshot {
    /// Calls never answered (`--drop-rate`).
    pub dropped: u64,
    /// `OVER_CAPACITY` replies (`--error-rate`).
    pub errors: u64,
    /// Malformed frames sent (`--malformed-rate`).
    pub malformed: u64,
    /// Final replies sent a second time (`--duplicate-rate`).
    pub duplicates: u64,
    /// `call_tool_ack`, `progress` and `stream_chunk` frames sent.
    pub non_final: u64,
    /// Connections closed with 1011 (`--disconnect-after`).
    pub forced_closes: u64,
    /// Connections frozen (`--freeze-after`).
    pub frozen: u64,
    /// Connections closed (1012) when the outage began.
    pub down_closes: u64,
    /// TCP connections refused during the outage.
    pub down_refused: u64,
    pub pings_sent: u64,
    pub pongs_received: u64,
    /// Echo replies whose text was corrupted (`--corrupt-rate`).
    #[serde(default)]
    pub corrupted: u64,
    /// Calls rejected with an error frame carrying no request id (`--uncorrelated-error-rate`).
    #[serde(default)]
    pub uncorrelated_errors: u64,
    /// Echo replies given another session's arguments (`--mix-sessions-rate`).
    #[serde(default)]
    pub mixed_sessions: u64,
    /// Sessions whose first tool call was never answered (`--first-call-stall`).
    #[serde(default)]
    pub first_call_stalls: u64,
    /// Echo replies given a text of their own (`--diverge-rate`).
    #[serde(default)]
    pub diverged: u64,
}

/// A point-in-time copy of the reference server's counters (`serve::ServerStats`); the
/// `--stats-file` and `stats_res` format.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StatsSnapshot {
    /// WebSocket connections accepted (upgrade completed), including ones later refused.
    pub connections: u64,
    /// Connections open right now.
    pub active: u64,
    /// The most connections open at once.
    #[serde(default)]
    pub peak_active: u64,
    /// The server process's resident memory now, KiB (Linux).
    #[serde(default)]
    pub rss_kb: Option<u64>,
    /// Its memory beyond what it started with, per open connection, bytes (while any is open;
    /// meaningful for a server in a process of its own).
    #[serde(default)]
    pub rss_per_conn_bytes: Option<u64>,
    /// Bytes of session state held now (`--session-memory`).
    #[serde(default)]
    pub session_memory_bytes: u64,
    /// Sessions opened without their state because `--memory-limit` was spent; their calls
    /// are answered `OUT_OF_MEMORY`.
    #[serde(default)]
    pub sessions_out_of_memory: u64,
    /// Connections closed with 1008 because of `--max-conns`.
    pub refused: u64,
    /// Hellos answered with `ok: true`.
    pub hello_ok: u64,
    /// Handshakes that ended in a 4000-4003 close.
    pub hello_rejected: u64,
    /// `call_tool` frames received.
    pub call_tool: u64,
    /// Final success replies sent (replays excluded).
    pub results_ok: u64,
    /// Final error replies sent (`call_tool_res` with error, or `error` with a request_id).
    pub results_error: u64,
    /// Repeated request ids answered from the result cache.
    pub replays: u64,
    /// `notifications/cancelled` received (MCP: the client gave up on a call).
    #[serde(default)]
    pub cancelled: u64,
    /// Frames read after the handshake.
    pub frames_in: u64,
    /// Frames written after the handshake.
    pub frames_out: u64,
    /// Error replies by code.
    pub errors_by_code: BTreeMap<String, u64>,
    /// What fault injection did.
    pub injected: InjectedSnapshot,
}
