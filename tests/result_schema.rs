//! The result file's contract: `schema/result.v1.json` is what the one serde type
//! (`result::file::ResultDocument`) generates, and every file `run`, `merge` and `capacity`
//! write validates against it and reads back into the type without losing a key.
//! `WSBENCH_WRITE_SCHEMA=1 cargo test --test result_schema` rewrites the committed schema.

mod common;

use std::path::{Path, PathBuf};

use common::{closed_port, out_str, wsbench};
use wsbench::result::file::ResultDocument;

fn committed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/result.v1.json")
}

#[test]
fn the_committed_schema_is_the_one_the_type_generates() {
    let mut generated = serde_json::to_string_pretty(&ResultDocument::schema()).unwrap();
    generated.push('\n');
    if std::env::var_os("WSBENCH_WRITE_SCHEMA").is_some() {
        std::fs::write(committed(), &generated).unwrap();
    }
    let on_disk = std::fs::read_to_string(committed()).unwrap_or_default();
    assert!(
        on_disk == generated,
        "schema/result.v1.json is stale: run `WSBENCH_WRITE_SCHEMA=1 cargo test --test result_schema`"
    );
}

/// Runs wsbench and returns the JSON it wrote to `path`.
fn written(args: &[&str], path: &Path) -> serde_json::Value {
    let out = wsbench()
        .args(args)
        .arg("--json")
        .arg(path)
        .timeout(std::time::Duration::from_secs(90))
        .output()
        .unwrap();
    assert!(
        path.exists(),
        "{args:?} wrote no result (exit {:?})\n{}",
        out.status.code(),
        out_str(&out.stderr)
    );
    common::read_json(path)
}

#[test]
fn every_result_written_validates_and_round_trips() {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(committed()).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| dir.path().join(name);
    let profile = at("faults.toml");
    // Errors, corrupt replies and duplicates fill the maps and blocks a clean run leaves empty.
    std::fs::write(
        &profile,
        "[serve]\nerror_rate = 0.05\nduplicate_rate = 0.02\n",
    )
    .unwrap();
    let p = profile.to_str().unwrap();
    let (a, b, m, c, down) = (
        at("a.json"),
        at("b.json"),
        at("m.json"),
        at("c.json"),
        at("down.json"),
    );
    let mut files = vec![(
        "run, closed loop",
        written(
            &[
                "run",
                "--embedded",
                "--config",
                p,
                "-d",
                "1s",
                "-c",
                "2",
                "--worker-id",
                "a",
            ],
            &a,
        ),
    )];
    files.push((
        "run, open loop, with a baseline",
        written(
            &[
                "run",
                "--embedded",
                "-d",
                "1s",
                "-c",
                "2",
                "--rate",
                "400",
                "--worker-id",
                "b",
                "--baseline",
                a.to_str().unwrap(),
                "--max-regress",
                "p99=+1000%",
            ],
            &b,
        ),
    ));
    files.push((
        "merge",
        written(
            &[
                "merge",
                a.to_str().unwrap(),
                b.to_str().unwrap(),
                "--allow-disjoint",
            ],
            &m,
        ),
    ));
    files.push((
        "capacity",
        written(
            &[
                "capacity",
                "--embedded",
                "-c",
                "2",
                "--min-rate",
                "200",
                "--max-rate",
                "400",
                "--step-duration",
                "600ms",
                "--step-warmup",
                "100ms",
                "--precision",
                "50%",
            ],
            &c,
        ),
    ));
    let url = format!("ws://127.0.0.1:{}", closed_port());
    files.push((
        "run that could not run",
        written(&["run", "--url", &url, "-d", "1s", "-c", "1"], &down),
    ));
    assert_eq!(files[1].1["baseline"]["rows"][0]["metric"], "p99");
    assert!(
        files[2].1["workers"]
            .as_array()
            .is_some_and(|w| w.len() == 2)
    );
    assert_eq!(files[3].1["kind"], "capacity");
    assert_eq!(files[4].1["verdict"], "could_not_run");

    for (what, value) in &files {
        let errors: Vec<String> = validator
            .iter_errors(value)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{what}: {errors:#?}");
        let typed: ResultDocument = serde_json::from_value(value.clone())
            .unwrap_or_else(|e| panic!("{what}: does not read back: {e}"));
        let again = serde_json::to_value(&typed).unwrap();
        assert_eq!(&again, value, "{what}: the type lost or changed a key");
    }

    // The schema is not vacuous: a run file without its counts, or with a verdict nobody
    // writes, fails it.
    let mut broken = files[0].1.clone();
    broken.as_object_mut().unwrap().remove("counts");
    assert!(!validator.is_valid(&broken));
    let mut broken = files[0].1.clone();
    broken["verdict"] = "maybe".into();
    assert!(!validator.is_valid(&broken));
}
