//! `call_tool` frames from a template split once at start-up: each request costs a few
//! `push_str`s into a reused buffer, with `{{seq}}` and `{{id}}` filled in.

use std::fmt::Write as _;

/// Builds `call_tool` frames from a template split once at start-up, so each request costs a
/// few `push_str`s into a reused buffer and no JSON tree.
#[derive(Debug, Clone)]
pub struct RequestTemplate {
    /// `{"op":"call_tool","request_id":"` + the id prefix (`<run>-<conn>-`).
    head: String,
    /// The id prefix alone, for `{{id}}`.
    id_prefix: String,
    /// `","name":<name>,"arguments":`
    after_id: String,
    /// What closes the frame after the arguments (`}`), split at its `{{id}}`s.
    tail: Vec<Piece>,
    /// The arguments, split at their placeholders.
    args: Vec<Piece>,
    /// `{{seq}}` = local sequence * `stride` + `offset`: unique across the run's connections.
    stride: u64,
    offset: u64,
    /// `--data`: the rows `{{row.<column>}}` take their text from (request `{{seq}}` of the
    /// run takes the row its mode picks for that number).
    data: Option<super::rows::Data>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Seq,
    Id,
    /// `{{row.<column>}}`, by column name until the rows are known, then by index.
    RowName(String),
    Row(usize),
    /// `{{previous.<json pointer>}}`: from the session's last answer.
    Previous(String),
}

/// `{{previous.<json pointer>}}`: the value at the pointer in the result text of the
/// session's previous answer (a string's contents escaped, any other value as JSON).
pub const PREVIOUS_PLACEHOLDER: &str = "{{previous.";

/// Replaced by a number unique within the run (connections interleave, never collide).
pub const SEQ_PLACEHOLDER: &str = "{{seq}}";
/// Replaced by the request id, unique across runs and machines (use inside a JSON string).
pub const ID_PLACEHOLDER: &str = "{{id}}";
/// Arguments when the user gives none: distinct for every call, so servers that deduplicate
/// or cache by content (PROTOCOL.md section 4) are measured working, not answering from cache.
pub const DEFAULT_ARGS: &str = r#"{"seq":{{seq}},"id":"{{id}}"}"#;

fn split_placeholders(args: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut rest = args;
    loop {
        let row = rest.find(super::rows::ROW_PLACEHOLDER).and_then(|i| {
            let after = &rest[i + super::rows::ROW_PLACEHOLDER.len()..];
            let end = after.find("}}")?;
            let len = super::rows::ROW_PLACEHOLDER.len() + end + 2;
            Some((i, len, Piece::RowName(after[..end].to_owned())))
        });
        let previous = rest.find(PREVIOUS_PLACEHOLDER).and_then(|i| {
            let after = &rest[i + PREVIOUS_PLACEHOLDER.len()..];
            let end = after.find("}}")?;
            let len = PREVIOUS_PLACEHOLDER.len() + end + 2;
            Some((i, len, Piece::Previous(after[..end].to_owned())))
        });
        let next = [(SEQ_PLACEHOLDER, Piece::Seq), (ID_PLACEHOLDER, Piece::Id)]
            .into_iter()
            .filter_map(|(p, piece)| rest.find(p).map(|i| (i, p.len(), piece)))
            .chain(row)
            .chain(previous)
            .min_by_key(|(i, _, _)| *i);
        match next {
            Some((i, len, piece)) => {
                if i > 0 {
                    pieces.push(Piece::Text(rest[..i].to_owned()));
                }
                pieces.push(piece);
                rest = &rest[i + len..];
            }
            None => {
                if !rest.is_empty() {
                    pieces.push(Piece::Text(rest.to_owned()));
                }
                return pieces;
            }
        }
    }
}

impl RequestTemplate {
    /// Template for connection `conn` of `conns`. `args` is the arguments JSON text with
    /// optional placeholders; `None` means [`DEFAULT_ARGS`].
    pub fn new(id_prefix: &str, tool: &str, args: Option<&str>, conn: u32, conns: u32) -> Self {
        let name = serde_json::to_string(tool).expect("a string always serializes");
        RequestTemplate::with_frame(
            format!(r#"{{"op":"call_tool","request_id":"{id_prefix}"#),
            format!(r#"","name":{name},"arguments":"#),
            "}",
            id_prefix,
            args,
            conn,
            conns,
        )
    }

    /// A template for any dialect's frame: `head` ends where the id's sequence number goes,
    /// `after_id` runs from there to the arguments, `tail` closes the frame (an `{{id}}` in it
    /// is the request id again, as MCP's progress token).
    pub fn with_frame(
        head: String,
        after_id: String,
        tail: &str,
        id_prefix: &str,
        args: Option<&str>,
        conn: u32,
        conns: u32,
    ) -> Self {
        RequestTemplate {
            head,
            id_prefix: id_prefix.to_owned(),
            after_id,
            tail: split_placeholders(tail),
            args: split_placeholders(args.unwrap_or(DEFAULT_ARGS)),
            stride: u64::from(conns.max(1)),
            offset: u64::from(conn),
            data: None,
        }
    }

    /// Takes `{{row.<column>}}` text from these rows; `Err` names a column they lack.
    pub fn with_data(mut self, data: super::rows::Data) -> Result<Self, String> {
        for piece in self.args.iter_mut().chain(self.tail.iter_mut()) {
            if let Piece::RowName(name) = piece {
                let col = data
                    .rows
                    .column(name)
                    .ok_or_else(|| format!("the data has no column '{name}'"))?;
                *piece = Piece::Row(col);
            }
        }
        self.data = Some(data);
        Ok(self)
    }

    /// Whether request `seq` has no row left to take (`--data-mode unique` ran out).
    pub fn exhausted(&self, seq: u64) -> bool {
        self.data
            .as_ref()
            .is_some_and(|d| d.row_for(seq * self.stride + self.offset).is_none())
    }

    /// Whether the arguments take anything from the previous answer.
    pub fn uses_previous(&self) -> bool {
        self.args
            .iter()
            .chain(&self.tail)
            .any(|p| matches!(p, Piece::Previous(_)))
    }

    /// [`RequestTemplate::render`] with the session's previous answer (its result text, as
    /// JSON) for `{{previous.<pointer>}}`.
    pub fn render_after(&self, seq: u64, previous: Option<&serde_json::Value>, buf: &mut String) {
        buf.clear();
        buf.push_str(&self.head);
        let _ = write!(buf, "{seq}");
        buf.push_str(&self.after_id);
        for piece in self.args.iter().chain(&self.tail) {
            self.push_piece(piece, seq, previous, buf);
        }
    }

    /// Writes the frame for this connection's request `seq` into `buf` (cleared first).
    pub fn render(&self, seq: u64, buf: &mut String) {
        self.render_after(seq, None, buf);
    }

    /// The arguments request `seq` was sent with (to check an echo against).
    pub fn render_args(&self, seq: u64, buf: &mut String) {
        buf.clear();
        self.push_args(seq, buf);
    }

    fn push_args(&self, seq: u64, buf: &mut String) {
        for piece in &self.args {
            self.push_piece(piece, seq, None, buf);
        }
    }

    fn push_piece(
        &self,
        piece: &Piece,
        seq: u64,
        previous: Option<&serde_json::Value>,
        buf: &mut String,
    ) {
        match piece {
            Piece::Text(t) => buf.push_str(t),
            Piece::Seq => {
                let _ = write!(buf, "{}", seq * self.stride + self.offset);
            }
            Piece::Id => {
                buf.push_str(&self.id_prefix);
                let _ = write!(buf, "{seq}");
            }
            Piece::Row(col) => self.push_cell(seq, *col, buf),
            // Unresolved: no rows were given (the configuration refuses that before).
            Piece::RowName(_) => {}
            Piece::Previous(pointer) => match previous.and_then(|v| v.pointer(pointer)) {
                Some(serde_json::Value::String(text)) => {
                    let quoted = serde_json::to_string(text).unwrap_or_default();
                    buf.push_str(quoted.get(1..quoted.len() - 1).unwrap_or(""));
                }
                Some(v) => {
                    let _ = write!(buf, "{v}");
                }
                None => buf.push_str("null"),
            },
        }
    }

    fn push_cell(&self, seq: u64, col: usize, buf: &mut String) {
        if let Some(d) = &self.data
            && let Some(row) = d.row_for(seq * self.stride + self.offset)
        {
            buf.push_str(d.rows.cell(row, col));
        }
    }
}

/// Checks a user's `--args` text: with placeholders filled in it must be a JSON object.
pub fn validate_args(args: &str) -> Result<(), String> {
    let mut probe = args
        .replace(SEQ_PLACEHOLDER, "0")
        .replace(ID_PLACEHOLDER, "x-0-0");
    // A row's cell is a string's contents or a JSON value: 0 stands in for either.
    for col in super::rows::row_columns(args) {
        probe = probe.replace(&format!("{}{col}}}}}", super::rows::ROW_PLACEHOLDER), "0");
    }
    while let Some(i) = probe.find(PREVIOUS_PLACEHOLDER) {
        let Some(end) = probe[i..].find("}}") else {
            break;
        };
        probe.replace_range(i..i + end + 2, "0");
    }
    // What is left in double braces with a name inside is a placeholder wsbench does not have
    // (a typo would otherwise be sent as literal text, or break the JSON far from its cause).
    if let Some(i) = probe.find("{{") {
        let name: String = probe[i + 2..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || "_.-/".contains(*c))
            .collect();
        if !name.is_empty() && probe[i + 2 + name.len()..].starts_with("}}") {
            return Err(format!(
                "unknown placeholder {{{{{name}}}}} (there are {{{{seq}}}}, {{{{id}}}}, \
                 {{{{row.<column>}}}} and {{{{previous.<pointer>}}}})"
            ));
        }
    }
    match serde_json::from_str::<serde_json::Value>(&probe) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        Ok(_) => Err("must be a JSON object".into()),
        Err(e) => Err(format!("is not valid JSON: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_renders_valid_distinct_frames() {
        let t = RequestTemplate::new("run1-3-", "echo", None, 3, 4);
        let mut buf = String::new();
        t.render(42, &mut buf);
        let v: serde_json::Value = serde_json::from_str(&buf).unwrap();
        assert_eq!(v["op"], "call_tool");
        assert_eq!(v["request_id"], "run1-3-42");
        assert_eq!(v["name"], "echo");
        assert_eq!(
            v["arguments"],
            serde_json::json!({"seq": 42 * 4 + 3, "id": "run1-3-42"})
        );

        let t = RequestTemplate::new(
            "p-0-",
            "we\"ird",
            Some(r#"{"a":"x{{seq}}","b":{{seq}},"c":"{{id}}"}"#),
            0,
            1,
        );
        t.render(7, &mut buf);
        let v: serde_json::Value = serde_json::from_str(&buf).unwrap();
        assert_eq!(v["name"], "we\"ird");
        assert_eq!(
            v["arguments"],
            serde_json::json!({"a": "x7", "b": 7, "c": "p-0-7"})
        );
    }

    #[test]
    fn seq_is_unique_across_connections() {
        let mut seen = std::collections::HashSet::new();
        let mut buf = String::new();
        for conn in 0..3 {
            let t = RequestTemplate::new("r-", "echo", Some(r#"{"n":{{seq}}}"#), conn, 3);
            for seq in 0..10 {
                t.render(seq, &mut buf);
                let v: serde_json::Value = serde_json::from_str(&buf).unwrap();
                assert!(seen.insert(v["arguments"]["n"].as_u64().unwrap()));
            }
        }
    }

    #[test]
    fn args_must_be_an_object() {
        assert!(validate_args(r#"{"n":{{seq}}}"#).is_ok());
        for bogus in [r#"{"a":{{bogus}}}"#, r#"{"a":"{{bogus}}"}"#] {
            let why = validate_args(bogus).unwrap_err();
            assert!(why.starts_with("unknown placeholder {{bogus}}"), "{why}");
        }
        assert!(validate_args("[1]").is_err());
        assert!(validate_args("{nope").is_err());
    }
}
