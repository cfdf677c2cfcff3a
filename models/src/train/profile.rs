//! The reference profile (`profile.json`) from the training rows, through `vane-stats` (the
//! one implementation of the contract in `../shared/design.md`): numeric → the distinct values
//! of numpy's linear deciles as frozen edges, the share of rows per bin, the missing share,
//! the range and a bounded seeded sample; categorical → the share per vocabulary category and
//! an unseen share (the training rows whose value was null).
//!
//! Values are profiled as the model tensor holds them (`f32`, widened exactly to `f64`), so a
//! served value equal to an edge falls in the same bin as in training.

use vane_registry::FeatureProfile;

use crate::rng::SplitMix64;

/// A seeded sample of `k` of the `n` row positions (ascending), for the KS reference sample.
pub(crate) fn sample_positions(n: usize, k: usize, seed: u64) -> Vec<usize> {
    let mut rng = SplitMix64::new(seed ^ 0x0050_524f_4649_4c45); // "PROFILE"
    vane_stats::profile::sample_positions(n, k, || rng.next_u64())
}

/// The profile of a numeric column (`values` over all reference rows, NaN = missing);
/// `sample` = positions of the rows whose values form the KS sample.
pub(crate) fn numeric(name: &str, values: &[f32], sample: &[usize]) -> FeatureProfile {
    let wide: Vec<f64> = values.iter().map(|x| f64::from(*x)).collect();
    vane_stats::profile::numeric(name, &wide, sample)
}

/// The profile of a categorical column given as tensor codes (`0..vocab.len()`; anything else
/// counts as unseen).
pub(crate) fn categorical(name: &str, vocab: &[String], codes: &[f32]) -> FeatureProfile {
    let mut counts = vec![0u64; vocab.len()];
    let mut unseen = 0u64;
    for c in codes {
        if *c >= 0.0 && (*c as usize) < vocab.len() && c.fract() == 0.0 {
            counts[*c as usize] += 1;
        } else {
            unseen += 1;
        }
    }
    vane_stats::profile::categorical(name, vocab.to_vec(), &counts, unseen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deciles_are_numpy_linear_quantiles() {
        // numpy.quantile(1..=100, [0.1, …, 0.9]) = 10.9, 20.8, …, 90.1.
        let values: Vec<f32> = (1..=100).map(|i| i as f32).chain([f32::NAN; 25]).collect();
        let sample = sample_positions(values.len(), 10, 1);
        let p = numeric("x", &values, &sample);
        p.validate().unwrap();
        let FeatureProfile::Numeric {
            edges,
            shares,
            missing_share,
            sample: s,
            min,
            max,
            ..
        } = p
        else {
            panic!()
        };
        let want = [10.9, 20.8, 30.7, 40.6, 50.5, 60.4, 70.3, 80.2, 90.1];
        assert_eq!(edges.len(), want.len());
        for (e, w) in edges.iter().zip(want) {
            assert!((e - w).abs() < 1e-9, "{edges:?}");
        }
        assert!(
            shares.iter().all(|s| (*s - 10.0 / 125.0).abs() < 1e-12),
            "{shares:?}"
        );
        assert!((missing_share - 0.2).abs() < 1e-12);
        assert!(s.len() <= 10 && s.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!((min, max), (Some(1.0), Some(100.0)));
    }

    #[test]
    fn discrete_columns_get_deduplicated_edges() {
        // 70% zeros, 20% ones, 10% twos: numpy gives 0 ×6, 0.3, 1, 1.1.
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
        assert_eq!(edges.len(), 4, "{edges:?}");
        assert_eq!(edges[0], 0.0);
        assert!((edges[1] - 0.3).abs() < 1e-9 && edges[2] == 1.0 && (edges[3] - 1.1).abs() < 1e-9);
        assert_eq!(shares, [0.7, 0.0, 0.2, 0.0, 0.1]);
        // All missing: one empty bin, missing share 1.
        let p = numeric("m", &[f32::NAN; 4], &[0, 1]);
        p.validate().unwrap();
    }

    /// The trainer's profile of an f32 column equals numpy's on its f64 widening
    /// (`stats/fixtures/trainer_profile.json`, written by `stats/fixtures/generate.py`).
    #[test]
    fn numeric_profile_equals_numpy() {
        let fixture: serde_json::Value =
            serde_json::from_str(include_str!("../../../stats/fixtures/trainer_profile.json"))
                .unwrap();
        let floats = |v: &serde_json::Value| -> Vec<f64> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap_or(f64::NAN))
                .collect()
        };
        // The fixture's decimals are f32 values; `as f32` recovers them exactly.
        let column: Vec<f32> = floats(&fixture["column"])
            .iter()
            .map(|x| *x as f32)
            .collect();
        let positions: Vec<usize> = fixture["sample_positions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect();
        let want = &fixture["expected"];
        let p = numeric("x", &column, &positions);
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
            panic!()
        };
        // Relative 1e-15: the same arithmetic as numpy; the slack only covers the JSON
        // decimals' parsing (serde_json's default parser may be an ulp off).
        let close = |got: &[f64], want: &[f64], what: &str| {
            assert_eq!(got.len(), want.len(), "{what}: {got:?} vs {want:?}");
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() <= 1e-15 * w.abs(), "{what}: {g} vs {w}");
            }
        };
        close(&edges, &floats(&want["edges"]), "edges");
        close(&shares, &floats(&want["shares"]), "shares");
        close(
            &[missing_share],
            &[want["missing_share"].as_f64().unwrap()],
            "missing",
        );
        close(&sample, &floats(&want["sample"]), "sample");
        close(
            &[min.unwrap(), max.unwrap()],
            &[want["min"].as_f64().unwrap(), want["max"].as_f64().unwrap()],
            "range",
        );
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
