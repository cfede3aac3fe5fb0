//! WHERE OUTPUT FORMATS LIVE. A [`Reporter`] turns a finished run into bytes and never touches
//! files; this module owns the targets (`-` = stdout) and writes files whole (temp file +
//! rename) or not at all. One file per format: `text.rs`, `json.rs`.

pub mod capacity;
pub mod hdrlog;
pub mod html;
pub mod json;
pub mod junit;
pub mod markdown;
pub mod svg;
pub mod text;

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;

pub use crate::files::{check_writable, write_whole};
use crate::result::RunResult;

/// What the run prints on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdoutMode {
    /// The human report.
    Text,
    /// The JSON result.
    Json,
    /// One verdict line, for scripts.
    Quiet,
}

/// Files the run writes, each whole or not at all (`-` = stdout).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outputs {
    pub json: Option<String>,
    pub junit: Option<String>,
    pub html: Option<String>,
    pub markdown: Option<String>,
    pub plot: Option<String>,
    pub hdr_log: Option<String>,
}

impl Outputs {
    /// Every target given, with the flag that gave it.
    pub fn named(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("--json", &self.json),
            ("--junit", &self.junit),
            ("--html", &self.html),
            ("--markdown", &self.markdown),
            ("--plot", &self.plot),
            ("--hdr-log", &self.hdr_log),
        ]
        .into_iter()
        .filter_map(|(flag, t)| t.as_deref().map(|t| (flag, t)))
    }

    /// Every target given.
    pub fn targets(&self) -> impl Iterator<Item = &str> {
        self.named().map(|(_, t)| t)
    }

    /// Fails early (before any load) when an output could not be written later, naming its
    /// flag.
    pub fn check_writable(&self) -> anyhow::Result<()> {
        for (flag, target) in self.named() {
            check_writable(Some(target)).map_err(|e| anyhow::anyhow!("{flag} {target}: {e}"))?;
        }
        Ok(())
    }
}

/// Renders a finished run (or, for `capacity`, a search) in one format.
pub trait Reporter<R = RunResult> {
    fn render(&self, result: &R) -> anyhow::Result<Vec<u8>>;
}

/// Prints what stdout should show and writes every requested file.
pub fn emit_all(result: &RunResult, o: &Outputs, stdout: StdoutMode) -> anyhow::Result<()> {
    // A file target of `-` takes stdout; the human report then moves to stderr.
    let claimed = o.targets().any(|t| t == "-");
    match stdout {
        StdoutMode::Text if claimed => write_stderr(&text::TextReporter.render(result)?),
        StdoutMode::Text => write_stdout(&text::TextReporter.render(result)?)?,
        StdoutMode::Json => {
            write_stderr(&text::TextReporter.render(result)?);
            write_stdout(&json::JsonReporter.render(result)?)?;
        }
        StdoutMode::Quiet if claimed => write_stderr(verdict_line(result).as_bytes()),
        StdoutMode::Quiet => write_stdout(verdict_line(result).as_bytes())?,
    }
    let reporters: [(&Option<String>, &dyn Reporter); 6] = [
        (&o.json, &json::JsonReporter),
        (&o.junit, &junit::JunitReporter),
        (&o.html, &html::HtmlReporter),
        (&o.markdown, &markdown::MarkdownReporter),
        (&o.plot, &html::PlotReporter),
        (&o.hdr_log, &hdrlog::HdrLogReporter),
    ];
    for (target, reporter) in reporters {
        if let Some(target) = target {
            emit(target, &reporter.render(result)?)?;
        }
    }
    Ok(())
}

/// `--output quiet`: one line a script can grep, naming the thresholds that failed and the
/// ones that proved nothing.
pub fn verdict_line(r: &RunResult) -> String {
    let s = &r.summary;
    let list = |inconclusive: bool| {
        r.verdicts
            .iter()
            .filter(|v| !v.passed && v.inconclusive.is_some() == inconclusive)
            .map(|v| v.condition.replace(' ', ""))
            .collect::<Vec<_>>()
            .join(",")
    };
    let (failed, unsure) = (list(false), list(true));
    format!(
        "{} {} rps={:.0} p99_ms={:.3} error_rate={:.6} exit={}{}{}{}\n",
        r.outcome.verdict().to_uppercase(),
        s.target,
        s.throughput(),
        s.latency_ms(99.0),
        s.error_rate(),
        r.outcome.code(),
        if failed.is_empty() {
            String::new()
        } else {
            format!(" failed=\"{failed}\"")
        },
        if unsure.is_empty() {
            String::new()
        } else {
            format!(" inconclusive=\"{unsure}\"")
        },
        r.reason
            .as_ref()
            .map(|x| format!(" reason=\"{x}\""))
            .unwrap_or_default()
    )
}

pub(crate) fn write_stderr(bytes: &[u8]) {
    let _ = std::io::stderr().lock().write_all(bytes);
}

/// Writes to `target`: stdout for `-`, else the file, whole.
pub fn emit(target: &str, bytes: &[u8]) -> anyhow::Result<()> {
    if target == "-" {
        write_stdout(bytes)
    } else {
        write_whole(Path::new(target), bytes)
    }
}

pub(crate) fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|_| out.flush()) {
        // A closed pipe (`wsbench run | head`) is the reader's choice, not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("could not write to stdout"),
    }
}
