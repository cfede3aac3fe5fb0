//! wsbench: a load generator and CI gate for WebSocket tool-call servers.
//!
//! Where things live (ARCHITECTURE.md has the layers and the flow): plain recorded data in
//! `model.rs`; the wire protocol in `protocol.rs`; non-blocking WebSocket I/O in `wsio.rs`; flags
//! in `cli.rs`, turned into typed configs in `config/`; the load in `run/` (the connection task
//! in `run/connection/`, one concern per file); latency recorded in `stats/recorder.rs`;
//! thresholds checked in `gate/`; output formats in `report/`, one file each; the reference
//! server in `serve/`; exit codes in `outcome.rs`.

pub mod app;
pub mod cli;
pub mod config;
pub mod error;
pub mod files;
pub mod gate;
pub mod live;
pub mod model;
pub mod net;
pub mod outcome;
pub mod progress;
pub mod protocol;
pub mod report;
pub mod resources;
pub mod result;
pub mod run;
pub mod serve;
pub mod signal;
pub mod stats;
pub mod units;
pub mod values;
pub mod wsio;

use cli::{Cli, Command};
use config::{RunConfig, ServeConfig};
pub use outcome::Outcome;

/// Runs one parsed command line to its outcome.
pub async fn main(cli: Cli) -> anyhow::Result<Outcome> {
    // -q: the one-line verdict on stdout (as --output quiet) besides errors-only logs.
    let quiet = |output: &mut Option<values::Given<report::StdoutMode>>| {
        if cli.quiet && output.is_none() {
            *output = values::Given::typed("quiet", values::stdout_mode).ok();
        }
    };
    match cli.command {
        Command::Run(mut args) => {
            quiet(&mut args.output);
            app::run::main(RunConfig::from_args(&args)?).await
        }
        Command::Serve(args) => serve::main(ServeConfig::from_args(&args)?).await,
        Command::Merge(mut args) => {
            quiet(&mut args.output);
            app::merge::main(&args)
        }
        Command::Compare(mut args) => {
            quiet(&mut args.output);
            app::merge::compare(&args)
        }
        Command::Tools(args) => app::tools::main(&args).await,
        Command::Capacity(args) => app::capacity::main(&args).await,
        Command::Config(cli::ConfigCommand::Show(args)) => app::meta::config_show(&args),
        Command::Completions { shell } => app::meta::completions(shell),
        Command::Man => app::meta::man(),
    }
}
