//! The example credit-risk domain: 20 applicant features, a realistic synthetic generator and
//! three deterministic example models (`credit-risk`, `credit-risk-mlp`, `credit-risk-gbdt`).
//!
//! The weights are hand-set, not trained on real data: higher debt-to-income, utilization,
//! delinquencies, inquiries and interest rate raise the risk; higher income, FICO score and
//! credit history lower it. The MLP carries that logistic-regression logit through its ReLU
//! layers and adds a small seeded nonlinear term; the tree ensemble is boosted on sample rows
//! to approximate the MLP, with thresholds taken from (realistic) sample values.

use std::path::Path;

use anyhow::Context;
use serde_json::{Map, Value, json};
use vane_registry::{DirRegistry, FeatureKind, FeatureSpec, PublishRequest, Signature, TensorSpec};

use crate::onnx::{
    Column, LogisticRegression, Mlp, Model, Preprocess, Tree, TreeEnsemble, TreeNode,
};
use crate::rng::SplitMix64;

/// A numeric feature: raw value range, standardization statistics and risk weight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NumericFeature {
    pub name: &'static str,
    /// Realistic range; the generator clamps to it.
    pub min: f64,
    pub max: f64,
    /// Raw values are multiples of this (dollars, percent points with 2 decimals, counts, …).
    pub quantum: f64,
    /// Standardization statistics (of the generator's distribution, rounded).
    pub mean: f32,
    pub scale: f32,
    /// Logistic-regression weight per standard deviation (positive = riskier).
    pub weight: f32,
}

/// A categorical feature: vocabulary in code order and per-category risk weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CategoricalFeature {
    pub name: &'static str,
    pub vocab: &'static [&'static str],
    /// Generator shares per category.
    pub shares: &'static [f64],
    /// Logistic-regression weight per category (one-hot).
    pub weights: &'static [f32],
}

const fn num(
    name: &'static str,
    (min, max, quantum): (f64, f64, f64),
    (mean, scale): (f32, f32),
    weight: f32,
) -> NumericFeature {
    NumericFeature {
        name,
        min,
        max,
        quantum,
        mean,
        scale,
        weight,
    }
}

/// Numeric features, columns 0..16 of the model tensor.
#[rustfmt::skip]
pub const NUMERIC: [NumericFeature; 16] = [
    //  name                              (min,      max,       quantum)  (mean,     scale)    weight
    num("annual_income",                  (12_000.0, 400_000.0, 100.0),   (69_800.0, 36_900.0), -0.35),
    num("debt_to_income",                 (0.0,      45.0,      0.01),    (18.5,     8.4),      0.40),
    num("revolving_utilization",          (0.0,      100.0,     0.1),     (49.9,     21.6),     0.30),
    num("delinquencies_2y",               (0.0,      8.0,       1.0),     (0.24,     0.66),     0.25),
    num("inquiries_6m",                   (0.0,      6.0,       1.0),     (0.78,     0.83),     0.22),
    num("credit_history_months",          (12.0,     600.0,     1.0),     (190.0,    78.5),    -0.20),
    num("employment_length_years",        (0.0,      10.0,      1.0),     (5.4,      3.1),     -0.10),
    num("loan_amount",                    (1_000.0,  40_000.0,  25.0),    (14_100.0, 8_400.0),  0.10),
    num("interest_rate",                  (5.31,     30.99,     0.01),    (13.05,    3.76),     0.45),
    num("installment",                    (20.0,     1_600.0,   0.01),    (428.0,    248.0),    0.10),
    num("open_accounts",                  (1.0,      45.0,      1.0),     (11.05,    4.74),     0.05),
    num("total_accounts",                 (2.0,      90.0,      1.0),     (26.6,     6.3),     -0.05),
    num("public_records",                 (0.0,      5.0,       1.0),     (0.17,     0.45),     0.18),
    num("months_since_last_delinquency",  (0.0,      120.0,     1.0),     (85.0,     41.9),    -0.12),
    num("fico_score",                     (580.0,    850.0,     1.0),     (704.4,    37.1),    -0.55),
    num("loan_to_income",                 (0.0,      2.0,       0.0001),  (0.26,     0.22),     0.30),
];

/// Categorical features, columns 16..20 of the model tensor (values arrive as vocab codes).
pub const CATEGORICAL: [CategoricalFeature; 4] = [
    CategoricalFeature {
        name: "term",
        vocab: &["36 months", "60 months"],
        shares: &[0.72, 0.28],
        weights: &[0.0, 0.40],
    },
    CategoricalFeature {
        name: "purpose",
        vocab: &[
            "debt_consolidation",
            "credit_card",
            "home_improvement",
            "major_purchase",
            "small_business",
            "car",
            "medical",
            "other",
        ],
        shares: &[0.50, 0.20, 0.07, 0.05, 0.03, 0.04, 0.03, 0.08],
        weights: &[0.10, -0.10, -0.05, 0.0, 0.55, -0.15, 0.20, 0.15],
    },
    CategoricalFeature {
        name: "home_ownership",
        vocab: &["RENT", "OWN", "MORTGAGE", "OTHER"],
        shares: &[0.40, 0.10, 0.48, 0.02],
        weights: &[0.15, -0.05, -0.15, 0.25],
    },
    CategoricalFeature {
        name: "verification_status",
        vocab: &["not_verified", "source_verified", "verified"],
        shares: &[0.35, 0.40, 0.25],
        weights: &[0.0, 0.05, 0.10],
    },
];

/// Number of model inputs (tensor columns).
pub const N_FEATURES: usize = NUMERIC.len() + CATEGORICAL.len();

/// Seeds of the example models (recorded in their lineage).
pub const MLP_SEED: u64 = 20_240_611;
pub const GBDT_SEED: u64 = 20_240_612;
/// Seed of the rows the example metrics are computed on.
pub const EVAL_SEED: u64 = 7;

/// Intercept of the logistic regression: about 15% mean default rate on sample rows.
const LR_BIAS: f32 = -2.6;

/// Feature names in tensor column order.
pub fn feature_names() -> Vec<&'static str> {
    NUMERIC
        .iter()
        .map(|f| f.name)
        .chain(CATEGORICAL.iter().map(|f| f.name))
        .collect()
}

/// The model signature shared by the three example models.
pub fn signature() -> Signature {
    let numeric = NUMERIC.iter().map(|f| FeatureSpec::numeric(f.name, "FP32"));
    let categorical = CATEGORICAL
        .iter()
        .map(|f| FeatureSpec::categorical(f.name, f.vocab.iter().copied()));
    Signature {
        inputs: numeric.chain(categorical).collect(),
        tensor: Some(TensorSpec {
            name: crate::onnx::INPUT.into(),
            datatype: "FP32".into(),
            shape: vec![-1, N_FEATURES as i64],
        }),
        outputs: vec![TensorSpec {
            name: crate::onnx::OUTPUT.into(),
            datatype: "FP32".into(),
            shape: vec![-1, 1],
        }],
        graph: None,
        online: None,
    }
}

// ---------------------------------------------------------------------------------------------
// Synthetic applicants

fn quantize(x: f64, q: f64) -> f64 {
    if q >= 1.0 {
        (x / q).round() * q
    } else {
        // Divide by an exact power of ten so the result is the double nearest the decimal
        // (18.37, not 18.370000000000001) and prints short in JSON.
        let s = (1.0 / q).round();
        (x * s).round() / s
    }
}

/// `(1 + x/16)^16`: close to `e^x` for the |x| < 4 used here and, unlike `f64::exp`, made of
/// IEEE-exact operations only, so the samples (and the tree thresholds and leaf values taken
/// from them) cannot depend on the platform's libm.
fn exp_approx(x: f64) -> f64 {
    let mut y = 1.0 + x / 16.0;
    for _ in 0..4 {
        y *= y;
    }
    y
}

/// `base^n` by repeated multiplication (see [`exp_approx`] for why not `powi`).
fn pow(base: f64, n: u32) -> f64 {
    (0..n).fold(1.0, |acc, _| acc * base)
}

fn clamp_q(x: f64, f: &NumericFeature) -> f64 {
    quantize(x.clamp(f.min, f.max), f.quantum)
}

/// One applicant's raw values in column order (categoricals as codes), in `f64` so that
/// records print as short decimals; the model tensor gets them as `f32`.
fn applicant(r: &mut SplitMix64) -> [f64; N_FEATURES] {
    let [
        income_f,
        dti_f,
        util_f,
        delinq_f,
        inq_f,
        hist_f,
        emp_f,
        loan_f,
        rate_f,
        inst_f,
        open_f,
        total_f,
        _pubrec,
        msld_f,
        fico_f,
        lti_f,
    ] = &NUMERIC;
    let fico = clamp_q(705.0 + 37.0 * r.normal(), fico_f);
    let good = (fico - 705.0) / 37.0;
    let income = clamp_q(
        62_000.0 * exp_approx(0.5 * r.normal() + 0.05 * good),
        income_f,
    );
    let emp = clamp_q(5.5 + 3.5 * r.normal(), emp_f);
    let history = clamp_q(190.0 + 25.0 * good + 75.0 * r.normal(), hist_f);
    let util = clamp_q(50.0 - 9.0 * good + 20.0 * r.normal(), util_f);
    let dti = clamp_q(18.5 + 8.5 * r.normal(), dti_f);
    let delinq = if r.chance(0.84 + 0.05 * good.clamp(-2.0, 2.0)) {
        0.0
    } else {
        let mut k = 1.0;
        while k < delinq_f.max && r.chance(0.35) {
            k += 1.0;
        }
        k
    };
    let inquiries = (0..inq_f.max as usize).filter(|_| r.chance(0.13)).count() as f64;
    let loan = clamp_q(12_000.0 * exp_approx(0.6 * r.normal()), loan_f);
    let term = usize::from(r.chance(if loan > 20_000.0 { 0.5 } else { 0.2 }));
    let rate = clamp_q(
        13.0 - 3.3 * good + 2.5 * term as f64 + 1.6 * r.normal() - 0.7,
        rate_f,
    );
    let months = if term == 1 { 60 } else { 36 };
    let monthly = rate / 1_200.0;
    let installment = clamp_q(
        loan * monthly / (1.0 - 1.0 / pow(1.0 + monthly, months)),
        inst_f,
    );
    let open = clamp_q(11.0 + 4.8 * r.normal(), open_f);
    let total = clamp_q(open + 10.0 + 7.0 * r.normal().abs(), total_f).max(open);
    let pubrec = [0.0, 1.0, 2.0][r.weighted(&[0.86, 0.11, 0.03])];
    let since = if delinq > 0.0 {
        (1 + r.below(24)) as f64
    } else if r.chance(0.55) {
        msld_f.max // none on record (capped)
    } else {
        (25 + r.below(95)) as f64
    };
    let lti = clamp_q(loan / income, lti_f);
    let purpose = r.weighted(CATEGORICAL[1].shares);
    let home = r.weighted(CATEGORICAL[2].shares);
    let verification = r.weighted(CATEGORICAL[3].shares);
    [
        income,
        dti,
        util,
        delinq,
        inquiries,
        history,
        emp,
        loan,
        rate,
        installment,
        open,
        total,
        pubrec,
        since,
        fico,
        lti,
        term as f64,
        purpose as f64,
        home as f64,
        verification as f64,
    ]
}

fn applicants(n: usize, seed: u64) -> Vec<[f64; N_FEATURES]> {
    let mut r = SplitMix64::new(seed);
    (0..n).map(|_| applicant(&mut r)).collect()
}

/// `n` synthetic applicants as a row-major `[n, 20]` tensor: raw numeric values, categorical
/// features as vocab codes. Deterministic in `seed`.
pub fn sample_rows(n: usize, seed: u64) -> Vec<f32> {
    applicants(n, seed)
        .iter()
        .flat_map(|a| a.iter().map(|v| *v as f32))
        .collect()
}

/// The same applicants as [`sample_rows`] (same `n`, `seed`) as JSON objects
/// `{feature: value}` with vocab strings for categorical features, as a client would send them.
pub fn sample_records(n: usize, seed: u64) -> Vec<Map<String, Value>> {
    applicants(n, seed)
        .iter()
        .map(|a| {
            let mut m = Map::new();
            for (f, v) in NUMERIC.iter().zip(a) {
                let v = if f.quantum >= 1.0 {
                    json!(*v as i64)
                } else {
                    json!(*v)
                };
                m.insert(f.name.into(), v);
            }
            for (f, v) in CATEGORICAL.iter().zip(&a[NUMERIC.len()..]) {
                m.insert(f.name.into(), json!(f.vocab[*v as usize]));
            }
            m
        })
        .collect()
}

/// The drift reference profile (`profile.json`) of `n` [`sample_rows`] (every row in the KS
/// sample) and of `model`'s score on them: what a monitor compares an example model's traffic
/// with. `vane-models example` publishes one with every example model.
pub fn reference_profile(model: &Model, n: usize, seed: u64) -> vane_registry::Profile {
    let rows = sample_rows(n, seed);
    let all: Vec<usize> = (0..n).collect();
    let column = |c: usize| -> Vec<f64> {
        (0..n)
            .map(|r| f64::from(rows[r * N_FEATURES + c]))
            .collect()
    };
    let features = signature()
        .inputs
        .iter()
        .enumerate()
        .map(|(c, f)| match f.kind {
            FeatureKind::Numeric => vane_stats::profile::numeric(&f.name, &column(c), &all),
            FeatureKind::Categorical => {
                let vocab = f.vocab.clone().unwrap_or_default();
                let mut counts = vec![0u64; vocab.len()];
                for x in column(c) {
                    counts[x as usize] += 1;
                }
                vane_stats::profile::categorical(&f.name, vocab, &counts, 0)
            }
        })
        .collect();
    let scores: Vec<f64> = model
        .predict(&rows, N_FEATURES)
        .iter()
        .map(|x| f64::from(*x))
        .collect();
    vane_registry::Profile {
        rows: n as u64,
        features,
        score: Some(vane_stats::profile::numeric("probability", &scores, &all)),
    }
}

// ---------------------------------------------------------------------------------------------
// Example models

/// Standardized numerics + one-hot categoricals (LR and MLP input).
pub fn standardize() -> Preprocess {
    let numeric = NUMERIC.iter().map(|f| Column::Numeric {
        mean: f.mean,
        scale: f.scale,
    });
    let categorical = CATEGORICAL.iter().map(|f| Column::Categorical {
        cardinality: f.vocab.len(),
    });
    Preprocess::new(numeric.chain(categorical).collect())
}

/// `credit-risk`: logistic regression with the hand-set weights.
pub fn logistic_regression() -> LogisticRegression {
    let weights = NUMERIC
        .iter()
        .map(|f| f.weight)
        .chain(CATEGORICAL.iter().flat_map(|f| f.weights.iter().copied()))
        .collect();
    LogisticRegression {
        preprocess: standardize(),
        weights,
        bias: LR_BIAS,
    }
}

/// Hidden layer width and count of `credit-risk-mlp`.
pub const MLP_WIDTH: usize = 32;
pub const MLP_DEPTH: usize = 2;

/// `credit-risk-mlp`: two hidden ReLU layers of 32.
///
/// Units 0 and 1 of each hidden layer carry `relu(z)` and `relu(-z)` of the logistic-regression
/// logit `z` (their difference restores `z`), so the output is `z` plus a small seeded
/// nonlinear term from the other 30 units — plausible directions with some interactions.
pub fn mlp() -> Mlp {
    let lr = logistic_regression();
    let mut m = Mlp::seeded(standardize(), MLP_WIDTH, MLP_DEPTH, MLP_SEED);
    let w = MLP_WIDTH;
    // Damp the random part so the hand-set logit dominates.
    for (layer, damp) in m.layers.iter_mut().zip([0.5f32, 0.5, 0.12]) {
        layer.weights.iter_mut().for_each(|v| *v *= damp);
    }
    let [first, second, out] = &mut m.layers[..] else {
        unreachable!("MLP_DEPTH is 2")
    };
    for (i, wi) in lr.weights.iter().enumerate() {
        first.weights[i * w] = *wi;
        first.weights[i * w + 1] = -*wi;
    }
    first.bias[0] = lr.bias;
    first.bias[1] = -lr.bias;
    for i in 0..w {
        let (a, b) = match i {
            0 => (1.0, -1.0),
            1 => (-1.0, 1.0),
            _ => (0.0, 0.0),
        };
        second.weights[i * w] = a;
        second.weights[i * w + 1] = b;
    }
    second.bias[0] = 0.0;
    second.bias[1] = 0.0;
    out.weights[0] = 1.0;
    out.weights[1] = -1.0;
    out.bias[0] = 0.0;
    m
}

/// Shape of `credit-risk-gbdt`.
pub const GBDT_TREES: usize = 50;
pub const GBDT_DEPTH: usize = 4;
const GBDT_ROWS: usize = 3_000;
const GBDT_LEARNING_RATE: f64 = 0.1;
const GBDT_MIN_LEAF: usize = 40;
const GBDT_CANDIDATES: usize = 24;

/// `credit-risk-gbdt`: 50 trees of depth ≤ 4, gradient-boosted (squared loss on the logit) to
/// approximate [`mlp`] on 3000 sample rows. Each split is the best of a few random
/// (feature, threshold) candidates whose thresholds are sample values, so they lie in the
/// realistic range and rows can hit them exactly.
pub fn gbdt() -> TreeEnsemble {
    let rows = sample_rows(GBDT_ROWS, GBDT_SEED);
    let target = mlp().logits(&rows, N_FEATURES);
    boost(&rows, &target, GBDT_SEED)
}

fn boost(rows: &[f32], target: &[f32], seed: u64) -> TreeEnsemble {
    let n = target.len();
    let mut rng = SplitMix64::new(seed ^ 0x7265_6573);
    let base_score = (target.iter().map(|t| *t as f64).sum::<f64>() / n as f64) as f32;
    let mut pred = vec![base_score; n];
    let mut trees = Vec::with_capacity(GBDT_TREES);
    for _ in 0..GBDT_TREES {
        let resid: Vec<f64> = target
            .iter()
            .zip(&pred)
            .map(|(t, p)| (*t - *p) as f64)
            .collect();
        let mut nodes = Vec::new();
        let all: Vec<usize> = (0..n).collect();
        grow(&mut nodes, rows, &resid, all, 0, &mut rng);
        let tree = Tree { nodes };
        for (i, p) in pred.iter_mut().enumerate() {
            *p += tree.leaf_value(&rows[i * N_FEATURES..(i + 1) * N_FEATURES]);
        }
        trees.push(tree);
    }
    TreeEnsemble {
        n_features: N_FEATURES,
        trees,
        base_score,
    }
}

/// Appends the subtree for rows `idx` to `nodes` and returns its root index (children always
/// come after their parent).
fn grow(
    nodes: &mut Vec<TreeNode>,
    rows: &[f32],
    resid: &[f64],
    idx: Vec<usize>,
    depth: usize,
    rng: &mut SplitMix64,
) -> usize {
    let me = nodes.len();
    nodes.push(TreeNode::Leaf { value: 0.0 });
    if depth < GBDT_DEPTH
        && idx.len() >= 2 * GBDT_MIN_LEAF
        && let Some((feature, threshold)) = best_split(rows, resid, &idx, rng)
    {
        let (l, r): (Vec<usize>, Vec<usize>) = idx
            .into_iter()
            .partition(|&i| rows[i * N_FEATURES + feature] <= threshold);
        let left = grow(nodes, rows, resid, l, depth + 1, rng);
        let right = grow(nodes, rows, resid, r, depth + 1, rng);
        nodes[me] = TreeNode::Split {
            feature,
            threshold,
            left,
            right,
        };
        return me;
    }
    let mean = idx.iter().map(|&i| resid[i]).sum::<f64>() / idx.len() as f64;
    nodes[me] = TreeNode::Leaf {
        value: (GBDT_LEARNING_RATE * mean) as f32,
    };
    me
}

/// The best of `GBDT_CANDIDATES` random splits by squared-error reduction, if any leaves both
/// sides at least `GBDT_MIN_LEAF` rows.
fn best_split(
    rows: &[f32],
    resid: &[f64],
    idx: &[usize],
    rng: &mut SplitMix64,
) -> Option<(usize, f32)> {
    let total: f64 = idx.iter().map(|&i| resid[i]).sum();
    let mut best: Option<(f64, usize, f32)> = None;
    for _ in 0..GBDT_CANDIDATES {
        let feature = rng.below(N_FEATURES);
        let threshold = rows[idx[rng.below(idx.len())] * N_FEATURES + feature];
        let (mut n_left, mut s_left) = (0usize, 0.0f64);
        for &i in idx {
            if rows[i * N_FEATURES + feature] <= threshold {
                n_left += 1;
                s_left += resid[i];
            }
        }
        let n_right = idx.len() - n_left;
        if n_left < GBDT_MIN_LEAF || n_right < GBDT_MIN_LEAF {
            continue;
        }
        let s_right = total - s_left;
        let gain = s_left * s_left / n_left as f64 + s_right * s_right / n_right as f64;
        if best.is_none_or(|(g, _, _)| gain > g) {
            best = Some((gain, feature, threshold));
        }
    }
    best.map(|(_, f, t)| (f, t))
}

/// One of the published example models.
#[derive(Debug, Clone)]
pub struct ExampleModel {
    /// Registry model name.
    pub name: &'static str,
    pub model: Model,
    /// Provenance recorded in the manifest.
    pub lineage: Value,
}

/// The three example models, in publish order.
pub fn example_models() -> Vec<ExampleModel> {
    let lineage = |function: &str, kind: &str, extra: Value| {
        let mut l = json!({
            "generator": "vane-models example",
            "generator_version": env!("CARGO_PKG_VERSION"),
            "function": format!("vane_models::credit::{function}"),
            "model_kind": kind,
            "data": "synthetic; hand-set weights, not trained on real loans",
        });
        if let (Value::Object(l), Value::Object(extra)) = (&mut l, extra) {
            l.extend(extra);
        }
        l
    };
    vec![
        ExampleModel {
            name: "credit-risk",
            model: logistic_regression().into(),
            lineage: lineage("logistic_regression", "logistic_regression", json!({})),
        },
        ExampleModel {
            name: "credit-risk-mlp",
            model: mlp().into(),
            lineage: lineage(
                "mlp",
                "mlp",
                json!({"seed": MLP_SEED, "hidden_layers": vec![MLP_WIDTH; MLP_DEPTH]}),
            ),
        },
        ExampleModel {
            name: "credit-risk-gbdt",
            model: gbdt().into(),
            lineage: lineage(
                "gbdt",
                "tree_ensemble",
                json!({
                    "seed": GBDT_SEED,
                    "trees": GBDT_TREES,
                    "max_depth": GBDT_DEPTH,
                    "teacher": "credit-risk-mlp",
                    "training_rows": GBDT_ROWS,
                }),
            ),
        },
    ]
}

/// Reference rows of the example models' drift profiles, and their seed.
const PROFILE_ROWS: usize = 5_000;
const PROFILE_SEED: u64 = 0x5052_4f46; // "PROF"

/// Summary of predictions on 1000 sample rows (`EVAL_SEED`), recorded as version metrics.
fn sample_metrics(model: &Model) -> Value {
    let rows = sample_rows(1_000, EVAL_SEED);
    let mut p = model.predict(&rows, N_FEATURES);
    let mean = p.iter().map(|v| *v as f64).sum::<f64>() / p.len() as f64;
    p.sort_by(f32::total_cmp);
    let q = |f: f64| p[((p.len() - 1) as f64 * f).round() as usize];
    json!({
        "sample_rows": p.len(),
        "sample_seed": EVAL_SEED,
        "mean_probability": mean,
        "p05_probability": q(0.05),
        "p50_probability": q(0.5),
        "p95_probability": q(0.95),
    })
}

/// Publishes a seeded MLP (`depth` hidden layers of `width`) over the credit-risk signature as
/// a new version of `name` and points `champion` at it. Returns the version.
pub fn publish_seeded_mlp(
    dir: &Path,
    name: &str,
    width: usize,
    depth: usize,
    seed: u64,
) -> anyhow::Result<u64> {
    anyhow::ensure!(width > 0, "--width must be at least 1");
    let model: Model = Mlp::seeded(standardize(), width, depth, seed).into();
    let registry =
        DirRegistry::create(dir).with_context(|| format!("opening registry {}", dir.display()))?;
    let version = registry
        .publish(&PublishRequest {
            model: name.into(),
            files: vec![
                ("model.onnx".into(), model.to_onnx()),
                (
                    "signature.json".into(),
                    serde_json::to_vec_pretty(&signature())?,
                ),
            ],
            lineage: json!({
                "generator": "vane-models mlp",
                "generator_version": env!("CARGO_PKG_VERSION"),
                "model_kind": "mlp",
                "hidden_layers": vec![width; depth],
                "seed": seed,
                "data": "untrained: seeded weights, for benchmarks",
            }),
            metrics: sample_metrics(&model),
        })
        .with_context(|| format!("publishing {name}"))?;
    registry.set_alias(name, "champion", version)?;
    Ok(version)
}

/// Publishes the three example models into the directory registry at `dir` (created if
/// needed) and points each one's `champion` alias at the new version. Returns
/// `(model name, version)` in publish order.
pub fn write_example_registry(dir: &Path) -> anyhow::Result<Vec<(String, u64)>> {
    let registry =
        DirRegistry::create(dir).with_context(|| format!("opening registry {}", dir.display()))?;
    let signature = serde_json::to_vec_pretty(&signature()).context("serializing signature")?;
    let mut out = Vec::new();
    for ex in example_models() {
        let profile = serde_json::to_vec(&reference_profile(&ex.model, PROFILE_ROWS, PROFILE_SEED))
            .context("serializing profile")?;
        let request = PublishRequest {
            model: ex.name.into(),
            files: vec![
                ("model.onnx".into(), ex.model.to_onnx()),
                ("signature.json".into(), signature.clone()),
                ("profile.json".into(), profile),
            ],
            lineage: ex.lineage,
            metrics: sample_metrics(&ex.model),
        };
        let version = registry
            .publish(&request)
            .with_context(|| format!("publishing {}", ex.name))?;
        registry
            .set_alias(ex.name, "champion", version)
            .with_context(|| format!("setting {}@champion", ex.name))?;
        out.push((ex.name.to_string(), version));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_valid_and_ordered() {
        let s = signature();
        s.validate().unwrap();
        assert_eq!(s.width(), 20);
        assert_eq!(
            s.inputs.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
            feature_names()
        );
        assert_eq!(s.position("term"), Some(16));
        assert_eq!(standardize().width(), 16 + 2 + 8 + 4 + 3);
    }

    #[test]
    fn tables_are_consistent() {
        for f in CATEGORICAL {
            assert_eq!(f.vocab.len(), f.shares.len(), "{}", f.name);
            assert_eq!(f.vocab.len(), f.weights.len(), "{}", f.name);
        }
        for f in NUMERIC {
            assert!(f.min < f.max && f.scale > 0.0, "{}", f.name);
            assert!((f.min..=f.max).contains(&(f.mean as f64)), "{}", f.name);
        }
    }

    #[test]
    fn samples_are_deterministic_and_in_range() {
        let rows = sample_rows(2_000, 3);
        assert_eq!(rows, sample_rows(2_000, 3));
        assert_ne!(rows, sample_rows(2_000, 4));
        for row in rows.chunks_exact(N_FEATURES) {
            for (f, v) in NUMERIC.iter().zip(row) {
                assert!(
                    (f.min as f32..=f.max as f32).contains(v),
                    "{} = {v}",
                    f.name
                );
            }
            for (f, v) in CATEGORICAL.iter().zip(&row[16..]) {
                assert!(
                    v.fract() == 0.0 && (*v as usize) < f.vocab.len(),
                    "{}",
                    f.name
                );
            }
        }
    }

    #[test]
    fn standardization_statistics_match_the_generator() {
        let rows = sample_rows(20_000, 11);
        let n = (rows.len() / N_FEATURES) as f64;
        for (j, f) in NUMERIC.iter().enumerate() {
            let col = rows.iter().skip(j).step_by(N_FEATURES).map(|v| *v as f64);
            let mean = col.clone().sum::<f64>() / n;
            let sd = (col.map(|v| (v - mean) * (v - mean)).sum::<f64>() / n).sqrt();
            eprintln!("STATS {} {mean:.4} {sd:.4}", f.name);
            if std::env::var_os("STATS").is_some() {
                continue;
            }
            assert!(
                (mean - f.mean as f64).abs() < 0.1 * f.scale as f64,
                "{}: mean {mean} vs {}",
                f.name,
                f.mean
            );
            assert!(
                (sd / f.scale as f64 - 1.0).abs() < 0.15,
                "{}: sd {sd} vs {}",
                f.name,
                f.scale
            );
        }
    }

    #[test]
    fn records_match_rows() {
        let rows = sample_rows(50, 9);
        let records = sample_records(50, 9);
        let names = feature_names();
        for (row, rec) in rows.chunks_exact(N_FEATURES).zip(&records) {
            assert_eq!(rec.len(), N_FEATURES);
            for (j, name) in names.iter().enumerate() {
                match &rec[*name] {
                    Value::Number(x) => assert_eq!(x.as_f64().unwrap() as f32, row[j], "{name}"),
                    Value::String(s) => {
                        let vocab = CATEGORICAL[j - 16].vocab;
                        assert_eq!(vocab[row[j] as usize], s, "{name}");
                    }
                    other => panic!("{name}: {other}"),
                }
            }
        }
    }

    #[test]
    fn risk_moves_in_the_intended_directions() {
        let lr = logistic_regression();
        let base = sample_rows(1, 5);
        let p0 = lr.predict(&base, N_FEATURES)[0];
        let with = |name: &str, delta: f32| {
            let mut row = base.clone();
            let j = feature_names().iter().position(|n| *n == name).unwrap();
            row[j] += delta;
            lr.predict(&row, N_FEATURES)[0]
        };
        assert!(with("debt_to_income", 10.0) > p0);
        assert!(with("revolving_utilization", 20.0) > p0);
        assert!(with("delinquencies_2y", 2.0) > p0);
        assert!(with("inquiries_6m", 3.0) > p0);
        assert!(with("annual_income", 40_000.0) < p0);
        assert!(with("fico_score", 60.0) < p0);
        assert!(with("credit_history_months", 120.0) < p0);
    }

    #[test]
    fn example_models_are_valid_and_spread_out() {
        let rows = sample_rows(1_000, EVAL_SEED);
        for ex in example_models() {
            ex.model.validate().unwrap();
            let mut p = ex.model.predict(&rows, N_FEATURES);
            p.sort_by(f32::total_cmp);
            let mean = p.iter().sum::<f32>() / p.len() as f32;
            let (p05, p95) = (p[50], p[949]);
            eprintln!("{}: mean {mean:.3} p05 {p05:.3} p95 {p95:.3}", ex.name);
            assert!((0.05..0.3).contains(&mean), "{}: mean {mean}", ex.name);
            assert!(p05 < 0.06 && p95 > 0.3, "{}: p05 {p05} p95 {p95}", ex.name);
        }
    }

    #[test]
    fn gbdt_has_the_documented_shape_and_small_leaves() {
        let g = gbdt();
        assert_eq!(g.trees.len(), GBDT_TREES);
        for t in &g.trees {
            assert!(
                t.nodes.len() < 1 << (GBDT_DEPTH + 1),
                "at most 2^(depth+1) - 1 nodes"
            );
            for n in &t.nodes {
                if let TreeNode::Leaf { value } = n {
                    assert!(value.abs() < 0.5, "leaf {value}");
                }
            }
        }
    }

    #[test]
    fn mlp_differs_from_lr_but_tracks_it() {
        let rows = sample_rows(500, 1);
        let a = logistic_regression().logits(&rows, N_FEATURES);
        let b = mlp().logits(&rows, N_FEATURES);
        let max = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(max > 0.01 && max < 2.0, "max |Δlogit| {max}");
    }
}
