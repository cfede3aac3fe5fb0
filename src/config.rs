//! The one place where raw flags (`cli.rs`), the `--config` TOML file and the environment
//! become validated, typed configs. Precedence: flag (or its environment variable) > config
//! file > built-in default. Every error names the flag or the file key at fault.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::{RunArgs, ServeArgs};
use crate::error::ConfigError;
use crate::gate::{Metric, Threshold};
use crate::protocol;
use crate::run::breaker::BreakerConfig;
use crate::run::connection::Backoff;
use crate::run::pacer::RateSchedule;
use crate::serve::faults::FaultConfig;
use crate::units;

/// A secret (auth token): never shown by `Debug` or `Display`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself; only the wire may see it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "\"<redacted>\""
        })
    }
}

/// Where `run` sends its load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A server at a ws:// URL.
    Url(WsUrl),
    /// The reference server, started in-process on an ephemeral loopback port.
    Embedded,
}

/// A validated ws:// URL, split for connecting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    pub url: String,
    pub host: String,
    pub port: u16,
}

impl WsUrl {
    /// Accepts `ws://host[:port][/path]`; any other scheme is a usage error.
    pub fn parse(url: &str) -> Result<WsUrl, String> {
        use tokio_tungstenite::tungstenite::http::Uri;
        let uri: Uri = url.parse().map_err(|e| format!("not a URL ({e})"))?;
        match uri.scheme_str() {
            Some("ws") => {}
            Some("wss") => return Err("wss:// is not supported yet; use ws://".into()),
            Some(other) => return Err(format!("scheme '{other}' is not ws://")),
            None => return Err("missing scheme; write ws://host:port".into()),
        }
        let host = uri.host().filter(|h| !h.is_empty()).ok_or("missing host")?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        Ok(WsUrl {
            url: url.to_owned(),
            host,
            port: uri.port_u16().unwrap_or(80),
        })
    }
}

/// Everything `run` needs, validated.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub target: Target,
    pub conns: u32,
    /// Sending stops after this long (the count, if any, may stop it sooner).
    pub duration: Duration,
    /// Stop after this many requests have been sent and answered.
    pub requests: Option<u64>,
    pub inflight: u32,
    pub tool: String,
    /// Arguments JSON text with `{{seq}}` placeholders; `None` = vary by sequence number.
    pub args: Option<String>,
    pub token: Secret,
    pub session_prefix: String,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub drain: Duration,
    /// Open loop: the measured window's rate schedule. `None` = closed loop.
    pub schedule: Option<RateSchedule>,
    /// Traffic before the measured window, excluded from everything but its own counts.
    pub warmup: Duration,
    /// Delay between starting one connection's setup and the next.
    pub connect_spacing: Duration,
    /// `--hdr-log` target.
    pub hdr_log: Option<String>,
    pub progress: ProgressMode,
    pub breaker: BreakerConfig,
    /// Reconnect after drops, with this backoff; `None` = a dropped connection stays down.
    pub reconnect: Option<Backoff>,
    /// Client keepalive: (ping interval, pong timeout).
    pub ping: Option<(Duration, Duration)>,
    pub honor_retry_after: bool,
    /// The embedded server's settings (the profile's `[serve]` table; the run's token).
    pub embedded_server: ServeConfig,
    /// Empty when the gate is off.
    pub thresholds: Vec<Threshold>,
    pub gate: bool,
    /// `--json` target: a path, or `-` for stdout.
    pub json: Option<String>,
}

/// How live progress is shown on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, plain lines otherwise.
    Auto,
    Bar,
    Lines,
    Off,
}

fn progress_mode(s: &str) -> Result<ProgressMode, String> {
    match s {
        "auto" => Ok(ProgressMode::Auto),
        "bar" => Ok(ProgressMode::Bar),
        "lines" => Ok(ProgressMode::Lines),
        "off" => Ok(ProgressMode::Off),
        _ => Err("expected auto, bar, lines or off".into()),
    }
}

/// Everything `serve` needs, validated.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub host: String,
    pub port: u16,
    pub token: Secret,
    pub hello_timeout: Duration,
    pub max_conns: Option<u64>,
    pub stats_file: Option<PathBuf>,
    /// Largest frame or message accepted, in bytes.
    pub max_message_size: usize,
    /// Request ids remembered for replay.
    pub cache_size: usize,
    /// Injected delays, stalls and faults.
    pub faults: crate::serve::faults::FaultConfig,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            host: "127.0.0.1".into(),
            port: 8079,
            token: Secret::default(),
            hello_timeout: Duration::from_secs(10),
            max_conns: None,
            stats_file: None,
            max_message_size: 16 << 20,
            cache_size: 200_000,
            faults: Default::default(),
        }
    }
}

/// Keys a config file may hold, by section. Anything else is an error, never ignored.
const RUN_KEYS: &[&str] = &[
    "url",
    "embedded",
    "conns",
    "duration",
    "requests",
    "inflight",
    "tool",
    "args",
    "session_prefix",
    "connect_timeout",
    "timeout",
    "drain",
    "json",
    "rate",
    "stages",
    "warmup",
    "ramp_up",
    "connect_rate",
    "hdr_log",
    "progress",
];
const THRESHOLD_KEYS: &[&str] = &[
    "gate",
    "min_rps",
    "max_p50",
    "max_p99",
    "max_p999",
    "max_connect_p99",
    "max_error_rate",
    "max_unavailable",
];
const RESILIENCE_KEYS: &[&str] = &[
    "reconnect",
    "backoff_base",
    "backoff_max",
    "breaker",
    "breaker_failures",
    "breaker_successes",
    "breaker_open_timeout",
    "breaker_half_open_calls",
    "breaker_count",
    "ping_interval",
    "pong_timeout",
    "retry_after",
];
/// The `[serve]` table: the reference server's flags, as keys. In a `run` profile it
/// configures the embedded server.
const SERVE_KEYS: &[&str] = &[
    "host",
    "port",
    "hello_timeout",
    "max_conns",
    "stats_file",
    "delay",
    "jitter",
    "pause_every",
    "pause_for",
    "seed",
    "error_rate",
    "retry_after",
    "drop_rate",
    "malformed_rate",
    "duplicate_rate",
    "disconnect_after",
    "freeze_after",
    "down_after",
    "down_for",
    "ack",
    "progress",
    "stream",
    "ping_interval",
];
const SECTIONS: &[(&str, &[&str])] = &[
    ("run", RUN_KEYS),
    ("resilience", RESILIENCE_KEYS),
    ("serve", SERVE_KEYS),
    ("thresholds", THRESHOLD_KEYS),
];

/// A loaded config file: its path (for messages) and its checked table.
struct ConfigFile {
    path: PathBuf,
    table: toml::Table,
}

impl ConfigFile {
    fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
        let file_err = |reason: String| ConfigError::File {
            path: path.to_owned(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?;
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e.span().map(|s| text[..s.start].lines().count().max(1));
            let reason = e.message().trim().to_owned();
            file_err(match line {
                Some(l) => format!("line {l}: {reason}"),
                None => reason,
            })
        })?;
        for (section, value) in &table {
            let Some((_, keys)) = SECTIONS.iter().find(|(s, _)| s == section) else {
                return Err(ConfigError::UnknownKey {
                    key: section.clone(),
                    path: path.to_owned(),
                });
            };
            let Some(inner) = value.as_table() else {
                return Err(file_err(format!(
                    "'{section}' must be a table ([{section}])"
                )));
            };
            if let Some(key) = inner.keys().find(|k| !keys.contains(&k.as_str())) {
                return Err(ConfigError::UnknownKey {
                    key: format!("{section}.{key}"),
                    path: path.to_owned(),
                });
            }
        }
        Ok(ConfigFile {
            path: path.to_owned(),
            table,
        })
    }
}

/// Picks each setting from flag, then file, and parses it with the same parser either way.
struct Resolver {
    file: Option<ConfigFile>,
}

impl Resolver {
    /// The raw text of `section.key` in the file, if set. Numbers and booleans are accepted
    /// as such and turned into the text a flag would carry.
    fn file_value(
        &self,
        section: &str,
        key: &str,
    ) -> Result<Option<(String, String)>, ConfigError> {
        let Some(file) = &self.file else {
            return Ok(None);
        };
        let Some(v) = file.table.get(section).and_then(|s| s.get(key)) else {
            return Ok(None);
        };
        let name = format!("{section}.{key} in {}", file.path.display());
        let text = match v {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(ConfigError::Rejected {
                    name,
                    reason: format!("expected a string or number, found {}", other.type_str()),
                });
            }
        };
        Ok(Some((text, name)))
    }

    fn get<T>(
        &self,
        flag: Option<&str>,
        flag_name: &str,
        key: (&str, &str),
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        let (text, name) = match flag {
            Some(f) => (f.to_owned(), flag_name.to_owned()),
            None => match self.file_value(key.0, key.1)? {
                Some(found) => found,
                None => return Ok(None),
            },
        };
        parse(&text)
            .map(Some)
            .map_err(|reason| ConfigError::Invalid {
                name,
                value: text,
                reason,
            })
    }

    fn flag_or_file_bool(&self, flag: bool, key: (&str, &str)) -> Result<bool, ConfigError> {
        if flag {
            return Ok(true);
        }
        Ok(self.get(None, "", key, parse_bool)?.unwrap_or(false))
    }
}

fn on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" | "true" => Ok(true),
        "off" | "false" => Ok(false),
        _ => Err("expected on or off".into()),
    }
}

/// `connect[,timeout][,error]` -> (count timeouts, count errors).
fn breaker_count(s: &str) -> Result<(bool, bool), String> {
    let (mut timeouts, mut errors) = (false, false);
    for part in s.split(',').map(str::trim) {
        match part {
            "connect" => {}
            "timeout" => timeouts = true,
            "error" => errors = true,
            other => return Err(format!("'{other}' is not connect, timeout or error")),
        }
    }
    Ok((timeouts, errors))
}

fn parse_bool(s: &str) -> Result<bool, String> {
    s.parse().map_err(|_| "expected true or false".into())
}

fn positive_u32(s: &str) -> Result<u32, String> {
    match units::parse_whole(s)? {
        0 => Err("must be at least 1".into()),
        n => u32::try_from(n).map_err(|_| "too large".into()),
    }
}

fn positive_duration(s: &str) -> Result<Duration, String> {
    match units::parse_duration(s)? {
        d if d.is_zero() => Err("must be longer than 0".into()),
        d => Ok(d),
    }
}

fn duration_ms(s: &str) -> Result<f64, String> {
    positive_duration(s).map(|d| d.as_secs_f64() * 1e3)
}

fn tool_name(s: &str) -> Result<String, String> {
    if s.is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(s.to_owned())
    }
}

/// `--args`: inline JSON, or `@file`; checked to be a JSON object (after `{{seq}}`).
fn load_args(s: &str) -> Result<String, String> {
    let text = match s.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| format!("cannot read '{path}': {e}"))?
        }
        None => s.to_owned(),
    };
    protocol::validate_args(&text)?;
    Ok(text.trim().to_owned())
}

fn session_prefix(s: &str) -> Result<String, String> {
    // The session id is `<prefix>-<run>-<conn>`; keep it within the protocol's 64 characters.
    if !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Ok(s.to_owned())
    } else {
        Err("1-32 characters of [A-Za-z0-9_-]".into())
    }
}

fn output_target(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("must be a file path or '-'".into());
    }
    if s != "-" {
        let p = Path::new(s);
        if p.is_dir() {
            return Err("is a directory".into());
        }
    }
    Ok(s.to_owned())
}

impl RunConfig {
    /// Validates `run` flags, reading `--config` if given. Reads files but writes nothing.
    pub fn from_args(args: &RunArgs) -> Result<RunConfig, ConfigError> {
        let file = args.config.as_deref().map(ConfigFile::load).transpose()?;
        let r = Resolver { file };
        let run = |k| ("run", k);
        let th = |k| ("thresholds", k);

        let embedded = r.flag_or_file_bool(args.embedded, run("embedded"))?;
        let url = r.get(args.url.as_deref(), "--url", run("url"), WsUrl::parse)?;
        // A --url flag beats `embedded = true` in a file; the --embedded flag beats a file url.
        let target = match url {
            Some(u) if args.url.is_some() || !embedded => Target::Url(u),
            _ if embedded => Target::Embedded,
            _ => Target::Url(WsUrl::parse("ws://127.0.0.1:8079").expect("valid default")),
        };
        let requests = r.get(
            args.requests.as_deref(),
            "--requests",
            run("requests"),
            |s| match units::parse_whole(s)? {
                0 => Err("must be at least 1".into()),
                n => Ok(n),
            },
        )?;
        let stages = r.get(args.stages.as_deref(), "--stages", run("stages"), |s| {
            RateSchedule::parse_stages(s)
        })?;
        let rate = r.get(
            args.rate.as_deref(),
            "--rate",
            run("rate"),
            |s| match units::parse_count(s)? {
                r if r > 0.0 => Ok(r),
                _ => Err("must be above 0".into()),
            },
        )?;
        let default_duration = if requests.is_some() { 600 } else { 30 };
        let duration = match &stages {
            Some(s) => s.duration(),
            None => r
                .get(
                    args.duration.as_deref(),
                    "--duration",
                    run("duration"),
                    positive_duration,
                )?
                .unwrap_or(Duration::from_secs(default_duration)),
        };
        let schedule = match (stages, rate) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Rejected {
                    name: "--rate".into(),
                    reason: "cannot be combined with --stages".into(),
                });
            }
            (Some(s), None) => Some(s),
            (None, Some(rate)) => Some(RateSchedule::constant(rate, duration)),
            (None, None) => None,
        };
        let ramp_up = r.get(
            args.ramp_up.as_deref(),
            "--ramp-up",
            run("ramp_up"),
            units::parse_duration,
        )?;
        let connect_rate = r.get(
            args.connect_rate.as_deref(),
            "--connect-rate",
            run("connect_rate"),
            |s| match units::parse_count(s.trim_end_matches("/s"))? {
                r if r > 0.0 => Ok(r),
                _ => Err("must be above 0".into()),
            },
        )?;

        let gate = !args.no_gate && r.get(None, "", th("gate"), parse_bool)?.unwrap_or(true);
        let mut thresholds = Vec::new();
        let mut add = |metric, value: Option<f64>, default: Option<f64>| {
            if let Some(limit) = value.or(default) {
                thresholds.push(Threshold { metric, limit });
            }
        };
        add(
            Metric::Rps,
            r.get(
                args.min_rps.as_deref(),
                "--min-rps",
                th("min_rps"),
                units::parse_count,
            )?,
            Some(50_000.0),
        );
        add(
            Metric::P50,
            r.get(
                args.max_p50.as_deref(),
                "--max-p50",
                th("max_p50"),
                duration_ms,
            )?,
            None,
        );
        add(
            Metric::P99,
            r.get(
                args.max_p99.as_deref(),
                "--max-p99",
                th("max_p99"),
                duration_ms,
            )?,
            Some(5.0),
        );
        add(
            Metric::P999,
            r.get(
                args.max_p999.as_deref(),
                "--max-p999",
                th("max_p999"),
                duration_ms,
            )?,
            None,
        );
        add(
            Metric::ConnectP99,
            r.get(
                args.max_connect_p99.as_deref(),
                "--max-connect-p99",
                th("max_connect_p99"),
                duration_ms,
            )?,
            Some(10.0),
        );
        add(
            Metric::Unavailable,
            r.get(
                args.max_unavailable.as_deref(),
                "--max-unavailable",
                th("max_unavailable"),
                |s| units::parse_duration(s).map(|d| d.as_secs_f64()),
            )?,
            None,
        );
        add(
            Metric::ErrorRate,
            r.get(
                args.max_error_rate.as_deref(),
                "--max-error-rate",
                th("max_error_rate"),
                units::parse_ratio,
            )?,
            Some(0.0),
        );
        if !gate {
            thresholds.clear();
        }

        let res = |k| ("resilience", k);
        let d = BreakerConfig::default();
        let (count_timeouts, count_errors) = r
            .get(
                args.breaker_count.as_deref(),
                "--breaker-count",
                res("breaker_count"),
                breaker_count,
            )?
            .unwrap_or((false, false));
        let breaker = BreakerConfig {
            enabled: r
                .get(args.breaker.as_deref(), "--breaker", res("breaker"), on_off)?
                .unwrap_or(true),
            failure_threshold: r
                .get(
                    args.breaker_failures.as_deref(),
                    "--breaker-failures",
                    res("breaker_failures"),
                    positive_u32,
                )?
                .unwrap_or(d.failure_threshold),
            success_threshold: r
                .get(
                    args.breaker_successes.as_deref(),
                    "--breaker-successes",
                    res("breaker_successes"),
                    positive_u32,
                )?
                .unwrap_or(d.success_threshold),
            open_timeout: r
                .get(
                    args.breaker_open_timeout.as_deref(),
                    "--breaker-open-timeout",
                    res("breaker_open_timeout"),
                    positive_duration,
                )?
                .unwrap_or(d.open_timeout),
            half_open_max_calls: r
                .get(
                    args.breaker_half_open_calls.as_deref(),
                    "--breaker-half-open-calls",
                    res("breaker_half_open_calls"),
                    positive_u32,
                )?
                .unwrap_or(d.half_open_max_calls),
            count_timeouts,
            count_errors,
        };
        let reconnect = r
            .get(
                args.reconnect.as_deref(),
                "--reconnect",
                res("reconnect"),
                on_off,
            )?
            .unwrap_or(true);
        let backoff = Backoff {
            base: r
                .get(
                    args.backoff_base.as_deref(),
                    "--backoff-base",
                    res("backoff_base"),
                    positive_duration,
                )?
                .unwrap_or(Duration::from_millis(100)),
            max: r
                .get(
                    args.backoff_max.as_deref(),
                    "--backoff-max",
                    res("backoff_max"),
                    positive_duration,
                )?
                .unwrap_or(Duration::from_secs(5)),
        };
        let ping_interval = r.get(
            args.ping_interval.as_deref(),
            "--ping-interval",
            res("ping_interval"),
            positive_duration,
        )?;
        let pong_timeout = r
            .get(
                args.pong_timeout.as_deref(),
                "--pong-timeout",
                res("pong_timeout"),
                positive_duration,
            )?
            .unwrap_or(Duration::from_secs(5));
        let honor_retry_after = r
            .get(
                args.retry_after.as_deref(),
                "--retry-after",
                res("retry_after"),
                |s| match s {
                    "honor" | "honour" => Ok(true),
                    "ignore" => Ok(false),
                    _ => Err("expected honor or ignore".into()),
                },
            )?
            .unwrap_or(false);
        let conns = r
            .get(args.conns.as_deref(), "--conns", run("conns"), positive_u32)?
            .unwrap_or(64);
        let connect_spacing = match (ramp_up, connect_rate) {
            (Some(d), _) => d / conns,
            (None, Some(rate)) => Duration::from_secs_f64(1.0 / rate),
            (None, None) => Duration::ZERO,
        };
        // Open loop keeps a deep window so a slow reply never stops the schedule.
        let default_inflight = if schedule.is_some() { 1024 } else { 1 };
        let token = Secret::new(args.token.clone().unwrap_or_default());
        let embedded_server = ServeConfig {
            token: token.clone(),
            ..ServeConfig::resolve(&ServeArgs::default(), &r)?
        };
        Ok(RunConfig {
            target,
            conns,
            embedded_server,
            breaker,
            reconnect: reconnect.then_some(backoff),
            ping: ping_interval.map(|i| (i, pong_timeout)),
            honor_retry_after,
            warmup: r
                .get(
                    args.warmup.as_deref(),
                    "--warmup",
                    run("warmup"),
                    units::parse_duration,
                )?
                .unwrap_or_default(),
            connect_spacing,
            hdr_log: r.get(
                args.hdr_log.as_deref(),
                "--hdr-log",
                run("hdr_log"),
                output_target,
            )?,
            progress: r
                .get(
                    args.progress.as_deref(),
                    "--progress",
                    run("progress"),
                    progress_mode,
                )?
                .unwrap_or(ProgressMode::Auto),
            schedule,
            duration,
            requests,
            inflight: r
                .get(
                    args.inflight.as_deref(),
                    "--inflight",
                    run("inflight"),
                    positive_u32,
                )?
                .unwrap_or(default_inflight),
            tool: r
                .get(args.tool.as_deref(), "--tool", run("tool"), tool_name)?
                .unwrap_or_else(|| "echo".into()),
            args: r.get(args.args.as_deref(), "--args", run("args"), load_args)?,
            token: Secret::new(args.token.clone().unwrap_or_default()),
            session_prefix: r
                .get(
                    args.session_prefix.as_deref(),
                    "--session-prefix",
                    run("session_prefix"),
                    session_prefix,
                )?
                .unwrap_or_else(|| "bench".into()),
            connect_timeout: r
                .get(
                    args.connect_timeout.as_deref(),
                    "--connect-timeout",
                    run("connect_timeout"),
                    positive_duration,
                )?
                .unwrap_or(Duration::from_secs(5)),
            timeout: r
                .get(
                    args.timeout.as_deref(),
                    "--timeout",
                    run("timeout"),
                    positive_duration,
                )?
                .unwrap_or(Duration::from_secs(10)),
            drain: r
                .get(
                    args.drain.as_deref(),
                    "--drain",
                    run("drain"),
                    units::parse_duration,
                )?
                .unwrap_or(Duration::from_secs(2)),
            thresholds,
            gate,
            json: r.get(args.json.as_deref(), "--json", run("json"), output_target)?,
        })
    }
}

/// `--session-delay SUFFIX=DURATION`: extra reply delay for sessions ending in SUFFIX.
fn session_delay(s: &str) -> Result<(String, Duration), ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        name: "--session-delay".into(),
        value: s.to_owned(),
        reason,
    };
    let (suffix, d) = s
        .split_once('=')
        .ok_or_else(|| invalid("expected SUFFIX=DURATION, e.g. -3=20ms".into()))?;
    if suffix.is_empty() {
        return Err(invalid("empty session suffix".into()));
    }
    Ok((
        suffix.to_owned(),
        units::parse_duration(d).map_err(invalid)?,
    ))
}

impl ServeConfig {
    /// Validates `serve` flags, reading `--config` (its `[serve]` table) if given.
    pub fn from_args(args: &ServeArgs) -> Result<ServeConfig, ConfigError> {
        let file = args.config.as_deref().map(ConfigFile::load).transpose()?;
        ServeConfig::resolve(args, &Resolver { file })
    }

    /// Flags first, then the `[serve]` table of the resolver's file, then defaults. `run
    /// --embedded` uses this with no flags, so a profile can configure its embedded server.
    fn resolve(args: &ServeArgs, r: &Resolver) -> Result<ServeConfig, ConfigError> {
        let d = ServeConfig::default();
        // Every serve flag `--some-flag` is key `some_flag` of the `[serve]` table.
        let get = |v: &Option<String>, flag: &str, parse: &dyn Fn(&str) -> Result<_, String>| {
            let key = flag.trim_start_matches("--").replace('-', "_");
            r.get(v.as_deref(), flag, ("serve", &key), parse)
        };
        let dur = |v: &Option<String>, flag: &str| get(v, flag, &|s| units::parse_duration(s));
        let whole = |v: &Option<String>, flag: &str| {
            let key = flag.trim_start_matches("--").replace('-', "_");
            r.get(v.as_deref(), flag, ("serve", &key), units::parse_whole)
        };
        let ratio = |v: &Option<String>, flag: &str| {
            let key = flag.trim_start_matches("--").replace('-', "_");
            r.get(v.as_deref(), flag, ("serve", &key), units::parse_ratio)
                .map(Option::unwrap_or_default)
        };
        let positive = |v: &Option<String>, flag: &str| {
            let key = flag.trim_start_matches("--").replace('-', "_");
            r.get(v.as_deref(), flag, ("serve", &key), |s| {
                positive_u32(s).map(u64::from)
            })
        };
        let positive_dur = |v: &Option<String>, flag: &str| {
            let key = flag.trim_start_matches("--").replace('-', "_");
            r.get(v.as_deref(), flag, ("serve", &key), positive_duration)
        };
        let flag = |set: bool, key: &str| r.flag_or_file_bool(set, ("serve", key));
        let port = {
            let parse = |s: &str| {
                s.parse::<u16>()
                    .map_err(|_| "not a port (0-65535)".to_owned())
            };
            r.get(args.port.as_deref(), "--port", ("serve", "port"), parse)?
        };
        Ok(ServeConfig {
            host: r
                .get(args.host.as_deref(), "--host", ("serve", "host"), |s| {
                    Ok(s.to_owned())
                })?
                .unwrap_or(d.host),
            port: port.unwrap_or(d.port),
            token: Secret::new(args.token.clone().unwrap_or_default()),
            hello_timeout: positive_dur(&args.hello_timeout, "--hello-timeout")?
                .unwrap_or(d.hello_timeout),
            max_conns: positive(&args.max_conns, "--max-conns")?,
            stats_file: match &args.stats_file {
                Some(p) => Some(p.clone()),
                None => r.get(None, "", ("serve", "stats_file"), |s| Ok(PathBuf::from(s)))?,
            },
            faults: FaultConfig {
                delay: dur(&args.delay, "--delay")?.unwrap_or_default(),
                jitter: dur(&args.jitter, "--jitter")?.unwrap_or_default(),
                pause_every: positive_dur(&args.pause_every, "--pause-every")?,
                pause_for: dur(&args.pause_for, "--pause-for")?.unwrap_or_default(),
                session_delays: args
                    .session_delay
                    .iter()
                    .map(|s| session_delay(s))
                    .collect::<Result<_, _>>()?,
                seed: whole(&args.seed, "--seed")?.unwrap_or(0),
                error_rate: ratio(&args.error_rate, "--error-rate")?,
                retry_after_s: whole(&args.retry_after, "--retry-after")?.unwrap_or(1),
                drop_rate: ratio(&args.drop_rate, "--drop-rate")?,
                malformed_rate: ratio(&args.malformed_rate, "--malformed-rate")?,
                duplicate_rate: ratio(&args.duplicate_rate, "--duplicate-rate")?,
                disconnect_after: positive(&args.disconnect_after, "--disconnect-after")?,
                freeze_after: positive(&args.freeze_after, "--freeze-after")?,
                down_after: dur(&args.down_after, "--down-after")?,
                down_for: dur(&args.down_for, "--down-for")?.unwrap_or_default(),
                ack: flag(args.ack, "ack")?,
                progress: flag(args.progress, "progress")?,
                stream: positive(&args.stream, "--stream")?.map_or(0, |n| n.min(10_000) as u32),
                ping_interval: positive_dur(&args.ping_interval, "--ping-interval")?,
            },
            ..d
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(f: impl FnOnce(&mut RunArgs)) -> RunArgs {
        let mut a = RunArgs::default();
        f(&mut a);
        a
    }

    #[test]
    fn defaults_are_the_documented_targets() {
        let c = RunConfig::from_args(&RunArgs::default()).unwrap();
        assert_eq!(c.conns, 64);
        assert_eq!(c.duration, Duration::from_secs(30));
        assert_eq!(c.inflight, 1);
        let names: Vec<_> = c
            .thresholds
            .iter()
            .map(|t| (t.metric.name(), t.limit))
            .collect();
        assert_eq!(
            names,
            [
                ("rps", 50_000.0),
                ("p99", 5.0),
                ("connect_p99", 10.0),
                ("error_rate", 0.0)
            ]
        );
    }

    #[test]
    fn bad_values_name_their_flag() {
        for (a, flag) in [
            (args(|a| a.conns = Some("0".into())), "--conns"),
            (args(|a| a.duration = Some("0s".into())), "--duration"),
            (args(|a| a.url = Some("http://x".into())), "--url"),
            (args(|a| a.args = Some("{bad".into())), "--args"),
            (args(|a| a.max_p99 = Some("soon".into())), "--max-p99"),
            (
                args(|a| a.max_error_rate = Some("2".into())),
                "--max-error-rate",
            ),
        ] {
            let err = RunConfig::from_args(&a).unwrap_err().to_string();
            assert!(err.contains(flag), "{err}");
        }
    }

    #[test]
    fn file_values_apply_below_flags_and_unknown_keys_fail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(
            &path,
            "[run]\nconns = 8\ninflight = \"4\"\n[thresholds]\nmax_p99 = \"7ms\"\n",
        )
        .unwrap();
        let c = RunConfig::from_args(&args(|a| {
            a.config = Some(path.clone());
            a.inflight = Some("2".into());
        }))
        .unwrap();
        assert_eq!((c.conns, c.inflight), (8, 2));
        assert!(
            c.thresholds
                .iter()
                .any(|t| t.metric == Metric::P99 && t.limit == 7.0)
        );

        std::fs::write(&path, "[run]\nconnz = 8\n").unwrap();
        let err = RunConfig::from_args(&args(|a| a.config = Some(path.clone()))).unwrap_err();
        assert!(err.to_string().contains("run.connz"), "{err}");
    }

    #[test]
    fn secrets_do_not_debug_print() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "\"<redacted>\"");
    }
}
