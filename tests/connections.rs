//! Connection scale, in small numbers: source addresses spread with `--bind-ip` (lists and
//! ranges), checked by the peer addresses a real listener accepted.

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use common::{out_str, wsbench};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;

/// What the recording server saw: each connection's source address, and when each close came.
#[derive(Default)]
struct Seen {
    sources: Mutex<Vec<IpAddr>>,
    closes: Mutex<Vec<std::time::Instant>>,
}

/// A WebSocket server that acknowledges hello and answers every call, recording each
/// connection's source address and when its close arrived (tungstenite answers it as it reads).
async fn recording_server() -> (String, Arc<Seen>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let seen: Arc<Seen> = Arc::default();
    let keep = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, peer)) = listener.accept().await {
            keep.sources.lock().unwrap().push(peer.ip());
            let seen = keep.clone();
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    let text = match msg {
                        Message::Text(text) => text,
                        Message::Close(_) => {
                            seen.closes.lock().unwrap().push(std::time::Instant::now());
                            continue;
                        }
                        _ => continue,
                    };
                    let reply = if text.contains("\"hello\"") {
                        Message::text(r#"{"op":"hello_ack","ok":true}"#)
                    } else {
                        common::ok(&common::id_of(text.as_str()))
                    };
                    if ws.send(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_ip_ranges_and_lists_spread_connections_over_source_addresses() {
    let (url, seen) = recording_server().await;
    let out = tokio::task::spawn_blocking(move || {
        wsbench()
            .args([
                "run",
                &url,
                "-c",
                "8",
                "-d",
                "1s",
                "--no-gate",
                "--progress",
                "off",
            ])
            .args([
                "--output",
                "quiet",
                "--bind-ip",
                "127.0.0.2-127.0.0.4,127.0.0.9",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", out_str(&out.stderr));
    let mut by_source: BTreeMap<String, u32> = BTreeMap::new();
    for ip in seen.sources.lock().unwrap().iter() {
        *by_source.entry(ip.to_string()).or_default() += 1;
    }
    // Round-robin over the four addresses, two connections each.
    let expected: BTreeMap<String, u32> = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.9"]
        .into_iter()
        .map(|ip| (ip.to_owned(), 2))
        .collect();
    assert_eq!(by_source, expected);
}

#[test]
fn bad_source_addresses_are_refused_naming_the_flag() {
    for (value, words) in [
        ("127.0.0.9-127.0.0.2", "runs backwards"),
        ("10.0.0.0-10.2.0.0", "over 65,536 addresses"),
        ("::1-::2", "ranges are IPv4"),
        ("nope", "'nope' is not an IP address"),
    ] {
        let out = wsbench()
            .args(["run", "--embedded", "-d", "1s", "--bind-ip", value])
            .output()
            .unwrap();
        let err = out_str(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{value}: {err}");
        assert!(
            err.contains("--bind-ip") && err.contains(words),
            "{value}: {err}"
        );
    }
}

fn run_json(args: Vec<String>) -> (Option<i32>, serde_json::Value, String) {
    let (dir, json) = common::temp_path("r.json");
    let out = wsbench()
        .args(&args)
        .args([
            "--progress",
            "off",
            "--output",
            "quiet",
            "--no-gate",
            "--json",
        ])
        .arg(&json)
        .output()
        .unwrap();
    let stderr = out_str(&out.stderr);
    assert!(json.exists(), "{stderr}");
    let r = common::read_json(&json);
    drop(dir);
    (out.status.code(), r, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ramp_down_closes_at_the_rate_and_counts_each_answer() {
    let (url, seen) = recording_server().await;
    let args: Vec<String> = ["run", &url, "-c", "20", "-d", "1s", "--drain", "100ms"]
        .iter()
        .map(|s| s.to_string())
        .chain(["--close-rate".into(), "20".into()])
        .collect();
    let (code, r, stderr) = tokio::task::spawn_blocking(move || run_json(args))
        .await
        .unwrap();
    assert_eq!(code, Some(0), "{stderr}");
    let res = &r["resilience"];
    assert_eq!(res["closes_answered"], 20, "{res}");
    assert_eq!(res["closes_unanswered"], 0);
    assert_eq!(res["closes_dropped"], 0);
    let mut at = seen.closes.lock().unwrap().clone();
    at.sort();
    assert_eq!(at.len(), 20);
    // 20 closes at 20/s: the 20th is ~0.95 s after the first (all at once would be ~0).
    let span = at[19] - at[0];
    assert!(
        span >= std::time::Duration::from_millis(800) && span < std::time::Duration::from_secs(3),
        "{span:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closes_a_server_leaves_unanswered_are_counted() {
    // After hello the server stops reading: our close is never answered.
    let url = common::ws_server(|ws| async move {
        let _held = ws;
        tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    })
    .await;
    let args: Vec<String> = ["run", &url, "-c", "4", "-d", "1s", "--drain", "100ms"]
        .iter()
        .map(|s| s.to_string())
        .chain([
            "--close-rate".into(),
            "40".into(),
            "--timeout".into(),
            "200ms".into(),
        ])
        .collect();
    let (_, r, stderr) = tokio::task::spawn_blocking(move || run_json(args))
        .await
        .unwrap();
    let res = &r["resilience"];
    assert_eq!(res["closes_unanswered"], 4, "{res} {stderr}");
    assert_eq!(res["closes_answered"], 0);
}

#[test]
fn a_connection_search_finds_the_servers_connection_limit() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("knee.toml");
    // The reference server refuses (close 1008) every connection past 37.
    std::fs::write(&profile, "[serve]\nmax_conns = 37\n").unwrap();
    let (json, html) = (dir.path().join("c.json"), dir.path().join("c.html"));
    let out = wsbench()
        .args([
            "capacity",
            "--find",
            "conns",
            "--embedded",
            "--min-conns",
            "8",
        ])
        .args([
            "--max-conns",
            "64",
            "--step-duration",
            "500ms",
            "--step-warmup",
            "0s",
        ])
        .args([
            "--precision",
            "1%",
            "--threshold",
            "p99<1s",
            "--max-connect-p99",
            "1s",
        ])
        .arg("--config")
        .arg(&profile)
        .arg("--json")
        .arg(&json)
        .arg("--html")
        .arg(&html)
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", out_str(&out.stderr));
    let r = common::read_json(&json);
    assert_eq!(r["find"], "conns");
    assert!(r["capacity_rps"].is_null());
    let found = r["capacity_conns"].as_u64().expect("an answer") as f64;
    assert!(
        (found - 37.0).abs() / 37.0 <= 0.05,
        "found {found}, the knee is 37"
    );
    // Each step says why it did not hold: the connections that could not be set up.
    let steps = r["steps"].as_array().unwrap();
    assert!(steps.iter().any(|s| s["conns"].as_u64() > Some(37)
        && s["conn_errors"].as_u64() > Some(0)
        && !s["sustainable"].as_bool().unwrap()));
    assert!(
        steps
            .iter()
            .all(|s| s["conns"].as_u64() > Some(37) || s["sustainable"] == true)
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains(&format!("Capacity: {found:.0} concurrent connections")));
    assert!(page.contains("Latency by connections"));
}

#[test]
fn a_connection_search_finds_the_servers_memory_pressure_knee() {
    // Each session holds 64 KiB of state under a 3 MiB budget: the 49th session at once gets
    // none, and every call it makes is answered OUT_OF_MEMORY. Unlike --max-conns, every
    // connection is set up: the knee shows in the request thresholds (errors), not in setup.
    let dir = tempfile::tempdir().unwrap();
    let stats = dir.path().join("stats.json");
    let (server, url) = common::spawn_serve(
        &[
            "--session-memory",
            "64KiB",
            "--memory-limit",
            "3MiB",
            "--stats-file",
            stats.to_str().unwrap(),
        ],
        &[],
    );
    let json = dir.path().join("c.json");
    let out = wsbench()
        .args(["capacity", "--find", "conns", &url, "--min-conns", "8"])
        .args(["--max-conns", "128", "--step-duration", "500ms"])
        .args(["--step-warmup", "0s", "--precision", "1%"])
        .args(["--threshold", "p99<1s", "--max-connect-p99", "1s"])
        .arg("--json")
        .arg(&json)
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .unwrap();
    let server_out = common::terminate(server);
    assert_eq!(out.status.code(), Some(0), "{}", out_str(&out.stderr));
    let knee = 3 * 1024 / 64;
    let r = common::read_json(&json);
    let found = r["capacity_conns"].as_u64().expect("an answer");
    assert!(
        found.abs_diff(knee) * 20 <= knee,
        "found {found}, the knee is {knee}"
    );
    let steps = r["steps"].as_array().unwrap();
    for s in steps {
        let conns = s["conns"].as_u64().unwrap();
        assert_eq!(s["conn_errors"], 0, "every session is set up: {s}");
        assert_eq!(
            s["sustainable"].as_bool().unwrap(),
            conns <= knee,
            "{conns} sessions: {s}"
        );
        if conns > knee {
            assert!(s["error_rate"].as_f64().unwrap() > 0.0, "{s}");
        }
    }
    // The server counted the sessions it had no memory for, and gave every byte back.
    let st = common::read_json(&stats);
    assert!(
        st["sessions_out_of_memory"].as_u64() > Some(0),
        "{st} {}",
        out_str(&server_out.stderr)
    );
    assert!(st["errors_by_code"]["OUT_OF_MEMORY"].as_u64() > Some(0));
    assert_eq!(st["session_memory_bytes"], 0);
    assert!(st["peak_active"].as_u64() > Some(knee));
}

#[test]
fn idle_connections_stay_open_to_the_end_and_the_server_answers_every_close() {
    // 300 connections at 2 requests/s: nearly all have no request to send. Each stays open for
    // the whole run (the server saw 300 at once), then closes at 300/s, every close answered.
    let server = common::TestServer::start(Default::default());
    let args: Vec<String> = [
        "run",
        &server.url,
        "-c",
        "300",
        "--rate",
        "2",
        "-d",
        "2s",
        "--drain",
        "100ms",
        "--close-rate",
        "300",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (code, r, stderr) = run_json(args);
    assert_eq!(code, Some(0), "{stderr}");
    let res = &r["resilience"];
    assert_eq!(res["closes_answered"], 300, "{res}");
    assert_eq!(res["closes_dropped"], 0, "{res}");
    let stats = server.stop();
    assert_eq!(stats.peak_active, 300);
    assert_eq!(stats.connections, 300);
}
