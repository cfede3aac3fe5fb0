//! The reference server's MCP over Streamable HTTP, on the same port as its WebSocket: a
//! request that is not a WebSocket upgrade is served here. `initialize` opens a session
//! (`Mcp-Session-Id`); each session is an ordinary connection task (the same tools, faults and
//! counters as over WebSocket) reading the session's POSTed messages from a channel, and each
//! reply goes back to the POST that carried its request, as JSON, or as SSE when progress
//! notifications came first. An unknown or ended session is 404; `DELETE` ends one.
//!
//! The stateless revision (2026-07-28) has no session: a request naming it in its `_meta`
//! goes to its TCP connection's own connection task (opened by the first such request and
//! ended with the TCP connection, so a disconnect fault drops that connection), after its
//! `Mcp-Method`/`Mcp-Name` headers are checked against the body (-32020 when they differ).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Sink, Stream};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use subtle::ConstantTimeEq as _;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::protocol::mcp;

/// The longest a POST waits for its reply (a dropped call must not hold it forever).
const REPLY_LIMIT: Duration = Duration::from_secs(60);

/// The server's open HTTP sessions.
#[derive(Default)]
pub(crate) struct Sessions {
    by_id: Mutex<HashMap<String, Arc<Session>>>,
}

/// A POST waiting for its reply, and the notifications that came for it first.
type Waiting = (oneshot::Sender<Vec<String>>, Vec<String>);

/// One session: where its requests go, and who waits for which reply.
struct Session {
    inbound: mpsc::UnboundedSender<Message>,
    /// Request id (JSON text) -> the POST waiting for it, and the notifications that came
    /// for it before its reply.
    waiting: Mutex<HashMap<String, Waiting>>,
    ended: CancellationToken,
}

/// Whether a request head (as peeked) is a WebSocket upgrade.
pub(crate) async fn is_upgrade(stream: &TcpStream, limit: Duration) -> bool {
    let peek = async {
        let mut buf = vec![0u8; 8192];
        loop {
            let n = stream.peek(&mut buf).await.ok()?;
            let head = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
            if head.contains("\r\n\r\n") || n == buf.len() {
                return Some(head.contains("upgrade: websocket"));
            }
            if n == 0 {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    // A client that sends nothing is treated as a WebSocket one: the upgrade's own timeout
    // deals with it.
    tokio::time::timeout(limit, peek)
        .await
        .ok()
        .flatten()
        .unwrap_or(true)
}

/// The stateless connection task of one TCP connection, once a stateless request opened it.
#[derive(Default)]
struct Stateless {
    session: Mutex<Option<Arc<Session>>>,
    /// Cancelled when the task ends (a disconnect fault): the TCP connection is dropped.
    ended: CancellationToken,
}

/// A stream whose first bytes were read already (under TLS, to tell an HTTP request from a
/// WebSocket upgrade, where a socket cannot be peeked): they are read again first.
pub(crate) struct Prefixed<S> {
    prefix: Bytes,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.prefix.is_empty() {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        let n = buf.remaining().min(self.prefix.len());
        let head = self.prefix.split_to(n);
        buf.put_slice(&head);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Reads a request's head (at most 8 KiB, within `limit`): whether it is a WebSocket upgrade,
/// and the stream with what was read put back. `None` when the peer sent nothing usable.
pub(crate) async fn sniff<S: AsyncRead + Unpin>(
    mut stream: S,
    limit: Duration,
) -> Option<(bool, Prefixed<S>)> {
    use tokio::io::AsyncReadExt as _;
    let read = async {
        let mut head = Vec::with_capacity(1024);
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
            let n = stream.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Some(head)
    };
    let head = tokio::time::timeout(limit, read).await.ok().flatten()?;
    let upgrade = String::from_utf8_lossy(&head)
        .to_ascii_lowercase()
        .contains("upgrade: websocket");
    Some((
        upgrade,
        Prefixed {
            prefix: Bytes::from(head),
            inner: stream,
        },
    ))
}

/// Serves HTTP (1.1, or 2 when the client opens with its preface) on one connection until the
/// client closes it or the server stops.
pub(crate) async fn serve<S>(stream: S, shared: Arc<Shared>, cancel: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = hyper_util::rt::TokioIo::new(stream);
    let stateless = Arc::new(Stateless::default());
    let service = hyper::service::service_fn({
        let stateless = stateless.clone();
        move |req| {
            let (shared, cancel, stateless) = (shared.clone(), cancel.clone(), stateless.clone());
            async move { answer(req, &shared, &cancel, &stateless).await }
        }
    });
    let builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stateless.ended.cancelled() => {
            // The stateless task ended (a disconnect fault): the reply it already gave goes
            // out, then the connection closes, as a WebSocket's close follows its last frame.
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(1), conn).await;
        }
    }
    // The connection is gone: so is its stateless task.
    stateless.ended.cancel();
}

/// A request whose connection is to be dropped without an answer (its stateless task ended
/// before replying: to the client, a connection lost with the call on it).
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the connection's stateless task ended before replying")
    }
}

impl std::error::Error for Dropped {}

fn reply(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", "application/json".parse().expect("static"));
    r
}

async fn answer(
    req: Request<Incoming>,
    shared: &Arc<Shared>,
    cancel: &CancellationToken,
    stateless: &Stateless,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let token = shared.config.token.expose();
    if !token.is_empty() {
        let given = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
            shared.stats.hello(false);
            return Ok(reply(StatusCode::UNAUTHORIZED, String::new()));
        }
    }
    let session_id = req
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let session = session_id.as_deref().and_then(|id| {
        let map = shared.http.by_id.lock().unwrap_or_else(|e| e.into_inner());
        map.get(id).cloned()
    });
    match *req.method() {
        Method::DELETE => {
            if let (Some(id), Some(s)) = (&session_id, session) {
                s.ended.cancel();
                shared
                    .http
                    .by_id
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(id);
                return Ok(reply(StatusCode::OK, String::new()));
            }
            return Ok(reply(StatusCode::NOT_FOUND, String::new()));
        }
        Method::POST => {}
        _ => return Ok(reply(StatusCode::METHOD_NOT_ALLOWED, String::new())),
    }
    let headers = req.headers().clone();
    let limit = shared.config.max_message_size;
    let body = match Limited::new(req.into_body(), limit).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(reply(StatusCode::PAYLOAD_TOO_LARGE, String::new())),
    };
    let text = String::from_utf8_lossy(&body).into_owned();
    let parsed = match mcp::parse_request(&text) {
        Ok(r) => r,
        Err((code, message)) => {
            return Ok(reply(
                StatusCode::BAD_REQUEST,
                mcp::error_response(None, code, &message),
            ));
        }
    };
    if let Some(version) = parsed.meta_version.as_deref() {
        if version != mcp::STATELESS_VERSION {
            return Ok(reply(
                StatusCode::BAD_REQUEST,
                mcp::unsupported_version(parsed.id, version),
            ));
        }
        if let Err(why) = headers_match(&headers, &parsed) {
            shared.stats.error_code("HEADER_MISMATCH");
            let refusal = mcp::error_response(parsed.id, mcp::HEADER_MISMATCH, &why);
            return Ok(reply(StatusCode::BAD_REQUEST, refusal));
        }
        let session = stateless_session(stateless, shared, cancel);
        let id = parsed.id.map(str::to_owned);
        return deliver(&session, id, text, true).await;
    }
    if parsed.method == "initialize" {
        let Some(id) = parsed.id else {
            return Ok(reply(StatusCode::BAD_REQUEST, String::new()));
        };
        let answer = mcp::initialize_result(id, parsed.version.as_deref());
        let sid = open_session(shared, cancel);
        shared.stats.hello(true);
        let mut r = reply(StatusCode::OK, answer);
        if let Ok(v) = sid.parse() {
            r.headers_mut().insert("mcp-session-id", v);
        }
        return Ok(r);
    }
    let Some(session) = session else {
        // No such session (never opened, ended, or expired): the client must initialize again.
        let status = if session_id.is_some() {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::BAD_REQUEST
        };
        return Ok(reply(status, String::new()));
    };
    let id = parsed.id.map(str::to_owned);
    deliver(&session, id, text, false).await
}

/// Hands a message to its session's task and answers the POST with what comes back for it.
/// `stateless`: a session that ends before replying drops the connection (a stateless
/// request has no session to be told is gone); else the POST gets 404, the session's end.
async fn deliver(
    session: &Session,
    id: Option<String>,
    text: String,
    stateless: bool,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let Some(id) = id else {
        // A notification: handed to the session, nothing to wait for.
        let _ = session.inbound.send(Message::text(text));
        return Ok(reply(StatusCode::ACCEPTED, String::new()));
    };
    let (tx, rx) = oneshot::channel();
    session
        .waiting
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id.clone(), (tx, Vec::new()));
    if session.inbound.send(Message::text(text)).is_err() {
        return if stateless {
            Err(Dropped)
        } else {
            Ok(reply(StatusCode::NOT_FOUND, String::new()))
        };
    }
    let messages = tokio::select! {
        // A reply routed just before the session ended still goes out.
        biased;
        m = rx => m.ok(),
        _ = session.ended.cancelled() => None,
        _ = tokio::time::sleep(REPLY_LIMIT) => None,
    };
    match messages {
        Some(mut m) if m.len() == 1 => Ok(reply(StatusCode::OK, m.remove(0))),
        Some(m) => {
            let mut sse = String::new();
            for msg in m {
                sse.push_str("event: message\ndata: ");
                sse.push_str(&msg);
                sse.push_str("\n\n");
            }
            let mut r = reply(StatusCode::OK, sse);
            r.headers_mut()
                .insert("content-type", "text/event-stream".parse().expect("static"));
            Ok(r)
        }
        // The session ended (a disconnect fault, or the server stopping) before the reply.
        None => {
            session
                .waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
            if stateless {
                Err(Dropped)
            } else {
                Ok(reply(StatusCode::NOT_FOUND, String::new()))
            }
        }
    }
}

/// The stateless revision's standard headers must say what the body says: `Mcp-Method` its
/// method, and for `tools/call` `Mcp-Name` the tool's name.
fn headers_match(headers: &hyper::HeaderMap, req: &mcp::Request<'_>) -> Result<(), String> {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    match header("mcp-method") {
        Some(m) if m == req.method => {}
        Some(m) => return Err(format!("Mcp-Method {m} does not match {}", req.method)),
        None => return Err("no Mcp-Method header".into()),
    }
    if req.method == "tools/call" {
        let name = req.name.as_deref().unwrap_or("");
        match header("mcp-name") {
            Some(n) if n == name => {}
            Some(n) => return Err(format!("Mcp-Name {n} does not match {name}")),
            None => return Err("no Mcp-Name header".into()),
        }
    }
    Ok(())
}

/// This TCP connection's stateless task, started by its first stateless request.
fn stateless_session(
    stateless: &Stateless,
    shared: &Arc<Shared>,
    cancel: &CancellationToken,
) -> Arc<Session> {
    let mut slot = stateless.session.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = slot.as_ref() {
        return s.clone();
    }
    shared.stats.hello(true);
    let id = super::handler::random_session_id();
    let session = start(shared, cancel, &id, stateless.ended.clone(), true);
    *slot = Some(session.clone());
    session
}

/// Starts a session's connection task; its id.
fn open_session(shared: &Arc<Shared>, cancel: &CancellationToken) -> String {
    let id = super::handler::random_session_id();
    let session = start(shared, cancel, &id, CancellationToken::new(), false);
    shared
        .http
        .by_id
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id.clone(), session);
    id
}

/// A connection task reading a channel of POSTed messages; `ended` is cancelled when it ends.
fn start(
    shared: &Arc<Shared>,
    cancel: &CancellationToken,
    id: &str,
    ended: CancellationToken,
    stateless: bool,
) -> Arc<Session> {
    let (inbound, rx) = mpsc::unbounded_channel();
    let session = Arc::new(Session {
        inbound,
        waiting: Mutex::default(),
        ended,
    });
    let io = SessionIo {
        rx,
        session: session.clone(),
    };
    let (shared, cancel, sid) = (shared.clone(), cancel.clone(), id.to_owned());
    let task_session = session.clone();
    tokio::spawn(async move {
        shared.stats.connection_opened();
        super::handler::serve_session(Box::new(io), &shared, cancel, &sid, stateless).await;
        shared.stats.connection_closed();
        task_session.ended.cancel();
        shared
            .http
            .by_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&sid);
    });
    session
}

/// A session's side of the channel: POSTed messages in, replies routed to their POSTs.
struct SessionIo {
    rx: mpsc::UnboundedReceiver<Message>,
    session: Arc<Session>,
}

impl SessionIo {
    /// Hands a reply to the POST waiting for it; a notification about a request waits with it.
    fn route(&self, text: &str) {
        let c = mcp::classify(text);
        // The id as the request wrote it (a number stays a number), so it finds its POST.
        let Some(id) = mcp::raw_id(text).map(str::to_owned) else {
            return; // nothing to attach it to over HTTP
        };
        let mut waiting = self
            .session
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // The hello's answer (`server/discover`'s, in the stateless revision) ends its POST too.
        if c.kind.is_final() || matches!(c.kind, crate::protocol::Kind::HelloAck { .. }) {
            if let Some((tx, mut before)) = waiting.remove(&id) {
                before.push(text.to_owned());
                let _ = tx.send(before);
            }
        } else if let Some((_, before)) = waiting.get_mut(&id) {
            before.push(text.to_owned());
        }
    }
}

impl Stream for SessionIo {
    type Item = Result<Message, Error>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.session.ended.is_cancelled() {
            return Poll::Ready(None);
        }
        self.rx.poll_recv(cx).map(|m| m.map(Ok))
    }
}

impl Sink<Message> for SessionIo {
    type Error = Error;
    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }
    fn start_send(self: Pin<&mut Self>, msg: Message) -> Result<(), Error> {
        match msg {
            Message::Text(t) => self.route(t.as_str()),
            Message::Close(_) => self.session.ended.cancel(),
            _ => {}
        }
        Ok(())
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.session.ended.cancel();
        Poll::Ready(Ok(()))
    }
}
