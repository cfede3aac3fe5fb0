//! The `run` command: resources and output checks, signals, the embedded server, the plan the
//! engine runs (from the configuration), the verdicts, and every report written.

use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{RunConfig, Target, WsUrl};
use crate::error::ConfigError;
use crate::gate;
use crate::outcome::Outcome;
use crate::result::{RunResult, Settings, judge};
use crate::run::breaker::Breaker;
use crate::run::connection::{self, RunSpec};
use crate::run::selfcheck::ThreadSet;
use crate::run::{Plan, execute};
use crate::serve::{Server, StatsSnapshot};
use crate::stats::Recorders;

/// The `run` subcommand: run, write every report, return the outcome.
pub async fn main(config: RunConfig) -> anyhow::Result<Outcome> {
    let per_conn = if config.target == Target::Embedded {
        2
    } else {
        1
    };
    crate::resources::ensure_sockets(u64::from(config.conns) * per_conn)?;
    for target in config.outputs.targets() {
        crate::report::check_writable(Some(target))?;
    }
    if config.tls.insecure {
        eprintln!(
            "wsbench: WARNING: --insecure: server certificates are NOT verified; anyone on the path can impersonate the server"
        );
    }
    let interrupt = CancellationToken::new();
    tokio::spawn(watch_signals(interrupt.clone()));
    let (outputs, stdout) = (config.outputs.clone(), config.stdout);
    let result = run(config, interrupt).await?;
    crate::report::emit_all(&result, &outputs, stdout)?;
    Ok(result.outcome)
}

/// First SIGINT/SIGTERM: stop sending, drain, report. Second: leave at once.
async fn watch_signals(interrupt: CancellationToken) {
    crate::signal::terminated().await;
    tracing::warn!("interrupted: stopping; send the signal again to exit at once");
    interrupt.cancel();
    crate::signal::terminated().await;
    std::process::exit(i32::from(Outcome::Interrupted.code()));
}

/// The reference server for `--embedded`, on a runtime of its own so that its CPU time can be
/// told apart from the client's.
struct Embedded {
    runtime: tokio::runtime::Runtime,
    server: Server,
    threads: ThreadSet,
}

impl Embedded {
    fn start(config: crate::config::ServeConfig) -> anyhow::Result<Embedded> {
        let threads = ThreadSet::default();
        let register = threads.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(std::thread::available_parallelism().map_or(1, |n| n.get()))
            .thread_name("wsbench-embedded")
            .on_thread_start(move || register.register_current())
            .enable_all()
            .build()
            .context("could not start the embedded server's runtime")?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .context("could not start the embedded server")?;
        listener.set_nonblocking(true)?;
        let server = {
            let _inside = runtime.enter();
            Server::start(TcpListener::from_std(listener)?, config)?
        };
        Ok(Embedded {
            runtime,
            server,
            threads,
        })
    }

    async fn shutdown(self) -> anyhow::Result<StatsSnapshot> {
        let stats = self.runtime.spawn(self.server.shutdown()).await??;
        // Dropping a runtime may block; from async code it must be let go in the background.
        self.runtime.shutdown_background();
        Ok(stats)
    }
}

/// Runs the load described by `config` and judges it. Writes nothing.
pub async fn run(config: RunConfig, interrupt: CancellationToken) -> anyhow::Result<RunResult> {
    let embedded = match &config.target {
        Target::Url(_) => None,
        Target::Embedded => Some(Embedded::start(config.embedded_server.clone())?),
    };
    let url = match (&config.target, &embedded) {
        (Target::Url(url), _) => url.clone(),
        (_, Some(e)) => WsUrl::parse(&e.server.url()).map_err(anyhow::Error::msg)?,
        (Target::Embedded, None) => unreachable!("embedded target without a server"),
    };
    let run_id = new_run_id();
    let excluded = embedded.as_ref().map(|e| e.threads.clone());
    let plan = plan(&config, &url, &run_id)?;
    let recorders = Recorders::per_worker();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let progress_done = CancellationToken::new();
    let progress = tokio::spawn({
        let (mode, live, done) = (config.progress, recorders.clone(), progress_done.clone());
        async move {
            if let Ok(timing) = started_rx.await {
                crate::progress::show(mode, live, timing, done).await;
            }
        }
    });
    let summary = execute(&plan, interrupt, excluded, recorders, started_tx).await;
    progress_done.cancel();
    let _ = progress.await;
    let summary = summary?;
    let server = match embedded {
        Some(e) => Some(e.shutdown().await?),
        None => None,
    };
    let mut verdicts = gate::evaluate(&summary, &config.thresholds);
    let (baseline, regressions) =
        gate::baseline::check(&summary, config.baseline.as_ref(), config.gate);
    verdicts.extend(regressions);
    let (outcome, reason) = judge(&summary, &verdicts);
    Ok(RunResult {
        settings: settings(&config),
        run_id,
        summary,
        verdicts,
        outcome,
        reason,
        server,
        workers: Vec::new(),
        baseline,
    })
}

/// Short random run id; it prefixes request and session ids so runs never collide.
fn new_run_id() -> String {
    use std::hash::{BuildHasher as _, RandomState};
    let h = RandomState::new().hash_one((std::process::id(), std::time::SystemTime::now()));
    format!("{:08x}", h as u32)
}

/// The engine's plan for this configuration and target.
fn plan(config: &RunConfig, url: &WsUrl, run_id: &str) -> Result<Plan, ConfigError> {
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
        tool: config.tool.clone(),
        args: config.args.clone(),
        window: config.inflight as usize,
        schedule,
        conns: config.conns,
        connect_timeout: config.connect_timeout,
        timeout: config.timeout,
        drain: config.drain,
        max_message_size: config.max_frame_size,
        breaker,
        reconnect: config.reconnect,
        ping: config.ping,
        honor_retry_after: config.honor_retry_after,
        tls,
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
pub(crate) fn settings(config: &RunConfig) -> Settings {
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
    }
}
