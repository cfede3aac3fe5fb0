//! The one place where raw flags (`cli.rs`), the environment (`WSBENCH_*`, `.env`) and the
//! `--config` TOML file become validated, typed configs. Precedence: flag > environment >
//! config file > built-in default. Every error names the flag, variable or file key at fault,
//! and every value remembers where it came from (`wsbench config show`).
//!
//! Types live here; `source.rs` finds raw values, `crate::values` parses them, `run.rs` and
//! `serve.rs` assemble the configs.

mod dialect;
mod gate;
mod merge;
mod outputs;
mod plan;
mod run;
pub mod schema;
mod serve;
mod source;
mod telemetry;
mod workload;

use std::time::Duration;

pub use source::{Setting, Source};

use crate::gate::Threshold;
use crate::run::breaker::BreakerConfig;
use crate::run::connection::Backoff;
use crate::run::pacer::RateSchedule;
pub use gate::GateConfig;
pub use merge::MergeConfig;

pub use crate::net::secret::Secret;

/// Where `run` sends its load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A server at a ws:// or wss:// URL.
    Url(WsUrl),
    /// The reference server, started in-process on an ephemeral loopback port.
    Embedded,
    /// stdio: each connection spawns this command (through `sh -c`) and speaks on its pipes.
    Command(String),
}

pub use crate::net::tls::ClientTls;
pub use crate::net::url::WsUrl;
pub use crate::progress::ProgressMode;
pub use crate::report::{Outputs, StdoutMode};
pub use crate::serve::ServeConfig;

/// Everything `run` needs, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct RunConfig {
    pub target: Target,
    /// The dialect spoken (`--protocol`).
    pub protocol: crate::protocol::Dialect,
    /// Live metrics: the endpoint and the OTLP push.
    pub telemetry: crate::live::Telemetry,
    /// stdio: where the spawned servers' stderr goes.
    pub stderr_log: Option<std::path::PathBuf>,
    /// MCP: each call asks for progress notifications (`_meta.progressToken`).
    pub progress_token: bool,
    /// Streamable HTTP over HTTP/2: one multiplexed connection per session.
    pub http2: bool,
    pub conns: u32,
    /// Sending stops after this long (the count, if any, may stop it sooner).
    pub duration: Duration,
    /// Stop after this many requests have been sent and answered.
    pub requests: Option<u64>,
    pub inflight: u32,
    /// What the reports call the tool: its name, or the mix (`search=70,fetch=30`).
    pub tool: String,
    /// Arguments JSON text with placeholders; `None` = the varying default (one tool).
    pub args: Option<String>,
    /// What each request calls.
    pub mix: crate::run::mix::Mix,
    /// `--data`: rows for the arguments' `{{row.<column>}}`.
    pub data: Option<crate::protocol::rows::Data>,
    /// `--check isolation`: the pointer of the echoed id in each result's text.
    pub isolation: Option<String>,
    /// `--check consistent`: every result compared with the reference a probe found.
    pub consistent: bool,
    pub token: Secret,
    pub session_prefix: String,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub drain: Duration,
    /// Ramp-down: connections closed at this many per second after the drain.
    pub close_rate: Option<f64>,
    /// Extra upgrade request headers.
    pub headers: Vec<(String, String)>,
    pub subprotocol: Option<String>,
    /// This worker's name: part of request and session ids, recorded in the result.
    pub worker_id: String,
    /// Start sending at this wall-clock time (connect and hello before it).
    pub start_at: Option<std::time::SystemTime>,
    /// Largest frame or message accepted from the server, in bytes.
    pub max_frame_size: usize,
    /// Source addresses to connect from, round-robin; empty = the OS picks.
    pub bind_ips: Vec<std::net::IpAddr>,
    pub tls: ClientTls,
    /// Open loop: the measured window's rate schedule. `None` = closed loop.
    pub schedule: Option<RateSchedule>,
    /// Traffic before the measured window, excluded from everything but its own counts.
    pub warmup: Duration,
    /// Delay between starting one connection's setup and the next.
    pub connect_spacing: Duration,
    pub progress: ProgressMode,
    pub stdout: StdoutMode,
    pub outputs: Outputs,
    pub breaker: BreakerConfig,
    /// Reconnect after drops, with this backoff; `None` = a dropped connection stays down.
    pub reconnect: Option<Backoff>,
    /// Client keepalive: (ping interval, pong timeout).
    pub ping: Option<(Duration, Duration)>,
    /// `--retry-after honor`: pause at most `--retry-after-max`; `None`: ignore.
    pub retry_after: Option<Duration>,
    /// `--uncorrelated-errors`: whose failure an error frame without a request id is.
    pub uncorrelated: crate::protocol::Uncorrelated,
    /// The embedded server's settings (the profile's `[serve]` table; the run's token).
    pub embedded_server: ServeConfig,
    /// Empty when the gate is off.
    pub thresholds: Vec<Threshold>,
    /// `--baseline`: a previous result and how much worse each metric may get.
    pub baseline: Option<(
        crate::gate::baseline::Baseline,
        Vec<crate::gate::baseline::Tolerance>,
    )>,
    /// `--validate-sample`: the share of successful replies checked, and against what.
    pub validation: Option<Validation>,
    pub gate: bool,
}

/// Response validation settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Validation {
    /// Share of successful replies checked (0, 1].
    pub sample: f64,
    /// JSON Schema for `outputs`; `None` = the echo check.
    pub schema: Option<serde_json::Value>,
}

/// The effective `run` configuration with the source of every value (token redacted).
pub fn explain_run(args: &crate::cli::RunArgs) -> Result<Vec<Setting>, crate::error::ConfigError> {
    run::explain(args)
}
