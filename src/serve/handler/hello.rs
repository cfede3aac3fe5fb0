//! The tool-call dialect's hello: the first frame must be a `hello` with the right token;
//! anything else is answered with a `hello_ack` refusal and a 4000-4003 close.

use subtle::ConstantTimeEq as _;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::{Shared, close, random_session_id, send_bounded};
use crate::protocol::{self, Inbound};
use crate::wsio::{BoxIo, Duplex};
use futures_util::StreamExt as _;

/// Runs the hello exchange; the session id, or `None` when the connection was closed.
pub(super) async fn handshake(dx: &mut Duplex<BoxIo>, shared: &Shared) -> Option<String> {
    let deadline = tokio::time::Instant::now() + shared.config.hello_timeout;
    let ws = &mut dx.ws;
    let text = loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => {
                shared.stats.hello(false);
                close(
                    dx,
                    CloseCode::from(protocol::CLOSE_HELLO_TIMEOUT),
                    "hello timeout",
                )
                .await;
                return None;
            }
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return None,
            Ok(Some(Ok(Message::Text(text)))) => break Some(text),
            Ok(Some(Ok(Message::Binary(_)))) => break None,
            Ok(Some(Ok(_))) => continue, // pings are answered by tungstenite
        }
    };
    let parsed = text.as_ref().map(|t| protocol::parse_inbound(t.as_str()));
    let (code, error) = match parsed {
        None | Some(Err(_)) => (protocol::CLOSE_INVALID_HELLO, "invalid_hello"),
        Some(Ok(hello)) if hello.op.as_deref() != Some("hello") => {
            (protocol::CLOSE_MISSING_HELLO, "missing_hello")
        }
        Some(Ok(hello)) => {
            if token_ok(&hello, shared) {
                let session = hello
                    .session_id
                    .as_deref()
                    .filter(|s| protocol::valid_session_id(s))
                    .map(str::to_owned)
                    .unwrap_or_else(random_session_id);
                let ack = serde_json::json!({"op": "hello_ack", "ok": true, "session_id": session});
                shared.stats.hello(true);
                let limit = shared.config.hello_timeout;
                let sent = send_bounded(dx, Message::text(ack.to_string()), limit).await;
                return sent.then_some(session);
            }
            (protocol::CLOSE_UNAUTHORIZED, "unauthorized")
        }
    };
    shared.stats.hello(false);
    let nack = serde_json::json!({"op": "hello_ack", "ok": false, "error": error});
    let _ = dx.queue(Message::text(nack.to_string()));
    close(dx, CloseCode::from(code), error).await;
    None
}

fn token_ok(hello: &Inbound<'_>, shared: &Shared) -> bool {
    let expected = shared.config.token.expose().as_bytes();
    if expected.is_empty() {
        return true;
    }
    let given = hello
        .token
        .as_deref()
        .or(hello.jwt.as_deref())
        .unwrap_or("");
    // Constant time, so response timing does not leak how much of a guess was right.
    bool::from(given.as_bytes().ct_eq(expected))
}
