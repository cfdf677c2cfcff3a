//! Rank tests for the load tester's canary verdict, the way Kayenta judges a metric
//! (`MannWhitneyClassifier`): the Mann–Whitney U test, the Hodges–Lehmann location shift with
//! its rank-based confidence interval, and Kayenta's Pass/High/Low decision.

use crate::special::{normal_two_sided_isf, normal_two_sided_sf};

/// Result of a two-sided Mann–Whitney U test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MwuResult {
    /// U of the first sample: its rank sum minus n1(n1 + 1)/2 (ties get average ranks).
    pub u1: f64,
    /// Two-sided p-value (normal approximation, tie-corrected variance, continuity correction).
    pub pvalue: f64,
}

/// `scipy.stats.mannwhitneyu(a, b, alternative="two-sided", method="asymptotic",
/// use_continuity=True)`. NaN values are dropped (scipy would return NaN); ±∞ rank as the
/// extremes. `None` if either sample is then empty. When every value ties, p = 1.
/// O((n1 + n2)·log(n1 + n2)) time, one copy of each sample.
pub fn mann_whitney_u(a: &[f64], b: &[f64]) -> Option<MwuResult> {
    let a = sorted_without(a, |x| !x.is_nan());
    let b = sorted_without(b, |x| !x.is_nan());
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let (n1, n2) = (a.len(), b.len());
    let (r1, tie_term) = rank_sum_and_ties(&a, &b);
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let u1 = r1 - n1f * (n1f + 1.0) / 2.0;
    let u2 = n1f * n2f - u1;
    let u = u1.max(u2);
    let nf = (n1 + n2) as f64;
    let mu = n1f * n2f / 2.0;
    let s = (n1f * n2f / 12.0 * ((nf + 1.0) - tie_term / (nf * (nf - 1.0)))).sqrt();
    let z = (u - mu - 0.5) / s;
    // 2·Φ(−z), clipped to 1 (z <= 0, or −inf when every value ties, gives 1).
    let pvalue = if z > 0.0 { normal_two_sided_sf(z) } else { 1.0 };
    Some(MwuResult { u1, pvalue })
}

/// Rank sum of `a` in the pooled sample (average ranks for ties) and Σ (t³ − t) over the tie
/// groups, for two ascending samples.
fn rank_sum_and_ties(a: &[f64], b: &[f64]) -> (f64, f64) {
    let (mut i, mut j) = (0usize, 0usize);
    let mut pos = 0usize;
    let mut r1 = 0.0;
    let mut ties = 0.0;
    while i < a.len() || j < b.len() {
        let v = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => x.min(*y),
            (Some(x), None) => *x,
            (None, Some(y)) => *y,
            (None, None) => break,
        };
        let (i0, j0) = (i, j);
        while i < a.len() && a[i] == v {
            i += 1;
        }
        while j < b.len() && b[j] == v {
            j += 1;
        }
        if i == i0 && j == j0 {
            break; // only NaN left, which callers filter out
        }
        let t = (i - i0) + (j - j0);
        // Ranks pos + 1 ..= pos + t, average (2·pos + t + 1)/2.
        let avg = (2 * pos + t + 1) as f64 / 2.0;
        r1 += avg * (i - i0) as f64;
        let tf = t as f64;
        ties += tf * tf * tf - tf;
        pos += t;
    }
    (r1, ties)
}

fn sorted_without(x: &[f64], keep: impl Fn(f64) -> bool) -> Vec<f64> {
    let mut v: Vec<f64> = x.iter().copied().filter(|x| keep(*x)).collect();
    v.sort_unstable_by(f64::total_cmp);
    v
}

/// A location shift with its confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShiftEstimate {
    /// Hodges–Lehmann estimate: the median of all pairwise differences `b_j − a_i`.
    pub estimate: f64,
    /// Lower end of the confidence interval.
    pub lower: f64,
    /// Upper end of the confidence interval.
    pub upper: f64,
}

/// The shift of `b` relative to `a` (positive when `b` is larger): the Hodges–Lehmann estimate
/// (median of the m·n differences `b_j − a_i`) and the Mann–Whitney confidence interval
/// `[d_(k_lo), d_(k_hi)]` of the sorted differences, with the normal approximation
/// `c = m·n/2 − ½ − z·σ`, `k_lo = ⌈c⌉`, `k_hi = m·n − ⌊c⌋` (clamped to 1..=m·n), `z` the
/// two-sided normal quantile of `confidence` and `σ` the rank-sum standard deviation with the
/// tie correction of the samples' own ties.
///
/// That interval is where R's `wilcox.test(conf.int = TRUE, exact = FALSE, correct = TRUE)`
/// and Kayenta's `MannWhitney` (a port of it) land: they root-find
/// `(W(μ) − m·n/2 − ½·sign)/σ = ±z` over the shift μ, a step function of μ whose jumps are
/// exactly the differences, so the roots are the order statistics above (and `c` is the normal
/// approximation of R's exact `qwilcox` rule). Their point estimate is any root of the
/// `z = 0` equation, a flat interval that contains the median used here.
///
/// Non-finite values are dropped; `None` if a sample is then empty or `confidence` is not in
/// (0, 1). Cost: O((m + n)·log(m·n)) expected time and O(m + n) memory — the differences are
/// never materialized: order statistics are selected in the implicitly sorted m×n matrix by
/// randomized pivoting with O(m + n) counting passes.
pub fn hodges_lehmann(a: &[f64], b: &[f64], confidence: f64) -> Option<ShiftEstimate> {
    if !(confidence > 0.0 && confidence < 1.0) {
        return None;
    }
    let a = sorted_without(a, f64::is_finite);
    let b = sorted_without(b, f64::is_finite);
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let (m, n) = (a.len(), b.len());
    let total = m * n;
    let mut sel = PairwiseDiffs::new(&a, &b);
    let estimate = if total % 2 == 1 {
        sel.select(total / 2)
    } else {
        let lo = sel.select(total / 2 - 1);
        let hi = sel.select(total / 2);
        let mid = (lo + hi) / 2.0;
        if mid.is_finite() {
            mid
        } else {
            lo / 2.0 + hi / 2.0
        }
    };
    let z = normal_two_sided_isf(1.0 - confidence);
    let ties = tie_term(&a) + tie_term(&b);
    let (mf, nf) = (m as f64, n as f64);
    let big_n = mf + nf;
    let sigma = (mf * nf / 12.0 * ((big_n + 1.0) - ties / (big_n * (big_n - 1.0)))).sqrt();
    let c = total as f64 / 2.0 - 0.5 - z * sigma;
    let clamp = |k: f64| k.clamp(1.0, total as f64) as usize;
    let k_lo = clamp(c.ceil());
    let k_hi = clamp(total as f64 - c.floor());
    Some(ShiftEstimate {
        estimate,
        lower: sel.select(k_lo - 1),
        upper: sel.select(k_hi - 1),
    })
}

/// Σ (t³ − t) over the tie groups of an ascending slice.
fn tie_term(sorted: &[f64]) -> f64 {
    sorted
        .chunk_by(|x, y| x == y)
        .map(|g| {
            let t = g.len() as f64;
            t * t * t - t
        })
        .sum()
}

/// Order statistics of `{b_j − a_i}` for ascending `a`, `b`, without building the m·n
/// differences. Row `i` (`b_j − a_i` over `j`) is ascending and rows descend as `i` grows, also
/// after rounding (floating-point subtraction is monotone in each operand), so "how many
/// differences are below p" is one O(m + n) staircase walk.
struct PairwiseDiffs<'s> {
    a: &'s [f64],
    b: &'s [f64],
    lo: Vec<usize>,
    hi: Vec<usize>,
    rng: u64,
}

impl<'s> PairwiseDiffs<'s> {
    fn new(a: &'s [f64], b: &'s [f64]) -> Self {
        Self {
            a,
            b,
            lo: vec![0; a.len()],
            hi: vec![0; a.len()],
            rng: 0x9E37_79B9_7F4A_7C15,
        }
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: the pivots only steer the running time, never the result.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// The `r`-th smallest difference (0-based, `r < m·n`).
    fn select(&mut self, r: usize) -> f64 {
        let (a, b) = (self.a, self.b);
        let n = b.len();
        self.lo.iter_mut().for_each(|x| *x = 0);
        self.hi.iter_mut().for_each(|x| *x = n);
        let small = 4 * (a.len() + n);
        loop {
            let active: usize = self.lo.iter().zip(&self.hi).map(|(l, h)| h - l).sum();
            if active <= small {
                let below: usize = self.lo.iter().sum();
                let mut cand: Vec<f64> = Vec::with_capacity(active);
                for (i, ai) in a.iter().enumerate() {
                    cand.extend(b[self.lo[i]..self.hi[i]].iter().map(|bj| bj - ai));
                }
                let k = r.saturating_sub(below).min(cand.len().saturating_sub(1));
                if cand.is_empty() {
                    return f64::NAN; // unreachable while r < m·n
                }
                let (_, x, _) = cand.select_nth_unstable_by(k, f64::total_cmp);
                return *x;
            }
            // A uniformly random candidate as the pivot.
            let mut t = (self.next_random() % active as u64) as usize;
            let mut pivot = f64::NAN;
            for (i, ai) in a.iter().enumerate() {
                let len = self.hi[i] - self.lo[i];
                if t < len {
                    pivot = b[self.lo[i] + t] - ai;
                    break;
                }
                t -= len;
            }
            // Counts of differences < pivot and <= pivot, per row and in total.
            let (mut lt_total, mut le_total) = (0usize, 0usize);
            let (mut jl, mut je) = (0usize, 0usize);
            let mut decision = std::cmp::Ordering::Equal;
            // Two passes: totals first, then the narrowing that the totals decide.
            for ai in a {
                while jl < n && b[jl] - ai < pivot {
                    jl += 1;
                }
                while je < n && b[je] - ai <= pivot {
                    je += 1;
                }
                lt_total += jl;
                le_total += je;
            }
            if r < lt_total {
                decision = std::cmp::Ordering::Less;
            } else if r >= le_total {
                decision = std::cmp::Ordering::Greater;
            }
            if decision == std::cmp::Ordering::Equal {
                return pivot;
            }
            let (mut jl, mut je) = (0usize, 0usize);
            for (i, ai) in a.iter().enumerate() {
                match decision {
                    std::cmp::Ordering::Less => {
                        while jl < n && b[jl] - ai < pivot {
                            jl += 1;
                        }
                        self.hi[i] = self.hi[i].min(jl).max(self.lo[i]);
                    }
                    _ => {
                        while je < n && b[je] - ai <= pivot {
                            je += 1;
                        }
                        self.lo[i] = self.lo[i].max(je).min(self.hi[i]);
                    }
                }
            }
        }
    }
}

/// Kayenta's verdict on a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// No shift beyond the tolerance.
    Pass,
    /// The canary is higher than the baseline (e.g. slower).
    High,
    /// The canary is lower than the baseline.
    Low,
}

/// A Kayenta-style classification of a canary metric against its baseline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Classification {
    pub comparison: Comparison,
    /// Shift of the canary relative to the baseline (canary − baseline).
    pub shift: ShiftEstimate,
    /// Two-sided Mann–Whitney p-value of canary vs baseline ([`mann_whitney_u`]).
    pub pvalue: f64,
}

/// Kayenta's default effect-size tolerance (`MannWhitneyClassifier` `fraction`).
pub const KAYENTA_TOLERANCE: f64 = 0.25;
/// The confidence level Kayenta's Netflix ACA judge uses.
pub const KAYENTA_CONFIDENCE: f64 = 0.98;

/// Kayenta's `MannWhitneyClassifier` decision (direction "either") for a canary sample against
/// a baseline sample (e.g. per-interval latencies):
///
/// * identical samples (as multisets), or a single distinct value overall → `Pass`;
/// * otherwise, with the shift `s` = [`hodges_lehmann`]`(baseline, canary, confidence)`:
///   `High` if `s.lower > tolerance·|s.estimate|`, `Low` if `s.upper < −tolerance·|s.estimate|`,
///   else `Pass`. So a shift counts only when the whole interval clears a band proportional to
///   the estimated effect.
///
/// Non-finite values are dropped first (Kayenta removes NaN before classifying). `None` when a
/// sample is then empty (Kayenta's "Nodata") or `confidence` is not in (0, 1).
pub fn kayenta_classify(
    baseline: &[f64],
    canary: &[f64],
    tolerance: f64,
    confidence: f64,
) -> Option<Classification> {
    let base = sorted_without(baseline, f64::is_finite);
    let can = sorted_without(canary, f64::is_finite);
    let shift = hodges_lehmann(&base, &can, confidence)?;
    let pvalue = mann_whitney_u(&can, &base)?.pvalue;
    let single_value =
        base.first() == base.last() && can.first() == can.last() && base.first() == can.first();
    let comparison = if base == can || single_value {
        Comparison::Pass
    } else {
        let bound = tolerance * shift.estimate.abs();
        if shift.lower > bound {
            Comparison::High
        } else if shift.upper < -bound {
            Comparison::Low
        } else {
            Comparison::Pass
        }
    };
    Some(Classification {
        comparison,
        shift,
        pvalue,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute_order_stat(a: &[f64], b: &[f64], r: usize) -> f64 {
        let mut d: Vec<f64> = a
            .iter()
            .flat_map(|x| b.iter().map(move |y| y - x))
            .collect();
        d.sort_unstable_by(f64::total_cmp);
        d[r]
    }

    #[test]
    fn selection_matches_sorting() {
        let a: Vec<f64> = (0..37).map(|i| ((i * 7919) % 101) as f64 / 3.0).collect();
        let b: Vec<f64> = (0..53).map(|i| ((i * 104_729) % 89) as f64 / 7.0).collect();
        let (a, b) = (
            sorted_without(&a, f64::is_finite),
            sorted_without(&b, f64::is_finite),
        );
        let mut sel = PairwiseDiffs::new(&a, &b);
        for r in [0, 1, 100, 980, 981, 1500, 37 * 53 - 1] {
            assert_eq!(sel.select(r), brute_order_stat(&a, &b, r), "rank {r}");
        }
    }

    #[test]
    fn mwu_simple() {
        // scipy.stats.mannwhitneyu([1,2,3,4], [5,6,7], method="asymptotic") → U=0, p=0.0518…
        let r = mann_whitney_u(&[1.0, 2.0, 3.0, 4.0], &[5.0, 6.0, 7.0]).unwrap();
        assert_eq!(r.u1, 0.0);
        assert!(
            (r.pvalue - 0.051_829_927_217_909_68).abs() < 1e-12,
            "{}",
            r.pvalue
        );
        let r = mann_whitney_u(&[1.0, 1.0], &[1.0]).unwrap();
        assert_eq!((r.u1, r.pvalue), (1.0, 1.0));
        assert!(mann_whitney_u(&[f64::NAN], &[1.0]).is_none());
    }

    #[test]
    fn kayenta_decisions() {
        let base: Vec<f64> = (0..200)
            .map(|i| 10.0 + ((i * 37) % 100) as f64 / 10.0)
            .collect();
        let same = kayenta_classify(&base, &base, KAYENTA_TOLERANCE, KAYENTA_CONFIDENCE).unwrap();
        assert_eq!(same.comparison, Comparison::Pass);
        let slow: Vec<f64> = base.iter().map(|x| 2.0 * x).collect();
        let c = kayenta_classify(&base, &slow, KAYENTA_TOLERANCE, KAYENTA_CONFIDENCE).unwrap();
        assert_eq!(c.comparison, Comparison::High);
        assert!(c.shift.estimate > 10.0 && c.shift.lower > 0.0);
        let fast: Vec<f64> = base.iter().map(|x| 0.5 * x).collect();
        let c = kayenta_classify(&base, &fast, KAYENTA_TOLERANCE, KAYENTA_CONFIDENCE).unwrap();
        assert_eq!(c.comparison, Comparison::Low);
        // A tiny jitter is within tolerance.
        let jitter: Vec<f64> = base.iter().map(|x| x + 0.01).collect();
        let c = kayenta_classify(&base, &jitter, KAYENTA_TOLERANCE, KAYENTA_CONFIDENCE).unwrap();
        assert_eq!(c.comparison, Comparison::Pass);
        let flat = kayenta_classify(&[3.0; 5], &[3.0; 9], 0.25, 0.98).unwrap();
        assert_eq!(flat.comparison, Comparison::Pass);
        assert!(kayenta_classify(&[], &[1.0], 0.25, 0.98).is_none());
        assert!(kayenta_classify(&[1.0], &[1.0], 0.25, 1.5).is_none());
    }
}
