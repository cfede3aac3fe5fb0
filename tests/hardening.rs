//! Hardening: the reference server survives arbitrary frames over a real socket; every flag
//! that takes a value rejects a bad one (exit 2, naming it, no file written); SIGINT/SIGTERM
//! stop a run gracefully (report written, exit 130) and a second SIGINT exits at once; a
//! distinctive token appears in no output, file or log line.

mod common;

use std::time::{Duration, Instant};

use clap::CommandFactory as _;
use common::{TestServer, out_str, temp_path, wsbench};
use futures_util::{SinkExt as _, StreamExt as _};
use proptest::prelude::*;
use tokio_tungstenite::tungstenite::Message;

/// Sends `frames` after a good hello, then asks for health: the server must still answer.
fn server_survives(url: &str, frames: Vec<Message>) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .map_err(|e| e.to_string())?;
        ws.send(Message::text(r#"{"op":"hello","session_id":"fuzz-1"}"#))
            .await
            .map_err(|e| e.to_string())?;
        for f in frames {
            // The server may close on what it was sent (over its size cap); that is allowed.
            if ws.send(f).await.is_err() {
                return Ok(());
            }
        }
        ws.send(Message::text(r#"{"op":"health"}"#))
            .await
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) if t.as_str().contains("health_res") => {
                    return Ok(());
                }
                Ok(Some(Ok(_))) => continue,
                other => return Err(format!("no health answer: {other:?}")),
            }
        }
        Err("no health answer in time".into())
    })
}

fn frame() -> impl Strategy<Value = Message> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200)
            .prop_map(|b| Message::text(String::from_utf8_lossy(&b).into_owned())),
        prop::collection::vec(any::<u8>(), 0..200).prop_map(Message::binary),
        "[ -~]{0,80}".prop_map(|s| Message::text(format!(
            r#"{{"op":"call_tool","request_id":"{s}","name":"echo","arguments":{{}}}}"#
        ))),
        ("[a-z_]{0,10}", "[ -~]{0,40}").prop_map(|(op, a)| Message::text(format!(
            r#"{{"op":"{op}","name":"sleep","request_id":"r","arguments":{a}}}"#
        ))),
        Just(Message::text(
            r#"{"op":"call_tool","request_id":"x","name":"sleep","arguments":{"ms":1}}"#
        )),
        Just(Message::text(
            r#"{"op":"call_tool","request_id":"x","name":"","arguments":[]}"#
        )),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn the_reference_server_survives_any_frames(frames in prop::collection::vec(frame(), 1..12)) {
        let server = TestServer::start(Default::default());
        let result = server_survives(&server.url, frames);
        let stats = server.stop();
        prop_assert!(result.is_ok(), "{:?}", result);
        prop_assert!(stats.hello_ok >= 1);
    }
}

/// A value each flag must refuse, with the words the refusal must contain. Flags whose every
/// value is legal (a token, a tool name of any spelling...) are listed with `None`.
fn bad_value(flag: &str) -> Option<&'static str> {
    Some(match flag {
        "token" => return None,
        "json" | "junit" | "html" | "markdown" | "plot" | "hdr-log" | "stats-file" => "/",
        "tool" | "subprotocol" => "",
        "session-prefix" => "not a prefix!",
        "header" => "no colon here",
        "config" => "/nonexistent/wsbench.toml",
        _ => "@@bad@@",
    })
}

#[test]
fn every_flag_that_takes_a_value_refuses_a_bad_one() {
    let cli = wsbench::cli::Cli::command();
    let mut checked = 0;
    for sub in ["run", "serve"] {
        let cmd = cli.find_subcommand(sub).unwrap();
        for arg in cmd.get_arguments() {
            let (Some(long), true) = (arg.get_long(), arg.get_action().takes_values()) else {
                continue;
            };
            let Some(bad) = bad_value(long) else { continue };
            let (_dir, out_file) = temp_path("out.json");
            let mut c = wsbench();
            c.arg(sub).arg(format!("--{long}={bad}"));
            // A peer flag that `requires` this one must not be the complaint.
            match long {
                "pause-every" => c.args(["--pause-for", "1s"]),
                "pause-for" => c.args(["--pause-every", "1s"]),
                "down-after" => c.args(["--down-for", "1s"]),
                "down-for" => c.args(["--down-after", "1s"]),
                "tls-cert" => c.args([
                    "--tls-key",
                    concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
                ]),
                "tls-key" => c.args([
                    "--tls-cert",
                    concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
                ]),
                _ => &mut c,
            };
            if sub == "run" {
                if long != "url" {
                    c.arg("--embedded");
                }
                if long != "json" {
                    c.arg("--json").arg(&out_file);
                }
            }
            let out = c.timeout(Duration::from_secs(20)).output().unwrap();
            let err = out_str(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{sub} --{long}={bad:?}: {err}");
            assert!(
                err.contains(&format!("--{long}")) || err.contains(bad),
                "{sub} --{long}: {err}"
            );
            assert_eq!(
                err.trim_end().lines().count(),
                1,
                "one line for --{long}: {err}"
            );
            assert!(!out_file.exists(), "--{long} wrote a file");
            checked += 1;
        }
    }
    assert!(checked >= 60, "checked {checked} flags");
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: sends a signal to our own child process.
    unsafe { libc::kill(pid as i32, sig) };
}

#[test]
fn a_signal_stops_the_run_gracefully_with_every_file_written() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let (dir, json) = temp_path("r.json");
        let junit = dir.path().join("j.xml");
        let t0 = Instant::now();
        let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("wsbench"))
            .args([
                "run",
                "--embedded",
                "-c",
                "4",
                "-d",
                "60s",
                "--progress",
                "off",
                "--json",
            ])
            .arg(&json)
            .arg("--junit")
            .arg(&junit)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        signal(child.id(), sig);
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(130),
            "signal {sig}: {}",
            out_str(&out.stderr)
        );
        assert!(t0.elapsed() < Duration::from_secs(10));
        assert!(out_str(&out.stdout).contains("Verdict: INTERRUPTED (exit 130)"));
        let v = common::read_json(&json);
        assert_eq!(v["verdict"], "interrupted");
        assert!(v["counts"]["succeeded"].as_u64().unwrap() > 0);
        assert_eq!(v["identity_holds"], true);
        assert!(
            std::fs::read_to_string(&junit)
                .unwrap()
                .contains("<testsuite")
        );
    }
}

#[test]
fn a_second_sigint_exits_at_once() {
    // A hung server keeps the drain waiting for 30 s; the second signal must not.
    let server = TestServer::start(common::serve_config(&["--freeze-after", "1"]));
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("wsbench"))
        .args([
            "run",
            "--url",
            &server.url,
            "-c",
            "1",
            "-d",
            "60s",
            "--drain",
            "30s",
            "--timeout",
            "60s",
        ])
        .args(["--progress", "off", "--reconnect", "off"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    signal(child.id(), libc::SIGINT);
    std::thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    signal(child.id(), libc::SIGINT);
    let status = child.wait_with_output().unwrap().status;
    assert_eq!(status.code(), Some(130));
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    server.stop();
}

#[test]
fn the_token_is_in_no_output_file_or_log_line() {
    const TOKEN: &str = "Zq9-hardening-token-7f7f-DO-NOT-PRINT";
    let (dir, _) = temp_path("x");
    let files =
        ["r.json", "j.xml", "r.html", "p.svg", "h.hlog", "stats.json"].map(|f| dir.path().join(f));

    // The server, with the token and full logging, in a process of its own.
    let (server, url) = common::spawn_serve(
        &[
            "-vv",
            "--token",
            TOKEN,
            "--stats-file",
            files[5].to_str().unwrap(),
        ],
        &[("RUST_LOG", "trace")],
    );

    let mut outputs = Vec::new();
    let run = wsbench()
        .env("WSBENCH_TOKEN", TOKEN)
        .env("RUST_LOG", "trace")
        .args([
            "run",
            "--url",
            &url,
            "-c",
            "2",
            "-n",
            "300",
            "--no-gate",
            "-vv",
            "--progress",
            "lines",
        ])
        .arg("--json")
        .arg(&files[0])
        .arg("--junit")
        .arg(&files[1])
        .arg("--html")
        .arg(&files[2])
        .arg("--plot")
        .arg(&files[3])
        .arg("--hdr-log")
        .arg(&files[4])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", out_str(&run.stdout));
    outputs.push(("run stdout", out_str(&run.stdout)));
    outputs.push(("run stderr", out_str(&run.stderr)));
    // A refused hello with a wrong token must not echo either token.
    let wrong = wsbench()
        .env("WSBENCH_TOKEN", format!("{TOKEN}-wrong"))
        .args(["run", "--url", &url, "-c", "1", "-d", "1s", "-vv"])
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(3));
    outputs.push(("wrong-token stdout", out_str(&wrong.stdout)));
    outputs.push(("wrong-token stderr", out_str(&wrong.stderr)));
    let show = wsbench()
        .env("WSBENCH_TOKEN", TOKEN)
        .args(["config", "show"])
        .output()
        .unwrap();
    outputs.push(("config show", out_str(&show.stdout)));

    let server_out = common::terminate(server);
    outputs.push(("server stderr", out_str(&server_out.stderr)));
    for f in &files {
        outputs.push((
            "file",
            std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display())),
        ));
    }
    for (name, text) in outputs {
        assert!(!text.contains(TOKEN), "the token leaked into {name}");
    }
}
