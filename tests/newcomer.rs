//! What a new user meets first: every message names what is wrong in one line with the right
//! exit code, the defaults do what they say, and a misbehaving server's fault is reported as
//! the client saw it. Real processes and real sockets throughout.

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, out_str, tcp_server, wsbench};
use futures_util::SinkExt as _;
use tokio_tungstenite::tungstenite::Message;

/// Runs wsbench; (exit code, stdout, stderr).
fn cli(args: &[&str]) -> (Option<i32>, String, String) {
    let out = wsbench().args(args).output().unwrap();
    (
        out.status.code(),
        out_str(&out.stdout),
        out_str(&out.stderr),
    )
}

#[test]
fn usage_errors_are_one_line_that_names_what_is_missing_or_wrong() {
    for (args, words) in [
        (
            &["merge"][..],
            "required arguments were not provided: <FILE>",
        ),
        (&["serve", "--tls-cert", "x.pem"], "--tls-key"),
        (&["completions"], "<SHELL>"),
        (
            &["run", "--con", "5"],
            "a similar argument exists: '--conns'",
        ),
        (&["run", "-d", "-5s"], "for '--duration <DURATION>'"),
        (
            &["run", "ws://127.0.0.1:99999"],
            "port 99999 is not 1-65535",
        ),
        (
            &["run", "--url", "ws://127.0.0.1:0"],
            "port 0 is not 1-65535",
        ),
        (&["run", "--embedded", "-d", "31d"], "at most 30 days"),
        (&["run", "--embedded", "--rate", "20M"], "at most 10M/s"),
        (
            &["run", "--embedded", "--threshold", "error_rate<0"],
            "can never pass",
        ),
        (
            &["run", "--embedded", "--args", r#"{"a":"{{bogus}}"}"#],
            "unknown placeholder {{bogus}}",
        ),
        (
            &[
                "run",
                "--embedded",
                "--threshold",
                "p99<50ms",
                "--max-p99",
                "1ms",
            ],
            "--max-p99 (flag --max-p99) both set p99: keep one",
        ),
        (
            &[
                "run",
                "--embedded",
                "--json",
                "same.json",
                "--junit",
                "same.json",
            ],
            "--junit same.json: --json writes that file too",
        ),
        (
            &["run", "--embedded", "--plot", "p.png"],
            "--plot p.png: writes an SVG chart",
        ),
        (
            &["run", "--embedded", "--output", "json", "--json", "-"],
            "--json -: stdout already carries the JSON result",
        ),
        (
            &[
                "serve",
                "--port",
                "0",
                "--stats-file",
                "/nonexistent/s.json",
            ],
            "--stats-file /nonexistent/s.json: cannot write there",
        ),
    ] {
        let (code, stdout, stderr) = cli(args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: one line: {stderr}");
        assert!(stderr.contains(words), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?}: no partial output");
    }
}

#[test]
fn a_bare_command_prints_its_usage() {
    for args in [&[][..], &["config"]] {
        let (code, _, stderr) = cli(args);
        assert_eq!(code, Some(2));
        assert!(stderr.contains("Usage: wsbench"), "{args:?}: {stderr}");
        assert!(stderr.contains("Commands:"), "{args:?}: {stderr}");
    }
}

#[test]
fn run_help_is_grouped_short_with_h_and_whole_with_help() {
    let (_, short, _) = cli(&["run", "-h"]);
    for heading in [
        "Target:",
        "Load:",
        "Timing:",
        "Resilience:",
        "Gate:",
        "Outputs:",
        "Advanced:",
    ] {
        assert!(short.contains(&format!("\n{heading}\n")), "{heading}");
    }
    let (_, long, _) = cli(&["run", "--help"]);
    assert!(long.lines().count() > short.lines().count());
    // -h keeps a flag's first sentence and its default; --help has all of it.
    assert!(short.contains("Requests kept outstanding per connection. Default 1 in closed loop"));
    assert!(!short.contains("deterministic under --seed"));
    assert!(long.contains("deterministic under --seed"));
    for metric in [
        "p50",
        "p90",
        "max",
        "hello_p99",
        "p99.9",
        "connection_errors",
    ] {
        assert!(long.contains(metric), "--threshold help names {metric}");
    }
    // capacity does not list what it refuses.
    let (_, capacity, _) = cli(&["capacity", "--help"]);
    for refused in [
        "--rate",
        "--stages",
        "--duration",
        "--requests",
        "--warmup",
        "--junit",
    ] {
        let listed = |l: &str| l.trim_start().starts_with(&format!("{refused} "));
        assert!(!capacity.lines().any(listed), "{refused}");
    }
    assert!(capacity.contains("--conns"));
}

#[test]
fn the_url_may_be_the_first_argument_and_q_is_the_one_line_verdict() {
    let server = TestServer::start(Default::default());
    let (code, stdout, stderr) =
        cli(&["run", &server.url, "-d", "1s", "-c", "2", "--no-gate", "-q"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.starts_with(&format!("PASS {}", server.url)),
        "{stdout}"
    );
    let (code, _, stderr) = cli(&["run", &server.url, "--url", &server.url]);
    assert_eq!(code, Some(2), "{stderr}");
}

#[test]
fn open_loop_passes_by_keeping_up_with_the_rate_asked() {
    let (_dir, json) = common::temp_path("r.json");
    let out = wsbench()
        .args([
            "run",
            "--embedded",
            "--rate",
            "500",
            "-d",
            "2s",
            "-c",
            "4",
            "--progress",
            "off",
        ])
        .args(["--output", "quiet", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", out_str(&out.stdout));
    let r = common::read_json(&json);
    let rps = r["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["metric"] == "rps")
        .unwrap();
    assert_eq!(
        rps["limit"].as_f64(),
        Some(495.0),
        "99 % of the asked 500/s"
    );
}

#[test]
fn a_host_that_does_not_resolve_fails_at_once_naming_it() {
    let started = Instant::now();
    let (code, stdout, stderr) = cli(&[
        "run",
        "--url",
        "ws://no-such-host.invalid:8079",
        "--connect-timeout",
        "2s",
    ]);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        stderr.contains("cannot resolve host 'no-such-host.invalid'"),
        "{stderr}"
    );
    assert!(stdout.is_empty());
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_refused_token_says_how_to_pass_one() {
    let server = TestServer::with_token("s3cret");
    let (code, stdout, _) = cli(&["run", &server.url, "-d", "1s", "-c", "2", "-q"]);
    assert_eq!(code, Some(3));
    assert!(stdout.contains("--token or WSBENCH_TOKEN"), "{stdout}");
    assert!(!stdout.contains("s3cret"));
}

#[test]
fn logs_show_connection_events_with_v_and_carry_no_colour_into_a_file() {
    let port = common::closed_port();
    let url = format!("ws://127.0.0.1:{port}");
    let out = wsbench()
        .args([
            "run",
            &url,
            "-d",
            "1s",
            "-c",
            "2",
            "-v",
            "--progress",
            "off",
        ])
        .env("RUST_LOG", "")
        .output()
        .unwrap();
    let stderr = out_str(&out.stderr);
    assert!(stderr.contains("connection failed: connect: "), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "no ANSI codes when stderr is not a terminal"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_server_is_not_a_websocket_endpoint_and_it_is_said_at_once() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let url = tcp_server(|mut tcp| async move {
        let mut buf = [0u8; 2048];
        let _ = tcp.read(&mut buf).await;
        let _ = tcp
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
            .await;
    })
    .await;
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || cli(&["run", &url, "-d", "5s", "-q"]))
        .await
        .unwrap();
    assert_eq!(out.0, Some(3), "{}", out.2);
    assert!(
        out.1.contains("not a WebSocket endpoint (HTTP 200 OK)"),
        "{}",
        out.1
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "no retries for a web page"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(
    clippy::result_large_err,
    reason = "tungstenite's handshake callback returns its own error type"
)]
async fn an_extension_the_client_did_not_ask_for_fails_the_upgrade() {
    let url = tcp_server(|tcp| async move {
        let add =
            |_: &tokio_tungstenite::tungstenite::handshake::server::Request,
             mut resp: tokio_tungstenite::tungstenite::handshake::server::Response| {
                resp.headers_mut().insert(
                    "sec-websocket-extensions",
                    "permessage-deflate".parse().unwrap(),
                );
                Ok(resp)
            };
        let _ = tokio_tungstenite::accept_hdr_async(tcp, add).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    let out = tokio::task::spawn_blocking(move || cli(&["run", &url, "-d", "2s", "-q"]))
        .await
        .unwrap();
    assert_eq!(out.0, Some(3), "{}", out.2);
    assert!(
        out.1
            .contains("accepted an extension the client did not ask for (permessage-deflate)"),
        "{}",
        out.1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_close_codes_and_invalid_utf8_are_reported_as_seen() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Frame};
    // Even connections get a close with code 999, odd ones a text frame of invalid UTF-8.
    let n = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let url = common::ws_server(move |mut ws| {
        let which = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        async move {
            use futures_util::StreamExt as _;
            let _ = ws.next().await;
            if which.is_multiple_of(2) {
                let close = CloseFrame {
                    code: CloseCode::from(999),
                    reason: "".into(),
                };
                let _ = ws.send(Message::Close(Some(close))).await;
            } else {
                let bad = Frame::message(vec![0xff, 0xfe, 0xfd], OpCode::Data(Data::Text), true);
                let _ = ws.send(Message::Frame(bad)).await;
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
    })
    .await;
    let (_dir, json) = common::temp_path("r.json");
    let path = json.clone();
    let out = tokio::task::spawn_blocking(move || {
        wsbench()
            .args([
                "run",
                &url,
                "-d",
                "1s",
                "-c",
                "2",
                "--reconnect",
                "off",
                "--no-gate",
            ])
            .args(["--progress", "off", "--output", "quiet", "--json"])
            .arg(&path)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(json.exists(), "{}", out_str(&out.stderr));
    let r = common::read_json(&json);
    let reasons = r["close_reasons"].as_object().expect("close_reasons");
    assert_eq!(
        reasons["an invalid close code (reported as 1002)"], 1,
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|(why, n)| why.contains("UTF-8") && n == 1),
        "{reasons:?}"
    );
}

#[test]
fn a_run_that_never_started_prints_no_nonsense_figures() {
    let url = format!("ws://127.0.0.1:{}", common::closed_port());
    let (code, stdout, stderr) = cli(&["run", &url, "-d", "1s", "--progress", "off"]);
    assert_eq!(code, Some(3), "{stderr}");
    let client = stdout
        .lines()
        .find(|l| l.starts_with("Client"))
        .expect("a Client line");
    assert!(
        !client.contains("% of") && !client.contains("KiB/connection"),
        "{client}"
    );
    assert!(!client.contains("us/request"), "{client}");
    // With 64 connections refused, the breaker opens while they connect: before the window.
    if let Some(breaker) = stdout.lines().find(|l| l.starts_with("Breaker")) {
        assert!(!breaker.contains("at -"), "{breaker}");
        assert!(breaker.contains("before the measured window"), "{breaker}");
    }
}

#[test]
fn the_hdr_log_names_the_latency_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let (closed, open) = (dir.path().join("c.hlog"), dir.path().join("o.hlog"));
    for (path, extra) in [(&closed, vec![]), (&open, vec!["--rate", "200"])] {
        let out = wsbench()
            .args([
                "run",
                "--embedded",
                "-d",
                "1s",
                "-c",
                "2",
                "--no-gate",
                "--output",
                "quiet",
            ])
            .args(&extra)
            .arg("--hdr-log")
            .arg(path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", out_str(&out.stderr));
    }
    let text = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();
    assert!(text(&closed).contains("per-second service time (closed loop"));
    assert!(text(&open).contains("per-second response time (open loop"));
}
