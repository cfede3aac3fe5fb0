//! Scale-out: three workers with one start time against one server, merged exactly; merge's
//! exit codes; the Kubernetes recipe parses and names what it must.

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, out_str, temp_path, wsbench};
use wsbench::result::file::decode_histogram;

/// Three workers started together against one server; returns their files and the server's
/// counters.
fn three_workers(
    dir: &std::path::Path,
) -> (Vec<std::path::PathBuf>, wsbench::serve::StatsSnapshot) {
    let server = TestServer::start(Default::default());
    let start = humantime::format_rfc3339_millis(
        std::time::SystemTime::now() + Duration::from_millis(1500),
    )
    .to_string();
    let files: Vec<_> = (0..3).map(|i| dir.join(format!("w{i}.json"))).collect();
    let children: Vec<_> = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            std::process::Command::new(assert_cmd::cargo::cargo_bin("wsbench"))
                .args([
                    "run",
                    "--url",
                    &server.url,
                    "-c",
                    "3",
                    "-d",
                    "1500ms",
                    "--start-at",
                    &start,
                ])
                .args([
                    "--worker-id",
                    &format!("w{i}"),
                    "--no-gate",
                    "--progress",
                    "off",
                    "--output",
                    "quiet",
                    "--json",
                ])
                .arg(f)
                .env_remove("WSBENCH_TOKEN")
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    (files, server.stop())
}

#[test]
fn merged_results_equal_the_sum_of_the_workers_and_the_servers_counters() {
    let (dir, merged) = temp_path("merged.json");
    let (files, stats) = three_workers(dir.path());
    let out = wsbench()
        .arg("merge")
        .args(&files)
        .args(["--no-gate", "--json"])
        .arg(&merged)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", out_str(&out.stderr));
    let workers: Vec<_> = files.iter().map(|f| common::read_json(f)).collect();
    let m = common::read_json(&merged);
    let sum = |key: &str| {
        workers
            .iter()
            .map(|w| w["counts"][key].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!(m["counts"]["sent"].as_u64().unwrap(), sum("sent"));
    assert_eq!(m["counts"]["succeeded"].as_u64().unwrap(), sum("succeeded"));
    assert_eq!(
        m["counts"]["sent"].as_u64().unwrap(),
        stats.call_tool,
        "the server saw exactly that"
    );
    assert_eq!(m["counts"]["succeeded"].as_u64().unwrap(), stats.results_ok);
    assert_eq!(
        stats.replays, 0,
        "request ids never collided across workers"
    );

    // The merged histogram is the three added, not an average of percentiles.
    let mut added = wsbench::stats::recorder::new_histogram();
    for w in &workers {
        added
            .add(decode_histogram(w["histograms"]["latency"].as_str().unwrap()).unwrap())
            .unwrap();
    }
    let merged_hist = decode_histogram(m["histograms"]["latency"].as_str().unwrap()).unwrap();
    assert_eq!(merged_hist.len(), sum("succeeded"));
    assert_eq!(merged_hist.len(), added.len());
    assert_eq!(
        m["latency_ms"]["p99"].as_f64().unwrap(),
        added.value_at_quantile(0.99) as f64 / 1e3
    );

    // Timelines aligned on wall-clock seconds: the same seconds, summed.
    let timeline_sum: u64 = m["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["succeeded"].as_u64().unwrap())
        .sum();
    assert_eq!(timeline_sum, sum("succeeded"));
    let rows = m["workers"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for row in rows {
        assert!(
            row["start_offset_ms"].as_f64().unwrap() < 500.0,
            "the shared start held: {row}"
        );
    }
    assert!(out_str(&out.stdout).contains("Workers"));
}

#[test]
fn merge_exits_like_run_and_names_a_damaged_file() {
    let (dir, _) = temp_path("x");
    let (files, _) = three_workers(dir.path());
    let fail = wsbench()
        .arg("merge")
        .args(&files)
        .args(["--max-p99", "1us", "--min-rps", "1"])
        .output()
        .unwrap();
    assert_eq!(fail.status.code(), Some(1), "{}", out_str(&fail.stdout));

    let text = std::fs::read_to_string(&files[0]).unwrap();
    let truncated = dir.path().join("truncated.json");
    std::fs::write(&truncated, &text[..text.len() / 2]).unwrap();
    let out = wsbench()
        .arg("merge")
        .arg(&files[1])
        .arg(&truncated)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = out_str(&out.stderr);
    assert!(
        err.contains("truncated.json") && err.contains("damaged or truncated"),
        "{err}"
    );

    let future = dir.path().join("future.json");
    std::fs::write(
        &future,
        text.replacen("\"schema_version\": 1", "\"schema_version\": 99", 1),
    )
    .unwrap();
    let out = wsbench().arg("merge").arg(&future).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out_str(&out.stderr).contains("schema_version 99"),
        "{}",
        out_str(&out.stderr)
    );
}

#[test]
fn merging_a_hundred_files_is_quick() {
    let (dir, _) = temp_path("x");
    let (files, _) = three_workers(dir.path());
    let one = common::read_json(&files[0]);
    // A hundred workers of one run: the same figures under distinct worker ids (the same
    // worker twice would be refused).
    let many: Vec<_> = (0..100)
        .map(|i| {
            let mut v = one.clone();
            v["worker_id"] = format!("w{i}").into();
            let p = dir.path().join(format!("copy{i}.json"));
            std::fs::write(&p, v.to_string()).unwrap();
            p
        })
        .collect();
    let t0 = Instant::now();
    let out = wsbench()
        .arg("merge")
        .args(&many)
        .args(["--no-gate", "--output", "quiet"])
        .output()
        .unwrap();
    let elapsed = t0.elapsed();
    assert_eq!(out.status.code(), Some(0));
    // Well under a second in release; a debug build and a noisy machine get slack.
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[test]
fn the_kubernetes_job_parses_and_names_image_args_and_index() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes");
    let text = std::fs::read_to_string(root.join("job.yaml")).unwrap();
    let docs = yaml_rust2::YamlLoader::load_from_str(&text).expect("job.yaml is YAML");
    let job = &docs[0];
    assert_eq!(job["kind"].as_str(), Some("Job"));
    assert_eq!(job["spec"]["completionMode"].as_str(), Some("Indexed"));
    assert_eq!(
        job["spec"]["completions"].as_i64(),
        job["spec"]["parallelism"].as_i64()
    );
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    assert!(container["image"].as_str().is_some_and(|i| !i.is_empty()));
    let args = container["args"][0].as_str().unwrap();
    for needle in [
        "wsbench run",
        "--start-at",
        "JOB_COMPLETION_INDEX",
        "--json",
        "wsbench result begin",
    ] {
        assert!(args.contains(needle), "args lack {needle}");
    }
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    for step in [
        "kubectl apply",
        "collect.sh",
        "wsbench merge",
        "ephemeral ports",
        "file descriptors",
    ] {
        assert!(readme.contains(step), "README lacks {step}");
    }
    let syntax = std::process::Command::new("bash")
        .arg("-n")
        .arg(root.join("collect.sh"))
        .status()
        .unwrap();
    assert!(syntax.success());
}
