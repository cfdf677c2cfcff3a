//! Histogram-based gradient-boosted trees with logistic loss.
//!
//! - **Bins.** Per feature, at most `max_bins` value bins from the training split's distinct
//!   values (one bin per value when there are few, else equal-count quantile bins) plus one
//!   *missing* bin for NaN. Bin boundaries are `f32` thresholds `t_0 < t_1 < …`, each the
//!   midpoint of two adjacent training values rounded to `f32` (kept strictly below the upper
//!   value), and a value's bin is the number of thresholds below it. Since the tensor holds
//!   `f32`, `x <= t_b` ⇔ `bin(x) <= b` for every `x`: a split "bins 0..=b left" exported as
//!   `BRANCH_LEQ t_b` routes every row exactly as the trainer did.
//! - **Missing values** go right, as `NaN <= t` is false in both runtimes (`+inf` too, so it
//!   counts as missing here). A split after the last value bin (threshold `f32::MAX`) sends
//!   exactly the missing rows right. Categorical codes are split like numbers; an unseen code
//!   (`K`) lands in the highest bin.
//! - **Trees** grow depth-first to `max_depth`; a split needs `min_samples_leaf` rows and
//!   `min_hessian` hessian on each side and a positive gain
//!   `G_L²/(H_L+λ) + G_R²/(H_R+λ) − G²/(H+λ)`; leaves hold `−G/(H+λ) · learning_rate`, rounded
//!   to `f32`. The smaller child's histogram is built, the larger one's is the parent's minus it.
//! - **Early stopping** on the validation log-loss: stop after `patience` trees without a new
//!   best and keep the trees up to the best.
//!
//! Every loop runs in a fixed order and ties keep the first candidate, so a fit is
//! bit-for-bit deterministic.

use serde::{Deserialize, Serialize};

use super::TrainError;
use super::metrics::log_loss;
use crate::math::sigmoid;
use crate::onnx::{Tree, TreeEnsemble, TreeNode};

/// Hyper-parameters of the boosted trees.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GbdtParams {
    pub learning_rate: f64,
    pub max_depth: usize,
    pub min_samples_leaf: usize,
    /// Minimum sum of hessians `p(1−p)` in a leaf.
    pub min_hessian: f64,
    /// L2 penalty λ on leaf values.
    pub l2: f64,
    /// Upper bound on the number of trees.
    pub max_trees: usize,
    /// Stop after this many trees without a better validation log-loss.
    pub patience: usize,
    /// Value bins per feature (≤ 255; one more bin holds missing values).
    pub max_bins: usize,
}

impl Default for GbdtParams {
    fn default() -> Self {
        Self {
            learning_rate: 0.1,
            max_depth: 6,
            min_samples_leaf: 20,
            min_hessian: 1e-3,
            l2: 1.0,
            max_trees: 500,
            patience: 20,
            max_bins: 255,
        }
    }
}

impl GbdtParams {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.learning_rate > 0.0 && self.learning_rate <= 1.0) {
            return Err(format!(
                "gbdt learning rate {} is not within (0, 1]",
                self.learning_rate
            ));
        }
        if self.max_depth == 0 || self.max_depth > 16 {
            return Err(format!(
                "gbdt max depth {} is not within 1..=16",
                self.max_depth
            ));
        }
        if self.min_samples_leaf == 0 {
            return Err("gbdt min samples per leaf must be at least 1".into());
        }
        if !(self.l2 >= 0.0 && self.min_hessian >= 0.0) {
            return Err("gbdt l2 and min hessian must be >= 0".into());
        }
        if self.max_trees == 0 || self.patience == 0 {
            return Err("gbdt max trees and patience must be at least 1".into());
        }
        if !(2..=255).contains(&self.max_bins) {
            return Err(format!(
                "gbdt max bins {} is not within 2..=255",
                self.max_bins
            ));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Bins

/// Per-feature `f32` thresholds; feature `f` has `thresholds[f].len() + 1` value bins and the
/// missing bin right after them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Bins {
    pub thresholds: Vec<Vec<f32>>,
}

/// A float strictly between `a < b` (both finite `f32`), or `a` when none is nearer the middle:
/// `a <= m < b`.
fn midpoint(a: f32, b: f32) -> f32 {
    let m = ((a as f64 + b as f64) * 0.5) as f32;
    if m < b && m >= a { m } else { a }
}

impl Bins {
    /// Bins from the (row-major) training rows.
    pub fn fit(rows: &[f32], n_features: usize, max_bins: usize) -> Self {
        let thresholds = (0..n_features)
            .map(|f| {
                // -0.0 and 0.0 compare equal, so they must share a bin: normalize to 0.0.
                let mut v: Vec<f32> = rows
                    .iter()
                    .skip(f)
                    .step_by(n_features)
                    .filter(|x| x.is_finite())
                    .map(|x| x + 0.0)
                    .collect();
                v.sort_unstable_by(f32::total_cmp);
                let mut distinct: Vec<(f32, usize)> = Vec::new();
                for x in v {
                    match distinct.last_mut() {
                        Some((d, c)) if *d == x => *c += 1,
                        _ => distinct.push((x, 1)),
                    }
                }
                let cuts: Vec<usize> = if distinct.len() <= max_bins {
                    (0..distinct.len().saturating_sub(1)).collect()
                } else {
                    let total: usize = distinct.iter().map(|d| d.1).sum();
                    let (mut cuts, mut cum, mut next) = (Vec::new(), 0usize, 1usize);
                    for (i, (_, c)) in distinct[..distinct.len() - 1].iter().enumerate() {
                        cum += c;
                        if cum * max_bins >= next * total {
                            cuts.push(i);
                            next = cum * max_bins / total + 1;
                        }
                    }
                    cuts
                };
                cuts.iter()
                    .map(|&i| midpoint(distinct[i].0, distinct[i + 1].0))
                    .collect()
            })
            .collect();
        Self { thresholds }
    }

    /// Index of the missing bin of feature `f`.
    pub fn missing(&self, f: usize) -> u8 {
        self.thresholds[f].len() as u8 + 1
    }

    /// The bin of value `x` of feature `f`: the number of thresholds below `x`; NaN and +inf
    /// (which go right at every split in the runtimes) → the missing bin.
    pub fn bin(&self, f: usize, x: f32) -> u8 {
        if x.is_nan() || x == f32::INFINITY {
            return self.missing(f);
        }
        self.thresholds[f].partition_point(|t| *t < x) as u8
    }

    /// Column-major bins of row-major `rows`.
    pub fn apply(&self, rows: &[f32], n_features: usize) -> Vec<Vec<u8>> {
        (0..n_features)
            .map(|f| {
                rows.iter()
                    .skip(f)
                    .step_by(n_features)
                    .map(|x| self.bin(f, *x))
                    .collect()
            })
            .collect()
    }

    /// The exported threshold of "bins `0..=bin` go left" on feature `f`.
    pub fn threshold(&self, f: usize, bin: u8) -> f32 {
        self.thresholds[f]
            .get(bin as usize)
            .copied()
            .unwrap_or(f32::MAX)
    }
}

// ---------------------------------------------------------------------------------------------
// Trees in bin space

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum BinNode {
    /// Rows with `bin(x[feature]) <= bin` go left.
    Split {
        feature: usize,
        bin: u8,
        left: usize,
        right: usize,
    },
    Leaf {
        value: f32,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BinTree {
    pub nodes: Vec<BinNode>,
}

impl BinTree {
    fn leaf_of(&self, bins: &[Vec<u8>], row: usize) -> f32 {
        let mut i = 0;
        loop {
            match self.nodes[i] {
                BinNode::Leaf { value } => return value,
                BinNode::Split {
                    feature,
                    bin,
                    left,
                    right,
                } => {
                    i = if bins[feature][row] <= bin {
                        left
                    } else {
                        right
                    }
                }
            }
        }
    }
}

/// A fitted ensemble in bin space.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GbdtFit {
    pub bins: Bins,
    pub n_features: usize,
    pub trees: Vec<BinTree>,
    pub base: f32,
    /// Trees grown before early stopping (`trees.len()` were kept).
    pub rounds: usize,
    /// Validation log-loss after each round.
    pub valid_curve: Vec<f64>,
}

impl GbdtFit {
    /// P(1) per row, routing rows by their bins: the trainer's own model.
    pub fn predict(&self, rows: &[f32]) -> Vec<f64> {
        let bins = self.bins.apply(rows, self.n_features);
        let n = rows.len() / self.n_features;
        (0..n)
            .map(|r| {
                let m: f64 = self.trees.iter().map(|t| t.leaf_of(&bins, r) as f64).sum();
                sigmoid(m + self.base as f64)
            })
            .collect()
    }

    /// The exported ensemble: bin splits become `f32` `BRANCH_LEQ` thresholds.
    pub fn to_model(&self) -> TreeEnsemble {
        let trees = self
            .trees
            .iter()
            .map(|t| Tree {
                nodes: t
                    .nodes
                    .iter()
                    .map(|n| match *n {
                        BinNode::Split {
                            feature,
                            bin,
                            left,
                            right,
                        } => TreeNode::Split {
                            feature,
                            threshold: self.bins.threshold(feature, bin),
                            left,
                            right,
                        },
                        BinNode::Leaf { value } => TreeNode::Leaf { value },
                    })
                    .collect(),
            })
            .collect();
        TreeEnsemble {
            n_features: self.n_features,
            trees,
            base_score: self.base,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Histograms

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Stat {
    g: f64,
    h: f64,
    n: u32,
}

impl Stat {
    fn sub(self, o: Stat) -> Stat {
        Stat {
            g: self.g - o.g,
            h: self.h - o.h,
            n: self.n - o.n,
        }
    }
}

/// Bins of all features back to back: feature `f` occupies `offsets[f]..offsets[f + 1]`
/// (its value bins, then its missing bin).
struct Layout {
    offsets: Vec<usize>,
}

impl Layout {
    fn new(bins: &Bins) -> Self {
        let mut offsets = vec![0];
        for (f, _) in bins.thresholds.iter().enumerate() {
            offsets.push(offsets[f] + bins.missing(f) as usize + 1);
        }
        Self { offsets }
    }

    fn total(&self) -> usize {
        *self.offsets.last().unwrap()
    }
}

struct Grower<'a> {
    params: &'a GbdtParams,
    layout: Layout,
    x: &'a [Vec<u8>],
    g: Vec<f64>,
    h: Vec<f64>,
}

/// A node waiting to be split or made a leaf: its rows are `order[start..end]`.
struct Pending {
    node: usize,
    start: usize,
    end: usize,
    depth: usize,
    total: Stat,
    hist: Vec<Stat>,
}

struct Best {
    gain: f64,
    feature: usize,
    bin: u8,
    left: Stat,
}

impl Grower<'_> {
    fn histogram(&self, rows: &[u32]) -> Vec<Stat> {
        let mut hist = vec![Stat::default(); self.layout.total()];
        let gh: Vec<(f64, f64)> = rows
            .iter()
            .map(|&r| (self.g[r as usize], self.h[r as usize]))
            .collect();
        for (f, col) in self.x.iter().enumerate() {
            let hf = &mut hist[self.layout.offsets[f]..self.layout.offsets[f + 1]];
            for (&r, &(g, h)) in rows.iter().zip(&gh) {
                let s = &mut hf[col[r as usize] as usize];
                s.g += g;
                s.h += h;
                s.n += 1;
            }
        }
        hist
    }

    fn score(&self, s: Stat) -> f64 {
        s.g * s.g / (s.h + self.params.l2)
    }

    fn best_split(&self, p: &Pending) -> Option<Best> {
        let min_n = self.params.min_samples_leaf as u32;
        let min_h = self.params.min_hessian;
        let parent = self.score(p.total);
        let mut best: Option<Best> = None;
        for f in 0..self.x.len() {
            let hf = &p.hist[self.layout.offsets[f]..self.layout.offsets[f + 1]];
            let mut left = Stat::default();
            // Value bins 0..missing: split after each ("0..=b left"), the last one sending
            // only missing rows right.
            for (b, s) in hf[..hf.len() - 1].iter().enumerate() {
                left.g += s.g;
                left.h += s.h;
                left.n += s.n;
                let right = p.total.sub(left);
                if left.n < min_n {
                    continue;
                }
                if right.n < min_n {
                    break;
                }
                if left.h < min_h || right.h < min_h {
                    continue;
                }
                let gain = self.score(left) + self.score(right) - parent;
                if gain > 1e-12 && best.as_ref().is_none_or(|bb| gain > bb.gain) {
                    best = Some(Best {
                        gain,
                        feature: f,
                        bin: b as u8,
                        left,
                    });
                }
            }
        }
        best
    }

    /// Grows one tree over all training rows; adds its leaf values to `margin`.
    fn grow(&self, margin: &mut [f64]) -> BinTree {
        let n = margin.len();
        let mut order: Vec<u32> = (0..n as u32).collect();
        let mut scratch: Vec<u32> = Vec::with_capacity(n);
        let total = (0..n).fold(Stat::default(), |acc, i| Stat {
            g: acc.g + self.g[i],
            h: acc.h + self.h[i],
            n: acc.n + 1,
        });
        let mut nodes = vec![BinNode::Leaf { value: 0.0 }];
        let mut stack = vec![Pending {
            node: 0,
            start: 0,
            end: n,
            depth: 0,
            total,
            hist: self.histogram(&order),
        }];
        while let Some(p) = stack.pop() {
            let split = if p.depth < self.params.max_depth
                && p.total.n >= 2 * self.params.min_samples_leaf as u32
            {
                self.best_split(&p)
            } else {
                None
            };
            let Some(best) = split else {
                let value =
                    (-p.total.g / (p.total.h + self.params.l2) * self.params.learning_rate) as f32;
                nodes[p.node] = BinNode::Leaf { value };
                for &r in &order[p.start..p.end] {
                    margin[r as usize] += value as f64;
                }
                continue;
            };
            // Stable partition: left rows first, both halves keep ascending row order.
            let col = &self.x[best.feature];
            scratch.clear();
            let rows = &mut order[p.start..p.end];
            let mut k = 0;
            for i in 0..rows.len() {
                let r = rows[i];
                if col[r as usize] <= best.bin {
                    rows[k] = r;
                    k += 1;
                } else {
                    scratch.push(r);
                }
            }
            rows[k..].copy_from_slice(&scratch);
            let mid = p.start + k;
            let right_total = p.total.sub(best.left);
            let (left_node, right_node) = (nodes.len(), nodes.len() + 1);
            nodes.push(BinNode::Leaf { value: 0.0 });
            nodes.push(BinNode::Leaf { value: 0.0 });
            nodes[p.node] = BinNode::Split {
                feature: best.feature,
                bin: best.bin,
                left: left_node,
                right: right_node,
            };
            let left_small = k <= p.end - mid;
            let small = if left_small {
                self.histogram(&order[p.start..mid])
            } else {
                self.histogram(&order[mid..p.end])
            };
            let large: Vec<Stat> = p.hist.iter().zip(&small).map(|(a, b)| a.sub(*b)).collect();
            let (left_hist, right_hist) = if left_small {
                (small, large)
            } else {
                (large, small)
            };
            // Right pushed first so the left subtree is finished first (depth-first).
            stack.push(Pending {
                node: right_node,
                start: mid,
                end: p.end,
                depth: p.depth + 1,
                total: right_total,
                hist: right_hist,
            });
            stack.push(Pending {
                node: left_node,
                start: p.start,
                end: mid,
                depth: p.depth + 1,
                total: best.left,
                hist: left_hist,
            });
        }
        BinTree { nodes }
    }
}

/// Boosts trees on the training rows with early stopping on the validation rows (both
/// row-major tensors of `n_features` columns).
pub(crate) fn fit(
    train: &[f32],
    y: &[u8],
    valid: &[f32],
    y_valid: &[u8],
    n_features: usize,
    params: &GbdtParams,
) -> Result<GbdtFit, TrainError> {
    params.validate().map_err(TrainError::Invalid)?;
    let bins = Bins::fit(train, n_features, params.max_bins);
    let x = bins.apply(train, n_features);
    let xv = bins.apply(valid, n_features);
    let n = y.len();
    let rate = y.iter().map(|v| *v as f64).sum::<f64>() / n as f64;
    let base = (rate / (1.0 - rate)).ln() as f32;
    let mut margin = vec![base as f64; n];
    let mut margin_valid = vec![base as f64; y_valid.len()];
    let mut grower = Grower {
        params,
        layout: Layout::new(&bins),
        x: &x,
        g: vec![0.0; n],
        h: vec![0.0; n],
    };
    let mut trees = Vec::new();
    let mut curve = Vec::new();
    let (mut best, mut best_len) = (f64::INFINITY, 0usize);
    let mut p_valid = vec![0.0; y_valid.len()];
    for _ in 0..params.max_trees {
        for i in 0..n {
            let p = sigmoid(margin[i]);
            grower.g[i] = p - y[i] as f64;
            grower.h[i] = p * (1.0 - p);
        }
        let tree = grower.grow(&mut margin);
        if tree.nodes.len() == 1 {
            break; // no split anywhere: more trees would only repeat this leaf
        }
        for (r, m) in margin_valid.iter_mut().enumerate() {
            *m += tree.leaf_of(&xv, r) as f64;
        }
        trees.push(tree);
        for (p, m) in p_valid.iter_mut().zip(&margin_valid) {
            *p = sigmoid(*m);
        }
        let loss = log_loss(y_valid, &p_valid);
        curve.push(loss);
        if loss < best {
            best = loss;
            best_len = trees.len();
        } else if trees.len() - best_len >= params.patience {
            break;
        }
    }
    let rounds = trees.len();
    trees.truncate(best_len.max(1));
    if trees.is_empty() {
        return Err(TrainError::Invalid(
            "gradient boosting found no split: every feature is constant on the training split \
             or the leaves would be smaller than min_samples_leaf"
                .into(),
        ));
    }
    Ok(GbdtFit {
        bins,
        n_features,
        trees,
        base,
        rounds,
        valid_curve: curve,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_sit_between_values_and_route_like_leq() {
        // Adjacent f32 values: the midpoint rounds to one of them; it must be the lower one.
        let a = 1.0f32;
        let b = f32::from_bits(a.to_bits() + 1);
        assert_eq!(midpoint(a, b), a);
        assert_eq!(midpoint(1.0, 2.0), 1.5);
        let rows = [3.0, -0.0, 0.0, 1.0, f32::NAN, 1.0, b, a];
        let bins = Bins::fit(&rows, 1, 255);
        assert_eq!(bins.thresholds[0], vec![0.5, 1.0, 2.0]);
        for x in [
            -1.0,
            -0.0,
            0.0,
            0.5,
            0.75,
            1.0,
            b,
            2.0,
            2.5,
            3.0,
            9.0,
            f32::MAX,
        ] {
            for k in 0..=bins.thresholds[0].len() as u8 {
                let t = bins.threshold(0, k);
                assert_eq!(bins.bin(0, x) <= k, x <= t, "x {x} bin {k} threshold {t}");
            }
        }
        for x in [f32::NAN, f32::INFINITY] {
            assert_eq!(bins.bin(0, x), bins.missing(0));
            assert_eq!(
                x.partial_cmp(&f32::MAX),
                if x.is_nan() {
                    None
                } else {
                    Some(std::cmp::Ordering::Greater)
                },
                "goes right at every split"
            );
        }
    }

    #[test]
    fn many_values_get_equal_count_bins() {
        let rows: Vec<f32> = (0..10_000).map(|i| (i % 1000) as f32).collect();
        let bins = Bins::fit(&rows, 1, 10);
        assert_eq!(bins.thresholds[0].len(), 9);
        let x = bins.apply(&rows, 1);
        let mut counts = [0usize; 11];
        x[0].iter().for_each(|b| counts[*b as usize] += 1);
        assert!(counts[..10].iter().all(|c| *c == 1000), "{counts:?}");
        // A heavy value gets a bin of its own.
        let mut rows = vec![0.0f32; 5000];
        rows.extend((0..5000).map(|i| i as f32 + 1.0));
        let bins = Bins::fit(&rows, 1, 4);
        assert_eq!(bins.thresholds[0][0], 0.5);
        assert!(bins.thresholds[0].len() <= 3);
    }

    #[test]
    fn learns_an_interaction_and_exports_identical_routing() {
        // y = xor(x0 > 0, x1 > 0) with noise: no single feature helps, a depth-2 tree does.
        let mut r = crate::rng::SplitMix64::new(5);
        let make = |r: &mut crate::rng::SplitMix64, n: usize| {
            let mut rows = Vec::new();
            let mut y = Vec::new();
            for _ in 0..n {
                let (a, b) = (r.uniform(-1.0, 1.0) as f32, r.uniform(-1.0, 1.0) as f32);
                let xor = (a > 0.0) != (b > 0.0);
                y.push(u8::from(if r.chance(0.1) { !xor } else { xor }));
                rows.push(if r.chance(0.05) { f32::NAN } else { a });
                rows.push(b);
            }
            (rows, y)
        };
        let (train, y) = make(&mut r, 4000);
        let (valid, yv) = make(&mut r, 1000);
        let params = GbdtParams {
            max_depth: 3,
            ..Default::default()
        };
        let fit = fit(&train, &y, &valid, &yv, 2, &params).unwrap();
        assert!(fit.trees.len() >= 5 && fit.rounds >= fit.trees.len());
        let p = fit.predict(&valid);
        let auc = super::super::metrics::auc(&yv, &p);
        assert!(auc > 0.85, "auc {auc}");
        let model = fit.to_model();
        model.validate().unwrap();
        let exported = model.predict(&valid, 2);
        for (a, b) in p.iter().zip(&exported) {
            assert!((a - *b as f64).abs() < 1e-6, "{a} vs {b}");
        }
        assert_eq!(
            fit,
            super::fit(&train, &y, &valid, &yv, 2, &params).unwrap()
        );
    }
}
