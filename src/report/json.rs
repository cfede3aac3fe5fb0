//! The JSON result file (`--json`): the run as `result::file::RunFile`, the one type `merge` and
//! `--baseline` read back and `schema/result.v1.json` describes.

use super::Reporter;
use crate::result::RunResult;
use crate::result::file::RunFile;

pub struct JsonReporter;

impl Reporter for JsonReporter {
    fn render(&self, r: &RunResult) -> anyhow::Result<Vec<u8>> {
        let mut bytes = serde_json::to_vec_pretty(&RunFile::of(r)?)?;
        bytes.push(b'\n');
        Ok(bytes)
    }
}
