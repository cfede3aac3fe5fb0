//! `schema/config.v1.json`: the JSON Schema of a profile (`--config FILE.toml`), generated from
//! the keys the resolver accepts (`source::SECTIONS`) and the flags they stand for (their help
//! is each key's description; a switch is a boolean, any other value a string or number, or
//! an array of strings where a list goes).
//! Editors with TOML schema support (taplo, Even Better TOML) read it; the tests keep the
//! committed file equal to this and validate every shipped profile against it.

use clap::{ArgAction, CommandFactory as _};
use serde_json::{Map, Value, json};

use super::source::SECTIONS;

/// Keys with no flag of their own name, and what they mean.
const UNFLAGGED: &[(&str, &str, &str)] = &[
    (
        "thresholds",
        "gate",
        "Judge the run against the thresholds and the baseline (false: like --no-gate).",
    ),
    (
        "run",
        "headers",
        "Extra HTTP headers on the upgrade or each POST, 'Name: value' (several: an array).",
    ),
];

/// The schema, as a JSON value.
pub fn generate() -> Value {
    let cli = crate::cli::Cli::command();
    let command = |name: &str| {
        cli.find_subcommand(name)
            .unwrap_or_else(|| panic!("no subcommand {name}"))
            .clone()
    };
    let (run, serve) = (command("run"), command("serve"));
    let mut properties = Map::new();
    for (section, keys) in SECTIONS {
        if *section == "scenario" {
            properties.insert((*section).into(), scenario());
            continue;
        }
        let flags = if *section == "serve" { &serve } else { &run };
        let mut table = Map::new();
        for key in *keys {
            table.insert((*key).into(), key_schema(section, key, flags));
        }
        properties.insert(
            (*section).into(),
            json!({
                "type": "object",
                "description": section_help(section),
                "additionalProperties": false,
                "properties": table,
            }),
        );
    }
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": "https://wsbench.dev/schema/config.v1.json",
        "title": "wsbench profile (--config FILE.toml)",
        "description": "Every key is a flag's long name with '_' for '-'; flags > WSBENCH_* environment > this file > defaults. `wsbench config show` prints where each value came from.",
        "type": "object",
        "additionalProperties": false,
        "properties": properties,
    })
}

fn section_help(section: &str) -> &'static str {
    match section {
        "run" => "What `wsbench run` loads and how: target, load shape, timing, outputs.",
        "resilience" => "Reconnects, backoff, the circuit breaker and keepalive.",
        "serve" => {
            "The reference server: `wsbench serve` flags, and in a run profile the embedded server's."
        }
        "thresholds" => "The gate: thresholds and the baseline comparison.",
        _ => "",
    }
}

/// One key: its flag's help, and the TOML types the resolver reads for it.
fn key_schema(section: &str, key: &str, flags: &clap::Command) -> Value {
    let long = key.replace('_', "-");
    let arg = flags.get_arguments().find(|a| a.get_long() == Some(&long));
    let help = match (
        arg,
        UNFLAGGED
            .iter()
            .find(|(s, k, _)| *s == section && *k == key),
    ) {
        (_, Some((_, _, help))) => (*help).to_owned(),
        (Some(a), None) => a
            .get_long_help()
            .or(a.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default(),
        (None, None) => panic!("[{section}] {key}: no flag --{long} and no description"),
    };
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    let scalar = json!({"type": ["string", "integer", "number"]});
    match arg.map(|a| a.get_action()) {
        Some(ArgAction::SetTrue) | Some(ArgAction::SetFalse) => {
            json!({"type": "boolean", "description": help})
        }
        _ if key == "gate" => json!({"type": "boolean", "description": help}),
        // A list may be an array of strings (joined with commas, as on the command line).
        _ => json!({
            "description": help,
            "anyOf": [scalar, {"type": "array", "items": {"type": "string"}}],
        }),
    }
}

/// An array of tables with these keys, `tool` required, no other key.
fn list(description: &str, properties: Value) -> Value {
    json!({
        "type": "array",
        "description": description,
        "items": {
            "type": "object",
            "additionalProperties": false,
            "required": ["tool"],
            "properties": properties,
        },
    })
}

/// `[[scenario.call]]` and `[[scenario.step]]`: arrays of tables.
fn scenario() -> Value {
    let args = json!({
        "description": "The call's arguments: JSON text, @file, or an inline table.",
        "type": ["string", "object"],
    });
    let duration = |what: &str| json!({"type": "string", "description": what});
    let tool = json!({"type": "string", "minLength": 1, "description": "The tool called."});
    json!({
        "type": "object",
        "description": "A workload: weighted calls (a mix) or steps in order (a session script).",
        "additionalProperties": false,
        "properties": {
            "call": list(
                "A mix of calls, each chosen in proportion to its weight.",
                json!({
                    "tool": tool,
                    "weight": {"type": "integer", "minimum": 1, "description": "Its share of requests (default 1)."},
                    "args": args,
                    "timeout": duration("This call's request timeout, e.g. \"250ms\"."),
                }),
            ),
            "step": list(
                "Steps each session makes in order, then again.",
                json!({
                    "tool": tool,
                    "args": args,
                    "timeout": duration("This step's request timeout."),
                    "think": duration("The pause after this step's reply (closed loop)."),
                }),
            ),
        },
    })
}
