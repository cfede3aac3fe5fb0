//! Verdict integrity, section 4: a server that pushes back is found as the knee, never blamed
//! on the client. In a file of its own so that it runs alone: its two debug-build processes at
//! 5,000 calls/s must not share the machine's two cores with other tests' load, or the step
//! just under the knee reads a scheduling hiccup as the server's latency.

mod common;

use std::time::Duration;

use common::{out_str, read_json, spawn_serve, temp_path, wsbench};

#[test]
fn server_push_back_is_found_as_the_knee_not_blamed_on_the_client() {
    let (mut server, url) = spawn_serve(&["--delay", "1ms", "--max-inflight", "5"], &[]);
    let (_dir, json) = temp_path("c.json");
    let out = wsbench()
        .args(["capacity", "--url", &url, "-c", "32"])
        .args([
            "--min-rate",
            "4k",
            "--max-rate",
            "10k",
            "--step-duration",
            "1s",
        ])
        .args([
            "--step-warmup",
            "0s",
            "--precision",
            "40%",
            "--progress",
            "off",
        ])
        .args(["--max-p99", "20ms", "--json"])
        .arg(&json)
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let text = out_str(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{}", out_str(&out.stderr));
    let v = read_json(&json);
    let answer = v["capacity_rps"].as_f64().unwrap();
    // Capacity is exactly 5 workers / 1 ms; a step the server could not keep up with shows it.
    assert!(
        (4750.0..=5250.0).contains(&answer),
        "answer {answer}/s for a 5,000/s server\n{text}"
    );
    let steps = v["steps"].as_array().unwrap();
    assert!(
        steps.iter().all(|s| s["client_saturated"] == false),
        "{text}"
    );
    assert!(steps.iter().any(|s| s["sustainable"] == false), "{text}");
}
