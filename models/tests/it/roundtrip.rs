//! Every builder's graph, run in tract and ONNX Runtime, equals its Rust oracle.

use vane_models::onnx::{FEATURES, OUTPUT};
use vane_models::rng::SplitMix64;
use vane_models::{
    Column, LogisticRegression, Mlp, Model, Preprocess, Tree, TreeEnsemble, TreeNode,
};

use crate::runtimes::{BATCHES, Loaded, assert_runtimes_match};

/// Random raw rows for `columns`: numeric values around their mean (wide), passthrough values
/// in [-10, 10), categorical codes with row 0 at code 0 and the last row at code K-1.
fn random_rows(columns: &[Column], n: usize, seed: u64) -> Vec<f32> {
    let mut r = SplitMix64::new(seed);
    let mut rows = Vec::with_capacity(n * columns.len());
    for i in 0..n {
        for c in columns {
            rows.push(match *c {
                Column::Numeric { mean, scale } => mean + scale * 2.0 * r.normal() as f32,
                Column::Passthrough => r.uniform(-10.0, 10.0) as f32,
                Column::Categorical { .. } if i == 0 => 0.0,
                Column::Categorical { cardinality } if i + 1 == n && n > 1 => {
                    (cardinality - 1) as f32
                }
                Column::Categorical { cardinality } => r.below(cardinality) as f32,
            });
        }
    }
    rows
}

fn mixed_columns() -> Vec<Column> {
    vec![
        Column::Numeric {
            mean: 52_000.0,
            scale: 21_000.0,
        },
        Column::Categorical { cardinality: 2 },
        Column::Numeric {
            mean: 18.5,
            scale: 8.0,
        },
        Column::Categorical { cardinality: 8 },
        Column::Passthrough,
        Column::Numeric {
            mean: -3.0,
            scale: 0.25,
        },
        Column::Categorical { cardinality: 1 },
        Column::Categorical { cardinality: 4 },
    ]
}

/// Checks `model` at every batch size on rows from `rows_for(n, seed)`.
fn check_model(what: &str, model: &Model, rows_for: impl Fn(usize, u64) -> Vec<f32>) {
    let f = model.n_features();
    let mut loaded = Loaded::new(&model.to_onnx(), f);
    for (k, n) in BATCHES.into_iter().enumerate() {
        let rows = rows_for(n, 1_000 + k as u64);
        let expected = model.predict(&rows, f);
        assert_runtimes_match(
            &format!("{what} batch {n}"),
            &mut loaded,
            &rows,
            OUTPUT,
            1,
            &expected,
        );
    }
}

#[test]
fn preprocessing_with_onehot_matches_oracle() {
    let columns = mixed_columns();
    let pre = Preprocess::new(columns.clone());
    let mut loaded = Loaded::new(&pre.to_onnx(), columns.len());
    for (k, n) in BATCHES.into_iter().enumerate() {
        let mut rows = random_rows(&columns, n, 10 + k as u64);
        if n > 2 {
            // Out-of-vocab codes (K, -1, a fraction) one-hot to all zeros.
            rows[columns.len() + 3] = 8.0;
            rows[columns.len() + 7] = -1.0;
            rows[2 * columns.len() + 1] = 0.5;
        }
        let expected = pre.transform(&rows, columns.len());
        assert_runtimes_match(
            &format!("preprocess batch {n}"),
            &mut loaded,
            &rows,
            FEATURES,
            pre.width(),
            &expected,
        );
    }
}

#[test]
fn numeric_only_and_identity_preprocessing_match_oracle() {
    for columns in [
        vec![
            Column::Numeric {
                mean: 1.0,
                scale: 3.0,
            },
            Column::Passthrough,
        ],
        vec![Column::Passthrough; 3],
        vec![Column::Categorical { cardinality: 3 }],
    ] {
        let pre = Preprocess::new(columns.clone());
        let mut loaded = Loaded::new(&pre.to_onnx(), columns.len());
        for n in BATCHES {
            let rows = random_rows(&columns, n, n as u64);
            let expected = pre.transform(&rows, columns.len());
            let what = format!("{columns:?} batch {n}");
            assert_runtimes_match(&what, &mut loaded, &rows, FEATURES, pre.width(), &expected);
        }
    }
}

fn random_lr(columns: Vec<Column>, seed: u64) -> LogisticRegression {
    let pre = Preprocess::new(columns);
    let mut r = SplitMix64::new(seed);
    LogisticRegression {
        weights: (0..pre.width())
            .map(|_| r.uniform(-0.8, 0.8) as f32)
            .collect(),
        bias: r.uniform(-1.0, 1.0) as f32,
        preprocess: pre,
    }
}

#[test]
fn logistic_regression_matches_oracle() {
    let columns = mixed_columns();
    let lr = random_lr(columns.clone(), 1);
    check_model("lr mixed", &lr.into(), |n, s| random_rows(&columns, n, s));

    let raw = vec![Column::Passthrough; 5];
    let lr = random_lr(raw.clone(), 2);
    check_model("lr passthrough", &lr.into(), |n, s| random_rows(&raw, n, s));
}

#[test]
fn mlp_matches_oracle_across_widths_and_depths() {
    let columns = mixed_columns();
    for (width, depth) in [(1, 0), (4, 1), (16, 2), (64, 3)] {
        let mlp = Mlp::seeded(
            Preprocess::new(columns.clone()),
            width,
            depth,
            77 + depth as u64,
        );
        check_model(&format!("mlp {width}x{depth}"), &mlp.into(), |n, s| {
            random_rows(&columns, n, s)
        });
    }
}

/// Thresholds and inputs share a coarse grid (multiples of 0.5 in [-4, 4]) so many rows land
/// exactly on a threshold.
fn grid(r: &mut SplitMix64) -> f32 {
    (r.below(17) as f32 - 8.0) * 0.5
}

fn random_tree(r: &mut SplitMix64, n_features: usize, max_depth: usize) -> Tree {
    fn grow(r: &mut SplitMix64, nodes: &mut Vec<TreeNode>, f: usize, depth: usize) -> usize {
        let me = nodes.len();
        nodes.push(TreeNode::Leaf { value: 0.0 });
        if depth == 0 || (me > 0 && r.chance(0.2)) {
            nodes[me] = TreeNode::Leaf {
                value: r.uniform(-0.5, 0.5) as f32,
            };
            return me;
        }
        let feature = r.below(f);
        let threshold = grid(r);
        let left = grow(r, nodes, f, depth - 1);
        let right = grow(r, nodes, f, depth - 1);
        nodes[me] = TreeNode::Split {
            feature,
            threshold,
            left,
            right,
        };
        me
    }
    let mut nodes = Vec::new();
    grow(r, &mut nodes, n_features, max_depth);
    Tree { nodes }
}

fn grid_rows(n_features: usize, n: usize, seed: u64) -> Vec<f32> {
    let mut r = SplitMix64::new(seed);
    (0..n * n_features).map(|_| grid(&mut r)).collect()
}

#[test]
fn single_tree_matches_oracle() {
    let mut r = SplitMix64::new(5);
    let m = TreeEnsemble {
        n_features: 4,
        trees: vec![random_tree(&mut r, 4, 4)],
        base_score: -0.3,
    };
    check_model("single tree", &m.into(), |n, s| grid_rows(4, n, s));
}

#[test]
fn multi_tree_ensemble_matches_oracle() {
    let mut r = SplitMix64::new(6);
    let mut trees: Vec<Tree> = (0..40).map(|_| random_tree(&mut r, 6, 5)).collect();
    // A stump and a lone leaf are valid trees too.
    trees.push(Tree {
        nodes: vec![
            TreeNode::Split {
                feature: 5,
                threshold: 0.0,
                left: 1,
                right: 2,
            },
            TreeNode::Leaf { value: 0.75 },
            TreeNode::Leaf { value: -0.75 },
        ],
    });
    trees.push(Tree {
        nodes: vec![TreeNode::Leaf { value: 0.125 }],
    });
    let m = TreeEnsemble {
        n_features: 6,
        trees,
        base_score: 0.4,
    };
    check_model("40-tree ensemble", &m.into(), |n, s| grid_rows(6, n, s));
}

#[test]
fn trees_send_exact_threshold_hits_to_the_true_branch() {
    // One stump per feature; rows sit exactly on, just below and just above each threshold.
    let thresholds = [0.1f32, 1e6, -2.5, 700.0];
    let trees = thresholds
        .iter()
        .enumerate()
        .map(|(f, t)| Tree {
            nodes: vec![
                TreeNode::Split {
                    feature: f,
                    threshold: *t,
                    left: 1,
                    right: 2,
                },
                TreeNode::Leaf {
                    value: 0.5 + f as f32,
                },
                TreeNode::Leaf {
                    value: -0.5 - f as f32,
                },
            ],
        })
        .collect();
    let m = TreeEnsemble {
        n_features: 4,
        trees,
        base_score: 0.0,
    };
    let rows_for = |n: usize, seed: u64| {
        let mut r = SplitMix64::new(seed);
        (0..n * 4)
            .map(|i| {
                let t = thresholds[i % 4];
                match r.below(3) {
                    0 => t,
                    1 => t.next_down(),
                    _ => t.next_up(),
                }
            })
            .collect()
    };
    assert_eq!(m.margin(&thresholds), 0.5 + 1.5 + 2.5 + 3.5);
    check_model("threshold hits", &m.into(), rows_for);
}
