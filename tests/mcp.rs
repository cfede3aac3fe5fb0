//! MCP over WebSocket, over real sockets: `run --protocol mcp` against `serve --protocol mcp`
//! (counts equal the server's own, each JSON-RPC case in its bucket, the token in the
//! upgrade's Authorization header), and against a raw scripted MCP peer for the cases the
//! reference server never produces (ids that are not the one sent, progress, server requests).

mod common;

use std::time::Duration;

use common::{TestServer, out_str, run, serve_config, tcp_server, temp_path, wsbench};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use wsbench::model::StatsSnapshot;
use wsbench::outcome::Outcome;
use wsbench::result::RunResult;

const QUIET: [&str; 3] = ["--progress", "off", "--no-gate"];

fn mcp_server(args: &[&str]) -> TestServer {
    let argv = [&["--protocol", "mcp"][..], args].concat();
    TestServer::start(serve_config(&argv))
}

/// `run --url <server> --protocol mcp <flags>` in-process (gate off), then the server's own
/// counters once it stopped.
async fn load_mcp(server: TestServer, flags: &[&str]) -> (RunResult, StatsSnapshot) {
    let argv = [
        &["--url", &server.url, "--protocol", "mcp"][..],
        flags,
        &QUIET,
    ]
    .concat();
    let r = run(&argv).await;
    (r, server.stop())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_equal_the_servers_and_tool_errors_are_their_own_bucket() {
    // 5% of calls fail inside the tool (isError: true), seeded.
    let server = mcp_server(&["--error-rate", "0.05", "--seed", "7"]);
    let (r, stats) = load_mcp(server, &["-c", "4", "--inflight", "4", "-n", "4000"]).await;
    let c = &r.summary.counts;
    assert!(c.identity_holds(), "{c:?}");
    assert_eq!(c.sent, 4000);
    assert_eq!(c.sent, stats.call_tool, "the server saw every call once");
    assert_eq!(c.succeeded, stats.results_ok);
    assert_eq!(c.failed, stats.results_error);
    assert_eq!(
        c.failed, stats.injected.errors,
        "only the injected errors failed"
    );
    assert!(c.failed > 100, "{c:?}");
    assert_eq!(r.summary.errors_by_code.get("tool_error"), Some(&c.failed));
    assert_eq!((c.unmatched, c.malformed, c.duplicates), (0, 0, 0));
    assert_eq!(
        stats.hello_ok, 5,
        "one initialize per session, and the tool check's"
    );
    assert_eq!(r.settings.protocol, "mcp");
}

#[test]
fn an_unknown_tool_is_refused_before_any_load_naming_the_ones_there_are() {
    let server = mcp_server(&[]);
    let out = wsbench()
        .args(["run", "--url", &server.url, "--protocol", "mcp", "-c", "2"])
        .args(["-n", "200", "--tool", "no_such_tool", "--progress", "off"])
        .output()
        .unwrap();
    let stats = server.stop();
    let err = out_str(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--tool") && err.contains("echo, sleep, status"),
        "{err}"
    );
    assert_eq!(stats.call_tool, 0, "nothing was loaded");
}

#[test]
fn tools_lists_the_servers_tools_with_their_schemas_on_every_transport() {
    let server = mcp_server(&[]);
    let out = wsbench()
        .args([
            "tools",
            "--url",
            &server.url,
            "--protocol",
            "mcp",
            "--output",
            "json",
        ])
        .output()
        .unwrap();
    server.stop();
    assert_eq!(out.status.code(), Some(0), "{}", out_str(&out.stderr));
    let tools: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = tools
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["echo", "sleep", "status"]);
    assert_eq!(tools[1]["inputSchema"]["required"][0], "ms");
    let command = format!("exec {} serve --protocol mcp --stdio", bin());
    let out = wsbench()
        .args(["tools", "--command", &command])
        .output()
        .unwrap();
    let text = out_str(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", out_str(&out.stderr));
    assert!(text.starts_with("3 tools at stdio: "), "{text}");
    assert!(text.contains("\nsleep  Answers after"), "{text}");
}

#[test]
fn the_token_goes_in_the_upgrade_and_a_wrong_one_cannot_run() {
    let server = TestServer::start(wsbench::serve::ServeConfig {
        token: wsbench::net::secret::Secret::new("s3cret-token"),
        ..serve_config(&["--protocol", "mcp"])
    });
    let (_dir, json) = temp_path("out.json");
    let out = wsbench()
        .args(["run", "--url", &server.url, "--protocol", "mcp", "-c", "2"])
        .args(["-n", "100", "--progress", "off", "--no-gate", "--json"])
        .arg(&json)
        .env("WSBENCH_TOKEN", "s3cret-token")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", out_str(&out.stderr));
    let written = std::fs::read_to_string(&json).unwrap();
    assert!(
        !written.contains("s3cret-token"),
        "the token is never written"
    );
    let out = wsbench()
        .args(["run", "--url", &server.url, "--protocol", "mcp", "-c", "2"])
        .args(["-d", "1s", "--progress", "off"])
        .env("WSBENCH_TOKEN", "wrong")
        .output()
        .unwrap();
    let text = format!("{}{}", out_str(&out.stdout), out_str(&out.stderr));
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains("401"), "names the refusal: {text}");
    assert!(
        !text.contains("wrong"),
        "the token is never printed: {text}"
    );
    let stats = server.stop();
    assert_eq!(stats.hello_ok, 3, "two sessions and the tool check");
    assert!(stats.hello_rejected >= 2, "{stats:?}");
}

/// A scripted MCP peer: answers `initialize`, then hands each `tools/call` to `reply`.
async fn mcp_peer(reply: fn(usize, &str) -> Vec<String>) -> String {
    mcp_peer_speaking("2025-11-25", reply).await
}

/// [`mcp_peer`] answering `initialize` with `version`.
async fn mcp_peer_speaking(version: &'static str, reply: fn(usize, &str) -> Vec<String>) -> String {
    tcp_server(move |tcp| async move {
        // Agrees to the `mcp` subprotocol, as MCP WebSocket servers do (a client that asked for
        // it refuses an upgrade without it).
        #[allow(clippy::result_large_err, reason = "tungstenite's Callback signature")]
        let agree = |req: &Request, mut resp: Response| {
            let asked = req.headers().get("sec-websocket-protocol").cloned();
            assert_eq!(asked.as_ref().and_then(|v| v.to_str().ok()), Some("mcp"));
            resp.headers_mut()
                .insert("sec-websocket-protocol", asked.unwrap());
            Ok::<_, ErrorResponse>(resp)
        };
        let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, agree).await else {
            return;
        };
        let Some(Ok(Message::Text(init))) = ws.next().await else {
            return;
        };
        let v: serde_json::Value = serde_json::from_str(init.as_str()).unwrap();
        assert_eq!(v["method"], "initialize");
        let id = v["id"].to_string();
        let answer = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"result":{{"protocolVersion":"{version}","capabilities":{{}},"serverInfo":{{"name":"peer","version":"0"}}}}}}"#
        );
        if ws.send(Message::text(answer)).await.is_err() {
            return;
        }
        let mut n = 0;
        while let Some(Ok(Message::Text(t))) = ws.next().await {
            let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
            if v["method"] == "tools/list" {
                let list = format!(
                    r#"{{"jsonrpc":"2.0","id":{},"result":{{"tools":[{{"name":"echo","inputSchema":{{"type":"object"}}}}]}}}}"#,
                    v["id"]
                );
                if ws.send(Message::text(list)).await.is_err() {
                    return;
                }
                continue;
            }
            if v["method"] != "tools/call" {
                continue; // notifications/initialized
            }
            let id = v["id"].as_str().unwrap().to_owned();
            if let Some(token) = v["params"]["_meta"].get("progressToken") {
                assert_eq!(token, &v["id"], "the progress token is the call's id");
            }
            for frame in reply(n, &id) {
                if ws.send(Message::text(frame)).await.is_err() {
                    return;
                }
            }
            n += 1;
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_json_rpc_case_lands_in_its_bucket_and_only_the_exact_id_matches() {
    let url = mcp_peer(|n, id| {
        let ok = |id: &str| format!(r#"{{"jsonrpc":"2.0","id":"{id}","result":{{"content":[]}}}}"#);
        match n % 6 {
            // A progress notification first (non-final), then the result.
            0 => vec![
                format!(r#"{{"jsonrpc":"2.0","method":"notifications/progress","params":{{"progressToken":"{id}","progress":1}}}}"#),
                ok(id),
            ],
            1 => vec![format!(r#"{{"jsonrpc":"2.0","id":"{id}","result":{{"content":[],"isError":true}}}}"#)],
            2 => vec![format!(r#"{{"jsonrpc":"2.0","id":"{id}","error":{{"code":-32603,"message":"boom"}}}}"#)],
            // The same request, numerically: the id as a number is not the id sent.
            3 => {
                let seq = id.rsplit('-').next().unwrap();
                vec![format!(r#"{{"jsonrpc":"2.0","id":{seq},"result":{{"content":[]}}}}"#)]
            }
            // A server-to-client request in between, then the result twice.
            4 => vec![
                r#"{"jsonrpc":"2.0","id":"srv-1","method":"ping"}"#.to_owned(),
                ok(id),
                ok(id),
            ],
            _ => vec![ok(id)],
        }
    })
    .await;
    let argv = [
        &["--url", &url, "--protocol", "mcp", "-c", "1", "-n", "60"][..],
        &["--timeout", "300ms", "--drain", "500ms"],
        &QUIET,
    ]
    .concat();
    let r = tokio::time::timeout(Duration::from_secs(30), run(&argv))
        .await
        .expect("the run ends");
    let c = &r.summary.counts;
    assert!(c.identity_holds(), "{c:?}");
    assert_eq!(c.sent, 60, "{c:?}");
    // 10 each of: progress+ok, isError, -32603, numeric id, ping+ok+duplicate, ok.
    assert_eq!(c.succeeded, 30, "{c:?}");
    assert_eq!(c.failed, 20, "{c:?}");
    assert_eq!(
        c.timed_out + c.unfinished,
        10,
        "a wrong id never answers: {c:?}"
    );
    assert_eq!(c.unmatched, 10, "{c:?}");
    assert_eq!(c.non_final, 10, "{c:?}");
    assert_eq!(c.duplicates, 10, "{c:?}");
    assert_eq!(c.unexpected, 10, "the server's own request: {c:?}");
    let codes = &r.summary.errors_by_code;
    assert_eq!(
        (codes.get("tool_error"), codes.get("-32603")),
        (Some(&10), Some(&10))
    );
    assert_eq!(r.outcome, Outcome::Passed, "gate off");
}

/// The wsbench binary's path, for commands a run spawns.
fn bin() -> String {
    assert_cmd::cargo::cargo_bin("wsbench")
        .display()
        .to_string()
}

/// Processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        if cmd.contains(marker) && !stat.contains(") Z ") {
            found.push(cmd);
        }
    }
    found
}

/// The stats files the spawned servers wrote in `dir` (one per process): how many, and these
/// counters summed over them.
fn stats_sums<const N: usize>(dir: &std::path::Path, keys: [&str; N]) -> (usize, [u64; N]) {
    let (mut files, mut sums) = (0, [0; N]);
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let s = common::read_json(&entry.path());
        for (sum, key) in sums.iter_mut().zip(keys) {
            *sum += s[key].as_u64().unwrap();
        }
        files += 1;
    }
    (files, sums)
}

#[test]
fn stdio_sessions_are_counted_exactly_against_each_servers_own_counters() {
    let dir = tempfile::tempdir().unwrap();
    // `$$` is each spawned shell's pid: one stats file per server process.
    let command = format!(
        "exec {} serve --protocol mcp --stdio --error-rate 0.05 --stats-file {}/stats-$$.json",
        bin(),
        dir.path().display()
    );
    let (_d, json) = temp_path("out.json");
    let out = wsbench()
        .args(["run", "--command", &command, "-c", "3", "--inflight", "4"])
        .args(["-n", "3000", "--progress", "off", "--no-gate", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", out_str(&out.stderr));
    let v = common::read_json(&json);
    let c = &v["counts"];
    assert_eq!(c["sent"], 3000);
    assert_eq!(v["identity_holds"], true);
    assert_eq!(
        v["settings"]["protocol"], "mcp",
        "a command speaks MCP by default"
    );
    assert_eq!(v["settings"]["transport"], "stdio");
    let log = v["settings"]["stderr_log"]
        .as_str()
        .expect("the stderr log is named");
    assert!(std::path::Path::new(log).exists(), "{log}");
    let (files, [calls, ok, err]) =
        stats_sums(dir.path(), ["call_tool", "results_ok", "results_error"]);
    assert_eq!(
        files, 4,
        "one server process per session and the tool check's, each ended cleanly"
    );
    assert_eq!(calls, 3000);
    assert_eq!(
        (c["succeeded"].as_u64(), c["failed"].as_u64()),
        (Some(ok), Some(err))
    );
    assert!(err > 50, "{err}");
    assert_eq!(v["errors_by_code"]["tool_error"].as_u64(), Some(err));
}

#[test]
fn a_server_process_that_exits_is_a_disconnect_and_is_spawned_again() {
    // Each server process quits after 300 calls: the calls in flight are lost, a new process
    // is spawned (a reconnect), and the load goes on.
    let command = format!(
        "exec {} serve --protocol mcp --stdio --disconnect-after 300",
        bin()
    );
    let (_d, json) = temp_path("out.json");
    let out = wsbench()
        .args(["run", "--command", &command, "-c", "2", "--inflight", "2"])
        .args([
            "-d",
            "2s",
            "--backoff-base",
            "10ms",
            "--progress",
            "off",
            "--no-gate",
        ])
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", out_str(&out.stderr));
    let v = common::read_json(&json);
    assert_eq!(v["identity_holds"], true);
    let reconnects = v["resilience"]["reconnects"].as_u64().unwrap();
    assert!(reconnects >= 2, "{}", v["resilience"]);
    assert!(v["counts"]["succeeded"].as_u64().unwrap() > 600);
}

#[test]
fn sigint_ends_a_stdio_run_with_its_report_and_no_server_process_survives() {
    let marker = format!("wsbench-sigint-marker-{}", std::process::id());
    let command = format!(
        "{} serve --protocol mcp --stdio --delay 1ms --stats-file /tmp/{marker}-$$.json",
        bin()
    );
    let child = std::process::Command::new(bin())
        .args(["run", "--command", &command, "-c", "3", "-d", "60s"])
        .args(["--progress", "off", "--output", "quiet"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while processes_with(&marker).len() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the servers never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let out = common::terminate_with(child, libc::SIGINT);
    assert_eq!(out.status.code(), Some(130), "{}", out_str(&out.stderr));
    assert!(
        out_str(&out.stdout).contains("interrupted"),
        "{}",
        out_str(&out.stdout)
    );
    std::thread::sleep(Duration::from_millis(200));
    let left = processes_with(&marker);
    assert!(left.is_empty(), "server processes survived: {left:?}");
    for entry in std::fs::read_dir("/tmp").unwrap().flatten() {
        if entry.file_name().to_string_lossy().contains(&marker) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_version_the_server_chose_is_reported_and_one_we_do_not_speak_ends_setup() {
    let ok = |_: usize, id: &str| {
        vec![format!(
            r#"{{"jsonrpc":"2.0","id":"{id}","result":{{"content":[]}}}}"#
        )]
    };
    // Asked for the newest, the server answers with an older revision: the session goes on
    // in that one, and the report says so.
    let older = mcp_peer_speaking("2025-06-18", ok).await;
    let argv = [
        &["--url", &older, "--protocol", "mcp", "-c", "2", "-n", "20"][..],
        &QUIET,
    ]
    .concat();
    let r = run(&argv).await;
    assert_eq!(r.summary.counts.succeeded, 20);
    assert_eq!(r.summary.versions.get("2025-06-18"), Some(&2));
    // A revision wsbench cannot speak: the client disconnects, and the run could not run.
    let alien = mcp_peer_speaking("1999-01-01", ok).await;
    let argv = [
        &["--url", &alien, "--protocol", "mcp", "-c", "2", "-d", "1s"][..],
        &QUIET,
    ]
    .concat();
    let r = run(&argv).await;
    assert_eq!(r.outcome, Outcome::CouldNotRun);
    assert!(
        r.reason.as_deref().unwrap_or("").contains("1999-01-01"),
        "{:?}",
        r.reason
    );
    // Against the reference server, the revision asked for is the one used.
    let flags = ["--mcp-version", "2025-03-26", "-c", "2", "-n", "20"];
    let (r, _) = load_mcp(mcp_server(&[]), &flags).await;
    assert_eq!(r.summary.versions.get("2025-03-26"), Some(&2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_given_up_on_is_cancelled_on_the_server() {
    // 10% of calls are never answered: each times out, and the client tells the server.
    let server = mcp_server(&["--drop-rate", "0.1", "--seed", "3"]);
    let flags = [
        "-c",
        "2",
        "--inflight",
        "4",
        "-n",
        "600",
        "--timeout",
        "200ms",
        "--drain",
        "1s",
    ];
    let (r, stats) = load_mcp(server, &flags).await;
    let c = &r.summary.counts;
    assert!(c.identity_holds(), "{c:?}");
    assert!(c.timed_out > 20, "{c:?}");
    assert_eq!(
        r.summary.resilience.cancels_sent, c.timed_out,
        "one per timeout"
    );
    assert_eq!(stats.cancelled, c.timed_out, "each reached the server");
    assert_eq!(stats.injected.dropped, c.timed_out + c.unfinished);
}

/// The reference server's Streamable HTTP endpoint (same port as its WebSocket).
fn http_url(server: &TestServer) -> String {
    format!("{}/mcp", server.url.replacen("ws://", "http://", 1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_streamable_http_counts_equal_the_servers() {
    let server = mcp_server(&["--error-rate", "0.05", "--seed", "11", "--progress"]);
    let url = http_url(&server);
    let argv = [
        &["--url", &url, "-c", "4", "--inflight", "2", "-n", "2000"][..],
        &QUIET,
    ]
    .concat();
    let r = run(&argv).await;
    let stats = server.stop();
    let c = &r.summary.counts;
    assert!(c.identity_holds(), "{c:?}");
    assert_eq!(r.settings.protocol, "mcp", "http:// speaks MCP by default");
    assert_eq!((c.sent, stats.call_tool), (2000, 2000));
    assert_eq!(c.succeeded, stats.results_ok);
    assert_eq!(c.failed, stats.results_error);
    assert_eq!(c.failed, stats.injected.errors);
    assert_eq!(r.summary.errors_by_code.get("tool_error"), Some(&c.failed));
    // Progress came first on every call: an SSE reply, the notification non-final.
    assert_eq!(c.non_final, c.sent, "{c:?}");
    assert_eq!(stats.hello_ok, 5, "four sessions and the tool check's");
    assert_eq!(r.summary.versions.get("2025-11-25"), Some(&4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_session_the_server_ends_is_set_up_again() {
    // Each session is closed by the server after 150 calls: its next POST is 404.
    let server = mcp_server(&["--disconnect-after", "150"]);
    let url = http_url(&server);
    let argv = [
        &[
            "--url",
            &url,
            "-c",
            "2",
            "-n",
            "900",
            "--backoff-base",
            "10ms",
        ][..],
        &QUIET,
    ]
    .concat();
    let r = run(&argv).await;
    let stats = server.stop();
    let c = &r.summary.counts;
    assert!(c.identity_holds(), "{c:?}");
    assert_eq!(c.sent, 900);
    assert!(
        r.summary.resilience.reconnects >= 4,
        "{:?}",
        r.summary.resilience
    );
    assert_eq!(c.succeeded + c.lost, 900, "{c:?}");
    assert_eq!(c.succeeded, stats.results_ok, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_token_asks_for_progress_and_times_the_first_notification() {
    // The peer sends progress only to calls that ask for it, with their token.
    let url = mcp_peer(|_, id| {
        vec![format!(
            r#"{{"jsonrpc":"2.0","id":"{id}","result":{{"content":[]}}}}"#
        )]
    })
    .await;
    let argv = [
        &["--url", &url, "--protocol", "mcp", "-c", "1", "-n", "20"][..],
        &QUIET,
    ]
    .concat();
    let plain = run(&argv).await;
    assert_eq!(plain.summary.counts.non_final, 0);
    let flags = ["--progress-token", "-c", "2", "-n", "200"];
    let (r, _) = load_mcp(mcp_server(&["--progress"]), &flags).await;
    let c = &r.summary.counts;
    assert_eq!((c.succeeded, c.non_final), (200, 200), "{c:?}");
    assert_eq!(
        r.summary.histograms.first_chunk.len(),
        200,
        "the first progress of every call is a phase"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_asking_for_progress_carries_its_id_as_the_token() {
    let url = mcp_peer(|_, id| {
        // Echo the token the call carried back as a progress notification, then the result.
        vec![
            format!(r#"{{"jsonrpc":"2.0","method":"notifications/progress","params":{{"progressToken":"{id}","progress":1}}}}"#),
            format!(r#"{{"jsonrpc":"2.0","id":"{id}","result":{{"content":[]}}}}"#),
        ]
    })
    .await;
    let argv = [
        &[
            "--url",
            &url,
            "--protocol",
            "mcp",
            "--progress-token",
            "-c",
            "1",
            "-n",
            "10",
        ][..],
        &QUIET,
    ]
    .concat();
    let r = run(&argv).await;
    assert_eq!(
        (r.summary.counts.succeeded, r.summary.counts.non_final),
        (10, 10)
    );
}

#[test]
fn a_stdio_url_speaks_the_stateless_revision_to_each_spawned_server() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "stdio:exec {} serve --protocol mcp --stdio --rpc-errors --error-rate 0.05 --stats-file {}/stats-$$.json",
        bin(),
        dir.path().display()
    );
    let (_d, json) = temp_path("out.json");
    let out = wsbench()
        .args(["run", "--url", &url, "--mcp-version", "2026-07-28"])
        .args(["-c", "2", "--inflight", "4", "-n", "1000"])
        .args(["--progress", "off", "--no-gate", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", out_str(&out.stderr));
    let v = common::read_json(&json);
    assert_eq!(v["settings"]["transport"], "stdio", "stdio: is --command");
    assert_eq!(v["protocol_versions"]["2026-07-28"], 2, "{v}");
    assert_eq!(v["identity_holds"], true);
    let (_, [calls, ok, hellos]) = stats_sums(dir.path(), ["call_tool", "results_ok", "hello_ok"]);
    assert_eq!(calls, 1000);
    assert_eq!(v["counts"]["succeeded"].as_u64(), Some(ok));
    let failed = v["counts"]["failed"].as_u64().unwrap();
    assert!(failed > 10, "{v}");
    assert_eq!(v["errors_by_code"]["-32603"].as_u64(), Some(failed));
    assert_eq!(
        hellos, 3,
        "two sessions and the tool check's, each opened statelessly"
    );
    // Both forms at once name two servers: refused before anything runs.
    let both = wsbench()
        .args(["run", "--url", &url, "--command", "true", "-n", "1"])
        .output()
        .unwrap();
    assert_eq!(both.status.code(), Some(2));
    assert!(out_str(&both.stderr).contains("--url"));
}
