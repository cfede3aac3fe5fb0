//! The `wsbench` binary: parse flags, set up logging and the runtime, run, map to an exit code.

use std::process::ExitCode;

use wsbench::Outcome;
use wsbench::error::ConfigError;

fn main() -> ExitCode {
    // A `.env` in the working directory may hold WSBENCH_TOKEN, EXAI_WS_TOKEN or any
    // WSBENCH_* setting; variables already set win over it.
    let _ = dotenvy::dotenv();
    let cli = match wsbench::cli::parse() {
        Ok(cli) => cli,
        // --help, --version, and a bare `wsbench` or `wsbench config`: the usage, in full.
        Err(e)
            if !e.use_stderr()
                || e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand =>
        {
            e.exit()
        }
        Err(e) => {
            eprintln!("wsbench: {}", one_line(&e));
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

/// A clap error as one line that still names what is wrong: the message, what it lists (the
/// missing arguments) and its tip (a similar flag), without the usage block that would bury it
/// in CI logs.
fn one_line(e: &clap::Error) -> String {
    let rendered = e.render().to_string();
    let mut line = String::new();
    for part in rendered.lines().map(str::trim) {
        if part.starts_with("Usage:") || part.starts_with("For more information") {
            break;
        }
        if part.is_empty() {
            continue;
        }
        let part = part.trim_start_matches("error: ");
        if !line.is_empty() {
            line.push_str(if line.ends_with(':') { " " } else { "; " });
        }
        line.push_str(part);
    }
    if line.is_empty() {
        "invalid arguments".into()
    } else {
        line
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
    // An empty RUST_LOG is no RUST_LOG (it would otherwise silence everything, -v included).
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let filter = from_env
        .and_then(|v| tracing_subscriber::EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(level))
        // tungstenite traces whole frame payloads, hello and its token included; its logs
        // are capped whatever RUST_LOG asks, because tokens never reach the logs.
        .add_directive("tungstenite=info".parse().expect("static directive"))
        .add_directive("tokio_tungstenite=info".parse().expect("static directive"));
    // Colour only for a person at a terminal, and never under NO_COLOR (no-color.org).
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .init();
}
