//! L2-penalized logistic regression fitted by Newton's method (IRLS) with step halving.
//!
//! Inputs are the model tensor's rows (numeric values with NaN for missing, categorical codes).
//! Numeric columns are standardized with the training mean and standard deviation (rounded to
//! `f32`, exactly as the exported [`Preprocess`] computes them, missing → mean → 0);
//! categorical columns are one-hot encoded, a code outside the vocabulary contributing nothing.
//! The objective is `mean log-loss + l2/2 · ‖w‖²` (intercept not penalized); every sum runs in
//! a fixed order, so the fit is bit-for-bit deterministic.

use serde::{Deserialize, Serialize};

use super::TrainError;
use crate::math::sigmoid;
use crate::onnx::{Column, LogisticRegression, Preprocess};

/// Hyper-parameters of the logistic regression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LrParams {
    /// L2 penalty on the weights (per row: the objective is the mean log-loss plus
    /// `l2/2 · ‖w‖²`; at least 1e-9, which keeps collinear one-hot blocks identified).
    pub l2: f64,
    /// Newton iterations at most.
    pub max_iter: usize,
    /// Converged when no coefficient moves by more than `tol · (1 + max |coefficient|)`.
    pub tol: f64,
}

impl Default for LrParams {
    fn default() -> Self {
        Self {
            l2: 1e-4,
            max_iter: 100,
            tol: 1e-9,
        }
    }
}

/// Widest one-hot expansion the dense Newton solver accepts (its Hessian is width²).
pub const MAX_WIDTH: usize = 2048;

/// How one tensor column enters the regression.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Input {
    Numeric,
    Categorical { cardinality: usize },
}

/// A fitted regression: the preprocessing and `f64` coefficients in the builder's layout
/// (numeric columns first, then one one-hot block per categorical column).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LrFit {
    pub preprocess: Preprocess,
    pub coef: Vec<f64>,
    pub bias: f64,
    pub iterations: usize,
    pub converged: bool,
    /// Training objective at the solution.
    pub objective: f64,
}

/// Rows as fixed-stride sparse vectors: for every tensor column one (index, value) entry
/// (index 0 with value 0 for an out-of-vocabulary code), then the intercept (index `width`).
struct Design {
    stride: usize,
    idx: Vec<u32>,
    val: Vec<f32>,
}

impl LrFit {
    /// The regression's `Preprocess` applied to one row, as sparse entries (without intercept).
    fn entries(&self, row: &[f32], idx: &mut Vec<u32>, val: &mut Vec<f32>) {
        let n_dense = self
            .preprocess
            .columns
            .iter()
            .filter(|c| !matches!(c, Column::Categorical { .. }))
            .count();
        let (mut dense, mut onehot) = (0usize, n_dense);
        for (x, c) in row.iter().zip(&self.preprocess.columns) {
            match *c {
                Column::Numeric { mean, scale } => {
                    idx.push(dense as u32);
                    val.push(standardize(*x, mean, scale));
                    dense += 1;
                }
                Column::Passthrough => {
                    idx.push(dense as u32);
                    val.push(*x);
                    dense += 1;
                }
                Column::Categorical { cardinality } => {
                    let code = *x;
                    if code >= 0.0 && code < cardinality as f32 && code.fract() == 0.0 {
                        idx.push((onehot + code as usize) as u32);
                        val.push(1.0);
                    } else {
                        idx.push(0);
                        val.push(0.0);
                    }
                    onehot += cardinality;
                }
            }
        }
    }

    fn design(&self, rows: &[f32], n_features: usize) -> Design {
        let n = rows.len() / n_features;
        let stride = n_features + 1;
        let width = self.coef.len() as u32;
        let mut idx = Vec::with_capacity(n * stride);
        let mut val = Vec::with_capacity(n * stride);
        for row in rows.chunks_exact(n_features) {
            self.entries(row, &mut idx, &mut val);
            idx.push(width);
            val.push(1.0);
        }
        Design { stride, idx, val }
    }

    /// P(1) per row with the `f64` coefficients: the trainer's own model.
    pub fn predict(&self, rows: &[f32], n_features: usize) -> Vec<f64> {
        let d = self.design(rows, n_features);
        let beta = self.beta();
        (0..rows.len() / n_features)
            .map(|r| sigmoid(d.dot(r, &beta)))
            .collect()
    }

    fn beta(&self) -> Vec<f64> {
        let mut b = self.coef.clone();
        b.push(self.bias);
        b
    }

    /// The exported model: coefficients rounded to `f32`.
    pub fn to_model(&self) -> LogisticRegression {
        LogisticRegression {
            preprocess: self.preprocess.clone(),
            weights: self.coef.iter().map(|w| *w as f32).collect(),
            bias: self.bias as f32,
        }
    }
}

impl Design {
    fn dot(&self, r: usize, beta: &[f64]) -> f64 {
        let s = r * self.stride;
        let mut z = 0.0;
        for k in s..s + self.stride {
            z += self.val[k] as f64 * beta[self.idx[k] as usize];
        }
        z
    }
}

/// `(x - mean) · (1/scale)` in `f32` with NaN → 0, as [`Preprocess::apply_row`] computes it
/// with mean imputation.
fn standardize(x: f32, mean: f32, scale: f32) -> f32 {
    let x = if x.is_nan() { mean } else { x };
    (x - mean) * scale.recip()
}

/// `ln(1 + e^z)` without overflow.
fn softplus(z: f64) -> f64 {
    if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}

/// Mean and standard deviation of the non-missing values, as `f32` standardization
/// parameters (scale 1 for a constant or all-missing column).
fn moments(values: impl Iterator<Item = f32>) -> (f32, f32) {
    let v: Vec<f64> = values.filter(|x| !x.is_nan()).map(f64::from).collect();
    if v.is_empty() {
        return (0.0, 1.0);
    }
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / v.len() as f64;
    let mean32 = mean as f32;
    let scale = var.sqrt() as f32;
    let ok = scale.is_finite()
        && scale > 0.0
        && scale.recip().is_finite()
        && var.sqrt() > 1e-12 * mean.abs().max(1.0);
    (mean32, if ok { scale } else { 1.0 })
}

/// Fits the regression on `rows` (row-major, one column per `inputs` entry) and labels `y`.
pub(crate) fn fit(
    rows: &[f32],
    y: &[u8],
    inputs: &[Input],
    params: &LrParams,
) -> Result<LrFit, TrainError> {
    let f = inputs.len();
    let n = y.len();
    let columns: Vec<Column> = inputs
        .iter()
        .enumerate()
        .map(|(j, input)| match *input {
            Input::Numeric => {
                let (mean, scale) = moments(rows.iter().skip(j).step_by(f).copied());
                Column::Numeric { mean, scale }
            }
            Input::Categorical { cardinality } => Column::Categorical { cardinality },
        })
        .collect();
    let preprocess = Preprocess::new(columns).with_mean_imputation();
    let width = preprocess.width();
    if width > MAX_WIDTH {
        return Err(TrainError::Invalid(format!(
            "logistic regression: {width} columns after one-hot encoding; at most {MAX_WIDTH} \
             (lower --max-categories or drop high-cardinality features)"
        )));
    }
    let mut fit = LrFit {
        preprocess,
        coef: vec![0.0; width],
        bias: 0.0,
        iterations: 0,
        converged: false,
        objective: f64::NAN,
    };
    let d = fit.design(rows, f);
    let p = width + 1;
    // A floor on the penalty: a categorical without nulls one-hot encodes to columns that sum
    // to the intercept's, so with l2 = 0 the Hessian is singular and Newton wanders along
    // that direction without converging. 1e-9 pins it at no visible cost to the fit.
    let penalty = params.l2.max(MIN_L2) * n as f64;
    let mut beta = vec![0.0f64; p];
    // Start at the base rate's log-odds.
    let rate = y.iter().map(|v| *v as f64).sum::<f64>() / n as f64;
    beta[width] = (rate / (1.0 - rate)).ln();
    let objective = |beta: &[f64]| -> f64 {
        let mut s = 0.0;
        for (r, yr) in y.iter().enumerate() {
            let z = d.dot(r, beta);
            s += softplus(z) - *yr as f64 * z;
        }
        s + 0.5 * penalty * beta[..width].iter().map(|b| b * b).sum::<f64>()
    };
    let mut current = objective(&beta);
    let mut grad = vec![0.0f64; p];
    let mut hess = vec![0.0f64; p * p];
    for it in 0..params.max_iter {
        fit.iterations = it + 1;
        grad.iter_mut().for_each(|g| *g = 0.0);
        hess.iter_mut().for_each(|h| *h = 0.0);
        for (r, yr) in y.iter().enumerate() {
            let z = d.dot(r, &beta);
            let pr = sigmoid(z);
            let resid = pr - *yr as f64;
            let w = pr * (1.0 - pr);
            let s = r * d.stride;
            let (idx, val) = (&d.idx[s..s + d.stride], &d.val[s..s + d.stride]);
            for a in 0..d.stride {
                let (ia, va) = (idx[a] as usize, val[a] as f64);
                if va == 0.0 {
                    continue;
                }
                grad[ia] += resid * va;
                let wa = w * va;
                for b in a..d.stride {
                    let (ib, vb) = (idx[b] as usize, val[b] as f64);
                    let (lo, hi) = if ia <= ib { (ia, ib) } else { (ib, ia) };
                    // Diagonal pairs (a == b) once; off-diagonal pairs fill the upper triangle.
                    hess[lo * p + hi] += wa * vb;
                }
            }
        }
        for j in 0..width {
            grad[j] += penalty * beta[j];
            hess[j * p + j] += penalty;
        }
        // Tiny ridge on the intercept keeps a degenerate Hessian factorable.
        hess[width * p + width] += 1e-12 * n as f64;
        let step = solve_spd(&mut hess, &grad, p).ok_or_else(|| {
            TrainError::Invalid("logistic regression: the Hessian is not positive definite".into())
        })?;
        // Step halving until the objective does not increase.
        let mut t = 1.0;
        let mut next: Vec<f64>;
        let mut value;
        loop {
            next = beta.iter().zip(&step).map(|(b, s)| b - t * s).collect();
            value = objective(&next);
            if value <= current || t < 1e-10 {
                break;
            }
            t *= 0.5;
        }
        let moved = step.iter().map(|s| (t * s).abs()).fold(0.0, f64::max);
        let scale = 1.0 + next.iter().map(|b| b.abs()).fold(0.0, f64::max);
        if value > current {
            // No step length lowers the objective. At the optimum (to rounding) that is
            // convergence; anywhere else the Newton direction is wrong, and the fit is not a
            // model: say so rather than report it converged.
            let decrement: f64 = grad.iter().zip(&step).map(|(g, s)| g * s).sum();
            if decrement.abs() <= 1e-9 * (1.0 + current.abs()) {
                fit.converged = true;
                break;
            }
            return Err(TrainError::Invalid(format!(
                "logistic regression: the line search found no lower objective at iteration {} \
                 (Newton decrement {decrement:.3e}); the Hessian is near singular (collinear \
                 features?): set --l2 > 0 or drop the collinear features",
                it + 1
            )));
        }
        beta = next;
        current = value;
        if moved <= params.tol * scale {
            fit.converged = true;
            break;
        }
    }
    fit.bias = beta[width];
    beta.truncate(width);
    fit.coef = beta;
    fit.objective = current / n as f64;
    if fit.coef.iter().any(|c| !c.is_finite()) || !fit.bias.is_finite() {
        return Err(TrainError::Invalid(
            "logistic regression diverged (non-finite coefficients)".into(),
        ));
    }
    Ok(fit)
}

/// The smallest L2 penalty a fit uses (see `fit`).
const MIN_L2: f64 = 1e-9;

/// Solves `H x = g` for symmetric positive definite `H` given by its upper triangle
/// (row-major `p × p`, overwritten by the Cholesky factor). `None` if not positive definite.
fn solve_spd(h: &mut [f64], g: &[f64], p: usize) -> Option<Vec<f64>> {
    // Upper-triangular U with H = Uᵀ U, stored in the upper triangle.
    for i in 0..p {
        let mut d = h[i * p + i];
        for k in 0..i {
            d -= h[k * p + i] * h[k * p + i];
        }
        if d <= 0.0 || !d.is_finite() {
            return None;
        }
        let d = d.sqrt();
        h[i * p + i] = d;
        for j in i + 1..p {
            let mut s = h[i * p + j];
            for k in 0..i {
                s -= h[k * p + i] * h[k * p + j];
            }
            h[i * p + j] = s / d;
        }
    }
    // Uᵀ z = g, then U x = z.
    let mut z = g.to_vec();
    for i in 0..p {
        for k in 0..i {
            z[i] -= h[k * p + i] * z[k];
        }
        z[i] /= h[i * p + i];
    }
    for i in (0..p).rev() {
        for k in i + 1..p {
            z[i] -= h[i * p + k] * z[k];
        }
        z[i] /= h[i * p + i];
    }
    Some(z)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unregularized_collinear_fit_converges_or_says_why() {
        // One-hot of a categorical without nulls sums to the intercept's column: with l2 = 0
        // the Hessian is singular. The fit must converge (the penalty floor picks one of the
        // equivalent solutions) or fail with a clear error, never return a model it calls
        // converged after a failed line search, nor a silently unconverged one.
        let mut r = crate::rng::SplitMix64::new(9);
        let n = 5_000;
        let (mut rows, mut y) = (Vec::with_capacity(2 * n), Vec::with_capacity(n));
        for _ in 0..n {
            let x = r.normal() as f32;
            let c = r.below(4) as f32;
            let z = 0.8 * x as f64 + [0.0, 1.0, -1.0, 0.5][c as usize];
            y.push(u8::from(r.unit() < sigmoid(z)));
            rows.push(x);
            rows.push(c);
        }
        let inputs = [Input::Numeric, Input::Categorical { cardinality: 4 }];
        let params = LrParams {
            l2: 0.0,
            ..LrParams::default()
        };
        match fit(&rows, &y, &inputs, &params) {
            Ok(f) => {
                assert!(f.converged, "returned a model that did not converge");
                // The identified quantities are right: the slope and the contrasts.
                let Column::Numeric { scale, .. } = f.preprocess.columns[0] else {
                    panic!()
                };
                assert!((f.coef[0] / scale as f64 - 0.8).abs() < 0.1);
                assert!(((f.coef[2] - f.coef[1]) - 1.0).abs() < 0.2);
            }
            Err(e) => assert!(e.to_string().contains("l2"), "{e}"),
        }
    }

    #[test]
    fn cholesky_solves_a_known_system() {
        // H = [[4, 2], [2, 3]], g = [2, 1] → x = [0.5, 0].
        let mut h = vec![4.0, 2.0, 0.0, 3.0];
        let x = solve_spd(&mut h, &[2.0, 1.0], 2).unwrap();
        assert!((x[0] - 0.5).abs() < 1e-15 && x[1].abs() < 1e-15, "{x:?}");
        assert!(solve_spd(&mut [1.0, 2.0, 0.0, 1.0], &[1.0, 1.0], 2).is_none());
    }

    #[test]
    fn recovers_known_coefficients_and_matches_its_export() {
        // y ~ Bernoulli(sigmoid(1.5·x0 − 2·[c = 1] + 0.5)), x0 standard-ish, some NaN.
        let mut r = crate::rng::SplitMix64::new(3);
        let n = 20_000;
        let mut rows = Vec::with_capacity(2 * n);
        let mut y = Vec::with_capacity(n);
        for _ in 0..n {
            let x = r.normal() as f32;
            let c = r.below(3) as f32;
            let z = 1.5 * x as f64 - if c == 1.0 { 2.0 } else { 0.0 } + 0.5;
            y.push(u8::from(r.unit() < sigmoid(z)));
            rows.push(if r.chance(0.05) { f32::NAN } else { x });
            rows.push(c);
        }
        let inputs = [Input::Numeric, Input::Categorical { cardinality: 3 }];
        let fit = fit(&rows, &y, &inputs, &LrParams::default()).unwrap();
        assert!(fit.converged && fit.iterations < 15, "{}", fit.iterations);
        let Column::Numeric { scale, .. } = fit.preprocess.columns[0] else {
            panic!()
        };
        let slope = fit.coef[0] / scale as f64;
        assert!((slope - 1.5).abs() < 0.1, "slope {slope}");
        // One-hot contrasts are identified even though the block is collinear with the bias.
        let contrast = fit.coef[2] - fit.coef[1];
        assert!((contrast + 2.0).abs() < 0.15, "contrast {contrast}");
        let ours = fit.predict(&rows, 2);
        let exported = fit.to_model().predict(&rows, 2);
        for (a, b) in ours.iter().zip(&exported) {
            assert!((a - *b as f64).abs() < 1e-6);
        }
        // Same data, same bits.
        let again = super::fit(&rows, &y, &inputs, &LrParams::default()).unwrap();
        assert_eq!(fit, again);
    }
}
