//! MCP's Streamable HTTP transport as a message stream: every message the client sends is a
//! POST to the endpoint (`Accept: application/json, text/event-stream`), and every JSON-RPC
//! message in a reply (a JSON body, or each `data:` of an SSE body) comes out of the stream, so
//! the connection code drives HTTP as it drives a WebSocket. The session id from the
//! `initialize` reply travels on every later request, with `MCP-Protocol-Version`; closing sends
//! `DELETE`. An HTTP error answers the call it was for (a JSON-RPC error with code
//! `http_<status>`); 404 on a session means it expired: the stream ends, and the session is set
//! up again like a reconnect.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
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
}

/// A session's keep-alive connections: idle ones are reused, a request that finds none opens
/// one (so there are as many as requests were ever in flight at once). Each is driven by a
/// task of its own; no pool shared between sessions.
#[derive(Clone)]
struct Conns {
    /// `host:port` to connect to.
    addr: String,
    idle: Arc<Mutex<Vec<SendRequest<Full<Bytes>>>>>,
}

impl Conns {
    async fn take(&self) -> Result<SendRequest<Full<Bytes>>, Error> {
        loop {
            let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            match idle {
                Some(s) if s.is_ready() => return Ok(s),
                Some(_) => continue, // closed by the server: drop it
                None => break,
            }
        }
        let tcp = tokio::net::TcpStream::connect(&self.addr)
            .await
            .map_err(Error::Io)?;
        let _ = tcp.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(io_err)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    fn give_back(&self, sender: SendRequest<Full<Bytes>>) {
        if !sender.is_closed() {
            self.idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(sender);
        }
    }
}

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
    pub fn new(url: &str, headers: Vec<(String, String)>, conns: usize) -> Result<HttpIo, String> {
        let full: hyper::Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
        let authority = full
            .authority()
            .ok_or("the URL names no host")?
            .as_str()
            .to_owned();
        let addr = if full.port().is_some() {
            authority.clone()
        } else {
            format!("{authority}:80")
        };
        let url: hyper::Uri = full
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .map_err(|e| format!("not a URL: {e}"))?;
        let mut map = hyper::HeaderMap::new();
        map.insert(
            "host",
            hyper::header::HeaderValue::from_str(&authority).map_err(|e| e.to_string())?,
        );
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
                idle: Arc::new(Mutex::new(Vec::with_capacity(conns))),
            },
            url,
            headers: map,
            session: Arc::default(),
            inflight: FuturesUnordered::new(),
            ready: VecDeque::new(),
            queued: VecDeque::new(),
            closed: false,
        })
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
    let response = match sender.send_request(request).await {
        Ok(r) => r,
        Err(e) => return vec![Err(io_err(e))],
    };
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
    if status == StatusCode::NOT_FOUND && !initialize {
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
                if let Some(id) = id
                    && let Ok(req) = Request::builder()
                        .method(Method::DELETE)
                        .uri(self.url.clone())
                        .header("mcp-session-id", id)
                        .header(
                            hyper::header::HOST,
                            self.headers
                                .get(hyper::header::HOST)
                                .cloned()
                                .unwrap_or(hyper::header::HeaderValue::from_static("localhost")),
                        )
                        .body(Full::new(Bytes::new()))
                {
                    // In flight like any request, so the stream ends only once it is answered
                    // (the owner's close is bounded anyway).
                    let conns = self.conns.clone();
                    self.inflight.push(Box::pin(async move {
                        if let Ok(mut sender) = conns.take().await {
                            let _ = sender.send_request(req).await;
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
