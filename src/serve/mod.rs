//! `wsbench serve`: the reference server. Owns the accept loop, the connection cap and graceful
//! shutdown; what each connection says lives in `handler.rs`, the counters in `stats.rs`.
//!
//! In-process use (tests, `run --embedded`): [`Server::start`] on a listener bound to port 0,
//! read [`Server::stats`], then [`Server::shutdown`].

mod cache;
pub mod faults;
mod handler;
mod http;
mod memory;
mod stats;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use stats::{InjectedSnapshot, ServerStats, StatsSnapshot};

/// Everything `serve` needs, validated (`config/serve.rs` builds it from flags, env and file).
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    pub host: String,
    pub port: u16,
    pub token: Secret,
    pub hello_timeout: Duration,
    pub max_conns: Option<u64>,
    /// Bytes of state each session holds (`--session-memory`).
    pub session_memory: u64,
    /// Budget for all sessions' state, bytes (`--memory-limit`).
    pub memory_limit: Option<u64>,
    pub stats_file: Option<PathBuf>,
    /// Largest frame or message accepted, in bytes.
    pub max_message_size: usize,
    /// Request ids remembered for replay.
    pub cache_size: usize,
    /// wss: certificate chain and private key (PEM).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Injected delays, stalls and faults.
    pub faults: FaultConfig,
    /// The dialect spoken (`--protocol`).
    pub protocol: crate::protocol::Dialect,
    /// Serve one session on stdin and stdout instead of listening (`--stdio`).
    pub stdio: bool,
    /// Live metrics of the server's counters (`serve --metrics-listen`, `--otlp-endpoint`).
    pub telemetry: crate::live::Telemetry,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            host: "127.0.0.1".into(),
            port: 8079,
            token: Secret::default(),
            hello_timeout: Duration::from_secs(10),
            max_conns: None,
            session_memory: 0,
            memory_limit: None,
            stats_file: None,
            max_message_size: 16 << 20,
            cache_size: 200_000,
            tls: None,
            faults: FaultConfig::default(),
            protocol: crate::protocol::Dialect::ToolCall,
            telemetry: crate::live::Telemetry::default(),
            stdio: false,
        }
    }
}

use std::path::PathBuf;
use std::time::Duration;

use crate::error::ConfigError;
use crate::net::secret::Secret;
use crate::outcome::Outcome;
use faults::FaultConfig;

/// Everything the connection handlers share.
pub(crate) struct Shared {
    pub config: ServeConfig,
    pub stats: ServerStats,
    pub cache: cache::ReplayCache,
    pub in_flight: cache::InFlight,
    pub faults: faults::Faults,
    /// wss: the TLS acceptor (`--tls-cert`/`--tls-key`).
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// MCP over Streamable HTTP: the open sessions.
    pub http: http::Sessions,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// A running reference server.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl Server {
    /// Binds `config.host:config.port` and starts serving.
    pub async fn bind(config: ServeConfig) -> anyhow::Result<Server> {
        let addr = (config.host.as_str(), config.port);
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("could not listen on {}:{}", config.host, config.port))?;
        Server::start(listener, config)
    }

    /// Serves on an already bound listener (tests bind `127.0.0.1:0`).
    pub fn start(listener: TcpListener, config: ServeConfig) -> anyhow::Result<Server> {
        let addr = listener.local_addr()?;
        let tls = match &config.tls {
            Some((cert, key)) => Some(
                crate::net::tls::acceptor(cert, key, config.protocol.is_mcp()).map_err(|e| {
                    ConfigError::Rejected {
                        name: "--tls-cert".into(),
                        reason: format!("{e:#}"),
                    }
                })?,
            ),
            None => None,
        };
        let shared = Shared::new(tls, config);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(accept_loop(listener, shared.clone(), cancel.clone()));
        Ok(Server {
            addr,
            shared,
            cancel,
            task,
        })
    }

    /// The bound address (the real port when bound to 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://` (or `wss://`) URL of this server.
    pub fn url(&self) -> String {
        let scheme = if self.shared.tls.is_some() {
            "wss"
        } else {
            "ws"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// When TCP connections were accepted (tests line these up with client-side events).
    pub fn accept_times(&self) -> Vec<std::time::Instant> {
        self.shared.stats.accept_times()
    }

    /// The counters as they are now.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// Reads the counters as they are at each call, for as long as it is kept (live metrics).
    pub fn stats_reader(&self) -> impl Fn() -> StatsSnapshot + Send + Sync + 'static {
        let shared = self.shared.clone();
        move || shared.stats.snapshot()
    }

    /// Stops accepting, closes every connection with 1001, waits for the handlers, writes
    /// `--stats-file`, and returns the final counters.
    pub async fn shutdown(self) -> anyhow::Result<StatsSnapshot> {
        self.cancel.cancel();
        let _ = self.task.await;
        let snapshot = self.shared.stats.snapshot();
        if let Some(path) = &self.shared.config.stats_file {
            let bytes = serde_json::to_vec_pretty(&snapshot)?;
            crate::files::write_whole(path, &bytes)?;
        }
        Ok(snapshot)
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, cancel: CancellationToken) {
    let tracker = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _peer)) => {
                let now = std::time::Instant::now();
                shared.stats.accepted_at(now);
                if shared.faults.is_down(now) {
                    // The outage: the connection is dropped before the upgrade.
                    shared.stats.injected(stats::Fault::DownRefused);
                    drop(stream);
                    continue;
                }
                tracker.spawn(handler::handle(stream, shared.clone(), cancel.clone()));
            }
            Err(err) => {
                // EMFILE and friends pass; back off briefly instead of spinning on them.
                tracing::warn!(%err, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
}

impl Shared {
    fn new(tls: Option<tokio_rustls::TlsAcceptor>, config: ServeConfig) -> Arc<Shared> {
        Arc::new(Shared {
            tls,
            cache: cache::ReplayCache::new(config.cache_size),
            in_flight: cache::InFlight::default(),
            faults: faults::Faults::new(config.faults.clone()),
            stats: ServerStats::new(),
            http: http::Sessions::default(),
            config,
        })
    }
}

/// `serve --stdio`: one session on this process's stdin and stdout (a client spawned it), until
/// stdin ends or a signal; stdout carries nothing but the protocol, logs go to stderr.
async fn stdio(config: ServeConfig) -> anyhow::Result<Outcome> {
    let max = config.max_message_size;
    let shared = Shared::new(None, config);
    let io = crate::net::stdio::Lines::new(tokio::io::stdin(), tokio::io::stdout(), max);
    let cancel = CancellationToken::new();
    shared.stats.connection_opened();
    tokio::select! {
        _ = handler::session(Box::new(io), &shared, cancel.clone()) => {}
        _ = crate::signal::terminated() => cancel.cancel(),
    }
    shared.stats.connection_closed();
    let snapshot = shared.stats.snapshot();
    if let Some(path) = &shared.config.stats_file {
        crate::files::write_whole(path, &serde_json::to_vec_pretty(&snapshot)?)?;
    }
    tracing::info!(call_tool = snapshot.call_tool, "stdio session ended");
    Ok(Outcome::Passed)
}

/// The `serve` subcommand: serve until SIGINT or SIGTERM, then shut down gracefully.
pub async fn main(config: ServeConfig) -> anyhow::Result<Outcome> {
    if config.stdio {
        return stdio(config).await;
    }
    // The counters are written at shutdown: a path that cannot take them is refused now,
    // not found out after the run they count.
    if let Some(path) = &config.stats_file {
        let target = path.to_string_lossy();
        crate::files::check_writable(Some(&target)).map_err(|e| {
            crate::error::ConfigError::Rejected {
                name: format!("--stats-file {target}"),
                reason: e.to_string(),
            }
        })?;
    }
    crate::resources::raise_to_hard();
    let telemetry = config.telemetry.clone();
    let server = Server::bind(config).await?;
    println!("wsbench serve listening on {}", server.url());
    let live = if telemetry.is_on() {
        let read = server.stats_reader();
        let source: crate::live::Source =
            std::sync::Arc::new(move || crate::live::server::families(&read()));
        let live = crate::live::start(&telemetry, crate::live::Identity::default(), source).await?;
        if let Some(addr) = live.metrics_addr() {
            eprintln!("wsbench: metrics at http://{addr}/metrics");
        }
        Some(live)
    } else {
        None
    };
    crate::signal::terminated().await;
    let stats = server.shutdown().await?;
    if let Some(live) = live {
        // The last push carries the final counters; no linger after a signal to stop.
        let stopped = tokio_util::sync::CancellationToken::new();
        stopped.cancel();
        live.finish(&stopped).await;
    }
    tracing::info!(
        call_tool = stats.call_tool,
        results_ok = stats.results_ok,
        "server stopped"
    );
    Ok(Outcome::Passed)
}
