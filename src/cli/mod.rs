//! The command line as clap sees it. Value flags are typed as clap parses them (`Given<T>`,
//! through the same `crate::values` parsers config uses for environment and files), so a bad
//! value is refused before anything else happens; every value is optional here so that a
//! profile can fill it. `config` turns these, the environment and the file into plans.

use std::path::PathBuf;

use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand};

use crate::net::url::WsUrl;
use crate::progress::ProgressMode;
use crate::protocol::{Dialect, McpVersion};
use crate::report::StdoutMode;
use crate::run::pacer::RateSchedule;
use crate::units;
use crate::values::*;

mod serve;
pub use serve::ServeArgs;

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
#[command(name = "wsbench", version, about, after_help = EXIT_CODES, arg_required_else_help = true)]
pub struct Cli {
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Quiet: only errors in the log, and run, merge and compare print the one-line verdict
    /// (--output quiet) unless --output says otherwise.
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
    /// List the target's tools with their input schemas (one session; takes run's target
    /// flags: --url, --embedded, --command, --protocol, --token, --header; --output json).
    Tools(Box<RunArgs>),
    /// Find the highest request rate the server sustains while the thresholds hold (default:
    /// response-time p99 < 5ms and no errors), by bisecting the open-loop rate.
    // The flags capacity refuses (it sets the rate, the steps and the outputs) are not listed.
    #[command(
        mut_arg("rate", |a| a.hide(true)),
        mut_arg("stages", |a| a.hide(true)),
        mut_arg("duration", |a| a.hide(true)),
        mut_arg("requests", |a| a.hide(true)),
        mut_arg("warmup", |a| a.hide(true)),
        mut_arg("junit", |a| a.hide(true)),
        mut_arg("plot", |a| a.hide(true)),
        mut_arg("hdr_log", |a| a.hide(true)),
        mut_arg("metrics_listen", |a| a.hide(true)),
        mut_arg("metrics_linger", |a| a.hide(true)),
        mut_arg("otlp_endpoint", |a| a.hide(true)),
        mut_arg("otlp_interval", |a| a.hide(true))
    )]
    Capacity(Box<CapacityArgs>),
    /// Merge result files of many workers into one verdict: histograms are added exactly,
    /// counters summed, timelines aligned on wall-clock seconds, thresholds applied again.
    Merge(Box<MergeArgs>),
    /// Compare two result files without running load: the baseline gate's table (old beside
    /// new, each metric's change and allowance) and its verdict, exit 0 or 1 like a gate.
    Compare(Box<CompareArgs>),
    /// Inspect configuration.
    #[command(subcommand, arg_required_else_help = true)]
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
    /// Target: ws:// or wss:// (WebSocket), http:// or https:// (MCP Streamable HTTP), or
    /// stdio:<command> (spawn an MCP server, as --command). Default ws://127.0.0.1:8079.
    #[arg(help_heading = "Target", long, conflicts_with = "embedded", value_parser = given(WsUrl::parse))]
    pub url: Option<Given<WsUrl>>,
    /// The target as the first argument, as oha, hey and wrk take it (the same as --url).
    #[arg(help_heading = "Target", value_name = "URL", conflicts_with_all = ["url", "embedded", "command"], value_parser = given(WsUrl::parse))]
    pub target: Option<Given<WsUrl>>,
    /// The dialect: tool-call (hello + call_tool frames) or mcp (JSON-RPC 2.0 initialize +
    /// tools/call, with the `mcp` subprotocol and the token as `Authorization: Bearer`).
    /// Default tool-call.
    #[arg(help_heading = "Target", long, value_name = "tool-call|mcp", value_parser = given(Dialect::parse))]
    pub protocol: Option<Given<Dialect>>,
    /// MCP revision: 2025-03-26, 2025-06-18, 2025-11-25 (session-based: initialize, and a
    /// server that speaks an older one answers with it), 2026-07-28 (stateless: no session,
    /// the version in every request's _meta, server/discover as the hello) or auto (2026-07-28
    /// when a probe's server/discover says the server speaks it, else 2025-11-25). The
    /// versions servers chose are in the report. Default 2025-11-25.
    #[arg(help_heading = "Target", long, value_name = "VERSION", value_parser = given(McpVersion::parse))]
    pub mcp_version: Option<Given<McpVersion>>,
    /// A weighted mix of tools instead of one --tool: 'search=70,fetch=20,summarize=10' (each
    /// call gets --args; a profile's [[scenario.call]] tables give each its own). The choice
    /// is deterministic under --seed and exact over the run.
    #[arg(help_heading = "Load", long, value_name = "TOOL=WEIGHT,...", value_parser = given(crate::run::mix::parse_mix))]
    pub mix: Option<Given<Vec<(String, u32)>>>,
    /// Rows for the arguments' {{row.<column>}} placeholders: JSON Lines (.jsonl, one object
    /// per line) or CSV with a header (.csv). Loaded once, shared by every connection.
    #[arg(help_heading = "Load", long, value_name = "FILE", value_parser = given(tool_name))]
    pub data: Option<Given<String>>,
    /// How requests take rows: round-robin (default), random (seeded by --seed), or unique
    /// (each row once; sending stops when they run out, and the report says so).
    #[arg(help_heading = "Load", long, value_name = "MODE", value_parser = given(crate::protocol::rows::RowMode::parse))]
    pub data_mode: Option<Given<crate::protocol::rows::RowMode>>,
    /// Correctness probes, comma-separated: isolation (each successful result's text must hold
    /// this request's own id at --check-pointer; another session's id is counted as
    /// cross_session, anything else as invalid_reply; works with any tool that echoes an
    /// argument), consistent (the same call from every session must get the same result text,
    /// the one a probe session got most often before load; another is divergent; needs
    /// --args without placeholders) and first-call (every session's first call goes out at
    /// the same instant; one that times out while later calls succeed is a first-call stall).
    #[arg(help_heading = "Gate", long, value_name = "PROBE,...", value_parser = given(check_probe))]
    pub check: Option<Given<Vec<String>>>,
    /// Where --check isolation finds the echoed id in a result's text (a JSON pointer).
    /// Default /id.
    #[arg(help_heading = "Gate", long, value_name = "POINTER", value_parser = given(json_pointer))]
    pub check_pointer: Option<Given<String>>,
    /// Where the mix's sequence starts (the same seed, the same calls). Default 0.
    #[arg(help_heading = "Load", long, value_parser = given(units::parse_whole))]
    pub seed: Option<Given<u64>>,
    /// MCP: every call asks for progress notifications (`_meta.progressToken`, the call's id);
    /// the time to the first one is a phase of its own in the report.
    #[arg(help_heading = "Load", long)]
    pub progress_token: bool,
    /// Streamable HTTP over HTTP/2 (prior knowledge on http://, ALPN h2 on https://): each
    /// session one connection, every call a stream on it. Default HTTP/1.1 keep-alive, one
    /// connection per call in flight.
    #[arg(help_heading = "Target", long)]
    pub http2: bool,
    /// Start the reference server in-process on an ephemeral loopback port and load it.
    #[arg(help_heading = "Target", long)]
    pub embedded: bool,
    /// stdio: spawn this server command (through `sh -c`) once per connection and speak
    /// newline-delimited JSON-RPC on its stdin and stdout (--protocol defaults to mcp); its
    /// stderr goes to a log file the report names. Every process is killed at the end.
    #[arg(help_heading = "Target", long, value_name = "CMD", conflicts_with_all = ["url", "embedded"], value_parser = given(tool_name))]
    pub command: Option<Given<String>>,
    /// Concurrent connections. Default 64.
    #[arg(help_heading = "Load", allow_hyphen_values = true, short = 'c', long, value_parser = given(positive_u32))]
    pub conns: Option<Given<u32>>,
    /// How long to send (e.g. 30s, 2m). Default 30s; with -n, a cap of 10m.
    #[arg(help_heading = "Load", allow_hyphen_values = true, short = 'd', long, value_parser = given(positive_duration))]
    pub duration: Option<Given<Duration>>,
    /// Stop after this many requests instead (e.g. 100000 or 100k).
    #[arg(help_heading = "Load", allow_hyphen_values = true, short = 'n', long, value_parser = given(positive_whole))]
    pub requests: Option<Given<u64>>,
    /// Requests kept outstanding per connection. Default 1 in closed loop; with --rate or
    /// --stages 1024 (a cap: the schedule decides when to send).
    #[arg(help_heading = "Load", allow_hyphen_values = true, long, value_parser = given(positive_u32))]
    pub inflight: Option<Given<u32>>,
    /// Tool to call. Default echo.
    #[arg(help_heading = "Load", long, value_parser = given(tool_name))]
    pub tool: Option<Given<String>>,
    /// Arguments: a JSON object, or @FILE. `{{seq}}` becomes a number unique within the run,
    /// `{{id}}` the request id. Default {"seq":{{seq}},"id":"{{id}}"}: no two calls identical.
    #[arg(help_heading = "Load", long, value_parser = given(load_args))]
    pub args: Option<Given<String>>,
    /// Auth token sent in hello (never printed).
    #[arg(
        help_heading = "Target",
        long,
        env = "WSBENCH_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Prefix of session ids (`<prefix>-<worker>-<conn>`). Default bench.
    #[arg(help_heading = "Target", long, value_parser = given(session_prefix))]
    pub session_prefix: Option<Given<String>>,
    /// Limit for TCP connect + WebSocket upgrade + hello. Default 5s.
    #[arg(help_heading = "Timing", allow_hyphen_values = true, long, value_parser = given(positive_duration))]
    pub connect_timeout: Option<Given<Duration>>,
    /// Per-request timeout; later replies count as late. Default 10s.
    #[arg(help_heading = "Timing", allow_hyphen_values = true, long, value_parser = given(positive_duration))]
    pub timeout: Option<Given<Duration>>,
    /// How long to wait for outstanding replies after sending stops. Default 2s.
    #[arg(help_heading = "Timing", allow_hyphen_values = true, long, value_parser = given(units::parse_duration))]
    pub drain: Option<Given<Duration>>,
    /// Ramp-down: after the drain, close connections at this many per second (by connection
    /// number) instead of all at once; how the server answered each close is counted.
    #[arg(help_heading = "Timing", long, value_name = "RATE", value_parser = given(positive_rate))]
    pub close_rate: Option<Given<f64>>,
    /// Open loop: total requests per second across all connections (e.g. 20000 or 20k).
    /// Latency is then response time, measured from each request's scheduled send.
    #[arg(help_heading = "Load", allow_hyphen_values = true, long, conflicts_with = "stages", value_parser = given(positive_rate))]
    pub rate: Option<Given<f64>>,
    /// Open loop with linear ramps between rates, like k6's ramping-arrival-rate:
    /// `10s:1k,30s:50k,10s:0` (the run lasts as long as the stages).
    #[arg(help_heading = "Load", long, conflicts_with = "duration", value_parser = given(RateSchedule::parse_stages))]
    pub stages: Option<Given<RateSchedule>>,
    /// Run this long before measuring: traffic flows but is excluded from histograms,
    /// counters and the gate (reported apart).
    #[arg(help_heading = "Timing", allow_hyphen_values = true, long, value_parser = given(units::parse_duration))]
    pub warmup: Option<Given<Duration>>,
    /// Open connections gradually over this long instead of all at once.
    #[arg(help_heading = "Timing", allow_hyphen_values = true, long, conflicts_with = "connect_rate", value_parser = given(units::parse_duration))]
    pub ramp_up: Option<Given<Duration>>,
    /// Open at most this many connections per second.
    #[arg(help_heading = "Timing", allow_hyphen_values = true, long, value_parser = given(positive_rate))]
    pub connect_rate: Option<Given<f64>>,
    /// Write per-second latency histograms as an HdrHistogram interval log.
    #[arg(help_heading = "Outputs", long, value_name = "FILE", value_parser = given(output_target))]
    pub hdr_log: Option<Given<String>>,
    /// Live progress on stderr: a bar on a terminal, plain lines otherwise (auto).
    #[arg(help_heading = "Outputs", long, value_name = "auto|bar|lines|off", value_parser = given(progress_mode))]
    pub progress: Option<Given<ProgressMode>>,
    /// Reconnect a connection that drops mid-run: on or off. Default on.
    #[arg(help_heading = "Resilience", long, value_name = "on|off", value_parser = given(on_off))]
    pub reconnect: Option<Given<bool>>,
    /// First reconnect backoff (doubling per attempt, full jitter). Default 100ms.
    #[arg(help_heading = "Resilience", long, value_parser = given(positive_duration))]
    pub backoff_base: Option<Given<Duration>>,
    /// Longest reconnect backoff. Default 5s.
    #[arg(help_heading = "Resilience", long, value_parser = given(positive_duration))]
    pub backoff_max: Option<Given<Duration>>,
    /// Circuit breaker shared by all connections: on or off. Default on.
    #[arg(help_heading = "Resilience", long, value_name = "on|off", value_parser = given(on_off))]
    pub breaker: Option<Given<bool>>,
    /// Consecutive failures that open the breaker. Default 5.
    #[arg(help_heading = "Resilience", long, value_parser = given(positive_u32))]
    pub breaker_failures: Option<Given<u32>>,
    /// Half-open successes that close it again. Default 2.
    #[arg(help_heading = "Resilience", long, value_parser = given(positive_u32))]
    pub breaker_successes: Option<Given<u32>>,
    /// How long the breaker stays open before probing. Default 5s.
    #[arg(help_heading = "Resilience", long, value_parser = given(positive_duration))]
    pub breaker_open_timeout: Option<Given<Duration>>,
    /// Probes let through while half-open. Default 3.
    #[arg(help_heading = "Resilience", long, value_parser = given(positive_u32))]
    pub breaker_half_open_calls: Option<Given<u32>>,
    /// What counts as a breaker failure: connect (always), plus timeout and/or error.
    /// Default connect.
    #[arg(help_heading = "Resilience", long, value_name = "connect[,timeout][,error]", value_parser = given(breaker_count))]
    pub breaker_count: Option<Given<(bool, bool)>>,
    /// Send a WebSocket ping this often per connection and time the pong.
    #[arg(help_heading = "Resilience", long, value_parser = given(positive_duration))]
    pub ping_interval: Option<Given<Duration>>,
    /// A ping unanswered this long means the connection is dead: close it, reconnect.
    /// Default 5s.
    #[arg(help_heading = "Resilience", long, value_parser = given(positive_duration))]
    pub pong_timeout: Option<Given<Duration>>,
    /// On an error carrying retry_after: honor (pause that connection) or ignore. Default ignore.
    #[arg(help_heading = "Resilience", long, value_name = "honor|ignore", value_parser = given(honor_ignore))]
    pub retry_after: Option<Given<bool>>,
    /// The longest pause an honoured retry_after gets (never past the end of sending); a
    /// longer, negative, non-numeric or absurd one is counted (retry_after_invalid) and
    /// clamped. Default 30s.
    #[arg(help_heading = "Resilience", long, value_parser = given(positive_duration))]
    pub retry_after_max: Option<Given<Duration>>,
    /// Whose failure an error frame without a request id is: single (the one request in
    /// flight, provisionally: its own reply within its timeout wins) or oldest (the oldest
    /// in flight, at once: for servers that answer a connection in order). Default single.
    #[arg(help_heading = "Resilience", long, value_name = "single|oldest", value_parser = given(uncorrelated))]
    pub uncorrelated_errors: Option<Given<crate::protocol::Uncorrelated>>,
    /// Extra upgrade request header, repeatable: --header 'Authorization: Bearer ...'.
    #[arg(help_heading = "Target", long, value_name = "NAME: VALUE")]
    pub header: Vec<String>,
    /// WebSocket subprotocol to request (Sec-WebSocket-Protocol).
    #[arg(help_heading = "Target", long, value_parser = given(tool_name))]
    pub subprotocol: Option<Given<String>>,
    /// Trust this CA (PEM) for wss://, on top of the built-in roots.
    #[arg(help_heading = "Target", long, value_name = "PEM", value_parser = given(existing_file))]
    pub ca_file: Option<Given<PathBuf>>,
    /// Accept any server certificate for wss:// (prints a warning; never in production).
    #[arg(help_heading = "Target", long)]
    pub insecure: bool,
    /// What stdout shows: text (the report), json (the result), quiet (one verdict line).
    #[arg(help_heading = "Outputs", long, value_name = "text|json|quiet", value_parser = given(stdout_mode))]
    pub output: Option<Given<StdoutMode>>,
    /// Write JUnit XML: one test case per threshold ('-' = stdout).
    #[arg(help_heading = "Outputs", long, value_name = "FILE", value_parser = given(output_target))]
    pub junit: Option<Given<String>>,
    /// Write a self-contained HTML report with SVG charts.
    #[arg(help_heading = "Outputs", long, value_name = "FILE", value_parser = given(output_target))]
    pub html: Option<Given<String>>,
    /// Write a Markdown summary (verdict, counts, thresholds, tools), e.g. to
    /// $GITHUB_STEP_SUMMARY.
    #[arg(help_heading = "Outputs", long, value_name = "FILE", value_parser = given(output_target))]
    pub markdown: Option<Given<String>>,
    /// Write the latency percentile spectrum as an SVG chart.
    #[arg(help_heading = "Outputs", long, value_name = "FILE.svg", value_parser = given(output_target))]
    pub plot: Option<Given<String>>,
    /// This worker's name in a distributed run; part of every request and session id.
    /// Default: JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs) or <hostname>-<pid>.
    #[arg(help_heading = "Advanced", long, value_parser = given(worker_id))]
    pub worker_id: Option<Given<String>>,
    /// Connect and say hello now, start sending at this wall-clock time: RFC 3339
    /// (2026-11-26T10:00:00Z) or +DURATION from now (+30s). For many workers at once.
    #[arg(help_heading = "Timing", long, value_name = "TIME|+DURATION", value_parser = given(start_at))]
    pub start_at: Option<Given<SystemTime>>,
    /// Largest frame or message accepted from the server (e.g. 16MiB); a bigger one closes the
    /// connection and is counted. Default 16MiB.
    #[arg(help_heading = "Advanced", long, value_name = "BYTES", value_parser = given(frame_size))]
    pub max_frame_size: Option<Given<usize>>,
    /// Source addresses to connect from, round-robin: a list and/or IPv4 ranges
    /// (127.0.0.2-127.0.0.9). Each gives another range of ephemeral ports (about 28,000 on
    /// Linux): loopback needs several past that many connections.
    #[arg(help_heading = "Advanced", long, value_name = "IP,...|FROM-TO", value_parser = given(ip_list))]
    pub bind_ip: Option<Given<Vec<std::net::IpAddr>>>,
    /// Validate this share of successful replies (e.g. 1%): against --expect-output, or for
    /// the echo tool, that the reply echoes the request's arguments.
    #[arg(help_heading = "Gate", long, value_name = "RATIO", value_parser = given(positive_ratio))]
    pub validate_sample: Option<Given<f64>>,
    /// JSON Schema the `outputs` of validated replies must match.
    #[arg(help_heading = "Gate", long, value_name = "SCHEMA.json")]
    pub expect_output: Option<String>,
    /// Read settings from this TOML file (see config/default.toml).
    #[arg(help_heading = "Advanced", long)]
    pub config: Option<PathBuf>,
    /// Write the full JSON result here ('-' = stdout; the text report then goes to stderr).
    #[arg(help_heading = "Outputs", long, value_parser = given(output_target))]
    pub json: Option<Given<String>>,
    /// The gate: thresholds and the baseline.
    #[command(flatten, next_help_heading = "Gate")]
    pub gate: GateArgs,
    #[command(flatten, next_help_heading = "Live metrics")]
    pub metrics: MetricsArgs,
}

/// Live metrics (`run` and `serve`): an OpenMetrics endpoint and an OTLP/HTTP push.
#[derive(Debug, Default, Clone, Args)]
#[command(next_help_heading = "Live metrics")]
pub struct MetricsArgs {
    /// Serve live metrics as OpenMetrics/Prometheus text at http://ADDR/metrics (port 0 picks
    /// one; the address is logged).
    #[arg(long, value_name = "ADDR", value_parser = given(listen_addr))]
    pub metrics_listen: Option<Given<std::net::SocketAddr>>,
    /// Keep serving the final figures this long after the run (a scrape interval). Default 0s.
    #[arg(long, value_name = "DURATION", value_parser = given(units::parse_duration))]
    pub metrics_linger: Option<Given<Duration>>,
    /// Push live metrics over OTLP/HTTP (protobuf) to this collector, e.g.
    /// http://127.0.0.1:4318 (/v1/metrics is added to a bare address).
    #[arg(long, value_name = "URL", value_parser = given(otlp_endpoint))]
    pub otlp_endpoint: Option<Given<String>>,
    /// How often to push. Default 5s.
    #[arg(long, value_name = "DURATION", value_parser = given(positive_duration))]
    pub otlp_interval: Option<Given<Duration>>,
}

/// `wsbench capacity` flags: the search, plus every `run` flag for each step.
#[derive(Debug, Default, Args)]
pub struct CapacityArgs {
    /// What to search: rate (the highest request rate that holds, open loop) or conns (the
    /// most concurrent connections that hold: setup p99, setup errors and the request
    /// thresholds, closed loop at --inflight).
    #[arg(long, value_name = "rate|conns", default_value = "rate", value_parser = ["rate", "conns"])]
    pub find: String,
    /// --find conns: the fewest connections to try.
    #[arg(long, default_value = "8")]
    pub min_conns: String,
    /// --find conns: the most connections to try.
    #[arg(long, default_value = "1000")]
    pub max_conns: String,
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
    /// A threshold expression, repeatable: METRIC OP VALUE, OP one of < <= > >=. Metrics: rps,
    /// p50, p90, p99, p99.9, max, connect_p99, hello_p99, error_rate, unavailable, dropped,
    /// connection_errors; per tool: 'p99{tool=search}<20ms'. E.g. 'p99<5ms', 'rps>=50k',
    /// 'error_rate<0.1%', 'unavailable<=1s'. Replaces the default for its metric.
    #[arg(long, value_name = "EXPR")]
    pub threshold: Vec<String>,
    /// Minimum throughput, succeeded per second (e.g. 50000 or 50k). Default 50k.
    #[arg(long, value_parser = given(rate_floor))]
    pub min_rps: Option<Given<f64>>,
    /// Maximum request latency p50 (e.g. 2ms).
    #[arg(long, value_parser = given(duration_ms))]
    pub max_p50: Option<Given<f64>>,
    /// Maximum request latency p99. Default 5ms.
    #[arg(long, value_parser = given(duration_ms))]
    pub max_p99: Option<Given<f64>>,
    /// Maximum request latency p99.9.
    #[arg(long, value_parser = given(duration_ms))]
    pub max_p999: Option<Given<f64>>,
    /// Maximum connection setup (TCP + upgrade) p99. Default 10ms.
    #[arg(long, value_parser = given(duration_ms))]
    pub max_connect_p99: Option<Given<f64>>,
    /// Maximum error rate, (sent - succeeded) / sent: failed, timed out, lost and unfinished
    /// all count. As 0.001 or 0.1%. Default 0.
    #[arg(long, value_parser = given(units::parse_ratio))]
    pub max_error_rate: Option<Given<f64>>,
    /// Maximum time the target was unavailable (breaker open or no connection up), e.g. 1s.
    #[arg(long, value_parser = given(secs))]
    pub max_unavailable: Option<Given<f64>>,
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
    #[arg(long, value_name = "text|json|quiet", value_parser = given(stdout_mode))]
    pub output: Option<Given<StdoutMode>>,
    /// Write the merged JSON result ('-' = stdout).
    #[arg(long, value_name = "FILE", value_parser = given(output_target))]
    pub json: Option<Given<String>>,
    /// Write JUnit XML, one test case per threshold.
    #[arg(long, value_name = "FILE", value_parser = given(output_target))]
    pub junit: Option<Given<String>>,
    /// Write the HTML report.
    #[arg(long, value_name = "FILE", value_parser = given(output_target))]
    pub html: Option<Given<String>>,
    /// Write a Markdown summary, e.g. to $GITHUB_STEP_SUMMARY.
    #[arg(long, value_name = "FILE", value_parser = given(output_target))]
    pub markdown: Option<Given<String>>,
    /// Merge workers whose measured windows do not overlap (refused otherwise: their sum is
    /// not one load).
    #[arg(long)]
    pub allow_disjoint: bool,
    #[command(flatten)]
    pub gate: GateArgs,
}

/// `wsbench compare OLD NEW`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The earlier result (the baseline).
    #[arg(value_name = "OLD")]
    pub old: PathBuf,
    /// The result judged against it.
    #[arg(value_name = "NEW")]
    pub new: PathBuf,
    /// How much worse each metric may get, e.g. 'p99=+10%,rps=-5%'. Default: the baseline
    /// gate's (10 % on latency, 5 % on throughput).
    #[arg(long, value_name = "p99=+10%,rps=-5%,...")]
    pub max_regress: Option<String>,
    /// What stdout shows: text, json or quiet.
    #[arg(long, value_name = "text|json|quiet", value_parser = given(stdout_mode))]
    pub output: Option<Given<StdoutMode>>,
}

/// `wsbench config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective run configuration and where each value came from.
    Show(Box<RunArgs>),
}

/// Parses the process's arguments with `-h` short: each flag's first sentence and its default
/// (one line a flag where the terminal allows), `--help` the whole text.
pub fn parse() -> Result<Cli, clap::Error> {
    use clap::{CommandFactory as _, FromArgMatches as _};
    let mut matches = short_help(Cli::command()).try_get_matches()?;
    Cli::from_arg_matches_mut(&mut matches)
}

fn short_help(cmd: clap::Command) -> clap::Command {
    cmd.mut_args(|a| match a.get_help().map(|h| h.to_string()) {
        Some(full) if a.get_long_help().is_none() => {
            let short = brief(&full);
            a.long_help(full).help(short)
        }
        _ => a,
    })
    .mut_subcommands(short_help)
}

/// The first sentence of a help text, and its "Default …" sentence if it has one.
fn brief(help: &str) -> String {
    let mut sentences = Vec::new();
    let mut start = 0;
    let mut depth = 0i32;
    let bytes = help.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'(' => depth += 1,
            b')' => depth -= 1,
            b'.' if depth == 0 && bytes.get(i + 1) == Some(&b' ') => {
                let sentence = &help[start..=i];
                // "e.g." and "i.e." do not end a sentence.
                if !(sentence.ends_with("e.g.") || sentence.ends_with("i.e.")) {
                    sentences.push(sentence.trim());
                    start = i + 2;
                }
            }
            _ => {}
        }
    }
    sentences.push(help[start..].trim());
    let mut out = sentences[0].to_owned();
    if let Some(default) = sentences[1..].iter().find(|s| s.starts_with("Default")) {
        out.push(' ');
        out.push_str(default);
    }
    out
}
