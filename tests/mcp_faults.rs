//! MCP twins of the fault tests, over real sockets against `serve --protocol mcp`: the stateless
//! 2026-07-28 revision over WebSocket and Streamable HTTP (counts equal the server's, its
//! headers checked, a version it lacks refused with -32022), and disconnects, outages, freezes,
//! pauses, JSON-RPC errors and every fault at once in both eras.

mod common;

use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use common::{run, serve_config, start_server};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;
use wsbench::model::StatsSnapshot;
use wsbench::result::RunResult;
use wsbench::run::breaker::State;

const QUIET: [&str; 3] = ["--progress", "off", "--no-gate"];
const STATELESS: [&str; 2] = ["--mcp-version", "2026-07-28"];

#[derive(Clone, Copy, Debug)]
enum Transport {
    Ws,
    Http,
}

/// `serve --protocol mcp <serve>` in-process, `run --protocol mcp <args>` against it over the
/// transport; the result, the server's counters, and how long the run took.
async fn mcp_load(
    transport: Transport,
    serve: &[&str],
    args: &[&str],
) -> (RunResult, StatsSnapshot, Duration) {
    let server = start_server(serve_config(&[&["--protocol", "mcp"][..], serve].concat())).await;
    let url = match transport {
        Transport::Ws => server.url(),
        Transport::Http => format!("{}/mcp", server.url().replacen("ws://", "http://", 1)),
    };
    let argv = [&["--url", &url, "--protocol", "mcp"][..], args, &QUIET].concat();
    let t0 = Instant::now();
    let r = run(&argv).await;
    let took = t0.elapsed();
    let stats = server.shutdown().await.expect("server stops");
    (r, stats, took)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_sessions_count_what_the_server_counted_over_websocket_and_http() {
    for transport in [Transport::Ws, Transport::Http] {
        let (r, stats, _) = mcp_load(
            transport,
            &["--error-rate", "0.05", "--seed", "5", "--progress"],
            &[
                &STATELESS[..],
                &["-c", "3", "--inflight", "2", "-n", "1500"],
            ]
            .concat(),
        )
        .await;
        let c = &r.summary.counts;
        assert!(c.identity_holds(), "{transport:?} {c:?}");
        assert_eq!((c.sent, stats.call_tool), (1500, 1500), "{transport:?}");
        assert_eq!(c.succeeded, stats.results_ok, "{transport:?}");
        assert_eq!(c.failed, stats.injected.errors, "{transport:?}");
        assert!(c.failed > 20, "{transport:?} {c:?}");
        assert_eq!(r.summary.errors_by_code.get("tool_error"), Some(&c.failed));
        // Progress asked for by the server's fault, not by a token: over WebSocket it comes as
        // a notification for the call; over HTTP it rides the call's SSE reply.
        assert_eq!(c.non_final, c.sent, "{transport:?} {c:?}");
        assert_eq!(
            r.summary.versions.get("2026-07-28"),
            Some(&3),
            "{transport:?}: server/discover said so"
        );
        for refusal in ["HEADER_MISMATCH", "UNSUPPORTED_VERSION"] {
            assert_eq!(
                stats.errors_by_code.get(refusal),
                None,
                "{transport:?}: every request named the revision and matched its headers"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_json_rpc_errors_land_under_their_code_in_both_eras() {
    for (transport, era) in [
        (Transport::Ws, &["--mcp-version", "2025-06-18"][..]),
        (Transport::Http, &STATELESS[..]),
    ] {
        let (r, stats, _) = mcp_load(
            transport,
            &["--error-rate", "0.04", "--rpc-errors", "--seed", "2"],
            &[era, &["-c", "2", "-n", "2000"]].concat(),
        )
        .await;
        let c = &r.summary.counts;
        assert!(c.identity_holds(), "{c:?}");
        assert!(c.failed > 20, "{transport:?} {c:?}");
        assert_eq!(c.failed, stats.injected.errors, "{transport:?}");
        assert_eq!(r.summary.errors_by_code.get("-32603"), Some(&c.failed));
        assert_eq!(r.summary.errors_by_code.get("tool_error"), None);
    }
}

/// One HTTP/1.1 exchange over a plain TCP socket: the status and the body.
fn raw_post(addr: &str, headers: &str, body: &str) -> (u16, serde_json::Value) {
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        tcp,
        "POST /mcp HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    tcp.read_to_string(&mut reply).unwrap();
    let status = reply[9..12].parse().unwrap();
    let body = reply.split("\r\n\r\n").nth(1).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_server_checks_the_stateless_headers_and_refuses_unknown_versions() {
    let server = start_server(serve_config(&["--protocol", "mcp"])).await;
    let addr = server.url().trim_start_matches("ws://").to_owned();
    let call = |version: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"echo","arguments":{{}},"_meta":{{"io.modelcontextprotocol/protocolVersion":"{version}"}}}}}}"#
        )
    };
    let a = addr.clone();
    let (ok, mismatch, missing, old) = tokio::task::spawn_blocking(move || {
        let right = "mcp-method: tools/call\r\nmcp-name: echo\r\n";
        (
            raw_post(&a, right, &call("2026-07-28")),
            raw_post(
                &a,
                "mcp-method: tools/call\r\nmcp-name: other\r\n",
                &call("2026-07-28"),
            ),
            raw_post(&a, "", &call("2026-07-28")),
            raw_post(&a, right, &call("2099-01-01")),
        )
    })
    .await
    .unwrap();
    assert_eq!(ok.0, 200, "{ok:?}");
    assert_eq!(ok.1["result"]["isError"], false);
    assert_eq!(ok.1["result"]["resultType"], "complete");
    for (status, body) in [&mismatch, &missing] {
        assert_eq!(*status, 400);
        assert_eq!(body["error"]["code"], -32020, "{body}");
    }
    assert_eq!(old.0, 400);
    assert_eq!(old.1["error"]["code"], -32022);
    assert_eq!(old.1["error"]["data"]["requested"], "2099-01-01");

    // Over WebSocket: a version the server lacks is refused on an open connection, and the
    // client may fall back to initialize on it.
    let (mut ws, _) = tokio_tungstenite::connect_async(server.url())
        .await
        .unwrap();
    ws.send(Message::text(call("2099-01-01"))).await.unwrap();
    let refused = next_json(&mut ws).await;
    assert_eq!(refused["error"]["code"], -32022, "{refused}");
    let init = r#"{"jsonrpc":"2.0","id":"i","method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#;
    ws.send(Message::text(init)).await.unwrap();
    let answer = next_json(&mut ws).await;
    assert_eq!(
        answer["result"]["protocolVersion"], "2025-11-25",
        "{answer}"
    );
    drop(ws);
    let stats = server.shutdown().await.unwrap();
    assert_eq!(
        stats.call_tool, 1,
        "only the well-formed stateless call was served"
    );
}

async fn next_json<S>(ws: &mut S) -> serde_json::Value
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("an answer")
        .unwrap()
        .unwrap();
    serde_json::from_str(msg.to_text().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_disconnects_are_reconnected_and_counted_exactly_in_both_eras() {
    for (transport, era) in [
        (Transport::Ws, &["--mcp-version", "2025-11-25"][..]),
        (Transport::Ws, &STATELESS[..]),
        (Transport::Http, &STATELESS[..]),
    ] {
        let (r, stats, _) = mcp_load(
            transport,
            &["--disconnect-after", "300"],
            &[era, &["-c", "2", "-n", "2400", "--backoff-base", "10ms"]].concat(),
        )
        .await;
        let (c, x) = (&r.summary.counts, &r.summary.resilience);
        let forced = stats.injected.forced_closes;
        assert!(forced >= 4, "{transport:?} {era:?}: {stats:?}");
        assert!(c.identity_holds(), "{c:?}");
        assert_eq!(c.sent, 2400);
        if let Transport::Ws = transport {
            assert_eq!(x.disconnects, forced, "{transport:?} {era:?}: {x:?}");
        } else {
            // Stateless HTTP has no session to lose: a dropped keep-alive connection with no
            // call on it is replaced unseen; only one that carried a call is a disconnect.
            assert!(x.disconnects <= forced, "{x:?}");
        }
        assert_eq!(x.reconnects, x.disconnects, "{transport:?} {era:?}: {x:?}");
        // The server answered every call it read; what the client lost it never read.
        assert_eq!(c.succeeded, stats.results_ok, "{transport:?} {era:?}");
        assert_eq!(c.sent - c.lost, stats.call_tool, "{transport:?} {era:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_outage_walks_the_breaker_closed_open_half_open_closed() {
    let (r, stats, took) = mcp_load(
        Transport::Ws,
        &["--down-after", "1s", "--down-for", "2s"],
        &["-c", "4", "-d", "5s", "--breaker-open-timeout", "2500ms"],
    )
    .await;
    let s = &r.summary;
    let path: Vec<_> = s.transitions.iter().map(|t| t.to).collect();
    assert_eq!(
        path,
        [State::Open, State::HalfOpen, State::Closed],
        "{:?}",
        s.transitions
    );
    assert_eq!(stats.injected.down_closes, 4);
    assert_eq!(s.resilience.reconnects, 4, "{:?}", s.resilience);
    let unavailable = s.unavailable.as_secs_f64();
    assert!((1.5..=3.5).contains(&unavailable), "{unavailable}");
    assert!(took < Duration::from_secs(9), "{took:?}");
    assert!(s.counts.identity_holds());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_mcp_server_is_detected_within_the_pong_timeout() {
    let (r, stats, _) = mcp_load(
        Transport::Ws,
        &["--freeze-after", "50"],
        &[
            "-c",
            "1",
            "-d",
            "2s",
            "--ping-interval",
            "100ms",
            "--pong-timeout",
            "300ms",
            "--backoff-base",
            "20ms",
        ],
    )
    .await;
    let x = &r.summary.resilience;
    assert!(x.pong_timeouts >= 3, "{x:?}");
    let frozen = stats.injected.frozen;
    assert!(
        frozen == x.pong_timeouts || frozen == x.pong_timeouts + 1,
        "{frozen} frozen, {x:?}"
    );
    assert!(r.summary.counts.identity_holds());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_mcp_server_cannot_hold_the_run_on_any_transport() {
    for (transport, era) in [
        (Transport::Ws, &STATELESS[..]),
        (Transport::Http, &["--mcp-version", "2025-11-25"][..]),
        (Transport::Http, &STATELESS[..]),
    ] {
        let (r, stats, took) = mcp_load(
            transport,
            &["--freeze-after", "100"],
            &[era, &["-c", "2", "--inflight", "4", "-d", "1s"]].concat(),
        )
        .await;
        let c = &r.summary.counts;
        assert!(
            took < Duration::from_secs(5),
            "{transport:?} {era:?}: {took:?}"
        );
        assert!(c.identity_holds(), "{c:?}");
        assert!(c.unfinished > 0, "{transport:?} {era:?}: {c:?}");
        assert_eq!(c.succeeded, stats.results_ok, "{transport:?} {era:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_stalls_show_in_response_time_but_not_in_service_time() {
    for (transport, era) in [
        (Transport::Ws, &["--mcp-version", "2025-11-25"][..]),
        (Transport::Http, &STATELESS[..]),
    ] {
        let (r, _, _) = mcp_load(
            transport,
            &["--pause-every", "1s", "--pause-for", "200ms"],
            &[
                era,
                &["-c", "8", "--inflight", "1", "-d", "3s", "--rate", "1000"],
            ]
            .concat(),
        )
        .await;
        let s = &r.summary;
        let response_p99 = s.latency_ms(99.0);
        let service_p99 = wsbench::stats::summary::percentile_ms(&s.histograms.service, 99.0);
        assert!(
            response_p99 >= 100.0,
            "{transport:?}: response p99 {response_p99} ms should show the 200 ms stalls"
        );
        assert!(
            service_p99 < 100.0,
            "{transport:?}: service p99 {service_p99} ms counts only time on the wire"
        );
        assert!(s.counts.identity_holds());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mcp_fault_at_once_never_hangs_or_breaks_the_books() {
    for (transport, era) in [
        (Transport::Ws, &["--mcp-version", "2025-11-25"][..]),
        (Transport::Http, &STATELESS[..]),
    ] {
        let (r, stats, took) = mcp_load(
            transport,
            &[
                "--error-rate",
                "0.02",
                "--drop-rate",
                "0.02",
                "--disconnect-after",
                "300",
                "--progress",
                "--jitter",
                "2ms",
                "--seed",
                "9",
            ],
            &[
                era,
                &[
                    "-c",
                    "6",
                    "--inflight",
                    "4",
                    "-d",
                    "2s",
                    "--timeout",
                    "200ms",
                    "--drain",
                    "500ms",
                ],
            ]
            .concat(),
        )
        .await;
        let c = &r.summary.counts;
        assert!(c.identity_holds(), "{transport:?} {c:?}");
        assert!(took < Duration::from_millis(4500), "{transport:?} {took:?}");
        assert!(c.timed_out > 0 && c.failed > 0, "{transport:?} {c:?}");
        if let Transport::Ws = transport {
            assert!(r.summary.resilience.reconnects > 0, "{c:?}");
        }
        assert!(
            c.sent - c.lost <= stats.call_tool && stats.call_tool <= c.sent,
            "{transport:?} {c:?} {stats:?}"
        );
    }
}
