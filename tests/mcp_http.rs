//! Streamable HTTP's ways to the server, over real sockets against `serve --protocol mcp`:
//! `--http2` (one connection per session, calls multiplexed; prior knowledge on http://) and
//! https:// (TLS with a certificate made in the test, HTTP/1.1 or HTTP/2 by ALPN), in both
//! eras, with WebSocket still answered on the same TLS port.

mod common;

use common::{out_str, read_json, run, serve_config, start_server, temp_path, wsbench};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_multiplexes_a_sessions_calls_over_one_connection() {
    for (http2, era) in [
        (true, "2025-11-25"),
        (true, "2026-07-28"),
        (false, "2026-07-28"),
    ] {
        let server = start_server(serve_config(&["--protocol", "mcp", "--delay", "2ms"])).await;
        let url = format!("{}/mcp", server.url().replacen("ws://", "http://", 1));
        let mut argv = vec!["--url", &url, "--mcp-version", era, "-c", "3"];
        argv.extend(["--inflight", "4", "-n", "1200"]);
        argv.extend(["--progress", "off", "--no-gate"]);
        if http2 {
            argv.push("--http2");
        }
        let r = run(&argv).await;
        let accepts = server.accept_times().len();
        let stats = server.shutdown().await.unwrap();
        let c = &r.summary.counts;
        assert!(c.identity_holds(), "{c:?}");
        assert_eq!((c.succeeded, stats.results_ok), (1200, 1200), "{era} {c:?}");
        // HTTP connects with its first request: TCP, then that response's headers, are the
        // setup phases of each of the three sessions.
        let h = &r.summary.histograms;
        assert_eq!((h.tcp.len(), h.upgrade.len(), h.hello.len()), (3, 3, 3));
        assert!(h.upgrade.max() > 0, "the first response took some time");
        if http2 {
            assert_eq!(r.settings.transport, "http2");
            // Three sessions and the tool check's: one TCP connection each.
            assert_eq!(accepts, 4, "{era}: HTTP/2 multiplexes a session's calls");
        } else {
            assert_eq!(r.settings.transport, "http");
            // HTTP/1.1 keep-alive: a connection per call in flight (4 per session, with a 2 ms
            // delay keeping them busy).
            assert!(accepts > 4, "{era}: {accepts} connections");
            assert!(accepts <= 3 * 4 + 1, "{era}: {accepts} connections");
        }
    }
}

/// A self-signed certificate for 127.0.0.1, written as PEM files into `dir`.
fn self_signed(dir: &std::path::Path) -> (String, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&c, cert.cert.pem()).unwrap();
    std::fs::write(&k, cert.signing_key.serialize_pem()).unwrap();
    (c.display().to_string(), k.display().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_reaches_the_mcp_server_over_tls_with_http1_http2_and_websocket_on_one_port() {
    let (dir, json) = temp_path("r.json");
    let (cert, key) = self_signed(dir.path());
    let argv = ["--protocol", "mcp", "--tls-cert", &cert, "--tls-key", &key];
    let server = start_server(serve_config(&argv)).await;
    let wss = server.url();
    assert!(wss.starts_with("wss://"), "{wss}");
    let https = format!("{}/mcp", wss.replacen("wss://", "https://", 1));
    let ca = ["--ca-file", cert.as_str()];
    let load = |target: &str, extra: &[&str]| {
        let mut cmd = wsbench();
        cmd.args(["run", "--url", target, "-c", "2", "-n", "300"])
            .args(["--progress", "off", "--no-gate", "--json"])
            .arg(&json)
            .args(extra)
            .timeout(std::time::Duration::from_secs(60));
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            read_json_if(&json, out.status.code()),
            out,
        )
    };
    let (plain, http1, _) = load(
        &https,
        &[&ca[..], &["--mcp-version", "2025-11-25"]].concat(),
    );
    let (h2, http2, _) = load(
        &https,
        &[&ca[..], &["--http2", "--mcp-version", "2026-07-28"]].concat(),
    );
    let (ws, websocket, _) = load(&wss, &[&ca[..], &["--protocol", "mcp"]].concat());
    let (untrusted, _, refused) = load(&https, &[]);
    let stats = server.shutdown().await.unwrap();
    for (code, v, transport) in [
        (plain, &http1, "http"),
        (h2, &http2, "http2"),
        (ws, &websocket, "websocket"),
    ] {
        assert_eq!(code, Some(0), "{transport}");
        assert_eq!(v["counts"]["succeeded"], 300, "{transport}: {v}");
        assert_eq!(v["settings"]["transport"], transport);
    }
    assert_eq!(http2["protocol_versions"]["2026-07-28"], 2, "{http2}");
    assert_eq!(stats.results_ok, 900, "{stats:?}");
    // Without the certificate's CA the handshake is refused: nothing could run.
    assert_eq!(untrusted, Some(3), "{}", out_str(&refused.stdout));
    assert!(
        out_str(&refused.stdout).contains("certificate")
            || out_str(&refused.stderr).contains("certificate"),
        "{}",
        out_str(&refused.stdout)
    );
}

fn read_json_if(path: &std::path::Path, code: Option<i32>) -> serde_json::Value {
    if code == Some(0) {
        read_json(path)
    } else {
        serde_json::Value::Null
    }
}

/// One HTTP/1.1 request off a keep-alive connection: its body, or `None` at its end.
async fn read_request(stream: &mut tokio::io::BufReader<tokio::net::TcpStream>) -> Option<String> {
    use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _};
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await.ok()?;
    Some(String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_statuses_fail_the_calls_they_answer_by_their_status() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokio::io::AsyncWriteExt as _;
    // A scripted Streamable HTTP server: a session, its tool list, and every third tools/call
    // answered 503 and every seventh 429, the others with a result.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let calls = std::sync::Arc::new(AtomicU64::new(0));
    let counter = calls.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                let mut stream = tokio::io::BufReader::new(tcp);
                while let Some(body) = read_request(&mut stream).await {
                    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                    let id = v["id"].clone();
                    let (status, extra, reply) = match v["method"].as_str() {
                        Some("initialize") => (
                            "200 OK",
                            "mcp-session-id: s-1\r\n",
                            serde_json::json!({"jsonrpc":"2.0","id":id,"result":{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"t","version":"0"}}}).to_string(),
                        ),
                        Some("tools/list") => (
                            "200 OK",
                            "",
                            serde_json::json!({"jsonrpc":"2.0","id":id,"result":{"tools":[{"name":"echo","inputSchema":{"type":"object"}}]}}).to_string(),
                        ),
                        Some("tools/call") => {
                            let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
                            if n.is_multiple_of(3) {
                                ("503 Service Unavailable", "", String::new())
                            } else if n.is_multiple_of(7) {
                                ("429 Too Many Requests", "", String::new())
                            } else {
                                (
                                    "200 OK",
                                    "",
                                    serde_json::json!({"jsonrpc":"2.0","id":id,"result":{"content":[{"type":"text","text":"ok"}]}}).to_string(),
                                )
                            }
                        }
                        _ => ("202 Accepted", "", String::new()),
                    };
                    let whole = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\n\r\n{reply}",
                        reply.len()
                    );
                    if stream.get_mut().write_all(whole.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let r = run(&[
        "--url",
        &url,
        "-c",
        "1",
        "-n",
        "210",
        "--no-gate",
        "--progress",
        "off",
    ])
    .await;
    let s = &r.summary;
    assert!(s.counts.identity_holds(), "{:?}", s.counts);
    assert_eq!(calls.load(Ordering::Relaxed), 210);
    // 1..=210: 70 multiples of 3; of 7 but not of 3: 30 - 10 = 20.
    assert_eq!(
        s.errors_by_code.get("http_503"),
        Some(&70),
        "{:?}",
        s.errors_by_code
    );
    assert_eq!(
        s.errors_by_code.get("http_429"),
        Some(&20),
        "{:?}",
        s.errors_by_code
    );
    assert_eq!((s.counts.succeeded, s.counts.failed), (120, 90));
}
