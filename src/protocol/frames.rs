//! Frame builders both sides send: the client's hello, the server's results and errors.

/// The `hello` frame a client opens with.
pub fn hello_frame(session_id: &str, token: &str) -> String {
    serde_json::json!({"op": "hello", "session_id": session_id, "token": token}).to_string()
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
