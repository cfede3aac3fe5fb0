//! The subcommands about wsbench itself rather than a server: `config show`, `completions`
//! and `man`. None of them touches the network.

use std::io::Write as _;

use clap::CommandFactory as _;

use crate::cli::{Cli, RunArgs};
use crate::config;
use crate::outcome::Outcome;

/// `wsbench config show`: every `run` setting as `table.key = value  # source`.
pub fn config_show(args: &RunArgs) -> anyhow::Result<Outcome> {
    let mut settings = config::explain_run(args)?;
    // Group by table, in the order the tables appear in config/default.toml.
    let order = ["run", "resilience", "serve", "thresholds"];
    settings.sort_by_key(|s| {
        order
            .iter()
            .position(|t| s.key.starts_with(&format!("{t}.")))
    });
    let mut out =
        String::from("# effective wsbench run configuration (flag > env > file > default)\n");
    let mut section = "";
    for s in &settings {
        let (table, key) = s.key.split_once('.').unwrap_or(("", &s.key));
        if table != section {
            out.push_str(&format!("\n[{table}]\n"));
            section = table;
        }
        match s.source {
            config::Source::Unset => out.push_str(&format!("# {key} = (unset)\n")),
            _ => out.push_str(&format!("{key} = {:?}  # {}\n", s.value, s.source)),
        }
    }
    let token = match (&args.token, std::env::var("EXAI_WS_TOKEN")) {
        (Some(_), _) => "set (--token or WSBENCH_TOKEN), redacted",
        (None, Ok(_)) => "set (EXAI_WS_TOKEN), redacted",
        (None, Err(_)) => "not set",
    };
    out.push_str(&format!("\n# token: {token}\n"));
    std::io::stdout().write_all(out.as_bytes())?;
    Ok(Outcome::Passed)
}

/// `wsbench completions SHELL`.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<Outcome> {
    clap_complete::generate(
        shell,
        &mut Cli::command(),
        "wsbench",
        &mut std::io::stdout(),
    );
    Ok(Outcome::Passed)
}

/// `wsbench man`: the man page, roff.
pub fn man() -> anyhow::Result<Outcome> {
    clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
    Ok(Outcome::Passed)
}
