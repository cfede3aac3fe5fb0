//! Where a command's reports go and what its stdout shows (`run`, `merge`): at most one
//! output on stdout.

use super::Outputs;
use super::source::Resolver;
use crate::error::ConfigError;
use crate::values::*;

/// The output flags of a command that writes reports (`run`, `merge`).
pub(super) struct OutputFlags<'a> {
    pub json: Option<&'a Given<String>>,
    pub junit: Option<&'a Given<String>>,
    pub html: Option<&'a Given<String>>,
    pub markdown: Option<&'a Given<String>>,
    pub plot: Option<&'a Given<String>>,
    pub hdr_log: Option<&'a Given<String>>,
    pub output: Option<&'a Given<super::StdoutMode>>,
}

/// Where reports go, and what stdout shows; at most one of them on stdout.
pub(super) fn outputs(
    args: OutputFlags<'_>,
    r: &Resolver,
) -> Result<(Outputs, super::StdoutMode), ConfigError> {
    let run = |k| ("run", k);
    let outputs = Outputs {
        json: r.get(args.json, "--json", run("json"), output_target)?,
        junit: r.get(args.junit, "--junit", run("junit"), output_target)?,
        html: r.get(args.html, "--html", run("html"), output_target)?,
        markdown: r.get(args.markdown, "--markdown", run("markdown"), output_target)?,
        plot: r.get(args.plot, "--plot", run("plot"), output_target)?,
        hdr_log: r.get(args.hdr_log, "--hdr-log", run("hdr_log"), output_target)?,
    };
    let stdout = r.get_or(args.output, "--output", run("output"), "text", stdout_mode)?;
    let to_stdout: Vec<_> = outputs.targets().filter(|t| *t == "-").collect();
    if to_stdout.len() > 1 || (!to_stdout.is_empty() && stdout == super::StdoutMode::Json) {
        return Err(ConfigError::Rejected {
            name: "-".into(),
            reason:
                "only one output can go to stdout: give the others file names, or --output quiet"
                    .into(),
        });
    }

    Ok((outputs, stdout))
}
