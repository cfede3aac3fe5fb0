//! What a run's configuration becomes for each layer that uses it: the engine's `Plan` (with
//! TLS, validation and the shared breaker compiled) and the `Settings` reports show. The
//! layers define these types; config produces them, never the reverse.

use std::sync::Arc;

use super::{RunConfig, Target, WsUrl};
use crate::error::ConfigError;
use crate::result::Settings;
use crate::run::Plan;
use crate::run::breaker::Breaker;
use crate::run::connection::{self, RunSpec};

impl RunConfig {
    /// The engine's plan for this configuration against `url` (the embedded server's address
    /// is known only once it listens).
    pub fn plan(&self, url: &WsUrl, run_id: &str) -> Result<Plan, ConfigError> {
        let config = self;
        // The schedule covers warmup too: during warmup the rate is the schedule's starting rate.
        let schedule = config
            .schedule
            .as_ref()
            .map(|s| Arc::new(s.with_warmup(config.warmup)));
        let breaker = Arc::new(Breaker::new(config.breaker.clone()));
        let tls = match url.tls {
            true => Some(crate::net::tls::client_config(&config.tls).map_err(|e| {
                ConfigError::Rejected {
                    name: "--ca-file".into(),
                    reason: format!("{e:#}"),
                }
            })?),
            false => None,
        };
        let spec = Arc::new(RunSpec {
            url: url.url.clone(),
            host: url.host.clone(),
            port: url.port,
            run_id: run_id.to_owned(),
            worker_id: config.worker_id.clone(),
            session_prefix: config.session_prefix.clone(),
            hello_token: config.token.clone(),
            wire: config.protocol.wire(config.progress_token),
            versions: Default::default(),
            mix: config.mix.clone(),
            data: config.data.clone(),
            isolation: config.isolation.clone(),
            consistent: config.consistent.then(std::sync::OnceLock::new),
            window: config.inflight as usize,
            schedule,
            conns: config.conns,
            connect_timeout: config.connect_timeout,
            timeout: config.timeout,
            drain: config.drain,
            close_rate: config.close_rate,
            max_message_size: config.max_frame_size,
            breaker,
            reconnect: config.reconnect,
            ping: config.ping,
            retry_after: config.retry_after,
            uncorrelated: config.uncorrelated,
            tls,
            http: url.http,
            http2: config.http2,
            command: match &config.target {
                Target::Command(c) => Some(c.clone()),
                _ => None,
            },
            stderr_log: config.stderr_log.clone(),
            bind_ips: config.bind_ips.clone(),
            headers: config.headers.clone(),
            subprotocol: config.subprotocol.clone(),
            validation: match &config.validation {
                None => None,
                Some(v) => Some(connection::Validation {
                    sample: v.sample,
                    schema: match &v.schema {
                        Some(schema) => Some(jsonschema::validator_for(schema).map_err(|e| {
                            ConfigError::Rejected {
                                name: "--expect-output".into(),
                                reason: e.to_string(),
                            }
                        })?),
                        None => None,
                    },
                }),
            },
        });
        Ok(Plan {
            spec,
            target: url.url.clone(),
            embedded: matches!(config.target, Target::Embedded),
            schedule: config.schedule.clone(),
            connect_spacing: config.connect_spacing,
            warmup: config.warmup,
            duration: config.duration,
            drain: config.drain,
            requests: config.requests,
            start_at: config.start_at,
        })
    }

    /// What the reports show of the settings.
    pub fn settings(&self) -> Settings {
        let config = self;
        Settings {
            conns: config.conns,
            inflight: config.inflight,
            duration: config.duration,
            requests: config.requests,
            tool: config.tool.clone(),
            args: config.args.clone(),
            session_prefix: config.session_prefix.clone(),
            worker_id: config.worker_id.clone(),
            connect_timeout: config.connect_timeout,
            timeout: config.timeout,
            drain: config.drain,
            token_set: !config.token.is_empty(),
            gate: config.gate,
            breaker_enabled: config.breaker.enabled,
            embedded: config.target == Target::Embedded,
            protocol: config.protocol.name().into(),
            stderr_log: config.stderr_log.as_ref().map(|p| p.display().to_string()),
            data: config.data.as_ref().map(|d| d.describe()),
            transport: match &config.target {
                Target::Command(_) => "stdio",
                Target::Url(u) if u.http && config.http2 => "http2",
                Target::Url(u) if u.http => "http",
                _ => "websocket",
            }
            .into(),
        }
    }
}
