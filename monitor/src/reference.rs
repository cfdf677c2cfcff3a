//! The reference side of every comparison: a [`Reference`] is a model version's
//! `profile.json`, compiled for binning live values quickly.
//!
//! Layout of every count vector the monitor keeps (and of [`RefFeature::shares`]):
//! numeric → one slot per frozen bin `(-inf, e0]`, `(e0, e1]`, …, `(e_last, +inf)`, then the
//! missing slot; categorical → one slot per reference category, then the unseen slot (values
//! outside the categories, and missing values, as the trainer counts them).

use std::collections::HashMap;

use vane_registry::{FeatureProfile, Profile};
use vane_stats::binning::NumericBins;

/// How one column is binned.
#[derive(Debug, Clone)]
pub enum RefKind {
    Numeric {
        bins: NumericBins,
        edges: Vec<f64>,
        /// Reference range, for the out-of-range share.
        min: f64,
        max: f64,
    },
    Categorical {
        categories: Vec<String>,
        index: HashMap<String, usize>,
    },
}

/// One profiled column (an input feature or the score).
#[derive(Debug, Clone)]
pub struct RefFeature {
    pub name: String,
    pub kind: RefKind,
    /// Reference share per slot (see the module docs).
    pub shares: Vec<f64>,
    /// Sorted reference values for KS (numeric only), at `f32` precision like served values.
    pub sample: Vec<f64>,
}

impl RefFeature {
    /// Slots in this column's count vectors.
    pub fn slots(&self) -> usize {
        self.shares.len()
    }

    pub fn is_numeric(&self) -> bool {
        matches!(self.kind, RefKind::Numeric { .. })
    }

    /// Human-readable label of every slot, for reports and the `bin` metric label.
    pub fn slot_labels(&self) -> Vec<String> {
        match &self.kind {
            RefKind::Numeric { edges, .. } => {
                let mut out = Vec::with_capacity(edges.len() + 2);
                let fmt = |x: f64| format!("{}", x as f32);
                for i in 0..=edges.len() {
                    let lo = if i == 0 {
                        "-inf".to_string()
                    } else {
                        fmt(edges[i - 1])
                    };
                    let hi = if i == edges.len() {
                        "+inf".to_string()
                    } else {
                        fmt(edges[i])
                    };
                    out.push(format!("({lo}, {hi}]"));
                }
                out.push("missing".into());
                out
            }
            RefKind::Categorical { categories, .. } => {
                let mut out = categories.clone();
                out.push("unseen".into());
                out
            }
        }
    }

    /// Compiles one profiled feature. With [`Precision::F32`] the reference sample and range
    /// are rounded to `f32`, the precision of served values, so that a value typed as 13.9 in
    /// a CSV and 13.9 sent through an `f32` tensor stay equal (ties stay ties in KS).
    pub fn from_profile(p: &FeatureProfile, precision: Precision) -> Self {
        let round = |x: f64| match precision {
            Precision::F32 => f64::from(x as f32),
            Precision::F64 => x,
        };
        match p {
            FeatureProfile::Numeric {
                name,
                edges,
                shares,
                missing_share,
                sample,
                min,
                max,
            } => {
                let mut s: Vec<f64> = sample.iter().map(|x| round(*x)).collect();
                s.sort_unstable_by(f64::total_cmp);
                let (lo, hi) = match (min, max) {
                    (Some(lo), Some(hi)) => (*lo, *hi),
                    _ => (
                        s.first().copied().unwrap_or(f64::NEG_INFINITY),
                        s.last().copied().unwrap_or(f64::INFINITY),
                    ),
                };
                let mut all = shares.clone();
                all.push(*missing_share);
                RefFeature {
                    name: name.clone(),
                    kind: RefKind::Numeric {
                        // A validated profile has strictly increasing finite edges.
                        bins: NumericBins::new(edges.clone())
                            .unwrap_or_else(|_| NumericBins::empty()),
                        edges: edges.clone(),
                        min: round(lo),
                        max: round(hi),
                    },
                    shares: all,
                    sample: s,
                }
            }
            FeatureProfile::Categorical {
                name,
                categories,
                shares,
                unseen_share,
            } => {
                let mut all = shares.clone();
                all.push(*unseen_share);
                RefFeature {
                    name: name.clone(),
                    kind: RefKind::Categorical {
                        index: categories
                            .iter()
                            .enumerate()
                            .map(|(i, c)| (c.clone(), i))
                            .collect(),
                        categories: categories.clone(),
                    },
                    shares: all,
                    sample: Vec::new(),
                }
            }
        }
    }
}

/// The precision of the values a reference is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// Served traffic: model tensors are `f32`.
    F32,
    /// Batch comparisons of data files.
    F64,
}

/// A compiled reference profile.
#[derive(Debug, Clone)]
pub struct Reference {
    /// Reference rows the shares were computed from.
    pub rows: u64,
    pub features: Vec<RefFeature>,
    /// The score's profile, when the trainer recorded one.
    pub score: Option<RefFeature>,
    /// Where it came from (registry location or file), for reports.
    pub source: String,
}

impl Reference {
    pub fn from_profile(
        profile: &Profile,
        source: impl Into<String>,
        precision: Precision,
    ) -> Self {
        Reference {
            rows: profile.rows,
            features: profile
                .features
                .iter()
                .map(|f| RefFeature::from_profile(f, precision))
                .collect(),
            score: profile
                .score
                .as_ref()
                .map(|f| RefFeature::from_profile(f, precision)),
            source: source.into(),
        }
    }

    pub fn feature(&self, name: &str) -> Option<(usize, &RefFeature)> {
        self.features
            .iter()
            .enumerate()
            .find(|(_, f)| f.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_and_labels_follow_the_profile() {
        let p = FeatureProfile::Numeric {
            name: "x".into(),
            edges: vec![1.0, 2.5],
            shares: vec![0.3, 0.3, 0.3],
            missing_share: 0.1,
            sample: vec![3.0, 0.5, 13.9],
            min: None,
            max: None,
        };
        let f = RefFeature::from_profile(&p, Precision::F32);
        assert_eq!(f.slots(), 4);
        assert_eq!(f.shares, [0.3, 0.3, 0.3, 0.1]);
        assert_eq!(
            f.slot_labels(),
            ["(-inf, 1]", "(1, 2.5]", "(2.5, +inf]", "missing"]
        );
        assert_eq!(f.sample[0], 0.5);
        assert_eq!(
            f.sample[2],
            f64::from(13.9f32),
            "f32 precision like served values"
        );
        let RefKind::Numeric { min, max, .. } = f.kind else {
            panic!()
        };
        assert_eq!(
            (min, max),
            (0.5, f64::from(13.9f32)),
            "range falls back to the sample"
        );
        let c = RefFeature::from_profile(
            &FeatureProfile::Categorical {
                name: "c".into(),
                categories: vec!["a".into(), "b".into()],
                shares: vec![0.5, 0.4],
                unseen_share: 0.1,
            },
            Precision::F32,
        );
        assert_eq!(c.slot_labels(), ["a", "b", "unseen"]);
        assert_eq!(c.slots(), 3);
    }
}
