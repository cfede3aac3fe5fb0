//! The layers' dependency directions, read from the source: which top-level modules each
//! module's code names through `crate::`. Every module is in the table below with what it may
//! name; `app` (the commands) and `config` (which depends on the settings types of the layers it
//! configures, never the reverse) may name anything, and nothing names `app`. No circle, checked
//! apart. Test modules (`#[cfg(test)]`) are not counted. Also: no file over 600 lines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module -> the top-level modules its non-test code refers to.
fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(&src).unwrap();
            let first = rel.components().next().unwrap().as_os_str();
            let top = first.to_string_lossy().trim_end_matches(".rs").to_owned();
            if top == "main" || top == "lib" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            let to = edges.entry(top.clone()).or_default();
            for (i, _) in code.match_indices("crate::") {
                let name: String = code[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if !name.is_empty() && name != top {
                    to.insert(name);
                }
            }
        }
    }
    edges
}

#[test]
fn the_finished_layers_depend_only_downwards() {
    let edges = edges();
    // layer -> what it may name. Leaves name nothing of the crate.
    let allowed: &[(&str, &[&str])] = &[
        ("model", &[]),
        ("protocol", &[]),
        ("wsio", &[]),
        ("units", &[]),
        ("outcome", &[]),
        ("error", &[]),
        ("signal", &[]),
        ("files", &[]),
        ("net", &[]),
        ("resources", &["error"]),
        ("stats", &["model", "units"]),
        ("gate", &["model", "outcome", "stats", "units"]),
        // The engine: no configuration, gate, output, merge or server.
        (
            "run",
            &[
                "model",
                "net",
                "protocol",
                "resources",
                "stats",
                "units",
                "wsio",
            ],
        ),
        ("progress", &["run", "stats", "units"]),
        // The text forms of settings, used by the flags (cli) and by config alike.
        ("values", &["progress", "protocol", "report", "units"]),
        ("result", &["gate", "model", "outcome", "stats"]),
        (
            "report",
            &[
                "files", "gate", "model", "outcome", "result", "stats", "units",
            ],
        ),
        // Live metrics: a metric model filled from the recorders' view and the server's counters.
        ("live", &["error", "model", "stats"]),
        (
            "serve",
            &[
                "error",
                "files",
                "live",
                "model",
                "net",
                "outcome",
                "protocol",
                "resources",
                "signal",
                "wsio",
            ],
        ),
    ];
    // What the check saw, for the record (`cargo test --test layers -- --nocapture`).
    for (from, to) in &edges {
        println!(
            "{from:>9} -> {}",
            to.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    let unlisted: Vec<&String> = edges
        .keys()
        .filter(|m| !["app", "cli", "config"].contains(&m.as_str()))
        .filter(|m| !allowed.iter().any(|(l, _)| l == m))
        .collect();
    assert!(unlisted.is_empty(), "modules without a row: {unlisted:?}");
    let mut wrong = Vec::new();
    for (layer, may) in allowed {
        let uses = edges
            .get(*layer)
            .unwrap_or_else(|| panic!("no module {layer}"));
        for used in uses {
            if !may.contains(&used.as_str()) {
                wrong.push(format!("{layer} -> {used}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "layers reaching upwards: {wrong:?}\nall edges: {edges:#?}"
    );
}

/// A circle in the module graph, if there is one (depth-first search for a back edge).
fn find_circle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit<'a>(
        at: &'a str,
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<&'a str, bool>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        state.insert(at, false);
        path.push(at);
        for next in edges.get(at).into_iter().flatten() {
            match state.get(next.as_str()) {
                Some(false) => {
                    let from = path.iter().position(|p| *p == next).unwrap_or(0);
                    let mut circle: Vec<String> =
                        path[from..].iter().map(|s| s.to_string()).collect();
                    circle.push(next.clone());
                    return Some(circle);
                }
                Some(true) => {}
                None => {
                    if let Some(c) = visit(next, edges, state, path) {
                        return Some(c);
                    }
                }
            }
        }
        state.insert(at, true);
        path.pop();
        None
    }
    let mut state = BTreeMap::new();
    for start in edges.keys() {
        if !state.contains_key(start.as_str())
            && let Some(c) = visit(start, edges, &mut state, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

#[test]
fn no_module_depends_on_itself_through_others() {
    let edges = edges();
    assert_eq!(find_circle(&edges), None, "an import circle");
    assert!(
        edges.values().all(|to| !to.contains("app")),
        "nothing depends on the commands"
    );
    // The search finds a circle where there is one.
    let mut circular: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, to) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")] {
        circular.entry(from.into()).or_default().insert(to.into());
    }
    assert_eq!(
        find_circle(&circular),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}

#[test]
fn the_check_sees_real_edges() {
    // A check that found nothing would pass anything.
    let edges = edges();
    assert!(edges["run"].contains("model") && edges["stats"].contains("model"));
}

#[test]
fn no_source_file_grows_past_600_lines() {
    // Past that a file holds more than one concern; split it by concern (ARCHITECTURE.md).
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![src];
    let mut long = Vec::new();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let lines = std::fs::read_to_string(&path).unwrap().lines().count();
                if lines > 600 {
                    long.push(format!("{}: {lines}", path.display()));
                }
            }
        }
    }
    assert!(long.is_empty(), "{long:?}");
}
