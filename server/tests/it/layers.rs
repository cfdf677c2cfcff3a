//! The server's layers, checked from its source: each top-level module uses only the layers
//! below it, and the serving core's modules import each other without cycles.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module → the modules it may use.
const ALLOWED: &[(&str, &[&str])] = &[
    ("telemetry", &[]),
    ("backend", &[]),
    ("config", &["backend"]),
    ("core", &["backend", "config", "telemetry"]),
    ("control", &["core", "backend", "config", "telemetry"]),
    ("http", &["core", "control", "config", "telemetry"]),
];

fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push((
                p.display().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            ));
        }
    }
}

/// Identifiers following `prefix` in `text` (e.g. `crate::` → `core`).
fn after<'a>(text: &'a str, prefix: &str) -> BTreeSet<&'a str> {
    text.match_indices(prefix)
        .map(|(i, _)| {
            let rest = &text[i + prefix.len()..];
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .filter(|s| !s.is_empty())
        .collect()
}

/// Code only: comments and doc links may name anything.
fn code(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn top_level_modules_use_only_the_layers_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for (layer, allowed) in ALLOWED {
        let mut files = Vec::new();
        let dir = src.join(layer);
        if dir.is_dir() {
            sources(&dir, &mut files);
        } else {
            let f = src.join(format!("{layer}.rs"));
            files.push((
                f.display().to_string(),
                std::fs::read_to_string(&f).unwrap(),
            ));
        }
        for (path, text) in files {
            for used in after(&code(&text), "crate::") {
                assert!(
                    used == *layer || allowed.contains(&used),
                    "{path} uses crate::{used}; layer {layer} may use only {allowed:?}"
                );
            }
        }
    }
}

#[test]
fn serving_core_modules_have_no_import_cycles() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core");
    let mut files = Vec::new();
    sources(&dir, &mut files);
    let module = |path: &str| {
        let stem = Path::new(path)
            .file_stem()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        if stem == "mod" {
            "core".to_string()
        } else {
            stem
        }
    };
    let names: BTreeSet<String> = files.iter().map(|(p, _)| module(p)).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, text) in &files {
        let from = module(path);
        let text = code(text);
        let mut to: BTreeSet<String> = BTreeSet::new();
        if from == "core" {
            to.extend(after(&text, "mod ").into_iter().map(str::to_string));
        } else {
            // `super::x` is sibling `x` when x is a module, else an item of core/mod.rs.
            for s in after(&text, "super::")
                .into_iter()
                .chain(after(&text, "crate::core::"))
            {
                to.insert(if names.contains(s) {
                    s.to_string()
                } else {
                    "core".into()
                });
            }
        }
        to.remove(&from);
        edges.insert(from, to);
    }
    // Depth-first search for a back edge.
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(n) {
            return;
        }
        assert!(!path.iter().any(|p| p == n), "import cycle: {path:?} → {n}");
        path.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            visit(m, edges, path, done);
        }
        path.pop();
        done.insert(n.to_string());
    }
    let mut done = BTreeSet::new();
    for n in edges.keys() {
        visit(n, &edges, &mut Vec::new(), &mut done);
    }
    assert!(edges["core"].contains("batcher"), "{edges:?}");
}
