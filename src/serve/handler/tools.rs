//! The reference server's tools, the same in both dialects: `echo`, `status`, `sleep` and
//! the `--tool-delay` ones, each answer cached by request id (a repeated id is a replay), and
//! failures answered in the dialect's shape.

use std::time::Duration;

use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::replies::{conn_error_frame, error_frame, ok_frame};
use super::{Connection, Counted, MAX_SLEEP_MS, Outgoing};
use crate::protocol::Dialect;
use crate::serve::stats::Reply;

impl Connection {
    /// A tool call: `id` is the request id (for MCP, its JSON text), `args` JSON text.
    pub(super) fn call_tool(
        &mut self,
        id: Option<&str>,
        name: &str,
        args: &str,
    ) -> Option<Outgoing> {
        let stats = &self.shared.stats;
        stats.call_tool();
        let Some(id) = id else {
            // Without an id nothing can be answered per request: a connection-level error.
            let frame = conn_error_frame(
                self.shared.config.protocol,
                "INVALID_REQUEST",
                "missing request id",
            );
            return Some(Outgoing::one(
                frame.into(),
                Counted::ReplyError("INVALID_REQUEST".into()),
            ));
        };
        if let Some(cached) = self.shared.cache.get(id) {
            let marked = mark_replay(self.shared.config.protocol, &cached);
            return Some(Outgoing::one(marked.into(), Counted::Reply(Reply::Replay)));
        }
        if self.state.is_err() {
            // A server out of memory for this session's state, as Redis answers -OOM.
            return Some(self.error_reply(
                id,
                "OUT_OF_MEMORY",
                "no memory for this session's state (--memory-limit)",
            ));
        }
        if name.is_empty() {
            return Some(self.error_reply(
                id,
                "INVALID_REQUEST",
                "name must be a non-empty string",
            ));
        }
        if !args.starts_with('{') {
            return Some(self.error_reply(id, "VALIDATION_ERROR", "arguments must be an object"));
        }
        match name {
            "echo" => {
                if self.shared.faults.config.mix_sessions_rate > 0.0 {
                    self.echo_args = Some(args.to_owned());
                }
                Some(self.ok_reply(id, args))
            }
            "status" => {
                let snapshot = serde_json::to_string(&stats.snapshot()).unwrap_or_default();
                Some(self.ok_reply(id, &snapshot))
            }
            "sleep" => self.sleep(id, args),
            // A tool of --tool-delay: an echo, answered after its own delay.
            _ if self
                .shared
                .faults
                .config
                .tool_delays
                .iter()
                .any(|(t, _)| t == name) =>
            {
                Some(self.ok_reply(id, args))
            }
            _ if self.shared.faults.config.bare_tool_errors
                && self.shared.config.protocol == Dialect::ToolCall =>
            {
                // No op, no request_id: the field daemon's shape, about the call nonetheless.
                let v = serde_json::json!({"error": {"code": "TOOL_NOT_FOUND", "message": format!("Tool not found: {name}")}});
                Some(Outgoing::one(
                    v.to_string().into(),
                    Counted::ReplyError("TOOL_NOT_FOUND".into()),
                ))
            }
            _ => Some(self.error_reply(id, "TOOL_NOT_FOUND", &format!("Unknown tool: {name}"))),
        }
    }

    pub(super) fn ok_reply(&self, id: &str, text: &str) -> Outgoing {
        let reply: Utf8Bytes = ok_frame(self.shared.config.protocol, id, text).into();
        self.shared.cache.insert(id, reply.clone());
        Outgoing::one(reply, Counted::Reply(Reply::Ok))
    }

    pub(super) fn error_reply(&self, id: &str, code: &str, message: &str) -> Outgoing {
        let reply: Utf8Bytes = error_frame(self.shared.config.protocol, id, code, message).into();
        self.shared.cache.insert(id, reply.clone());
        Outgoing::one(reply, Counted::ReplyError(code.to_owned()))
    }

    /// `sleep {"ms": N}`: answered later from a timer task, deduplicated while in flight.
    fn sleep(&self, id: &str, args: &str) -> Option<Outgoing> {
        #[derive(serde::Deserialize)]
        struct SleepArgs {
            ms: u64,
        }
        let ms = match serde_json::from_str::<SleepArgs>(args) {
            Ok(a) if a.ms <= MAX_SLEEP_MS => a.ms,
            _ => {
                let msg = format!("sleep needs {{\"ms\": 0..={MAX_SLEEP_MS}}}");
                return Some(self.error_reply(id, "VALIDATION_ERROR", &msg));
            }
        };
        let content = format!("sleep\0{args}");
        if let Err(original) = self.shared.in_flight.begin(id, &content) {
            let reply = match self.shared.config.protocol {
                Dialect::ToolCall => serde_json::json!({
                    "op": "call_tool_res",
                    "request_id": id,
                    "error": {"code": "DUPLICATE", "message": "identical call in flight", "original_request_id": original},
                })
                .to_string(),
                Dialect::Mcp(_) => {
                    let why = format!("identical call in flight as {original}");
                    error_frame(self.shared.config.protocol, id, "DUPLICATE", &why)
                }
            };
            let counted = Counted::ReplyError("DUPLICATE".into());
            return Some(Outgoing::one(reply.into(), counted));
        }
        let dialect = self.shared.config.protocol;
        let shared = self.shared.clone();
        let tx = self.delayed_tx.clone();
        let id = id.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            let reply: Utf8Bytes = ok_frame(dialect, &id, &format!("{{\"slept_ms\":{ms}}}")).into();
            shared.cache.insert(&id, reply.clone());
            shared.in_flight.end(&id, &content);
            let _ = tx.send(Outgoing::one(reply, Counted::Reply(Reply::Ok)));
        });
        None
    }
}

/// A cached reply as a replay: marked `"from_cache": true` (the field daemon's marker) at the
/// top of a tool-call frame, in the result's `_meta` of an MCP one, so a client can tell work
/// done from work remembered.
fn mark_replay(dialect: Dialect, cached: &str) -> String {
    match dialect {
        Dialect::ToolCall => match cached.strip_prefix('{') {
            Some(rest) => format!(r#"{{"from_cache":true,{rest}"#),
            None => cached.to_owned(),
        },
        Dialect::Mcp(_) => cached.replacen(
            r#""result":{"#,
            r#""result":{"_meta":{"from_cache":true},"#,
            1,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Kind, McpVersion, classify, mcp};

    #[test]
    fn a_replay_is_marked_so_the_client_counts_it() {
        let tool = r#"{"op":"call_tool_res","request_id":"a-1","outputs":[]}"#;
        let marked = mark_replay(Dialect::ToolCall, tool);
        let c = classify(&marked);
        assert_eq!((c.kind, c.replayed), (Kind::Result, true));
        assert!(!classify(tool).replayed);
        let m = mcp::tool_result(r#""a-1""#, "x", false);
        let marked = mark_replay(Dialect::Mcp(McpVersion::V2025_11_25), &m);
        let c = mcp::classify(&marked);
        assert_eq!((c.kind, c.replayed), (Kind::Result, true), "{marked}");
        assert!(!mcp::classify(&m).replayed);
    }
}
