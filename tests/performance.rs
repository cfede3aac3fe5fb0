//! The client's self-check and the gate that knows its own validity: CPU and memory figures
//! are reported and plausible (not fast: speed lives in scripts/bench.sh), a failure caused by
//! a saturated client or too few samples is inconclusive (exit 4), source addresses and the
//! open-file limit are handled.

mod common;

use common::{TestServer, out_str, temp_path, wsbench};

#[test]
fn the_self_check_is_in_every_report() {
    let (_dir, json) = temp_path("r.json");
    let out = wsbench()
        .args([
            "run",
            "--embedded",
            "-c",
            "4",
            "-n",
            "20000",
            "--no-gate",
            "--progress",
            "off",
            "--json",
        ])
        .arg(&json)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out_str(&out.stdout).contains("Client      CPU"),
        "{}",
        out_str(&out.stdout)
    );
    let v = common::read_json(&json);
    let c = &v["client"];
    let cpu_ms = c["cpu_ms"].as_f64().unwrap();
    let per_req = c["cpu_us_per_request"].as_f64().unwrap();
    assert!(cpu_ms > 0.0, "{c}");
    // 20,000 requests cannot cost under 0.05 us or over 5 ms of CPU each.
    assert!((0.05..5000.0).contains(&per_req), "{c}");
    assert!(
        (per_req * 20_000.0 / 1e3 - cpu_ms).abs() < cpu_ms * 0.01 + 1.0,
        "per-request = total / requests: {c}"
    );
    let share = c["cpu_share"].as_f64().unwrap();
    assert!(share > 0.0 && share <= 1.0 + 1e-9, "{c}");
    assert!(c["cores"].as_u64().unwrap() >= 1);
    assert!(c["peak_rss_mb"].as_f64().unwrap() > 1.0);
    assert!(c["saturated"].is_boolean() && c["reasons"].is_array());
}

#[test]
fn a_percentile_from_too_few_samples_is_inconclusive() {
    let out = wsbench()
        .args([
            "run",
            "--embedded",
            "-c",
            "2",
            "-n",
            "200",
            "--progress",
            "off",
        ])
        .args([
            "--min-rps",
            "1",
            "--max-connect-p99",
            "10s",
            "--max-p99",
            "10s",
            "--threshold",
            "p99.9<1us",
        ])
        .output()
        .unwrap();
    let text = out_str(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(
        text.contains("p99.9 from 200 samples") && text.contains("needs 1000"),
        "{text}"
    );
    assert!(text.contains("Verdict: INCONCLUSIVE (exit 4)"));
}

#[test]
fn backpressure_from_a_slow_server_is_not_blamed_on_the_client() {
    // Two connections cannot get two million requests a second through: the windows fill
    // behind the server. That is the server's limit, so a failure is a plain failure (exit 1).
    let (_dir, json) = temp_path("r.json");
    let out = wsbench()
        .args([
            "run",
            "--embedded",
            "-c",
            "2",
            "-d",
            "1s",
            "--rate",
            "2M",
            "--progress",
            "off",
            "--timeout",
            "30s",
        ])
        .args([
            "--min-rps",
            "1",
            "--max-connect-p99",
            "10s",
            "--max-error-rate",
            "100%",
            "--max-p99",
            "1us",
        ])
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let v = common::read_json(&json);
    let rate = &v["rate"];
    assert!(
        rate["achieved_send_rps"].as_f64().unwrap() < 0.5 * rate["target_rps"].as_f64().unwrap()
    );
    if v["client"]["saturated"] == false {
        assert_eq!(out.status.code(), Some(1), "{}", out_str(&out.stdout));
    } else {
        // A noisy machine can genuinely saturate the client; then 4 is the honest answer.
        assert_eq!(out.status.code(), Some(4));
    }
}

#[test]
fn source_addresses_rotate_and_a_bad_one_cannot_run() {
    let server = TestServer::start(Default::default());
    let out = wsbench()
        .args([
            "run",
            "--url",
            &server.url,
            "-c",
            "4",
            "-n",
            "400",
            "--bind-ip",
            "127.0.0.2,127.0.0.3",
        ])
        .args(["--no-gate", "--progress", "off"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", out_str(&out.stdout));
    // An IPv6 source cannot reach an IPv4 target.
    let out = wsbench()
        .args([
            "run",
            "--url",
            &server.url,
            "-c",
            "1",
            "-n",
            "10",
            "--bind-ip",
            "::1",
            "--progress",
            "off",
        ])
        .output()
        .unwrap();
    server.stop();
    assert_eq!(out.status.code(), Some(3));
    let bad = wsbench()
        .args(["run", "--embedded", "--bind-ip", "localhost"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(out_str(&bad.stderr).contains("--bind-ip"));
}

#[test]
fn more_connections_than_the_file_limit_allows_is_refused_up_front() {
    let out = wsbench()
        .args(["run", "--embedded", "-c", "4000000000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = out_str(&out.stderr);
    assert!(
        err.contains("open files") && err.contains("--conns"),
        "{err}"
    );
}
