//! Workloads over real sockets: a weighted mix of tools against `serve --tool-delay` (shares
//! exact, each tool's figures apart, which tool is slow plain to see), per-tool thresholds and
//! their exit codes, `[[scenario.call]]` profiles, and per-tool figures through JSON and merge.

mod common;

use common::{out_str, read_json, run, serve_config, start_server, temp_path, wsbench};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mix_gives_each_tool_its_share_and_its_own_figures() {
    let server = start_server(serve_config(&[
        "--tool-delay",
        "search=1ms,fetch=8ms,summarize=20ms",
    ]))
    .await;
    let url = server.url();
    let r = run(&[
        "--url",
        &url,
        "--mix",
        "search=70,fetch=20,summarize=10",
        "-c",
        "8",
        "--inflight",
        "8",
        "-n",
        "12000",
        "--seed",
        "3",
        "--no-gate",
        "--progress",
        "off",
    ])
    .await;
    let stats = server.shutdown().await.unwrap();
    let s = &r.summary;
    assert!(s.counts.identity_holds());
    assert_eq!((s.counts.succeeded, stats.call_tool), (12_000, 12_000));
    assert_eq!(r.settings.tool, "search=70,fetch=20,summarize=10");
    // Each tool's share, exact to well within 1% of the run.
    for (tool, share) in [("search", 0.7), ("fetch", 0.2), ("summarize", 0.1)] {
        let t = &s.per_tool[tool];
        let want = 12_000.0 * share;
        let off = (t.counts.sent as f64 - want).abs();
        assert!(
            off <= 120.0,
            "{tool}: {} sent, {want} expected",
            t.counts.sent
        );
        assert_eq!(t.counts.succeeded, t.counts.sent, "{tool}");
    }
    let total: u64 = s.per_tool.values().map(|t| t.counts.sent).sum();
    assert_eq!(
        total, s.counts.sent,
        "the tools' counts add up to the run's"
    );
    // Every per-request histogram splits exactly by tool.
    for name in ["latency", "service", "schedule_lag", "client_lag"] {
        let sum: u64 = s
            .per_tool
            .values()
            .map(|t| {
                let h = t.histograms.named();
                h.iter().find(|(n, _)| *n == name).unwrap().1.len()
            })
            .sum();
        assert_eq!(sum, s.histograms.latency.len(), "{name}");
    }
    let service = |t: &str| s.per_tool[t].histograms.service.max();
    assert!(
        service("summarize") >= 20_000,
        "a tool's service time is its own"
    );
    // Which tool is slow: each one's median sits at or above its own delay.
    let p50 =
        |t: &str| wsbench::stats::summary::percentile_ms(&s.per_tool[t].histograms.latency, 50.0);
    assert!(p50("search") < p50("fetch") && p50("fetch") < p50("summarize"));
    assert!(
        p50("fetch") >= 8.0 && p50("summarize") >= 20.0,
        "{}",
        p50("fetch")
    );
}

#[test]
fn thresholds_judge_one_tool_and_an_unknown_tool_is_refused() {
    let (_d, json) = temp_path("r.json");
    let profile = _d.path().join("p.toml");
    std::fs::write(
        &profile,
        "[run]\nembedded = true\n[serve]\ntool_delay = [\"fast=0ms\", \"slow=15ms\"]\n",
    )
    .unwrap();
    let run = |thresholds: &[&str]| {
        let mut cmd = wsbench();
        cmd.args(["run", "--config"])
            .arg(&profile)
            .args([
                "--mix",
                "fast=1,slow=1",
                "-c",
                "4",
                "-n",
                "1200",
                "--min-rps",
                "1",
            ])
            .args(["--progress", "off", "--json"])
            .arg(&json);
        for t in thresholds {
            cmd.args(["--threshold", t]);
        }
        cmd.timeout(std::time::Duration::from_secs(60))
            .output()
            .unwrap()
    };
    let pass = run(&["p99{tool=fast}<12ms", "error_rate{tool=slow}<1%"]);
    assert_eq!(pass.status.code(), Some(0), "{}", out_str(&pass.stdout));
    let v = read_json(&json);
    let metrics: Vec<&str> = v["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["metric"].as_str().unwrap())
        .collect();
    assert!(metrics.contains(&"p99{tool=fast}"), "{metrics:?}");
    assert!(metrics.contains(&"error_rate{tool=slow}"), "{metrics:?}");
    // Half each, to within the few requests where connections' shares of -n differ.
    let slow = v["per_tool"]["slow"]["counts"]["sent"].as_i64().unwrap();
    assert!((slow - 600).abs() <= 4, "{slow}");
    assert!(v["per_tool"]["slow"]["latency_ms"]["p50"].as_f64().unwrap() >= 15.0);
    // The JUnit and HTML outputs carry the tools too.
    let (_d2, junit) = temp_path("j.xml");
    let html = _d2.path().join("r.html");
    let out = wsbench()
        .args(["run", "--config"])
        .arg(&profile)
        .args([
            "--mix",
            "fast=1,slow=1",
            "-c",
            "2",
            "-n",
            "200",
            "--no-gate",
        ])
        .args(["--progress", "off", "--junit"])
        .arg(&junit)
        .arg("--html")
        .arg(&html)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains(r#"classname="wsbench.tools""#) && xml.contains(r#"name="slow""#),
        "{xml}"
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("p99 response time by tool"));
    let fail = run(&["p99{tool=slow}<12ms"]);
    assert_eq!(fail.status.code(), Some(1), "{}", out_str(&fail.stdout));
    assert!(out_str(&fail.stdout).contains("p99{tool=slow} < 12.00 ms"));
    let unknown = run(&["p99{tool=medium}<12ms"]);
    assert_eq!(unknown.status.code(), Some(2));
    let err = out_str(&unknown.stderr);
    assert!(
        err.contains("'medium'") && err.contains("fast, slow"),
        "{err}"
    );
    assert!(unknown.stdout.is_empty(), "no partial output");
}

#[test]
fn a_profiles_scenario_calls_carry_their_own_arguments_and_merge_per_tool() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("mix.toml");
    std::fs::write(
        &profile,
        r#"[run]
embedded = true
conns = 2
requests = 900

[[scenario.call]]
tool = "echo"
weight = 2
args = { kind = "echo", id = "{{id}}" }

# The reference server's sleep fails a call without its own "ms": every success below is a
# call that carried these arguments.
[[scenario.call]]
tool = "sleep"
args = '{"ms":1,"seq":{{seq}}}'
"#,
    )
    .unwrap();
    let mut files = Vec::new();
    for i in 0..2 {
        let json = dir.path().join(format!("w{i}.json"));
        let out = wsbench()
            .args(["run", "--config"])
            .arg(&profile)
            .args(["--no-gate", "--progress", "off", "--worker-id"])
            .arg(format!("w{i}"))
            .arg("--json")
            .arg(&json)
            .timeout(std::time::Duration::from_secs(60))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", out_str(&out.stderr));
        let v = read_json(&json);
        assert_eq!(v["settings"]["tool"], "echo=2,sleep=1");
        let echo = v["per_tool"]["echo"]["counts"]["succeeded"]
            .as_u64()
            .unwrap();
        let sleep = v["per_tool"]["sleep"]["counts"]["succeeded"]
            .as_u64()
            .unwrap();
        assert_eq!(echo + sleep, 900);
        assert!(echo.abs_diff(600) <= 3, "{echo}");
        files.push(json);
    }
    let merged = dir.path().join("merged.json");
    let out = wsbench()
        .arg("merge")
        .args(&files)
        .args(["--no-gate", "--allow-disjoint", "--json"])
        .arg(&merged)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", out_str(&out.stderr));
    let m = read_json(&merged);
    let tool = |t: &str| m["per_tool"][t]["counts"]["succeeded"].as_u64().unwrap();
    assert_eq!(
        tool("echo") + tool("sleep"),
        1800,
        "the merge adds the workers' tools"
    );
    assert_eq!(
        m["per_tool"]["sleep"]["latency_ms"]["count"].as_u64(),
        Some(tool("sleep")),
        "and their histograms"
    );

    // A call table with a key it does not know is a usage error naming the table.
    std::fs::write(&profile, "[[scenario.call]]\ntool = \"echo\"\nwieght = 3\n").unwrap();
    let out = wsbench()
        .args(["run", "--embedded", "--config"])
        .arg(&profile)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out_str(&out.stderr).contains("wieght"),
        "{}",
        out_str(&out.stderr)
    );
}

#[test]
fn an_mcp_mix_checks_every_tool_before_load() {
    let out = wsbench()
        .args(["run", "--embedded", "--protocol", "mcp"])
        .args(["--mix", "echo=3,nope=1", "-n", "10", "--progress", "off"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = out_str(&out.stderr);
    assert!(err.contains("no tool 'nope'"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_rows_fill_the_arguments_in_turn_and_unique_rows_end_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("rows.jsonl");
    let mut text = String::new();
    for i in 0..100 {
        text.push_str(&format!("{{\"q\":\"say \\\"{i}\\\"\",\"n\":{i}}}\n"));
    }
    std::fs::write(&jsonl, text).unwrap();
    let path = jsonl.display().to_string();
    let server = start_server(serve_config(&[])).await;
    let url = server.url();
    // Every reply is checked against the arguments as sent: the rows' text, quotes escaped.
    let r = run(&[
        "--url",
        &url,
        "--args",
        r#"{"q":"{{row.q}}","n":{{row.n}},"id":"{{id}}"}"#,
        "--data",
        &path,
        "-c",
        "4",
        "-n",
        "1000",
        "--validate-sample",
        "1",
        "--no-gate",
        "--progress",
        "off",
    ])
    .await;
    let stats = server.shutdown().await.unwrap();
    let c = &r.summary.counts;
    assert_eq!(
        (c.succeeded, c.validated, stats.call_tool),
        (1000, 1000, 1000)
    );
    assert!(
        r.summary.errors_by_code.is_empty(),
        "{:?}",
        r.summary.errors_by_code
    );
    assert!(r.settings.data.as_deref().unwrap().contains("100 rows"));
    assert!(!r.summary.rows_ran_out);

    // random: rows drawn by the seed, every reply still the arguments as sent.
    let server = start_server(serve_config(&[])).await;
    let url = server.url();
    let r = run(&[
        "--url",
        &url,
        "--args",
        r#"{"q":"{{row.q}}","n":{{row.n}},"id":"{{id}}"}"#,
        "--data",
        &path,
        "--data-mode",
        "random",
        "--seed",
        "11",
        "-c",
        "3",
        "-n",
        "600",
        "--validate-sample",
        "1",
        "--no-gate",
        "--progress",
        "off",
    ])
    .await;
    let stats = server.shutdown().await.unwrap();
    let c = &r.summary.counts;
    assert_eq!((c.succeeded, c.validated, stats.call_tool), (600, 600, 600));
    assert!(r.settings.data.as_deref().unwrap().contains("random"));

    // unique: each row once; the run ends when they are gone, and says so.
    let csv = dir.path().join("cities.csv");
    std::fs::write(&csv, "city,code\nOslo,1\n\"Rio, RJ\",2\nLima,3\n").unwrap();
    let server = start_server(serve_config(&[])).await;
    let url = server.url();
    let t0 = std::time::Instant::now();
    let r = run(&[
        "--url",
        &url,
        "--args",
        r#"{"city":"{{row.city}}"}"#,
        "--data",
        &csv.display().to_string(),
        "--data-mode",
        "unique",
        "-c",
        "2",
        "-d",
        "20s",
        "--no-gate",
        "--progress",
        "off",
    ])
    .await;
    let stats = server.shutdown().await.unwrap();
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(10),
        "ended with the rows"
    );
    assert_eq!((r.summary.counts.sent, stats.call_tool), (3, 3));
    assert!(r.summary.rows_ran_out);
}

#[test]
fn data_settings_are_checked_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("d.csv");
    std::fs::write(&csv, "a,b\n1,2\n").unwrap();
    let csv = csv.display().to_string();
    for (args, flag) in [
        (
            vec!["--args", r#"{"x":"{{row.c}}"}"#, "--data", &csv],
            "column 'c'",
        ),
        (vec!["--args", r#"{"x":"{{row.a}}"}"#], "--data FILE"),
        (vec!["--data", "/nonexistent/rows.jsonl"], "cannot read"),
        (
            vec!["--data", &csv, "--data-mode", "sometimes"],
            "--data-mode",
        ),
    ] {
        let out = wsbench()
            .args(["run", "--embedded", "-n", "5"])
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = out_str(&out.stderr);
        assert!(err.contains(flag), "{args:?}: {err}");
        assert!(out.stdout.is_empty());
    }
}

/// `serve --protocol <protocol> <fault>`, then `run <probe>` against it with 6 sessions x 2 in
/// flight: the run's result and the server's counters.
async fn probe_run(
    protocol: &str,
    fault: &[&str],
    probe: &[&str],
) -> (wsbench::result::RunResult, wsbench::model::StatsSnapshot) {
    let server = start_server(serve_config(
        &[&["--protocol", protocol][..], fault].concat(),
    ))
    .await;
    let url = server.url();
    let shape = [
        "-c",
        "6",
        "--inflight",
        "2",
        "--no-gate",
        "--progress",
        "off",
    ];
    let r = run(&[&["--url", &url, "--protocol", protocol][..], probe, &shape].concat()).await;
    (r, server.shutdown().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_isolation_probe_counts_every_reply_mixed_up_between_sessions() {
    for protocol in ["tool-call", "mcp"] {
        let (r, stats) = probe_run(
            protocol,
            &["--mix-sessions-rate", "0.03", "--seed", "5"],
            &["--check", "isolation", "-n", "4000"],
        )
        .await;
        let s = &r.summary;
        let mixed = stats.injected.mixed_sessions;
        assert!(mixed > 20, "{protocol}: {stats:?}");
        assert_eq!(
            s.errors_by_code.get("cross_session"),
            Some(&mixed),
            "{protocol}: every swapped reply found, nothing else: {:?}",
            s.errors_by_code
        );
        assert_eq!(s.counts.failed, mixed);
        assert_eq!(s.counts.succeeded + mixed, stats.results_ok, "{protocol}");
        assert!(
            s.invalid_examples[0].contains("got "),
            "{:?}",
            s.invalid_examples
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_call_that_hangs_while_later_ones_succeed_is_a_first_call_stall() {
    let server = start_server(serve_config(&["--first-call-stall"])).await;
    let url = server.url();
    let r = run(&[
        "--url",
        &url,
        "--check",
        "first-call,isolation",
        "-c",
        "6",
        "-d",
        "1500ms",
        "--timeout",
        "300ms",
        "--no-gate",
        "--progress",
        "off",
    ])
    .await;
    let stats = server.shutdown().await.unwrap();
    let s = &r.summary;
    assert_eq!(stats.injected.first_call_stalls, 6, "{stats:?}");
    assert_eq!(s.first_call_stalls, 6, "every session's first call hung");
    assert_eq!(s.counts.timed_out, 6, "and nothing else did");
    assert!(s.counts.succeeded > 100);
    assert!(s.errors_by_code.is_empty(), "{:?}", s.errors_by_code);
    // Without the fault, none.
    let server = start_server(serve_config(&[])).await;
    let url = server.url();
    let r = run(&[
        "--url",
        &url,
        "--check",
        "first-call",
        "-c",
        "6",
        "-n",
        "600",
        "--no-gate",
    ])
    .await;
    server.shutdown().await.unwrap();
    assert_eq!(r.summary.first_call_stalls, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consistent_probe_counts_every_reply_that_differs_from_the_others() {
    for protocol in ["tool-call", "mcp"] {
        let (r, stats) = probe_run(
            protocol,
            &["--diverge-rate", "0.03", "--seed", "3"],
            &[
                "--check",
                "consistent",
                "--args",
                r#"{"q":"the same question"}"#,
                "-n",
                "3000",
            ],
        )
        .await;
        let s = &r.summary;
        // The reference comes from a probe session, the server's first connection, whose five
        // calls draw no divergence with this seed: every one the server injected is the run's.
        let diverged = stats.injected.diverged;
        assert!(diverged > 20, "{protocol}: {stats:?}");
        assert_eq!(
            s.errors_by_code.get("divergent"),
            Some(&diverged),
            "{protocol}: {:?}",
            s.errors_by_code
        );
        assert_eq!(s.counts.succeeded + diverged, s.counts.sent);
        assert!(
            s.invalid_examples[0].contains("divergent"),
            "{:?}",
            s.invalid_examples
        );
    }
}

#[test]
fn the_consistent_probe_needs_the_same_call_every_time() {
    let out = wsbench()
        .args(["run", "--embedded", "--check", "consistent", "-n", "5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = out_str(&out.stderr);
    assert!(
        err.contains("--check") && err.contains("without placeholders"),
        "{err}"
    );
}

#[test]
fn a_call_with_its_own_timeout_times_out_alone() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("t.toml");
    std::fs::write(
        &profile,
        r#"[run]
embedded = true
conns = 2
inflight = 4
requests = 600

[serve]
tool_delay = ["quick=1ms", "slow=60ms"]

[[scenario.call]]
tool = "quick"

[[scenario.call]]
tool = "slow"
timeout = "20ms"
"#,
    )
    .unwrap();
    let (_d, json) = temp_path("r.json");
    let out = wsbench()
        .args(["run", "--config"])
        .arg(&profile)
        .args(["--no-gate", "--progress", "off", "--json"])
        .arg(&json)
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", out_str(&out.stderr));
    let v = read_json(&json);
    let t = |tool: &str, k: &str| v["per_tool"][tool]["counts"][k].as_u64().unwrap();
    // The slow tool's 60 ms answers come after its own 20 ms limit (the run's is 10 s); the
    // quick one, sharing connections with it, is never held to that limit.
    assert_eq!(
        t("slow", "timed_out"),
        t("slow", "sent"),
        "{}",
        v["per_tool"]
    );
    assert_eq!(
        t("quick", "succeeded"),
        t("quick", "sent"),
        "{}",
        v["per_tool"]
    );
    assert_eq!(t("quick", "sent") + t("slow", "sent"), 600);
    // Their answers still came, late (but for the last few, after the connection closed).
    let late = v["counts"]["late"].as_u64().unwrap();
    assert!(late > 0 && late <= t("slow", "sent"), "{late}");
}

#[test]
fn steps_chain_each_answer_into_the_next_call_and_think_between() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("steps.toml");
    // The reference server's sleep fails without a whole-number "ms": each step's call works
    // only if the value it took from the previous answer arrived intact. (Each carries its
    // id: the server refuses a sleep identical to one in flight.)
    std::fs::write(
        &profile,
        r#"[run]
embedded = true
conns = 3
requests = 300

[[scenario.step]]
tool = "echo"
args = '{"ms": 1, "note": "say \"hi\""}'

[[scenario.step]]
tool = "sleep"
args = '{"ms": {{previous./ms}}, "note": "{{previous./note}}", "id": "{{id}}"}'

[[scenario.step]]
tool = "sleep"
args = '{"ms": {{previous./slept_ms}}, "id": "{{id}}"}'
"#,
    )
    .unwrap();
    let (_d, json) = temp_path("r.json");
    let out = wsbench()
        .args(["run", "--config"])
        .arg(&profile)
        .args(["--no-gate", "--progress", "off", "--json"])
        .arg(&json)
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", out_str(&out.stderr));
    let v = read_json(&json);
    assert_eq!(v["counts"]["succeeded"], 300, "{}", v["errors_by_code"]);
    assert_eq!(v["settings"]["tool"], "echo>sleep>sleep");
    // Each session goes through the steps in order: a third of the calls are the echo, the
    // sleep's two steps add up under its name.
    // (-n is shared: a session may stop a step or two off a third.)
    let echo = v["per_tool"]["echo"]["counts"]["succeeded"]
        .as_u64()
        .unwrap();
    let sleep = v["per_tool"]["sleep"]["counts"]["succeeded"]
        .as_u64()
        .unwrap();
    assert_eq!(echo + sleep, 300);
    assert!(echo.abs_diff(100) <= 3, "{echo}");

    // think: a 100 ms pause after each answer bounds a session's pace.
    std::fs::write(
        &profile,
        "[run]\nembedded = true\nconns = 2\nduration = \"1s\"\n\n[[scenario.step]]\ntool = \"echo\"\nthink = \"100ms\"\n",
    )
    .unwrap();
    let out = wsbench()
        .args(["run", "--config"])
        .arg(&profile)
        .args(["--no-gate", "--progress", "off", "--json"])
        .arg(&json)
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", out_str(&out.stderr));
    let sent = read_json(&json)["counts"]["sent"].as_u64().unwrap();
    assert!(
        (14..=24).contains(&sent),
        "2 sessions x ~10 steps in 1 s, got {sent}"
    );

    // One step at a time per session in a closed loop.
    let out = wsbench()
        .args(["run", "--config"])
        .arg(&profile)
        .args(["--inflight", "4"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out_str(&out.stderr).contains("--inflight"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_past_the_64th_are_counted_together_as_other() {
    let names: Vec<String> = (0..70).map(|i| format!("t{i}")).collect();
    let delays: Vec<String> = names.iter().map(|n| format!("{n}=0ms")).collect();
    let server = start_server(serve_config(&["--tool-delay", &delays.join(",")])).await;
    let url = server.url();
    let mix: Vec<String> = names.iter().map(|n| format!("{n}=1")).collect();
    let r = run(&[
        "--url",
        &url,
        "--mix",
        &mix.join(","),
        "-c",
        "7",
        "-n",
        "7000",
        "--no-gate",
        "--progress",
        "off",
    ])
    .await;
    let stats = server.shutdown().await.unwrap();
    let s = &r.summary;
    assert_eq!((s.counts.succeeded, stats.results_ok), (7000, 7000));
    assert_eq!(s.per_tool.len(), 65, "64 tools and other");
    let other = &s.per_tool["other"];
    // Six tools of seventy, a hundred calls each give or take a few.
    assert!(
        other.counts.sent.abs_diff(600) <= 12,
        "{}",
        other.counts.sent
    );
    let total: u64 = s.per_tool.values().map(|t| t.counts.sent).sum();
    assert_eq!(total, 7000);
}
