//! WHERE OUTPUT FORMATS LIVE. A [`Reporter`] turns a finished run into bytes and never touches
//! files; this module owns the targets (`-` = stdout) and writes files whole (temp file +
//! rename) or not at all. One file per format: `text.rs`, `json.rs`.

pub mod hdrlog;
pub mod json;
pub mod text;

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;

use crate::run::RunResult;

/// Renders a finished run in one format.
pub trait Reporter {
    fn render(&self, result: &RunResult) -> anyhow::Result<Vec<u8>>;
}

/// Prints the text report and writes every requested file.
pub fn emit_all(result: &RunResult) -> anyhow::Result<()> {
    let json_to_stdout = result.config.json.as_deref() == Some("-");
    let text = text::TextReporter.render(result)?;
    if json_to_stdout {
        // stdout carries the JSON, so the human report moves out of its way.
        std::io::stderr().write_all(&text)?;
    } else {
        write_stdout(&text)?;
    }
    if let Some(target) = &result.config.json {
        emit(target, &json::JsonReporter.render(result)?)?;
    }
    if let Some(target) = &result.config.hdr_log {
        emit(target, &hdrlog::HdrLogReporter.render(result)?)?;
    }
    Ok(())
}

/// Writes to `target`: stdout for `-`, else the file, whole.
pub fn emit(target: &str, bytes: &[u8]) -> anyhow::Result<()> {
    if target == "-" {
        write_stdout(bytes)
    } else {
        write_whole(Path::new(target), bytes)
    }
}

fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|_| out.flush()) {
        // A closed pipe (`wsbench run | head`) is the reader's choice, not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("could not write to stdout"),
    }
}

/// Writes `bytes` to `path` atomically: a temp file beside it, then a rename, so readers see
/// the old file or the whole new one, never half.
pub fn write_whole(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("could not write '{}'", path.display()))?;
    tmp.write_all(bytes)
        .and_then(|_| tmp.as_file().sync_all())
        .with_context(|| format!("could not write '{}'", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("could not write '{}'", path.display()))?;
    Ok(())
}

/// Fails early (before any load) when an output file could not be written later.
pub fn check_writable(target: Option<&str>) -> anyhow::Result<()> {
    let Some(target) = target.filter(|t| *t != "-") else {
        return Ok(());
    };
    // NOTE: every output flag must pass through here (see `run::main`).
    let path = Path::new(target);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    tempfile::NamedTempFile::new_in(dir)
        .map(drop)
        .with_context(|| format!("output '{target}' is not writable"))
}
