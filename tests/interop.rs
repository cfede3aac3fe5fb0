//! Interoperability with an MCP implementation nobody here wrote: a server on the official
//! TypeScript SDK (`tests/interop/server.mjs`: `McpServer` + `StdioServerTransport`, its exact
//! versions in the committed lock file), loaded over stdio. Its counts must equal wsbench's,
//! and its `isError` results must land in their bucket. `npm ci` runs here when
//! `tests/interop/node_modules` is missing; without node on the machine the test says so and
//! passes (CI installs nothing else).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{out_str, temp_path, wsbench};

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

/// The SDK server's command, after `npm ci` if needed; `None` (with the reason printed) when
/// node or npm is absent.
fn sdk_server() -> Option<String> {
    let dir = interop_dir();
    if Command::new("node").arg("--version").output().is_err() {
        eprintln!("SKIPPED: node is not installed; the SDK interop test needs it");
        return None;
    }
    // One test at a time installs (tests in this file run in parallel).
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _once = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let installed = ["sdk", "server"].iter().all(|p| {
        dir.join("node_modules/@modelcontextprotocol")
            .join(p)
            .exists()
    });
    if !installed {
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .output()
            .expect("npm runs");
        assert!(
            out.status.success(),
            "npm ci failed: {}",
            out_str(&out.stderr)
        );
    }
    Some(format!("exec node {}", dir.join("server.mjs").display()))
}

/// Every counts file the SDK servers wrote: (calls, ok, tool errors), summed.
fn server_counts(dir: &Path) -> (u64, u64, u64, usize) {
    let mut sum = (0, 0, 0, 0);
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let v = common::read_json(&entry.path());
        sum.0 += v["calls"].as_u64().unwrap();
        sum.1 += v["ok"].as_u64().unwrap();
        sum.2 += v["tool_errors"].as_u64().unwrap();
        sum.3 += 1;
    }
    sum
}

#[test]
fn the_official_sdk_server_over_stdio_counts_what_wsbench_counts() {
    let Some(command) = sdk_server() else {
        return;
    };
    let counts = tempfile::tempdir().unwrap();
    let (_d, json) = temp_path("out.json");
    let out = wsbench()
        .args(["run", "--command", &command, "-c", "3", "--inflight", "8"])
        .args(["-n", "3000", "--progress", "off", "--no-gate", "--json"])
        .arg(&json)
        .env("INTEROP_COUNTS_DIR", counts.path())
        .timeout(std::time::Duration::from_secs(90))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", out_str(&out.stderr));
    let v = common::read_json(&json);
    assert_eq!(v["identity_holds"], true);
    assert_eq!(v["counts"]["sent"], 3000);
    assert_eq!(v["counts"]["succeeded"], 3000, "{}", v["counts"]);
    let (calls, ok, errors, files) = server_counts(counts.path());
    assert_eq!(
        files, 4,
        "one SDK server per session and the tool check's, each ended by its stdin closing"
    );
    assert_eq!((calls, ok, errors), (3000, 3000, 0));
}

#[test]
fn the_sdks_is_error_results_and_unknown_tools_are_failures() {
    let Some(command) = sdk_server() else {
        return;
    };
    let counts = tempfile::tempdir().unwrap();
    let run = |tool: &str| {
        let (_d, json) = temp_path("out.json");
        let out = wsbench()
            .args(["run", "--command", &command, "-c", "2", "--tool", tool])
            .args([
                "--args",
                "{}",
                "-n",
                "200",
                "--progress",
                "off",
                "--no-gate",
                "--json",
            ])
            .arg(&json)
            .env("INTEROP_COUNTS_DIR", counts.path())
            .timeout(std::time::Duration::from_secs(90))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", out_str(&out.stderr));
        common::read_json(&json)
    };
    let fail = run("fail");
    assert_eq!(fail["counts"]["failed"], 200, "{}", fail["counts"]);
    assert_eq!(fail["errors_by_code"]["tool_error"], 200);
    let (calls, _, errors, _) = server_counts(counts.path());
    assert_eq!((calls, errors), (200, 200));
    // An unknown tool is refused before any load, naming the SDK server's tools.
    let out = wsbench()
        .args([
            "run",
            "--command",
            &command,
            "-c",
            "2",
            "--tool",
            "no_such_tool",
        ])
        .args(["-n", "10", "--progress", "off"])
        .output()
        .unwrap();
    let err = out_str(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("it has: echo, fail"), "{err}");
    // `wsbench tools` reads the SDK's tool list, schemas included.
    let out = wsbench()
        .args(["tools", "--command", &command, "--output", "json"])
        .output()
        .unwrap();
    let tools: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(tools[0]["name"], "echo");
    assert_eq!(
        tools[0]["inputSchema"]["properties"]["seq"]["type"],
        "number"
    );
}

/// The SDK's Streamable HTTP server (`tests/interop/http-server.mjs`), its URL, and the child.
fn sdk_http_server(counts: &Path, expire_every: u32) -> Option<(String, std::process::Child)> {
    http_server(&["http-server.mjs"], counts, expire_every)
}

/// A node HTTP server of tests/interop (script and arguments) that prints "listening <port>".
fn http_server(
    script: &[&str],
    counts: &Path,
    expire_every: u32,
) -> Option<(String, std::process::Child)> {
    sdk_server()?;
    use std::io::BufRead as _;
    let mut child = Command::new("node")
        .arg(interop_dir().join(script[0]))
        .args(&script[1..])
        .env("INTEROP_COUNTS_DIR", counts)
        .env("EXPIRE_EVERY", expire_every.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("node starts");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("listening ")
        .expect("a port")
        .to_owned();
    Some((format!("http://127.0.0.1:{port}/mcp"), child))
}

#[test]
fn the_official_sdk_server_over_streamable_http_counts_what_wsbench_counts() {
    let counts = tempfile::tempdir().unwrap();
    let Some((url, child)) = sdk_http_server(counts.path(), 0) else {
        return;
    };
    let (_d, json) = temp_path("out.json");
    let out = wsbench()
        .args(["run", "--url", &url, "-c", "3", "--inflight", "2"])
        .args(["-n", "600", "--progress", "off", "--no-gate", "--json"])
        .arg(&json)
        .timeout(std::time::Duration::from_secs(90))
        .output()
        .unwrap();
    let (_d2, json2) = temp_path("fail.json");
    let fail = wsbench()
        .args([
            "run", "--url", &url, "-c", "2", "--tool", "fail", "--args", "{}",
        ])
        .args(["-n", "100", "--progress", "off", "--no-gate", "--json"])
        .arg(&json2)
        .timeout(std::time::Duration::from_secs(90))
        .output()
        .unwrap();
    let stopped = common::terminate(child);
    assert!(stopped.status.success() || stopped.status.code().is_none());
    assert_eq!(out.status.code(), Some(0), "{}", out_str(&out.stderr));
    assert_eq!(fail.status.code(), Some(0), "{}", out_str(&fail.stderr));
    let v = common::read_json(&json);
    assert_eq!(
        v["settings"]["protocol"], "mcp",
        "http:// speaks MCP by default"
    );
    assert_eq!(v["settings"]["transport"], "http");
    assert_eq!(v["identity_holds"], true);
    assert_eq!(v["counts"]["succeeded"], 600, "{}", v["counts"]);
    assert_eq!(v["protocol_versions"]["2025-11-25"], 3);
    let f = common::read_json(&json2);
    assert_eq!(f["counts"]["failed"], 100, "{}", f["counts"]);
    assert_eq!(f["errors_by_code"]["tool_error"], 100);
    let c = common::read_json(&counts.path().join("http-counts.json"));
    assert_eq!(
        (c["calls"].as_u64(), c["ok"].as_u64()),
        (Some(700), Some(600)),
        "{c}"
    );
    assert_eq!(c["tool_errors"], 100);
    // Two runs of 3 and 2 sessions, each with its tool check: 7 sessions, each ended by DELETE.
    assert_eq!(c["sessions"], 7, "{c}");
    assert_eq!(c["deleted"], 7, "{c}");
}

#[test]
fn an_expired_http_session_is_set_up_again_and_counted_as_a_reconnect() {
    let counts = tempfile::tempdir().unwrap();
    // The server forgets a session after every 100 calls: its next request gets 404.
    let Some((url, child)) = sdk_http_server(counts.path(), 100) else {
        return;
    };
    let (_d, json) = temp_path("out.json");
    let out = wsbench()
        .args(["run", "--url", &url, "-c", "2", "-n", "600"])
        .args([
            "--backoff-base",
            "10ms",
            "--progress",
            "off",
            "--no-gate",
            "--json",
        ])
        .arg(&json)
        .timeout(std::time::Duration::from_secs(90))
        .output()
        .unwrap();
    common::terminate(child);
    assert_eq!(out.status.code(), Some(0), "{}", out_str(&out.stderr));
    let v = common::read_json(&json);
    assert_eq!(v["identity_holds"], true);
    let c = &v["counts"];
    assert_eq!(c["sent"], 600, "{c}");
    let s = common::read_json(&counts.path().join("http-counts.json"));
    let expired = s["expired"].as_u64().unwrap();
    assert!(expired >= 4, "{s}");
    let reconnects = v["resilience"]["reconnects"].as_u64().unwrap();
    // Each expiry met by a later request is a new session; one that fell on a session's last
    // call (one per session at most) is never noticed.
    assert!(
        reconnects <= expired && reconnects + 2 >= expired,
        "reconnects {reconnects}, expired {expired}: {}",
        v["resilience"]
    );
    // The 404 fails nothing but the request that met it: it is lost, not succeeded.
    assert_eq!(
        c["succeeded"].as_u64().unwrap() + c["lost"].as_u64().unwrap(),
        600,
        "{c}"
    );
    assert_eq!(s["calls"], c["succeeded"], "{s}");
}

/// A run's JSON result (exit 0 asserted) with these arguments, the servers' counts in `counts`.
fn run_json(args: &[&str], counts: &Path) -> serde_json::Value {
    let (_d, json) = temp_path("out.json");
    let out = wsbench()
        .arg("run")
        .args(args)
        .args(["--progress", "off", "--no-gate", "--json"])
        .arg(&json)
        .env("INTEROP_COUNTS_DIR", counts)
        .timeout(std::time::Duration::from_secs(90))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", out_str(&out.stderr));
    common::read_json(&json)
}

#[test]
fn the_official_v2_sdk_server_is_loaded_in_the_stateless_revision_over_stdio() {
    let Some(v1) = sdk_server() else {
        return;
    };
    let v2 = format!(
        "exec node {} stdio",
        interop_dir().join("v2-server.mjs").display()
    );
    let counts = tempfile::tempdir().unwrap();
    let v = run_json(
        &["--command", &v2, "--mcp-version", "2026-07-28"]
            .into_iter()
            .chain(["-c", "2", "--inflight", "4", "-n", "1000"])
            .collect::<Vec<_>>(),
        counts.path(),
    );
    assert_eq!(v["identity_holds"], true);
    assert_eq!(v["counts"]["succeeded"], 1000, "{}", v["counts"]);
    assert_eq!(v["protocol_versions"]["2026-07-28"], 2, "{v}");
    let mut calls = 0;
    for entry in std::fs::read_dir(counts.path()).unwrap().flatten() {
        let c = common::read_json(&entry.path());
        assert_eq!(c["legacy"], 0, "no session-based instance was made: {c}");
        calls += c["calls"].as_u64().unwrap();
    }
    assert_eq!(calls, 1000, "what the SDK served is what wsbench counted");

    // auto: the v2 server's server/discover lists 2026-07-28; the v1 server's refuses it, and
    // the run falls back to the session-based revision.
    let auto = |command: &str| {
        let dir = tempfile::tempdir().unwrap();
        let args = ["--command", command, "--mcp-version", "auto", "-c", "1"];
        run_json(&[&args[..], &["-n", "50"]].concat(), dir.path())
    };
    let modern = auto(&v2);
    assert_eq!(modern["protocol_versions"]["2026-07-28"], 1, "{modern}");
    let legacy = auto(&v1);
    assert_eq!(legacy["protocol_versions"]["2025-11-25"], 1, "{legacy}");
    assert_eq!(legacy["counts"]["succeeded"], 50);
}

#[test]
fn the_official_v2_sdk_server_over_stateless_http_counts_what_wsbench_counts() {
    let counts = tempfile::tempdir().unwrap();
    let Some((url, child)) = http_server(&["v2-server.mjs", "http"], counts.path(), 0) else {
        return;
    };
    let stateless = ["--url", &url, "--mcp-version", "2026-07-28", "-c", "3"];
    let ok = run_json(
        &[&stateless[..], &["--inflight", "2", "-n", "600"]].concat(),
        counts.path(),
    );
    let fail = run_json(
        &[
            &stateless[..],
            &["--tool", "fail", "--args", "{}", "-n", "90"],
        ]
        .concat(),
        counts.path(),
    );
    // The tool check reads the SDK's list in the stateless revision too.
    let unknown = wsbench()
        .args(["run", "--url", &url, "--mcp-version", "2026-07-28"])
        .args(["--tool", "nope", "-n", "5", "--progress", "off"])
        .output()
        .unwrap();
    let stopped = common::terminate(child);
    assert!(stopped.status.success() || stopped.status.code().is_none());
    assert_eq!(ok["identity_holds"], true);
    assert_eq!(ok["counts"]["succeeded"], 600, "{}", ok["counts"]);
    assert_eq!(ok["protocol_versions"]["2026-07-28"], 3, "{ok}");
    assert_eq!(fail["counts"]["failed"], 90, "{}", fail["counts"]);
    assert_eq!(fail["errors_by_code"]["tool_error"], 90);
    let err = out_str(&unknown.stderr);
    assert_eq!(unknown.status.code(), Some(2), "{err}");
    assert!(err.contains("it has: echo, fail"), "{err}");
    let c = common::read_json(&counts.path().join("http-counts.json"));
    assert_eq!(
        (c["calls"].as_u64(), c["ok"].as_u64()),
        (Some(690), Some(600)),
        "{c}"
    );
    assert_eq!(
        c["legacy"], 0,
        "every request was served in the stateless revision: {c}"
    );
}
