//! Test helpers: a real reference server on an ephemeral loopback port, run on its own thread
//! so that tests can drive the `wsbench` binary against it, and a builder for that binary.
#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::thread::JoinHandle;

use clap::Parser as _;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use wsbench::cli::{Cli, Command};
use wsbench::config::{RunConfig, Secret, ServeConfig};
use wsbench::result::RunResult;
use wsbench::serve::{Server, StatsSnapshot};

/// A `RunConfig` from `wsbench run` flags, through the real parser.
pub fn run_config(args: &[&str]) -> RunConfig {
    let argv = ["wsbench", "run"].iter().chain(args);
    let Command::Run(run) = Cli::try_parse_from(argv).expect("flags parse").command else {
        unreachable!()
    };
    RunConfig::from_args(&run).expect("valid config")
}

/// A `ServeConfig` from `wsbench serve` flags, through the real parser.
pub fn serve_config(args: &[&str]) -> ServeConfig {
    let argv = ["wsbench", "serve"].iter().chain(args);
    let Command::Serve(serve) = Cli::try_parse_from(argv).expect("flags parse").command else {
        unreachable!()
    };
    ServeConfig::from_args(&serve).expect("valid serve config")
}

/// The reference server in this test's runtime, on 127.0.0.1:0.
pub async fn start_server(config: ServeConfig) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    Server::start(listener, config).unwrap()
}

/// Starts a server with `config`, runs `wsbench run --url <it>` with `args`, stops the server:
/// the run's result and the server's final counters.
pub async fn load(config: ServeConfig, args: &[&str]) -> (RunResult, StatsSnapshot) {
    let server = start_server(config).await;
    let url = server.url();
    let argv: Vec<&str> = ["--url", url.as_str()]
        .into_iter()
        .chain(args.iter().copied())
        .collect();
    let r = run(&argv).await;
    let stats = server.shutdown().await.expect("server stops");
    (r, stats)
}

/// Runs `wsbench run` in-process with these flags.
pub async fn run(args: &[&str]) -> RunResult {
    wsbench::app::run::run(run_config(args), CancellationToken::new())
        .await
        .expect("run completes")
}

/// A reference server on 127.0.0.1:0 in a background thread; `stop()` returns its counters.
pub struct TestServer {
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<StatsSnapshot>>,
}

impl TestServer {
    pub fn start(config: ServeConfig) -> TestServer {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                let server = Server::start(listener, config).expect("server");
                let (stop_tx, stop_rx) = oneshot::channel::<()>();
                tx.send((server.url(), stop_tx)).expect("report url");
                let _ = stop_rx.await;
                server.shutdown().await.expect("shutdown")
            })
        });
        let (url, stop) = rx.recv().expect("server started");
        TestServer {
            url,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn with_token(token: &str) -> TestServer {
        TestServer::start(ServeConfig {
            token: Secret::new(token),
            ..ServeConfig::default()
        })
    }

    /// Stops the server and returns its final counters.
    pub fn stop(mut self) -> StatsSnapshot {
        let _ = self.stop.take().expect("running").send(());
        self.thread
            .take()
            .expect("running")
            .join()
            .expect("server thread")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The wsbench binary, with logs quiet unless a test asks.
pub fn wsbench() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("wsbench").expect("binary built");
    cmd.env_remove("WSBENCH_TOKEN")
        .env_remove("RUST_LOG")
        .timeout(std::time::Duration::from_secs(60));
    cmd
}

/// A fresh temp dir and a path inside it that does not exist yet.
pub fn temp_path(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(name);
    (dir, path)
}

/// A loopback port with nothing listening on it.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// `wsbench serve` as a process of its own with these flags; returns it and its URL.
pub fn spawn_serve(args: &[&str], env: &[(&str, &str)]) -> (std::process::Child, String) {
    use std::io::BufRead as _;
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("wsbench"))
        .arg("serve")
        .args(["--port", "0"])
        .args(args)
        .env_remove("WSBENCH_TOKEN")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("serve starts");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("piped"))
        .read_line(&mut line)
        .expect("address line");
    let url = line
        .trim()
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .to_owned();
    assert!(url.starts_with("ws"), "serve printed {line:?}");
    (child, url)
}

/// Sends SIGTERM to a child and waits for it.
pub fn terminate(child: std::process::Child) -> std::process::Output {
    terminate_with(child, libc::SIGTERM)
}

/// Sends `signal` to a child and waits for it.
#[allow(dead_code, reason = "not every test file signals")]
pub fn terminate_with(child: std::process::Child, signal: i32) -> std::process::Output {
    // SAFETY: signals our own child process.
    unsafe { libc::kill(child.id() as i32, signal) };
    child.wait_with_output().expect("child exits")
}

/// A result (or stats) file, parsed.
pub fn read_json(path: &std::path::Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Process output as text.
pub fn out_str(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub type Ws = WebSocketStream<TcpStream>;

/// A raw TCP server on 127.0.0.1:0 handing each connection to `conn`.
pub async fn tcp_server<F, Fut>(conn: F) -> String
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(conn(stream));
        }
    });
    url
}

/// A WebSocket server that acknowledges hello, then runs `behave` on the connection.
pub async fn ws_server<F, Fut>(behave: F) -> String
where
    F: Fn(Ws) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tcp_server(move |tcp| {
        let behave = behave.clone();
        async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                return;
            };
            if let Some(Ok(Message::Text(_))) = ws.next().await {
                let _ = ws
                    .send(Message::text(r#"{"op":"hello_ack","ok":true}"#))
                    .await;
                behave(ws).await;
            }
        }
    })
    .await
}

/// The request id of a call_tool frame.
pub fn id_of(text: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(text).unwrap();
    v["request_id"].as_str().unwrap().to_owned()
}

pub fn ok(id: &str) -> Message {
    Message::text(format!(
        r#"{{"op":"call_tool_res","request_id":"{id}","outputs":[]}}"#
    ))
}
