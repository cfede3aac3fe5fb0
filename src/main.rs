//! The `wsbench` binary: parse flags, set up logging and the runtime, run, map to an exit code.

use std::process::ExitCode;

use clap::Parser as _;
use wsbench::Outcome;
use wsbench::cli::Cli;
use wsbench::error::ConfigError;

fn main() -> ExitCode {
    // A `.env` in the working directory may hold WSBENCH_TOKEN, EXAI_WS_TOKEN or any
    // WSBENCH_* setting; variables already set win over it.
    let _ = dotenvy::dotenv();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => {
            // One line naming the flag; clap's usage block would bury it in CI logs.
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments");
            eprintln!("wsbench: {}", first.trim_start_matches("error: "));
            return Outcome::BadUsage.into();
        }
    };
    init_tracing(cli.verbose, cli.quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wsbench: could not start the runtime: {e}");
            return Outcome::CouldNotRun.into();
        }
    };
    let result = runtime.block_on(wsbench::main(cli));
    // A reader blocked on stdin (`serve --stdio`) would hold a plain drop of the runtime
    // forever; everything that matters has finished by now.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(outcome) => outcome.into(),
        Err(err) => {
            eprintln!("wsbench: {err:#}");
            if err.downcast_ref::<ConfigError>().is_some() {
                Outcome::BadUsage.into()
            } else {
                Outcome::CouldNotRun.into()
            }
        }
    }
}

/// Logs go to stderr; `-v`/`-q` pick the level unless RUST_LOG says otherwise.
fn init_tracing(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level))
        // tungstenite traces whole frame payloads, hello and its token included; its logs
        // are capped whatever RUST_LOG asks, because tokens never reach the logs.
        .add_directive("tungstenite=info".parse().expect("static directive"))
        .add_directive("tokio_tungstenite=info".parse().expect("static directive"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
