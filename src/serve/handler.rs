//! One reference-server connection: WebSocket upgrade, the hello handshake, then answering
//! frames per PROTOCOL.md. Replies are queued as they are produced and flushed once the socket
//! has no more frames ready, so a pipelining client gets batched writes. Writing never stops
//! reading: while the client is slow to take replies the connection keeps reading its frames,
//! up to a bounded backlog; past that it stops reading (TCP backpressure) until the client reads.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{FutureExt as _, StreamExt as _};
use subtle::ConstantTimeEq as _;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;

mod hello;
mod inject;
mod mcp;
mod replies;
mod tools;

use super::Shared;
use super::faults::ConnFaults;
use super::stats::{Fault, Reply};
use crate::net::tls::Stream;
use crate::net::upgrade::{self, HeadOnly};
use crate::protocol::{self, Dialect};
use crate::wsio::{BoxIo, Duplex, Io};
use replies::{conn_error_frame, list_tools};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http;

/// Reply bytes a connection may have queued for a client that is not reading before it stops
/// reading that client's frames.
const MAX_BACKLOG: usize = 32 << 20;
/// The longest a close handshake may take, whatever the peer does.
const CLOSE_LIMIT: Duration = Duration::from_secs(1);

/// Longest `sleep` the server agrees to, so a hostile client cannot park tasks forever.
const MAX_SLEEP_MS: u64 = 60_000;

/// Frames on their way out for one event: each is counted under its outcome once written.
struct Outgoing {
    frames: Vec<(Utf8Bytes, Counted)>,
}

enum Counted {
    /// Not a request outcome (hello_ack, list_tools_res, connection-level error...).
    Nothing,
    Reply(Reply<'static>),
    ReplyError(String),
    /// An injected extra frame (ack, progress, chunk, malformed, duplicate).
    Injected(Fault),
}

impl Outgoing {
    fn plain(text: String) -> Self {
        Outgoing::one(text.into(), Counted::Nothing)
    }

    fn one(text: Utf8Bytes, counted: Counted) -> Self {
        Outgoing {
            frames: vec![(text, counted)],
        }
    }

    fn is_replay(&self) -> bool {
        matches!(self.frames.as_slice(), [(_, Counted::Reply(Reply::Replay))])
    }
}

pub(crate) async fn handle(stream: TcpStream, shared: Arc<Shared>, cancel: CancellationToken) {
    let _ = stream.set_nodelay(true);
    let limit = shared.config.hello_timeout;
    let mcp = shared.config.protocol.is_mcp();
    // MCP also answers Streamable HTTP on this port: anything but a WebSocket upgrade.
    if mcp && shared.tls.is_none() && !super::http::is_upgrade(&stream, limit).await {
        super::http::serve(stream, shared, cancel).await;
        return;
    }
    let stream = match &shared.tls {
        // TLS and the upgrade share the hello timeout: a peer that stalls before hello is cut
        // off.
        Some(acceptor) => match tokio::time::timeout(limit, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => Stream::Server(Box::new(tls)),
            _ => return,
        },
        None => Stream::Plain(stream),
    };
    let ws: BoxIo = if mcp && shared.tls.is_some() {
        // https://: the request head is read (TLS cannot be peeked) and put back.
        match super::http::sniff(stream, limit).await {
            Some((true, stream)) => match accept(stream, &shared).await {
                Some(ws) => Box::new(ws),
                None => return,
            },
            Some((false, stream)) => return super::http::serve(stream, shared, cancel).await,
            None => return,
        }
    } else {
        match accept(stream, &shared).await {
            Some(ws) => Box::new(ws),
            None => return,
        }
    };
    shared.stats.connection_opened();
    if let Some(max) = shared.config.max_conns
        && shared.stats.active() > max
    {
        shared.stats.refused();
        close(
            &mut Duplex::new(ws),
            CloseCode::Policy,
            "too many connections",
        )
        .await;
        shared.stats.connection_closed();
        return;
    }
    session(ws, &shared, cancel).await;
    shared.stats.connection_closed();
}

/// The WebSocket upgrade, within the hello timeout.
async fn accept<S>(stream: S, shared: &Arc<Shared>) -> Option<tokio_tungstenite::WebSocketStream<S>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let ws_config = protocol::ws_config(shared.config.max_message_size, shared.stats.active());
    let gate = shared.clone();
    #[allow(
        clippy::result_large_err,
        reason = "the signature is tungstenite's Callback trait"
    )]
    let callback = move |req: &Request, resp: Response| upgrade(req, resp, &gate);
    let accept = tokio_tungstenite::accept_hdr_async_with_config(
        HeadOnly::new(stream),
        callback,
        Some(ws_config),
    );
    let ws = tokio::time::timeout(shared.config.hello_timeout, accept)
        .await
        .ok()?
        .ok()?;
    // Rebuilt so that the connection keeps the configured read buffer, not the handshake's.
    Some(upgrade::rebuffer(ws, Role::Server, ws_config).await)
}

/// A session whose handshake happened elsewhere (an HTTP `initialize`, or the first stateless
/// request on an HTTP connection): answering until it ends.
pub(crate) async fn serve_session(
    io: BoxIo,
    shared: &Arc<Shared>,
    cancel: CancellationToken,
    session: &str,
    stateless: bool,
) {
    let mut conn = Connection::new(Duplex::new(io), shared.clone(), session);
    conn.stateless = stateless;
    conn.serve(cancel).await;
}

/// One session over an open transport (a WebSocket after its upgrade, or the server's own
/// stdin and stdout): the dialect's handshake, then answering until it ends.
pub(crate) async fn session(io: BoxIo, shared: &Arc<Shared>, cancel: CancellationToken) {
    let mut ws: Duplex<BoxIo> = Duplex::new(io);
    let opened = match shared.config.protocol {
        Dialect::ToolCall => hello::handshake(&mut ws, shared)
            .await
            .map(mcp::Opened::Session),
        Dialect::Mcp(_) => mcp::handshake(&mut ws, shared).await,
    };
    let conn = match opened {
        None => return,
        Some(mcp::Opened::Session(session)) => Connection::new(ws, shared.clone(), &session),
        Some(mcp::Opened::Stateless(session, first)) => {
            let mut conn = Connection::new(ws, shared.clone(), &session);
            conn.stateless = true;
            conn.first = Some(first);
            conn
        }
    };
    conn.serve(cancel).await;
}

/// The upgrade: agrees to the first subprotocol a client asks for (a tungstenite client rejects
/// an upgrade that ignores the one it requested), and for MCP checks the token in
/// `Authorization: Bearer` (401 without the right one, as an HTTP server would answer).
#[allow(
    clippy::result_large_err,
    reason = "the signature is tungstenite's Callback trait"
)]
fn upgrade(req: &Request, mut resp: Response, shared: &Shared) -> Result<Response, ErrorResponse> {
    if shared.config.protocol.is_mcp() && !shared.config.token.expose().is_empty() {
        let given = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !bool::from(
            given
                .as_bytes()
                .ct_eq(shared.config.token.expose().as_bytes()),
        ) {
            shared.stats.hello(false);
            let mut refused = ErrorResponse::new(Some("unauthorized".into()));
            *refused.status_mut() = http::StatusCode::UNAUTHORIZED;
            return Err(refused);
        }
    }
    let first = req
        .headers()
        .get(http::header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|p| http::HeaderValue::from_str(p.trim()).ok());
    if let Some(p) = first {
        resp.headers_mut()
            .insert(http::header::SEC_WEBSOCKET_PROTOCOL, p);
    }
    Ok(resp)
}

/// Sends a close frame and waits briefly for the peer's, so the code reaches the client.
async fn close(ws: &mut Duplex<BoxIo>, code: CloseCode, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: reason.to_owned().into(),
    };
    ws.close(Some(frame), CLOSE_LIMIT, |_| {}).await;
}

/// Queues a frame and waits (at most the hello timeout) for the socket to take it.
async fn send_bounded(ws: &mut Duplex<BoxIo>, msg: Message, limit: Duration) -> bool {
    if ws.queue(msg).is_err() {
        return false;
    }
    if ws.backlog() == 0 {
        return true;
    }
    // With reading off, the only way this resolves is the backlog emptying or failing.
    let flushed = async { matches!(ws.next_io(false).await, Io::Flushed) };
    tokio::time::timeout(limit, flushed).await.unwrap_or(false)
}

pub(crate) fn random_session_id() -> String {
    use std::hash::{BuildHasher as _, RandomState};
    format!(
        "srv-{:016x}",
        RandomState::new().hash_one(std::time::SystemTime::now())
    )
}

struct Connection {
    ws: Duplex<BoxIo>,
    shared: Arc<Shared>,
    /// Replies of delayed calls (`sleep`) come back through here.
    delayed_tx: mpsc::UnboundedSender<Outgoing>,
    delayed_rx: mpsc::UnboundedReceiver<Outgoing>,
    unflushed: u64,
    faults: ConnFaults,
    /// Set by a call's faults: close with 1011, or freeze, once the current batch is out.
    disconnect: bool,
    frozen: bool,
    /// MCP 2026-07-28: every request must name that revision; there was no `initialize`.
    stateless: bool,
    /// A message read by the handshake that is to be answered like the ones after it.
    first: Option<Message>,
    /// `--mix-sessions-rate`: the current echo call's arguments, for the server-wide swap.
    echo_args: Option<String>,
    /// `--session-memory`: this session's state, or `Err` when `--memory-limit` left none.
    state: Result<Option<super::memory::SessionState>, ()>,
    /// `--in-order`: when the last delayed reply is due; the next call starts after it.
    last_due: Option<Instant>,
}

impl Connection {
    fn new(ws: Duplex<BoxIo>, shared: Arc<Shared>, session: &str) -> Self {
        let (delayed_tx, delayed_rx) = mpsc::unbounded_channel();
        let mut faults = shared.faults.connection();
        faults.on_session(&shared.faults.config, session);
        Connection {
            state: super::memory::take(&shared),
            faults,
            disconnect: false,
            frozen: false,
            stateless: false,
            first: None,
            echo_args: None,
            last_due: None,
            ws,
            shared,
            delayed_tx,
            delayed_rx,
            unflushed: 0,
        }
    }

    async fn serve(mut self, cancel: CancellationToken) {
        let faults = &self.shared.faults;
        let down_at = faults
            .down_window()
            .map(|(start, _)| start)
            .filter(|s| *s > Instant::now());
        let down = async move {
            match down_at {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(down);
        let ping_every = faults.config.ping_interval;
        let mut ping = tokio::time::interval(ping_every.unwrap_or(Duration::from_secs(3600)));
        ping.reset();
        if let Some(first) = self.first.take()
            && (!self.on_message(first) || self.flush().is_err())
        {
            return;
        }
        loop {
            if let Some(resume) = self.shared.faults.paused_until(Instant::now()) {
                // An injected stall: read nothing, write nothing, until it ends.
                let _ = self.flush();
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = tokio::time::sleep_until(resume.into()) => {}
                }
            }
            // Reading goes on while replies wait for the client, up to a bounded backlog.
            let read = self.ws.backlog_bytes() < MAX_BACKLOG;
            let alive = tokio::select! {
                biased;
                _ = cancel.cancelled() => {
                    let _ = self.flush();
                    close(&mut self.ws, CloseCode::Away, "server shutting down").await;
                    return;
                }
                _ = &mut down => {
                    self.shared.stats.injected(Fault::DownClose);
                    let _ = self.flush();
                    close(&mut self.ws, CloseCode::Restart, "outage").await;
                    return;
                }
                _ = ping.tick(), if ping_every.is_some() => {
                    self.shared.stats.injected(Fault::PingSent);
                    self.unflushed += 1;
                    self.ws.queue(Message::Ping(Vec::new().into())).is_ok()
                }
                Some(out) = self.delayed_rx.recv() => self.write(out),
                io = self.ws.next_io(read) => match io {
                    Io::Frame(Some(Ok(msg))) => self.on_message(msg),
                    Io::Frame(_) | Io::WriteFailed(_) => false,
                    Io::Flushed => true,
                },
            };
            if !alive || !self.drain_ready() {
                // The client closed (or the stream ended): what is queued goes out first, the
                // answer to its close among it (tungstenite queues that answer and sends it
                // with the next write), so the client's close handshake completes.
                let _ = self.flush();
                let _ = self.ws.try_flush_all();
                return;
            }
            if self.flush().is_err() {
                return;
            }
            if self.disconnect {
                self.shared.stats.injected(Fault::ForcedClose);
                close(&mut self.ws, CloseCode::Error, "disconnect-after").await;
                return;
            }
            if self.frozen {
                // A hung server: the socket stays open, nothing is read or written again.
                self.shared.stats.injected(Fault::Frozen);
                cancel.cancelled().await;
                return;
            }
        }
    }

    /// Handles whatever is already readable without waiting, so one flush covers them all.
    fn drain_ready(&mut self) -> bool {
        while let Ok(out) = self.delayed_rx.try_recv() {
            if !self.write(out) {
                return false;
            }
        }
        // At most a batch per turn: a flooding client must not starve shutdown or delayed replies.
        for _ in 0..256 {
            if self.disconnect || self.frozen || self.ws.backlog_bytes() >= MAX_BACKLOG {
                break;
            }
            match self.ws.ws.next().now_or_never() {
                Some(Some(Ok(msg))) => {
                    if !self.on_message(msg) {
                        return false;
                    }
                }
                Some(_) => return false,
                None => return true,
            }
        }
        true
    }

    /// Pushes queued replies out as far as the socket takes them now, without waiting: the
    /// rest goes out while the loop reads.
    fn flush(&mut self) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        if self.unflushed > 0 {
            self.shared.stats.frames_out(self.unflushed);
            self.unflushed = 0;
        }
        self.ws.try_flush().map(|_| ())
    }

    /// Queues frames; each outcome is counted once the socket has accepted its frame.
    fn write(&mut self, out: Outgoing) -> bool {
        for (text, counted) in out.frames {
            if self.ws.queue(Message::Text(text)).is_err() {
                return false;
            }
            self.unflushed += 1;
            let stats = &self.shared.stats;
            match counted {
                Counted::Nothing => {}
                Counted::Reply(r) => stats.reply(r),
                Counted::ReplyError(code) => stats.reply(Reply::Error(&code)),
                Counted::Injected(f) => stats.injected(f),
            }
        }
        true
    }

    fn on_message(&mut self, msg: Message) -> bool {
        match msg {
            Message::Text(text) => {
                self.shared.stats.frame_in();
                match self.answer(text.as_str()) {
                    Some(out) => self.write(out),
                    None => true,
                }
            }
            Message::Binary(_) => {
                self.shared.stats.frame_in();
                self.shared.stats.error_code("INVALID_REQUEST");
                let msg = "binary frames are not supported";
                let frame = protocol::error_frame(None, "INVALID_REQUEST", msg);
                self.write(Outgoing::plain(frame))
            }
            Message::Close(_) => false,
            Message::Pong(_) => {
                self.shared.stats.injected(Fault::PongReceived);
                true
            }
            _ => true,
        }
    }

    /// The reply to one text frame, or `None` when it comes later (delayed call).
    fn answer(&mut self, text: &str) -> Option<Outgoing> {
        if self.shared.config.protocol.is_mcp() {
            return self.answer_mcp(text);
        }
        let frame = match protocol::parse_inbound(text) {
            Ok(frame) => frame,
            Err(e) => {
                return Some(
                    self.connection_error("VALIDATION_ERROR", &format!("Invalid JSON: {e}")),
                );
            }
        };
        match frame.op.as_deref() {
            Some("call_tool") => {
                let name = frame.name.as_deref().unwrap_or("");
                let args = frame.arguments.map(|a| a.get()).unwrap_or("{}");
                let out = self.call_tool(frame.request_id.as_deref(), name, args)?;
                let out = self.inject(out, frame.request_id.as_deref().unwrap_or(""))?;
                self.maybe_delay(out, name)
            }
            Some("hello") => Some(Outgoing::plain(
                r#"{"op":"hello_ack","ok":true,"note":"already authenticated"}"#.to_owned(),
            )),
            Some("list_tools") => Some(Outgoing::plain(list_tools(
                &self.shared.faults.config.tool_delays,
            ))),
            Some("health") => Some(Outgoing::plain(
                serde_json::json!({"op": "health_res", "ok": true, "active": self.shared.stats.active()})
                    .to_string(),
            )),
            Some("stats") => {
                let mut v = serde_json::to_value(self.shared.stats.snapshot()).unwrap_or_default();
                v["op"] = "stats_res".into();
                Some(Outgoing::plain(v.to_string()))
            }
            Some(op) => Some(self.connection_error("INVALID_REQUEST", &format!("Unknown op: {op}"))),
            None => Some(self.connection_error("INVALID_REQUEST", "missing op")),
        }
    }

    fn connection_error(&self, code: &str, message: &str) -> Outgoing {
        self.shared.stats.error_code(code);
        Outgoing::plain(conn_error_frame(self.shared.config.protocol, code, message))
    }
}
