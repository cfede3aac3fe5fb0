//! Connection setup: TCP connect (from a `--bind-ip` address if given), TLS, the WebSocket
//! upgrade and the hello exchange, all within `--connect-timeout`, each step stamped. Frames the
//! server sends before its `hello_ack` are kept to be counted.

use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{self, Message, http};

use super::{Established, RunSpec, Ws};
use crate::model::{SetupFailure, SetupKind, SetupStamps};
use crate::net::tls::{self, Stream};
use crate::net::upgrade::{self, HeadOnly};
use crate::protocol::{self, Kind};
use crate::run::clock;

impl RunSpec {
    /// The upgrade request: the URL, plus `--header`s and `--subprotocol`.
    pub(super) fn request(&self) -> Result<http::Request<()>, tungstenite::Error> {
        let mut req = self.url.as_str().into_client_request()?;
        let headers = req.headers_mut();
        for (name, value) in &self.headers {
            let name = http::HeaderName::from_bytes(name.as_bytes()).map_err(http::Error::from)?;
            let value = http::HeaderValue::from_str(value).map_err(http::Error::from)?;
            headers.append(name, value);
        }
        if let Some(p) = self.subprotocol.as_deref().or(self.wire.subprotocol()) {
            let value = http::HeaderValue::from_str(p).map_err(http::Error::from)?;
            headers.insert(http::header::SEC_WEBSOCKET_PROTOCOL, value);
        }
        let token = self.hello_token.expose();
        if self.wire.token_in_upgrade()
            && !token.is_empty()
            && !headers.contains_key(http::header::AUTHORIZATION)
        {
            let mut value = http::HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(http::Error::from)?;
            // Never printed by http's Debug, whatever logs the request.
            value.set_sensitive(true);
            headers.insert(http::header::AUTHORIZATION, value);
        }
        Ok(req)
    }
}

pub(super) fn fail(
    stage: &'static str,
    reason: String,
    close_code: Option<u16>,
    kind: SetupKind,
) -> SetupFailure {
    SetupFailure {
        stage,
        reason,
        close_code,
        kind,
    }
}

/// An I/O error while connecting: a refusal when the peer's OS turned the SYN away, another
/// failure otherwise.
fn io_kind(e: &std::io::Error) -> SetupKind {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset => {
            SetupKind::Refused
        }
        std::io::ErrorKind::TimedOut => SetupKind::Timeout,
        _ => SetupKind::Other,
    }
}

/// The transport (TCP, TLS and WebSocket upgrade; or the spawned process) and the hello, all
/// within `connect_timeout`. Frames the server sends before answering the hello are kept, to be
/// counted like any other frame.
pub(super) async fn setup(spec: &RunSpec, id: u32) -> Result<Established, SetupFailure> {
    let started = clock::now();
    let deadline = tokio::time::Instant::from_std(started + spec.connect_timeout);
    let mut http_stamps = None;
    let (ws, tcp_at, tls_at, upgraded) = match &spec.command {
        Some(command) => {
            // stdio: the process is the connection; spawning it is the whole "connect".
            let log = spec
                .stderr_log
                .as_deref()
                .unwrap_or(std::path::Path::new("/dev/null"));
            let io = crate::net::stdio::spawn(command, log, spec.max_message_size)
                .map_err(|e| fail("spawn", e.to_string(), None, SetupKind::Other))?;
            let at = clock::now();
            (Box::new(io) as Ws, at, None, at)
        }
        None if spec.http => {
            // Streamable HTTP: connections are made by the requests themselves (the first
            // one, the initialize, is the hello phase).
            let mut headers = spec.headers.clone();
            let token = spec.hello_token.expose();
            if !token.is_empty()
                && !headers
                    .iter()
                    .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
            {
                headers.push(("authorization".into(), format!("Bearer {token}")));
            }
            let stateless = spec.wire.stateless_version();
            let transport = crate::net::http::Transport {
                tls: spec.tls.clone().map(|c| (c, spec.host.clone())),
                http2: spec.http2,
            };
            let io = crate::net::http::HttpIo::new(
                &spec.url,
                headers,
                spec.window,
                stateless,
                transport,
            )
            .map_err(|e| fail("connect", e, None, SetupKind::Other))?;
            http_stamps = Some(io.first_stamps());
            let at = clock::now();
            (Box::new(io) as Ws, at, None, at)
        }
        None => websocket(spec, id, deadline).await?,
    };
    let (ws, acked, early) = hello(spec, id, ws, deadline).await?;
    // HTTP connects on its first request (the hello): its phases are that request's, TCP,
    // TLS, then the response's headers in the upgrade's place.
    let (tcp_at, tls_at, upgraded) = match http_stamps {
        Some(first) => {
            let tcp = first.tcp.get().copied().unwrap_or(tcp_at);
            let headers = first.headers.get().copied().unwrap_or(acked);
            (tcp, first.tls.get().copied(), headers.max(tcp))
        }
        None => (tcp_at, tls_at, upgraded),
    };
    let stamps = SetupStamps {
        started,
        tcp: tcp_at,
        tls: tls_at,
        upgraded,
        acked,
    };
    Ok((ws, stamps, early))
}

/// TCP connect, TLS, WebSocket upgrade: the transport and when each phase ended.
async fn websocket(
    spec: &RunSpec,
    id: u32,
    deadline: tokio::time::Instant,
) -> Result<(Ws, Instant, Option<Instant>, Instant), SetupFailure> {
    let timed_out = || format!("timed out after {:?}", spec.connect_timeout);

    let tcp = match tokio::time::timeout_at(deadline, tcp_connect(spec, id)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return Err(fail("connect", e.to_string(), None, io_kind(&e))),
        Err(_) => return Err(fail("connect", timed_out(), None, SetupKind::Timeout)),
    };
    let _ = tcp.set_nodelay(true);
    let tcp_at = clock::now();

    let (stream, tls_at) = match &spec.tls {
        None => (Stream::Plain(tcp), None),
        Some(config) => {
            match tokio::time::timeout_at(deadline, tls::connect(config.clone(), &spec.host, tcp))
                .await
            {
                Ok(Ok(stream)) => (stream, Some(clock::now())),
                Ok(Err(e)) => return Err(fail("tls", e.to_string(), None, SetupKind::Other)),
                Err(_) => return Err(fail("tls", timed_out(), None, SetupKind::Timeout)),
            }
        }
    };
    let request = spec
        .request()
        .map_err(|e| fail("upgrade", e.to_string(), None, SetupKind::Other))?;
    let config = protocol::ws_config(spec.max_message_size, u64::from(spec.conns));
    let upgrade =
        tokio_tungstenite::client_async_with_config(request, HeadOnly::new(stream), Some(config));
    let ws = match tokio::time::timeout_at(deadline, upgrade).await {
        // An extension the client never offered (permessage-deflate, say): RFC 6455 4.1 says
        // fail the connection, and compressed frames would otherwise drop it after one reply.
        Ok(Ok((_, response))) if response.headers().contains_key("sec-websocket-extensions") => {
            let offered = response
                .headers()
                .get("sec-websocket-extensions")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("?")
                .to_owned();
            let why = format!(
                "the server accepted an extension the client did not ask for ({offered}); \
                 RFC 6455 says fail the connection"
            );
            return Err(fail("upgrade", why, None, SetupKind::Rejected));
        }
        // Rebuilt so that the connection keeps the configured read buffer, not the handshake's.
        Ok(Ok((ws, _response))) => upgrade::rebuffer(ws, Role::Client, config).await,
        Ok(Err(tungstenite::Error::Http(response))) => {
            // 401/403 at the upgrade: the token was refused (MCP carries it there), a setting
            // to fix rather than load to measure.
            let status = response.status();
            let why = if matches!(status.as_u16(), 401 | 403) {
                format!("HTTP {status}")
            } else {
                // Answered, but not with an upgrade: a web server, or the wrong path.
                format!("not a WebSocket endpoint (HTTP {status})")
            };
            // A refusal or a plain web page is a setting to fix; a 5xx or 429 is the server
            // struggling, and is retried like any failed connect.
            let transient = status.is_server_error() || status.as_u16() == 429;
            let kind = if transient {
                SetupKind::Refused
            } else {
                SetupKind::Rejected
            };
            return Err(fail("upgrade", why, None, kind));
        }
        Ok(Err(tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::WrongHttpVersion,
        ))) => {
            // An HTTP/1.0 answer (a plain web server): it cannot upgrade.
            let why = "not a WebSocket endpoint (it answered HTTP/1.0)".to_owned();
            return Err(fail("upgrade", why, None, SetupKind::Rejected));
        }
        Ok(Err(e)) => return Err(fail("upgrade", e.to_string(), None, SetupKind::Other)),
        Err(_) => return Err(fail("upgrade", timed_out(), None, SetupKind::Timeout)),
    };
    Ok((Box::new(ws), tcp_at, tls_at, clock::now()))
}

/// The dialect's hello over an open transport, and what it sends after; the transport, when
/// the answer came, and the frames that came before it.
async fn hello(
    spec: &RunSpec,
    id: u32,
    mut ws: Ws,
    deadline: tokio::time::Instant,
) -> Result<(Ws, Instant, Vec<Message>), SetupFailure> {
    let timed_out = || format!("timed out after {:?}", spec.connect_timeout);
    // Within the protocol's 64 characters: prefix (<= 32) + worker (<= 24) + connection, which
    // stays last so that a server can single out a connection by suffix.
    let session = format!("{}-{}-{}", spec.session_prefix, spec.worker_id, id);
    let hello = spec.wire.hello(&session, spec.hello_token.expose());
    match tokio::time::timeout_at(deadline, ws.send(Message::text(hello))).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(fail("hello", e.to_string(), None, SetupKind::Other)),
        Err(_) => {
            return Err(fail(
                "hello",
                format!("hello not taken: {}", timed_out()),
                None,
                SetupKind::Timeout,
            ));
        }
    }
    let mut early = Vec::new();
    loop {
        let msg = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => {
                let why = format!("no hello_ack: {}", timed_out());
                return Err(fail("hello", why, None, SetupKind::Timeout));
            }
            Ok(None) => {
                let why = "connection closed".into();
                return Err(fail("hello", why, Some(1006), SetupKind::Refused));
            }
            Ok(Some(Err(e))) => return Err(fail("hello", e.to_string(), None, SetupKind::Other)),
            Ok(Some(Ok(msg))) => msg,
        };
        match msg {
            Message::Text(text) => {
                let c = spec.wire.classify(text.as_str());
                match c.kind {
                    Kind::HelloAck { ok: true } => {
                        match spec.wire.negotiated(text.as_str()) {
                            Ok(Some(version)) => {
                                let mut seen =
                                    spec.versions.lock().unwrap_or_else(|e| e.into_inner());
                                *seen.entry(version).or_default() += 1;
                            }
                            Ok(None) => {}
                            // A revision this client cannot speak: the spec says disconnect.
                            Err(why) => return Err(fail("hello", why, None, SetupKind::Rejected)),
                        }
                        break;
                    }
                    Kind::HelloAck { ok: false } => {
                        let why = c.code.as_deref().unwrap_or("no reason given");
                        let code = await_close_code(&mut ws).await;
                        let why = format!("rejected: {why}");
                        return Err(fail("hello", why, code, SetupKind::Rejected));
                    }
                    // Anything before the ack (a banner, a stray result) is not the ack, but
                    // it is a frame the server sent: counted once the connection is up.
                    _ if early.len() < MAX_EARLY_FRAMES => early.push(Message::Text(text)),
                    _ => {}
                }
            }
            Message::Close(frame) => {
                let code = frame.map(|f| u16::from(f.code));
                // 4000-4003: the server refused this hello (token, format): a setting to fix,
                // not load to measure. 1008 (too many connections) is a connection error.
                let rejected = code.is_some_and(|c| (4000..=4003).contains(&c));
                let why = if rejected || code == Some(protocol::CLOSE_POLICY) {
                    "rejected"
                } else {
                    "closed by server"
                };
                let kind = if rejected {
                    SetupKind::Rejected
                } else {
                    SetupKind::Refused
                };
                return Err(fail("hello", why.into(), code, kind));
            }
            Message::Binary(b) if early.len() < MAX_EARLY_FRAMES => early.push(Message::Binary(b)),
            _ => continue,
        }
    }
    let acked = clock::now();
    if let Some(done) = spec.wire.after_hello() {
        match tokio::time::timeout_at(deadline, ws.send(Message::text(done))).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(fail("hello", e.to_string(), None, SetupKind::Other)),
            Err(_) => return Err(fail("hello", timed_out(), None, SetupKind::Timeout)),
        }
    }
    Ok((ws, acked, early))
}

/// Frames kept from before `hello_ack`; a server that floods them is cut off by the deadline.
pub(super) const MAX_EARLY_FRAMES: usize = 1024;

/// TCP connect, from the connection's `--bind-ip` address when there are some.
pub(super) async fn tcp_connect(spec: &RunSpec, id: u32) -> std::io::Result<TcpStream> {
    if spec.bind_ips.is_empty() {
        return TcpStream::connect((spec.host.as_str(), spec.port)).await;
    }
    let local = spec.bind_ips[id as usize % spec.bind_ips.len()];
    let mut last = None;
    for addr in tokio::net::lookup_host((spec.host.as_str(), spec.port)).await? {
        if addr.is_ipv4() != local.is_ipv4() {
            continue;
        }
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.bind(std::net::SocketAddr::new(local, 0))?;
        match socket.connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            format!("no address of the target matches {local}"),
        )
    }))
}

/// After a refused hello the server closes; its close code says why.
pub(super) async fn await_close_code(ws: &mut Ws) -> Option<u16> {
    let wait = async {
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Close(frame) = msg {
                return frame.map(|f| u16::from(f.code));
            }
        }
        None
    };
    tokio::time::timeout(Duration::from_secs(1), wait)
        .await
        .ok()
        .flatten()
}
