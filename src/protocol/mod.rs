//! The wire protocol of [docs/PROTOCOL.md](../../docs/PROTOCOL.md), shared by `run` (client) and
//! `serve` (server): `classify` (what a server frame is, for the client), `template` (the
//! client's `call_tool` frames), `frames` (builders both sides send), `inbound` (the server's
//! parser of client frames). This file holds the WebSocket settings and close codes.
//!
//! Everything here is total: any bytes classify to some [`Kind`], nothing panics. The classifier
//! borrows from the frame and reads only the fields it needs, so it costs one pass over the text
//! and no `serde_json::Value`.

mod classify;
mod frames;
mod inbound;
pub mod mcp;
pub mod rows;
mod template;

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub use classify::{Classified, Kind, classify};
pub use frames::{error_frame, hello_frame, push_json_str, result_error_frame, result_frame};
pub use inbound::{Inbound, parse_inbound, valid_session_id};
pub use template::{DEFAULT_ARGS, ID_PLACEHOLDER, RequestTemplate, SEQ_PLACEHOLDER, validate_args};

/// The dialect a run speaks, as `--protocol` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// `hello` + `call_tool` frames (docs/PROTOCOL.md).
    #[default]
    ToolCall,
    /// The Model Context Protocol: JSON-RPC 2.0 `initialize` + `tools/call`, asking for this
    /// revision.
    Mcp(McpVersion),
}

/// The MCP revision a run asks for (`--mcp-version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum McpVersion {
    V2025_03_26,
    V2025_06_18,
    V2025_11_25,
    /// The stateless revision: no `initialize`, no session; every request names the version
    /// in its `_meta`.
    V2026_07_28,
    /// The newest (stateless) when the server speaks it, else the newest session-based one.
    /// Resolved once per run, before load, by a probe session ([`McpVersion::resolved`] is
    /// what an unresolved one speaks).
    Auto,
}

impl McpVersion {
    pub fn parse(s: &str) -> Result<McpVersion, String> {
        match s {
            "2025-03-26" => Ok(McpVersion::V2025_03_26),
            "2025-06-18" => Ok(McpVersion::V2025_06_18),
            "2025-11-25" => Ok(McpVersion::V2025_11_25),
            "2026-07-28" => Ok(McpVersion::V2026_07_28),
            "auto" => Ok(McpVersion::Auto),
            _ => Err("expected 2025-03-26, 2025-06-18, 2025-11-25, 2026-07-28 or auto".into()),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            McpVersion::V2025_03_26 => "2025-03-26",
            McpVersion::V2025_06_18 => "2025-06-18",
            McpVersion::V2025_11_25 => "2025-11-25",
            McpVersion::V2026_07_28 => "2026-07-28",
            McpVersion::Auto => "auto",
        }
    }

    /// What a session speaks: `auto` not yet resolved speaks the newest session-based
    /// revision (the server's `initialize` answer may still pick an older one).
    pub fn resolved(self) -> McpVersion {
        match self {
            McpVersion::Auto => McpVersion::V2025_11_25,
            v => v,
        }
    }

    /// Whether the revision is the stateless one.
    pub fn is_stateless(self) -> bool {
        self == McpVersion::V2026_07_28
    }
}

impl Dialect {
    pub fn parse(s: &str) -> Result<Dialect, String> {
        match s {
            "tool-call" => Ok(Dialect::ToolCall),
            "mcp" => Ok(Dialect::Mcp(McpVersion::V2025_11_25)),
            _ => Err("expected tool-call or mcp".into()),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Dialect::ToolCall => "tool-call",
            Dialect::Mcp(_) => "mcp",
        }
    }

    /// The client side of this dialect; for MCP, asking for progress notifications when
    /// `progress` is set.
    pub fn wire(self, progress: bool) -> std::sync::Arc<dyn Wire> {
        match self {
            Dialect::ToolCall => std::sync::Arc::new(ToolCall),
            Dialect::Mcp(v) => std::sync::Arc::new(Mcp {
                version: v.resolved(),
                progress,
            }),
        }
    }

    pub fn is_mcp(self) -> bool {
        matches!(self, Dialect::Mcp(_))
    }
}

/// What the connection engine needs of a dialect, and all it knows of one: how a session
/// opens, how a call is written, what a server message means.
pub trait Wire: std::fmt::Debug + Send + Sync {
    fn dialect(&self) -> Dialect;
    /// The WebSocket subprotocol to ask for when the user names none.
    fn subprotocol(&self) -> Option<&'static str>;
    /// Whether the token travels in the upgrade's `Authorization: Bearer` header (else in hello).
    fn token_in_upgrade(&self) -> bool;
    /// The session's first message.
    fn hello(&self, session: &str, token: &str) -> String;
    /// What to send once the hello is answered (MCP's `notifications/initialized`).
    fn after_hello(&self) -> Option<&'static str>;
    /// The frames of this connection's calls.
    fn template(
        &self,
        id_prefix: &str,
        tool: &str,
        args: Option<&str>,
        conn: u32,
        conns: u32,
    ) -> RequestTemplate;
    /// What one server message is.
    fn classify<'a>(&self, text: &'a str) -> Classified<'a>;
    /// The protocol version the server chose, read from its answer to the hello: `Ok(None)`
    /// when the dialect has none, `Err` when it is one this client does not speak.
    fn negotiated(&self, _hello_answer: &str) -> Result<Option<String>, String> {
        Ok(None)
    }
    /// What tells the server the client gave up on call `<id_prefix><seq>` (MCP's
    /// `notifications/cancelled`), if the dialect has it. (The id is built only when it is.)
    fn cancel(&self, _id_prefix: &str, _seq: u64) -> Option<String> {
        None
    }
    /// The protocol version every request names, for a dialect with no handshake to choose
    /// one (MCP 2026-07-28): an HTTP transport sends it as `MCP-Protocol-Version` from the
    /// first request on.
    fn stateless_version(&self) -> Option<&'static str> {
        None
    }
    /// The text a successful result carries (tool-call: `outputs[0].text`; MCP:
    /// `result.content[0].text`), for checks of what a tool answered.
    fn result_text(&self, reply: &str) -> Option<String>;
    /// The request for (a page of) the server's tools.
    fn list_tools(&self, cursor: Option<&str>) -> String;
    /// When `text` answers [`Wire::list_tools`]: its tools and the next page's cursor, or why
    /// the server refused. `None` for any other message.
    fn tools_page(&self, text: &str) -> Option<Result<ToolsPage, String>>;
}

/// One page of a server's tools: each a JSON object (`name`, `description`, `inputSchema`).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolsPage {
    pub tools: Vec<serde_json::Value>,
    pub next: Option<String>,
}

/// The tool-call dialect of docs/PROTOCOL.md.
#[derive(Debug)]
pub struct ToolCall;

impl Wire for ToolCall {
    fn dialect(&self) -> Dialect {
        Dialect::ToolCall
    }
    fn subprotocol(&self) -> Option<&'static str> {
        None
    }
    fn token_in_upgrade(&self) -> bool {
        false
    }
    fn hello(&self, session: &str, token: &str) -> String {
        hello_frame(session, token)
    }
    fn after_hello(&self) -> Option<&'static str> {
        None
    }
    fn template(
        &self,
        id_prefix: &str,
        tool: &str,
        args: Option<&str>,
        conn: u32,
        conns: u32,
    ) -> RequestTemplate {
        RequestTemplate::new(id_prefix, tool, args, conn, conns)
    }
    fn classify<'a>(&self, text: &'a str) -> Classified<'a> {
        classify(text)
    }
    fn list_tools(&self, _cursor: Option<&str>) -> String {
        r#"{"op":"list_tools"}"#.into()
    }
    fn result_text(&self, reply: &str) -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(reply).ok()?;
        Some(v.pointer("/outputs/0/text")?.as_str()?.to_owned())
    }
    fn tools_page(&self, text: &str) -> Option<Result<ToolsPage, String>> {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        match v.get("op")?.as_str()? {
            "list_tools_res" => Some(Ok(ToolsPage {
                tools: v.get("tools")?.as_array()?.clone(),
                next: None,
            })),
            "error" => Some(Err(v.to_string())),
            _ => None,
        }
    }
}

/// MCP (`protocol::mcp`), asking for one revision, and for progress notifications when
/// `progress` is set. The session-based revisions open with `initialize`; the stateless one
/// opens with `server/discover` (the hello phase: it checks that the server speaks it) and
/// names the revision in every request's `_meta`.
#[derive(Debug)]
pub struct Mcp {
    pub version: McpVersion,
    pub progress: bool,
}

impl Mcp {
    fn stateless(&self) -> bool {
        self.version.is_stateless()
    }
}

impl Wire for Mcp {
    fn negotiated(&self, hello_answer: &str) -> Result<Option<String>, String> {
        if self.stateless() {
            mcp::discovered(hello_answer).map(Some)
        } else {
            mcp::negotiated(hello_answer).map(Some)
        }
    }
    fn cancel(&self, id_prefix: &str, seq: u64) -> Option<String> {
        Some(mcp::cancelled(&format!("{id_prefix}{seq}")))
    }
    fn stateless_version(&self) -> Option<&'static str> {
        self.stateless().then_some(mcp::STATELESS_VERSION)
    }
    fn list_tools(&self, cursor: Option<&str>) -> String {
        mcp::tools_list_request(cursor, self.stateless())
    }
    fn result_text(&self, reply: &str) -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(reply).ok()?;
        Some(v.pointer("/result/content/0/text")?.as_str()?.to_owned())
    }
    fn tools_page(&self, text: &str) -> Option<Result<ToolsPage, String>> {
        mcp::tools_page(text)
    }
    fn dialect(&self) -> Dialect {
        Dialect::Mcp(self.version)
    }
    fn subprotocol(&self) -> Option<&'static str> {
        Some(mcp::SUBPROTOCOL)
    }
    fn token_in_upgrade(&self) -> bool {
        true
    }
    fn hello(&self, _session: &str, _token: &str) -> String {
        if self.stateless() {
            mcp::discover_frame()
        } else {
            mcp::initialize_frame(self.version.as_str())
        }
    }
    fn after_hello(&self) -> Option<&'static str> {
        (!self.stateless()).then_some(mcp::INITIALIZED)
    }
    fn template(
        &self,
        id_prefix: &str,
        tool: &str,
        args: Option<&str>,
        conn: u32,
        conns: u32,
    ) -> RequestTemplate {
        let meta = mcp::Meta {
            progress: self.progress,
            stateless: self.stateless(),
        };
        mcp::template(id_prefix, tool, args, (conn, conns), meta)
    }
    fn classify<'a>(&self, text: &'a str) -> Classified<'a> {
        mcp::classify(text)
    }
}

/// WebSocket settings both sides use. Frames here are small: an 8 KiB read buffer (instead of
/// tungstenite's eager 128 KiB) holds dozens of them, and keeps 10,000 connections cheap.
pub fn ws_config(max_message_size: usize, connections: u64) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(read_buffer(connections))
        .write_buffer_size(16 << 10)
        .max_message_size(Some(max_message_size))
        .max_frame_size(Some(max_message_size))
}

/// From this many connections on, each starts with a small read buffer.
pub const MANY_CONNECTIONS: u64 = 1000;

/// A connection's read buffer: 8 KiB takes a pipelined burst of replies in one read; among
/// [`MANY_CONNECTIONS`] or more, where most sit idle, 1 KiB keeps an idle connection's cost
/// low (the buffer is filled on every read, so it is resident). A frame larger than the buffer
/// grows that connection's buffer alone.
pub fn read_buffer(connections: u64) -> usize {
    if connections >= MANY_CONNECTIONS {
        1 << 10
    } else {
        8 << 10
    }
}

/// Close code: the first frame was not valid JSON.
pub const CLOSE_INVALID_HELLO: u16 = 4000;
/// Close code: the first frame was not a hello.
pub const CLOSE_MISSING_HELLO: u16 = 4001;
/// Close code: no hello within the server's hello timeout.
pub const CLOSE_HELLO_TIMEOUT: u16 = 4002;
/// Close code: bad token or JWT required.
pub const CLOSE_UNAUTHORIZED: u16 = 4003;
/// Close code: refused by policy (too many connections).
pub const CLOSE_POLICY: u16 = 1008;

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(text: &str) -> Kind {
        classify(text).kind
    }

    #[test]
    fn classifies_every_row_of_the_frame_table() {
        let ack = classify(r#"{"op":"hello_ack","ok":true,"session_id":"bench-1-1"}"#);
        assert_eq!(ack.kind, Kind::HelloAck { ok: true });
        assert_eq!(ack.code, None);
        assert_eq!(
            kind(r#"{"op":"hello_res","ok":true}"#),
            Kind::HelloAck { ok: true }
        );
        let nack = classify(r#"{"op":"hello_ack","ok":false,"error":"unauthorized"}"#);
        assert_eq!(nack.kind, Kind::HelloAck { ok: false });
        assert_eq!(nack.code.as_deref(), Some("unauthorized"));

        let p = classify(r#"{"op":"progress","request_id":"r-1-2","note":"accepted"}"#);
        assert_eq!(p.kind, Kind::Progress);
        assert_eq!(p.request_id.as_deref(), Some("r-1-2"));
        assert!(!p.kind.is_final() && p.kind.is_non_final());
        assert_eq!(
            kind(r#"{"op":"call_tool_ack","request_id":"a","accepted":true,"timeout":300}"#),
            Kind::CallToolAck
        );
        assert_eq!(
            kind(r#"{"op":"stream_chunk","request_id":"a","chunk":"t"}"#),
            Kind::StreamChunk
        );
        let done = classify(r#"{"op":"stream_complete","request_id":"a","metadata":{}}"#);
        assert_eq!(done.kind, Kind::StreamComplete);
        assert!(
            !done.kind.is_final() && done.kind.is_non_final(),
            "a phase, not the end"
        );

        let res = classify(
            r#"{"op":"call_tool_res","request_id":"r-3-42","outputs":[{"type":"text","text":"{\"error\":1}"}]}"#,
        );
        assert_eq!(res.kind, Kind::Result);
        assert!(res.kind.is_final() && res.kind.is_success());
        assert_eq!(res.request_id.as_deref(), Some("r-3-42"));

        let err = classify(
            r#"{"op":"call_tool_res","request_id":"x","error":{"code":"OVER_CAPACITY","message":"m","retry_after":5}}"#,
        );
        assert_eq!(err.kind, Kind::ResultError);
        assert!(err.kind.is_final() && !err.kind.is_success());
        assert_eq!(err.code.as_deref(), Some("OVER_CAPACITY"));
        assert_eq!(err.retry_after, Some(5.0));

        let e1 = classify(r#"{"op":"error","request_id":"x","code":"TIMEOUT","message":"m"}"#);
        assert_eq!(
            (e1.kind, e1.code.as_deref()),
            (Kind::Error, Some("TIMEOUT"))
        );
        assert_eq!(e1.request_id.as_deref(), Some("x"));
        let e2 = classify(r#"{"op":"error","code":"VALIDATION_ERROR","message":"Invalid JSON"}"#);
        assert_eq!(e2.kind, Kind::Error);
        assert_eq!(e2.request_id, None);
        assert_eq!(e2.code.as_deref(), Some("VALIDATION_ERROR"));

        assert_eq!(kind(r#"{"op":"list_tools_res","tools":[]}"#), Kind::Other);
        assert_eq!(kind(r#"{"op":"health_res","ok":true}"#), Kind::Other);
        assert_eq!(kind(r#"{"op":"teleport"}"#), Kind::UnknownOp);
    }

    #[test]
    fn unknown_error_codes_keep_their_name() {
        let c = classify(r#"{"op":"call_tool_res","request_id":"a","error":{"code":"WEIRD_NEW"}}"#);
        assert_eq!(c.code.as_deref(), Some("WEIRD_NEW"));
        let c = classify(r#"{"op":"call_tool_res","request_id":"a","error":{"message":"x"}}"#);
        assert_eq!(c.code.as_deref(), Some("UNKNOWN"));
        let c = classify(r#"{"op":"call_tool_res","request_id":"a","error":"boom"}"#);
        assert_eq!(
            (c.kind, c.code.as_deref()),
            (Kind::ResultError, Some("boom"))
        );
        let c = classify(r#"{"op":"call_tool_res","request_id":"a","error":null}"#);
        assert_eq!(c.kind, Kind::Result);
    }

    #[test]
    fn tolerant_as_protocol_md_says() {
        // A repeated key takes its last value.
        let c = classify(
            r#"{"op":"progress","op":"call_tool_res","request_id":"x","request_id":"y","outputs":[]}"#,
        );
        assert_eq!((c.kind, c.request_id.as_deref()), (Kind::Result, Some("y")));
        // A non-object error beside outputs is a success.
        for e in ["false", r#""""#, "0", "[]", "null", "{}"] {
            let f =
                format!(r#"{{"op":"call_tool_res","request_id":"a","error":{e},"outputs":[]}}"#);
            let want = if e == "{}" {
                Kind::ResultError
            } else {
                Kind::Result
            };
            assert_eq!(kind(&f), want, "{f}");
        }
        // The field daemon's error shapes, with and without op, nested and flat.
        let c = classify(
            r#"{"op":"error","error":{"code":"OVER_CAPACITY","message":"Rate limit exceeded","details":{}}}"#,
        );
        assert_eq!(
            (c.kind, c.code.as_deref(), c.request_id),
            (Kind::Error, Some("OVER_CAPACITY"), None)
        );
        let c = classify(r#"{"error":{"code":"TOOL_NOT_FOUND","message":"Tool not found: x"}}"#);
        assert_eq!(
            (c.kind, c.code.as_deref()),
            (Kind::Error, Some("TOOL_NOT_FOUND"))
        );
        let c = classify(r#"{"op":"error","code":"OVER_CAPACITY","message":"m"}"#);
        assert_eq!(
            (c.kind, c.code.as_deref()),
            (Kind::Error, Some("OVER_CAPACITY"))
        );
        // Trailing garbage after the object is not one object.
        assert_eq!(kind(r#"{"op":"call_tool_res"} x"#), Kind::Malformed);
    }

    #[test]
    fn garbage_is_malformed_and_never_panics() {
        for text in [
            "",
            "not json",
            "[]",
            "42",
            "\"op\"",
            "{",
            "{}",
            r#"{"op":7}"#,
            r#"{"op":null}"#,
            r#"{"op":"call_tool_res","request_id":"a""#,
            "\u{0}\u{ffff}",
        ] {
            assert_eq!(kind(text), Kind::Malformed, "{text:?}");
        }
        // A numeric id is kept as text so that it can never match one of ours.
        let c = classify(r#"{"op":"call_tool_res","request_id":17}"#);
        assert_eq!(c.request_id.as_deref(), Some("17"));
        let c = classify(r#"{"op":"call_tool_res","request_id":{"a":1}}"#);
        assert_eq!((c.kind, c.request_id), (Kind::Result, None));
    }

    #[test]
    fn escaped_ids_are_unescaped() {
        let c = classify(r#"{"op":"call_tool_res","request_id":"a\u002db"}"#);
        assert_eq!(c.request_id.as_deref(), Some("a-b"));
    }

    #[test]
    fn server_frames_classify_as_the_client_expects() {
        assert_eq!(kind(&result_frame("a", "{\"x\":1}")), Kind::Result);
        let frame = result_error_frame("a", "TOOL_NOT_FOUND", "no");
        let c = classify(&frame);
        assert_eq!(c.code.as_deref(), Some("TOOL_NOT_FOUND"));
        assert_eq!(
            kind(&error_frame(None, "INVALID_REQUEST", "x")),
            Kind::Error
        );
        assert!(valid_session_id("bench-17-3"));
        assert!(!valid_session_id("a b"));
        assert!(!valid_session_id("ab"));
    }
}

#[cfg(test)]
mod properties {
    //! The classifier and the server's parser never panic, whatever arrives.
    use super::*;
    use proptest::prelude::*;

    /// Arbitrary JSON values, nested a few levels, with the protocol's field names likely.
    fn json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(serde_json::Value::from),
            "[a-z_]{0,12}".prop_map(serde_json::Value::from),
            prop_oneof![
                Just("call_tool_res"),
                Just("error"),
                Just("hello_ack"),
                Just("progress"),
                Just("stream_complete"),
                Just("call_tool"),
                Just("hello")
            ]
            .prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("op".to_owned()),
                        Just("request_id".to_owned()),
                        Just("error".to_owned()),
                        Just("code".to_owned()),
                        Just("ok".to_owned()),
                        Just("name".to_owned()),
                        Just("arguments".to_owned()),
                        Just("retry_after".to_owned()),
                        "[a-z]{1,6}",
                    ],
                    inner,
                    0..5,
                )
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn classify_takes_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let text = String::from_utf8_lossy(&bytes);
            let c = classify(&text);
            // Whatever it is, a final frame is either a success or a failure, never both.
            prop_assert!(!(c.kind.is_final() && c.kind.is_non_final()));
        }

        #[test]
        fn classify_takes_any_json(v in json()) {
            let text = v.to_string();
            let c = classify(&text);
            if !v.is_object() {
                prop_assert_eq!(c.kind, Kind::Malformed);
            }
            if c.kind == Kind::ResultError || c.kind == Kind::Error {
                prop_assert!(c.code.is_some(), "failures always carry a code");
            }
        }

        #[test]
        fn the_server_parser_takes_anything(v in json(), bytes in prop::collection::vec(any::<u8>(), 0..128)) {
            let _ = parse_inbound(&v.to_string());
            let _ = parse_inbound(&String::from_utf8_lossy(&bytes));
        }
    }
}
