//! Finding a setting's raw text: a flag, then a `WSBENCH_*` environment variable, then the
//! `--config` file, then the built-in default. Each lookup is recorded with its source, which
//! is what `wsbench config show` prints.

use std::cell::RefCell;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::ConfigError;
use crate::values::Flag;

/// A setting's text, the name to blame if it does not parse, and where it came from.
type Raw = (String, String, Source);

/// Keys a config file may hold, by table. Anything else is an error, never ignored.
pub const SECTIONS: &[(&str, &[&str])] = &[
    (
        "run",
        &[
            "url",
            "command",
            "protocol",
            "mcp_version",
            "progress_token",
            "http2",
            "embedded",
            "conns",
            "duration",
            "requests",
            "inflight",
            "tool",
            "args",
            "mix",
            "seed",
            "data",
            "data_mode",
            "check",
            "check_pointer",
            "session_prefix",
            "connect_timeout",
            "timeout",
            "drain",
            "close_rate",
            "headers",
            "subprotocol",
            "ca_file",
            "insecure",
            "rate",
            "stages",
            "warmup",
            "ramp_up",
            "connect_rate",
            "progress",
            "output",
            "json",
            "junit",
            "html",
            "markdown",
            "plot",
            "hdr_log",
            "bind_ip",
            "max_frame_size",
            "worker_id",
            "start_at",
            "validate_sample",
            "expect_output",
            "metrics_listen",
            "metrics_linger",
            "otlp_endpoint",
            "otlp_interval",
        ],
    ),
    (
        "resilience",
        &[
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
            "retry_after_max",
            "uncorrelated_errors",
        ],
    ),
    (
        // The reference server's flags as keys; in a `run` profile, the embedded server's.
        "serve",
        &[
            "protocol",
            "stdio",
            "cache_size",
            "host",
            "port",
            "hello_timeout",
            "max_conns",
            "session_memory",
            "memory_limit",
            "stats_file",
            "tls_cert",
            "tls_key",
            "delay",
            "jitter",
            "tool_delay",
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
            "max_message_size",
            "max_inflight",
            "corrupt_rate",
            "mix_sessions_rate",
            "first_call_stall",
            "diverge_rate",
            "stream_complete",
            "uncorrelated_error_rate",
            "bare_tool_errors",
            "in_order",
            "rpc_errors",
            "metrics_listen",
            "metrics_linger",
            "otlp_endpoint",
            "otlp_interval",
        ],
    ),
    (
        // `[[scenario.call]]`: the calls of a mix, each a table (`tool`, `weight`, `args`).
        "scenario",
        &["call", "step"],
    ),
    (
        "thresholds",
        &[
            "gate",
            "threshold",
            "min_rps",
            "max_p50",
            "max_p99",
            "max_p999",
            "max_connect_p99",
            "max_error_rate",
            "max_unavailable",
            "baseline",
            "max_regress",
        ],
    ),
];

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag(String),
    Env(String),
    File(PathBuf),
    Default,
    /// Not set anywhere, and there is no default (the feature is off).
    Unset,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag(name) => write!(f, "flag {name}"),
            Source::Env(var) => write!(f, "env {var}"),
            Source::File(path) => write!(f, "file {}", path.display()),
            Source::Default => f.write_str("default"),
            Source::Unset => f.write_str("unset"),
        }
    }
}

/// One resolved setting: `table.key`, its text, and its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub key: String,
    pub value: String,
    pub source: Source,
}

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

/// The environment variable for `table.key`: `WSBENCH_CONNS`, `WSBENCH_MAX_P99`, and for the
/// server's table `WSBENCH_SERVE_ERROR_RATE`.
pub fn env_var(section: &str, key: &str) -> String {
    let key = key.to_ascii_uppercase();
    match section {
        "serve" => format!("WSBENCH_SERVE_{key}"),
        _ => format!("WSBENCH_{key}"),
    }
}

/// Picks each setting from flag, environment, file or default, parsing each the same way.
pub struct Resolver {
    file: Option<ConfigFile>,
    records: RefCell<Vec<Setting>>,
}

impl Resolver {
    pub fn new(config: Option<&Path>) -> Result<Resolver, ConfigError> {
        Ok(Resolver {
            file: config.map(ConfigFile::load).transpose()?,
            records: RefCell::default(),
        })
    }

    /// The text of `table.key` in the file, if set. Numbers and booleans are taken as the text a
    /// flag would carry; an array of strings as a comma-separated list.
    fn file_value(&self, section: &str, key: &str) -> Result<Option<Raw>, ConfigError> {
        let Some(file) = &self.file else {
            return Ok(None);
        };
        let Some(v) = file.table.get(section).and_then(|s| s.get(key)) else {
            return Ok(None);
        };
        let name = format!("{section}.{key} in {}", file.path.display());
        let wrong = |found: &str| ConfigError::Rejected {
            name: name.clone(),
            reason: format!("expected a string or number, found {found}"),
        };
        let text = match v {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|i| {
                    i.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| wrong("a non-string in an array"))
                })
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
            other => return Err(wrong(other.type_str())),
        };
        Ok(Some((text, name, Source::File(file.path.clone()))))
    }

    /// The raw text for a setting from the environment or the file, and the name to blame if it
    /// does not parse.
    fn raw(&self, (section, key): (&str, &str)) -> Result<Option<Raw>, ConfigError> {
        let var = env_var(section, key);
        if let Ok(v) = std::env::var(&var) {
            return Ok(Some((v, var.clone(), Source::Env(var))));
        }
        self.file_value(section, key)
    }

    /// A flag's value (parsed by clap already, or parsed here), recorded with its text.
    fn flag_value<T, F: Flag<T> + ?Sized>(
        &self,
        key: (&str, &str),
        flag: &F,
        flag_name: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        let value = flag.value(parse).map_err(|reason| ConfigError::Invalid {
            name: flag_name.to_owned(),
            value: flag.text().to_owned(),
            reason,
        })?;
        self.record(key, flag.text(), Source::Flag(flag_name.to_owned()));
        Ok(value)
    }

    fn record(&self, key: (&str, &str), value: &str, source: Source) {
        self.records.borrow_mut().push(Setting {
            key: format!("{}.{}", key.0, key.1),
            value: value.to_owned(),
            source,
        });
    }

    fn parse_raw<T>(
        &self,
        key: (&str, &str),
        (text, name, source): Raw,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        let value = parse(&text).map_err(|reason| ConfigError::Invalid {
            name,
            value: text.clone(),
            reason,
        })?;
        self.record(key, &text, source);
        Ok(value)
    }

    /// An array of tables in the file (`[[section.key]]`), and the name to blame for one of
    /// them; `None` when the file has none.
    pub fn tables(
        &self,
        section: &str,
        key: &str,
    ) -> Result<Option<(Vec<toml::Table>, String)>, ConfigError> {
        let Some(file) = &self.file else {
            return Ok(None);
        };
        let Some(v) = file.table.get(section).and_then(|s| s.get(key)) else {
            return Ok(None);
        };
        let name = format!("{section}.{key} in {}", file.path.display());
        let tables = v
            .as_array()
            .and_then(|items| {
                items
                    .iter()
                    .map(|i| i.as_table().cloned())
                    .collect::<Option<Vec<_>>>()
            })
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ConfigError::Rejected {
                name: name.clone(),
                reason: format!("expected [[{section}.{key}]] tables"),
            })?;
        self.record(
            (section, key),
            &format!("{} tables", tables.len()),
            Source::File(file.path.clone()),
        );
        Ok(Some((tables, name)))
    }

    /// A setting without a default: `None` when nothing sets it.
    pub fn get<T, F: Flag<T> + ?Sized>(
        &self,
        flag: Option<&F>,
        flag_name: &str,
        key: (&str, &str),
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        if let Some(f) = flag {
            return self.flag_value(key, f, flag_name, parse).map(Some);
        }
        match self.raw(key)? {
            Some(raw) => self.parse_raw(key, raw, parse).map(Some),
            None => {
                self.record(key, "", Source::Unset);
                Ok(None)
            }
        }
    }

    /// A setting with a default, given as the text a user would type and parsed the same way.
    pub fn get_or<T, F: Flag<T> + ?Sized>(
        &self,
        flag: Option<&F>,
        flag_name: &str,
        key: (&str, &str),
        default: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        if let Some(f) = flag {
            return self.flag_value(key, f, flag_name, parse);
        }
        let raw = self.raw(key)?.unwrap_or_else(|| {
            (
                default.to_owned(),
                format!("the default of {flag_name}"),
                Source::Default,
            )
        });
        self.parse_raw(key, raw, parse)
    }

    /// A boolean switch: the flag turns it on; otherwise environment, file, default off.
    pub fn switch(
        &self,
        flag: bool,
        flag_name: &str,
        key: (&str, &str),
    ) -> Result<bool, ConfigError> {
        let set = flag.then_some("true");
        self.get_or::<_, str>(set, flag_name, key, "false", crate::values::parse_bool)
    }

    /// Everything resolved so far, in order.
    pub fn records(&self) -> Vec<Setting> {
        self.records.borrow().clone()
    }
}
