//! The rows of a data file (`--data rows.jsonl` or `.csv`), held once for the whole run: every
//! cell's text in one buffer, found by its end offset, so ten million rows cost their bytes
//! plus 8 per cell, shared by every connection (never copied per connection). A cell's text is
//! ready to splice into JSON: a string's contents escaped (the template puts it inside its own
//! quotes), any other JSON value as written.

use std::sync::Arc;

/// How requests take rows (`--data-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RowMode {
    /// Request `k` of the run takes row `k mod rows`.
    #[default]
    RoundRobin,
    /// A row drawn by a seeded hash of `k`: the same seed, the same rows.
    Random,
    /// Each row once: a connection stops sending when the rows it would take are gone.
    Unique,
}

impl RowMode {
    pub fn parse(s: &str) -> Result<RowMode, String> {
        match s {
            "round-robin" => Ok(RowMode::RoundRobin),
            "random" => Ok(RowMode::Random),
            "unique" => Ok(RowMode::Unique),
            _ => Err("expected round-robin, random or unique".into()),
        }
    }
}

/// A data file's rows.
#[derive(Default, PartialEq)]
pub struct Rows {
    columns: Vec<String>,
    text: String,
    /// End offset in `text` of each cell, row after row.
    ends: Vec<u64>,
}

impl std::fmt::Debug for Rows {
    // Not the cells: ten million of them would flood any log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rows")
            .field("columns", &self.columns)
            .field("rows", &self.len())
            .field("bytes", &self.bytes())
            .finish()
    }
}

/// The run's rows and how requests take them.
#[derive(Debug, Clone, PartialEq)]
pub struct Data {
    /// The file the rows came from.
    pub source: String,
    pub rows: Arc<Rows>,
    pub mode: RowMode,
    pub seed: u64,
}

impl Data {
    /// `rows.jsonl: 10,000 rows of 2 columns (1.2 MiB), round-robin`.
    pub fn describe(&self) -> String {
        let mode = match self.mode {
            RowMode::RoundRobin => "round-robin",
            RowMode::Random => "random",
            RowMode::Unique => "unique",
        };
        format!(
            "{}: {} rows of {} columns ({:.1} MiB held once), {mode}",
            self.source,
            self.rows.len(),
            self.rows.columns().len(),
            self.rows.bytes() as f64 / (1024.0 * 1024.0)
        )
    }

    /// The row request `k` of the run takes; `None` when unique rows ran out.
    pub fn row_for(&self, k: u64) -> Option<usize> {
        let n = self.rows.len() as u64;
        match self.mode {
            RowMode::RoundRobin => Some((k % n) as usize),
            RowMode::Random => Some((splitmix(k ^ self.seed.rotate_left(17)) % n) as usize),
            RowMode::Unique => (k < n).then_some(k as usize),
        }
    }
}

/// A 64-bit mix (splitmix64's finalizer): neighbouring `k`s land far apart.
fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Rows {
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    pub fn len(&self) -> usize {
        if self.columns.is_empty() {
            0
        } else {
            self.ends.len() / self.columns.len()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The text of column `col` of row `row`.
    pub fn cell(&self, row: usize, col: usize) -> &str {
        let i = row * self.columns.len() + col;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.text[start..self.ends[i] as usize]
    }

    /// Bytes held (the text and the offsets), for the report.
    pub fn bytes(&self) -> usize {
        self.text.len() + self.ends.len() * 8
    }

    fn push_string(&mut self, s: &str) {
        let quoted = serde_json::to_string(s).expect("a string serializes");
        self.text.push_str(&quoted[1..quoted.len() - 1]);
        self.ends.push(self.text.len() as u64);
    }

    fn push_raw(&mut self, s: &str) {
        self.text.push_str(s);
        self.ends.push(self.text.len() as u64);
    }

    /// JSON Lines: one object per line; the first line's keys are the columns, and every
    /// later line must have them (more keys are ignored). Blank lines are skipped.
    pub fn from_jsonl(text: &str) -> Result<Rows, String> {
        Rows::read_jsonl(text.as_bytes())
    }

    /// [`Rows::from_jsonl`] from a reader, a line at a time: the file is never held whole
    /// beside its rows.
    pub fn read_jsonl(reader: impl std::io::BufRead) -> Result<Rows, String> {
        let mut rows = Rows::default();
        for (n, line) in reader.lines().enumerate() {
            let line = line.map_err(|e| format!("line {}: {e}", n + 1))?;
            let line = line.as_str();
            if line.trim().is_empty() {
                continue;
            }
            let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line)
                .map_err(|e| format!("line {}: not a JSON object ({e})", n + 1))?;
            if rows.columns.is_empty() {
                rows.columns = object.keys().cloned().collect();
                if rows.columns.is_empty() {
                    return Err(format!("line {}: an object with no keys", n + 1));
                }
            }
            for i in 0..rows.columns.len() {
                match object.get(&rows.columns[i]) {
                    Some(serde_json::Value::String(s)) => rows.push_string(s),
                    Some(v) => rows.push_raw(&v.to_string()),
                    None => {
                        return Err(format!("line {}: no '{}'", n + 1, rows.columns[i]));
                    }
                }
            }
        }
        if rows.is_empty() {
            return Err("no rows".into());
        }
        Ok(rows)
    }

    /// CSV with a header row: the header names the columns; every cell is text.
    pub fn from_csv(text: &str) -> Result<Rows, String> {
        Rows::read_csv(text.as_bytes())
    }

    /// [`Rows::from_csv`] from a reader, a record at a time.
    pub fn read_csv(reader: impl std::io::Read) -> Result<Rows, String> {
        let mut reader = csv::Reader::from_reader(reader);
        let mut rows = Rows {
            columns: reader
                .headers()
                .map_err(|e| format!("header: {e}"))?
                .iter()
                .map(str::to_owned)
                .collect(),
            ..Rows::default()
        };
        for (n, record) in reader.records().enumerate() {
            let record = record.map_err(|e| format!("row {}: {e}", n + 1))?;
            for cell in record.iter() {
                rows.push_string(cell);
            }
        }
        if rows.is_empty() {
            return Err("no rows".into());
        }
        Ok(rows)
    }
}

/// `{{row.<column>}}` in a template.
pub const ROW_PLACEHOLDER: &str = "{{row.";

/// The columns a template's `{{row.<column>}}` placeholders name.
pub fn row_columns(template: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(i) = rest.find(ROW_PLACEHOLDER) {
        let after = &rest[i + ROW_PLACEHOLDER.len()..];
        match after.find("}}") {
            Some(j) => {
                out.push(&after[..j]);
                rest = &after[j + 2..];
            }
            None => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_and_csv_cells_are_ready_to_splice() {
        let rows = Rows::from_jsonl(
            "{\"q\":\"a \\\"quoted\\\" word\",\"n\":3}\n\n{\"q\":\"b\",\"n\":4.5,\"extra\":1}\n",
        )
        .unwrap();
        assert_eq!(rows.columns(), ["n", "q"]);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows.cell(0, 1), r#"a \"quoted\" word"#);
        assert_eq!((rows.cell(0, 0), rows.cell(1, 0)), ("3", "4.5"));
        assert!(
            Rows::from_jsonl("{\"q\":1}\n{\"r\":2}")
                .unwrap_err()
                .contains("line 2")
        );
        assert!(Rows::from_jsonl("[1]").unwrap_err().contains("line 1"));
        let csv = Rows::from_csv("city,pop\n\"Rio, RJ\",6\nOslo,\"7\"\n").unwrap();
        assert_eq!(csv.columns(), ["city", "pop"]);
        assert_eq!((csv.cell(0, 0), csv.cell(1, 1)), ("Rio, RJ", "7"));
        assert!(Rows::from_csv("a,b\n").unwrap_err().contains("no rows"));
    }

    #[test]
    fn modes_take_rows_in_turn_at_random_or_once() {
        let rows = Arc::new(Rows::from_csv("x\n1\n2\n3\n").unwrap());
        let data = |mode| Data {
            source: "x.csv".into(),
            rows: rows.clone(),
            mode,
            seed: 9,
        };
        let rr = data(RowMode::RoundRobin);
        assert_eq!(
            (0..5).map(|k| rr.row_for(k)).collect::<Vec<_>>(),
            [Some(0), Some(1), Some(2), Some(0), Some(1)]
        );
        let unique = data(RowMode::Unique);
        assert_eq!(unique.row_for(2), Some(2));
        assert_eq!(unique.row_for(3), None);
        let random = data(RowMode::Random);
        let picks: Vec<_> = (0..300).map(|k| random.row_for(k).unwrap()).collect();
        assert!((0..3).all(|r| picks.iter().filter(|p| **p == r).count() > 60));
        assert_eq!(
            picks,
            (0..300)
                .map(|k| random.row_for(k).unwrap())
                .collect::<Vec<_>>()
        );
        assert_eq!(
            row_columns(r#"{"a":"{{row.q}}","b":{{row.n}}}"#),
            ["q", "n"]
        );
    }
}
