//! The reference server speaking MCP over WebSocket and stdio: the `initialize` handshake (the
//! token was checked at the upgrade), or, in the stateless 2026-07-28 revision, a first request
//! naming that version in its `_meta`; then JSON-RPC requests: `tools/call` through the same
//! tools, faults and counters as the tool-call dialect, `tools/list`, `server/discover`, `ping`;
//! notifications need no answer.

use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::replies::tools;
use super::{
    CLOSE_LIMIT, Connection, Counted, Outgoing, Shared, close, random_session_id, send_bounded,
};
use crate::protocol::{self, mcp};
use crate::wsio::{BoxIo, Duplex};
use futures_util::StreamExt as _;

/// How an MCP connection opened.
pub(super) enum Opened {
    /// `initialize` was answered: a session of a session-based revision.
    Session(String),
    /// A stateless (2026-07-28) request came first: it is to be answered like any other.
    Stateless(String, Message),
}

/// Waits for `initialize` and answers it, or for a first stateless request; `None` when the
/// connection ended. A request naming a revision the server lacks is refused (-32022, with
/// the ones it has) and the wait goes on: the client may fall back to `initialize`.
pub(super) async fn handshake(dx: &mut Duplex<BoxIo>, shared: &Shared) -> Option<Opened> {
    let deadline = tokio::time::Instant::now() + shared.config.hello_timeout;
    loop {
        let text = first_text(dx, shared, deadline).await?;
        let req = match mcp::parse_request(text.as_str()) {
            Ok(req) => req,
            Err((code, message)) => {
                return refuse(dx, shared, mcp::error_response(None, code, &message)).await;
            }
        };
        match req.meta_version.as_deref() {
            Some(mcp::STATELESS_VERSION) => {
                shared.stats.hello(true);
                return Some(Opened::Stateless(random_session_id(), Message::Text(text)));
            }
            Some(other) if req.method != "initialize" => {
                let refusal = mcp::unsupported_version(req.id, other);
                if !send_bounded(dx, Message::text(refusal), shared.config.hello_timeout).await {
                    return None;
                }
                continue;
            }
            _ => {}
        }
        if req.method == "initialize"
            && let Some(id) = req.id
        {
            let reply = mcp::initialize_result(id, req.version.as_deref());
            shared.stats.hello(true);
            let sent = send_bounded(dx, Message::text(reply), shared.config.hello_timeout).await;
            return sent.then(|| Opened::Session(random_session_id()));
        }
        let refusal = mcp::error_response(
            req.id,
            mcp::INVALID_REQUEST,
            "the session must open with initialize",
        );
        return refuse(dx, shared, refusal).await;
    }
}

/// The connection's next text message before the deadline; `None` when it ended (closed with
/// the reason when the server ends it).
async fn first_text(
    dx: &mut Duplex<BoxIo>,
    shared: &Shared,
    deadline: tokio::time::Instant,
) -> Option<tokio_tungstenite::tungstenite::Utf8Bytes> {
    loop {
        match tokio::time::timeout_at(deadline, dx.ws.next()).await {
            Err(_) => {
                shared.stats.hello(false);
                let code = CloseCode::from(protocol::CLOSE_HELLO_TIMEOUT);
                close(dx, code, "no initialize").await;
                return None;
            }
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return None,
            Ok(Some(Ok(Message::Text(text)))) => return Some(text),
            Ok(Some(Ok(Message::Binary(_)))) => {
                shared.stats.hello(false);
                close(dx, CloseCode::from(protocol::CLOSE_INVALID_HELLO), "binary").await;
                return None;
            }
            Ok(Some(Ok(_))) => continue,
        }
    }
}

/// Refuses the opening message and closes: not MCP's way to open a connection.
async fn refuse(dx: &mut Duplex<BoxIo>, shared: &Shared, refusal: String) -> Option<Opened> {
    shared.stats.hello(false);
    let _ = dx.queue(Message::text(refusal));
    let code = CloseCode::from(protocol::CLOSE_MISSING_HELLO);
    dx.close(
        Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code,
            reason: "missing initialize".into(),
        }),
        CLOSE_LIMIT,
        |_| {},
    )
    .await;
    None
}

impl Connection {
    /// The answer to one JSON-RPC message, or `None` (a notification, or a delayed call).
    pub(super) fn answer_mcp(&mut self, text: &str) -> Option<Outgoing> {
        let req = match mcp::parse_request(text) {
            Ok(req) => req,
            Err((code, message)) => {
                self.shared.stats.error_code("VALIDATION_ERROR");
                return Some(Outgoing::plain(mcp::error_response(None, code, &message)));
            }
        };
        let Some(id) = req.id else {
            // Notifications (initialized, cancelled, progress) get no answer.
            if req.method == "notifications/cancelled" {
                self.shared.stats.cancelled();
            }
            return None;
        };
        if self.stateless {
            // Each request of the stateless revision names it; nothing carries over.
            let refusal = match req.meta_version.as_deref() {
                Some(mcp::STATELESS_VERSION) => None,
                Some(other) => Some(mcp::unsupported_version(Some(id), other)),
                None => Some(mcp::error_response(
                    Some(id),
                    mcp::INVALID_REQUEST,
                    "the request names no io.modelcontextprotocol/protocolVersion in _meta",
                )),
            };
            if let Some(refusal) = refusal {
                self.shared.stats.error_code("UNSUPPORTED_VERSION");
                return Some(Outgoing::plain(refusal));
            }
        }
        match req.method.as_ref() {
            "tools/call" => {
                let name = req.name.as_deref().unwrap_or("");
                let args = req.arguments.unwrap_or("{}");
                let out = self.call_tool(Some(id), name, args)?;
                let out = self.inject(out, id)?;
                self.maybe_delay(out, name)
            }
            "tools/list" => Some(Outgoing::plain(mcp::tools_list_result(
                id,
                &tools(&self.shared.faults.config.tool_delays),
            ))),
            "ping" => Some(Outgoing::plain(mcp::empty_result(id))),
            "server/discover" => Some(Outgoing::plain(mcp::discover_result(id))),
            "initialize" => Some(Outgoing::plain(mcp::error_response(
                Some(id),
                mcp::INVALID_REQUEST,
                "already initialized",
            ))),
            other => {
                self.shared.stats.error_code("METHOD_NOT_FOUND");
                let message = format!("Method not found: {other}");
                Some(Outgoing::one(
                    mcp::error_response(Some(id), mcp::METHOD_NOT_FOUND, &message).into(),
                    Counted::Nothing,
                ))
            }
        }
    }
}
