//! Unit tests of the module beside this file.
use super::*;

#[test]
fn each_json_rpc_case_lands_in_its_bucket() {
    let ok = classify(
        r#"{"jsonrpc":"2.0","id":"r-1-0-7","result":{"content":[{"type":"text","text":"x"}]}}"#,
    );
    assert_eq!(
        (ok.kind, ok.request_id.as_deref()),
        (Kind::Result, Some("r-1-0-7"))
    );
    let ok = classify(r#"{"jsonrpc":"2.0","id":"a","result":{"content":[],"isError":false}}"#);
    assert_eq!(ok.kind, Kind::Result);
    let tool = classify(r#"{"jsonrpc":"2.0","id":"a","result":{"content":[],"isError":true}}"#);
    assert_eq!(
        (tool.kind, tool.code.as_deref()),
        (Kind::ResultError, Some(TOOL_ERROR))
    );
    let rpc =
        classify(r#"{"jsonrpc":"2.0","id":"a","error":{"code":-32602,"message":"Unknown tool"}}"#);
    assert_eq!(
        (rpc.kind, rpc.code.as_deref()),
        (Kind::ResultError, Some("-32602"))
    );
    assert_eq!(rpc.request_id.as_deref(), Some("a"));
    let conn =
        classify(r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}"#);
    assert_eq!((conn.kind, conn.request_id), (Kind::Error, None));
    assert_eq!(conn.code.as_deref(), Some("-32700"));
    let p = classify(
        r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"a","progress":1}}"#,
    );
    assert_eq!(
        (p.kind, p.request_id.as_deref()),
        (Kind::Progress, Some("a"))
    );
    assert_eq!(
        classify(r#"{"jsonrpc":"2.0","id":5,"method":"ping"}"#).kind,
        Kind::Other
    );
    assert_eq!(
        classify(r#"{"jsonrpc":"2.0","method":"notifications/message","params":{}}"#).kind,
        Kind::Other
    );
    assert_eq!(classify("[1,2]").kind, Kind::Malformed);
    assert_eq!(
        classify(r#"{"jsonrpc":"2.0","id":"a"}"#).kind,
        Kind::Malformed
    );
    // A numeric id is kept as its text: it never matches a string id we sent.
    assert_eq!(
        classify(r#"{"jsonrpc":"2.0","id":7,"result":{}}"#)
            .request_id
            .as_deref(),
        Some("7")
    );
}

#[test]
fn the_handshake_answer_is_known_by_its_id() {
    let init = initialize_result(&format!("\"{INIT_ID}\""), Some("2025-06-18"));
    assert_eq!(classify(&init).kind, Kind::HelloAck { ok: true });
    assert!(init.contains("2025-06-18"));
    assert!(initialize_result("1", Some("1999-01-01")).contains(LATEST_VERSION));
    let refused = error_response(
        Some(&format!("\"{INIT_ID}\"")),
        INVALID_PARAMS,
        "Unsupported protocol version",
    );
    let c = classify(&refused);
    assert_eq!(
        (c.kind, c.code.as_deref()),
        (Kind::HelloAck { ok: false }, Some("-32602"))
    );
}

#[test]
fn server_builders_and_parser_agree_with_the_classifier() {
    let mut buf = String::new();
    let with_token = Meta {
        progress: true,
        stateless: false,
    };
    template("r-w-0-", "echo", None, (0, 1), with_token).render(5, &mut buf);
    let v: serde_json::Value = serde_json::from_str(&buf).unwrap();
    assert_eq!(v["params"]["_meta"]["progressToken"], "r-w-0-5");
    assert_eq!(v["params"]["arguments"]["id"], "r-w-0-5");
    template("r-w-0-", "echo", None, (0, 1), Meta::default()).render(3, &mut buf);
    let req = parse_request(&buf).unwrap();
    assert_eq!(req.method, "tools/call");
    assert_eq!(
        (req.id, req.name.as_deref()),
        (Some("\"r-w-0-3\""), Some("echo"))
    );
    let args: serde_json::Value = serde_json::from_str(req.arguments.unwrap()).unwrap();
    assert_eq!(args["id"], "r-w-0-3");
    let reply = tool_result(req.id.unwrap(), req.arguments.unwrap(), false);
    let c = classify(&reply);
    assert_eq!(
        (c.kind, c.request_id.as_deref()),
        (Kind::Result, Some("r-w-0-3"))
    );
    let v: serde_json::Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(
        v["result"]["content"][0]["text"].as_str().unwrap(),
        req.arguments.unwrap()
    );
    assert_eq!(
        classify(&tool_result("\"x\"", "no", true)).code.as_deref(),
        Some(TOOL_ERROR)
    );
    let p = progress("\"x\"", 1);
    assert_eq!(classify(&p).request_id.as_deref(), Some("x"));
    assert_eq!(parse_request("{").unwrap_err().0, PARSE_ERROR);
    assert_eq!(parse_request(r#"{"id":1}"#).unwrap_err().0, INVALID_REQUEST);
    let n = parse_request(INITIALIZED).unwrap();
    assert_eq!(
        (n.id, n.method.as_ref()),
        (None, "notifications/initialized")
    );
    assert_eq!(req.meta_version, None);
    let init = initialize_frame(LATEST_VERSION);
    let i = parse_request(&init).unwrap();
    assert_eq!(
        (i.method.as_ref(), i.version.as_deref()),
        ("initialize", Some(LATEST_VERSION))
    );
}

#[test]
fn the_stateless_revision_names_itself_in_every_request() {
    let meta = Meta {
        progress: true,
        stateless: true,
    };
    let mut buf = String::new();
    template("r-w-0-", "echo", Some(r#"{"a":"{{id}}"}"#), (0, 1), meta).render(9, &mut buf);
    let v: serde_json::Value = serde_json::from_str(&buf).unwrap();
    assert_eq!(v["params"]["_meta"]["progressToken"], "r-w-0-9");
    assert_eq!(v["params"]["_meta"][META_VERSION], STATELESS_VERSION);
    assert_eq!(v["params"]["arguments"]["a"], "r-w-0-9");
    let req = parse_request(&buf).unwrap();
    assert_eq!(req.meta_version.as_deref(), Some(STATELESS_VERSION));
    let list: serde_json::Value =
        serde_json::from_str(&tools_list_request(Some("c"), true)).unwrap();
    assert_eq!(list["params"]["cursor"], "c");
    assert_eq!(list["params"]["_meta"][META_VERSION], STATELESS_VERSION);

    let discover = discover_frame();
    let d = parse_request(&discover).unwrap();
    assert_eq!(
        (d.method.as_ref(), d.meta_version.as_deref()),
        ("server/discover", Some(STATELESS_VERSION))
    );
    let answer = discover_result(d.id.unwrap());
    assert_eq!(classify(&answer).kind, Kind::HelloAck { ok: true });
    assert_eq!(discovered(&answer).as_deref(), Ok(STATELESS_VERSION));
    let old = r#"{"jsonrpc":"2.0","id":"wsbench-initialize","result":{"supportedVersions":["2025-11-25"]}}"#;
    assert!(discovered(old).unwrap_err().contains("2025-11-25"));
    let refused = unsupported_version(Some(r#""x""#), "2099-01-01");
    let v: serde_json::Value = serde_json::from_str(&refused).unwrap();
    assert_eq!(v["error"]["code"], UNSUPPORTED_VERSION);
    assert_eq!(v["error"]["data"]["requested"], "2099-01-01");
    assert_eq!(v["id"], "x");
    assert!(tool_result("1", "t", false).contains(r#""resultType":"complete""#));
}
