//! The reference server speaking MCP over WebSocket: the `initialize` handshake (the token was
//! checked at the upgrade), then JSON-RPC requests: `tools/call` through the same tools, faults
//! and counters as the tool-call dialect, `tools/list`, `ping`; notifications need no answer.

use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::replies::tools;
use super::{
    CLOSE_LIMIT, Connection, Counted, Outgoing, Shared, close, random_session_id, send_bounded,
};
use crate::protocol::{self, mcp};
use crate::wsio::{BoxIo, Duplex};
use futures_util::StreamExt as _;

/// Waits for `initialize` and answers it; the session id, or `None` when the connection ended.
pub(super) async fn handshake(dx: &mut Duplex<BoxIo>, shared: &Shared) -> Option<String> {
    let deadline = tokio::time::Instant::now() + shared.config.hello_timeout;
    let text = loop {
        match tokio::time::timeout_at(deadline, dx.ws.next()).await {
            Err(_) => {
                shared.stats.hello(false);
                let code = CloseCode::from(protocol::CLOSE_HELLO_TIMEOUT);
                close(dx, code, "no initialize").await;
                return None;
            }
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return None,
            Ok(Some(Ok(Message::Text(text)))) => break text,
            Ok(Some(Ok(Message::Binary(_)))) => {
                shared.stats.hello(false);
                close(dx, CloseCode::from(protocol::CLOSE_INVALID_HELLO), "binary").await;
                return None;
            }
            Ok(Some(Ok(_))) => continue,
        }
    };
    let refusal = match mcp::parse_request(text.as_str()) {
        Err((code, message)) => mcp::error_response(None, code, &message),
        Ok(req) if req.method == "initialize" && req.id.is_some() => {
            let id = req.id.unwrap_or("null");
            let reply = mcp::initialize_result(id, req.version.as_deref());
            shared.stats.hello(true);
            let sent = send_bounded(dx, Message::text(reply), shared.config.hello_timeout).await;
            return sent.then(random_session_id);
        }
        Ok(req) => mcp::error_response(
            req.id,
            mcp::INVALID_REQUEST,
            "the session must open with initialize",
        ),
    };
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
        match req.method.as_ref() {
            "tools/call" => {
                let name = req.name.as_deref().unwrap_or("");
                let args = req.arguments.unwrap_or("{}");
                let out = self.call_tool(Some(id), name, args)?;
                let out = self.inject(out, id)?;
                self.maybe_delay(out)
            }
            "tools/list" => Some(Outgoing::plain(mcp::tools_list_result(id, &tools()))),
            "ping" => Some(Outgoing::plain(mcp::empty_result(id))),
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
