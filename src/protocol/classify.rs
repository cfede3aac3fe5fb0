//! The client-side classifier: what a server frame is, borrowing from its text. Total (any bytes
//! classify to some [`Kind`]), one pass over the text, no `serde_json::Value`; tolerant as
//! docs/PROTOCOL.md section 5 says.

use std::borrow::Cow;

use serde_json::value::RawValue;

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
    /// `error.retry_after`, when an error carries one.
    pub retry_after: Option<RetryAfter>,
    /// A success the server marked as answered from its cache (`"from_cache": true`).
    pub replayed: bool,
}

/// The longest `retry_after` taken at its word; anything longer is absurd (a day).
pub const RETRY_AFTER_SANE_S: f64 = 86_400.0;

/// A server's `retry_after`, read as it was written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RetryAfter {
    /// A number of seconds from 0 to a day.
    Secs(f64),
    /// Negative, or not a number: it asks for no pause that can be honoured.
    Invalid,
    /// Not finite, or beyond a day: it asks for a pause that can only be clamped.
    Absurd,
}

impl RetryAfter {
    /// How a raw JSON value reads as a pause.
    pub fn read(raw: &str) -> RetryAfter {
        let text = raw.trim().trim_matches('"');
        match text.parse::<f64>() {
            Ok(s) if s.is_nan() || s < 0.0 => RetryAfter::Invalid,
            Ok(s) if !s.is_finite() || s > RETRY_AFTER_SANE_S => RetryAfter::Absurd,
            Ok(s) => RetryAfter::Secs(s),
            Err(_) => RetryAfter::Invalid,
        }
    }
}

impl Classified<'_> {
    fn bare(kind: Kind) -> Self {
        Classified {
            kind,
            request_id: None,
            code: None,
            retry_after: None,
            replayed: false,
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
pub(super) fn fields<'a, const N: usize>(
    text: &'a str,
    names: &'static [&'static str; N],
) -> Option<[Option<&'a RawValue>; N]> {
    use serde::de::DeserializeSeed as _;
    let mut de = serde_json::Deserializer::from_str(text);
    let values = Fields(names).deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(values)
}

const HEAD: &[&str; 8] = &[
    "op",
    "request_id",
    "error",
    "code",
    "ok",
    "outputs",
    "message",
    "from_cache",
];

/// The fields of a server frame the classifier reads.
struct Head<'a> {
    op: Option<&'a RawValue>,
    request_id: Option<&'a RawValue>,
    error: Option<&'a RawValue>,
    code: Option<&'a RawValue>,
    ok: Option<&'a RawValue>,
    outputs: Option<&'a RawValue>,
    from_cache: Option<&'a RawValue>,
}

impl<'a> Head<'a> {
    fn parse(text: &'a str) -> Option<Self> {
        let [
            op,
            request_id,
            error,
            code,
            ok,
            outputs,
            _message,
            from_cache,
        ] = fields(text, HEAD)?;
        Some(Head {
            op,
            request_id,
            error,
            code,
            ok,
            outputs,
            from_cache,
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
pub(super) fn raw_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get();
    if text.starts_with('"') {
        serde_json::from_str::<Cow<'_, str>>(text).ok()
    } else {
        None
    }
}

/// A scalar JSON value as text: strings unescaped, numbers and the rest as written.
pub(super) fn raw_scalar(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'"') => raw_str(raw),
        Some(b'{') | Some(b'[') | None => None,
        _ => Some(Cow::Borrowed(text)),
    }
}

/// `error.retry_after`, when the error object carries one (a number, or a number as text).
fn retry_after(head: &Head<'_>) -> Option<RetryAfter> {
    let obj = ErrorObject::parse(head.error?.get())?;
    obj.retry_after
        .filter(|r| r.get() != "null")
        .map(|r| RetryAfter::read(r.get()))
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
        replayed: kind == Kind::Result && head.from_cache.is_some_and(|v| v.get() == "true"),
    }
}
