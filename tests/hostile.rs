//! Servers that misbehave on purpose, one way each, over real sockets: every case is counted
//! under the right bucket, the accounting identity holds, the run ends within duration + drain,
//! and the exit code is the documented one. Never a panic, never a hang.

mod common;

use std::time::{Duration, Instant};

use common::{Ws, id_of, ok, run, tcp_server, ws_server};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use wsbench::outcome::Outcome;

/// Answers each call with `extra(id)` frames first, then (if `answer`) the real reply.
async fn answer_with(mut ws: Ws, extra: fn(&str) -> Vec<Message>, answer: bool) {
    while let Some(Ok(Message::Text(t))) = ws.next().await {
        let id = id_of(t.as_str());
        for m in extra(&id) {
            if ws.send(m).await.is_err() {
                return;
            }
        }
        if answer && ws.send(ok(&id)).await.is_err() {
            return;
        }
    }
}

async fn timed(args: &[&str]) -> (wsbench::result::RunResult, Duration) {
    let t0 = Instant::now();
    let r = run(args).await;
    (r, t0.elapsed())
}

const QUIET: [&str; 3] = ["--progress", "off", "--no-gate"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_json_and_binary_frames_are_malformed() {
    let url = ws_server(|ws| {
        answer_with(
            ws,
            |_| {
                vec![
                    Message::text("this is { not json"),
                    Message::binary(vec![0u8, 159, 146, 150]),
                ]
            },
            true,
        )
    })
    .await;
    let (r, _) = timed(&[&["--url", &url, "-c", "2", "-n", "100"][..], &QUIET].concat()).await;
    let c = &r.summary.counts;
    assert_eq!((c.succeeded, c.malformed), (100, 200), "{c:?}");
    assert!(c.identity_holds());
    assert_eq!(r.outcome, Outcome::Passed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_of_the_wrong_shape_lands_in_its_buckets() {
    let url = ws_server(|mut ws| async move {
        let mut i = 0;
        while let Some(Ok(Message::Text(t))) = ws.next().await {
            let id = id_of(t.as_str());
            let reply = match i % 3 {
                // request_id a number: matches nothing; the request then times out.
                0 => r#"{"op":"call_tool_res","request_id":123}"#.to_owned(),
                // no op: malformed; the request times out.
                1 => format!(r#"{{"request_id":"{id}","outputs":[]}}"#),
                // error as a plain string: a failure under that code.
                _ => format!(r#"{{"op":"call_tool_res","request_id":"{id}","error":"boom"}}"#),
            };
            i += 1;
            if ws.send(Message::text(reply)).await.is_err() {
                return;
            }
        }
    })
    .await;
    let (r, elapsed) = timed(
        &[
            &[
                "--url",
                &url,
                "-c",
                "1",
                "-n",
                "30",
                "--timeout",
                "100ms",
                "--drain",
                "300ms",
            ][..],
            &QUIET,
        ]
        .concat(),
    )
    .await;
    let c = &r.summary.counts;
    assert_eq!(
        (c.unmatched, c.malformed, c.failed, c.timed_out),
        (10, 10, 10, 20),
        "{c:?}"
    );
    assert_eq!(r.summary.errors_by_code.get("boom"), Some(&10));
    assert!(c.identity_holds());
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_for_unknown_ids_and_replies_twice_are_counted() {
    let url = ws_server(|ws| answer_with(ws, |_| vec![ok("someone-else-7")], true)).await;
    let (r, _) = timed(&[&["--url", &url, "-c", "2", "-n", "50"][..], &QUIET].concat()).await;
    assert_eq!(
        (r.summary.counts.succeeded, r.summary.counts.unmatched),
        (50, 50)
    );

    let url = ws_server(|ws| answer_with(ws, |id| vec![ok(id)], true)).await;
    let (r, _) = timed(&[&["--url", &url, "-c", "2", "-n", "50"][..], &QUIET].concat()).await;
    assert_eq!(
        (r.summary.counts.succeeded, r.summary.counts.duplicates),
        (50, 50)
    );
    assert!(r.summary.counts.identity_holds());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_over_the_size_cap_closes_the_connection_and_is_counted() {
    let url =
        ws_server(|ws| answer_with(ws, |_| vec![Message::text("x".repeat(2 << 20))], true)).await;
    let (r, elapsed) = timed(
        &[
            &[
                "--url",
                &url,
                "-c",
                "1",
                "-d",
                "1s",
                "--max-frame-size",
                "1MiB",
                "--reconnect",
                "off",
            ][..],
            &QUIET,
        ]
        .concat(),
    )
    .await;
    let s = &r.summary;
    assert_eq!(s.resilience.oversized_frames, 1);
    assert_eq!(s.close_codes.get(&1009), Some(&1));
    assert_eq!((s.counts.sent, s.counts.lost), (1, 1));
    assert!(s.counts.identity_holds());
    assert!(elapsed < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_hello_hits_the_connect_timeout() {
    let url = tcp_server(|tcp| async move {
        let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
            return;
        };
        while ws.next().await.is_some() {}
    })
    .await;
    let (r, elapsed) = timed(
        &[
            &[
                "--url",
                &url,
                "-c",
                "2",
                "-d",
                "5s",
                "--connect-timeout",
                "500ms",
            ][..],
            &QUIET,
        ]
        .concat(),
    )
    .await;
    assert_eq!(r.outcome, Outcome::CouldNotRun);
    assert!(
        r.reason.as_deref().unwrap().contains("no hello_ack"),
        "{:?}",
        r.reason
    );
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_closes_right_after_the_upgrade_cannot_be_run() {
    let url = tcp_server(|tcp| async move {
        if let Ok(ws) = tokio_tungstenite::accept_async(tcp).await {
            drop(ws);
        }
    })
    .await;
    let (r, elapsed) = timed(&[&["--url", &url, "-c", "2", "-d", "5s"][..], &QUIET].concat()).await;
    assert_eq!(r.outcome, Outcome::CouldNotRun);
    assert!(
        r.reason.as_deref().unwrap().contains("hello"),
        "{:?}",
        r.reason
    );
    assert!(elapsed < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_server_cannot_stop_the_run_from_ending_on_time() {
    let url = ws_server(|ws| async move {
        let (mut tx, mut rx) = ws.split();
        // Replies go out between endless unsolicited frames.
        let (ids_tx, mut ids_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Some(Ok(Message::Text(t))) = rx.next().await {
                let _ = ids_tx.send(id_of(t.as_str()));
            }
        });
        loop {
            while let Ok(id) = ids_rx.try_recv() {
                if tx.feed(ok(&id)).await.is_err() {
                    return;
                }
            }
            for _ in 0..64 {
                if tx
                    .feed(Message::text(
                        r#"{"op":"progress","request_id":"flood","note":"spam"}"#,
                    ))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            if tx.flush().await.is_err() {
                return;
            }
        }
    })
    .await;
    let (r, elapsed) = timed(
        &[
            &["--url", &url, "-c", "2", "-d", "1500ms", "--drain", "500ms"][..],
            &QUIET,
        ]
        .concat(),
    )
    .await;
    let c = &r.summary.counts;
    // Progress for an id never sent is unmatched.
    assert!(c.unmatched > 10_000, "the flood was read: {c:?}");
    assert!(c.succeeded > 0, "and the real replies among it: {c:?}");
    assert!(c.identity_holds());
    assert!(
        elapsed < Duration::from_millis(1500 + 500 + 2000),
        "ended on time: {elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_odd_close_code_is_counted_by_its_number() {
    let url = ws_server(|mut ws| async move {
        let mut n = 0;
        while let Some(Ok(Message::Text(t))) = ws.next().await {
            let id = id_of(t.as_str());
            let _ = ws.send(ok(&id)).await;
            n += 1;
            if n == 20 {
                let frame = CloseFrame {
                    code: CloseCode::from(4999),
                    reason: "odd".into(),
                };
                let _ = ws.close(Some(frame)).await;
                while ws.next().await.is_some() {}
                return;
            }
        }
    })
    .await;
    let (r, elapsed) = timed(
        &[
            &["--url", &url, "-c", "1", "-d", "1s", "--reconnect", "off"][..],
            &QUIET,
        ]
        .concat(),
    )
    .await;
    let s = &r.summary;
    assert_eq!(s.close_codes.get(&4999), Some(&1), "{:?}", s.close_codes);
    assert_eq!(s.counts.succeeded, 20);
    assert!(s.counts.identity_holds(), "{:?}", s.counts);
    assert!(elapsed < Duration::from_secs(4));
}
