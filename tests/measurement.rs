//! Measurement truth over real sockets: open-loop rate, coordinated omission, the tool's own
//! overhead, warmup exclusion, timeline and per-connection sums, the HdrHistogram log, progress.

mod common;

use common::{load, run, serve_config, start_server, temp_path, wsbench};
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use wsbench::report::Reporter as _;
use wsbench::report::hdrlog::HdrLogReporter;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_rate_sends_every_scheduled_request_on_time() {
    let (r, stats) = load(
        serve_config(&[]),
        &[
            "-c",
            "16",
            "-d",
            "5s",
            "--rate",
            "20000",
            "--no-gate",
            "--progress",
            "off",
        ],
    )
    .await;
    let s = &r.summary;
    // The schedule holds exactly rate x duration slots and none is ever skipped.
    assert_eq!(s.counts.sent, 100_000);
    assert_eq!(stats.call_tool, 100_000);
    let achieved = s.send_rate();
    assert!(
        (achieved - 20_000.0).abs() / 20_000.0 < 0.10,
        "achieved {achieved:.0}/s"
    );
    assert!(s.is_open_loop());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalls_show_in_response_time_but_not_in_service_time() {
    let server = start_server(serve_config(&[
        "--pause-every",
        "1s",
        "--pause-for",
        "200ms",
    ]))
    .await;
    let url = server.url();
    let r = run(&[
        "--url",
        &url,
        "-c",
        "8",
        "--inflight",
        "1",
        "-d",
        "3s",
        "--rate",
        "2000",
        "--no-gate",
        "--progress",
        "off",
    ])
    .await;
    server.shutdown().await.unwrap();
    let s = &r.summary;
    let response_p99 = s.latency_ms(99.0);
    let service_p99 = wsbench::stats::summary::percentile_ms(&s.histograms.service, 99.0);
    assert!(
        response_p99 >= 100.0,
        "response p99 {response_p99} ms should show the 200 ms stalls"
    );
    assert!(
        service_p99 < 100.0,
        "service p99 {service_p99} ms counts only time on the wire"
    );
    assert!(s.counts.identity_holds());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_reports_service_time_and_says_so() {
    let out = wsbench()
        .args([
            "run",
            "--embedded",
            "-c",
            "2",
            "-n",
            "200",
            "--no-gate",
            "--progress",
            "off",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("service time: closed loop"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tool_adds_little_to_a_5ms_server_delay() {
    let (r, _) = load(
        serve_config(&["--delay", "5ms"]),
        &["-c", "4", "-d", "2s", "--no-gate", "--progress", "off"],
    )
    .await;
    let p50 = r.summary.latency_ms(50.0);
    // A wide bound: figures live in scripts/bench.sh; this says only "little", on a shared machine.
    assert!((5.0..=7.0).contains(&p50), "p50 {p50} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warmup_traffic_is_counted_apart_and_excluded() {
    let (r, stats) = load(
        serve_config(&[]),
        &[
            "-c",
            "4",
            "--warmup",
            "500ms",
            "-d",
            "1s",
            "--no-gate",
            "--progress",
            "off",
        ],
    )
    .await;
    let s = &r.summary;
    assert!(s.warmup.sent > 0 && s.counts.sent > 0);
    assert_eq!(
        stats.call_tool,
        s.counts.sent + s.warmup.sent,
        "server total = measured + warmup"
    );
    assert_eq!(stats.results_ok, s.counts.succeeded + s.warmup.succeeded);
    assert_eq!(
        s.histograms.latency.len(),
        s.counts.succeeded,
        "warmup never reaches the histograms"
    );
    assert!(s.counts.identity_holds() && s.warmup.identity_holds());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeline_and_per_connection_sums_equal_the_totals() {
    let (r, _) = load(
        serve_config(&[]),
        &[
            "-c",
            "6",
            "-d",
            "2500ms",
            "--tool",
            "echo",
            "--no-gate",
            "--progress",
            "off",
        ],
    )
    .await;
    let s = &r.summary;
    let sum =
        |f: fn(&wsbench::model::Tally) -> u64| s.seconds.iter().map(|x| f(&x.tally)).sum::<u64>();
    assert!(s.seconds.len() >= 3, "{} seconds", s.seconds.len());
    assert_eq!(sum(|t| t.sent), s.counts.sent);
    assert_eq!(sum(|t| t.succeeded), s.counts.succeeded);
    assert_eq!(sum(|t| t.failed), s.counts.failed);
    let sampled: u64 = s.seconds.iter().map(|x| x.latency.len()).sum();
    assert_eq!(sampled, s.counts.succeeded);
    assert_eq!(s.per_conn.len(), 6);
    assert_eq!(
        s.per_conn.iter().map(|c| c.sent).sum::<u64>(),
        s.counts.sent
    );
    assert_eq!(
        s.per_conn.iter().map(|c| c.succeeded).sum::<u64>(),
        s.counts.succeeded
    );
    assert!(s.seconds.iter().take(2).all(|x| x.open_conns == 6));

    // The interval log holds one histogram per second, adding up to every success.
    let log = HdrLogReporter.render(&r).unwrap();
    let mut intervals = 0;
    let mut total = 0;
    for entry in IntervalLogIterator::new(&log) {
        if let LogEntry::Interval(h) = entry.expect("log parses") {
            let hist: hdrhistogram::Histogram<u64> =
                wsbench::result::file::decode_histogram(h.encoded_histogram()).unwrap();
            total += hist.len();
            intervals += 1;
        }
    }
    assert_eq!(intervals, s.seconds.len());
    assert_eq!(total, s.counts.succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deliberately_slowed_connection_is_flagged_as_starved() {
    // Session ids end in -<connection index>: the server slows connection 3 alone.
    let (r, _) = load(
        serve_config(&["--session-delay", "-3=20ms"]),
        &["-c", "6", "-d", "1500ms", "--no-gate", "--progress", "off"],
    )
    .await;
    let s = &r.summary;
    assert_eq!(s.starved(), vec![3], "{:?}", s.per_conn);
    assert!(s.jain_fairness().unwrap() < 0.95);
    let slow = s.per_conn.iter().find(|c| c.id == 3).unwrap();
    assert!(slow.p99_ms.unwrap() >= 20.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stages_ramp_the_rate_and_send_their_exact_count() {
    let server = start_server(serve_config(&[])).await;
    let url = server.url();
    // 0 -> 1000/s over 1 s (500 requests), then 1000/s for 1 s (1000).
    let r = run(&[
        "--url",
        &url,
        "-c",
        "4",
        "--stages",
        "1s:1k,1s:1k",
        "--no-gate",
        "--progress",
        "off",
    ])
    .await;
    server.shutdown().await.unwrap();
    let s = &r.summary;
    assert_eq!(s.counts.sent, 1500);
    let first = s.seconds[0].tally.sent;
    let second = s.seconds[1].tally.sent;
    assert!(first < second, "ramp: {first} then {second}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ramp_up_spreads_connection_setup() {
    let server = start_server(serve_config(&[])).await;
    let url = server.url();
    let t0 = std::time::Instant::now();
    let r = run(&[
        "--url",
        &url,
        "-c",
        "5",
        "--ramp-up",
        "800ms",
        "-n",
        "50",
        "--no-gate",
        "--progress",
        "off",
    ])
    .await;
    server.shutdown().await.unwrap();
    assert!(
        t0.elapsed() >= std::time::Duration::from_millis(600),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(r.summary.connections_opened, 5);
}

#[test]
fn progress_without_a_terminal_is_plain_lines() {
    let (_dir, log) = temp_path("out.hlog");
    let out = wsbench()
        .args([
            "run",
            "--embedded",
            "-c",
            "2",
            "-d",
            "4500ms",
            "--no-gate",
            "--hdr-log",
        ])
        .arg(&log)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<_> = err.lines().filter(|l| l.starts_with('[')).collect();
    assert!(lines.len() >= 2, "expected progress lines: {err}");
    assert!(
        lines[0].contains("sent") && lines[0].contains("conns 2"),
        "{}",
        lines[0]
    );
    assert!(
        !err.contains('\u{1b}') && !err.contains('\r'),
        "no control codes in CI logs"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("#[StartTime:") && text.contains("#[BaseTime:"),
        "{text}"
    );
}
