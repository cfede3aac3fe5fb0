//! wsbench in scripts and CI: config precedence and `config show`, threshold expressions,
//! JUnit / HTML / SVG / quiet outputs, `.env` tokens, shell completions.

mod common;

use common::{TestServer, out_str, temp_path, wsbench};

/// `config show` value and source of one key.
fn shown(show: &str, key: &str) -> (String, String) {
    let line = show
        .lines()
        .find(|l| l.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("{key} missing from:\n{show}"));
    let (value, source) = line.split_once("  # ").unwrap();
    (
        value
            .trim_start_matches(&format!("{key} = "))
            .trim_matches('"')
            .to_owned(),
        source.to_owned(),
    )
}

#[test]
fn each_source_wins_where_it_should() {
    let (dir, _) = temp_path("x");
    let profile = dir.path().join("p.toml");
    std::fs::write(
        &profile,
        "[run]\nconns = 8\nduration = \"3s\"\ntool = \"sleep\"\n",
    )
    .unwrap();
    let show = |env: &[(&str, &str)], flags: &[&str]| {
        let mut cmd = wsbench();
        cmd.args(["config", "show", "--config"])
            .arg(&profile)
            .args(flags);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", out_str(&out.stderr));
        out_str(&out.stdout)
    };
    let s = show(
        &[("WSBENCH_CONNS", "12"), ("WSBENCH_DURATION", "7s")],
        &["--conns", "16"],
    );
    assert_eq!(
        shown(&s, "conns"),
        ("16".into(), "flag --conns".into()),
        "flag beats env and file"
    );
    assert_eq!(
        shown(&s, "duration"),
        ("7s".into(), "env WSBENCH_DURATION".into()),
        "env beats file"
    );
    assert_eq!(
        shown(&s, "tool").1,
        format!("file {}", profile.display()),
        "file beats default"
    );
    assert_eq!(shown(&s, "inflight"), ("1".into(), "default".into()));
    let s = show(&[("WSBENCH_CONNS", "12")], &[]);
    assert_eq!(
        shown(&s, "conns"),
        ("12".into(), "env WSBENCH_CONNS".into())
    );
    let s = show(&[], &[]);
    assert_eq!(
        shown(&s, "conns"),
        ("8".into(), format!("file {}", profile.display()))
    );

    let bad = wsbench()
        .env("WSBENCH_CONNS", "zero")
        .args(["config", "show"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        out_str(&bad.stderr).contains("WSBENCH_CONNS"),
        "{}",
        out_str(&bad.stderr)
    );
}

#[test]
fn config_show_redacts_the_token() {
    let out = wsbench()
        .env("WSBENCH_TOKEN", "sekrit-123")
        .args(["config", "show"])
        .output()
        .unwrap();
    let text = out_str(&out.stdout);
    assert!(!text.contains("sekrit-123"));
    assert!(text.contains("# token: set"), "{text}");
}

#[test]
fn the_default_profile_is_the_built_in_defaults() {
    use wsbench::cli::RunArgs;
    use wsbench::config::RunConfig;
    let profile = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml");
    let from_file = RunConfig::from_args(&RunArgs {
        config: Some(profile),
        ..Default::default()
    })
    .unwrap();
    let built_in = RunConfig::from_args(&RunArgs::default()).unwrap();
    assert_eq!(
        from_file, built_in,
        "config/default.toml documents exactly the built-in defaults"
    );
}

#[test]
fn threshold_expressions_gate_and_unknown_metrics_are_usage_errors() {
    let out = wsbench()
        .args([
            "run",
            "--embedded",
            "-c",
            "2",
            "-n",
            "500",
            "--progress",
            "off",
            "--output",
            "quiet",
        ])
        .args([
            "--threshold",
            "rps>=1",
            "--threshold",
            "p99<1us",
            "--threshold",
            "error_rate<=0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "p99 under 1 us cannot hold");
    let line = out_str(&out.stdout);
    assert_eq!(line.lines().count(), 1, "quiet is one line: {line}");
    assert!(
        line.starts_with("FAIL ") && line.contains("exit=1"),
        "{line}"
    );

    for (expr, culprit) in [
        ("p98<5ms", "unknown metric 'p98'"),
        ("p99<5", "needs a unit"),
        ("rps=>1", "rps"),
    ] {
        let out = wsbench()
            .args(["run", "--embedded", "--threshold", expr])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{expr}");
        let err = out_str(&out.stderr);
        assert!(
            err.contains("--threshold") && err.contains(culprit),
            "{expr}: {err}"
        );
    }
}

#[test]
fn junit_has_one_case_per_threshold_and_failures_exactly_for_failed_ones() {
    let (_dir, junit) = temp_path("junit.xml");
    let out = wsbench()
        .args([
            "run",
            "--embedded",
            "-c",
            "2",
            "-n",
            "400",
            "--progress",
            "off",
        ])
        .args([
            "--threshold",
            "rps>=1",
            "--threshold",
            "p99<1us",
            "--max-connect-p99",
            "10s",
        ])
        .arg("--junit")
        .arg(&junit)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("JUnit is well-formed XML");
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    // rps, p99 (expressions) + connect_p99 (flag) + error_rate, connection_errors (default).
    assert_eq!(cases.len(), 5, "{xml}");
    let failed: Vec<_> = cases
        .iter()
        .filter(|c| c.children().any(|n| n.has_tag_name("failure")))
        .map(|c| c.attribute("name").unwrap())
        .collect();
    assert_eq!(failed.len(), 1, "{xml}");
    assert!(failed[0].starts_with("p99 <"), "{failed:?}");
    let failure = doc
        .descendants()
        .find(|n| n.has_tag_name("failure"))
        .unwrap();
    assert!(
        failure.attribute("message").unwrap().contains("measured"),
        "says measured vs limit"
    );
}

#[test]
fn the_html_report_is_self_contained_and_charts_the_run() {
    let (dir, html) = temp_path("report.html");
    let plot = dir.path().join("spectrum.svg");
    let out = wsbench()
        .args([
            "run",
            "--embedded",
            "-c",
            "3",
            "-d",
            "2500ms",
            "--progress",
            "off",
            "--no-gate",
        ])
        .arg("--html")
        .arg(&html)
        .arg("--plot")
        .arg(&plot)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", out_str(&out.stderr));
    let text = std::fs::read_to_string(&html).unwrap();
    let doc = roxmltree::Document::parse_with_options(
        &text,
        roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        },
    )
    .expect("the HTML is well-formed");
    assert!(!text.contains("http"), "no network references at all");
    assert!(!text.contains("<script"), "no scripts");
    let svgs: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("svg"))
        .collect();
    assert_eq!(
        svgs.len(),
        4,
        "throughput, latency per second, spectrum, per connection"
    );
    let titles: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("path"))
        .filter_map(|p| {
            p.children()
                .find(|c| c.has_tag_name("title"))
                .and_then(|t| t.text())
        })
        .collect();
    for series in ["succeeded", "p50", "p99", "service time"] {
        assert!(titles.contains(&series), "{series} charted: {titles:?}");
    }
    // One bar per connection.
    let bars = doc
        .descendants()
        .filter(|n| n.has_tag_name("rect") && n.children().any(|c| c.has_tag_name("title")))
        .count();
    assert_eq!(bars, 3);
    let svg = std::fs::read_to_string(&plot).unwrap();
    roxmltree::Document::parse(&svg).expect("the plot is a standalone SVG");
    assert!(svg.contains("Latency by percentile"));
}

#[test]
fn a_dotenv_token_is_used_and_never_shown() {
    const TOKEN: &str = "dotenv-tok-5f3a9c-SECRET";
    let server = TestServer::with_token(TOKEN);
    let (dir, json) = temp_path("r.json");
    std::fs::write(dir.path().join(".env"), format!("WSBENCH_TOKEN={TOKEN}\n")).unwrap();
    let out = wsbench()
        .current_dir(dir.path())
        .args([
            "run",
            "--url",
            &server.url,
            "-c",
            "2",
            "-n",
            "100",
            "--no-gate",
            "--progress",
            "lines",
        ])
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    server.stop();
    assert_eq!(
        out.status.code(),
        Some(0),
        "authenticated with the .env token: {}",
        out_str(&out.stdout)
    );
    for text in [
        out_str(&out.stdout),
        out_str(&out.stderr),
        std::fs::read_to_string(&json).unwrap(),
    ] {
        assert!(!text.contains(TOKEN));
    }

    // EXAI_WS_TOKEN, as existing deployments set it, works too.
    let server = TestServer::with_token(TOKEN);
    let out = wsbench()
        .env("EXAI_WS_TOKEN", TOKEN)
        .args([
            "run",
            "--url",
            &server.url,
            "-c",
            "1",
            "-n",
            "10",
            "--no-gate",
            "--progress",
            "off",
        ])
        .output()
        .unwrap();
    server.stop();
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn bash_can_source_the_completion_script() {
    let (dir, _) = temp_path("x");
    let script = dir.path().join("wsbench.bash");
    let out = wsbench().args(["completions", "bash"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    std::fs::write(&script, &out.stdout).unwrap();
    let status = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -e; source {}; complete -p wsbench",
            script.display()
        ))
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", out_str(&status.stderr));
    assert!(out_str(&status.stdout).contains("wsbench"));
    let man = wsbench().arg("man").output().unwrap();
    assert!(out_str(&man.stdout).contains(".TH wsbench"));
}

#[test]
fn help_shows_examples_and_exit_codes() {
    let out = wsbench().args(["run", "--help"]).output().unwrap();
    let text = out_str(&out.stdout);
    assert!(
        text.contains("Examples:") && text.contains("Exit codes:") && text.contains("130"),
        "{text}"
    );
}

#[test]
fn every_setting_flag_has_a_profile_key() {
    use clap::CommandFactory as _;
    // Flags that are not settings: the profile itself, secrets, switches that only negate.
    let not_keys = [
        "config",
        "token",
        "no-gate",
        "header",
        "threshold",
        "session-delay",
    ];
    let cli = wsbench::cli::Cli::command();
    for (sub, table) in [("run", None), ("serve", Some("serve"))] {
        let cmd = cli.find_subcommand(sub).unwrap();
        for arg in cmd.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if not_keys.contains(&long) || long == "help" {
                continue;
            }
            let key = long.replace('-', "_");
            let (dir, _) = temp_path("x");
            let profile = dir.path().join("p.toml");
            let section = table.unwrap_or_else(|| {
                if key.starts_with("max_") || key.starts_with("min_") || key == "baseline" {
                    "thresholds"
                } else if [
                    "reconnect",
                    "backoff_base",
                    "backoff_max",
                    "ping_interval",
                    "pong_timeout",
                    "retry_after",
                    "retry_after_max",
                    "uncorrelated_errors",
                ]
                .contains(&key.as_str())
                    || key.starts_with("breaker")
                {
                    "resilience"
                } else {
                    "run"
                }
            });
            let section = if section == "thresholds" && key == "max_frame_size" {
                "run"
            } else {
                section
            };
            std::fs::write(&profile, format!("[{section}]\n{key} = \"@@probe@@\"\n")).unwrap();
            let out = wsbench()
                .args(["config", "show", "--config"])
                .arg(&profile)
                .output()
                .unwrap();
            let err = out_str(&out.stderr);
            assert!(
                !err.contains("unknown config key"),
                "{sub} --{long} has no key {section}.{key}: {err}"
            );
        }
    }
}
