//! Install and CI delivery, checked where they cannot run: the workflows' and the Action's
//! structure (names, triggers, the release's targets and checksums, the Action's steps), every
//! shell step parses (`bash -n`), and the Action's own scripts run here for real: the checksum
//! step against a good and a tampered tarball, and the run, summary and fail steps around a
//! real `wsbench run` whose gate fails. The container recipe's shape too.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn load(rel: &str) -> Yaml {
    let text = std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    YamlLoader::load_from_str(&text)
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
        .remove(0)
}

fn steps(job: &Yaml) -> &Vec<Yaml> {
    job["steps"].as_vec().expect("steps")
}

fn named<'a>(steps: &'a [Yaml], name: &str) -> &'a Yaml {
    steps
        .iter()
        .find(|s| s["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no step named {name:?}"))
}

fn script(step: &Yaml) -> String {
    step["run"].as_str().expect("a run script").to_owned()
}

/// Every `run:` script of a document, anywhere in it.
fn scripts(doc: &Yaml, out: &mut Vec<String>) {
    match doc {
        Yaml::Hash(h) => {
            for (k, v) in h {
                if k.as_str() == Some("run")
                    && let Some(s) = v.as_str()
                {
                    out.push(s.to_owned());
                }
                scripts(v, out);
            }
        }
        Yaml::Array(a) => a.iter().for_each(|v| scripts(v, out)),
        _ => {}
    }
}

/// A script with GitHub's `${{ … }}` expressions replaced as the runner would, by `with`.
fn expand(script: &str, with: &[(&str, &str)]) -> String {
    let mut s = script.to_owned();
    while let Some(start) = s.find("${{") {
        let end = start + s[start..].find("}}").expect("closed expression") + 2;
        let expr = s[start + 3..end - 2].trim().to_owned();
        let value = with
            .iter()
            .find(|(k, _)| *k == expr)
            .map_or("X", |(_, v)| v);
        s.replace_range(start..end, value);
    }
    s
}

fn bash(script: &str, envs: &[(&str, &str)]) -> std::process::Output {
    Command::new("bash")
        .args(["-e", "-c", script])
        .envs(envs.iter().copied())
        .output()
        .expect("bash")
}

#[test]
fn every_shell_step_parses() {
    for rel in [
        ".github/workflows/ci.yml",
        ".github/workflows/release.yml",
        "action.yml",
    ] {
        let mut all = Vec::new();
        scripts(&load(rel), &mut all);
        assert!(!all.is_empty(), "{rel}");
        for s in all {
            let out = Command::new("bash")
                .args(["-n", "-c", &expand(&s, &[])])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{rel}: {s}\n{}",
                common::out_str(&out.stderr)
            );
        }
    }
}

#[test]
fn ci_runs_the_repositorys_one_check() {
    let ci = load(".github/workflows/ci.yml");
    assert_eq!(ci["name"].as_str(), Some("ci"));
    assert!(!ci["on"]["pull_request"].is_badvalue());
    assert!(!ci["on"]["push"].is_badvalue());
    let job = &ci["jobs"]["test"];
    assert!(
        steps(job)
            .iter()
            .any(|s| s["run"].as_str() == Some("bash .ci/run")),
        "the CI workflow runs .ci/run"
    );
    assert!(
        steps(job).iter().any(|s| s["uses"]
            .as_str()
            .is_some_and(|u| u.starts_with("actions/setup-node"))),
        "node for the interop tests' npm ci"
    );
}

const TARGETS: [&str; 4] = [
    "x86_64-unknown-linux-musl",
    "aarch64-unknown-linux-musl",
    "x86_64-apple-darwin",
    "aarch64-apple-darwin",
];

#[test]
fn the_release_builds_every_target_with_a_checksum_the_action_can_find() {
    let release = load(".github/workflows/release.yml");
    let tags = release["on"]["push"]["tags"].as_vec().expect("tag trigger");
    assert_eq!(tags[0].as_str(), Some("v*"));
    let build = &release["jobs"]["build"];
    let targets: Vec<&str> = build["strategy"]["matrix"]["include"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|t| t["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets, TARGETS);
    let package = script(named(steps(build), "Package and checksum"));
    assert!(package.contains("sha256sum \"$name.tar.gz\" > \"$name.tar.gz.sha256\""));
    assert!(package.contains("name=wsbench-${{ matrix.target }}"));
    let publish = &release["jobs"]["publish"];
    assert!(
        script(named(
            steps(publish),
            "Verify every checksum before publishing"
        ))
        .contains("sha256sum -c")
    );
    let files = steps(publish)
        .iter()
        .find_map(|s| s["with"]["files"].as_str())
        .expect("release files");
    assert!(files.contains("*.tar.gz") && files.contains("*.sha256"));

    // The Action maps each runner to one of these targets and downloads those names.
    let action = load("action.yml");
    let pick = script(named(
        steps(&action["runs"]),
        "Pick the release asset for this runner",
    ));
    for t in TARGETS {
        assert!(pick.contains(&format!("target={t}")), "{t}");
    }
    assert!(pick.contains("url=$base/wsbench-$target.tar.gz"));
}

#[test]
fn the_action_is_composite_with_the_promised_steps() {
    let action = load("action.yml");
    assert_eq!(action["runs"]["using"].as_str(), Some("composite"));
    assert_eq!(action["inputs"]["args"]["required"].as_bool(), Some(true));
    let names: Vec<&str> = steps(&action["runs"])
        .iter()
        .map(|s| s["name"].as_str().expect("every step named"))
        .collect();
    assert_eq!(
        names,
        [
            "Pick the release asset for this runner",
            "Download wsbench",
            "Verify the SHA-256 checksum",
            "Run wsbench",
            "Job summary",
            "Upload the reports",
            "Fail the job unless the gate passed",
        ]
    );
    let upload = named(steps(&action["runs"]), "Upload the reports");
    assert!(
        upload["uses"]
            .as_str()
            .unwrap()
            .starts_with("actions/upload-artifact")
    );
    assert_eq!(upload["if"].as_str(), Some("always()"));
    assert_eq!(
        named(steps(&action["runs"]), "Job summary")["if"].as_str(),
        Some("always()")
    );
}

#[test]
fn the_actions_checksum_step_accepts_the_release_and_refuses_a_tampered_one() {
    let action = load("action.yml");
    let verify = script(named(steps(&action["runs"]), "Verify the SHA-256 checksum"));
    let dir = tempfile::tempdir().unwrap();
    let temp = dir.path().to_str().unwrap();
    let name = "wsbench-x86_64-unknown-linux-musl";
    // A release tarball made as release.yml makes it.
    std::fs::create_dir_all(dir.path().join("pkg").join(name)).unwrap();
    std::fs::copy(
        assert_cmd::cargo::cargo_bin("wsbench"),
        dir.path().join("pkg").join(name).join("wsbench"),
    )
    .unwrap();
    let make = format!(
        "cd {temp} && tar -C pkg -czf {name}.tar.gz {name} && sha256sum {name}.tar.gz > {name}.tar.gz.sha256"
    );
    assert!(bash(&make, &[]).status.success());
    let path_file = dir.path().join("github_path");
    let env = [
        ("NAME", name),
        ("RUNNER_TEMP", temp),
        ("GITHUB_PATH", path_file.to_str().unwrap()),
    ];
    let script = format!("cd {temp}\n{verify}");
    let ok = bash(&script, &env);
    assert!(ok.status.success(), "{}", common::out_str(&ok.stderr));
    let added = std::fs::read_to_string(&path_file).unwrap();
    assert_eq!(added.trim(), format!("{temp}/{name}"));
    assert!(Path::new(added.trim()).join("wsbench").exists());

    // One byte changed: the step fails before anything is unpacked or put on the PATH.
    std::fs::remove_dir_all(dir.path().join(name)).unwrap();
    std::fs::write(&path_file, "").unwrap();
    let tarball = dir.path().join(format!("{name}.tar.gz"));
    let mut bytes = std::fs::read(&tarball).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&tarball, bytes).unwrap();
    let bad = bash(&script, &env);
    assert!(!bad.status.success());
    assert!(!dir.path().join(name).exists());
    assert_eq!(std::fs::read_to_string(&path_file).unwrap(), "");
}

#[test]
fn the_actions_run_summary_and_fail_steps_report_a_failed_gate() {
    let action = load("action.yml");
    let steps = steps(&action["runs"]);
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("wsbench-report");
    let (output, summary) = (dir.path().join("output"), dir.path().join("summary.md"));
    let bin_dir = assert_cmd::cargo::cargo_bin("wsbench")
        .parent()
        .unwrap()
        .to_owned();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let args = "--embedded -d 1s -c 2 --threshold 'p99<1us' --threshold 'rps>=1'";
    let run = expand(
        &script(named(steps, "Run wsbench")),
        &[("inputs.args", args)],
    );
    let env = [
        ("OUT", out_dir.to_str().unwrap()),
        ("GITHUB_OUTPUT", output.to_str().unwrap()),
        ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap()),
        ("PATH", path.as_str()),
        ("WSBENCH_TOKEN", ""),
    ];
    let r = bash(&run, &env);
    assert!(r.status.success(), "the run step itself never fails: {r:?}");
    let outputs = std::fs::read_to_string(&output).unwrap();
    assert!(outputs.contains("exit-code=1\n"), "{outputs}");
    for file in ["result.json", "junit.xml", "report.html", "summary.md"] {
        assert!(out_dir.join(file).exists(), "{file}");
    }
    let code_env = [env.to_vec(), vec![("CODE", "1")]].concat();
    let s = bash(&script(named(steps, "Job summary")), &code_env);
    assert!(s.status.success());
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(
        md.contains("p99"),
        "the Markdown report in the summary: {md}"
    );
    let fail = bash(
        &script(named(steps, "Fail the job unless the gate passed")),
        &code_env,
    );
    assert_eq!(fail.status.code(), Some(1));
    let said = common::out_str(&fail.stdout);
    assert!(
        said.contains("::error title=wsbench: threshold failed::"),
        "{said}"
    );
    if Command::new("jq").arg("--version").output().is_ok() {
        assert!(said.contains("p99 < 0.001 ms, measured"), "{said}");
    }

    // A bad invocation (exit 2) writes no report: the summary quotes wsbench's one line.
    std::fs::write(&summary, "").unwrap();
    let bad = expand(
        &script(named(steps, "Run wsbench")),
        &[("inputs.args", "--embedded --conns 0")],
    );
    let _ = std::fs::remove_dir_all(&out_dir);
    assert!(bash(&bad, &env).status.success());
    assert!(
        std::fs::read_to_string(&output)
            .unwrap()
            .contains("exit-code=2\n")
    );
    let env2 = [env.to_vec(), vec![("CODE", "2")]].concat();
    assert!(
        bash(&script(named(steps, "Job summary")), &env2)
            .status
            .success()
    );
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(
        md.contains("exit 2, no report") && md.contains("--conns"),
        "{md}"
    );
    let fail = bash(
        &script(named(steps, "Fail the job unless the gate passed")),
        &env2,
    );
    assert_eq!(fail.status.code(), Some(1));
    assert!(common::out_str(&fail.stdout).contains("bad usage"));
}

#[test]
fn the_container_is_multi_stage_small_and_used_by_the_kubernetes_recipe() {
    let dockerfile = std::fs::read_to_string(root().join("deploy/Dockerfile")).unwrap();
    let froms: Vec<&str> = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(froms.len(), 2, "build stage, runtime stage: {froms:?}");
    assert!(froms[0].ends_with(" AS build"));
    assert!(froms[1].contains("alpine"), "a small runtime: {}", froms[1]);
    assert!(dockerfile.contains("COPY --from=build"));
    assert!(!dockerfile.contains("COPY . ."), "no whole-context copy");
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    for entry in ["target/", ".git/", "tests/"] {
        assert!(ignore.lines().any(|l| l == entry), "{entry}");
    }
    let job = std::fs::read_to_string(root().join("deploy/kubernetes/job.yaml")).unwrap();
    assert!(job.contains("deploy/Dockerfile"));
    let doc = &YamlLoader::load_from_str(&job).unwrap()[0];
    let container = &doc["spec"]["template"]["spec"]["containers"][0];
    assert!(
        container["image"]
            .as_str()
            .unwrap()
            .ends_with("/wsbench:0.1.0")
    );
    // The image has the shell the job's command runs in.
    assert_eq!(container["command"][0].as_str(), Some("/bin/sh"));
}

/// A stand-in `kubectl` for collect.sh: the Job's state and pods come from files in its
/// directory (`state`, `codes`, `logs/<pod>`).
fn fake_kubectl(dir: &Path) {
    let script = format!(
        r#"#!/usr/bin/env bash
d="{d}"
case "$1 $2" in
  "get job/"*) cat "$d/state" ;;
  "get pods")
    if [ "${{6:-}}" = "name" ]; then for p in "$d"/logs/*; do echo "pod/$(basename "$p")"; done
    else cat "$d/codes"; fi ;;
  "logs pod/"*) cat "$d/logs/${{2#pod/}}" ;;
  *) echo "unexpected kubectl $*" >&2; exit 9 ;;
esac
"#,
        d = dir.display()
    );
    let path = dir.join("kubectl");
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(dir.join("logs")).unwrap();
}

fn collect(dir: &Path) -> std::process::Output {
    let bin_dir = assert_cmd::cargo::cargo_bin("wsbench")
        .parent()
        .unwrap()
        .to_owned();
    let path = format!(
        "{}:{}:{}",
        dir.display(),
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("bash")
        .arg(root().join("deploy/kubernetes/collect.sh"))
        .args([
            "wsbench",
            "--",
            "--no-gate",
            "--allow-disjoint",
            "--output",
            "quiet",
        ])
        .current_dir(dir)
        .env("PATH", path)
        .env("WSBENCH_COLLECT_TIMEOUT", "20")
        .output()
        .unwrap()
}

#[test]
fn collect_maps_a_failed_job_to_its_pods_codes_and_merges_a_complete_one() {
    let dir = tempfile::tempdir().unwrap();
    fake_kubectl(dir.path());
    // A pod whose wsbench could not run: the Job failed, the script says 3 at once.
    std::fs::write(dir.path().join("state"), "Failed").unwrap();
    std::fs::write(
        dir.path().join("codes"),
        "wsbench-0-abc 0\nwsbench-1-def 3\n",
    )
    .unwrap();
    let out = collect(dir.path());
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        common::out_str(&out.stderr)
    );
    assert!(common::out_str(&out.stderr).contains("wsbench-1-def 3"));
    // A misconfigured one: 2.
    std::fs::write(
        dir.path().join("codes"),
        "wsbench-0-abc 2\nwsbench-1-def 3\n",
    )
    .unwrap();
    assert_eq!(collect(dir.path()).status.code(), Some(2));

    // Complete: each pod's result is cut out of its log and merged.
    std::fs::write(dir.path().join("state"), "Complete").unwrap();
    for (i, pod) in ["wsbench-0-abc", "wsbench-1-def"].iter().enumerate() {
        let json = dir.path().join(format!("r{i}.json"));
        let run = common::wsbench()
            .args(["run", "--embedded", "-d", "1s", "-c", "2", "--no-gate"])
            .args(["--progress", "off", "--output", "quiet", "--worker-id"])
            .arg(format!("w{i}"))
            .arg("--json")
            .arg(&json)
            .output()
            .unwrap();
        assert!(run.status.success());
        let log = format!(
            "connecting\n----- wsbench result begin -----\n{}\n----- wsbench result end -----\n",
            std::fs::read_to_string(&json).unwrap()
        );
        std::fs::write(dir.path().join("logs").join(pod), log).unwrap();
    }
    let out = collect(dir.path());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        common::out_str(&out.stderr)
    );
    assert!(
        common::out_str(&out.stdout).starts_with("PASS"),
        "{}",
        common::out_str(&out.stdout)
    );

    // A log without a result: 3.
    std::fs::write(dir.path().join("logs/wsbench-1-def"), "OOMKilled\n").unwrap();
    assert_eq!(collect(dir.path()).status.code(), Some(3));
}
