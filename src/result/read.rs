//! Reading result files back: `ResultDocument` (a run's or a capacity search's, checked
//! against this schema version whole) and the `--baseline` figures picked from a run's file
//! by each metric's JSON pointer. One type written and read: `result::file`.

use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::file::{CapacityFile, RunFile};
use crate::gate::Metric;
use crate::gate::baseline::Baseline;
use crate::model::RESULT_SCHEMA_VERSION;

/// Any file wsbench writes with `--json`: what `schema/result.v1.json` describes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
#[schemars(title = "wsbench result file (schema version 1)")]
pub enum ResultDocument {
    Capacity(CapacityFile),
    Run(Box<RunFile>),
}

impl ResultDocument {
    /// The JSON Schema of every result file, as committed in `schema/result.v1.json`.
    pub fn schema() -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(ResultDocument)).expect("a schema is plain JSON")
    }

    /// Reads a result file whole: JSON, this schema version, every key the type requires.
    pub fn read(path: &Path) -> Result<ResultDocument, String> {
        let text = std::fs::read(path).map_err(|e| e.to_string())?;
        let value: serde_json::Value = serde_json::from_slice(&text)
            .map_err(|e| format!("not a whole wsbench result (damaged or truncated?): {e}"))?;
        match value.get("schema_version").and_then(|v| v.as_u64()) {
            Some(v) if v == u64::from(RESULT_SCHEMA_VERSION) => {}
            Some(v) => {
                return Err(format!(
                    "schema_version {v}; this wsbench reads {RESULT_SCHEMA_VERSION}"
                ));
            }
            None => return Err("no schema_version: not a wsbench result".into()),
        }
        // Read as the kind the file says it is, so a damaged file's error names the key.
        if value.get("kind").and_then(|k| k.as_str()) == Some("capacity") {
            serde_json::from_value(value)
                .map(ResultDocument::Capacity)
                .map_err(|e| format!("not a wsbench capacity result: {e}"))
        } else {
            serde_json::from_value(value)
                .map(|r| ResultDocument::Run(Box::new(r)))
                .map_err(|e| format!("not a wsbench result: {e}"))
        }
    }

    /// A `run` or `merge` result; a capacity result has no run figures.
    pub fn read_run(path: &Path) -> Result<RunFile, String> {
        match Self::read(path)? {
            ResultDocument::Run(r) => Ok(*r),
            ResultDocument::Capacity(_) => {
                Err("a capacity result has no run figures (give a run or merge result)".into())
            }
        }
    }
}

/// A previous run's figures for `--baseline`, read through the one result type and picked out
/// by each metric's JSON pointer (`gate::Metric::pointer`).
pub fn read_baseline(path: &Path) -> Result<Baseline, String> {
    let file = ResultDocument::read_run(path)?;
    let value = serde_json::to_value(&file).map_err(|e| e.to_string())?;
    let values = Metric::ALL
        .iter()
        .filter_map(|m| {
            let v = value.pointer(m.pointer())?.as_f64()?;
            Some((m.name(), v))
        })
        .collect();
    Ok(Baseline {
        path: path.to_owned(),
        run_id: file.run_id,
        started_at: file.started_at,
        values,
    })
}
