//! The server-side parser of client frames: only the fields some op needs, borrowed.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

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
