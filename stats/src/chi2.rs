//! The chi-square distribution's tail and the categorical drift test built on it.

use crate::psi::EMPTY_SHARE;
use crate::special::gamma_q;

/// `scipy.stats.chi2.sf(x, dof)` = Q(dof/2, x/2), the regularized upper incomplete gamma
/// function (power series below `x/2 < dof/2 + 1`, continued fraction above).
///
/// Relative accuracy ~1e-14 for dof >= 1 (x itself being the condition number: a p-value near
/// 1e-300 has x ≈ 1400, so ~1e-13 there). 1 for `x <= 0`, 0 for `x = +inf`; NaN for NaN
/// arguments or `dof <= 0`.
pub fn chi2_sf(x: f64, dof: f64) -> f64 {
    if x.is_nan() || dof.is_nan() || dof <= 0.0 {
        return f64::NAN;
    }
    gamma_q(0.5 * dof, 0.5 * x)
}

/// Result of a chi-square goodness-of-fit test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Chi2Result {
    /// Σ (observed − expected)² / expected over the buckets used.
    pub statistic: f64,
    /// Buckets used − 1.
    pub dof: u32,
    /// `chi2_sf(statistic, dof)`.
    pub pvalue: f64,
}

/// Chi-square goodness of fit of live bucket counts against reference shares (categorical
/// drift; the layout of [`crate::binning::reference_shares`], the unseen bucket included).
///
/// Buckets whose reference share is zero and which saw no observation are left out. On the
/// remaining buckets, zero reference shares become [`EMPTY_SHARE`] and the shares are
/// renormalized to sum to 1; expected = n·share. The result equals
/// `scipy.stats.chisquare(observed, expected)` on those buckets. Negative or non-finite
/// reference shares count as zero.
///
/// `None` when the lengths differ, n = 0, or fewer than two buckets remain.
pub fn chi2_goodness_of_fit(observed: &[u64], reference_shares: &[f64]) -> Option<Chi2Result> {
    if observed.len() != reference_shares.len() {
        return None;
    }
    let n: u64 = observed.iter().try_fold(0u64, |t, c| t.checked_add(*c))?;
    if n == 0 {
        return None;
    }
    let clean = |r: f64| if r.is_finite() && r > 0.0 { r } else { 0.0 };
    let used = || {
        observed
            .iter()
            .zip(reference_shares)
            .map(|(&o, &r)| (o, clean(r)))
            .filter(|&(o, r)| !(r == 0.0 && o == 0))
            .map(|(o, r)| (o, if r == 0.0 { EMPTY_SHARE } else { r }))
    };
    let buckets = used().count();
    if buckets < 2 {
        return None;
    }
    let share_sum: f64 = used().map(|(_, r)| r).sum();
    let nf = n as f64;
    let statistic = used()
        .map(|(o, r)| {
            let e = nf * (r / share_sum);
            let diff = o as f64 - e;
            diff * diff / e
        })
        .sum::<f64>();
    let dof = (buckets - 1) as u32;
    Some(Chi2Result {
        statistic,
        dof,
        pvalue: chi2_sf(statistic, f64::from(dof)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sf_known_values() {
        // scipy.stats.chi2.sf(3.84, 1) = 0.05004352124870519, chi2.sf(10, 4) = 0.04042768199451279
        assert!((chi2_sf(3.84, 1.0) / 0.050_043_521_248_705_19 - 1.0).abs() < 1e-14);
        assert!((chi2_sf(10.0, 4.0) / 0.040_427_681_994_512_79 - 1.0).abs() < 1e-14);
        assert_eq!(chi2_sf(0.0, 3.0), 1.0);
        assert_eq!(chi2_sf(-1.0, 3.0), 1.0);
        assert_eq!(chi2_sf(f64::INFINITY, 3.0), 0.0);
        assert!(chi2_sf(1.0, 0.0).is_nan());
    }

    #[test]
    fn goodness_of_fit_edge_cases() {
        assert!(chi2_goodness_of_fit(&[0, 0], &[0.5, 0.5]).is_none());
        assert!(chi2_goodness_of_fit(&[5, 0], &[1.0, 0.0]).is_none());
        assert!(chi2_goodness_of_fit(&[5], &[1.0, 0.0]).is_none());
        let r = chi2_goodness_of_fit(&[50, 50], &[0.5, 0.5]).unwrap();
        assert_eq!((r.statistic, r.dof, r.pvalue), (0.0, 1, 1.0));
        // An unseen bucket that appears live is tested against EMPTY_SHARE.
        let r = chi2_goodness_of_fit(&[50, 49, 1], &[0.5, 0.5, 0.0]).unwrap();
        assert_eq!(r.dof, 2);
        assert!(r.pvalue < 1e-10);
    }
}
