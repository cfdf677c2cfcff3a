//! The three example credit models run in both runtimes and publish verifiable versions.

use vane_models::credit::{self, N_FEATURES};
use vane_models::onnx::OUTPUT;
use vane_models::{Model, TreeNode};
use vane_registry::{DirRegistry, VersionRef};

use crate::runtimes::{BATCHES, Loaded, assert_runtimes_match};

/// Sample rows plus, for tree models, rows that sit exactly on root thresholds.
fn rows_for(model: &Model, n: usize, seed: u64) -> Vec<f32> {
    let mut rows = credit::sample_rows(n, seed);
    if let Model::TreeEnsemble(m) = model {
        for (i, row) in rows.chunks_exact_mut(N_FEATURES).enumerate().skip(1) {
            if let TreeNode::Split {
                feature, threshold, ..
            } = m.trees[i % m.trees.len()].nodes[0]
            {
                row[feature] = threshold;
            }
        }
    }
    rows
}

#[test]
fn example_models_match_oracle_in_both_runtimes() {
    for ex in credit::example_models() {
        let mut loaded = Loaded::new(&ex.model.to_onnx(), N_FEATURES);
        for (k, n) in BATCHES.into_iter().enumerate() {
            let rows = rows_for(&ex.model, n, 500 + k as u64);
            let expected = ex.model.predict(&rows, N_FEATURES);
            let what = format!("{} batch {n}", ex.name);
            assert_runtimes_match(&what, &mut loaded, &rows, OUTPUT, 1, &expected);
        }
    }
}

#[test]
fn example_models_give_spread_out_predictions_in_both_runtimes() {
    let rows = credit::sample_rows(500, 99);
    for ex in credit::example_models() {
        let mut loaded = Loaded::new(&ex.model.to_onnx(), N_FEATURES);
        let mut outputs = vec![("tract", loaded.tract(&rows).1)];
        if let Some((_, p)) = loaded.ort(&rows, OUTPUT) {
            outputs.push(("onnxruntime", p));
        }
        for (runtime, p) in outputs {
            let n = p.len() as f32;
            let mean = p.iter().sum::<f32>() / n;
            let sd = (p.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n).sqrt();
            let min = p.iter().copied().fold(1.0, f32::min);
            let max = p.iter().copied().fold(0.0, f32::max);
            let what = format!(
                "{} in {runtime}: mean {mean} sd {sd} min {min} max {max}",
                ex.name
            );
            assert!(sd > 0.05 && min < 0.03 && max > 0.5, "{what}");
            assert!((0.05..0.3).contains(&mean), "{what}");
        }
    }
}

#[test]
fn write_example_registry_publishes_verifiable_champions() {
    let tmp = tempfile::tempdir().unwrap();
    let published = credit::write_example_registry(tmp.path()).unwrap();
    let names: Vec<&str> = published.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["credit-risk", "credit-risk-mlp", "credit-risk-gbdt"]
    );
    let reg = DirRegistry::open(tmp.path()).unwrap();
    for ((name, version), ex) in published.iter().zip(credit::example_models()) {
        assert_eq!(*version, 1);
        let v = reg.fetch(name, *version).unwrap();
        // Publish completed the trainer's feature signature with the graph's.
        let graph = v
            .signature
            .graph
            .clone()
            .expect("graph read from model.onnx");
        assert_eq!(graph.inputs[0].shape, [-1, credit::N_FEATURES as i64]);
        assert_eq!(
            vane_registry::Signature {
                graph: None,
                ..v.signature
            },
            credit::signature()
        );
        assert_eq!(v.model_bytes, ex.model.to_onnx());
        assert_eq!(v.manifest.lineage["model_kind"], ex.model.kind());
        assert!(v.manifest.metrics["mean_probability"].as_f64().unwrap() > 0.0);
        assert_eq!(reg.aliases(name).unwrap().get("champion"), Some(version));
        let champion = reg
            .fetch_ref(name, &VersionRef::Alias("champion".into()))
            .unwrap();
        assert_eq!(champion.version, *version);
    }
    // Publishing again adds versions and moves the alias.
    let again = credit::write_example_registry(tmp.path()).unwrap();
    for (name, version) in &again {
        assert_eq!(*version, 2);
        assert_eq!(reg.aliases(name).unwrap()["champion"], 2);
    }
}

#[test]
fn example_registry_bytes_are_identical_across_runs() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    credit::write_example_registry(a.path()).unwrap();
    credit::write_example_registry(b.path()).unwrap();
    for name in ["credit-risk", "credit-risk-mlp", "credit-risk-gbdt"] {
        for file in ["model.onnx", "signature.json"] {
            let path = format!("{name}/versions/1/{file}");
            let x = std::fs::read(a.path().join(&path)).unwrap();
            let y = std::fs::read(b.path().join(&path)).unwrap();
            assert!(x == y, "{path} differs between runs");
        }
    }
}
