//! Assembles `ServeConfig` from `wsbench serve` flags, environment and a profile's `[serve]`
//! table. `run --embedded` uses the same with no flags, so a profile configures its server.

use super::source::Resolver;
use super::{Secret, ServeConfig};
use crate::cli::ServeArgs;
use crate::error::ConfigError;
use crate::serve::faults::FaultConfig;
use crate::units;
use crate::values::*;

impl ServeConfig {
    /// Validates `serve` flags, reading `--config` (its `[serve]` table) if given.
    pub fn from_args(args: &ServeArgs) -> Result<ServeConfig, ConfigError> {
        let r = Resolver::new(args.config.as_deref())?;
        resolve(args, &r)
    }
}

/// Every serve flag `--some-flag` is key `some_flag` of the `[serve]` table.
fn key_of(flag: &str) -> String {
    flag.trim_start_matches("--").replace('-', "_")
}

/// A session's state stays small enough that a few thousand sessions cannot exhaust the machine
/// by a typo (a unit left off means bytes, never gigabytes).
const MAX_SESSION_MEMORY: u64 = 64 << 20;

fn get<T>(
    r: &Resolver,
    v: &Option<String>,
    flag: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<T>, ConfigError> {
    r.get(v.as_deref(), flag, ("serve", &key_of(flag)), parse)
}

fn or<T>(
    r: &Resolver,
    v: &Option<String>,
    flag: &str,
    default: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<T, ConfigError> {
    r.get_or(v.as_deref(), flag, ("serve", &key_of(flag)), default, parse)
}

pub(super) fn resolve(args: &ServeArgs, r: &Resolver) -> Result<ServeConfig, ConfigError> {
    let ratio = |v: &Option<String>, flag: &str| or(r, v, flag, "0", units::parse_ratio);
    let count = |v: &Option<String>, flag: &str| get(r, v, flag, positive_whole);
    let switch = |set: bool, flag: &str| r.switch(set, flag, ("serve", &key_of(flag)));
    let dur = |v: &Option<String>, flag: &str| or(r, v, flag, "0s", units::parse_duration);

    let tls_cert = r.get(
        args.tls_cert.as_deref(),
        "--tls-cert",
        ("serve", "tls_cert"),
        existing_file,
    )?;
    let tls_key = r.get(
        args.tls_key.as_deref(),
        "--tls-key",
        ("serve", "tls_key"),
        existing_file,
    )?;
    let tls = match (tls_cert, tls_key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => {
            return Err(ConfigError::Rejected {
                name: "--tls-cert".into(),
                reason: "--tls-cert and --tls-key go together".into(),
            });
        }
    };
    let protocol = r.get_or(
        args.protocol.as_ref(),
        "--protocol",
        ("serve", "protocol"),
        "tool-call",
        crate::protocol::Dialect::parse,
    )?;
    if protocol.is_mcp() {
        // Frames MCP has no place for: the tool-call dialect's acks and stream chunks.
        for (set, flag) in [
            (args.ack, "--ack"),
            (args.stream.is_some(), "--stream"),
            (args.stream_complete, "--stream-complete"),
            (args.bare_tool_errors, "--bare-tool-errors"),
        ] {
            if set {
                return Err(ConfigError::Rejected {
                    name: flag.into(),
                    reason: "is a tool-call dialect fault; MCP has no such frame".into(),
                });
            }
        }
    }
    if !protocol.is_mcp() && args.rpc_errors {
        return Err(ConfigError::Rejected {
            name: "--rpc-errors".into(),
            reason: "is an MCP fault: it needs --protocol mcp".into(),
        });
    }
    let session_memory = or(
        r,
        &args.session_memory,
        "--session-memory",
        "0",
        units::parse_size,
    )?;
    if session_memory > MAX_SESSION_MEMORY {
        return Err(ConfigError::Rejected {
            name: "--session-memory".into(),
            reason: format!(
                "{session_memory} bytes a session is over the {} MiB this server allows",
                MAX_SESSION_MEMORY >> 20
            ),
        });
    }
    let memory_limit = get(r, &args.memory_limit, "--memory-limit", units::parse_size)?;
    if memory_limit.is_some() && session_memory == 0 {
        return Err(ConfigError::Rejected {
            name: "--memory-limit".into(),
            reason: "budgets session state: give --session-memory too".into(),
        });
    }
    Ok(ServeConfig {
        session_memory,
        memory_limit,
        telemetry: super::telemetry::telemetry(&args.metrics, r, "serve")?,
        cache_size: or(
            r,
            &args.cache_size,
            "--cache-size",
            "200000",
            units::parse_whole,
        )? as usize,
        protocol,
        stdio: switch(args.stdio, "--stdio")?,
        host: or(r, &args.host, "--host", "127.0.0.1", host)?,
        max_message_size: or(
            r,
            &args.max_message_size,
            "--max-message-size",
            "16MiB",
            frame_size,
        )?,
        port: or(r, &args.port, "--port", "8079", |s| {
            s.parse::<u16>()
                .map_err(|_| "not a port (0-65535)".to_owned())
        })?,
        token: Secret::new(
            args.token
                .clone()
                .or_else(|| std::env::var("EXAI_WS_TOKEN").ok())
                .unwrap_or_default(),
        ),
        hello_timeout: or(
            r,
            &args.hello_timeout,
            "--hello-timeout",
            "10s",
            positive_duration,
        )?,
        max_conns: count(&args.max_conns, "--max-conns")?,
        stats_file: get(
            r,
            &args.stats_file.as_ref().map(|p| p.display().to_string()),
            "--stats-file",
            |s| output_target(s).map(std::path::PathBuf::from),
        )?,
        tls,
        faults: FaultConfig {
            delay: dur(&args.delay, "--delay")?,
            jitter: dur(&args.jitter, "--jitter")?,
            pause_every: get(r, &args.pause_every, "--pause-every", positive_duration)?,
            pause_for: dur(&args.pause_for, "--pause-for")?,
            tool_delays: r
                .get(
                    args.tool_delay.as_ref(),
                    "--tool-delay",
                    ("serve", "tool_delay"),
                    tool_delays,
                )?
                .unwrap_or_default(),
            session_delays: args
                .session_delay
                .iter()
                .map(|s| {
                    session_delay(s).map_err(|reason| ConfigError::Invalid {
                        name: "--session-delay".into(),
                        value: s.clone(),
                        reason,
                    })
                })
                .collect::<Result<_, _>>()?,
            seed: or(r, &args.seed, "--seed", "0", units::parse_whole)?,
            error_rate: ratio(&args.error_rate, "--error-rate")?,
            retry_after_s: or(
                r,
                &args.retry_after,
                "--retry-after",
                "1",
                units::parse_whole,
            )?,
            drop_rate: ratio(&args.drop_rate, "--drop-rate")?,
            malformed_rate: ratio(&args.malformed_rate, "--malformed-rate")?,
            duplicate_rate: ratio(&args.duplicate_rate, "--duplicate-rate")?,
            disconnect_after: count(&args.disconnect_after, "--disconnect-after")?,
            freeze_after: count(&args.freeze_after, "--freeze-after")?,
            down_after: get(r, &args.down_after, "--down-after", units::parse_duration)?,
            down_for: dur(&args.down_for, "--down-for")?,
            ack: switch(args.ack, "--ack")?,
            progress: switch(args.progress, "--progress")?,
            stream: count(&args.stream, "--stream")?.map_or(0, |n| n.min(10_000) as u32),
            stream_complete: switch(args.stream_complete, "--stream-complete")?,
            uncorrelated_error_rate: ratio(
                &args.uncorrelated_error_rate,
                "--uncorrelated-error-rate",
            )?,
            bare_tool_errors: switch(args.bare_tool_errors, "--bare-tool-errors")?,
            in_order: switch(args.in_order, "--in-order")?,
            rpc_errors: switch(args.rpc_errors, "--rpc-errors")?,
            ping_interval: get(r, &args.ping_interval, "--ping-interval", positive_duration)?,
            max_inflight: count(&args.max_inflight, "--max-inflight")?,
            corrupt_rate: ratio(&args.corrupt_rate, "--corrupt-rate")?,
            mix_sessions_rate: ratio(&args.mix_sessions_rate, "--mix-sessions-rate")?,
            first_call_stall: switch(args.first_call_stall, "--first-call-stall")?,
            diverge_rate: ratio(&args.diverge_rate, "--diverge-rate")?,
        },
    })
}
