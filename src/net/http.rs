//! MCP's Streamable HTTP transport as a message stream: every message the client sends is a
//! POST to the endpoint (`Accept: application/json, text/event-stream`), and every JSON-RPC
//! message in a reply (a JSON body, or each `data:` of an SSE body) comes out of the stream, so
//! the connection code drives HTTP as it drives a WebSocket. The session id from the
//! `initialize` reply travels on every later request, with `MCP-Protocol-Version`; closing sends
//! `DELETE`. In the stateless revision there is no session: every request carries the
//! version from the first one on, and the `Mcp-Method`/`Mcp-Name` headers its body implies. An HTTP error answers the call it was for (a JSON-RPC error with code
//! `http_<status>`); 404 on a session means it expired: the stream ends, and the session is set
//! up again like a reconnect.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::{Sink, Stream, StreamExt as _};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::{Error, Message};

/// One request's exchange: the messages its reply holds.
type Exchange = BoxFuture<'static, Vec<Result<Message, Error>>>;

/// What one session's requests share.
#[derive(Debug, Default)]
struct Session {
    /// `Mcp-Session-Id` from the initialize reply.
    id: Option<String>,
    /// `MCP-Protocol-Version` once the server chose one.
    version: Option<String>,
    /// The stateless revision: each request's `Mcp-Method` and `Mcp-Name` headers.
    stateless: bool,
}

/// How a session reaches the server.
#[derive(Clone)]
pub struct Transport {
    /// https://: TLS with this client configuration, verifying this name.
    pub tls: Option<(Arc<rustls::ClientConfig>, String)>,
    /// `--http2`: every request a stream of one multiplexed connection.
    pub http2: bool,
}

/// When a session's first connection was made (TCP), secured (TLS) and first answered (the
/// first response's headers): the setup phases of a transport that connects lazily, on its
/// first request. Tokio's clock, like the engine's.
/// Each is set once (after that, checking costs one atomic load per request).
#[derive(Debug, Default)]
pub struct FirstStamps {
    pub tcp: OnceLock<std::time::Instant>,
    pub tls: OnceLock<std::time::Instant>,
    pub headers: OnceLock<std::time::Instant>,
}

/// Sets one stamp the first time only.
fn stamp(at: &OnceLock<std::time::Instant>) {
    if at.get().is_none() {
        let _ = at.set(tokio::time::Instant::now().into_std());
    }
}

/// A connection's request handle.
enum Sender {
    H1(SendRequest<Full<Bytes>>),
    H2(H2Sender),
}

impl Sender {
    async fn send(
        &mut self,
        req: Request<Full<Bytes>>,
    ) -> hyper::Result<hyper::Response<hyper::body::Incoming>> {
        match self {
            Sender::H1(s) => s.send_request(req).await,
            Sender::H2(s) => s.send_request(req).await,
        }
    }
}

/// A session's connections. HTTP/1.1: keep-alive connections, idle ones reused, a request
/// that finds none opens one (so there are as many as requests were ever in flight at once).
/// HTTP/2: one connection, opened by the first request, every request a stream on it. Each
/// is driven by a task of its own; nothing shared between sessions.
#[derive(Clone)]
struct Conns {
    /// `host:port` to connect to.
    addr: String,
    transport: Transport,
    idle: Arc<Mutex<Vec<SendRequest<Full<Bytes>>>>>,
    /// HTTP/2: the session's connection, once open (a lock held while it opens, so that the
    /// first requests in flight share one).
    h2: Arc<tokio::sync::Mutex<Option<H2Sender>>>,
    first: Arc<FirstStamps>,
}

impl Conns {
    /// TCP, and TLS for https:// (its ALPN naming the HTTP version to speak).
    async fn dial(&self) -> Result<TokioIo<crate::net::tls::Stream>, Error> {
        let tcp = tokio::net::TcpStream::connect(&self.addr)
            .await
            .map_err(Error::Io)?;
        let _ = tcp.set_nodelay(true);
        stamp(&self.first.tcp);
        let stream = match &self.transport.tls {
            None => crate::net::tls::Stream::Plain(tcp),
            Some((config, host)) => {
                let tls = crate::net::tls::connect(config.clone(), host, tcp)
                    .await
                    .map_err(Error::Io)?;
                stamp(&self.first.tls);
                tls
            }
        };
        Ok(TokioIo::new(stream))
    }

    async fn take(&self) -> Result<Sender, Error> {
        if self.transport.http2 {
            let mut h2 = self.h2.lock().await;
            if let Some(s) = h2.as_ref().filter(|s| !s.is_closed()) {
                return Ok(Sender::H2(s.clone()));
            }
            let io = self.dial().await?;
            let (sender, conn) =
                hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                    .await
                    .map_err(io_err)?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            *h2 = Some(sender.clone());
            return Ok(Sender::H2(sender));
        }
        loop {
            let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            match idle {
                // Given back as soon as its reply was read, it may still be finishing that
                // exchange: wait for it rather than open another connection.
                Some(mut s) if !s.is_closed() => {
                    if s.ready().await.is_ok() {
                        return Ok(Sender::H1(s));
                    }
                }
                Some(_) => continue, // closed by the server: drop it
                None => break,
            }
        }
        let io = self.dial().await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(io_err)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Sender::H1(sender))
    }

    fn give_back(&self, sender: Sender) {
        // An HTTP/2 handle is a clone of the session's one: nothing to give back.
        if let Sender::H1(sender) = sender
            && !sender.is_closed()
        {
            self.idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(sender);
        }
    }
}

type H2Sender = hyper::client::conn::http2::SendRequest<Full<Bytes>>;

/// One MCP session over Streamable HTTP.
pub struct HttpIo {
    conns: Conns,
    /// The request target (path and query) sent to the endpoint.
    url: hyper::Uri,
    /// Every request's headers but the session's, parsed once.
    headers: hyper::HeaderMap,
    session: Arc<Mutex<Session>>,
    /// Requests on their way, each yielding its reply's messages.
    inflight: FuturesUnordered<Exchange>,
    /// Messages of finished requests not yet taken.
    ready: VecDeque<Result<Message, Error>>,
    /// Messages queued since the last flush: each becomes one POST when flushed.
    queued: VecDeque<String>,
    closed: bool,
}

impl HttpIo {
    /// A session against `url`, with these extra headers (the token's `Authorization` among
    /// them). Nothing is sent until the first message (the `initialize`).
    /// `stateless` names the revision every request carries when there is no `initialize`.
    pub fn new(
        url: &str,
        headers: Vec<(String, String)>,
        conns: usize,
        stateless: Option<&str>,
        mut transport: Transport,
    ) -> Result<HttpIo, String> {
        let full: hyper::Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
        let authority = full
            .authority()
            .ok_or("the URL names no host")?
            .as_str()
            .to_owned();
        let addr = match (full.port(), transport.tls.is_some()) {
            (Some(_), _) => authority.clone(),
            (None, true) => format!("{authority}:443"),
            (None, false) => format!("{authority}:80"),
        };
        // HTTP/1.1 requests name the path (and the host in a header); HTTP/2 ones the whole URL,
        // which becomes their :scheme and :authority.
        let url: hyper::Uri = if transport.http2 {
            full.clone()
        } else {
            full.path_and_query()
                .map_or("/", |p| p.as_str())
                .parse()
                .map_err(|e| format!("not a URL: {e}"))?
        };
        if let Some((config, _)) = &mut transport.tls {
            // ALPN says which HTTP the connection speaks (a server may offer both).
            let mut c = (**config).clone();
            c.alpn_protocols = vec![if transport.http2 {
                b"h2".to_vec()
            } else {
                b"http/1.1".to_vec()
            }];
            *config = Arc::new(c);
        }
        let mut map = hyper::HeaderMap::new();
        if !transport.http2 {
            map.insert(
                "host",
                hyper::header::HeaderValue::from_str(&authority).map_err(|e| e.to_string())?,
            );
        }
        map.insert(
            "content-type",
            hyper::header::HeaderValue::from_static("application/json"),
        );
        map.insert(
            "accept",
            hyper::header::HeaderValue::from_static("application/json, text/event-stream"),
        );
        for (k, v) in headers {
            let name = hyper::header::HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| format!("header '{k}': {e}"))?;
            let mut value = hyper::header::HeaderValue::from_str(&v)
                .map_err(|e| format!("header '{k}': {e}"))?;
            value.set_sensitive(name == hyper::header::AUTHORIZATION);
            map.append(name, value);
        }
        Ok(HttpIo {
            conns: Conns {
                addr,
                transport,
                idle: Arc::new(Mutex::new(Vec::with_capacity(conns))),
                h2: Arc::default(),
                first: Arc::default(),
            },
            url,
            headers: map,
            session: Arc::new(Mutex::new(Session {
                id: None,
                version: stateless.map(str::to_owned),
                stateless: stateless.is_some(),
            })),
            inflight: FuturesUnordered::new(),
            ready: VecDeque::new(),
            queued: VecDeque::new(),
            closed: false,
        })
    }

    /// The setup phases of the session's first connection, filled in as its first request
    /// goes (read them once the hello is answered).
    pub fn first_stamps(&self) -> Arc<FirstStamps> {
        self.conns.first.clone()
    }

    /// Sends one message as a POST; its reply's messages come out of the stream.
    fn post(&mut self, body: String) {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(self.url.clone());
        if let Some(h) = req.headers_mut() {
            h.clone_from(&self.headers);
        }
        {
            let s = self.session.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(id) = &s.id {
                req = req.header("mcp-session-id", id);
            }
            if let Some(v) = &s.version {
                req = req.header("mcp-protocol-version", v);
            }
            if s.stateless
                && let Ok(head) = serde_json::from_str::<Head<'_>>(&body)
            {
                if let Some(method) = head.method {
                    req = req.header("mcp-method", method.as_ref());
                }
                if let Some(name) = head.params.and_then(|p| p.name) {
                    req = req.header("mcp-name", name.as_ref());
                }
            }
        }
        // One buffer for the request and for reading the message back on an error reply.
        let body = Bytes::from(body);
        let request = req.body(Full::new(body.clone()));
        let (conns, session) = (self.conns.clone(), self.session.clone());
        // Driven by the stream's own poll (no task per request).
        self.inflight
            .push(Box::pin(exchange(conns, request, body, session)));
    }
}

/// What the stateless revision's headers repeat of a message: read in one pass, borrowing.
#[derive(serde::Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    method: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    params: Option<HeadParams<'a>>,
}

#[derive(serde::Deserialize)]
struct HeadParams<'a> {
    #[serde(borrow)]
    name: Option<std::borrow::Cow<'a, str>>,
}

fn io_err(e: impl std::fmt::Display) -> Error {
    Error::Io(std::io::Error::other(e.to_string()))
}

/// One POST and what its reply holds, as messages for the stream.
async fn exchange(
    conns: Conns,
    request: Result<Request<Full<Bytes>>, hyper::http::Error>,
    body: Bytes,
    session: Arc<Mutex<Session>>,
) -> Vec<Result<Message, Error>> {
    let request = match request {
        Ok(r) => r,
        Err(e) => return vec![Err(io_err(e))],
    };
    let mut sender = match conns.take().await {
        Ok(s) => s,
        Err(e) => return vec![Err(e)],
    };
    let response = match sender.send(request).await {
        Ok(r) => r,
        Err(e) => return vec![Err(io_err(e))],
    };
    stamp(&conns.first.headers);
    let status = response.status();
    let body = std::str::from_utf8(&body).unwrap_or("");
    let initialize = is_initialize(body);
    if initialize
        && let Some(id) = response.headers().get("mcp-session-id")
        && let Ok(id) = id.to_str()
    {
        session.lock().unwrap_or_else(|e| e.into_inner()).id = Some(id.to_owned());
    }
    let sse = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let bytes = match response.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return vec![Err(io_err(e))],
    };
    // The reply is whole: the connection can carry the next request.
    conns.give_back(sender);
    let in_session = || {
        let s = session.lock().unwrap_or_else(|e| e.into_inner());
        s.id.is_some()
    };
    if status == StatusCode::NOT_FOUND && !initialize && in_session() {
        // The session expired: this transport is done; the connection sets up anew.
        return vec![Err(io_err("HTTP 404: the session expired"))];
    }
    if !status.is_success() {
        // The call this request carried failed by its HTTP status.
        return match request_id(body) {
            Some(id) => vec![Ok(Message::text(status_error(&id, status.as_u16())))],
            None if initialize => vec![Err(io_err(format!("HTTP {status}")))],
            None => Vec::new(),
        };
    }
    let text = String::from_utf8_lossy(&bytes);
    let messages: Vec<String> = if sse {
        sse_data(&text)
    } else if text.trim().is_empty() {
        Vec::new() // 202 Accepted: a notification
    } else {
        vec![text.into_owned()]
    };
    messages
        .into_iter()
        .map(|m| {
            if initialize && let Ok(Some(v)) = chosen_version(&m) {
                session.lock().unwrap_or_else(|e| e.into_inner()).version = Some(v);
            }
            Ok(Message::text(m))
        })
        .collect()
}

/// Whether a client message is the `initialize` request (wsbench writes its own messages, so
/// a look for the method's text is enough, and costs nothing per call).
fn is_initialize(body: &str) -> bool {
    body.contains(r#""method":"initialize""#)
}

/// A request's id as JSON text, when it is a request.
fn request_id(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v.get("id").filter(|i| !i.is_null()).map(|i| i.to_string())
}

/// The version an `initialize` result names.
fn chosen_version(message: &str) -> Result<Option<String>, ()> {
    let v: serde_json::Value = serde_json::from_str(message).map_err(|_| ())?;
    Ok(v.pointer("/result/protocolVersion")
        .and_then(|p| p.as_str())
        .map(str::to_owned))
}

/// A JSON-RPC error answering call `id` (JSON text) with the HTTP status as its code.
pub fn status_error(id: &str, status: u16) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":"http_{status}","message":"HTTP {status}"}}}}"#
    )
}

/// The `data:` payloads of an SSE body, one message per event.
pub fn sse_data(body: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut data = String::new();
    for line in body.lines() {
        if line.is_empty() {
            if !data.is_empty() {
                out.push(std::mem::take(&mut data));
            }
        } else if let Some(rest) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
        }
    }
    if !data.is_empty() {
        out.push(data);
    }
    out
}

impl Stream for HttpIo {
    type Item = Result<Message, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(m) = self.ready.pop_front() {
                return Poll::Ready(Some(m));
            }
            match self.inflight.poll_next_unpin(cx) {
                Poll::Ready(Some(messages)) => self.ready.extend(messages),
                // Nothing in flight: the owner polls again after it sends (it always reads
                // on the turn after a write), so there is nothing to wake it for.
                Poll::Ready(None) if self.closed => return Poll::Ready(None),
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Sink<Message> for HttpIo {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(mut self: Pin<&mut Self>, msg: Message) -> Result<(), Error> {
        match msg {
            Message::Text(text) => self.queued.push_back(text.as_str().to_owned()),
            Message::Close(_) if !self.closed => {
                self.closed = true;
                // Ends the session on the server, when there is one.
                let id = self
                    .session
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .id
                    .clone();
                let mut delete = Request::builder()
                    .method(Method::DELETE)
                    .uri(self.url.clone());
                if let Some(host) = self.headers.get(hyper::header::HOST) {
                    delete = delete.header(hyper::header::HOST, host);
                }
                if let Some(id) = id
                    && let Ok(req) = delete
                        .header("mcp-session-id", id)
                        .body(Full::new(Bytes::new()))
                {
                    // In flight like any request, so the stream ends only once it is answered
                    // (the owner's close is bounded anyway).
                    let conns = self.conns.clone();
                    self.inflight.push(Box::pin(async move {
                        if let Ok(mut sender) = conns.take().await {
                            let _ = sender.send(req).await;
                        }
                        Vec::new()
                    }));
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn poll_flush(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        while let Some(body) = self.queued.pop_front() {
            self.post(body);
        }
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.poll_flush(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_bodies_give_one_message_per_event() {
        let body = "event: message\ndata: {\"a\":1}\n\nevent: message\ndata: {\"b\":\ndata: 2}\n\n";
        assert_eq!(sse_data(body), [r#"{"a":1}"#, "{\"b\":\n2}"]);
        assert_eq!(sse_data("data: x"), ["x"]);
        assert!(sse_data(": keepalive\n\n").is_empty());
        assert_eq!(
            request_id(r#"{"jsonrpc":"2.0","id":"r-1","method":"tools/call"}"#).as_deref(),
            Some("\"r-1\"")
        );
        assert_eq!(
            request_id(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            None
        );
        let e = status_error("\"r-1\"", 503);
        assert_eq!(
            crate::protocol::mcp::classify(&e).code.as_deref(),
            Some("http_503")
        );
    }
}
