//! Live values binned against a profile's frozen bins (never re-binned per window), and the
//! reference shares in the same layout, ready for [`crate::psi::psi`] and
//! [`crate::chi2::chi2_goodness_of_fit`].

use vane_registry::FeatureProfile;

/// Why a set of edges cannot define bins.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BinsError {
    #[error("edge {index} is {value}, not finite")]
    NotFinite { index: usize, value: f64 },
    #[error("edges are not strictly increasing at {index} ({prev} then {next})")]
    NotIncreasing { index: usize, prev: f64, next: f64 },
}

/// Frozen numeric bins `(-inf, e0]`, `(e0, e1]`, …, `(e_last, +inf)` plus a missing bin.
///
/// Bin indices: `0..=edges.len()` for values, `edges.len() + 1` for NaN (missing), so
/// [`NumericBins::len`] = `edges.len() + 2` counters cover every input.
#[derive(Debug, Clone, PartialEq)]
pub struct NumericBins {
    edges: Vec<f64>,
}

/// Up to this many edges a linear count beats a binary search (no unpredictable branches).
const LINEAR_MAX_EDGES: usize = 16;

impl NumericBins {
    /// Bins from finite, strictly increasing edges.
    pub fn new(edges: Vec<f64>) -> Result<Self, BinsError> {
        if let Some((index, &value)) = edges.iter().enumerate().find(|(_, e)| !e.is_finite()) {
            return Err(BinsError::NotFinite { index, value });
        }
        if let Some(index) = (1..edges.len()).find(|&i| edges[i - 1] >= edges[i]) {
            return Err(BinsError::NotIncreasing {
                index,
                prev: edges[index - 1],
                next: edges[index],
            });
        }
        Ok(Self { edges })
    }

    /// One value bin (everything) plus the missing bin.
    pub fn empty() -> Self {
        Self { edges: Vec::new() }
    }

    /// The bins of a numeric profile (`None` for a categorical one). The profile's edges are
    /// taken as they are; run [`FeatureProfile::validate`] first to reject broken ones.
    pub fn from_profile(profile: &FeatureProfile) -> Option<Self> {
        match profile {
            FeatureProfile::Numeric { edges, .. } => Some(Self {
                edges: edges.clone(),
            }),
            FeatureProfile::Categorical { .. } => None,
        }
    }

    /// The inner edges.
    pub fn edges(&self) -> &[f64] {
        &self.edges
    }

    /// Takes the edges back.
    pub fn into_edges(self) -> Vec<f64> {
        self.edges
    }

    /// Number of counters: value bins plus the missing bin (`edges.len() + 2`).
    #[allow(clippy::len_without_is_empty)] // never empty: there is always a missing bin
    #[inline]
    pub fn len(&self) -> usize {
        self.edges.len() + 2
    }

    /// Index of the missing (NaN) bin.
    #[inline]
    pub fn missing_bin(&self) -> usize {
        self.edges.len() + 1
    }

    /// The bin of `x`: the number of edges strictly below it (so `x == e_i` falls in
    /// `(e_{i-1}, e_i]`, numpy's `searchsorted(edges, x, side='left')`); NaN → the missing bin.
    /// Allocation-free; a branch-free count for up to 16 edges.
    #[inline]
    pub fn bin(&self, x: f64) -> usize {
        if x.is_nan() {
            return self.missing_bin();
        }
        if self.edges.len() <= LINEAR_MAX_EDGES {
            self.edges.iter().filter(|e| **e < x).count()
        } else {
            self.edges.partition_point(|e| *e < x)
        }
    }

    /// Adds the bin counts of `values` to `counts` (which must have [`NumericBins::len`]
    /// entries; a shorter slice ignores the values whose bin is past its end).
    #[inline]
    pub fn count_into(&self, values: &[f64], counts: &mut [u64]) {
        for x in values {
            if let Some(c) = counts.get_mut(self.bin(*x)) {
                *c += 1;
            }
        }
    }

    /// The bin counts of `values`, [`NumericBins::len`] entries.
    pub fn counts(&self, values: &[f64]) -> Vec<u64> {
        let mut counts = vec![0; self.len()];
        self.count_into(values, &mut counts);
        counts
    }
}

/// The reference shares of a profile in the live-counter layout: for a numeric profile the
/// bin shares then the missing share ([`NumericBins`] order); for a categorical one the
/// category shares then the unseen share.
pub fn reference_shares(profile: &FeatureProfile) -> Vec<f64> {
    match profile {
        FeatureProfile::Numeric {
            shares,
            missing_share,
            ..
        } => shares.iter().copied().chain([*missing_share]).collect(),
        FeatureProfile::Categorical {
            shares,
            unseen_share,
            ..
        } => shares.iter().copied().chain([*unseen_share]).collect(),
    }
}

/// [`reference_shares`] of a numeric profile (`None` for a categorical one).
pub fn numeric_reference_shares(profile: &FeatureProfile) -> Option<Vec<f64>> {
    matches!(profile, FeatureProfile::Numeric { .. }).then(|| reference_shares(profile))
}

/// [`reference_shares`] of a categorical profile (`None` for a numeric one).
pub fn categorical_reference_shares(profile: &FeatureProfile) -> Option<Vec<f64>> {
    matches!(profile, FeatureProfile::Categorical { .. }).then(|| reference_shares(profile))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_follow_the_left_open_convention() {
        let b = NumericBins::new(vec![1.0, 2.0, 3.0]).unwrap();
        assert_eq!(b.len(), 5);
        let xs = [
            0.0,
            1.0,
            1.5,
            2.0,
            3.0,
            3.5,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        let got: Vec<usize> = xs.iter().map(|x| b.bin(*x)).collect();
        assert_eq!(got, [0, 0, 1, 1, 2, 3, 3, 0]);
        assert_eq!(b.bin(f64::NAN), 4);
        assert_eq!(b.counts(&[0.0, 5.0, f64::NAN]), [1, 0, 0, 1, 1]);
        // The binary-search path agrees with the linear one.
        let many: Vec<f64> = (0..40).map(f64::from).collect();
        let big = NumericBins::new(many.clone()).unwrap();
        for x in [-1.0, 0.0, 0.5, 17.0, 17.2, 39.0, 40.0] {
            assert_eq!(big.bin(x), many.iter().filter(|e| **e < x).count());
        }
        assert!(NumericBins::new(vec![1.0, 1.0]).is_err());
        assert!(NumericBins::new(vec![f64::NAN]).is_err());
        assert_eq!(NumericBins::empty().bin(3.0), 0);
    }

    #[test]
    fn reference_shares_layout() {
        let p = crate::profile::categorical("c", vec!["a".into()], &[3], 1);
        assert_eq!(reference_shares(&p), [0.75, 0.25]);
        assert!(numeric_reference_shares(&p).is_none());
        let p = crate::profile::numeric("x", &[1.0, f64::NAN], &[]);
        assert_eq!(numeric_reference_shares(&p).unwrap(), [0.5, 0.0, 0.5]);
    }
}
