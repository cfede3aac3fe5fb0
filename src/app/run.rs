//! The `run` command: resources and output checks, signals, the embedded server, the plan the
//! engine runs (from the configuration), the verdicts, and every report written.

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{RunConfig, Target, WsUrl};
use crate::gate;
use crate::outcome::Outcome;
use crate::result::{RunResult, judge};
use crate::run::execute;
use crate::run::selfcheck::ThreadSet;
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
    if !matches!(config.target, crate::config::Target::Command(_))
        && let Some(warning) =
            crate::resources::ensure_source_ports(u64::from(config.conns), config.bind_ips.len())?
    {
        tracing::warn!("{warning}");
    }
    config.outputs.check_writable()?;
    if config.tls.insecure {
        eprintln!(
            "wsbench: WARNING: --insecure: server certificates are NOT verified; anyone on the path can impersonate the server"
        );
    }
    let interrupt = CancellationToken::new();
    tokio::spawn(watch_signals(interrupt.clone()));
    let (outputs, stdout) = (config.outputs.clone(), config.stdout);
    let (result, live) = observed(config, interrupt.clone()).await?;
    crate::report::emit_all(&result, &outputs, stdout)?;
    if let Some(live) = live {
        live.finish(&interrupt).await;
    }
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
pub(crate) struct Embedded {
    /// Taken by `shutdown`; dropped in the background otherwise (a runtime dropped from async
    /// code would panic), so an early return cannot crash the command.
    runtime: Option<tokio::runtime::Runtime>,
    server: Option<Server>,
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
            runtime: Some(runtime),
            server: Some(server),
            threads,
        })
    }

    async fn shutdown(mut self) -> anyhow::Result<StatsSnapshot> {
        let runtime = self.runtime.take().expect("running until shut down");
        let server = self.server.take().expect("running until shut down");
        let stats = runtime.spawn(server.shutdown()).await??;
        // Dropping a runtime may block; from async code it must be let go in the background.
        runtime.shutdown_background();
        Ok(stats)
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The target: the embedded server started when asked, and the address to connect to (for a
/// command, what reports show in its place).
pub(crate) fn target(config: &RunConfig) -> anyhow::Result<(Option<Embedded>, WsUrl)> {
    let embedded = match &config.target {
        Target::Url(_) | Target::Command(_) => None,
        Target::Embedded => Some(Embedded::start(config.embedded_server.clone())?),
    };
    let url = match (&config.target, &embedded) {
        (Target::Url(url), _) => url.clone(),
        // Not a network address: what the report shows as the target.
        (Target::Command(c), _) => WsUrl {
            url: format!("stdio: {c}"),
            host: String::new(),
            port: 0,
            tls: false,
            http: false,
            command: Some(c.clone()),
        },
        (_, Some(e)) => {
            let server = e.server.as_ref().expect("running");
            WsUrl::parse(&server.url()).map_err(anyhow::Error::msg)?
        }
        (Target::Embedded, None) => unreachable!("embedded target without a server"),
    };
    Ok((embedded, url))
}

/// Runs the load described by `config` and judges it. Writes nothing, serves no metrics.
pub async fn run(mut config: RunConfig, interrupt: CancellationToken) -> anyhow::Result<RunResult> {
    config.telemetry = crate::live::Telemetry::default();
    Ok(observed(config, interrupt).await?.0)
}

/// Live metrics of a run, read off its recorders and breaker, labelled with the run and
/// worker ids.
async fn start_live(
    config: &RunConfig,
    plan: &crate::run::Plan,
    recorders: &Recorders,
    run_id: &str,
) -> anyhow::Result<Option<crate::live::Running>> {
    use crate::live::{Identity, client};
    if !config.telemetry.is_on() {
        return Ok(None);
    }
    let (names, breaker) = (plan.spec.mix.stat_names(), plan.spec.breaker.clone());
    let recorders = recorders.clone();
    let source: crate::live::Source = std::sync::Arc::new(move || {
        let (live, detail) = recorders.detail(crate::run::clock::now());
        client::families(&client::RunReading {
            live: &live,
            detail: &detail,
            breaker: breaker.enabled().then(|| breaker.state()),
            tools: &names,
        })
    });
    let identity = Identity {
        labels: vec![
            ("run_id", "wsbench.run_id", run_id.to_owned()),
            ("worker", "wsbench.worker_id", config.worker_id.clone()),
        ],
    };
    let live = crate::live::start(&config.telemetry, identity, source).await?;
    if let Some(addr) = live.metrics_addr() {
        eprintln!("wsbench: metrics at http://{addr}/metrics");
    }
    Ok(Some(live))
}

/// [`run`], with the live metrics `config` asks for, which the caller ends after its reports.
async fn observed(
    mut config: RunConfig,
    interrupt: CancellationToken,
) -> anyhow::Result<(RunResult, Option<crate::live::Running>)> {
    let (embedded, url) = target(&config)?;
    resolve_host(&url, config.connect_timeout).await?;
    let run_id = new_run_id();
    resolve_auto(&mut config, &url, &run_id).await?;
    let excluded = embedded.as_ref().map(|e| e.threads.clone());
    let plan = config.plan(&url, &run_id)?;
    if config.protocol.is_mcp() {
        check_tools(&plan, &config.mix).await?;
    }
    if let Some(reference) = &plan.spec.consistent {
        // --check consistent: what each call usually gets, from a session of its own.
        let mut texts = Vec::new();
        for call in 0..config.mix.calls().len() {
            let text = crate::run::probe::reference(&plan.spec, call)
                .await
                .map_err(|why| anyhow::anyhow!("--check consistent: {why}"))?;
            texts.push(text);
        }
        let _ = reference.set(texts);
        plan.spec
            .versions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
    let recorders = Recorders::per_worker();
    let live = start_live(&config, &plan, &recorders, &run_id).await?;
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
    let result = RunResult {
        settings: config.settings(),
        run_id,
        summary,
        verdicts,
        outcome,
        reason,
        server,
        workers: Vec::new(),
        baseline,
    };
    Ok((result, live))
}

/// A host name that does not resolve fails the run at once (exit 3) naming the host, instead
/// of every connection failing on its own and the circuit breaker taking the headline.
async fn resolve_host(url: &WsUrl, within: std::time::Duration) -> anyhow::Result<()> {
    if url.command.is_some() || url.host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let host = url.host.as_str();
    match tokio::time::timeout(within, tokio::net::lookup_host((host, url.port))).await {
        Ok(Ok(mut addrs)) => match addrs.next() {
            Some(_) => Ok(()),
            None => anyhow::bail!("cannot resolve host '{host}': no addresses"),
        },
        Ok(Err(e)) => anyhow::bail!("cannot resolve host '{host}': {e}"),
        Err(_) => anyhow::bail!("cannot resolve host '{host}': no answer within {within:?}"),
    }
}

/// `--mcp-version auto`: one probe session in the stateless revision (its `server/discover`);
/// the run speaks that revision when the server does, else the newest session-based one
/// (whose `initialize` may still settle on an older one).
pub(crate) async fn resolve_auto(
    config: &mut RunConfig,
    url: &WsUrl,
    run_id: &str,
) -> anyhow::Result<()> {
    use crate::protocol::{Dialect, McpVersion};
    if config.protocol != Dialect::Mcp(McpVersion::Auto) {
        return Ok(());
    }
    let mut probe = config.clone();
    probe.protocol = Dialect::Mcp(McpVersion::V2026_07_28);
    let plan = probe.plan(url, run_id)?;
    let chosen = match crate::run::probe::opens(&plan.spec).await {
        Ok(()) => McpVersion::V2026_07_28,
        Err(why) => {
            tracing::info!(%why, "the server does not speak MCP 2026-07-28; using 2025-11-25");
            McpVersion::V2025_11_25
        }
    };
    config.protocol = Dialect::Mcp(chosen);
    Ok(())
}

/// Short random run id; it prefixes request and session ids so runs never collide.
fn new_run_id() -> String {
    use std::hash::{BuildHasher as _, RandomState};
    let h = RandomState::new().hash_one((std::process::id(), std::time::SystemTime::now()));
    format!("{:08x}", h as u32)
}

/// MCP: every tool the run will call must be one the server lists (exit 2 naming the ones it
/// has). A server that cannot list its tools is loaded anyway: the run measures what happens.
async fn check_tools(plan: &crate::run::Plan, mix: &crate::run::mix::Mix) -> anyhow::Result<()> {
    match crate::run::probe::list_tools(&plan.spec).await {
        Ok(tools) => {
            let names = crate::run::probe::names(&tools);
            if let Some(tool) = mix
                .calls()
                .iter()
                .map(|c| c.tool.as_str())
                .find(|t| !names.contains(t))
            {
                return Err(crate::error::ConfigError::Rejected {
                    name: "--tool".into(),
                    reason: format!(
                        "the server has no tool '{tool}' (it has: {})",
                        names.join(", ")
                    ),
                }
                .into());
            }
        }
        Err(why) => tracing::warn!(%why, "could not list the server's tools; loading it anyway"),
    }
    // The probe's session is not part of the run.
    plan.spec
        .versions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clear();
    Ok(())
}
