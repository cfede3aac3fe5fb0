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

pub use classify::{Classified, Kind, RETRY_AFTER_SANE_S, RetryAfter, classify};
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

/// Whose failure an error frame without a request id is (`--uncorrelated-errors`;
/// PROTOCOL.md section 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Uncorrelated {
    /// Only the one request in flight, and provisionally: that request's own final reply, if
    /// it comes within its timeout, wins and the error is counted uncorrelated.
    #[default]
    Single,
    /// The oldest request in flight, at once: for servers known to answer each connection's
    /// frames in order (one at a time).
    Oldest,
}

impl Uncorrelated {
    pub fn parse(s: &str) -> Result<Uncorrelated, String> {
        match s {
            "single" => Ok(Uncorrelated::Single),
            "oldest" => Ok(Uncorrelated::Oldest),
            _ => Err("expected single or oldest".into()),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Uncorrelated::Single => "single",
            Uncorrelated::Oldest => "oldest",
        }
    }
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
mod tests;
