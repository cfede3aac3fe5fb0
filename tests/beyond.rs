//! Beyond the anchors: the capacity search finds a knee built into the server; the baseline
//! gate passes an improvement and fails a regression; sampled validation catches corrupted
//! replies at the rate they were corrupted.

mod common;

use common::{TestServer, out_str, serve_config, temp_path, wsbench};

/// The tests here load servers hard for seconds; the capacity search's knee is a latency
/// bound, so they take turns rather than share two cores.
static TURNS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    TURNS.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn capacity_finds_a_knee_known_by_construction() {
    let _turn = turn();
    // Five workers, 1 ms each: the server takes exactly 5,000 calls/s, and beyond that the
    // queue grows without bound. Judged at p99 < 20 ms, the knee is that sharp: below it the
    // server answers in 1-5 ms, above it latency climbs by tens of ms per second.
    let (dir, out_json) = temp_path("capacity.json");
    let html = dir.path().join("capacity.html");
    let profile = dir.path().join("knee.toml");
    std::fs::write(
        &profile,
        "[run]\nembedded = true\n[serve]\ndelay = \"1ms\"\nmax_inflight = 5\n",
    )
    .unwrap();
    let out = wsbench()
        .args(["capacity", "--config"])
        .arg(&profile)
        .args([
            "-c",
            "8",
            "--min-rate",
            "1k",
            "--max-rate",
            "10k",
            "--step-duration",
            "1500ms",
        ])
        .args([
            "--step-warmup",
            "300ms",
            "--precision",
            "5%",
            "--max-p99",
            "20ms",
            "--json",
        ])
        .arg(&out_json)
        .arg("--html")
        .arg(&html)
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .unwrap();
    let text = out_str(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        out_str(&out.stderr)
    );
    let v = common::read_json(&out_json);
    assert_eq!(v["kind"], "capacity");
    let answer = v["capacity_rps"].as_f64().unwrap();
    // A debug build sharing two noisy cores with its embedded server (and with the tests running
    // beside it): the knee it can hold under 20 ms wanders up to ~15% under 5,000/s (the
    // previous search measured 4,516/s in two of three runs here).
    assert!(
        (4000.0..=5100.0).contains(&answer),
        "answer {answer}/s for a 5,000/s knee\n{text}"
    );
    let steps = v["steps"].as_array().unwrap();
    // min, max (unsustainable: its throughput shows the ceiling), then just under the ceiling.
    assert!(steps.len() >= 3, "{steps:?}");
    assert!(
        steps.iter().any(|s| s["sustainable"] == false),
        "the search saw the other side of the knee"
    );
    assert!(text.contains("Capacity: ") && text.contains("RATE/s"));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<svg") && page.contains("Latency by request rate"));
}

#[test]
fn the_baseline_gate_passes_an_improvement_and_fails_a_regression() {
    let _turn = turn();
    let (dir, base) = temp_path("base.json");
    let lenient = [
        "--min-rps",
        "1",
        "--max-p99",
        "1s",
        "--max-connect-p99",
        "1s",
        "--progress",
        "off",
    ];
    let run = |server: &TestServer, extra: &[&str]| {
        wsbench()
            .args(["run", "--url", &server.url, "-c", "4", "-d", "1500ms"])
            .args(lenient)
            .args(extra)
            .output()
            .unwrap()
    };

    let slow = TestServer::start(serve_config(&["--delay", "10ms"]));
    let out = run(&slow, &["--json", base.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", out_str(&out.stdout));
    slow.stop();

    // Far faster than the baseline (margins wide enough for a noisy machine): p99 down,
    // throughput up.
    let fast = TestServer::start(serve_config(&["--delay", "1ms"]));
    let out = run(&fast, &["--baseline", base.to_str().unwrap()]);
    fast.stop();
    let text = out_str(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("Baseline") && text.contains("p99"), "{text}");

    // Twice as slow: p99 doubles, beyond +10%.
    let slower = TestServer::start(serve_config(&["--delay", "20ms"]));
    let (_d2, now) = temp_path("now.json");
    let out = run(
        &slower,
        &[
            "--baseline",
            base.to_str().unwrap(),
            "--max-regress",
            "p99=+10%",
            "--json",
            now.to_str().unwrap(),
        ],
    );
    slower.stop();
    let text = out_str(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("p99 <= baseline +10.0%") && text.contains("REGRESSED"),
        "{text}"
    );
    let v = common::read_json(&now);
    let row = &v["baseline"]["rows"][0];
    assert_eq!(row["metric"], "p99");
    // Twice the delay; a busy machine (the capacity test runs beside this one) inflates the
    // baseline's p99 by a few ms, so the measured change is well over +10% but may be under +50%.
    assert!(row["change"].as_f64().unwrap() > 0.25, "{row}");

    // A baseline of another schema version is a usage error.
    let other = dir.path().join("other.json");
    let text = std::fs::read_to_string(&base).unwrap();
    std::fs::write(
        &other,
        text.replacen("\"schema_version\": 1", "\"schema_version\": 7", 1),
    )
    .unwrap();
    let out = wsbench()
        .args(["run", "--embedded", "--baseline", other.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out_str(&out.stderr).contains("schema_version 7"),
        "{}",
        out_str(&out.stderr)
    );
}

#[test]
fn full_validation_catches_every_corrupted_reply() {
    let _turn = turn();
    let server = TestServer::start(serve_config(&["--corrupt-rate", "0.05", "--seed", "11"]));
    let (_dir, r) = temp_path("r.json");
    let out = wsbench()
        .args([
            "run",
            "--url",
            &server.url,
            "-c",
            "4",
            "-n",
            "8000",
            "--validate-sample",
            "100%",
        ])
        .args([
            "--no-gate",
            "--progress",
            "off",
            "--json",
            r.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stats = server.stop();
    assert_eq!(out.status.code(), Some(0));
    let v = common::read_json(&r);
    assert!(stats.injected.corrupted > 100, "{:?}", stats.injected);
    assert_eq!(
        v["errors_by_code"]["invalid_reply"].as_u64().unwrap(),
        stats.injected.corrupted
    );
    assert_eq!(v["counts"]["validated"], 8000);
    assert!(!v["invalid_examples"].as_array().unwrap().is_empty());
    assert!(out_str(&out.stdout).contains("echo returned"));
}

#[test]
fn sampled_validation_finds_corruption_at_the_expected_rate() {
    let _turn = turn();
    let server = TestServer::start(serve_config(&["--corrupt-rate", "0.2", "--seed", "5"]));
    let (_dir, r) = temp_path("r.json");
    let out = wsbench()
        .args([
            "run",
            "--url",
            &server.url,
            "-c",
            "4",
            "-n",
            "20000",
            "--validate-sample",
            "10%",
        ])
        .args([
            "--no-gate",
            "--progress",
            "off",
            "--json",
            r.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    server.stop();
    assert_eq!(out.status.code(), Some(0));
    let v = common::read_json(&r);
    let checked = v["counts"]["validated"].as_u64().unwrap() as f64;
    let caught = v["errors_by_code"]["invalid_reply"].as_u64().unwrap_or(0) as f64;
    assert!(
        (checked - 2000.0).abs() <= 4.0,
        "10% of 20,000 checked: {checked}"
    );
    // Binomial(2000, 0.2): mean 400, sd ~17.9; five sd either way.
    let sd = (checked * 0.2 * 0.8).sqrt();
    assert!(
        (caught - checked * 0.2).abs() < 5.0 * sd,
        "caught {caught} of {checked}"
    );
}

#[test]
fn replies_are_checked_against_a_json_schema() {
    let _turn = turn();
    let (dir, _) = temp_path("x");
    let good = dir.path().join("good.json");
    let bad = dir.path().join("bad.json");
    std::fs::write(&good, r#"{"type":"array","items":{"type":"object","required":["type","text"],"properties":{"type":{"const":"text"}}}}"#).unwrap();
    std::fs::write(&bad, r#"{"type":"array","minItems":5}"#).unwrap();
    let run = |schema: &std::path::Path| {
        wsbench()
            .args([
                "run",
                "--embedded",
                "-c",
                "2",
                "-n",
                "500",
                "--tool",
                "status",
                "--validate-sample",
                "100%",
            ])
            .args(["--no-gate", "--progress", "off", "--output", "json"])
            .arg("--expect-output")
            .arg(schema)
            .output()
            .unwrap()
    };
    let v: serde_json::Value = serde_json::from_slice(&run(&good).stdout).unwrap();
    assert_eq!(v["counts"]["validated"], 500);
    assert!(
        v["errors_by_code"].get("invalid_reply").is_none(),
        "{}",
        v["errors_by_code"]
    );
    let v: serde_json::Value = serde_json::from_slice(&run(&bad).stdout).unwrap();
    assert_eq!(v["errors_by_code"]["invalid_reply"], 500);
    assert!(
        v["invalid_examples"][0]
            .as_str()
            .unwrap()
            .contains("schema")
    );

    let no_check = wsbench()
        .args([
            "run",
            "--embedded",
            "--tool",
            "status",
            "--validate-sample",
            "1%",
        ])
        .output()
        .unwrap();
    assert_eq!(no_check.status.code(), Some(2));
    assert!(out_str(&no_check.stderr).contains("--expect-output"));
}
