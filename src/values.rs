//! The text forms of settings: one parser per kind of value, each taking the text a user typed
//! and saying in a few words what is wrong with it. clap runs them on flags as it parses
//! (`given`), and config on environment variables and profile keys, so a value means the same
//! wherever it is written.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::progress::ProgressMode;
use crate::protocol;
use crate::report::StdoutMode;
use crate::units;

/// A flag's value as clap parsed it: typed at parse time, with the text typed kept for
/// `config show`.
#[derive(Debug, Clone, PartialEq)]
pub struct Given<T> {
    pub text: String,
    pub value: T,
}

impl<T> Given<T> {
    /// A value as if the user had typed `text` (for flags a command sets itself).
    pub fn typed(text: &str, parse: fn(&str) -> Result<T, String>) -> Result<Given<T>, String> {
        parse(text).map(|value| Given {
            text: text.to_owned(),
            value,
        })
    }
}

/// The clap value parser for a flag read by `parse`.
pub fn given<T: Clone + Send + Sync + 'static>(
    parse: fn(&str) -> Result<T, String>,
) -> impl Fn(&str) -> Result<Given<T>, String> + Clone + Send + Sync + 'static {
    move |text| Given::typed(text, parse)
}

/// A flag as config reads it: text it still has to parse (flags nobody typed at parse time),
/// or a value clap already parsed.
pub trait Flag<T> {
    fn text(&self) -> &str;
    fn value(&self, parse: impl Fn(&str) -> Result<T, String>) -> Result<T, String>;
}

impl<T> Flag<T> for str {
    fn text(&self) -> &str {
        self
    }
    fn value(&self, parse: impl Fn(&str) -> Result<T, String>) -> Result<T, String> {
        parse(self)
    }
}

impl<T: Clone> Flag<T> for Given<T> {
    fn text(&self) -> &str {
        &self.text
    }
    fn value(&self, _: impl Fn(&str) -> Result<T, String>) -> Result<T, String> {
        Ok(self.value.clone())
    }
}

pub fn on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" | "true" => Ok(true),
        "off" | "false" => Ok(false),
        _ => Err("expected on or off".into()),
    }
}

/// `connect[,timeout][,error]` -> (count timeouts, count errors).
pub fn breaker_count(s: &str) -> Result<(bool, bool), String> {
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

pub fn parse_bool(s: &str) -> Result<bool, String> {
    s.parse().map_err(|_| "expected true or false".into())
}

pub fn positive_u32(s: &str) -> Result<u32, String> {
    match units::parse_whole(s)? {
        0 => Err("must be at least 1".into()),
        n => u32::try_from(n).map_err(|_| "too large".into()),
    }
}

/// The longest duration a setting takes: a month. Anything longer is a typo (`30000s` for
/// `30s`), not a soak, and would overflow nothing but the user's patience.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);
/// The highest rate one process can be asked for; far above what it can send.
pub const MAX_RATE: f64 = 10e6;

pub fn positive_duration(s: &str) -> Result<Duration, String> {
    match units::parse_duration(s)? {
        d if d.is_zero() => Err("must be longer than 0".into()),
        d if d > MAX_DURATION => Err("must be at most 30 days".into()),
        d => Ok(d),
    }
}

pub fn duration_ms(s: &str) -> Result<f64, String> {
    positive_duration(s).map(|d| d.as_secs_f64() * 1e3)
}

/// Seconds, from a duration (`--max-unavailable 1s`).
pub fn secs(s: &str) -> Result<f64, String> {
    units::parse_duration(s).map(|d| d.as_secs_f64())
}

/// A throughput floor: a count per second, `/s` optional (`--min-rps 50k`).
pub fn rate_floor(s: &str) -> Result<f64, String> {
    units::parse_count(s.trim_end_matches("/s"))
}

/// `single` or `oldest`: whose failure an error frame without a request id is.
pub fn uncorrelated(s: &str) -> Result<crate::protocol::Uncorrelated, String> {
    crate::protocol::Uncorrelated::parse(s)
}

/// `honor` (or `honour`) or `ignore`: whether an error's `retry_after` pauses sending.
pub fn honor_ignore(s: &str) -> Result<bool, String> {
    match s {
        "honor" | "honour" => Ok(true),
        "ignore" => Ok(false),
        _ => Err("expected honor or ignore".into()),
    }
}

/// A share above 0 (`--validate-sample 0.01` or `1%`).
pub fn positive_ratio(s: &str) -> Result<f64, String> {
    match units::parse_ratio(s)? {
        v if v > 0.0 => Ok(v),
        _ => Err("must be above 0".into()),
    }
}

pub fn tool_name(s: &str) -> Result<String, String> {
    if s.is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(s.to_owned())
    }
}

/// `--args`: inline JSON, or `@file`; checked to be a JSON object (after `{{seq}}`).
pub fn load_args(s: &str) -> Result<String, String> {
    let text = match s.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| format!("cannot read '{path}': {e}"))?
        }
        None => s.to_owned(),
    };
    protocol::validate_args(&text)?;
    Ok(text.trim().to_owned())
}

pub fn session_prefix(s: &str) -> Result<String, String> {
    // The session id is `<prefix>-<worker>-<conn>`; keep it within the protocol's 64 characters.
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

pub fn output_target(s: &str) -> Result<String, String> {
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

pub fn progress_mode(s: &str) -> Result<ProgressMode, String> {
    match s {
        "auto" => Ok(ProgressMode::Auto),
        "bar" => Ok(ProgressMode::Bar),
        "lines" => Ok(ProgressMode::Lines),
        "off" => Ok(ProgressMode::Off),
        _ => Err("expected auto, bar, lines or off".into()),
    }
}

pub fn stdout_mode(s: &str) -> Result<StdoutMode, String> {
    match s {
        "text" => Ok(StdoutMode::Text),
        "json" => Ok(StdoutMode::Json),
        "quiet" => Ok(StdoutMode::Quiet),
        _ => Err("expected text, json or quiet".into()),
    }
}

/// A positive rate, optionally with `/s` and k/M suffixes.
pub fn positive_rate(s: &str) -> Result<f64, String> {
    match units::parse_count(s.trim_end_matches("/s"))? {
        r if r > MAX_RATE => Err("must be at most 10M/s".into()),
        r if r > 0.0 => Ok(r),
        _ => Err("must be above 0".into()),
    }
}

pub fn positive_whole(s: &str) -> Result<u64, String> {
    match units::parse_whole(s)? {
        0 => Err("must be at least 1".into()),
        n => Ok(n),
    }
}

/// A file that must exist (read later, e.g. a CA bundle or a key).
pub fn existing_file(s: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(s);
    if p.is_file() {
        Ok(p)
    } else {
        Err("no such file".into())
    }
}

/// `Name: value` headers, comma-separated when they come joined from an array or repeated flag
/// (a header value containing a comma must then be given alone).
pub fn headers(s: &str) -> Result<Vec<(String, String)>, String> {
    s.split(',')
        .filter(|h| !h.trim().is_empty())
        .map(|h| {
            let (name, value) = h
                .split_once(':')
                .ok_or_else(|| format!("'{h}' is not 'Name: value'"))?;
            use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
            let (name, value) = (name.trim(), value.trim());
            HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("'{name}' is not a header name"))?;
            HeaderValue::from_str(value)
                .map_err(|_| format!("the value of '{name}' is not a valid header value"))?;
            Ok((name.to_owned(), value.to_owned()))
        })
        .collect()
}

/// `--session-delay SUFFIX=DURATION`: extra reply delay for sessions ending in SUFFIX.
pub fn session_delay(s: &str) -> Result<(String, Duration), String> {
    let (suffix, d) = s
        .split_once('=')
        .ok_or("expected SUFFIX=DURATION, e.g. -3=20ms")?;
    if suffix.is_empty() {
        return Err("empty session suffix".into());
    }
    Ok((suffix.to_owned(), units::parse_duration(d)?))
}

/// `--tool-delay search=5ms,fetch=20ms`: extra tools (echo-like, each with its own reply
/// delay), or an extra delay for a built-in one.
pub fn tool_delays(s: &str) -> Result<Vec<(String, Duration)>, String> {
    s.split(',')
        .map(|part| {
            let (tool, d) = part
                .trim()
                .split_once('=')
                .ok_or_else(|| format!("'{part}' is not TOOL=DURATION (search=5ms)"))?;
            if tool.trim().is_empty() {
                return Err(format!("'{part}' names no tool"));
            }
            Ok((tool.trim().to_owned(), units::parse_duration(d.trim())?))
        })
        .collect()
}

/// `--check`: the correctness probes asked for, a comma-separated list.
pub fn check_probe(s: &str) -> Result<Vec<String>, String> {
    s.split(',')
        .map(str::trim)
        .map(|p| match p {
            "isolation" | "first-call" | "consistent" => Ok(p.to_owned()),
            _ => Err(format!(
                "'{p}': expected isolation, consistent or first-call"
            )),
        })
        .collect()
}

/// A JSON pointer: empty, or `/` then its tokens.
pub fn json_pointer(s: &str) -> Result<String, String> {
    if s.is_empty() || s.starts_with('/') {
        Ok(s.to_owned())
    } else {
        Err("a JSON pointer starts with / (e.g. /id)".into())
    }
}

/// A frame/message size cap: at least 1 KiB (smaller would refuse hello itself).
pub fn frame_size(s: &str) -> Result<usize, String> {
    match units::parse_size(s)? {
        n if n < 1024 => Err("must be at least 1KiB".into()),
        n => usize::try_from(n).map_err(|_| "too large".into()),
    }
}

/// A host to bind: an IP address or a DNS name.
pub fn host(s: &str) -> Result<String, String> {
    let ok = s.parse::<std::net::IpAddr>().is_ok()
        || (!s.is_empty()
            && s.len() <= 253
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'));
    if ok {
        Ok(s.to_owned())
    } else {
        Err("not an IP address or host name".into())
    }
}

/// An address to serve on: IP:PORT, or localhost:PORT.
pub fn listen_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    let s = s.trim();
    let loopback = s
        .strip_prefix("localhost:")
        .map(|port| format!("127.0.0.1:{port}"));
    loopback
        .as_deref()
        .unwrap_or(s)
        .parse()
        .map_err(|_| "not an address to listen on (IP:PORT, e.g. 127.0.0.1:9464)".into())
}

/// An OTLP/HTTP collector: an http:// URL (the exporter's client speaks plain HTTP; a
/// collector behind TLS is reached through a local one).
pub fn otlp_endpoint(s: &str) -> Result<String, String> {
    let uri: hyper::Uri = s.parse().map_err(|_| "not a URL".to_string())?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http"), Some(_)) => Ok(s.to_owned()),
        (Some("https"), _) => Err(
            "https is not supported: push to a local collector over http://, which forwards over TLS"
                .into(),
        ),
        _ => Err("an http:// URL, e.g. http://127.0.0.1:4318".into()),
    }
}

/// Source addresses to connect from: a list and/or IPv4 ranges, `127.0.0.2-127.0.0.9,::1`.
pub fn ip_list(s: &str) -> Result<Vec<std::net::IpAddr>, String> {
    use std::net::{IpAddr, Ipv4Addr};
    let v4 = |t: &str| {
        t.trim()
            .parse::<Ipv4Addr>()
            .map_err(|_| format!("'{}' is not an IPv4 address (ranges are IPv4)", t.trim()))
    };
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (lo, hi) = (u32::from(v4(a)?), u32::from(v4(b)?));
                if hi < lo {
                    return Err(format!("range '{part}' runs backwards"));
                }
                if hi - lo >= 1 << 16 {
                    return Err(format!("range '{part}' is over 65,536 addresses"));
                }
                out.extend((lo..=hi).map(|n| IpAddr::V4(Ipv4Addr::from(n))));
            }
            None => out.push(
                part.parse()
                    .map_err(|_| format!("'{part}' is not an IP address"))?,
            ),
        }
    }
    if out.is_empty() {
        return Err("names no address".into());
    }
    Ok(out)
}

/// A worker id: what a session id may hold, short enough to leave room for the rest.
pub fn worker_id(s: &str) -> Result<String, String> {
    if !s.is_empty()
        && s.len() <= 24
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Ok(s.to_owned())
    } else {
        Err("1-24 characters of [A-Za-z0-9_-]".into())
    }
}

/// The default worker id: the Indexed Job index, else `<hostname>-<pid>`, cleaned up.
pub fn default_worker_id() -> String {
    if let Ok(i) = std::env::var("JOB_COMPLETION_INDEX")
        && worker_id(&i).is_ok()
    {
        return i;
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_else(|_| "host".into());
    let clean: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(16)
        .collect();
    let clean = if clean.is_empty() {
        "host".to_owned()
    } else {
        clean
    };
    format!("{clean}-{}", std::process::id())
}

/// `--start-at`: RFC 3339, or `+DURATION` from now.
pub fn start_at(s: &str) -> Result<std::time::SystemTime, String> {
    match s.strip_prefix('+') {
        Some(d) => Ok(std::time::SystemTime::now() + units::parse_duration(d)?),
        None => humantime::parse_rfc3339_weak(s).map_err(|e| {
            format!("not an RFC 3339 time or +DURATION ({e}); try 2026-11-26T10:00:00Z or +30s")
        }),
    }
}
