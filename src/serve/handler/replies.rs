//! What the reference server answers, in the dialect it speaks: a tool's result, a failed call,
//! a connection-level error, the tool list.

use crate::protocol::{self, Dialect};

/// A tool's successful reply in the dialect spoken.
pub(super) fn ok_frame(dialect: Dialect, id: &str, text: &str) -> String {
    match dialect {
        Dialect::ToolCall => protocol::result_frame(id, text),
        Dialect::Mcp(_) => protocol::mcp::tool_result(id, text, false),
    }
}

/// A failed call's reply. MCP: an unknown tool or a bad request is a JSON-RPC error; a failure
/// inside the tool (validation, capacity, duplicates) is a result with `isError: true`.
pub(super) fn error_frame(dialect: Dialect, id: &str, code: &str, message: &str) -> String {
    use protocol::mcp;
    match (dialect, code) {
        (Dialect::ToolCall, _) => protocol::result_error_frame(id, code, message),
        (Dialect::Mcp(_), "TOOL_NOT_FOUND") => {
            mcp::error_response(Some(id), mcp::INVALID_PARAMS, message)
        }
        (Dialect::Mcp(_), "INVALID_REQUEST") => {
            mcp::error_response(Some(id), mcp::INVALID_REQUEST, message)
        }
        (Dialect::Mcp(_), _) => mcp::tool_result(id, &format!("{code}: {message}"), true),
    }
}

/// An error about the connection rather than one call.
pub(super) fn conn_error_frame(dialect: Dialect, code: &str, message: &str) -> String {
    use protocol::mcp;
    match dialect {
        Dialect::ToolCall => protocol::error_frame(None, code, message),
        Dialect::Mcp(_) if code == "VALIDATION_ERROR" => {
            mcp::error_response(None, mcp::PARSE_ERROR, message)
        }
        Dialect::Mcp(_) => mcp::error_response(None, mcp::INVALID_REQUEST, message),
    }
}

/// The reference server's tools: name, description, input schema.
pub(super) fn tools(extra: &[(String, std::time::Duration)]) -> serde_json::Value {
    let mut tools = serde_json::json!([
        {"name": "echo", "description": "Returns its arguments as text",
         "inputSchema": {"type": "object"}},
        {"name": "sleep", "description": "Answers after `ms` milliseconds",
         "inputSchema": {"type": "object", "properties": {"ms": {"type": "integer", "minimum": 0}}, "required": ["ms"]}},
        {"name": "status", "description": "The server's counters as JSON text",
         "inputSchema": {"type": "object"}},
    ]);
    if let Some(list) = tools.as_array_mut() {
        for (name, delay) in extra {
            if !["echo", "sleep", "status"].contains(&name.as_str()) {
                list.push(serde_json::json!({
                    "name": name,
                    "description": format!("Returns its arguments as text after {delay:?}"),
                    "inputSchema": {"type": "object"},
                }));
            }
        }
    }
    tools
}

/// `list_tools_res` (the tool-call dialect's list).
pub(super) fn list_tools(extra: &[(String, std::time::Duration)]) -> String {
    serde_json::json!({"op": "list_tools_res", "tools": tools(extra)}).to_string()
}
