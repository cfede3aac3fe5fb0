//! The reference server's MCP over Streamable HTTP, on the same port as its WebSocket: a
//! request that is not a WebSocket upgrade is served here. `initialize` opens a session
//! (`Mcp-Session-Id`); each session is an ordinary connection task (the same tools, faults and
//! counters as over WebSocket) reading the session's POSTed messages from a channel, and each
//! reply goes back to the POST that carried its request, as JSON, or as SSE when progress
//! notifications came first. An unknown or ended session is 404; `DELETE` ends one.

use std::collections::HashMap;
use std::convert::Infallible;
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

/// Serves HTTP/1.1 on one TCP connection until the client closes it or the server stops.
pub(crate) async fn serve(stream: TcpStream, shared: Arc<Shared>, cancel: CancellationToken) {
    let io = hyper_util::rt::TokioIo::new(stream);
    let service = hyper::service::service_fn(move |req| {
        let (shared, cancel) = (shared.clone(), cancel.clone());
        async move { Ok::<_, Infallible>(answer(req, &shared, &cancel).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
    let _ = conn.await;
}

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
) -> Response<Full<Bytes>> {
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
            return reply(StatusCode::UNAUTHORIZED, String::new());
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
                return reply(StatusCode::OK, String::new());
            }
            return reply(StatusCode::NOT_FOUND, String::new());
        }
        Method::POST => {}
        _ => return reply(StatusCode::METHOD_NOT_ALLOWED, String::new()),
    }
    let limit = shared.config.max_message_size;
    let body = match Limited::new(req.into_body(), limit).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return reply(StatusCode::PAYLOAD_TOO_LARGE, String::new()),
    };
    let text = String::from_utf8_lossy(&body).into_owned();
    let parsed = match mcp::parse_request(&text) {
        Ok(r) => r,
        Err((code, message)) => {
            return reply(
                StatusCode::BAD_REQUEST,
                mcp::error_response(None, code, &message),
            );
        }
    };
    if parsed.method == "initialize" {
        let Some(id) = parsed.id else {
            return reply(StatusCode::BAD_REQUEST, String::new());
        };
        let answer = mcp::initialize_result(id, parsed.version.as_deref());
        let sid = open_session(shared, cancel);
        shared.stats.hello(true);
        let mut r = reply(StatusCode::OK, answer);
        if let Ok(v) = sid.parse() {
            r.headers_mut().insert("mcp-session-id", v);
        }
        return r;
    }
    let Some(session) = session else {
        // No such session (never opened, ended, or expired): the client must initialize again.
        let status = if session_id.is_some() {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::BAD_REQUEST
        };
        return reply(status, String::new());
    };
    let Some(id) = parsed.id.map(str::to_owned) else {
        // A notification: handed to the session, nothing to wait for.
        let _ = session.inbound.send(Message::text(text));
        return reply(StatusCode::ACCEPTED, String::new());
    };
    let (tx, rx) = oneshot::channel();
    session
        .waiting
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id.clone(), (tx, Vec::new()));
    if session.inbound.send(Message::text(text)).is_err() {
        return reply(StatusCode::NOT_FOUND, String::new());
    }
    let messages = tokio::select! {
        // A reply routed just before the session ended still goes out.
        biased;
        m = rx => m.ok(),
        _ = session.ended.cancelled() => None,
        _ = tokio::time::sleep(REPLY_LIMIT) => None,
    };
    match messages {
        Some(mut m) if m.len() == 1 => reply(StatusCode::OK, m.remove(0)),
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
            r
        }
        // The session ended (a disconnect fault, or the server stopping) before the reply.
        None => {
            session
                .waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
            reply(StatusCode::NOT_FOUND, String::new())
        }
    }
}

/// Starts a session's connection task; its id.
fn open_session(shared: &Arc<Shared>, cancel: &CancellationToken) -> String {
    let id = super::handler::random_session_id();
    let (inbound, rx) = mpsc::unbounded_channel();
    let session = Arc::new(Session {
        inbound,
        waiting: Mutex::default(),
        ended: CancellationToken::new(),
    });
    shared
        .http
        .by_id
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id.clone(), session.clone());
    let io = SessionIo {
        rx,
        session: session.clone(),
    };
    let (shared, cancel, sid) = (shared.clone(), cancel.clone(), id.clone());
    tokio::spawn(async move {
        shared.stats.connection_opened();
        super::handler::serve_session(Box::new(io), &shared, cancel, &sid).await;
        shared.stats.connection_closed();
        session.ended.cancel();
        shared
            .http
            .by_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&sid);
    });
    id
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
        let Some(id) = c.request_id.map(|i| format!("\"{i}\"")) else {
            return; // nothing to attach it to over HTTP
        };
        let mut waiting = self
            .session
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if c.kind.is_final() {
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
