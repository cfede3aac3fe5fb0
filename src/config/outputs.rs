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
    let rejected = |name: &str, reason: String| ConfigError::Rejected {
        name: name.into(),
        reason,
    };
    let to_stdout: Vec<_> = outputs.named().filter(|(_, t)| *t == "-").collect();
    if let Some((flag, _)) = to_stdout.first()
        && stdout == super::StdoutMode::Json
    {
        return Err(rejected(
            &format!("{flag} -"),
            "stdout already carries the JSON result (--output json): give it a file name".into(),
        ));
    }
    if let [(first, _), (second, _), ..] = to_stdout[..] {
        return Err(rejected(
            &format!("{second} -"),
            format!("{first} already writes to stdout: give one of them a file name"),
        ));
    }
    // Two outputs into one file: one would silently replace the other.
    let files: Vec<_> = outputs.named().filter(|(_, t)| *t != "-").collect();
    for (i, (flag, target)) in files.iter().enumerate() {
        if let Some((other, _)) = files[..i].iter().find(|(_, t)| t == target) {
            return Err(rejected(
                &format!("{flag} {target}"),
                format!("{other} writes that file too: give each output its own"),
            ));
        }
    }
    if let Some(plot) = outputs.plot.as_deref().filter(|p| *p != "-")
        && !plot.to_ascii_lowercase().ends_with(".svg")
    {
        return Err(rejected(
            &format!("--plot {plot}"),
            "writes an SVG chart: give it a .svg file name".into(),
        ));
    }

    Ok((outputs, stdout))
}
