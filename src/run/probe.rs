//! One session that asks the server for its tools (`wsbench tools`, and the check `run` makes
//! before MCP load that the tool it will call exists). Bounded like any setup: the connect
//! timeout, then at most [`PROBE_LIMIT`] for the answers.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;

use super::connection::{RunSpec, open_session};

/// The longest the probe waits for the tool list once the session is up.
pub const PROBE_LIMIT: Duration = Duration::from_secs(3);
/// Pages of tools read at most (a server whose cursor never ends cannot hold the probe).
const MAX_PAGES: usize = 100;

/// The server's tools, each a JSON object with `name`, `description`, `inputSchema`.
pub async fn list_tools(spec: &RunSpec) -> Result<Vec<serde_json::Value>, String> {
    let mut io = open_session(spec).await?;
    let wire = &spec.wire;
    let listing = async {
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            io.send(Message::text(wire.list_tools(cursor.as_deref())))
                .await
                .map_err(|e| format!("tools/list: {e}"))?;
            let page = loop {
                match io.next().await {
                    Some(Ok(Message::Text(text))) => {
                        if let Some(page) = wire.tools_page(text.as_str()) {
                            break page?;
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(format!("tools/list: {e}")),
                    None => return Err("the server closed before listing its tools".into()),
                }
            };
            tools.extend(page.tools);
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(tools),
            }
        }
        Ok(tools)
    };
    let result = tokio::time::timeout(PROBE_LIMIT, listing)
        .await
        .unwrap_or_else(|_| Err(format!("no tool list within {PROBE_LIMIT:?}")));
    close(io).await;
    result
}

/// Calls a probe makes to find a call's usual result (`--check consistent`).
const REFERENCE_SAMPLES: u64 = 5;

/// The result text most of [`REFERENCE_SAMPLES`] calls of the mix's call `call` got, on one
/// session of its own: what every session's same call should get (`--check consistent`).
pub async fn reference(spec: &RunSpec, call: usize) -> Result<String, String> {
    let c = &spec.mix.calls()[call];
    let prefix = "wsbench-probe-";
    let template = spec.wire.template(prefix, &c.tool, c.args.as_deref(), 0, 1);
    let mut io = open_session(spec).await?;
    let wire = &spec.wire;
    let sample = async {
        let mut buf = String::new();
        for seq in 0..REFERENCE_SAMPLES {
            template.render(seq, &mut buf);
            io.send(Message::text(buf.as_str()))
                .await
                .map_err(|e| format!("{}: {e}", c.tool))?;
        }
        let mut texts: Vec<String> = Vec::new();
        while (texts.len() as u64) < REFERENCE_SAMPLES {
            match io.next().await {
                Some(Ok(Message::Text(text))) => {
                    let k = wire.classify(text.as_str());
                    let ours = k
                        .request_id
                        .as_deref()
                        .is_some_and(|i| i.starts_with(prefix));
                    if ours && k.kind.is_final() {
                        if !k.kind.is_success() {
                            return Err(format!(
                                "{}: the probe's call failed: {text:.120}",
                                c.tool
                            ));
                        }
                        texts.push(wire.result_text(text.as_str()).unwrap_or_default());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("{}: {e}", c.tool)),
                None => return Err("the server closed during the probe".into()),
            }
        }
        // The text most calls got (ties: the first seen).
        let mut best = (0, String::new());
        for t in &texts {
            let n = texts.iter().filter(|o| *o == t).count();
            if n > best.0 {
                best = (n, t.clone());
            }
        }
        Ok(best.1)
    };
    let result = tokio::time::timeout(PROBE_LIMIT, sample)
        .await
        .unwrap_or_else(|_| Err(format!("no reference result within {PROBE_LIMIT:?}")));
    close(io).await;
    result
}

/// Whether a session of the spec's dialect opens: its hello answered and accepted (for MCP
/// 2026-07-28, `server/discover` listing that revision). `Err` says why not.
pub async fn opens(spec: &RunSpec) -> Result<(), String> {
    let io = open_session(spec).await?;
    close(io).await;
    Ok(())
}

/// Ends a probe's session the way a run does: a close, then the peer's end, briefly waited
/// for (a spawned server gets to finish before its process group is killed).
async fn close(mut io: crate::wsio::BoxIo) {
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        let _ = io.send(Message::Close(None)).await;
        while let Some(Ok(_)) = io.next().await {}
    })
    .await;
}

/// The names in a tool list.
pub fn names(tools: &[serde_json::Value]) -> Vec<&str> {
    tools
        .iter()
        .filter_map(|t| t.get("name").and_then(|n| n.as_str()))
        .collect()
}
