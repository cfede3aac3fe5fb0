//! The command line as clap sees it: raw flags only, no I/O and no validation beyond types.
//! `config.rs` turns these (plus the config file and environment) into typed configs.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const EXIT_CODES: &str = "\
Exit codes:
  0    ran, and every threshold passed
  1    ran, and a threshold failed
  2    bad usage or config (nothing was run or written)
  3    could not run (target unreachable, every connection failed, hello rejected, output not writable)
  4    inconclusive (the client itself was the bottleneck)
  130  interrupted (the report is still written)";

const RUN_EXAMPLES: &str = "\
Examples:
  wsbench run --embedded --duration 10s                  load the built-in server
  wsbench run --url ws://localhost:8079 -c 64 -d 30s     load your server
  wsbench run -n 100000 --inflight 16 --json out.json    fixed count, pipelined, JSON result
  wsbench run --config config/default.toml --no-gate     settings from a profile, report only";

/// A load generator and CI gate for WebSocket tool-call servers.
#[derive(Debug, Parser)]
#[command(name = "wsbench", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors in the log.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load a server and gate on thresholds.
    #[command(after_help = format!("{RUN_EXAMPLES}\n\n{EXIT_CODES}"))]
    Run(Box<RunArgs>),
    /// Run the reference server.
    Serve(Box<ServeArgs>),
    /// Find the highest request rate the server sustains while the thresholds hold (default:
    /// response-time p99 < 5ms and no errors), by bisecting the open-loop rate.
    Capacity(Box<CapacityArgs>),
    /// Merge result files of many workers into one verdict: histograms are added exactly,
    /// counters summed, timelines aligned on wall-clock seconds, thresholds applied again.
    Merge(Box<MergeArgs>),
    /// Inspect configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script: source it, or save it where your shell looks.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout.
    Man,
}

/// `wsbench run` flags. Every value is optional here so that a config file can fill it.
#[derive(Debug, Default, Args)]
pub struct RunArgs {
    /// Target server URL (ws://). Default ws://127.0.0.1:8079.
    #[arg(long, conflicts_with = "embedded")]
    pub url: Option<String>,
    /// Start the reference server in-process on an ephemeral loopback port and load it.
    #[arg(long)]
    pub embedded: bool,
    /// Concurrent connections. Default 64.
    #[arg(short = 'c', long)]
    pub conns: Option<String>,
    /// How long to send (e.g. 30s, 2m). Default 30s; with -n, a cap of 10m.
    #[arg(short = 'd', long)]
    pub duration: Option<String>,
    /// Stop after this many requests instead (e.g. 100000 or 100k).
    #[arg(short = 'n', long)]
    pub requests: Option<String>,
    /// Requests kept outstanding per connection. Default 1.
    #[arg(long)]
    pub inflight: Option<String>,
    /// Tool to call. Default echo.
    #[arg(long)]
    pub tool: Option<String>,
    /// Arguments: a JSON object, or @FILE. `{{seq}}` becomes a number unique within the run,
    /// `{{id}}` the request id. Default {"seq":{{seq}},"id":"{{id}}"}: no two calls identical.
    #[arg(long)]
    pub args: Option<String>,
    /// Auth token sent in hello (never printed).
    #[arg(long, env = "WSBENCH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Prefix of session ids (`<prefix>-<worker>-<conn>`). Default bench.
    #[arg(long)]
    pub session_prefix: Option<String>,
    /// Limit for TCP connect + WebSocket upgrade + hello. Default 5s.
    #[arg(long)]
    pub connect_timeout: Option<String>,
    /// Per-request timeout; later replies count as late. Default 10s.
    #[arg(long)]
    pub timeout: Option<String>,
    /// How long to wait for outstanding replies after sending stops. Default 2s.
    #[arg(long)]
    pub drain: Option<String>,
    /// Open loop: total requests per second across all connections (e.g. 20000 or 20k).
    /// Latency is then response time, measured from each request's scheduled send.
    #[arg(long, conflicts_with = "stages")]
    pub rate: Option<String>,
    /// Open loop with linear ramps between rates, like k6's ramping-arrival-rate:
    /// `10s:1k,30s:50k,10s:0` (the run lasts as long as the stages).
    #[arg(long, conflicts_with = "duration")]
    pub stages: Option<String>,
    /// Run this long before measuring: traffic flows but is excluded from histograms,
    /// counters and the gate (reported apart).
    #[arg(long)]
    pub warmup: Option<String>,
    /// Open connections gradually over this long instead of all at once.
    #[arg(long, conflicts_with = "connect_rate")]
    pub ramp_up: Option<String>,
    /// Open at most this many connections per second.
    #[arg(long)]
    pub connect_rate: Option<String>,
    /// Write per-second latency histograms as an HdrHistogram interval log.
    #[arg(long, value_name = "FILE")]
    pub hdr_log: Option<String>,
    /// Live progress on stderr: a bar on a terminal, plain lines otherwise (auto).
    #[arg(long, value_name = "auto|bar|lines|off")]
    pub progress: Option<String>,
    /// Reconnect a connection that drops mid-run: on or off. Default on.
    #[arg(long, value_name = "on|off")]
    pub reconnect: Option<String>,
    /// First reconnect backoff (doubling per attempt, full jitter). Default 100ms.
    #[arg(long)]
    pub backoff_base: Option<String>,
    /// Longest reconnect backoff. Default 5s.
    #[arg(long)]
    pub backoff_max: Option<String>,
    /// Circuit breaker shared by all connections: on or off. Default on.
    #[arg(long, value_name = "on|off")]
    pub breaker: Option<String>,
    /// Consecutive failures that open the breaker. Default 5.
    #[arg(long)]
    pub breaker_failures: Option<String>,
    /// Half-open successes that close it again. Default 2.
    #[arg(long)]
    pub breaker_successes: Option<String>,
    /// How long the breaker stays open before probing. Default 5s.
    #[arg(long)]
    pub breaker_open_timeout: Option<String>,
    /// Probes let through while half-open. Default 3.
    #[arg(long)]
    pub breaker_half_open_calls: Option<String>,
    /// What counts as a breaker failure: connect (always), plus timeout and/or error.
    /// Default connect.
    #[arg(long, value_name = "connect[,timeout][,error]")]
    pub breaker_count: Option<String>,
    /// Send a WebSocket ping this often per connection and time the pong.
    #[arg(long)]
    pub ping_interval: Option<String>,
    /// A ping unanswered this long means the connection is dead: close it, reconnect.
    /// Default 5s.
    #[arg(long)]
    pub pong_timeout: Option<String>,
    /// On an error carrying retry_after: honor (pause that connection) or ignore. Default ignore.
    #[arg(long, value_name = "honor|ignore")]
    pub retry_after: Option<String>,
    /// Extra upgrade request header, repeatable: --header 'Authorization: Bearer ...'.
    #[arg(long, value_name = "NAME: VALUE")]
    pub header: Vec<String>,
    /// WebSocket subprotocol to request (Sec-WebSocket-Protocol).
    #[arg(long)]
    pub subprotocol: Option<String>,
    /// Trust this CA (PEM) for wss://, on top of the built-in roots.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<String>,
    /// Accept any server certificate for wss:// (prints a warning; never in production).
    #[arg(long)]
    pub insecure: bool,
    /// What stdout shows: text (the report), json (the result), quiet (one verdict line).
    #[arg(long, value_name = "text|json|quiet")]
    pub output: Option<String>,
    /// Write JUnit XML: one test case per threshold ('-' = stdout).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<String>,
    /// Write a self-contained HTML report with SVG charts.
    #[arg(long, value_name = "FILE")]
    pub html: Option<String>,
    /// Write the latency percentile spectrum as an SVG chart.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<String>,
    /// This worker's name in a distributed run; part of every request and session id.
    /// Default: JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs) or <hostname>-<pid>.
    #[arg(long)]
    pub worker_id: Option<String>,
    /// Connect and say hello now, start sending at this wall-clock time: RFC 3339
    /// (2026-11-26T10:00:00Z) or +DURATION from now (+30s). For many workers at once.
    #[arg(long, value_name = "TIME|+DURATION")]
    pub start_at: Option<String>,
    /// Largest frame or message accepted from the server (e.g. 16MiB); a bigger one closes the
    /// connection and is counted. Default 16MiB.
    #[arg(long, value_name = "BYTES")]
    pub max_frame_size: Option<String>,
    /// Source addresses to connect from, round-robin (e.g. 127.0.0.2,127.0.0.3): each
    /// gives another range of ephemeral ports when one address runs out.
    #[arg(long, value_name = "IP,...")]
    pub bind_ip: Option<String>,
    /// Validate this share of successful replies (e.g. 1%): against --expect-output, or for
    /// the echo tool, that the reply echoes the request's arguments.
    #[arg(long, value_name = "RATIO")]
    pub validate_sample: Option<String>,
    /// JSON Schema the `outputs` of validated replies must match.
    #[arg(long, value_name = "SCHEMA.json")]
    pub expect_output: Option<String>,
    /// Read settings from this TOML file (see config/default.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Write the full JSON result here ('-' = stdout; the text report then goes to stderr).
    #[arg(long)]
    pub json: Option<String>,
    /// The gate: thresholds and the baseline.
    #[command(flatten)]
    pub gate: GateArgs,
}

/// `wsbench serve` flags.
#[derive(Debug, Default, Args)]
pub struct ServeArgs {
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
    /// Answer unknown tools with {"error":{"code":"TOOL_NOT_FOUND"}}: no op, no request_id (the
    /// field daemon's shape).
    #[arg(long)]
    pub bare_tool_errors: bool,
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
}

/// `wsbench capacity` flags: the search, plus every `run` flag for each step.
#[derive(Debug, Default, Args)]
pub struct CapacityArgs {
    /// Lowest rate to try (requests/s, e.g. 1k).
    #[arg(long, default_value = "1000")]
    pub min_rate: String,
    /// Highest rate to try.
    #[arg(long, default_value = "100k")]
    pub max_rate: String,
    /// How long each step is measured.
    #[arg(long, default_value = "5s")]
    pub step_duration: String,
    /// Warmup before each step's measurement.
    #[arg(long, default_value = "1s")]
    pub step_warmup: String,
    /// Stop when the answer is known within this share (e.g. 2%).
    #[arg(long, default_value = "2%")]
    pub precision: String,
    #[command(flatten)]
    pub run: RunArgs,
}

/// The gate, shared by `run`, `merge` and `capacity`: thresholds and the baseline comparison.
#[derive(Debug, Default, Clone, Args)]
pub struct GateArgs {
    /// Report only: never fail on thresholds.
    #[arg(long)]
    pub no_gate: bool,
    /// A threshold expression, repeatable: 'p99<5ms', 'rps>=50k', 'error_rate<0.1%',
    /// 'connect_p99<10ms', 'p99.9<20ms', 'unavailable<=1s'. Replaces the default for its metric.
    #[arg(long, value_name = "EXPR")]
    pub threshold: Vec<String>,
    /// Minimum throughput, succeeded per second (e.g. 50000 or 50k). Default 50k.
    #[arg(long)]
    pub min_rps: Option<String>,
    /// Maximum request latency p50 (e.g. 2ms).
    #[arg(long)]
    pub max_p50: Option<String>,
    /// Maximum request latency p99. Default 5ms.
    #[arg(long)]
    pub max_p99: Option<String>,
    /// Maximum request latency p99.9.
    #[arg(long)]
    pub max_p999: Option<String>,
    /// Maximum connection setup (TCP + upgrade) p99. Default 10ms.
    #[arg(long)]
    pub max_connect_p99: Option<String>,
    /// Maximum error rate, (failed + timed out + lost) / sent, as 0.001 or 0.1%. Default 0.
    #[arg(long)]
    pub max_error_rate: Option<String>,
    /// Maximum time the target was unavailable (breaker open or no connection up), e.g. 1s.
    #[arg(long)]
    pub max_unavailable: Option<String>,
    /// Compare with a previous result file (from `run` or `merge`) and fail on a regression.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<String>,
    /// How much worse than the baseline each metric may get. Default p99=+10%,rps=-5%.
    #[arg(long, value_name = "p99=+10%,rps=-5%,...")]
    pub max_regress: Option<String>,
}

/// `wsbench merge` flags: the files, and the gate and outputs as `run` has them.
#[derive(Debug, Default, Args)]
pub struct MergeArgs {
    /// Result files written by `wsbench run --json` (or by an earlier merge).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Thresholds from this profile's [thresholds] table.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// What stdout shows: text, json or quiet.
    #[arg(long, value_name = "text|json|quiet")]
    pub output: Option<String>,
    /// Write the merged JSON result ('-' = stdout).
    #[arg(long, value_name = "FILE")]
    pub json: Option<String>,
    /// Write JUnit XML, one test case per threshold.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<String>,
    /// Write the HTML report.
    #[arg(long, value_name = "FILE")]
    pub html: Option<String>,
    /// Merge workers whose measured windows do not overlap (refused otherwise: their sum is
    /// not one load).
    #[arg(long)]
    pub allow_disjoint: bool,
    #[command(flatten)]
    pub gate: GateArgs,
}

/// `wsbench config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective run configuration and where each value came from.
    Show(Box<RunArgs>),
}
