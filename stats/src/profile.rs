//! Builders for the reference profile of one feature ([`FeatureProfile`]), per the design's
//! "Reference profile" contract: numeric → the distinct numpy-linear deciles as frozen bin
//! edges, bin shares over all rows, the missing share, a bounded sorted sample and the range;
//! categorical → category shares and an unseen share.

use vane_registry::FeatureProfile;

use crate::binning::NumericBins;
use crate::quantile::linear_quantiles;

/// The quantile levels of the frozen edges: 0.1, 0.2, …, 0.9.
pub const DECILES: [f64; 9] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];

/// `k` of the positions `0..n`, uniformly without replacement (a partial Fisher–Yates
/// shuffle), ascending: which rows form a profile's KS sample. `next_u64` is the caller's
/// seeded random source, so each tool keeps its own reproducible stream. All positions when
/// `k >= n`.
pub fn sample_positions(n: usize, k: usize, mut next_u64: impl FnMut() -> u64) -> Vec<usize> {
    if k >= n {
        return (0..n).collect();
    }
    let mut perm: Vec<usize> = (0..n).collect();
    for i in 0..k {
        // Lemire's multiply-shift: an index in i..n without modulo bias worth worrying about.
        let j = i + ((u128::from(next_u64()) * (n - i) as u128) >> 64) as usize;
        perm.swap(i, j);
    }
    perm.truncate(k);
    perm.sort_unstable();
    perm
}

/// The profile of a numeric column (`values` over all reference rows).
///
/// * NaN is missing. ±∞ are values: they count in the first/last bin (as a monitor bins them)
///   but, like the profile's other numbers, edges, sample and range are computed from the
///   finite values only, so the profile always passes [`FeatureProfile::validate`].
/// * `edges`: the distinct values, ascending, of `numpy.quantile(finite, DECILES)`; none when
///   there is no finite value. A discrete feature therefore gets fewer than nine edges.
/// * `shares[b]`: rows in bin `b` (`(-inf, e0]`, `(e0, e1]`, …, `(e_last, +inf)`) over all rows,
///   so `sum(shares) + missing_share = 1`. No rows at all is reported like an all-missing
///   column (one empty bin, `missing_share` 1).
/// * `sample`: the finite values at `sample_positions` (positions past the end are ignored),
///   ascending. `min`/`max`: of the finite values, `None` when there is none.
pub fn numeric(name: &str, values: &[f64], sample_positions: &[usize]) -> FeatureProfile {
    let mut finite: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    finite.sort_unstable_by(f64::total_cmp);
    let mut edges = linear_quantiles(&finite, &DECILES);
    // np.unique: sort, then drop exact repeats (so -0.0 and 0.0 are one edge).
    edges.sort_unstable_by(f64::total_cmp);
    edges.dedup_by(|a, b| a == b);
    let bins = NumericBins::new(edges).unwrap_or_else(|_| NumericBins::empty());
    let mut counts = vec![0u64; bins.len()];
    for x in values {
        counts[bins.bin(*x)] += 1;
    }
    let missing = counts.pop().unwrap_or(0);
    let (shares, missing_share) = if values.is_empty() {
        (vec![0.0; counts.len()], 1.0)
    } else {
        let n = values.len() as f64;
        (
            counts.iter().map(|c| *c as f64 / n).collect(),
            missing as f64 / n,
        )
    };
    let mut sample: Vec<f64> = sample_positions
        .iter()
        .filter_map(|&i| values.get(i).copied())
        .filter(|x| x.is_finite())
        .collect();
    sample.sort_unstable_by(f64::total_cmp);
    FeatureProfile::Numeric {
        name: name.to_string(),
        edges: bins.into_edges(),
        shares,
        missing_share,
        sample,
        min: finite.first().copied(),
        max: finite.last().copied(),
    }
}

/// The profile of a categorical column from per-category counts and the count of rows whose
/// value was none of `categories` (or missing).
///
/// Shares are over `sum(counts) + unseen`. A `counts` entry past `categories.len()` counts as
/// unseen; a missing entry as zero. With no rows at all, every category share is 0 and
/// `unseen_share` is 1, which keeps `sum(shares) + unseen_share = 1` (a valid profile that
/// flags any live category as a shift). Duplicate category names are the caller's to avoid
/// (`validate` rejects them).
pub fn categorical(
    name: &str,
    categories: Vec<String>,
    counts: &[u64],
    unseen: u64,
) -> FeatureProfile {
    let k = categories.len();
    // u128: no sum of u64 counts can overflow it.
    let extra: u128 = counts.iter().skip(k).map(|c| u128::from(*c)).sum();
    let unseen = u128::from(unseen) + extra;
    let known: Vec<u128> = (0..k)
        .map(|i| u128::from(counts.get(i).copied().unwrap_or(0)))
        .collect();
    let total: u128 = known.iter().sum::<u128>() + unseen;
    let (shares, unseen_share) = if total == 0 {
        (vec![0.0; k], 1.0)
    } else {
        let t = total as f64;
        (
            known.iter().map(|c| *c as f64 / t).collect(),
            unseen as f64 / t,
        )
    };
    FeatureProfile::Categorical {
        name: name.to_string(),
        categories,
        shares,
        unseen_share,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuous_column() {
        let values: Vec<f64> = (1..=100).map(f64::from).chain([f64::NAN; 25]).collect();
        let p = numeric("x", &values, &[0, 5, 110, 500]);
        p.validate().unwrap();
        let FeatureProfile::Numeric {
            edges,
            shares,
            missing_share,
            sample,
            min,
            max,
            ..
        } = p
        else {
            panic!("numeric")
        };
        // np.quantile(1..=100, 0.1) = 1 + 99·0.1 = 10.9, …
        assert_eq!(edges.len(), 9);
        for (k, e) in edges.iter().enumerate() {
            let want = 1.0 + 99.0 * DECILES[k];
            assert!((e - want).abs() < 1e-12, "{e} {want}");
        }
        assert!((shares.iter().sum::<f64>() + missing_share - 1.0).abs() < 1e-12);
        assert!((missing_share - 0.2).abs() < 1e-15);
        assert_eq!(sample, [1.0, 6.0]);
        assert_eq!((min, max), (Some(1.0), Some(100.0)));
    }

    #[test]
    fn discrete_all_missing_and_empty() {
        // 70 % zeros, 20 % ones, 10 % twos: deciles 0,…,0 (7×), 0.1→ linear between.
        let values: Vec<f64> = (0..100)
            .map(|i| match i {
                0..70 => 0.0,
                70..90 => 1.0,
                _ => 2.0,
            })
            .collect();
        let p = numeric("k", &values, &[]);
        p.validate().unwrap();
        let FeatureProfile::Numeric { edges, .. } = &p else {
            panic!()
        };
        // Quantile 0.7 sits at index 69.3 → 0.3, 0.8 at 79.2 → 1, 0.9 at 89.1 → 1.1.
        assert_eq!(edges.len(), 4, "{edges:?}");
        for p in [
            numeric("m", &[f64::NAN; 4], &[0, 1]),
            numeric("e", &[], &[]),
        ] {
            p.validate().unwrap();
            let FeatureProfile::Numeric {
                edges,
                shares,
                missing_share,
                min,
                ..
            } = p
            else {
                panic!()
            };
            assert!(edges.is_empty());
            assert_eq!((shares, missing_share, min), (vec![0.0], 1.0, None));
        }
        let p = numeric(
            "inf",
            &[f64::INFINITY, 1.0, f64::NEG_INFINITY, 2.0],
            &[0, 1],
        );
        p.validate().unwrap();
    }

    #[test]
    fn sample_positions_are_a_sorted_subset() {
        let mut state = 7u64;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            state
        };
        let p = sample_positions(50, 10, &mut next);
        assert_eq!(p.len(), 10);
        assert!(p.windows(2).all(|w| w[0] < w[1]) && p.iter().all(|i| *i < 50));
        assert_eq!(sample_positions(3, 10, &mut next), [0, 1, 2]);
        assert!(sample_positions(0, 10, &mut next).is_empty());
    }

    #[test]
    fn categorical_shares() {
        let cats = vec!["a".to_string(), "b".to_string()];
        let p = categorical("c", cats.clone(), &[2, 1, 1], 0);
        p.validate().unwrap();
        let FeatureProfile::Categorical {
            shares,
            unseen_share,
            ..
        } = p
        else {
            panic!()
        };
        assert_eq!((shares, unseen_share), (vec![0.5, 0.25], 0.25));
        let p = categorical("z", cats, &[], 0);
        p.validate().unwrap();
    }
}
