//! Population stability index over frozen bins.

/// The share that replaces an empty bin on either side (Evidently's convention), so PSI stays
/// finite.
pub const EMPTY_SHARE: f64 = 1e-4;

/// PSI = Σ (r − c)·ln(r / c) over the bins (the same as Σ (c − r)·ln(c / r)), with reference
/// shares `r` and current shares `c = count / total`; every zero share on either side is
/// replaced by [`EMPTY_SHARE`] first, without renormalizing (as Evidently does).
///
/// `None` when the lengths differ, no bins are given, the counts sum to zero, or a reference
/// share is negative or not finite. Reference shares are used as given (a profile's shares sum
/// to 1 together with the missing/unseen share, which is the last bin of the layout).
pub fn psi(reference_shares: &[f64], current_counts: &[u64]) -> Option<f64> {
    if reference_shares.len() != current_counts.len() || reference_shares.is_empty() {
        return None;
    }
    if reference_shares.iter().any(|r| !r.is_finite() || *r < 0.0) {
        return None;
    }
    let total: u64 = current_counts
        .iter()
        .try_fold(0u64, |t, c| t.checked_add(*c))?;
    if total == 0 {
        return None;
    }
    let total = total as f64;
    let value = reference_shares
        .iter()
        .zip(current_counts)
        .map(|(&r, &c)| {
            let r = if r == 0.0 { EMPTY_SHARE } else { r };
            let c = if c == 0 {
                EMPTY_SHARE
            } else {
                c as f64 / total
            };
            (r - c) * (r / c).ln()
        })
        .sum();
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_is_zero_and_shift_is_positive() {
        assert_eq!(psi(&[0.25; 4], &[10, 10, 10, 10]), Some(0.0));
        let v = psi(&[0.5, 0.5], &[9, 1]).unwrap();
        // (0.5 − 0.9)·ln(0.5/0.9) + (0.5 − 0.1)·ln(0.5/0.1)
        let want = -0.4 * (0.5f64 / 0.9).ln() + 0.4 * 5f64.ln();
        assert!((v - want).abs() < 1e-15);
        assert!(psi(&[1.0, 0.0], &[0, 5]).unwrap() > 1.0);
        assert_eq!(psi(&[0.5], &[1, 2]), None);
        assert_eq!(psi(&[0.5, 0.5], &[0, 0]), None);
        assert_eq!(psi(&[f64::NAN, 0.5], &[1, 0]), None);
        assert_eq!(psi(&[], &[]), None);
    }
}
