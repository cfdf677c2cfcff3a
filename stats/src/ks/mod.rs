//! The two-sample Kolmogorov–Smirnov test exactly as
//! `scipy.stats.ks_2samp(a, b, alternative="two-sided", method="auto")` computes it, plus the
//! distributions behind its p-values: [`kstwo_sf`] (`scipy.stats.kstwo.sf`) and
//! [`smirnov_sf`] (`scipy.special.smirnov`).
//!
//! * Statistic: D = max |F_a − F_b| over the pooled values, the ECDFs evaluated after all tied
//!   values (numpy's `searchsorted(side='right')`), by one merged walk over the sorted samples.
//! * `method="auto"`: exact when max(n1, n2) <= 10 000, else asymptotic. The exact path snaps D
//!   to the lattice h/lcm(n1, n2) and reports that snapped D, as scipy does; `h == 0` gives
//!   p = 1, `n1 == n2` the closed form for a square, otherwise the lattice-path recursion.
//!   A non-finite or out-of-range exact p falls back to the asymptotic one.
//! * Asymptotic: p = `kstwo.sf(D, round(n1·n2/(n1 + n2)))`.

mod exact;
mod kolmogn;
mod smirnov;

pub use kolmogn::kstwo_sf;
pub use smirnov::smirnov_sf;

/// `method="auto"` computes exact p-values while max(n1, n2) is at most this (scipy's
/// `MAX_AUTO_N`).
pub const MAX_EXACT_N: usize = 10_000;

/// How a p-value was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KsMethod {
    /// Exact distribution of the two-sample statistic (lattice paths).
    Exact,
    /// `kstwo` at the effective sample size round(n1·n2/(n1 + n2)).
    Asymptotic,
}

/// Result of a two-sample KS test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KsResult {
    /// D in [0, 1]; on the exact path snapped to a multiple of 1/lcm(n1, n2) (as scipy).
    pub statistic: f64,
    /// Two-sided p-value in [0, 1].
    pub pvalue: f64,
    pub method: KsMethod,
}

/// Reusable memory for the exact p-value (two rows of the lattice, 16·(max(n1, n2) + 2) bytes),
/// so a monitor testing many features per window allocates once.
#[derive(Debug, Default, Clone)]
pub struct KsWorkspace {
    buf: Vec<f64>,
}

impl KsWorkspace {
    pub fn new() -> Self {
        Self::default()
    }

    /// [`ks_2samp_sorted`] reusing this workspace's buffer.
    pub fn ks_2samp_sorted(&mut self, a: &[f64], b: &[f64]) -> Option<KsResult> {
        let d = ks_statistic_sorted(a, b)?;
        self.pvalue(a.len(), b.len(), d)
    }

    /// [`ks_pvalue`] reusing this workspace's buffer.
    pub fn pvalue(&mut self, n1: usize, n2: usize, d: f64) -> Option<KsResult> {
        pvalue_with(n1, n2, d, &mut self.buf)
    }
}

/// The two-sided two-sample KS test of two ascending, NaN-free samples (±∞ allowed);
/// `None` if either is empty. Equal to `scipy.stats.ks_2samp(a, b)` (see the module docs).
///
/// The statistic is one O(n1 + n2) walk without allocation; an exact p-value for `n1 != n2`
/// allocates one buffer of max(n1, n2) + 2 pairs of f64 (use [`KsWorkspace`] to reuse it) and
/// costs O(D·n1·n2). Unsorted input gives an unspecified result (never a panic).
pub fn ks_2samp_sorted(a: &[f64], b: &[f64]) -> Option<KsResult> {
    KsWorkspace::new().ks_2samp_sorted(a, b)
}

/// [`ks_2samp_sorted`] for arbitrary samples: NaN values are dropped (scipy would return NaN;
/// drop them first, as Evidently does), the rest copied and sorted. `None` if either sample
/// has no non-NaN value.
pub fn ks_2samp(a: &[f64], b: &[f64]) -> Option<KsResult> {
    let prep = |x: &[f64]| {
        let mut v: Vec<f64> = x.iter().copied().filter(|x| !x.is_nan()).collect();
        v.sort_unstable_by(f64::total_cmp);
        v
    };
    ks_2samp_sorted(&prep(a), &prep(b))
}

/// The statistic D = max |F_a − F_b| of two ascending, NaN-free samples, computed as numpy
/// does (`i/n1 − j/n2` in f64 at every pooled value); `None` if either is empty.
pub fn ks_statistic_sorted(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let (mut max_diff, mut min_diff) = (0.0f64, 0.0f64);
    while i < a.len() && j < b.len() {
        // Taking the smaller head first guarantees progress even on NaN (unsorted input).
        let v = if a[i] <= b[j] {
            i += 1;
            a[i - 1]
        } else {
            j += 1;
            b[j - 1]
        };
        while i < a.len() && a[i] <= v {
            i += 1;
        }
        while j < b.len() && b[j] <= v {
            j += 1;
        }
        let diff = i as f64 / n1 - j as f64 / n2;
        max_diff = max_diff.max(diff);
        min_diff = min_diff.min(diff);
    }
    // Past the end of one sample the difference only moves towards 0.
    Some(max_diff.max((-min_diff).clamp(0.0, 1.0)))
}

/// The two-sided p-value of an observed statistic `d` between samples of sizes `n1` and `n2`
/// under `method="auto"` (e.g. for a D computed from binned data). `None` if a size is 0 or
/// `d` is NaN; `d` is clamped to [0, 1].
pub fn ks_pvalue(n1: usize, n2: usize, d: f64) -> Option<KsResult> {
    pvalue_with(n1, n2, d, &mut Vec::new())
}

fn pvalue_with(n1: usize, n2: usize, d: f64, buf: &mut Vec<f64>) -> Option<KsResult> {
    if n1 == 0 || n2 == 0 || d.is_nan() {
        return None;
    }
    let mut d = d.clamp(0.0, 1.0);
    if n1.max(n2) <= MAX_EXACT_N {
        let (n1u, n2u) = (n1 as u64, n2 as u64);
        let g = gcd(n1u, n2u);
        let lcm = (n1u / g) * n2u;
        let h = (d * lcm as f64).round_ties_even() as u64;
        d = h as f64 / lcm as f64;
        if h == 0 {
            return Some(KsResult {
                statistic: d,
                pvalue: 1.0,
                method: KsMethod::Exact,
            });
        }
        let p = if n1 == n2 {
            exact::prob_outside_square(n1u, h)
        } else {
            exact::prob_outside_band(n1u, n2u, g, h, buf)
        };
        if (0.0..=1.0).contains(&p) {
            return Some(KsResult {
                statistic: d,
                pvalue: p,
                method: KsMethod::Exact,
            });
        }
    }
    let (big, small) = if n1 >= n2 {
        (n1 as f64, n2 as f64)
    } else {
        (n2 as f64, n1 as f64)
    };
    let en = big * small / (big + small);
    let p = kstwo_sf(en.round_ties_even() as u64, d);
    Some(KsResult {
        statistic: d,
        pvalue: p.clamp(0.0, 1.0),
        method: KsMethod::Asymptotic,
    })
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_golden_vector() {
        // ref = 0..99, cur = 30..129 (drift-canary-notes §2.5, scipy 1.17.1).
        let a: Vec<f64> = (0..100).map(f64::from).collect();
        let b: Vec<f64> = (30..130).map(f64::from).collect();
        let r = ks_2samp_sorted(&a, &b).unwrap();
        assert_eq!(r.method, KsMethod::Exact);
        assert!((r.statistic - 0.3).abs() < 1e-15);
        assert!((r.pvalue / 2.248_739_317_492_479e-4 - 1.0).abs() < 1e-12);
        let asym = kstwo_sf(50, 0.3);
        assert!(
            (asym / 1.735_326_020_271_867_6e-4 - 1.0).abs() < 1e-9,
            "{asym}"
        );
    }

    #[test]
    fn degenerate_inputs() {
        assert!(ks_2samp(&[], &[1.0]).is_none());
        assert!(ks_2samp(&[f64::NAN], &[1.0]).is_none());
        let r = ks_2samp(&[1.0, 1.0], &[1.0]).unwrap();
        assert_eq!((r.statistic, r.pvalue), (0.0, 1.0));
        assert!(ks_pvalue(0, 3, 0.5).is_none());
        assert!(ks_pvalue(3, 3, f64::NAN).is_none());
    }
}
