//! Verdicts that tell the truth at their edges, over real sockets: a client limit excuses only
//! what it can cause; a run is judged over the time asked; unavailable means nothing could be
//! served; every pause a server asks for is bounded; blame without a request id is
//! provisional; a slow handshake is not an attack; replays are visible; and the smaller
//! untruths (starvation, close reasons, frames about nothing, frames after a close).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{TestServer, id_of, ok, run, serve_config, tcp_server, ws_server, wsbench};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use wsbench::outcome::Outcome;
use wsbench::report::Reporter as _;
use wsbench::result::RunResult;

const QUIET: [&str; 2] = ["--progress", "off"];

/// Runs `wsbench run` in-process, failing the test (not hanging it) past `limit`.
async fn bounded(args: &[&str], limit: Duration) -> (RunResult, Duration) {
    let t0 = Instant::now();
    let argv: Vec<&str> = args.iter().copied().chain(QUIET).collect();
    let r = tokio::time::timeout(limit, run(&argv))
        .await
        .unwrap_or_else(|_| panic!("the run did not end within {limit:?}: {args:?}"));
    (r, t0.elapsed())
}

fn verdict<'a>(r: &'a RunResult, metric: &str) -> &'a wsbench::gate::Verdict {
    r.verdicts
        .iter()
        .find(|v| v.metric == metric)
        .unwrap_or_else(|| panic!("no {metric} verdict in {:?}", r.verdicts))
}

/// Keeps the runtime's only thread busy 40 ms at a time: the client's own timer falls behind,
/// as it does on a machine whose cores something else is using.
fn hog_the_client() -> tokio::task::JoinHandle<()> {
    tokio::spawn(async {
        loop {
            std::thread::sleep(Duration::from_millis(40));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
}

// ---- 1. Client lag excuses only what client lag can cause -----------------------------------

#[tokio::test(flavor = "current_thread")]
async fn a_saturated_client_excuses_latency_but_not_the_servers_explicit_errors() {
    let server = TestServer::start(serve_config(&["--error-rate", "0.5", "--seed", "7"]));
    let hog = hog_the_client();
    let (r, _) = bounded(
        &[
            "--url",
            &server.url,
            "-c",
            "4",
            "--rate",
            "400",
            "-d",
            "2s",
            "--timeout",
            "1s",
            "--threshold",
            "error_rate<1%",
            "--threshold",
            "p99<0.001ms",
        ],
        Duration::from_secs(30),
    )
    .await;
    hog.abort();
    let s = &r.summary;
    assert!(
        s.client.saturated,
        "the hog makes the pacer lag: {:?}",
        s.client
    );
    let errors = verdict(&r, "error_rate");
    assert!(
        !errors.passed && errors.inconclusive.is_none(),
        "{errors:?}"
    );
    let p99 = verdict(&r, "p99");
    assert!(
        !p99.passed
            && p99
                .inconclusive
                .as_deref()
                .is_some_and(|w| w.contains("client was the bottleneck")),
        "{p99:?}"
    );
    assert_eq!(r.outcome, Outcome::ThresholdFailed, "{:?}", r.reason);
    // The lag is measured over every request sent, not over the successes alone.
    assert_eq!(
        s.histograms.client_lag.len(),
        s.counts.sent,
        "{:?}",
        s.counts
    );
    assert!(s.counts.failed > s.counts.sent / 4, "{:?}", s.counts);
}

#[tokio::test(flavor = "current_thread")]
async fn a_saturated_client_makes_a_latency_failure_inconclusive() {
    let server = TestServer::start(serve_config(&[]));
    let hog = hog_the_client();
    let (r, _) = bounded(
        &[
            "--url",
            &server.url,
            "-c",
            "4",
            "--rate",
            "400",
            "-d",
            "2s",
            "--threshold",
            "p99<0.001ms",
            "--threshold",
            "error_rate<1%",
        ],
        Duration::from_secs(30),
    )
    .await;
    hog.abort();
    assert!(r.summary.client.saturated, "{:?}", r.summary.client);
    assert!(verdict(&r, "error_rate").passed);
    assert_eq!(r.outcome, Outcome::Inconclusive, "{:?}", r.verdicts);
    assert!(r.reason.unwrap().contains("client was the bottleneck"));
}

#[tokio::test(flavor = "current_thread")]
async fn mis_addressed_replies_fail_the_error_rate_whatever_the_client() {
    // Every reply names an id that was never sent: the requests time out after 1 s, far
    // longer than the client's 40 ms lag.
    let url = ws_server(|mut ws| async move {
        while let Some(Ok(Message::Text(t))) = ws.next().await {
            let id = format!("{}x", id_of(t.as_str()));
            if ws.send(ok(&id)).await.is_err() {
                return;
            }
        }
    })
    .await;
    let hog = hog_the_client();
    let (r, _) = bounded(
        &[
            "--url",
            &url,
            "-c",
            "2",
            "--rate",
            "100",
            "-d",
            "2s",
            "--timeout",
            "1s",
            "--drain",
            "1500ms",
            "--threshold",
            "error_rate<1%",
        ],
        Duration::from_secs(30),
    )
    .await;
    hog.abort();
    let c = &r.summary.counts;
    assert!(r.summary.client.saturated, "{:?}", r.summary.client);
    assert!(c.unmatched > 0 && c.timed_out > 0, "{c:?}");
    let v = verdict(&r, "error_rate");
    assert!(!v.passed && v.inconclusive.is_none(), "{v:?}");
    assert_eq!(r.outcome, Outcome::ThresholdFailed);
}

// ---- 2. A run is judged over the time that was asked -----------------------------------------

/// A server that answers every call and closes each connection (1000) after `n` calls.
async fn closes_after(n: u64) -> String {
    ws_server(move |mut ws| async move {
        let mut calls = 0;
        while let Some(Ok(Message::Text(t))) = ws.next().await {
            calls += 1;
            if ws.send(ok(&id_of(t.as_str()))).await.is_err() {
                return;
            }
            if calls == n {
                let frame = CloseFrame {
                    code: CloseCode::Normal,
                    reason: "".into(),
                };
                let _ = ws.close(Some(frame)).await;
                return;
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_connections_all_closed_is_judged_over_the_time_asked() {
    let url = closes_after(100).await;
    let (r, _) = bounded(
        &[
            "--url",
            &url,
            "-c",
            "4",
            "-d",
            "3s",
            "--reconnect",
            "off",
            "--threshold",
            "rps>=1000",
        ],
        Duration::from_secs(20),
    )
    .await;
    let s = &r.summary;
    assert_eq!(s.counts.succeeded, 400, "{:?}", s.counts);
    assert!(
        (s.duration.as_secs_f64() - 3.0).abs() < 0.01,
        "rps over the asked 3 s, not the 0.03 s it lasted: {:?}",
        s.duration
    );
    let early = s.ended_early.as_ref().expect("ended early");
    assert!(
        early
            .why
            .contains("every connection was closed by the server"),
        "{early:?}"
    );
    assert!(early.left_s > 2.0, "{early:?}");
    assert!(s.unavailable.as_secs_f64() > 2.5, "{:?}", s.unavailable);
    assert!(!verdict(&r, "rps").passed);
    assert_eq!(r.outcome, Outcome::ThresholdFailed);
    let reason = r.reason.as_deref().unwrap_or_default();
    assert!(reason.contains("before the time asked"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_go_on_until_sending_ends_and_downtime_counts_to_the_end() {
    // Up for 1 s, then closed and refusing until long after the run.
    let server = TestServer::start(serve_config(&["--down-after", "1s", "--down-for", "60s"]));
    let (r, took) = bounded(
        &["--url", &server.url, "-c", "4", "-d", "3s", "--no-gate"],
        Duration::from_secs(20),
    )
    .await;
    let s = &r.summary;
    assert!(
        took >= Duration::from_secs(3),
        "it lasted the time asked: {took:?}"
    );
    assert!(s.ended_early.is_none(), "{:?}", s.ended_early);
    assert!(
        (s.duration.as_secs_f64() - 3.0).abs() < 0.05,
        "{:?}",
        s.duration
    );
    let down = s.unavailable.as_secs_f64();
    assert!(
        (1.8..=2.2).contains(&down),
        "down from 1 s to the end at 3 s: {down}"
    );
    assert!(s.resilience.reconnect_attempts > 0);
}

// ---- 3. Unavailable means nothing could be served ---------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_hold_attempts_not_the_healthy_ones() {
    // Four connections fit; four more are refused (1008) and keep retrying: the breaker opens
    // on the refusals and holds connection attempts, while the four go on serving.
    let server = TestServer::start(serve_config(&["--max-conns", "4"]));
    let (r, _) = bounded(
        &[
            "--url",
            &server.url,
            "-c",
            "8",
            "-d",
            "3s",
            "--threshold",
            "unavailable<=0.1s",
        ],
        Duration::from_secs(20),
    )
    .await;
    let stats = server.stop();
    let s = &r.summary;
    assert_eq!(s.connections_opened, 4, "{:?}", s.setup_failures);
    assert!(s.counts.succeeded > 100 && s.counts.succeeded == stats.results_ok);
    assert!(
        s.unavailable.as_secs_f64() < 0.1,
        "served throughout: {:?}",
        s.unavailable
    );
    assert!(
        s.connect_held.as_secs_f64() > 1.0,
        "attempts held: {:?}",
        s.connect_held
    );
    assert!(verdict(&r, "unavailable").passed);
    for c in &s.per_conn {
        assert!(c.available.is_some_and(|a| a > 0.95), "{c:?}");
    }
}

// ---- 4. Every pause a server asks for is bounded ----------------------------------------------

/// A server whose first answer on each connection is an error asking for a pause of
/// `retry_after` (JSON text, as sent), then successes.
async fn asks_a_pause(retry_after: &'static str) -> String {
    ws_server(move |mut ws| async move {
        let mut first = true;
        while let Some(Ok(Message::Text(t))) = ws.next().await {
            let id = id_of(t.as_str());
            let reply = if std::mem::take(&mut first) {
                Message::text(format!(
                    r#"{{"op":"call_tool_res","request_id":"{id}","error":{{"code":"OVER_CAPACITY","retry_after":{retry_after}}}}}"#
                ))
            } else {
                ok(&id)
            };
            if ws.send(reply).await.is_err() {
                return;
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absurd_retry_after_is_clamped_and_counted() {
    for absurd in ["1e300", "18446744073709551616"] {
        let url = asks_a_pause(absurd).await;
        let (r, took) = bounded(
            &[
                "--url",
                &url,
                "-c",
                "2",
                "-n",
                "200",
                "--retry-after",
                "honor",
                "--retry-after-max",
                "500ms",
                "--no-gate",
            ],
            Duration::from_secs(20),
        )
        .await;
        let s = &r.summary;
        assert_eq!(
            (s.counts.sent, s.counts.succeeded),
            (200, 198),
            "{:?}",
            s.counts
        );
        assert!(took < Duration::from_secs(5), "{took:?}");
        let x = &s.resilience;
        assert_eq!(
            (x.retry_after_pauses, x.retry_after_invalid),
            (2, 2),
            "{x:?}"
        );
        assert!((900..=1100).contains(&x.retry_after_paused_ms), "{x:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_retry_afters_pause_nothing_and_are_counted() {
    for invalid in ["-5", r#""soon""#] {
        let url = asks_a_pause(invalid).await;
        let (r, took) = bounded(
            &[
                "--url",
                &url,
                "-c",
                "2",
                "-n",
                "100",
                "--retry-after",
                "honor",
                "--no-gate",
            ],
            Duration::from_secs(20),
        )
        .await;
        let x = &r.summary.resilience;
        assert_eq!(
            (x.retry_after_invalid, x.retry_after_pauses),
            (2, 0),
            "{invalid}: {x:?}"
        );
        assert!(took < Duration::from_secs(3), "{took:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_count_run_paused_past_its_end_ends_with_what_it_has() {
    let url = asks_a_pause("1e300").await;
    let (r, took) = bounded(
        &[
            "--url",
            &url,
            "-c",
            "2",
            "-n",
            "200",
            "--retry-after",
            "honor",
            "--retry-after-max",
            "1h",
            "--no-gate",
        ],
        Duration::from_secs(20),
    )
    .await;
    assert!(took < Duration::from_secs(5), "{took:?}");
    let s = &r.summary;
    assert_eq!((s.counts.sent, s.counts.failed), (2, 2), "{:?}", s.counts);
    let early = s.ended_early.as_ref().expect("ended early");
    assert!(early.why.contains("pause"), "{early:?}");
}

// ---- 5. Blame without a request id is provisional ---------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correlated_reply_wins_over_an_error_without_an_id() {
    // Each call draws an id-less error first, then its own correct reply.
    let url = ws_server(|mut ws| async move {
        while let Some(Ok(Message::Text(t))) = ws.next().await {
            let id = id_of(t.as_str());
            let err = Message::text(r#"{"op":"error","code":"X"}"#);
            if ws.send(err).await.is_err() || ws.send(ok(&id)).await.is_err() {
                return;
            }
        }
    })
    .await;
    let (r, _) = bounded(
        &["--url", &url, "-c", "1", "-n", "300", "--no-gate"],
        Duration::from_secs(20),
    )
    .await;
    let c = &r.summary.counts;
    assert_eq!((c.succeeded, c.failed, c.duplicates), (300, 0, 0), "{c:?}");
    assert_eq!(c.uncorrelated_errors, 300, "{c:?}");
    assert_eq!(r.summary.conn_errors_by_code.get("X"), Some(&300));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_without_an_id_alone_is_the_requests_failure_at_its_timeout() {
    // The error is all that comes: the one request in flight failed with it.
    let url = ws_server(|mut ws| async move {
        while let Some(Ok(Message::Text(_))) = ws.next().await {
            let err = Message::text(r#"{"op":"error","error":{"code":"OVER_CAPACITY"}}"#);
            if ws.send(err).await.is_err() {
                return;
            }
        }
    })
    .await;
    let (r, _) = bounded(
        &[
            "--url",
            &url,
            "-c",
            "1",
            "-n",
            "5",
            "--timeout",
            "200ms",
            "--no-gate",
        ],
        Duration::from_secs(20),
    )
    .await;
    let c = &r.summary.counts;
    assert_eq!(
        (c.failed, c.timed_out, c.uncorrelated_errors),
        (5, 0, 0),
        "{c:?}"
    );
    assert_eq!(r.summary.errors_by_code.get("OVER_CAPACITY"), Some(&5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oldest_attribution_fails_rejections_at_once_against_an_in_order_server() {
    let config = serve_config(&[
        "--in-order",
        "--uncorrelated-error-rate",
        "0.3",
        "--delay",
        "2ms",
        "--seed",
        "3",
    ]);
    let server = TestServer::start(config);
    let (r, took) = bounded(
        &[
            "--url",
            &server.url,
            "-c",
            "2",
            "--inflight",
            "4",
            "-n",
            "400",
            "--timeout",
            "10s",
            "--uncorrelated-errors",
            "oldest",
            "--no-gate",
        ],
        Duration::from_secs(30),
    )
    .await;
    let stats = server.stop();
    let c = &r.summary.counts;
    assert!(
        took < Duration::from_secs(8),
        "no rejection waits out the timeout: {took:?}"
    );
    assert_eq!(
        (c.sent, c.timed_out, c.uncorrelated_errors),
        (400, 0, 0),
        "{c:?}"
    );
    assert_eq!(c.failed, stats.injected.uncorrelated_errors, "{c:?}");
    assert_eq!(c.succeeded, stats.results_ok, "{c:?}");
    assert!(c.failed > 50, "{c:?}");
}

// ---- 6. A slow handshake is not an attack -----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_answer_a_byte_a_segment_is_a_slow_server_not_an_attack() {
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
    let url = tcp_server(|mut tcp| async move {
        let _ = tcp.set_nodelay(true);
        let mut req = Vec::new();
        let mut byte = [0u8; 1];
        while !req.ends_with(b"\r\n\r\n") {
            if tcp.read_exact(&mut byte).await.is_err() {
                return;
            }
            req.push(byte[0]);
        }
        let req = String::from_utf8_lossy(&req).into_owned();
        let Some(key) = req
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("sec-websocket-key:"))
            .map(|l| l[18..].trim().to_owned())
        else {
            return;
        };
        let answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\nServer: slow\r\n\r\n",
            derive_accept_key(key.as_bytes())
        );
        for b in answer.as_bytes() {
            if tcp.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_micros(300)).await;
        }
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            tcp,
            tokio_tungstenite::tungstenite::protocol::Role::Server,
            None,
        )
        .await;
        if let Some(Ok(Message::Text(_))) = ws.next().await {
            let _ = ws
                .send(Message::text(r#"{"op":"hello_ack","ok":true}"#))
                .await;
        }
        while let Some(Ok(Message::Text(t))) = ws.next().await {
            if ws.send(ok(&id_of(t.as_str()))).await.is_err() {
                return;
            }
        }
    })
    .await;
    let (r, _) = bounded(
        &["--url", &url, "-c", "2", "-n", "20", "--no-gate"],
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(
        r.summary.connections_opened, 2,
        "{:?}",
        r.summary.setup_failures
    );
    assert_eq!(r.summary.counts.succeeded, 20);
}

// ---- 7. Replays are visible -------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_from_the_servers_cache_are_counted_and_warned_about() {
    // Three in four answers come from the cache.
    let url = ws_server(|mut ws| async move {
        let mut n = 0u64;
        while let Some(Ok(Message::Text(t))) = ws.next().await {
            n += 1;
            let id = id_of(t.as_str());
            let cached = if n.is_multiple_of(4) { "false" } else { "true" };
            let reply = Message::text(format!(
                r#"{{"op":"call_tool_res","request_id":"{id}","outputs":[],"from_cache":{cached}}}"#
            ));
            if ws.send(reply).await.is_err() {
                return;
            }
        }
    })
    .await;
    let (r, _) = bounded(
        &["--url", &url, "-c", "1", "-n", "400", "--no-gate"],
        Duration::from_secs(20),
    )
    .await;
    let c = &r.summary.counts;
    assert_eq!((c.succeeded, c.replayed), (400, 300), "{c:?}");
    assert_eq!(r.summary.per_tool["echo"].counts.replayed, 300);
    let text = String::from_utf8(
        wsbench::report::text::TextReporter
            .render(&r)
            .expect("renders"),
    )
    .unwrap();
    assert!(
        text.contains("from its cache: vary the arguments"),
        "{text}"
    );
    let file = wsbench::result::file::RunFile::of(&r).unwrap();
    assert_eq!(file.counts.replayed, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_server_marks_its_replays() {
    let server = TestServer::start(serve_config(&[]));
    let (mut ws, _) = tokio_tungstenite::connect_async(&server.url).await.unwrap();
    ws.send(Message::text(
        r#"{"op":"hello","session_id":"t-1","token":""}"#,
    ))
    .await
    .unwrap();
    let _ack = ws.next().await;
    let call = r#"{"op":"call_tool","request_id":"same-1","name":"echo","arguments":{}}"#;
    let mut replies = Vec::new();
    for _ in 0..2 {
        ws.send(Message::text(call)).await.unwrap();
        if let Some(Ok(Message::Text(t))) = ws.next().await {
            replies.push(t.to_string());
        }
    }
    assert!(!replies[0].contains("from_cache"), "{replies:?}");
    assert!(replies[1].contains(r#""from_cache":true"#), "{replies:?}");
    assert_eq!(server.stop().replays, 1);
}

// ---- 8. Smaller untruths ----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_all_fail_alike_are_not_starved() {
    let server = TestServer::start(serve_config(&["--error-rate", "1"]));
    let (r, _) = bounded(
        &["--url", &server.url, "-c", "4", "-d", "1s", "--no-gate"],
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(r.summary.counts.succeeded, 0);
    assert!(r.summary.starved().is_empty(), "{:?}", r.summary.per_conn);
}

#[test]
fn the_help_defines_error_rate_as_everything_not_succeeded() {
    let out = wsbench().args(["run", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("(sent - succeeded) / sent"), "{help}");
    assert!(
        !help.contains("(failed + timed out + lost) / sent"),
        "{help}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_servers_close_reason_is_shown_with_its_code() {
    let url = ws_server(|mut ws| async move {
        if let Some(Ok(Message::Text(t))) = ws.next().await {
            let _ = ws.send(ok(&id_of(t.as_str()))).await;
            let frame = CloseFrame {
                code: CloseCode::Again,
                reason: "Retry-After: 2".into(),
            };
            let _ = ws.close(Some(frame)).await;
        }
    })
    .await;
    let (r, _) = bounded(
        &[
            "--url",
            &url,
            "-c",
            "1",
            "-d",
            "500ms",
            "--reconnect",
            "off",
            "--no-gate",
        ],
        Duration::from_secs(20),
    )
    .await;
    let reasons = &r.summary.close_reasons;
    assert_eq!(
        reasons.get("closed by the server: 1013 'Retry-After: 2'"),
        Some(&1),
        "{reasons:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_about_nothing_is_unmatched() {
    // Per call: progress for an id never sent, the result, then progress after the result.
    let url = ws_server(|mut ws| async move {
        while let Some(Ok(Message::Text(t))) = ws.next().await {
            let id = id_of(t.as_str());
            let stray = r#"{"op":"progress","request_id":"nobody-1","note":"x"}"#;
            let after = format!(r#"{{"op":"call_tool_ack","request_id":"{id}"}}"#);
            let before = format!(r#"{{"op":"progress","request_id":"{id}"}}"#);
            for m in [
                Message::text(stray),
                Message::text(before),
                ok(&id),
                Message::text(after),
            ] {
                if ws.send(m).await.is_err() {
                    return;
                }
            }
        }
    })
    .await;
    let (r, _) = bounded(
        &["--url", &url, "-c", "1", "-n", "50", "--no-gate"],
        Duration::from_secs(20),
    )
    .await;
    let c = &r.summary.counts;
    assert_eq!(c.succeeded, 50, "{c:?}");
    assert_eq!(c.non_final, 50, "only each call's own progress: {c:?}");
    // The stray progress and the ack after the result, for every call; the last call's ack
    // may come after the close.
    assert!((99..=100).contains(&c.unmatched), "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_after_the_servers_close_are_counted() {
    let calls = Arc::new(AtomicU64::new(0));
    let seen = calls.clone();
    let url = ws_server(move |ws| {
        let seen = seen.clone();
        async move {
            // The upgrade and hello are done: write raw frames from here on, a close first,
            // then two text frames a server must not send after it.
            let mut ws = ws;
            if let Some(Ok(Message::Text(t))) = ws.next().await {
                seen.fetch_add(1, Ordering::Relaxed);
                let _ = ws.send(ok(&id_of(t.as_str()))).await;
            }
            let mut tcp = ws.into_inner();
            let mut bytes = vec![0x88, 2, 0x03, 0xe8];
            for text in [&b"{\"op\":\"progress\"}"[..], b"late"] {
                bytes.push(0x81);
                bytes.push(text.len() as u8);
                bytes.extend_from_slice(text);
            }
            let _ = tcp.write_all(&bytes).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .await;
    let (r, _) = bounded(
        &[
            "--url",
            &url,
            "-c",
            "1",
            "-d",
            "500ms",
            "--reconnect",
            "off",
            "--no-gate",
        ],
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(calls.load(Ordering::Relaxed), 1);
    let c = &r.summary.counts;
    // Seen, not taken: the WebSocket library stops reading at the first such frame, so one
    // close counts one.
    assert_eq!(c.after_close, 1, "{c:?}");
    assert_eq!(c.succeeded + c.lost, c.sent, "{c:?}");
    assert_eq!(r.summary.close_codes.get(&1000), Some(&1));
}
