//! How a command ended, and the exit code each ending maps to (documented in `--help` and the
//! README; CI scripts branch on these numbers, so they never change meaning).

use std::process::ExitCode;

/// The end of a command, ordered from best to worst for CI purposes.
/// In the result file it is the `verdict` string ([`Outcome::verdict`]).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Ran, and every threshold passed (or there was no gate).
    #[serde(rename = "pass")]
    Passed,
    /// Ran, and at least one threshold failed.
    #[serde(rename = "fail")]
    ThresholdFailed,
    /// Bad usage or configuration; nothing was run.
    BadUsage,
    /// Could not run: unreachable target, every connection failed, hello rejected, I/O.
    CouldNotRun,
    /// The client itself was the bottleneck, so a failed threshold proves nothing.
    Inconclusive,
    /// Stopped by SIGINT/SIGTERM; the report was still written.
    Interrupted,
}

impl Outcome {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Outcome::Passed => 0,
            Outcome::ThresholdFailed => 1,
            Outcome::BadUsage => 2,
            Outcome::CouldNotRun => 3,
            Outcome::Inconclusive => 4,
            Outcome::Interrupted => 130,
        }
    }

    /// The `verdict` string of the JSON result.
    pub fn verdict(self) -> &'static str {
        match self {
            Outcome::Passed => "pass",
            Outcome::ThresholdFailed => "fail",
            Outcome::BadUsage => "bad_usage",
            Outcome::CouldNotRun => "could_not_run",
            Outcome::Inconclusive => "inconclusive",
            Outcome::Interrupted => "interrupted",
        }
    }
}

impl From<Outcome> for ExitCode {
    fn from(o: Outcome) -> ExitCode {
        ExitCode::from(o.code())
    }
}
