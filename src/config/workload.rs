//! What a run calls: `--tool` and `--args`, or a weighted mix (`--mix search=70,fetch=20` with
//! `--args` shared, or `[[scenario.call]]` tables in a profile, each with its own `args`), and
//! `--seed`, where the mix's sequence starts.

use super::source::Resolver;
use crate::cli::RunArgs;
use crate::error::ConfigError;
use crate::protocol::rows::{Data, RowMode, Rows, row_columns};
use crate::run::mix::{Mix, MixCall, parse_mix};
use crate::values::{load_args, tool_name};

fn rejected(name: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Rejected {
        name: name.into(),
        reason: reason.into(),
    }
}

/// `--data FILE` and `--data-mode`: the rows, loaded once (JSON Lines or CSV by extension),
/// checked against every `{{row.<column>}}` the mix's arguments name.
pub(super) fn data(
    args: &RunArgs,
    r: &Resolver,
    mix: &Mix,
    seed: u64,
) -> Result<Option<Data>, ConfigError> {
    let run = |k| ("run", k);
    let path = r.get(args.data.as_ref(), "--data", run("data"), tool_name)?;
    let mode = r.get_or(
        args.data_mode.as_ref(),
        "--data-mode",
        run("data_mode"),
        "round-robin",
        RowMode::parse,
    )?;
    let named: Vec<(&str, &str)> = mix
        .calls()
        .iter()
        .flat_map(|c| {
            let cols = c.args.as_deref().map(row_columns).unwrap_or_default();
            cols.into_iter().map(move |col| (c.tool.as_str(), col))
        })
        .collect();
    let Some(path) = path else {
        if let Some((tool, col)) = named.first() {
            return Err(rejected(
                "--args",
                format!("'{tool}' takes {{{{row.{col}}}}} from a data file: give --data FILE"),
            ));
        }
        return Ok(None);
    };
    let file = std::fs::File::open(&path)
        .map_err(|e| rejected("--data", format!("cannot read '{path}': {e}")))?;
    // Read a record at a time: the file is never held whole beside its rows.
    let reader = std::io::BufReader::with_capacity(1 << 20, file);
    let rows = if path.ends_with(".csv") {
        Rows::read_csv(reader)
    } else if path.ends_with(".jsonl") || path.ends_with(".ndjson") || path.ends_with(".json") {
        Rows::read_jsonl(reader)
    } else {
        Err("name a .jsonl or a .csv file".into())
    }
    .map_err(|why| rejected("--data", format!("'{path}': {why}")))?;
    if let Some((tool, col)) = named.iter().find(|(_, col)| rows.column(col).is_none()) {
        return Err(rejected(
            "--data",
            format!(
                "'{path}' has no column '{col}' ('{tool}' names it; the columns: {})",
                rows.columns().join(", ")
            ),
        ));
    }
    Ok(Some(Data {
        source: path,
        rows: std::sync::Arc::new(rows),
        mode,
        seed,
    }))
}

/// `--seed`: where the mix's sequence starts, and what `--data-mode random` draws by.
pub(super) fn seed(args: &RunArgs, r: &Resolver) -> Result<u64, ConfigError> {
    r.get_or(
        args.seed.as_ref(),
        "--seed",
        ("run", "seed"),
        "0",
        crate::units::parse_whole,
    )
}

pub(super) fn resolve(args: &RunArgs, r: &Resolver, seed: u64) -> Result<Mix, ConfigError> {
    let run = |k| ("run", k);
    let tool = r.get(args.tool.as_ref(), "--tool", run("tool"), tool_name)?;
    let shared_args = r.get(args.args.as_ref(), "--args", run("args"), load_args)?;
    let mix = r.get(args.mix.as_ref(), "--mix", run("mix"), parse_mix)?;
    let scenario = r.tables("scenario", "call")?;
    if let Some((tables, name)) = r.tables("scenario", "step")? {
        if tool.is_some() || mix.is_some() || scenario.is_some() {
            return Err(rejected(
                &name,
                "steps are the whole scenario: no --tool, --mix or [[scenario.call]] beside them",
            ));
        }
        let steps = tables
            .iter()
            .enumerate()
            .map(|(i, t)| scenario_call(t, &format!("{name} #{}", i + 1), Kind::Step))
            .collect::<Result<Vec<_>, _>>()?;
        return Mix::steps(steps).map_err(|why| rejected(&name, why));
    }
    let calls = match (mix, scenario) {
        (Some(_), _) | (None, Some(_)) if tool.is_some() => {
            return Err(rejected(
                "--tool",
                "a mix names its tools; --tool is for one tool",
            ));
        }
        (Some(mix), _) => mix
            .into_iter()
            .map(|(tool, weight)| MixCall {
                tool,
                args: shared_args.clone(),
                weight,
                timeout: None,
                think: None,
            })
            .collect(),
        (None, Some((tables, name))) => tables
            .iter()
            .enumerate()
            .map(|(i, t)| scenario_call(t, &format!("{name} #{}", i + 1), Kind::Call))
            .collect::<Result<Vec<_>, _>>()?,
        (None, None) => {
            return Ok(Mix::single(
                tool.as_deref().unwrap_or("echo"),
                shared_args.as_deref(),
            ));
        }
    };
    Mix::new(calls, seed).map_err(|why| rejected("--mix", why))
}

/// A threshold on a tool the run does not call could never be judged: exit 2, naming both.
pub(super) fn check_thresholds(
    mix: &Mix,
    thresholds: &[crate::gate::Threshold],
) -> Result<(), ConfigError> {
    let names = mix.stat_names();
    for t in thresholds {
        if let Some(tool) = &t.tool
            && !names.contains(tool)
        {
            let calls: Vec<&str> = names.iter().map(String::as_str).collect();
            return Err(rejected(
                "--threshold",
                format!(
                    "{} names tool '{tool}', which the run does not call (it calls: {})",
                    t.describe(),
                    calls.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// The correctness probes asked for.
pub(super) struct Checks {
    /// `isolation`: the pointer of the echoed id.
    pub isolation: Option<String>,
    /// `consistent`: every call the same, compared with a reference.
    pub consistent: bool,
}

/// `--check` and `--check-pointer`. `consistent` needs calls that are the same every time.
pub(super) fn checks(args: &RunArgs, r: &Resolver, mix: &Mix) -> Result<Checks, ConfigError> {
    let run = |k| ("run", k);
    let check = r.get(
        args.check.as_ref(),
        "--check",
        run("check"),
        crate::values::check_probe,
    )?;
    let pointer = r.get_or(
        args.check_pointer.as_ref(),
        "--check-pointer",
        run("check_pointer"),
        "/id",
        crate::values::json_pointer,
    )?;
    let on = |name: &str| check.as_ref().is_some_and(|c| c.iter().any(|p| p == name));
    let consistent = on("consistent");
    if consistent {
        for c in mix.calls() {
            let same = c.args.as_deref().is_some_and(|a| !a.contains("{{"));
            if !same {
                return Err(rejected(
                    "--check",
                    format!(
                        "consistent compares the same call across sessions: give '{}' arguments without placeholders (--args)",
                        c.tool
                    ),
                ));
            }
        }
    }
    Ok(Checks {
        isolation: on("isolation").then_some(pointer),
        consistent,
    })
}

/// One `[[scenario.call]]` table: `tool`, `weight` (default 1), `args` (JSON text, `@file`,
/// or an inline table).
fn scenario_call(table: &toml::Table, name: &str, kind: Kind) -> Result<MixCall, ConfigError> {
    let keys: &[&str] = match kind {
        Kind::Call => &["tool", "weight", "args", "timeout"],
        Kind::Step => &["tool", "args", "timeout", "think"],
    };
    if let Some(key) = table.keys().find(|k| !keys.contains(&k.as_str())) {
        return Err(rejected(
            name,
            format!("unknown key '{key}' (it may have {})", keys.join(", ")),
        ));
    }
    let duration = |key: &str| -> Result<Option<std::time::Duration>, ConfigError> {
        match table.get(key) {
            None => Ok(None),
            Some(t) => t
                .as_str()
                .ok_or("a duration such as \"250ms\"".to_owned())
                .and_then(crate::values::positive_duration)
                .map(Some)
                .map_err(|why| rejected(&format!("{name} {key}"), why)),
        }
    };
    let timeout = duration("timeout")?;
    let think = duration("think")?;
    let tool = table
        .get("tool")
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| rejected(name, "needs a tool (a string)"))?;
    let weight = match table.get("weight") {
        None => 1,
        Some(w) => w
            .as_integer()
            .and_then(|w| u32::try_from(w).ok())
            .filter(|w| *w > 0)
            .ok_or_else(|| rejected(name, "weight must be a whole number above 0"))?,
    };
    let args = match table.get("args") {
        None => None,
        Some(toml::Value::String(s)) => {
            Some(load_args(s).map_err(|why| rejected(&format!("{name} args"), why))?)
        }
        Some(toml::Value::Table(t)) => {
            let text = serde_json::to_string(t).map_err(|e| rejected(name, e.to_string()))?;
            Some(load_args(&text).map_err(|why| rejected(&format!("{name} args"), why))?)
        }
        Some(_) => {
            return Err(rejected(
                name,
                "args must be JSON text, @file or an inline table",
            ));
        }
    };
    Ok(MixCall {
        tool: tool.to_owned(),
        args,
        weight,
        timeout,
        think,
    })
}

/// Which table a call comes from.
#[derive(Clone, Copy)]
enum Kind {
    Call,
    Step,
}
