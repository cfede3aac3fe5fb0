//! The profile contract: `schema/config.v1.json` is what `config::schema` generates from the
//! keys the resolver accepts and their flags, every shipped profile validates against it (and
//! loads), and a typo or a wrong type is caught by it as by the resolver.
//! `WSBENCH_WRITE_SCHEMA=1 cargo test --test config_schema` rewrites the committed schema.

mod common;

use std::path::{Path, PathBuf};

fn committed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/config.v1.json")
}

fn validator() -> jsonschema::Validator {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(committed()).unwrap()).unwrap();
    jsonschema::validator_for(&schema).expect("the schema compiles")
}

fn as_json(toml_text: &str) -> serde_json::Value {
    let table: toml::Table = toml::from_str(toml_text).expect("TOML");
    serde_json::to_value(table).unwrap()
}

#[test]
fn the_committed_config_schema_is_the_one_generated() {
    let mut generated = serde_json::to_string_pretty(&wsbench::config::schema::generate()).unwrap();
    generated.push('\n');
    if std::env::var_os("WSBENCH_WRITE_SCHEMA").is_some() {
        std::fs::write(committed(), &generated).unwrap();
    }
    let on_disk = std::fs::read_to_string(committed()).unwrap_or_default();
    assert!(
        on_disk == generated,
        "schema/config.v1.json is stale: run `WSBENCH_WRITE_SCHEMA=1 cargo test --test config_schema`"
    );
}

#[test]
fn every_shipped_profile_validates_and_loads() {
    let validator = validator();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&as_json(&text))
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
        // And the resolver takes it (config show resolves without running).
        let out = common::wsbench()
            .args(["config", "show", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            common::out_str(&out.stderr)
        );
        seen += 1;
    }
    assert!(seen >= 5, "the shipped profiles: {seen}");
}

#[test]
fn a_typo_or_a_wrong_type_fails_the_schema_as_it_fails_the_resolver() {
    let validator = validator();
    for bad in [
        "[run]\ncons = 64\n",
        "[run]\nconns = true\n",
        "[runn]\nconns = 64\n",
        "[[scenario.call]]\nweight = 2\n",
        "[[scenario.call]]\ntool = \"echo\"\nwieght = 2\n",
        "[thresholds]\ngate = \"yes\"\n",
    ] {
        assert!(!validator.is_valid(&as_json(bad)), "{bad}");
        let (_dir, path) = common::temp_path("bad.toml");
        std::fs::write(&path, bad).unwrap();
        let out = common::wsbench()
            .args(["run", "--embedded", "-d", "1s", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
    }
    let good = "[run]\nconns = 8\nduration = \"5s\"\nheaders = [\"X-A: 1\"]\n\n[[scenario.call]]\ntool = \"echo\"\nargs = { text = \"hi\" }\n";
    let errors: Vec<String> = validator
        .iter_errors(&as_json(good))
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}
