//! Verdict integrity over real sockets: every run ends on its bound whatever the server does,
//! the first signal ends a run with its report, replies match only the exact id sent, nothing
//! unanswered passes the gate, a partly refused run is measured, "client saturated" only when
//! the client was the bottleneck, merge and baseline read what the run wrote, and the field
//! daemon's frame shapes are counted as it means them.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    id_of, load, ok, out_str, read_json, run, serve_config, spawn_serve, start_server, tcp_server,
    temp_path, ws_server, wsbench,
};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;
use wsbench::outcome::Outcome;
use wsbench::report::Reporter as _;

const QUIET: [&str; 3] = ["--progress", "off", "--no-gate"];

/// Runs `wsbench run` in-process, failing the test (not hanging it) past `limit`.
async fn bounded(args: &[&str], limit: Duration) -> (wsbench::result::RunResult, Duration) {
    let t0 = Instant::now();
    let r = tokio::time::timeout(limit, run(args))
        .await
        .unwrap_or_else(|_| panic!("the run did not end within {limit:?}: {args:?}"));
    (r, t0.elapsed())
}

/// A `--args` file of about 64 KiB, so that a handful of requests fill a socket.
fn big_args() -> (tempfile::TempDir, String) {
    let (dir, path) = temp_path("args.json");
    let pad = "x".repeat(64 << 10);
    std::fs::write(&path, format!(r#"{{"pad":"{pad}","n":{{{{seq}}}}}}"#)).unwrap();
    (dir, format!("@{}", path.display()))
}

/// One connection keeping 128 calls of 64 KiB in flight for 1 s (drain 500 ms): enough to
/// fill the socket of a server that does not read.
async fn large_calls(url: &str, extra: &[&str]) -> (wsbench::result::RunResult, Duration) {
    let (_dir, args) = big_args();
    let base = [
        "--url",
        url,
        "-c",
        "1",
        "--inflight",
        "128",
        "--args",
        &args,
    ];
    let argv = [&base[..], &["-d", "1s", "--drain", "500ms"], extra, &QUIET].concat();
    bounded(&argv, Duration::from_secs(30)).await
}

fn verdict<'a>(r: &'a wsbench::result::RunResult, metric: &str) -> &'a wsbench::gate::Verdict {
    r.verdicts
        .iter()
        .find(|v| v.metric == metric)
        .unwrap_or_else(|| panic!("no {metric} verdict in {:?}", r.verdicts))
}

// ---- 1. A run always ends -------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_larger_than_the_socket_still_ends_on_time() {
    let server = start_server(serve_config(&[])).await;
    let url = server.url();
    let args = [
        &["--url", &url, "-c", "1", "--inflight", "100000"][..],
        &["-d", "1s", "--drain", "1s"],
        &QUIET,
    ]
    .concat();
    let (r, took) = bounded(&args, Duration::from_secs(30)).await;
    let stats = server.shutdown().await.unwrap();
    let c = &r.summary.counts;
    // connect-timeout (5 s) + duration + drain + 1 s is the bound; it ends far inside it.
    assert!(took < Duration::from_secs(8), "{took:?}");
    assert!(c.succeeded > 0 && c.identity_holds(), "{c:?}");
    assert_eq!(stats.call_tool, c.sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_reading_after_hello_cannot_hold_the_run() {
    let url = ws_server(|ws| async move {
        let _held = ws;
        tokio::time::sleep(Duration::from_secs(60)).await;
    })
    .await;
    let (r, took) = large_calls(&url, &["--connect-timeout", "2s"]).await;
    let c = &r.summary.counts;
    assert!(
        took < Duration::from_millis(2000 + 1000 + 500 + 1000),
        "{took:?}"
    );
    assert!(c.sent > 0 && c.succeeded == 0, "{c:?}");
    assert_eq!(
        c.unfinished, c.sent,
        "nothing answered ends unfinished: {c:?}"
    );
    assert_eq!(r.summary.error_rate(), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_reference_server_cannot_hold_the_run() {
    let server = start_server(serve_config(&["--freeze-after", "100"])).await;
    let url = server.url();
    let (r, took) = large_calls(&url, &["--max-frame-size", "1MiB"]).await;
    let stats = server.shutdown().await.unwrap();
    let c = &r.summary.counts;
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(c.succeeded <= 100 && c.unfinished > 0, "{c:?}");
    assert!(c.identity_holds(), "{c:?}");
    assert_eq!(c.succeeded, stats.results_ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_into_a_hung_upgrade_ends_with_the_run() {
    let accepted = Arc::new(AtomicUsize::new(0));
    let url = tcp_server(move |tcp| {
        let n = accepted.fetch_add(1, Ordering::SeqCst);
        async move {
            if n > 0 {
                // Accepts TCP, never answers the upgrade.
                let _held = tcp;
                tokio::time::sleep(Duration::from_secs(60)).await;
                return;
            }
            let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                return;
            };
            let _ = ws.next().await;
            let _ = ws
                .send(Message::text(r#"{"op":"hello_ack","ok":true}"#))
                .await;
            let until = Instant::now() + Duration::from_millis(600);
            while Instant::now() < until {
                match tokio::time::timeout(Duration::from_millis(50), ws.next()).await {
                    Ok(Some(Ok(Message::Text(t)))) => {
                        let _ = ws.send(ok(&id_of(t.as_str()))).await;
                    }
                    Ok(_) => return,
                    Err(_) => {}
                }
            }
            // Dropped without a close: the client reconnects, into the hung upgrade.
        }
    })
    .await;
    let argv = [
        &["--url", &url, "-c", "1", "-d", "1s", "--drain", "500ms"][..],
        &["--connect-timeout", "10s", "--backoff-base", "10ms"],
        &QUIET,
    ]
    .concat();
    let (r, took) = bounded(&argv, Duration::from_secs(30)).await;
    let s = &r.summary;
    assert!(
        took < Duration::from_millis(1000 + 500 + 1000 + 1500),
        "a reconnect must not outlive the run: {took:?}"
    );
    assert!(s.counts.succeeded > 0, "{:?}", s.counts);
    assert_eq!(s.resilience.reconnects_abandoned, 1, "{:?}", s.resilience);
    assert!(s.counts.identity_holds());
}

#[test]
fn the_first_signal_ends_a_blocked_run_with_its_report_and_exit_130() {
    let (mut server, url) = spawn_serve(&["--freeze-after", "50"], &[]);
    let (_dir, args) = big_args();
    let (_out, json) = temp_path("r.json");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("wsbench"))
        .args(["run", "--url", &url, "-c", "1", "--inflight", "128"])
        .args(["--args", &args, "-d", "60s", "--progress", "off", "--json"])
        .arg(&json)
        .env_remove("WSBENCH_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: signals our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let signalled = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if signalled.elapsed() > Duration::from_secs(15) {
            let _ = child.kill();
            panic!("the first signal did not end the run");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = signalled.elapsed();
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(status.code(), Some(130));
    assert!(took < Duration::from_secs(4), "{took:?}");
    let v = read_json(&json);
    assert_eq!(v["verdict"], "interrupted");
    assert_eq!(v["identity_holds"], true);
    assert!(
        v["counts"]["unfinished"].as_u64().unwrap() > 0,
        "{}",
        v["counts"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_server_keeps_reading_while_a_client_is_slow_to_read() {
    let server = start_server(serve_config(&[])).await;
    let url = server.url();
    // A client with small socket buffers that writes 300 large calls before reading anything:
    // a server that stopped reading while its replies wait would leave this write hanging.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(64 << 10).unwrap();
    sock.set_send_buffer_size(64 << 10).unwrap();
    let addr = url.trim_start_matches("ws://").parse().unwrap();
    let tcp = sock.connect(addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(url.as_str(), tcp)
        .await
        .unwrap();
    ws.send(Message::text(
        r#"{"op":"hello","session_id":"slow-1","token":""}"#,
    ))
    .await
    .unwrap();
    let _ack = ws.next().await.unwrap().unwrap();
    let pad = "x".repeat(64 << 10);
    const CALLS: usize = 300;
    let write = async {
        for i in 0..CALLS {
            let frame = format!(
                r#"{{"op":"call_tool","request_id":"slow-{i}","name":"echo","arguments":{{"i":{i},"pad":"{pad}"}}}}"#
            );
            ws.feed(Message::text(frame)).await?;
        }
        ws.flush().await
    };
    tokio::time::timeout(Duration::from_secs(30), write)
        .await
        .expect("the server read every frame while its replies waited")
        .unwrap();
    let mut results = 0;
    let read = async {
        while results < CALLS {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if t.contains("call_tool_res") => results += 1,
                Some(Ok(_)) => {}
                _ => break,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("every reply arrives");
    assert_eq!(results, CALLS);
    let stats = server.shutdown().await.unwrap();
    assert_eq!(stats.call_tool, CALLS as u64);
}

#[test]
fn live_progress_counts_what_completed_even_when_traffic_stops() {
    // Every connection gets 100 answers in its first milliseconds, then silence.
    let (mut server, url) = spawn_serve(&["--freeze-after", "100"], &[]);
    let out = wsbench()
        .args([
            "run", "--url", &url, "-c", "4", "-d", "3s", "--drain", "200ms",
        ])
        .args(["--progress", "lines", "--no-gate", "--output", "quiet"])
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let err = out_str(&out.stderr);
    let first = err
        .lines()
        .find(|l| l.contains("] sent "))
        .unwrap_or_else(|| panic!("no progress line in {err}"));
    let sent: u64 = first
        .split("] sent ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .map(|n| n.replace(',', ""))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{first}"));
    assert!(
        sent >= 400,
        "second 0 completed 400 requests, the line says: {first}"
    );
}

// ---- 2. A reply matches only the exact id that was sent -------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_to_a_mangled_id_are_unmatched_never_successes() {
    let url = ws_server(|mut ws| async move {
        let mut i = 0;
        while let Some(Ok(Message::Text(t))) = ws.next().await {
            let id = id_of(t.as_str());
            let (prefix, seq) = id.rsplit_once('-').unwrap();
            // Numerically the same request; not the id that was sent.
            let mangled = match i % 3 {
                0 => format!("{prefix}-0{seq}"),
                1 => format!("{prefix}-+{seq}"),
                _ => format!("{prefix}-{seq} "),
            };
            i += 1;
            if ws.send(ok(&mangled)).await.is_err() {
                return;
            }
        }
    })
    .await;
    let argv = [
        &["--url", &url, "-c", "2", "-d", "1s", "--timeout", "200ms"][..],
        &["--drain", "300ms", "--progress", "off"],
        &["--min-rps", "0", "--max-p99", "1s"],
    ]
    .concat();
    let (r, _) = bounded(&argv, Duration::from_secs(20)).await;
    let c = &r.summary.counts;
    assert_eq!(c.succeeded, 0, "{c:?}");
    assert!(c.unmatched > 0, "{c:?}");
    assert_eq!(c.timed_out + c.unfinished, c.sent, "{c:?}");
    assert_eq!(r.outcome, Outcome::ThresholdFailed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_before_hello_ack_are_counted_in_their_buckets() {
    let url = tcp_server(|tcp| async move {
        let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
            return;
        };
        let _hello = ws.next().await;
        for early in [
            ok("nobody-0"),
            Message::text(r#"{"op":"progress","request_id":"nobody-1","note":"hi"}"#),
            Message::text("banner: not json"),
        ] {
            let _ = ws.send(early).await;
        }
        let _ = ws
            .send(Message::text(r#"{"op":"hello_ack","ok":true}"#))
            .await;
        while let Some(Ok(Message::Text(t))) = ws.next().await {
            if ws.send(ok(&id_of(t.as_str()))).await.is_err() {
                return;
            }
        }
    })
    .await;
    let argv = [
        &["--url", &url, "-c", "1", "-n", "10", "--warmup", "200ms"][..],
        &QUIET,
    ]
    .concat();
    let (r, _) = bounded(&argv, Duration::from_secs(20)).await;
    let c = &r.summary.counts;
    // The stray result and the progress for an id never sent are both unmatched.
    assert_eq!(
        (c.unmatched, c.non_final, c.malformed),
        (2, 0, 1),
        "measured counts, even with a warmup: {c:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_on_a_new_connection_for_a_lost_request_is_late_not_duplicate() {
    let accepted = Arc::new(AtomicUsize::new(0));
    let lost_id = Arc::new(Mutex::new(None::<String>));
    let url = tcp_server(move |tcp| {
        let n = accepted.fetch_add(1, Ordering::SeqCst);
        let lost_id = lost_id.clone();
        async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                return;
            };
            let _ = ws.next().await;
            let _ = ws
                .send(Message::text(r#"{"op":"hello_ack","ok":true}"#))
                .await;
            if n == 0 {
                // Take one request and vanish without answering it.
                if let Some(Ok(Message::Text(t))) = ws.next().await {
                    *lost_id.lock().unwrap() = Some(id_of(t.as_str()));
                }
                return;
            }
            // The same session again: first the answer to the request the drop lost.
            let old = lost_id.lock().unwrap().clone();
            if let Some(old) = old {
                let _ = ws.send(ok(&old)).await;
            }
            while let Some(Ok(Message::Text(t))) = ws.next().await {
                if ws.send(ok(&id_of(t.as_str()))).await.is_err() {
                    return;
                }
            }
        }
    })
    .await;
    let argv = [
        &[
            "--url",
            &url,
            "-c",
            "1",
            "-d",
            "1s",
            "--backoff-base",
            "10ms",
        ][..],
        &QUIET,
    ]
    .concat();
    let (r, _) = bounded(&argv, Duration::from_secs(20)).await;
    let c = &r.summary.counts;
    assert_eq!((c.lost, c.late, c.duplicates), (1, 1, 0), "{c:?}");
    assert!(c.succeeded > 0 && c.identity_holds(), "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_keys_and_a_falsy_error_beside_outputs_are_tolerated() {
    let url = ws_server(|mut ws| async move {
        while let Some(Ok(Message::Text(t))) = ws.next().await {
            let id = id_of(t.as_str());
            let reply = format!(
                r#"{{"op":"progress","op":"call_tool_res","request_id":"x","request_id":"{id}","error":false,"outputs":[]}}"#
            );
            if ws.send(Message::text(reply)).await.is_err() {
                return;
            }
        }
    })
    .await;
    let argv = [&["--url", &url, "-c", "1", "-n", "20"][..], &QUIET].concat();
    let (r, _) = bounded(&argv, Duration::from_secs(20)).await;
    let c = &r.summary.counts;
    assert_eq!((c.succeeded, c.malformed, c.failed), (20, 0, 0), "{c:?}");
}

// ---- 3. Nothing unanswered passes the gate --------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_requests_count_in_the_error_rate_and_fail_the_gate() {
    let (r, stats) = load(
        serve_config(&["--drop-rate", "0.01", "--seed", "7"]),
        &[
            "-c",
            "8",
            "--inflight",
            "4",
            "-d",
            "2s",
            // Long enough that every reply the server does send arrives, even on a busy machine.
            "--drain",
            "1s",
            "--threshold",
            "rps>=1",
            "--max-p99",
            "10s",
            "--max-connect-p99",
            "10s",
            "--progress",
            "off",
        ],
    )
    .await;
    let c = &r.summary.counts;
    assert!(stats.injected.dropped > 0);
    // Every call the server dropped is a request the client did not count as a success.
    assert_eq!(c.sent - c.succeeded, stats.injected.dropped, "{c:?}");
    let rate = r.summary.error_rate();
    assert!(
        (rate - stats.injected.dropped as f64 / c.sent as f64).abs() < 1e-12,
        "{rate}"
    );
    assert!(!verdict(&r, "error_rate").passed);
    assert_eq!(r.outcome, Outcome::ThresholdFailed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_slots_missed_while_the_server_is_down_are_dropped() {
    let (r, _stats) = load(
        serve_config(&["--down-after", "500ms", "--down-for", "1s"]),
        &[
            "-c",
            "4",
            "--rate",
            "1000",
            "-d",
            "2s",
            "--drain",
            "300ms",
            "--backoff-base",
            "20ms",
            "--min-rps",
            "1",
            "--max-p99",
            "10s",
            "--max-error-rate",
            "100%",
            "--progress",
            "off",
        ],
    )
    .await;
    let s = &r.summary;
    let c = &s.counts;
    assert!(c.dropped > 0, "{c:?}");
    // The schedule is exactly rate x duration; every slot was either sent or dropped.
    assert_eq!(c.sent + c.dropped, 2000, "{c:?}");
    let timeline: u64 = s.seconds.iter().map(|sec| sec.tally.dropped).sum();
    assert_eq!(timeline, c.dropped);
    assert!(!verdict(&r, "dropped").passed);
    assert_eq!(r.outcome, Outcome::ThresholdFailed);
    let json: serde_json::Value =
        serde_json::from_slice(&wsbench::report::json::JsonReporter.render(&r).unwrap()).unwrap();
    assert_eq!(json["counts"]["dropped"], c.dropped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_where_some_connections_are_refused_is_measured() {
    let (r, stats) = load(
        // Slow replies keep the client's CPU low: this run is about accounting, not speed.
        serve_config(&["--max-conns", "4", "--delay", "2ms"]),
        &[
            "-c",
            "12",
            "-d",
            "1s",
            "--drain",
            "300ms",
            "--min-rps",
            "1",
            "--max-p99",
            "1s",
            "--max-connect-p99",
            "10s",
            "--progress",
            "off",
        ],
    )
    .await;
    let s = &r.summary;
    // 4 accepted, 8 refused (a refusal racing an acceptance on the server's two threads can
    // turn one more away).
    assert!(
        (8..12).contains(&s.connections_failed),
        "{}",
        s.connections_failed
    );
    assert!(s.connections_opened >= 1);
    assert!(
        s.counts.sent > 0 && s.counts.identity_holds(),
        "{:?}",
        s.counts
    );
    assert_eq!(stats.call_tool, s.counts.sent);
    assert!(!verdict(&r, "connection_errors").passed);
    assert_eq!(r.outcome, Outcome::ThresholdFailed, "{:?}", r.reason);
}

// ---- 4. Inconclusive only when the client was the bottleneck --------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_setup_is_a_census_judged_exactly() {
    let argv = [
        &["--embedded", "-c", "4", "-n", "200", "--progress", "off"][..],
        &[
            "--min-rps",
            "1",
            "--max-p99",
            "10s",
            "--max-connect-p99",
            "1us",
        ],
    ]
    .concat();
    let (r, _) = bounded(&argv, Duration::from_secs(20)).await;
    let v = verdict(&r, "connect_p99");
    assert!(v.inconclusive.is_none(), "{v:?}");
    assert!(!v.passed);
    assert_eq!(r.outcome, Outcome::ThresholdFailed);
}

#[test]
fn the_quiet_line_and_junit_name_the_threshold_that_failed() {
    let (_dir, junit) = temp_path("j.xml");
    let out = wsbench()
        .args([
            "run",
            "--embedded",
            "-c",
            "2",
            "-n",
            "300",
            "--progress",
            "off",
        ])
        .args([
            "--output",
            "quiet",
            "--min-rps",
            "1",
            "--max-connect-p99",
            "10s",
        ])
        .args([
            "--threshold",
            "p99<1us",
            "--threshold",
            "p99.9<1us",
            "--junit",
        ])
        .arg(&junit)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let line = out_str(&out.stdout);
    assert!(line.contains(r#"failed="p99<0.001ms""#), "{line}");
    assert!(line.contains(r#"inconclusive="p99.9<0.001ms""#), "{line}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("p99 &lt; 0.001 ms failed: measured"), "{xml}");
    assert!(
        xml.contains("inconclusive: p99.9 from 300 samples"),
        "{xml}"
    );
}

#[test]
fn an_unreachable_target_is_one_junit_error() {
    let (_dir, junit) = temp_path("j.xml");
    let url = format!("ws://127.0.0.1:{}", common::closed_port());
    let out = wsbench()
        .args([
            "run",
            "--url",
            &url,
            "-c",
            "2",
            "-d",
            "1s",
            "--progress",
            "off",
        ])
        .arg("--junit")
        .arg(&junit)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), 1, "{xml}");
    let error = cases[0]
        .children()
        .find(|n| n.has_tag_name("error"))
        .expect("an error element");
    assert!(
        error
            .attribute("message")
            .unwrap()
            .starts_with("could not run: "),
        "{xml}"
    );
    assert!(!xml.contains("<failure"), "{xml}");
}

// ---- 5. Merge and baseline read what the run wrote ------------------------------------------

/// Runs in-process and writes the JSON result file.
async fn result_file(dir: &std::path::Path, name: &str, args: &[&str]) -> std::path::PathBuf {
    let r = run(args).await;
    let path = dir.join(name);
    std::fs::write(
        &path,
        wsbench::report::json::JsonReporter.render(&r).unwrap(),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_carries_downtime_and_drops_and_refuses_a_file_twice() {
    let (dir, _) = temp_path("x");
    let server = start_server(serve_config(&[
        "--down-after",
        "300ms",
        "--down-for",
        "600ms",
    ]))
    .await;
    let url = server.url();
    let common_args = [
        "--url",
        url.as_str(),
        "-c",
        "2",
        "--rate",
        "400",
        "-d",
        "1500ms",
        "--drain",
        "200ms",
        "--backoff-base",
        "20ms",
        "--breaker-open-timeout",
        "100ms",
        "--no-gate",
        "--progress",
        "off",
    ];
    let args_a = [&common_args[..], &["--worker-id", "a"]].concat();
    let args_b = [&common_args[..], &["--worker-id", "b"]].concat();
    let (a, b) = tokio::join!(
        result_file(dir.path(), "a.json", &args_a),
        result_file(dir.path(), "b.json", &args_b),
    );
    server.shutdown().await.unwrap();
    let (va, vb) = (read_json(&a), read_json(&b));
    let unavailable = va["resilience"]["unavailable_s"].as_f64().unwrap();
    assert!(unavailable > 0.2, "{}", va["resilience"]);
    let (_o, merged) = temp_path("m.json");
    let out = wsbench()
        .arg("merge")
        .args([&a, &b])
        .args(["--threshold", "unavailable<=0.1s", "--json"])
        .arg(&merged)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", out_str(&out.stdout));
    let m = read_json(&merged);
    let sum = |k: &str| va["counts"][k].as_u64().unwrap() + vb["counts"][k].as_u64().unwrap();
    for k in ["sent", "succeeded", "lost", "unfinished", "dropped"] {
        assert_eq!(m["counts"][k].as_u64().unwrap(), sum(k), "{k}");
    }
    assert!(m["resilience"]["unavailable_s"].as_f64().unwrap() >= unavailable);
    assert!(
        !m["resilience"]["breaker_transitions"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let out = wsbench().arg("merge").args([&a, &a]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = out_str(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("a.json") && err.contains("counts once"),
        "{err}"
    );
}

#[test]
fn merge_refuses_workers_whose_windows_do_not_overlap() {
    let (dir, _) = temp_path("x");
    let files: Vec<_> = ["a", "b"]
        .iter()
        .map(|w| {
            let path = dir.path().join(format!("{w}.json"));
            let out = wsbench()
                .args(["run", "--embedded", "-c", "1", "-d", "300ms", "--no-gate"])
                .args(["--progress", "off", "--output", "quiet", "--worker-id", w])
                .arg("--json")
                .arg(&path)
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(0));
            path
        })
        .collect();
    let out = wsbench().arg("merge").args(&files).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", out_str(&out.stdout));
    let err = out_str(&out.stderr);
    assert!(err.contains("--allow-disjoint"), "{err}");
    let out = wsbench()
        .arg("merge")
        .args(&files)
        .args(["--allow-disjoint", "--no-gate", "--output", "quiet"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", out_str(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_gate_with_a_baseline_reports_without_judging() {
    let (dir, _) = temp_path("x");
    let base = result_file(
        dir.path(),
        "base.json",
        &[
            "--embedded",
            "-c",
            "2",
            "-n",
            "2000",
            "--no-gate",
            "--progress",
            "off",
        ],
    )
    .await;
    // A baseline that no run can match: every comparison regresses.
    let mut v = read_json(&base);
    v["throughput_rps"] = 1e12.into();
    std::fs::write(&base, v.to_string()).unwrap();
    let out = wsbench()
        .args([
            "run",
            "--embedded",
            "-c",
            "2",
            "-n",
            "500",
            "--progress",
            "off",
        ])
        .args(["--no-gate", "--baseline"])
        .arg(&base)
        .output()
        .unwrap();
    let text = out_str(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("regressed (not gated)"), "{text}");
    assert!(!text.contains("REGRESSED"), "{text}");
    assert!(text.contains("the gate was off"), "{text}");
}

// ---- 6. The field daemon's shapes ----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_complete_before_the_result_is_a_phase_not_a_duplicate() {
    let (r, stats) = load(
        serve_config(&["--stream-complete"]),
        &["-c", "4", "-n", "2000", "--no-gate", "--progress", "off"],
    )
    .await;
    let s = &r.summary;
    let c = &s.counts;
    assert_eq!(
        (c.succeeded, c.duplicates, c.non_final),
        (2000, 0, 2000),
        "{c:?}"
    );
    assert_eq!(stats.results_ok, 2000);
    assert_eq!(s.histograms.stream_end.len(), 2000);
    // Latency ends at call_tool_res, which comes after stream_complete.
    assert!(s.histograms.service.min() >= s.histograms.stream_end.min());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_without_a_request_id_fails_the_one_request_in_flight() {
    // Provisionally: the request's own reply could still come until its timeout (short here,
    // since none comes: the reference server sends only the error).
    let (r, stats) = load(
        serve_config(&["--uncorrelated-error-rate", "0.05", "--seed", "3"]),
        &[
            "-c",
            "4",
            "--inflight",
            "1",
            "-n",
            "1000",
            "--timeout",
            "100ms",
            "--no-gate",
            "--progress",
            "off",
        ],
    )
    .await;
    let s = &r.summary;
    let c = &s.counts;
    let injected = stats.injected.uncorrelated_errors;
    assert!(injected > 0);
    assert_eq!(c.failed, injected, "{c:?}");
    assert_eq!(s.errors_by_code.get("OVER_CAPACITY"), Some(&injected));
    assert_eq!((c.timed_out, c.uncorrelated_errors), (0, 0), "{c:?}");
    assert_eq!(c.succeeded, stats.results_ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_without_a_request_id_among_many_in_flight_is_never_a_success() {
    let (r, stats) = load(
        serve_config(&["--uncorrelated-error-rate", "0.05", "--seed", "3"]),
        &[
            "-c",
            "2",
            "--inflight",
            "4",
            "-d",
            "1s",
            "--timeout",
            "300ms",
            "--drain",
            "1s",
            "--min-rps",
            "1",
            "--max-p99",
            "10s",
            "--progress",
            "off",
        ],
    )
    .await;
    let s = &r.summary;
    let c = &s.counts;
    let injected = stats.injected.uncorrelated_errors;
    assert!(c.uncorrelated_errors > 0, "{c:?}");
    // Each rejection is counted once: tied to its request when it was alone in flight,
    // otherwise as an uncorrelated error whose request then ended timed out or unfinished.
    assert_eq!(c.uncorrelated_errors + c.failed, injected, "{c:?}");
    assert_eq!(c.timed_out + c.unfinished, c.uncorrelated_errors, "{c:?}");
    assert_eq!(c.succeeded, stats.results_ok);
    assert_eq!(
        s.conn_errors_by_code.get("OVER_CAPACITY"),
        Some(&c.uncorrelated_errors)
    );
    assert_eq!(r.outcome, Outcome::ThresholdFailed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_tool_not_found_error_is_counted_by_its_code() {
    // The reference server answers a connection in order, so the oldest request in flight is
    // the one an error without an id is about.
    let (r, stats) = load(
        serve_config(&["--bare-tool-errors"]),
        &[
            "--tool",
            "nosuchtool",
            "--uncorrelated-errors",
            "oldest",
            "-c",
            "2",
            "--inflight",
            "1",
            "-n",
            "200",
            "--progress",
            "off",
        ],
    )
    .await;
    let s = &r.summary;
    assert_eq!(
        (s.counts.failed, s.counts.timed_out),
        (200, 0),
        "{:?}",
        s.counts
    );
    assert_eq!(s.errors_by_code.get("TOOL_NOT_FOUND"), Some(&200));
    assert_eq!(stats.errors_by_code.get("TOOL_NOT_FOUND"), Some(&200));
    assert_eq!(r.outcome, Outcome::ThresholdFailed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_echo_of_our_own_close_is_not_a_close_by_the_server() {
    let url = ws_server(|mut ws| async move {
        // Answers calls; on the client's close, keeps reading so tungstenite sends the echo
        // (a close frame with no status: 1005 as a code).
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Text(t) = msg
                && ws.send(ok(&id_of(t.as_str()))).await.is_err()
            {
                return;
            }
        }
    })
    .await;
    let argv = [&["--url", &url, "-c", "2", "-d", "500ms"][..], &QUIET].concat();
    let (r, _) = bounded(&argv, Duration::from_secs(20)).await;
    assert!(r.summary.counts.succeeded > 0);
    assert!(
        r.summary.close_codes.is_empty(),
        "{:?}",
        r.summary.close_codes
    );
}
