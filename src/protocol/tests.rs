//! Unit tests of the module beside this file.
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
    assert_eq!(err.retry_after, Some(RetryAfter::Secs(5.0)));

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
        let f = format!(r#"{{"op":"call_tool_res","request_id":"a","error":{e},"outputs":[]}}"#);
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
