//! The `wsbench` binary as CI uses it: exit codes, flag errors that name the flag and write
//! nothing, the JSON result file, and secrets that never leave the wire.

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, closed_port, out_str, temp_path, wsbench};

fn stdout_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn cli_definition_is_consistent() {
    use clap::CommandFactory as _;
    wsbench::cli::Cli::command().debug_assert();
}

#[test]
fn bad_input_exits_2_names_the_culprit_and_writes_nothing() {
    let (dir, json) = temp_path("out.json");
    let bad_config = dir.path().join("bad.toml");
    std::fs::write(&bad_config, "[run]\nconns = 4\nturbo = true\n").unwrap();
    let bad_config = bad_config.to_str().unwrap().to_owned();
    let cases: &[(&[&str], &str)] = &[
        (&["--conns", "0"], "--conns"),
        (&["--duration", "0s"], "--duration"),
        (&["--url", "ftp://x"], "--url"),
        (&["--args", "{not json"], "--args"),
        (&["--args", "[1,2]"], "--args"),
        (&["--inflight", "many"], "--inflight"),
        (&["--max-p99", "quick"], "--max-p99"),
        (&["--config", &bad_config], "run.turbo"),
        (
            &["--config", "/nonexistent/wsbench.toml"],
            "/nonexistent/wsbench.toml",
        ),
        (&["--frobnicate"], "--frobnicate"),
    ];
    for (args, culprit) in cases {
        let out = wsbench()
            .args(["run", "--embedded", "--json", json.to_str().unwrap()])
            .args(*args)
            .output()
            .unwrap();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(culprit),
            "{args:?} should name {culprit}: {err}"
        );
        assert!(stdout_of(&out).is_empty(), "{args:?} printed a report");
        assert!(!json.exists(), "{args:?} wrote the result file");
    }
}

#[test]
fn a_flag_error_is_one_line() {
    let out = wsbench().args(["run", "--conns", "0"]).output().unwrap();
    let err = stderr_of(&out);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
fn an_unreachable_port_exits_3_within_the_connect_timeout() {
    let port = closed_port();
    let t0 = Instant::now();
    let out = wsbench()
        .args([
            "run",
            "--url",
            &format!("ws://127.0.0.1:{port}"),
            "-c",
            "4",
            "-d",
            "5s",
        ])
        .args(["--connect-timeout", "2s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr_of(&out));
    assert!(
        t0.elapsed() < Duration::from_secs(4),
        "took {:?}",
        t0.elapsed()
    );
    assert!(stdout_of(&out).contains("every connection failed"));
}

#[test]
fn a_server_that_never_upgrades_hits_the_connect_timeout() {
    // The kernel completes TCP handshakes into the backlog; nobody ever reads the upgrade.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}", silent.local_addr().unwrap());
    let t0 = Instant::now();
    let out = wsbench()
        .args([
            "run",
            "--url",
            &url,
            "-c",
            "2",
            "-d",
            "5s",
            "--connect-timeout",
            "1s",
        ])
        .output()
        .unwrap();
    let elapsed = t0.elapsed();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    assert!(
        stdout_of(&out).contains("upgrade: timed out"),
        "{}",
        stdout_of(&out)
    );
    drop(silent);
}

#[test]
fn a_wrong_token_exits_3_and_names_close_code_4003() {
    let server = TestServer::with_token("the-right-one");
    let out = wsbench()
        .args([
            "run",
            "--url",
            &server.url,
            "-c",
            "2",
            "-d",
            "1s",
            "--token",
            "the-wrong-one",
        ])
        .output()
        .unwrap();
    let stats = server.stop();
    assert_eq!(out.status.code(), Some(3));
    let text = stdout_of(&out);
    assert!(
        text.contains("4003") && text.contains("unauthorized"),
        "{text}"
    );
    assert_eq!(stats.hello_rejected, 2);
}

#[test]
fn an_unknown_tool_fails_the_gate_with_exit_1() {
    let (_dir, json) = temp_path("r.json");
    let out = wsbench()
        .args([
            "run",
            "--embedded",
            "-c",
            "2",
            "-n",
            "300",
            "--tool",
            "no_such_tool",
        ])
        .args(["--min-rps", "1", "--json", json.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let v = common::read_json(&json);
    assert_eq!(v["verdict"], "fail");
    assert_eq!(v["exit_code"], 1);
    assert_eq!(v["counts"]["failed"], 300);
    assert_eq!(v["errors_by_code"]["TOOL_NOT_FOUND"], 300);
    assert!(stdout_of(&out).contains("TOOL_NOT_FOUND 300"));
}

#[test]
fn the_json_result_round_trips_and_matches_the_printed_report() {
    let server = TestServer::start(Default::default());
    let (_dir, json) = temp_path("result.json");
    let out = wsbench()
        .args([
            "run",
            "--url",
            &server.url,
            "-c",
            "4",
            "-n",
            "5000",
            "--no-gate",
        ])
        .args(["--json", json.to_str().unwrap()])
        .output()
        .unwrap();
    let stats = server.stop();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let v = common::read_json(&json);

    for key in [
        "schema_version",
        "verdict",
        "exit_code",
        "target",
        "duration_s",
        "throughput_rps",
    ] {
        assert!(!v[key].is_null(), "missing {key}");
    }
    let counts = &v["counts"];
    for key in [
        "sent",
        "succeeded",
        "failed",
        "timed_out",
        "lost",
        "unfinished",
        "duplicates",
        "unmatched",
        "malformed",
        "non_final",
    ] {
        assert!(counts[key].is_u64(), "missing counts.{key}");
    }
    let n = |k: &str| counts[k].as_u64().unwrap();
    assert_eq!(
        n("sent"),
        n("succeeded") + n("failed") + n("timed_out") + n("lost") + n("unfinished")
    );
    assert_eq!(n("sent"), stats.call_tool);
    assert_eq!(n("succeeded"), stats.results_ok);
    for key in ["min", "mean", "p50", "p90", "p99", "p999", "max"] {
        assert!(v["latency_ms"][key].is_f64(), "missing latency_ms.{key}");
    }
    for block in ["connect_ms", "hello_ms"] {
        for key in ["p50", "p99", "max"] {
            assert!(v[block][key].is_f64(), "missing {block}.{key}");
        }
    }
    assert_eq!(v["connections"]["opened"], 4);
    assert_eq!(v["connections"]["failed"], 0);

    let hist =
        wsbench::result::file::decode_histogram(v["histograms"]["latency"].as_str().unwrap())
            .unwrap();
    assert_eq!(hist.len(), n("succeeded"));
    let p99 = hist.value_at_quantile(0.99) as f64 / 1e3;
    assert_eq!(p99, v["latency_ms"]["p99"].as_f64().unwrap());
    let printed = wsbench::units::fmt_ms(p99);
    assert!(
        stdout_of(&out).contains(&format!("p99 {printed}")),
        "report shows p99 {printed}"
    );
    for h in ["connect", "hello", "service"] {
        let decoded =
            wsbench::result::file::decode_histogram(v["histograms"][h].as_str().unwrap()).unwrap();
        assert!(!decoded.is_empty(), "{h} histogram decodes");
    }
}

#[test]
fn json_to_stdout_moves_the_text_report_to_stderr() {
    let out = wsbench()
        .args([
            "run",
            "--embedded",
            "-c",
            "1",
            "-n",
            "100",
            "--no-gate",
            "--json",
            "-",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is pure JSON");
    assert_eq!(v["counts"]["succeeded"], 100);
    assert!(stderr_of(&out).contains("Verdict: PASS"));
}

#[test]
fn an_unwritable_output_exits_3_before_any_load() {
    let out = wsbench()
        .args([
            "run",
            "--embedded",
            "-c",
            "1",
            "-d",
            "30s",
            "--json",
            "/nonexistent-dir/r.json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr_of(&out).contains("/nonexistent-dir/r.json"));
}

#[test]
fn the_token_never_appears_in_any_output() {
    const TOKEN: &str = "tok-8c1f0e-DO-NOT-LEAK-77aa";
    let server = TestServer::with_token(TOKEN);
    let (_dir, json) = temp_path("secret.json");
    let out = wsbench()
        .env("WSBENCH_TOKEN", TOKEN)
        .env("RUST_LOG", "trace")
        .args([
            "run",
            "--url",
            &server.url,
            "-c",
            "2",
            "-n",
            "200",
            "--no-gate",
            "-vv",
        ])
        .args(["--json", json.to_str().unwrap()])
        .output()
        .unwrap();
    server.stop();
    assert_eq!(
        out.status.code(),
        Some(0),
        "the env token authenticates: {}",
        stderr_of(&out)
    );
    let file = std::fs::read_to_string(&json).unwrap();
    for (name, text) in [
        ("stdout", stdout_of(&out)),
        ("stderr", stderr_of(&out)),
        ("json", file),
    ] {
        assert!(!text.contains(TOKEN), "token leaked into {name}");
    }
    // And a wrong token is not echoed back either.
    let help = wsbench()
        .env("WSBENCH_TOKEN", TOKEN)
        .args(["run", "--help"])
        .output()
        .unwrap();
    assert!(
        !stdout_of(&help).contains(TOKEN),
        "--help shows the env value"
    );
}

#[test]
fn serve_prints_its_address_and_stops_on_sigterm_writing_stats() {
    let (_dir, stats) = temp_path("stats.json");
    let (child, url) = common::spawn_serve(&["--stats-file", stats.to_str().unwrap()], &[]);
    assert!(url.starts_with("ws://127.0.0.1:"), "{url}");

    let out = wsbench()
        .args(["run", "--url", &url, "-c", "2", "-n", "400", "--no-gate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let status = common::terminate(child).status;
    assert!(status.success(), "{status:?}");
    let v = common::read_json(&stats);
    for key in [
        "connections",
        "hello_ok",
        "hello_rejected",
        "call_tool",
        "results_ok",
        "results_error",
        "replays",
        "errors_by_code",
    ] {
        assert!(!v[key].is_null(), "stats file lacks {key}");
    }
    assert_eq!(v["call_tool"], 400);
    assert_eq!(v["results_ok"], 400);
}

#[test]
fn every_profile_in_config_parses() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let args = wsbench::cli::RunArgs {
                config: Some(path.clone()),
                ..Default::default()
            };
            wsbench::config::RunConfig::from_args(&args)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            seen += 1;
        }
    }
    assert!(seen >= 1, "config/ holds profiles");
}

#[test]
fn the_chaos_profile_passes_its_own_thresholds() {
    let (_dir, json) = temp_path("chaos.json");
    let profile = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/chaos.toml");
    let out = wsbench()
        .args(["run", "--config"])
        .arg(&profile)
        .args(["--duration", "4s", "--progress", "off", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout_of(&out));
    let v = common::read_json(&json);
    let server = &v["server"]["injected"];
    // The embedded server really injected faults, and the client counted them exactly.
    assert!(server["errors"].as_u64().unwrap() > 0);
    assert_eq!(v["counts"]["failed"], server["errors"]);
    assert_eq!(v["counts"]["duplicates"], server["duplicates"]);
    assert_eq!(v["counts"]["malformed"], server["malformed"]);
    assert_eq!(v["resilience"]["disconnects"], server["forced_closes"]);
    assert_eq!(v["identity_holds"], true);
}

#[test]
fn serve_reads_its_settings_from_a_config_file() {
    let (dir, stats) = temp_path("stats.json");
    let profile = dir.path().join("serve.toml");
    std::fs::write(&profile, "[serve]\nport = 0\nerror_rate = 1.0\n").unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[serve]\nerror_rate = 7\n").unwrap();
    let out = wsbench()
        .args(["serve", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("serve.error_rate"),
        "{}",
        stderr_of(&out)
    );

    let (child, url) = common::spawn_serve(
        &[
            "--config",
            profile.to_str().unwrap(),
            "--stats-file",
            stats.to_str().unwrap(),
        ],
        &[],
    );
    let out = wsbench()
        .args([
            "run",
            "--url",
            &url,
            "-c",
            "1",
            "-n",
            "50",
            "--min-rps",
            "1",
            "--progress",
            "off",
        ])
        .output()
        .unwrap();
    common::terminate(child);
    assert_eq!(
        out.status.code(),
        Some(1),
        "every call fails: error_rate = 1.0 came from the file"
    );
    assert!(stdout_of(&out).contains("OVER_CAPACITY 50"));
}

#[test]
fn output_files_are_readable_by_others_like_any_report() {
    use std::os::unix::fs::PermissionsExt as _;
    let (_dir, json) = temp_path("r.json");
    let out = wsbench()
        .args([
            "run",
            "--embedded",
            "-c",
            "1",
            "-n",
            "10",
            "--no-gate",
            "--progress",
            "off",
            "--json",
        ])
        .arg(&json)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let mode = std::fs::metadata(&json).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "not the temp file's private 0600");
}

#[test]
fn compare_judges_two_result_files_like_the_baseline_gate() {
    let dir = tempfile::tempdir().unwrap();
    let slow_profile = dir.path().join("slow.toml");
    std::fs::write(
        &slow_profile,
        "[run]\nembedded = true\n[serve]\ndelay = \"3ms\"\n",
    )
    .unwrap();
    let result = |name: &str, profile: Option<&std::path::Path>| {
        let path = dir.path().join(name);
        let mut cmd = wsbench();
        cmd.arg("run");
        match profile {
            Some(p) => cmd.arg("--config").arg(p),
            None => cmd.arg("--embedded"),
        };
        let out = cmd
            .args([
                "-c",
                "4",
                "-n",
                "2000",
                "--no-gate",
                "--progress",
                "off",
                "--json",
            ])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", out_str(&out.stderr));
        path
    };
    let fast = result("fast.json", None);
    let slow = result("slow.json", Some(&slow_profile));
    let compare = |old: &std::path::Path, new: &std::path::Path| {
        wsbench().arg("compare").arg(old).arg(new).output().unwrap()
    };
    let worse = compare(&fast, &slow);
    assert_eq!(worse.status.code(), Some(1), "{}", out_str(&worse.stdout));
    let text = out_str(&worse.stdout);
    assert!(
        text.contains("REGRESSED") && text.contains("p99 <= baseline"),
        "{text}"
    );
    assert!(
        !text.contains("rps >= 50000"),
        "only the comparison judges: {text}"
    );
    let better = compare(&slow, &fast);
    assert_eq!(better.status.code(), Some(0), "{}", out_str(&better.stdout));
    let missing = compare(&fast, &dir.path().join("nope.json"));
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        out_str(&missing.stderr).contains("result file"),
        "{}",
        out_str(&missing.stderr)
    );
}

#[test]
fn markdown_summarizes_the_verdict_thresholds_and_tools() {
    let (dir, md) = temp_path("summary.md");
    let out = wsbench()
        .args([
            "run",
            "--embedded",
            "--mix",
            "echo=3,status=1",
            "-c",
            "2",
            "-n",
            "400",
        ])
        .args([
            "--min-rps",
            "1",
            "--threshold",
            "p99{tool=echo}<1s",
            "--progress",
            "off",
        ])
        .arg("--markdown")
        .arg(&md)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", out_str(&out.stdout));
    let text = std::fs::read_to_string(&md).unwrap();
    assert!(text.starts_with("### ✅ wsbench: PASS (exit 0)"), "{text}");
    assert!(text.contains("| `p99{tool=echo} < 1000 ms` |"), "{text}");
    assert!(text.contains("| `status` |"), "{text}");
    // A failed gate says so in the summary too.
    let out = wsbench()
        .args([
            "run",
            "--embedded",
            "-c",
            "1",
            "-n",
            "50",
            "--progress",
            "off",
        ])
        .args(["--min-rps", "100m", "--markdown"])
        .arg(&md)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = std::fs::read_to_string(&md).unwrap();
    assert!(
        text.contains("❌ wsbench: FAIL") && text.contains("**FAIL**"),
        "{text}"
    );
    drop(dir);
}
