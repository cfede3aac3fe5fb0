//! wss:// against the reference server serving TLS with a certificate made in the test:
//! trusted through --ca-file, refused without it (exit 3, a certificate message), accepted
//! with --insecure (and a warning). Also URL paths, extra headers and subprotocols.

mod common;

use common::{TestServer, out_str, temp_path, wsbench};
use wsbench::config::ServeConfig;

/// A self-signed certificate for 127.0.0.1, written as PEM files into `dir`.
fn self_signed(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&c, cert.cert.pem()).unwrap();
    std::fs::write(&k, cert.signing_key.serialize_pem()).unwrap();
    (c, k)
}

#[test]
fn wss_needs_a_trusted_certificate() {
    let (dir, json) = temp_path("r.json");
    let (cert, key) = self_signed(dir.path());
    let server = TestServer::start(ServeConfig {
        tls: Some((cert.clone(), key)),
        ..ServeConfig::default()
    });
    assert!(server.url.starts_with("wss://127.0.0.1:"), "{}", server.url);
    let run = |extra: &[&str]| {
        wsbench()
            .args([
                "run",
                "--url",
                &server.url,
                "-c",
                "2",
                "-n",
                "200",
                "--no-gate",
                "--progress",
                "off",
            ])
            .args(extra)
            .output()
            .unwrap()
    };

    let trusted = wsbench()
        .args([
            "run",
            "--url",
            &server.url,
            "-c",
            "2",
            "-n",
            "200",
            "--no-gate",
            "--progress",
            "off",
        ])
        .arg("--ca-file")
        .arg(&cert)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert_eq!(
        trusted.status.code(),
        Some(0),
        "{}",
        out_str(&trusted.stdout)
    );
    let v = common::read_json(&json);
    assert_eq!(v["counts"]["succeeded"], 200);
    assert!(
        v["handshake_ms"]["tls"]["p50"].as_f64().unwrap() > 0.0,
        "the TLS handshake is timed"
    );

    let untrusted = run(&[]);
    assert_eq!(untrusted.status.code(), Some(3));
    let text = out_str(&untrusted.stdout);
    assert!(
        text.contains("tls:") && text.contains("certificate"),
        "{text}"
    );

    let insecure = run(&["--insecure"]);
    assert_eq!(
        insecure.status.code(),
        Some(0),
        "{}",
        out_str(&insecure.stdout)
    );
    assert!(out_str(&insecure.stderr).contains("WARNING: --insecure"));
    server.stop();
}

#[test]
fn paths_headers_and_subprotocols_reach_the_upgrade() {
    let server = TestServer::start(ServeConfig::default());
    let url = format!("{}/mcp/ws?x=1", server.url);
    let out = wsbench()
        .args([
            "run",
            "--url",
            &url,
            "-c",
            "2",
            "-n",
            "100",
            "--no-gate",
            "--progress",
            "off",
        ])
        .args([
            "--header",
            "X-Bench: yes",
            "--header",
            "Authorization: Bearer abc",
            "--subprotocol",
            "mcp.v1",
        ])
        .output()
        .unwrap();
    let stats = server.stop();
    assert_eq!(out.status.code(), Some(0), "{}", out_str(&out.stdout));
    assert_eq!(stats.call_tool, 100);

    let bad = wsbench()
        .args(["run", "--embedded", "--header", "no colon"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(out_str(&bad.stderr).contains("--header"));
}
