//! The dialect settings of `run`: `--protocol`, `--mcp-version`, `--progress-token` and
//! `--http2`, each checked against the target (an MCP-only setting without MCP is exit 2).

use super::WsUrl;
use super::source::Resolver;
use crate::cli::RunArgs;
use crate::error::ConfigError;
use crate::protocol::{Dialect, McpVersion};

/// What `resolve` settles.
pub(super) struct DialectSettings {
    pub protocol: Dialect,
    pub progress_token: bool,
    pub http2: bool,
}

fn needs(flag: &str, what: &str) -> ConfigError {
    ConfigError::Rejected {
        name: flag.into(),
        reason: what.into(),
    }
}

pub(super) fn resolve(
    args: &RunArgs,
    r: &Resolver,
    url: &WsUrl,
    command: bool,
) -> Result<DialectSettings, ConfigError> {
    let run = |k| ("run", k);
    // A server spoken to on its stdin and stdout, or over HTTP, is an MCP server unless said
    // otherwise.
    let protocol = r.get_or(
        args.protocol.as_ref(),
        "--protocol",
        run("protocol"),
        if command || url.http {
            "mcp"
        } else {
            "tool-call"
        },
        Dialect::parse,
    )?;
    let version = r.get(
        args.mcp_version.as_ref(),
        "--mcp-version",
        run("mcp_version"),
        McpVersion::parse,
    )?;
    let protocol = match (protocol, version) {
        (Dialect::Mcp(_), Some(v)) => Dialect::Mcp(v),
        (Dialect::ToolCall, Some(_)) => return Err(needs("--mcp-version", "needs --protocol mcp")),
        (p, None) => p,
    };
    if url.http && !protocol.is_mcp() && !command {
        return Err(needs(
            "--url",
            "http:// and https:// are MCP's Streamable HTTP: they need --protocol mcp",
        ));
    }
    let progress_token = r.switch(
        args.progress_token,
        "--progress-token",
        run("progress_token"),
    )?;
    if progress_token && !protocol.is_mcp() {
        return Err(needs("--progress-token", "needs --protocol mcp"));
    }
    let http2 = r.switch(args.http2, "--http2", run("http2"))?;
    if http2 && (command || !url.http) {
        return Err(needs(
            "--http2",
            "is for Streamable HTTP: it needs an http:// or https:// --url",
        ));
    }
    Ok(DialectSettings {
        protocol,
        progress_token,
        http2,
    })
}
