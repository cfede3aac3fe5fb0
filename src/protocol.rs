//! The wire protocol of `../shared/PROTOCOL.md`, shared by `run` (client) and `serve` (server):
//! frame builders, the client-side frame classifier and the server-side request parser.
//!
//! Everything here is total: any bytes classify to some [`Kind`], nothing panics. The classifier
//! borrows from the frame and deserializes only `op`, `request_id`, `ok` and the error code, so it
//! costs one pass over the text and no `serde_json::Value`.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde::Deserialize;
use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// WebSocket settings both sides use. Frames here are small: an 8 KiB read buffer (instead of
/// tungstenite's eager 128 KiB) holds dozens of them, and keeps 10,000 connections cheap.
pub fn ws_config(max_message_size: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(8 << 10)
        .write_buffer_size(16 << 10)
        .max_message_size(Some(max_message_size))
        .max_frame_size(Some(max_message_size))
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

/// What a server frame is, as far as a load generator cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `hello_ack` (or the older `hello_res`), with its `ok` flag.
    HelloAck { ok: bool },
    /// `progress` breadcrumb (not final).
    Progress,
    /// `call_tool_ack` (not final).
    CallToolAck,
    /// `stream_chunk` (not final).
    StreamChunk,
    /// `stream_complete`: the end of a stream, not final (the `call_tool_res` follows it).
    StreamComplete,
    /// `call_tool_res` without an `error`: final, success.
    Result,
    /// `call_tool_res` carrying an `error`: final, failure with [`Classified::code`].
    ResultError,
    /// `error` frame; final for its `request_id` when it has one, connection-level otherwise.
    Error,
    /// A known op that is not about a tool call (`list_tools_res`, `health_res`, `stats_res`).
    Other,
    /// A JSON object whose `op` this page does not list.
    UnknownOp,
    /// Not JSON, not an object, no string `op`, or a field of the wrong type.
    Malformed,
    /// A binary frame (the protocol is text only).
    Binary,
}

impl Kind {
    /// Whether this frame ends the request it names.
    pub fn is_final(self) -> bool {
        matches!(self, Kind::Result | Kind::ResultError | Kind::Error)
    }

    /// Whether this final frame means the call succeeded.
    pub fn is_success(self) -> bool {
        self == Kind::Result
    }

    /// Non-final frames about a request: counted and stamped as phases.
    pub fn is_non_final(self) -> bool {
        matches!(
            self,
            Kind::Progress | Kind::CallToolAck | Kind::StreamChunk | Kind::StreamComplete
        )
    }
}

/// A classified server frame, borrowing from the frame text where it can.
#[derive(Debug, Clone, PartialEq)]
pub struct Classified<'a> {
    pub kind: Kind,
    /// The `request_id`, when present (a number is kept as its JSON text, so it never matches).
    pub request_id: Option<Cow<'a, str>>,
    /// The error code: `error.code`, a top-level `code`, or an `error` given as a plain string.
    pub code: Option<Cow<'a, str>>,
    /// `error.retry_after` in seconds, when an error carries one.
    pub retry_after: Option<f64>,
}

impl Classified<'_> {
    fn bare(kind: Kind) -> Self {
        Classified {
            kind,
            request_id: None,
            code: None,
            retry_after: None,
        }
    }
}

/// The raw values of some fields of one JSON object, by the index of their name in the list
/// asked for. A repeated key keeps its last value, as common JSON parsers do (PROTOCOL.md asks
/// for that tolerance); other keys are skipped without being parsed into anything.
struct Fields<const N: usize>(&'static [&'static str; N]);

/// Picks a key's index in the name list without allocating (escaped keys are compared decoded).
struct KeySeed<const N: usize>(&'static [&'static str; N]);

impl<'de, const N: usize> serde::de::DeserializeSeed<'de> for KeySeed<N> {
    type Value = Option<usize>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<const N: usize> serde::de::Visitor<'_> for KeySeed<N> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().position(|n| *n == v))
    }
}

impl<'de, const N: usize> serde::de::DeserializeSeed<'de> for Fields<N> {
    type Value = [Option<&'de RawValue>; N];
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, const N: usize> serde::de::Visitor<'de> for Fields<N> {
    type Value = [Option<&'de RawValue>; N];
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut values = [None; N];
        while let Some(key) = map.next_key_seed(KeySeed(self.0))? {
            match key {
                Some(i) => values[i] = Some(map.next_value::<&'de RawValue>()?),
                None => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(values)
    }
}

/// The named fields of the JSON object `text`; `None` when it is not one object.
fn fields<'a, const N: usize>(
    text: &'a str,
    names: &'static [&'static str; N],
) -> Option<[Option<&'a RawValue>; N]> {
    use serde::de::DeserializeSeed as _;
    let mut de = serde_json::Deserializer::from_str(text);
    let values = Fields(names).deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(values)
}

const HEAD: &[&str; 7] = &[
    "op",
    "request_id",
    "error",
    "code",
    "ok",
    "outputs",
    "message",
];

/// The fields of a server frame the classifier reads.
struct Head<'a> {
    op: Option<&'a RawValue>,
    request_id: Option<&'a RawValue>,
    error: Option<&'a RawValue>,
    code: Option<&'a RawValue>,
    ok: Option<&'a RawValue>,
    outputs: Option<&'a RawValue>,
}

impl<'a> Head<'a> {
    fn parse(text: &'a str) -> Option<Self> {
        let [op, request_id, error, code, ok, outputs, _message] = fields(text, HEAD)?;
        Some(Head {
            op,
            request_id,
            error,
            code,
            ok,
            outputs,
        })
    }
}

/// An `error` object's fields.
struct ErrorObject<'a> {
    code: Option<&'a RawValue>,
    retry_after: Option<&'a RawValue>,
}

impl<'a> ErrorObject<'a> {
    fn parse(text: &'a str) -> Option<Self> {
        let [code, retry_after] = fields(text, &["code", "retry_after"])?;
        Some(ErrorObject { code, retry_after })
    }
}

/// Whether a JSON value is "falsy": false, null, "", 0, [] or {}.
fn falsy(raw: &RawValue) -> bool {
    let t = raw.get().trim();
    matches!(t, "false" | "null" | "\"\"" | "[]" | "{}")
        || t.parse::<f64>().is_ok_and(|n| n == 0.0)
        || (t.starts_with('[') && t[1..t.len().saturating_sub(1)].trim().is_empty())
}

/// A JSON string value, unescaped only when it has escapes.
fn raw_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get();
    if text.starts_with('"') {
        serde_json::from_str::<Cow<'_, str>>(text).ok()
    } else {
        None
    }
}

/// A scalar JSON value as text: strings unescaped, numbers and the rest as written.
fn raw_scalar(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'"') => raw_str(raw),
        Some(b'{') | Some(b'[') | None => None,
        _ => Some(Cow::Borrowed(text)),
    }
}

/// `error.retry_after` as seconds, when the error object carries a number there.
fn retry_after(head: &Head<'_>) -> Option<f64> {
    let obj = ErrorObject::parse(head.error?.get())?;
    obj.retry_after?
        .get()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
}

fn error_code(head: &Head<'_>) -> Option<Cow<'static, str>> {
    // The code is copied out only on error frames, which are rare on the hot path.
    if let Some(err) = head.error {
        let text = err.get();
        if text.starts_with('{') {
            if let Some(obj) = ErrorObject::parse(text)
                && let Some(code) = obj.code.and_then(raw_scalar)
            {
                return Some(Cow::Owned(code.into_owned()));
            }
        } else if text != "null"
            && let Some(code) = raw_scalar(err)
        {
            return Some(Cow::Owned(code.into_owned()));
        }
    }
    head.code
        .and_then(raw_scalar)
        .map(|c| Cow::Owned(c.into_owned()))
}

/// Classifies one text frame from a server. Never panics, whatever the input.
///
/// Tolerance (PROTOCOL.md): a repeated key takes its last value; a `call_tool_res` fails only on
/// an `error` object, or on a truthy non-object `error` with no `outputs` beside it; a frame
/// with no `op` but an `error` object is an error frame (the field's daemon sends
/// `{"error":{"code":"TOOL_NOT_FOUND",…}}` that way).
pub fn classify(text: &str) -> Classified<'_> {
    let Some(head) = Head::parse(text) else {
        return Classified::bare(Kind::Malformed);
    };
    let request_id = head.request_id.and_then(raw_scalar);
    let error_object = head.error.is_some_and(|e| e.get().starts_with('{'));
    let op = match head.op {
        Some(op) => match raw_str(op) {
            Some(op) => op,
            None => return Classified::bare(Kind::Malformed),
        },
        None if error_object => Cow::Borrowed("error"),
        None => return Classified::bare(Kind::Malformed),
    };
    let has_error = match head.error {
        None => false,
        Some(_) if error_object => true,
        Some(e) => head.outputs.is_none() && !falsy(e),
    };
    let kind = match op.as_ref() {
        "hello_ack" | "hello_res" => Kind::HelloAck {
            ok: head.ok.is_some_and(|v| v.get() == "true"),
        },
        "progress" => Kind::Progress,
        "call_tool_ack" => Kind::CallToolAck,
        "stream_chunk" => Kind::StreamChunk,
        "stream_complete" => Kind::StreamComplete,
        "call_tool_res" if has_error => Kind::ResultError,
        "call_tool_res" => Kind::Result,
        "error" => Kind::Error,
        "list_tools_res" | "health_res" | "stats_res" => Kind::Other,
        _ => Kind::UnknownOp,
    };
    let code = match kind {
        Kind::ResultError | Kind::Error | Kind::HelloAck { ok: false } => {
            Some(error_code(&head).unwrap_or(Cow::Borrowed("UNKNOWN")))
        }
        _ => None,
    };
    let retry_after = if matches!(kind, Kind::ResultError | Kind::Error) {
        retry_after(&head)
    } else {
        None
    };
    Classified {
        kind,
        request_id,
        code,
        retry_after,
    }
}

/// The `hello` frame a client opens with.
pub fn hello_frame(session_id: &str, token: &str) -> String {
    serde_json::json!({"op": "hello", "session_id": session_id, "token": token}).to_string()
}

/// Builds `call_tool` frames from a template split once at start-up, so each request costs a
/// few `push_str`s into a reused buffer and no JSON tree.
#[derive(Debug, Clone)]
pub struct RequestTemplate {
    /// `{"op":"call_tool","request_id":"` + the id prefix (`<run>-<conn>-`).
    head: String,
    /// The id prefix alone, for `{{id}}`.
    id_prefix: String,
    /// `","name":<name>,"arguments":`
    after_id: String,
    /// The arguments, split at their placeholders.
    args: Vec<Piece>,
    /// `{{seq}}` = local sequence * `stride` + `offset`: unique across the run's connections.
    stride: u64,
    offset: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Seq,
    Id,
}

/// Replaced by a number unique within the run (connections interleave, never collide).
pub const SEQ_PLACEHOLDER: &str = "{{seq}}";
/// Replaced by the request id, unique across runs and machines (use inside a JSON string).
pub const ID_PLACEHOLDER: &str = "{{id}}";
/// Arguments when the user gives none: distinct for every call, so servers that deduplicate
/// or cache by content (PROTOCOL.md section 4) are measured working, not answering from cache.
pub const DEFAULT_ARGS: &str = r#"{"seq":{{seq}},"id":"{{id}}"}"#;

fn split_placeholders(args: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut rest = args;
    loop {
        let next = [(SEQ_PLACEHOLDER, Piece::Seq), (ID_PLACEHOLDER, Piece::Id)]
            .into_iter()
            .filter_map(|(p, piece)| rest.find(p).map(|i| (i, p.len(), piece)))
            .min_by_key(|(i, _, _)| *i);
        match next {
            Some((i, len, piece)) => {
                if i > 0 {
                    pieces.push(Piece::Text(rest[..i].to_owned()));
                }
                pieces.push(piece);
                rest = &rest[i + len..];
            }
            None => {
                if !rest.is_empty() {
                    pieces.push(Piece::Text(rest.to_owned()));
                }
                return pieces;
            }
        }
    }
}

impl RequestTemplate {
    /// Template for connection `conn` of `conns`. `args` is the arguments JSON text with
    /// optional placeholders; `None` means [`DEFAULT_ARGS`].
    pub fn new(id_prefix: &str, tool: &str, args: Option<&str>, conn: u32, conns: u32) -> Self {
        let name = serde_json::to_string(tool).expect("a string always serializes");
        RequestTemplate {
            head: format!(r#"{{"op":"call_tool","request_id":"{id_prefix}"#),
            id_prefix: id_prefix.to_owned(),
            after_id: format!(r#"","name":{name},"arguments":"#),
            args: split_placeholders(args.unwrap_or(DEFAULT_ARGS)),
            stride: u64::from(conns.max(1)),
            offset: u64::from(conn),
        }
    }

    /// Writes the frame for this connection's request `seq` into `buf` (cleared first).
    pub fn render(&self, seq: u64, buf: &mut String) {
        buf.clear();
        buf.push_str(&self.head);
        let _ = write!(buf, "{seq}");
        buf.push_str(&self.after_id);
        self.push_args(seq, buf);
        buf.push('}');
    }

    /// The arguments request `seq` was sent with (to check an echo against).
    pub fn render_args(&self, seq: u64, buf: &mut String) {
        buf.clear();
        self.push_args(seq, buf);
    }

    fn push_args(&self, seq: u64, buf: &mut String) {
        for piece in &self.args {
            match piece {
                Piece::Text(t) => buf.push_str(t),
                Piece::Seq => {
                    let _ = write!(buf, "{}", seq * self.stride + self.offset);
                }
                Piece::Id => {
                    buf.push_str(&self.id_prefix);
                    let _ = write!(buf, "{seq}");
                }
            }
        }
    }
}

/// Checks a user's `--args` text: with placeholders filled in it must be a JSON object.
pub fn validate_args(args: &str) -> Result<(), String> {
    let probe = args
        .replace(SEQ_PLACEHOLDER, "0")
        .replace(ID_PLACEHOLDER, "x-0-0");
    match serde_json::from_str::<serde_json::Value>(&probe) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        Ok(_) => Err("must be a JSON object".into()),
        Err(e) => Err(format!("is not valid JSON: {e}")),
    }
}

/// A client frame as the server reads it: only the fields some op needs, borrowed.
#[derive(Debug, Default, Deserialize)]
pub struct Inbound<'a> {
    #[serde(borrow)]
    pub op: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub request_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub arguments: Option<&'a RawValue>,
    #[serde(borrow)]
    pub session_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub token: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub jwt: Option<Cow<'a, str>>,
}

/// Parses a client frame. `Err` carries the JSON error text for the server's error frame.
pub fn parse_inbound(text: &str) -> Result<Inbound<'_>, String> {
    serde_json::from_str(text).map_err(|e| e.to_string())
}

/// Whether a session id is 3-64 characters of `[A-Za-z0-9_-]`.
pub fn valid_session_id(id: &str) -> bool {
    (3..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Appends `s` as a JSON string literal (quotes included).
pub fn push_json_str(buf: &mut String, s: &str) {
    // serde_json's escaper is the reference; a String sink cannot fail.
    buf.push_str(&serde_json::to_string(s).expect("a string always serializes"));
}

/// `{"op":"call_tool_res","request_id":…,"outputs":[{"type":"text","text":…}]}`
pub fn result_frame(request_id: &str, text: &str) -> String {
    let mut buf = String::with_capacity(64 + request_id.len() + text.len() * 2);
    buf.push_str(r#"{"op":"call_tool_res","request_id":"#);
    push_json_str(&mut buf, request_id);
    buf.push_str(r#","outputs":[{"type":"text","text":"#);
    push_json_str(&mut buf, text);
    buf.push_str("}]}");
    buf
}

/// `call_tool_res` carrying an error object.
pub fn result_error_frame(request_id: &str, code: &str, message: &str) -> String {
    serde_json::json!({
        "op": "call_tool_res",
        "request_id": request_id,
        "error": {"code": code, "message": message},
    })
    .to_string()
}

/// An `error` frame, with or without a `request_id`.
pub fn error_frame(request_id: Option<&str>, code: &str, message: &str) -> String {
    let mut v = serde_json::json!({"op": "error", "code": code, "message": message});
    if let Some(id) = request_id {
        v["request_id"] = serde_json::Value::from(id);
    }
    v.to_string()
}

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
    fn template_renders_valid_distinct_frames() {
        let t = RequestTemplate::new("run1-3-", "echo", None, 3, 4);
        let mut buf = String::new();
        t.render(42, &mut buf);
        let v: serde_json::Value = serde_json::from_str(&buf).unwrap();
        assert_eq!(v["op"], "call_tool");
        assert_eq!(v["request_id"], "run1-3-42");
        assert_eq!(v["name"], "echo");
        assert_eq!(
            v["arguments"],
            serde_json::json!({"seq": 42 * 4 + 3, "id": "run1-3-42"})
        );

        let t = RequestTemplate::new(
            "p-0-",
            "we\"ird",
            Some(r#"{"a":"x{{seq}}","b":{{seq}},"c":"{{id}}"}"#),
            0,
            1,
        );
        t.render(7, &mut buf);
        let v: serde_json::Value = serde_json::from_str(&buf).unwrap();
        assert_eq!(v["name"], "we\"ird");
        assert_eq!(
            v["arguments"],
            serde_json::json!({"a": "x7", "b": 7, "c": "p-0-7"})
        );
    }

    #[test]
    fn seq_is_unique_across_connections() {
        let mut seen = std::collections::HashSet::new();
        let mut buf = String::new();
        for conn in 0..3 {
            let t = RequestTemplate::new("r-", "echo", Some(r#"{"n":{{seq}}}"#), conn, 3);
            for seq in 0..10 {
                t.render(seq, &mut buf);
                let v: serde_json::Value = serde_json::from_str(&buf).unwrap();
                assert!(seen.insert(v["arguments"]["n"].as_u64().unwrap()));
            }
        }
    }

    #[test]
    fn args_must_be_an_object() {
        assert!(validate_args(r#"{"n":{{seq}}}"#).is_ok());
        assert!(validate_args("[1]").is_err());
        assert!(validate_args("{nope").is_err());
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
