//! `run` against a real reference server over loopback, in-process: wsbench's counts must equal
//! the server's own counters exactly.

mod common;

use common::{load, run, start_server};
use wsbench::config::{Secret, ServeConfig};
use wsbench::outcome::Outcome;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_equal_the_servers_counters_exactly() {
    let (r, stats) = load(
        ServeConfig::default(),
        &["-c", "8", "-d", "1s", "--no-gate"],
    )
    .await;

    let c = &r.summary.counts;
    assert!(c.sent > 1000, "a second of load sends plenty: {c:?}");
    assert!(c.identity_holds(), "{c:?}");
    assert_eq!(c.sent, stats.call_tool);
    assert_eq!(c.succeeded, stats.results_ok);
    assert_eq!(c.failed, stats.results_error);
    assert_eq!(stats.replays, 0, "request ids never repeat");
    assert_eq!(stats.hello_ok, 8);
    assert_eq!(
        (c.duplicates, c.unmatched, c.malformed, c.unfinished),
        (0, 0, 0, 0)
    );
    assert_eq!(r.summary.histograms.latency.len(), c.succeeded);
    assert_eq!(r.summary.histograms.connect.len(), 8);
    assert_eq!(r.outcome, Outcome::Passed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_replies_are_matched_to_their_requests() {
    let (r, stats) = load(
        ServeConfig::default(),
        &["-c", "4", "--inflight", "16", "-n", "20000", "--no-gate"],
    )
    .await;

    let c = &r.summary.counts;
    assert_eq!(c.sent, 20_000);
    assert_eq!(c.succeeded, 20_000);
    assert_eq!((c.duplicates, c.unmatched, c.late, c.failed), (0, 0, 0, 0));
    assert_eq!(stats.call_tool, 20_000);
    assert_eq!(stats.results_ok, 20_000);
    assert_eq!(stats.replays, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_mode_sends_exactly_n_across_connections() {
    let (r, stats) = load(
        ServeConfig::default(),
        &["-c", "7", "-n", "1001", "--no-gate"],
    )
    .await;
    assert_eq!(r.summary.counts.sent, 1001);
    assert_eq!(r.summary.counts.succeeded, 1001);
    assert_eq!(stats.call_tool, 1001);
    assert_eq!(
        r.summary.per_conn.iter().map(|c| c.succeeded).sum::<u64>(),
        1001
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tool_failures_are_counted_by_code_and_fail_the_gate() {
    let (r, stats) = load(
        ServeConfig::default(),
        &["-c", "2", "-n", "500", "--tool", "nope", "--min-rps", "1"],
    )
    .await;
    let c = &r.summary.counts;
    assert_eq!(c.failed, 500);
    assert_eq!(r.summary.errors_by_code.get("TOOL_NOT_FOUND"), Some(&500));
    assert_eq!(stats.errors_by_code.get("TOOL_NOT_FOUND"), Some(&500));
    assert_eq!(r.outcome, Outcome::ThresholdFailed);
    let failed: Vec<_> = r
        .verdicts
        .iter()
        .filter(|v| !v.passed)
        .map(|v| v.metric.as_str())
        .collect();
    assert!(failed.contains(&"error_rate"), "{failed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_timeout_count_as_timed_out_not_succeeded() {
    let server = start_server(ServeConfig::default()).await;
    let url = server.url();
    // `sleep` answers after 400 ms; the client gives up after 100 ms.
    let r = run(&[
        "--url",
        &url,
        "-c",
        "2",
        "-n",
        "4",
        "--tool",
        "sleep",
        "--args",
        r#"{"ms":400,"n":{{seq}}}"#,
        "--timeout",
        "100ms",
        "--drain",
        "1s",
        "--no-gate",
    ])
    .await;
    server.shutdown().await.unwrap();
    let c = &r.summary.counts;
    assert_eq!(c.sent, 4);
    assert_eq!(c.timed_out, 4);
    assert_eq!(c.succeeded, 0);
    assert!(c.identity_holds(), "{c:?}");
    assert!(c.late <= 4, "late replies are not successes: {c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_still_outstanding_at_the_end_are_unfinished() {
    let (r, stats) = load(
        ServeConfig::default(),
        &[
            "-c",
            "1",
            "-d",
            "200ms",
            "--tool",
            "sleep",
            "--args",
            r#"{"ms":3000,"n":{{seq}}}"#,
            "--inflight",
            "3",
            "--drain",
            "100ms",
            "--no-gate",
        ],
    )
    .await;
    let c = &r.summary.counts;
    assert_eq!((c.sent, c.unfinished), (3, 3), "{c:?}");
    assert_eq!(stats.call_tool, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_a_rejected_hello_with_close_code_4003() {
    let server = start_server(ServeConfig {
        token: Secret::new("right"),
        ..ServeConfig::default()
    })
    .await;
    let url = server.url();
    let r = run(&["--url", &url, "-c", "3", "-d", "1s", "--token", "wrong"]).await;
    let stats = server.shutdown().await.unwrap();
    assert_eq!(r.outcome, Outcome::CouldNotRun);
    assert_eq!(r.summary.connections_failed, 3);
    assert!(r.summary.hello_rejected);
    let why = r.reason.unwrap();
    assert!(
        why.contains("4003") && why.contains("unauthorized"),
        "{why}"
    );
    assert_eq!((stats.hello_rejected, stats.call_tool), (3, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_refuses_connections_beyond_its_cap_with_1008() {
    let server = start_server(ServeConfig {
        max_conns: Some(2),
        ..ServeConfig::default()
    })
    .await;
    let url = server.url();
    let r = run(&["--url", &url, "-c", "5", "-d", "300ms", "--no-gate"]).await;
    let stats = server.shutdown().await.unwrap();
    assert_eq!(r.summary.connections_opened, 2);
    assert_eq!(r.summary.connections_failed, 3);
    assert!(
        r.summary.setup_failures.keys().all(|k| k.contains("1008")),
        "{:?}",
        r.summary.setup_failures
    );
    // The three refused at the start kept retrying through the breaker: every refusal the
    // server counted is one the client counted, at the start or on a retry.
    let retried: u64 = r.summary.reconnect_failures.values().sum();
    assert!(
        r.summary
            .reconnect_failures
            .keys()
            .all(|k| k.contains("1008")),
        "{:?}",
        r.summary.reconnect_failures
    );
    assert_eq!(stats.refused, 3 + retried);
    assert!(r.summary.counts.identity_holds());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_mode_loads_its_own_server_and_reports_its_counters() {
    let r = run(&["--embedded", "-c", "4", "-n", "3000", "--no-gate"]).await;
    let srv = r.server.expect("embedded runs carry the server's counters");
    assert!(r.summary.embedded);
    assert_eq!(srv.call_tool, 3000);
    assert_eq!(srv.results_ok, r.summary.counts.succeeded);
}
