//! `wsbench merge`'s settings: the gate and the outputs, resolved exactly as `run` resolves
//! them (flag > env > `--config` profile > default), and nothing a merge does not use.

use super::gate::{GateConfig, resolve as resolve_gate};
use super::outputs::{OutputFlags, outputs};
use super::source::Resolver;
use super::{Outputs, StdoutMode};
use crate::cli::MergeArgs;
use crate::error::ConfigError;

/// Everything `merge` needs beside its files.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeConfig {
    pub gate: GateConfig,
    pub outputs: Outputs,
    pub stdout: StdoutMode,
}

impl MergeConfig {
    pub fn from_args(args: &MergeArgs) -> Result<MergeConfig, ConfigError> {
        let r = Resolver::new(args.config.as_deref())?;
        let (outputs, stdout) = outputs(
            OutputFlags {
                json: args.json.as_ref(),
                junit: args.junit.as_ref(),
                html: args.html.as_ref(),
                markdown: args.markdown.as_ref(),
                plot: None,
                hdr_log: None,
                output: args.output.as_ref(),
            },
            &r,
        )?;
        // A merge of open-loop workers is judged on dropped slots by the thresholds it reads;
        // "nothing dropped" is added per run, where the schedule is known.
        let gate = resolve_gate(&args.gate, &r, None)?;
        Ok(MergeConfig {
            gate,
            outputs,
            stdout,
        })
    }
}
