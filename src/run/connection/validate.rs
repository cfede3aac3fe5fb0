//! Sampled reply validation (`--validate-sample`): a successful reply's `outputs` checked
//! against a JSON Schema, or for the echo tool against the arguments the request was sent with.

/// Sampled response validation, compiled once per run.
#[derive(Debug)]
pub struct Validation {
    pub sample: f64,
    /// JSON Schema for `outputs`; `None` = the echo check.
    pub schema: Option<jsonschema::Validator>,
}

/// What `--check isolation` found in one reply.
#[derive(Debug, PartialEq)]
pub(super) enum Isolation {
    /// The reply echoes this request's own id.
    Own,
    /// It echoes the id of another of the run's sessions: a reply mixed up between sessions.
    CrossSession(String),
    /// Something else (no text, not JSON, no value at the pointer, another request's id on
    /// this session): not this request's answer either.
    Wrong(String),
}

/// Reads the value at `pointer` in the tool's answer `text` and compares it with `own` (this
/// request's id); `session` is this connection's id prefix, `run` the run's.
pub(super) fn isolation(
    text: Option<String>,
    pointer: &str,
    own: &str,
    session: &str,
    run: &str,
) -> Isolation {
    let Some(text) = text else {
        return Isolation::Wrong("the result carries no text".into());
    };
    let found = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| {
            v.pointer(pointer)
                .and_then(|x| x.as_str())
                .map(str::to_owned)
        });
    match found {
        Some(id) if id == own => Isolation::Own,
        Some(id) if id.starts_with(run) && !id.starts_with(session) => {
            Isolation::CrossSession(format!("got {id} for {own}"))
        }
        Some(id) => Isolation::Wrong(format!("got {id} for {own}")),
        None => Isolation::Wrong(format!("no string at {pointer} in {text:.80}")),
    }
}

/// Replies described when they fail validation, per connection.
pub(super) const MAX_EXAMPLES: usize = 3;

impl Validation {
    /// Checks one successful reply. `expected_args` renders what request `seq` was sent with.
    pub(super) fn check(
        &self,
        reply: &str,
        expected_args: impl FnOnce() -> String,
    ) -> Result<(), String> {
        let v: serde_json::Value =
            serde_json::from_str(reply).map_err(|e| format!("reply is not JSON: {e}"))?;
        let outputs = v.get("outputs").ok_or("reply has no outputs")?;
        match &self.schema {
            Some(schema) => match schema.iter_errors(outputs).next() {
                None => Ok(()),
                Some(e) => Err(format!(
                    "outputs do not match the schema: {e} at {}",
                    e.instance_path()
                )),
            },
            None => {
                let text = outputs
                    .get(0)
                    .and_then(|o| o.get("text"))
                    .and_then(|t| t.as_str())
                    .ok_or("echo reply has no outputs[0].text")?;
                let got: serde_json::Value = serde_json::from_str(text)
                    .map_err(|_| format!("echo text is not the arguments: {text:.80}"))?;
                let want: serde_json::Value =
                    serde_json::from_str(&expected_args()).map_err(|e| e.to_string())?;
                if got == want {
                    Ok(())
                } else {
                    Err(format!("echo returned {got:.80} for arguments {want:.80}"))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo(args: &str) -> String {
        crate::protocol::result_frame("r-0", args)
    }

    #[test]
    fn the_echo_check_compares_values_not_text() {
        let v = Validation {
            sample: 1.0,
            schema: None,
        };
        assert!(
            v.check(&echo(r#"{"b":2,"a":1}"#), || r#"{"a":1,"b":2}"#.into())
                .is_ok()
        );
        let err = v
            .check(&echo(r#"{"a":1}"#), || r#"{"a":2}"#.into())
            .unwrap_err();
        assert!(err.contains("echo returned"), "{err}");
        assert!(v.check("not json", || "{}".into()).is_err());
        assert!(
            v.check(r#"{"op":"call_tool_res"}"#, || "{}".into())
                .is_err()
        );
    }

    #[test]
    fn isolation_tells_another_sessions_value_from_a_wrong_one() {
        let text = |id: &str| Some(format!(r#"{{"seq":1,"id":"{id}"}}"#));
        let check = |t| isolation(t, "/id", "r-w-3-7", "r-w-3-", "r-");
        assert_eq!(check(text("r-w-3-7")), Isolation::Own);
        assert!(matches!(check(text("r-w-5-2")), Isolation::CrossSession(_)));
        assert!(matches!(check(text("r-w-3-6")), Isolation::Wrong(_)));
        assert!(matches!(check(Some("{}".into())), Isolation::Wrong(_)));
        assert!(matches!(check(None), Isolation::Wrong(_)));
    }

    #[test]
    fn a_schema_checks_the_outputs() {
        let schema = serde_json::json!({"type": "array", "minItems": 2});
        let v = Validation {
            sample: 1.0,
            schema: Some(jsonschema::validator_for(&schema).unwrap()),
        };
        let err = v.check(&echo("{}"), || "{}".into()).unwrap_err();
        assert!(err.contains("do not match the schema"), "{err}");
    }
}
