//! `wsbench serve`'s flags: the reference server's listener, token, TLS and every fault it
//! can inject, each with its `[serve]` profile key.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::MetricsArgs;
use crate::protocol::Dialect;
use crate::values::*;

/// `wsbench serve` flags.
#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// The dialect: tool-call (hello + call_tool) or mcp (JSON-RPC 2.0 over WebSocket: the
    /// `initialize` handshake, tools/call, tools/list; the token as `Authorization: Bearer`).
    /// Default tool-call.
    #[arg(long, value_name = "tool-call|mcp", value_parser = given(Dialect::parse))]
    pub protocol: Option<Given<Dialect>>,
    /// Serve one session on stdin and stdout instead of listening (what a client that spawns
    /// its server, `run --command`, talks to). Nothing but protocol goes to stdout.
    #[arg(long)]
    pub stdio: bool,
    /// Results remembered for replaying a repeated request id; 0 turns replays off (every
    /// call is executed, as for a client that cannot vary its ids). Default 200000.
    #[arg(long)]
    pub cache_size: Option<String>,
    /// Address to bind. Default 127.0.0.1.
    #[arg(long)]
    pub host: Option<String>,
    /// Port to bind; 0 picks a free one (the bound address is printed). Default 8079.
    #[arg(long)]
    pub port: Option<String>,
    /// Token clients must send in hello; empty means no check.
    #[arg(long, env = "WSBENCH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Close (4002) connections that send no hello within this time. Default 10s.
    #[arg(long)]
    pub hello_timeout: Option<String>,
    /// Refuse (close 1008) connections beyond this many.
    #[arg(long)]
    pub max_conns: Option<String>,
    /// Each session holds this much state in memory (allocated and written), as servers with
    /// per-session caches do, e.g. 64KiB. Default 0.
    #[arg(long, value_name = "BYTES")]
    pub session_memory: Option<String>,
    /// Memory budget for session state, counted by the server as Redis counts maxmemory: a
    /// session that does not fit gets no state and every call it makes is answered
    /// OUT_OF_MEMORY (the memory-pressure knee: limit / --session-memory sessions).
    #[arg(long, value_name = "BYTES")]
    pub memory_limit: Option<String>,
    /// Write the server's counters as JSON here on shutdown.
    #[arg(long)]
    pub stats_file: Option<PathBuf>,
    /// Delay every tool reply by this much (e.g. 5ms).
    #[arg(long)]
    pub delay: Option<String>,
    /// Add a uniform random delay in [0, JITTER) to every tool reply.
    #[arg(long)]
    pub jitter: Option<String>,
    /// Stop reading all connections every this long (a stall), for --pause-for.
    #[arg(long, requires = "pause_for")]
    pub pause_every: Option<String>,
    /// Length of each stall.
    #[arg(long, requires = "pause_every")]
    pub pause_for: Option<String>,
    /// Extra reply delay for sessions whose id ends with SUFFIX (repeatable): `-3=20ms` slows
    /// wsbench's connection 3.
    #[arg(long, value_name = "SUFFIX=DURATION", allow_hyphen_values = true)]
    pub session_delay: Vec<String>,
    /// Tools with their own reply delay, 'search=5ms,fetch=20ms': each a tool like echo (listed
    /// by tools/list) answering after its delay (on top of --delay); a built-in one named gets
    /// the delay added. What a mixed workload needs to show which tool is slow.
    #[arg(long, value_name = "TOOL=DURATION,...", value_parser = given(tool_delays))]
    pub tool_delay: Option<Given<Vec<(String, Duration)>>>,
    /// Seed for every random fault, for repeatable runs.
    #[arg(long)]
    pub seed: Option<String>,
    /// Share of calls answered with OVER_CAPACITY (e.g. 0.01 or 1%).
    #[arg(long)]
    pub error_rate: Option<String>,
    /// retry_after (seconds) carried by injected OVER_CAPACITY errors. Default 1.
    #[arg(long, value_name = "SECONDS")]
    pub retry_after: Option<String>,
    /// Share of calls never answered.
    #[arg(long)]
    pub drop_rate: Option<String>,
    /// Share of calls preceded by a malformed frame.
    #[arg(long)]
    pub malformed_rate: Option<String>,
    /// Share of calls whose final reply is sent twice.
    #[arg(long)]
    pub duplicate_rate: Option<String>,
    /// Close each connection with 1011 after this many calls (the last one answered).
    #[arg(long, value_name = "N")]
    pub disconnect_after: Option<String>,
    /// After this many calls, stop reading and writing a connection but keep it open
    /// (a hung server: no replies, no pongs).
    #[arg(long, value_name = "N")]
    pub freeze_after: Option<String>,
    /// Outage: this long after start, close every connection (1012) and refuse new ones...
    #[arg(long, requires = "down_for")]
    pub down_after: Option<String>,
    /// ...for this long, then recover.
    #[arg(long, requires = "down_after")]
    pub down_for: Option<String>,
    /// Send call_tool_ack before each reply.
    #[arg(long)]
    pub ack: bool,
    /// Send a progress frame before each reply.
    #[arg(long)]
    pub progress: bool,
    /// Precede each successful call_tool_res with N stream_chunk frames and a stream_complete.
    #[arg(long, value_name = "N")]
    pub stream: Option<String>,
    /// Send stream_complete before every successful call_tool_res (the field daemon's order).
    #[arg(long)]
    pub stream_complete: bool,
    /// Share of calls rejected with {"op":"error","error":{"code":"OVER_CAPACITY"}} and no
    /// request_id (the field daemon's rate limiter); such a call gets no reply of its own.
    #[arg(long)]
    pub uncorrelated_error_rate: Option<String>,
    /// Answer each connection's calls in the order they came, one after another (the field
    /// daemon handles a connection's frames one at a time): a call's delay starts when the
    /// previous call's reply went out, so every reply (and every error without a request_id)
    /// is about the oldest call not yet answered.
    #[arg(long)]
    pub in_order: bool,
    /// Answer unknown tools with {"error":{"code":"TOOL_NOT_FOUND"}}: no op, no request_id (the
    /// field daemon's shape).
    #[arg(long)]
    pub bare_tool_errors: bool,
    /// MCP: injected errors (--error-rate) are JSON-RPC errors (-32603, internal error) rather
    /// than tool results with isError: true.
    #[arg(long)]
    pub rpc_errors: bool,
    /// Ping every connection this often (pongs are counted).
    #[arg(long)]
    pub ping_interval: Option<String>,
    /// Work on at most N calls at once, server-wide; the rest queue. With --delay D the
    /// server's capacity is exactly N/D calls per second (a known knee for `wsbench capacity`).
    #[arg(long, value_name = "N")]
    pub max_inflight: Option<String>,
    /// Share of echo replies whose text is corrupted (for response validation).
    #[arg(long)]
    pub corrupt_rate: Option<String>,
    /// Share of echo replies that carry another session's arguments (the "responses mixed up
    /// between sessions under concurrency" bug), for `run --check isolation`.
    #[arg(long)]
    pub mix_sessions_rate: Option<String>,
    /// Share of echo replies whose text differs from what the same call gets elsewhere (a
    /// member added), for `run --check consistent`.
    #[arg(long)]
    pub diverge_rate: Option<String>,
    /// Never answer each session's first tool call (the lazy-initialization deadlock: the
    /// first call hangs while later ones are served), for `run --check first-call`.
    #[arg(long)]
    pub first_call_stall: bool,
    /// Largest frame or message accepted from a client. Default 16MiB.
    #[arg(long, value_name = "BYTES")]
    pub max_message_size: Option<String>,
    /// Serve wss:// with this certificate chain (PEM)...
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<String>,
    /// ...and this private key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<String>,
    /// Read settings from this TOML file's [serve] table.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub metrics: MetricsArgs,
}
