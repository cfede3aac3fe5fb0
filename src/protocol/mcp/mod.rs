//! The Model Context Protocol as wsbench speaks it over WebSocket (JSON-RPC 2.0, one message per
//! text frame, the `mcp` subprotocol): the client's `initialize` handshake, `tools/call`
//! frames and the classifier of server messages, and the reference server's parser and
//! replies. docs/PROTOCOL.md's MCP section says which JSON-RPC case lands in which bucket.

use std::borrow::Cow;

use super::classify::{fields, raw_scalar, raw_str};
use super::{Classified, Kind, RequestTemplate, push_json_str};

/// The id of the client's `initialize` request; call ids are `<run>-<worker>-<conn>-<seq>`
/// strings, so the two never meet.
pub const INIT_ID: &str = "wsbench-initialize";
/// The newest session-based revision: what the client asks for, and what the server prefers.
pub const LATEST_VERSION: &str = "2025-11-25";
/// The session-based revisions the reference server accepts.
pub const VERSIONS: &[&str] = &["2025-03-26", "2025-06-18", "2025-11-25"];
/// The stateless revision: no `initialize`, every request names it in its `_meta`.
pub const STATELESS_VERSION: &str = "2026-07-28";
/// The `_meta` key of the stateless revision's per-request protocol version.
pub const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// The WebSocket subprotocol the official SDK clients ask for.
pub const SUBPROTOCOL: &str = "mcp";
/// The error code of a failed tool call that the server reported as a result (`isError`).
pub const TOOL_ERROR: &str = "tool_error";

/// JSON-RPC error codes.
pub const PARSE_ERROR: i64 = -32700;
/// 2026-07-28: the `Mcp-Method`/`Mcp-Name` headers do not match the body.
pub const HEADER_MISMATCH: i64 = -32020;
/// 2026-07-28: the request names a protocol version the server does not implement.
pub const UNSUPPORTED_VERSION: i64 = -32022;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;

/// The `initialize` request a session opens with.
pub fn initialize_frame(version: &str) -> String {
    serde_json::json!({
        "jsonrpc": "2.0",
        "id": INIT_ID,
        "method": "initialize",
        "params": {
            "protocolVersion": version,
            "capabilities": {},
            "clientInfo": {"name": "wsbench", "version": env!("CARGO_PKG_VERSION")},
        },
    })
    .to_string()
}

/// The notification that ends the handshake.
pub const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

/// The id of the client's `tools/list` requests.
pub const LIST_ID: &str = "wsbench-tools-list";

/// The `_meta` members every stateless request carries: version, capabilities, client.
fn stateless_meta() -> String {
    format!(
        r#""{META_VERSION}":"{STATELESS_VERSION}","io.modelcontextprotocol/clientCapabilities":{{}},"io.modelcontextprotocol/clientInfo":{{"name":"wsbench","version":"{}"}}"#,
        env!("CARGO_PKG_VERSION")
    )
}

/// The stateless revision's hello: `server/discover` (what the server speaks), with the
/// `initialize` id so that its answer classifies as the hello's.
pub fn discover_frame() -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":"{INIT_ID}","method":"server/discover","params":{{"_meta":{{{}}}}}}}"#,
        stateless_meta()
    )
}

/// The version a `server/discover` result says the session speaks: the stateless one when
/// the server lists it among its `supportedVersions`.
pub fn discovered(answer: &str) -> Result<String, String> {
    let v: serde_json::Value =
        serde_json::from_str(answer).map_err(|_| "the server/discover answer is not JSON")?;
    let supported = v
        .pointer("/result/supportedVersions")
        .and_then(|s| s.as_array())
        .ok_or("the server/discover result names no supportedVersions")?;
    if supported.iter().any(|s| s == STATELESS_VERSION) {
        Ok(STATELESS_VERSION.to_owned())
    } else {
        Err(format!(
            "the server does not speak {STATELESS_VERSION} (it lists {})",
            serde_json::Value::from(supported.clone())
        ))
    }
}

/// `tools/list`, from `cursor` when paging; stateless, with the revision's `_meta`.
pub fn tools_list_request(cursor: Option<&str>, stateless: bool) -> String {
    let mut v = serde_json::json!({"jsonrpc": "2.0", "id": LIST_ID, "method": "tools/list"});
    if let Some(c) = cursor {
        v["params"] = serde_json::json!({ "cursor": c });
    }
    if stateless {
        let meta: serde_json::Value =
            serde_json::from_str(&format!("{{{}}}", stateless_meta())).expect("valid JSON");
        v["params"]["_meta"] = meta;
    }
    v.to_string()
}

/// The answer to [`tools_list_request`], when `text` is it.
pub fn tools_page(text: &str) -> Option<Result<super::ToolsPage, String>> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    if v.get("id")?.as_str()? != LIST_ID {
        return None;
    }
    if let Some(e) = v.get("error") {
        return Some(Err(format!("tools/list failed: {e}")));
    }
    let result = v.get("result")?;
    Some(Ok(super::ToolsPage {
        tools: result.get("tools")?.as_array()?.clone(),
        next: result
            .get("nextCursor")
            .and_then(|c| c.as_str())
            .map(str::to_owned),
    }))
}

/// `notifications/cancelled` for call `id`, sent when the client stops waiting for it.
pub fn cancelled(id: &str) -> String {
    let mut buf = String::with_capacity(96 + id.len());
    buf.push_str(r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"#);
    push_json_str(&mut buf, id);
    buf.push_str(r#","reason":"timed out"}}"#);
    buf
}

/// The `protocolVersion` of an `initialize` result, if it is one this client speaks.
pub fn negotiated(answer: &str) -> Result<String, String> {
    let version = fields(answer, &["result"])
        .and_then(|[r]| r)
        .and_then(|r| fields(r.get(), &["protocolVersion"]))
        .and_then(|[v]| v)
        .and_then(raw_str)
        .ok_or("the initialize result names no protocolVersion")?;
    if VERSIONS.contains(&version.as_ref()) {
        Ok(version.into_owned())
    } else {
        Err(format!(
            "the server chose protocol version {version}, which wsbench does not speak"
        ))
    }
}

/// What a call's `_meta` carries.
#[derive(Debug, Clone, Copy, Default)]
pub struct Meta {
    /// A progress token (the call's own id): the server may send progress notifications.
    pub progress: bool,
    /// The stateless revision's version, capabilities and client info.
    pub stateless: bool,
}

/// `tools/call` frames, split once like the tool-call dialect's.
pub fn template(
    id_prefix: &str,
    tool: &str,
    args: Option<&str>,
    (conn, conns): (u32, u32),
    meta: Meta,
) -> RequestTemplate {
    let name = serde_json::to_string(tool).expect("a string always serializes");
    let mut members = Vec::new();
    if meta.progress {
        members.push(r#""progressToken":"{{id}}""#.to_owned());
    }
    if meta.stateless {
        members.push(stateless_meta());
    }
    let tail = if members.is_empty() {
        "}}".to_owned()
    } else {
        format!(r#","_meta":{{{}}}}}}}"#, members.join(","))
    };
    RequestTemplate::with_frame(
        format!(r#"{{"jsonrpc":"2.0","id":"{id_prefix}"#),
        format!(r#"","method":"tools/call","params":{{"name":{name},"arguments":"#),
        &tail,
        id_prefix,
        args,
        conn,
        conns,
    )
}

const MESSAGE: &[&str; 5] = &["id", "result", "error", "method", "params"];

/// Classifies one server message. Total: any text is some [`Kind`].
///
/// A response with our `initialize` id is the handshake's answer; any other response is final
/// for its id: `result` succeeded unless `isError` is true (then `tool_error`), `error` failed
/// with its numeric code. `notifications/progress` is non-final for the request its
/// `progressToken` names. Other requests and notifications from the server are `Other`.
pub fn classify(text: &str) -> Classified<'_> {
    let bare = |kind| Classified {
        kind,
        request_id: None,
        code: None,
        retry_after: None,
        replayed: false,
    };
    let Some([id, result, error, method, params]) = fields(text, MESSAGE) else {
        return bare(Kind::Malformed);
    };
    let id = id.and_then(raw_scalar).filter(|i| i != "null");
    if let Some(method) = method {
        return match raw_str(method) {
            Some(m) if m == "notifications/progress" => Classified {
                request_id: params
                    .and_then(|p| fields(p.get(), &["progressToken"]))
                    .and_then(|[t]| t)
                    .and_then(raw_scalar),
                ..bare(Kind::Progress)
            },
            Some(_) => bare(Kind::Other),
            None => bare(Kind::Malformed),
        };
    }
    let code = || error.map(error_code);
    if id.as_deref() == Some(INIT_ID) {
        let ok = result.is_some() && error.is_none();
        return Classified {
            code: if ok { None } else { code() },
            request_id: id,
            ..bare(Kind::HelloAck { ok })
        };
    }
    let (mut replayed, mut failed) = (false, false);
    if let (None, Some(r)) = (error, result) {
        (failed, replayed) = result_flags(r.get());
    }
    let kind = match (error, result) {
        (Some(_), _) if id.is_none() => Kind::Error,
        (Some(_), _) => Kind::ResultError,
        (None, Some(_)) if failed => Kind::ResultError,
        (None, Some(_)) => Kind::Result,
        (None, None) => return bare(Kind::Malformed),
    };
    let code = match (kind, error) {
        (Kind::ResultError, None) => Some(Cow::Borrowed(TOOL_ERROR)),
        (Kind::ResultError | Kind::Error, Some(_)) => code(),
        _ => None,
    };
    Classified {
        kind,
        request_id: id,
        code,
        retry_after: None,
        replayed: replayed && kind == Kind::Result,
    }
}

/// The request a server message is about, as the JSON text of its id (`"abc"` with its
/// quotes, or `17`): a response's `id`, a progress notification's `progressToken` (the call's
/// id, as wsbench and the reference server use it). What the server's HTTP side routes by.
pub fn raw_id(text: &str) -> Option<&str> {
    let [id, params] = fields(text, &["id", "params"])?;
    let id = id.or_else(|| {
        params
            .and_then(|p| fields(p.get(), &["progressToken"]))
            .and_then(|[t]| t)
    })?;
    Some(id.get()).filter(|i| *i != "null")
}

/// Whether a `result` object says `isError: true`, and whether the server marked it as
/// answered from its cache (`_meta.from_cache: true`, or `from_cache: true` beside `content`).
fn result_flags(result: &str) -> (bool, bool) {
    let Some([is_error, meta, from_cache]) = fields(result, &["isError", "_meta", "from_cache"])
    else {
        return (false, false);
    };
    let yes = |v: Option<&serde_json::value::RawValue>| v.is_some_and(|v| v.get() == "true");
    let cached = yes(from_cache)
        || meta
            .and_then(|m| fields(m.get(), &["from_cache"]))
            .is_some_and(|[c]| yes(c));
    (yes(is_error), cached)
}

/// A JSON-RPC error's code as text (`-32602`), or `UNKNOWN`.
fn error_code(error: &serde_json::value::RawValue) -> Cow<'static, str> {
    fields(error.get(), &["code"])
        .and_then(|[c]| c)
        .and_then(raw_scalar)
        .map(|c| Cow::Owned(c.into_owned()))
        .unwrap_or(Cow::Borrowed("UNKNOWN"))
}

/// A client message as the reference server reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Request<'a> {
    /// The id's JSON text (`"abc"` with its quotes, or `17`), echoed verbatim in the reply;
    /// `None` for a notification.
    pub id: Option<&'a str>,
    pub method: Cow<'a, str>,
    /// `params.name` of `tools/call`.
    pub name: Option<Cow<'a, str>>,
    /// `params.arguments` of `tools/call`, as JSON text.
    pub arguments: Option<&'a str>,
    /// `params.protocolVersion` of `initialize`.
    pub version: Option<Cow<'a, str>>,
    /// `params._meta["io.modelcontextprotocol/protocolVersion"]`: the stateless revision's
    /// per-request version.
    pub meta_version: Option<Cow<'a, str>>,
}

/// Parses a client message; `Err` is the JSON-RPC error (code, message) to answer with.
pub fn parse_request(text: &str) -> Result<Request<'_>, (i64, String)> {
    let Some([id, _result, _error, method, params]) = fields(text, MESSAGE) else {
        return Err((PARSE_ERROR, "Parse error: not one JSON object".into()));
    };
    let id = id.map(|i| i.get()).filter(|i| *i != "null");
    let Some(method) = method.and_then(raw_str) else {
        return Err((INVALID_REQUEST, "Invalid Request: no method".into()));
    };
    let [name, arguments, version, meta] = params
        .and_then(|p| fields(p.get(), &["name", "arguments", "protocolVersion", "_meta"]))
        .unwrap_or([None, None, None, None]);
    Ok(Request {
        id,
        method,
        name: name.and_then(raw_str),
        arguments: arguments.map(|a| a.get()),
        version: version.and_then(raw_str),
        meta_version: meta
            .and_then(|m| fields(m.get(), &[META_VERSION]))
            .and_then(|[v]| v)
            .and_then(raw_str),
    })
}

/// A JSON-RPC response around `result` JSON text.
fn response(id: &str, result: &str) -> String {
    let mut buf = String::with_capacity(40 + id.len() + result.len());
    buf.push_str(r#"{"jsonrpc":"2.0","id":"#);
    buf.push_str(id);
    buf.push_str(r#","result":"#);
    buf.push_str(result);
    buf.push('}');
    buf
}

/// A tool's text result: `{"content":[{"type":"text","text":…}],"isError":false}`.
pub fn tool_result(id: &str, text: &str, is_error: bool) -> String {
    let mut result = String::with_capacity(48 + text.len() * 2);
    result.push_str(r#"{"content":[{"type":"text","text":"#);
    push_json_str(&mut result, text);
    // `resultType` is the stateless revision's; earlier ones ignore a member they lack.
    result.push_str(if is_error {
        r#"}],"isError":true,"resultType":"complete"}"#
    } else {
        r#"}],"isError":false,"resultType":"complete"}"#
    });
    response(id, &result)
}

/// A JSON-RPC error response (`id` null when the request had none or could not be read).
pub fn error_response(id: Option<&str>, code: i64, message: &str) -> String {
    let mut buf = String::with_capacity(64 + message.len());
    buf.push_str(r#"{"jsonrpc":"2.0","id":"#);
    buf.push_str(id.unwrap_or("null"));
    buf.push_str(&format!(r#","error":{{"code":{code},"message":"#));
    push_json_str(&mut buf, message);
    buf.push_str("}}");
    buf
}

/// The `initialize` result: the version the client asked for when the server speaks it, else
/// the newest it does.
pub fn initialize_result(id: &str, asked: Option<&str>) -> String {
    let version = asked
        .filter(|v| VERSIONS.contains(v))
        .unwrap_or(LATEST_VERSION);
    let result = serde_json::json!({
        "protocolVersion": version,
        "capabilities": {"tools": {"listChanged": false}},
        "serverInfo": {"name": "wsbench-serve", "version": env!("CARGO_PKG_VERSION")},
    });
    response(id, &result.to_string())
}

/// The `server/discover` result: every revision the server speaks, its capabilities.
pub fn discover_result(id: &str) -> String {
    let mut supported: Vec<&str> = VERSIONS.to_vec();
    supported.push(STATELESS_VERSION);
    let result = serde_json::json!({
        "supportedVersions": supported,
        "capabilities": {"tools": {"listChanged": false}},
        "serverInfo": {"name": "wsbench-serve", "version": env!("CARGO_PKG_VERSION")},
        "resultType": "complete",
    });
    response(id, &result.to_string())
}

/// The stateless revision's refusal of a version the server does not implement (-32022,
/// with the version asked for and the ones it has, so that a client can fall back).
pub fn unsupported_version(id: Option<&str>, requested: &str) -> String {
    let mut supported: Vec<&str> = VERSIONS.to_vec();
    supported.push(STATELESS_VERSION);
    serde_json::json!({
        "jsonrpc": "2.0",
        "id": id.and_then(|i| serde_json::from_str::<serde_json::Value>(i).ok()),
        "error": {
            "code": UNSUPPORTED_VERSION,
            "message": format!("Unsupported protocol version: {requested}"),
            "data": {"requested": requested, "supported": supported},
        },
    })
    .to_string()
}

/// `tools/list` result for the given tool list (`[{name, description, inputSchema}]`).
pub fn tools_list_result(id: &str, tools: &serde_json::Value) -> String {
    response(id, &serde_json::json!({ "tools": tools }).to_string())
}

/// An empty result (`ping`).
pub fn empty_result(id: &str) -> String {
    response(id, "{}")
}

/// `notifications/progress` for the request whose id (JSON text) is the progress token.
pub fn progress(token: &str, progress: u64) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","method":"notifications/progress","params":{{"progressToken":{token},"progress":{progress}}}}}"#
    )
}

#[cfg(test)]
mod tests;
