//! The target's address: a ws://, wss://, http:// or https:// URL, checked and split into
//! what connecting needs.

/// A validated target URL, split for connecting: WebSocket (ws://, wss://) or MCP's Streamable
/// HTTP (http://).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    pub url: String,
    pub host: String,
    pub port: u16,
    /// wss://: TLS before the upgrade.
    pub tls: bool,
    /// `stdio:<command>`: no address; the command is spawned and spoken to on its stdin and
    /// stdout (the URL form of `--command`).
    pub command: Option<String>,
    /// http:// or https://: each message a POST (MCP Streamable HTTP) instead of a WebSocket frame.
    pub http: bool,
}

impl WsUrl {
    /// Accepts `ws://host[:port][/path]`, `wss://...`, `http://...`, `https://...` and
    /// `stdio:<command>`; any other scheme is a usage error.
    pub fn parse(url: &str) -> Result<WsUrl, String> {
        use tokio_tungstenite::tungstenite::http::Uri;
        if let Some(command) = url.strip_prefix("stdio:") {
            let command = command.trim();
            if command.is_empty() {
                return Err("stdio: names no command (stdio:python -m server)".into());
            }
            return Ok(WsUrl {
                url: url.to_owned(),
                host: String::new(),
                port: 0,
                tls: false,
                http: false,
                command: Some(command.to_owned()),
            });
        }
        let uri: Uri = url.parse().map_err(|e| format!("not a URL ({e})"))?;
        let (tls, http) = match uri.scheme_str() {
            Some("ws") => (false, false),
            Some("wss") => (true, false),
            Some("http") => (false, true),
            Some("https") => (true, true),
            Some(other) => {
                return Err(format!(
                    "scheme '{other}' is not ws://, wss://, http://, https:// or stdio:"
                ));
            }
            None => return Err("missing scheme; write ws://host:port".into()),
        };
        let host = uri.host().filter(|h| !h.is_empty()).ok_or("missing host")?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        // The port as written: `Uri` drops one that is not a u16 rather than refusing it.
        let authority = uri.authority().map_or("", |a| a.as_str());
        let written = authority
            .rsplit_once(':')
            .filter(|(_, p)| !p.contains(']'))
            .map(|(_, p)| p);
        let port = match written {
            None | Some("") => {
                if tls {
                    443
                } else {
                    80
                }
            }
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return Err(format!("port {p} is not 1-65535")),
            },
        };
        Ok(WsUrl {
            url: url.to_owned(),
            host,
            port,
            tls,
            http,
            command: None,
        })
    }
}
