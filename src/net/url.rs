//! The target's address: a ws://, wss:// or http:// URL, checked and split into what
//! connecting needs.

/// A validated target URL, split for connecting: WebSocket (ws://, wss://) or MCP's Streamable
/// HTTP (http://).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    pub url: String,
    pub host: String,
    pub port: u16,
    /// wss://: TLS before the upgrade.
    pub tls: bool,
    /// http://: each message a POST (MCP Streamable HTTP) instead of a WebSocket frame.
    pub http: bool,
}

impl WsUrl {
    /// Accepts `ws://host[:port][/path]`, `wss://...` and `http://...`; any other scheme is a
    /// usage error.
    pub fn parse(url: &str) -> Result<WsUrl, String> {
        use tokio_tungstenite::tungstenite::http::Uri;
        let uri: Uri = url.parse().map_err(|e| format!("not a URL ({e})"))?;
        let (tls, http) = match uri.scheme_str() {
            Some("ws") => (false, false),
            Some("wss") => (true, false),
            Some("http") => (false, true),
            Some("https") => return Err("https:// is not supported yet; use http://".into()),
            Some(other) => return Err(format!("scheme '{other}' is not ws://, wss:// or http://")),
            None => return Err("missing scheme; write ws://host:port".into()),
        };
        let host = uri.host().filter(|h| !h.is_empty()).ok_or("missing host")?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        Ok(WsUrl {
            url: url.to_owned(),
            host,
            port: uri.port_u16().unwrap_or(if tls { 443 } else { 80 }),
            tls,
            http,
        })
    }
}
