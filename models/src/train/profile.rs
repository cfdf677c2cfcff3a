//! The reference profile (`profile.json`) from the training rows, per `../shared/design.md`:
//! numeric → frozen decile edges (deduplicated, so a discrete feature has fewer), the share of
//! rows per bin, the missing share and a bounded seeded sample; categorical → the share per
//! vocabulary category and an unseen share (the training rows whose value was null).
//!
//! Values are profiled as the model tensor holds them (`f32`, widened exactly to `f64`), so a
//! served value equal to an edge falls in the same bin as in training.

use vane_registry::FeatureProfile;

use crate::rng::SplitMix64;

/// Deciles: 9 inner edges.
const QUANTILES: usize = 10;

/// A seeded sample of `k` of the `n` row positions (ascending), for the KS reference sample.
pub(crate) fn sample_positions(n: usize, k: usize, seed: u64) -> Vec<usize> {
    let mut perm: Vec<usize> = (0..n).collect();
    let k = k.min(n);
    let mut rng = SplitMix64::new(seed ^ 0x0050_524f_4649_4c45); // "PROFILE"
    for i in 0..k {
        let j = i + rng.below(n - i);
        perm.swap(i, j);
    }
    perm.truncate(k);
    perm.sort_unstable();
    perm
}

/// The profile of a numeric column (`values` over all reference rows, NaN = missing);
/// `sample` = positions of the rows whose values form the KS sample.
pub(crate) fn numeric(name: &str, values: &[f32], sample: &[usize]) -> FeatureProfile {
    let n = values.len().max(1) as f64;
    let mut finite: Vec<f64> = values
        .iter()
        .filter(|x| !x.is_nan())
        .map(|x| f64::from(*x))
        .collect();
    finite.sort_unstable_by(f64::total_cmp);
    let m = finite.len();
    let mut edges: Vec<f64> = Vec::new();
    if m > 0 {
        for k in 1..QUANTILES {
            // Smallest value v with F(v) >= k/10.
            let i = (k * m).div_ceil(QUANTILES).max(1) - 1;
            let e = finite[i];
            if edges.last().is_none_or(|l| *l < e) {
                edges.push(e);
            }
        }
    }
    let mut counts = vec![0usize; edges.len() + 1];
    for x in &finite {
        counts[edges.partition_point(|e| e < x)] += 1;
    }
    let mut sample: Vec<f64> = sample
        .iter()
        .map(|&i| values[i])
        .filter(|x| !x.is_nan())
        .map(f64::from)
        .collect();
    sample.sort_unstable_by(f64::total_cmp);
    FeatureProfile::Numeric {
        name: name.to_string(),
        edges,
        shares: counts.iter().map(|c| *c as f64 / n).collect(),
        missing_share: (values.len() - m) as f64 / n,
        sample,
    }
}

/// The profile of a categorical column given as tensor codes (`0..vocab.len()`; anything else
/// counts as unseen).
pub(crate) fn categorical(name: &str, vocab: &[String], codes: &[f32]) -> FeatureProfile {
    let n = codes.len().max(1) as f64;
    let mut counts = vec![0usize; vocab.len()];
    let mut unseen = 0usize;
    for c in codes {
        if *c >= 0.0 && (*c as usize) < vocab.len() && c.fract() == 0.0 {
            counts[*c as usize] += 1;
        } else {
            unseen += 1;
        }
    }
    FeatureProfile::Categorical {
        name: name.to_string(),
        categories: vocab.to_vec(),
        shares: counts.iter().map(|c| *c as f64 / n).collect(),
        unseen_share: unseen as f64 / n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deciles_of_a_continuous_column() {
        let values: Vec<f32> = (1..=100).map(|i| i as f32).chain([f32::NAN; 25]).collect();
        let sample = sample_positions(values.len(), 10, 1);
        let p = numeric("x", &values, &sample);
        p.validate().unwrap();
        let FeatureProfile::Numeric {
            edges,
            shares,
            missing_share,
            sample: s,
            ..
        } = p
        else {
            panic!()
        };
        assert_eq!(
            edges,
            [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0]
        );
        assert!(
            shares.iter().all(|s| (*s - 10.0 / 125.0).abs() < 1e-12),
            "{shares:?}"
        );
        assert!((missing_share - 0.2).abs() < 1e-12);
        assert!(s.len() <= 10 && s.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn discrete_columns_get_deduplicated_edges() {
        // 70% zeros, 20% ones, 10% twos.
        let values: Vec<f32> = (0..100)
            .map(|i| {
                if i < 70 {
                    0.0
                } else if i < 90 {
                    1.0
                } else {
                    2.0
                }
            })
            .collect();
        let p = numeric("k", &values, &[]);
        p.validate().unwrap();
        let FeatureProfile::Numeric { edges, shares, .. } = p else {
            panic!()
        };
        // F(0) = 0.7 covers deciles 1..7, F(1) = 0.9 deciles 8 and 9.
        assert_eq!(edges, [0.0, 1.0]);
        assert_eq!(shares, [0.7, 0.2, 0.1]);
        // All missing: one empty bin, missing share 1.
        let p = numeric("m", &[f32::NAN; 4], &[0, 1]);
        p.validate().unwrap();
    }

    #[test]
    fn categorical_shares_and_unseen() {
        let vocab = vec!["a".to_string(), "b".to_string()];
        let p = categorical("c", &vocab, &[0.0, 0.0, 1.0, 2.0]);
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
    }

    #[test]
    fn sample_positions_are_seeded_and_bounded() {
        let a = sample_positions(1000, 100, 3);
        assert_eq!(a.len(), 100);
        assert_eq!(a, sample_positions(1000, 100, 3));
        assert_ne!(a, sample_positions(1000, 100, 4));
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(sample_positions(5, 100, 3), [0, 1, 2, 3, 4]);
    }
}
