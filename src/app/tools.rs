//! `wsbench tools`: one session to the target (any transport, any dialect), its tool list
//! printed with each input schema. What to call before calling it under load.

use crate::cli::RunArgs;
use crate::config::RunConfig;
use crate::outcome::Outcome;
use crate::report::StdoutMode;

/// The `tools` subcommand.
pub async fn main(args: &RunArgs) -> anyhow::Result<Outcome> {
    let mut config = RunConfig::from_args(args)?;
    let (embedded, url) = super::run::target(&config)?;
    super::run::resolve_auto(&mut config, &url, "tools").await?;
    let plan = config.plan(&url, "tools")?;
    let listed = crate::run::probe::list_tools(&plan.spec).await;
    drop(embedded);
    let tools = match listed {
        Ok(tools) => tools,
        Err(why) => {
            eprintln!("wsbench: could not list the tools of {}: {why}", url.url);
            return Ok(Outcome::CouldNotRun);
        }
    };
    let out = if config.stdout == StdoutMode::Json {
        let mut text = serde_json::to_string_pretty(&tools)?;
        text.push('\n');
        text
    } else {
        render(&url.url, &tools)
    };
    crate::report::write_stdout(out.as_bytes())?;
    Ok(Outcome::Passed)
}

/// Name and description per tool, then its input schema, indented.
fn render(target: &str, tools: &[serde_json::Value]) -> String {
    let mut out = format!("{} tools at {target}\n", tools.len());
    for tool in tools {
        let name = tool.get("name").and_then(|n| n.as_str()).unwrap_or("?");
        let about = tool
            .get("description")
            .and_then(|d| d.as_str())
            .unwrap_or("");
        out.push_str(&format!("\n{name}  {about}\n"));
        if let Some(schema) = tool.get("inputSchema") {
            let text = serde_json::to_string_pretty(schema).unwrap_or_default();
            for line in text.lines() {
                out.push_str(&format!("    {line}\n"));
            }
        }
    }
    out
}
