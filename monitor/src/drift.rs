//! Drift of one window against its reference: PSI over the frozen bins, KS against the
//! reference sample (numeric), chi-square against the reference shares (categorical), missing,
//! out-of-range and unseen shares, a verdict per column and the dataset drift share. The same
//! function serves the streaming monitor and the batch `compare` command.

use serde::{Deserialize, Serialize};

use crate::reference::{RefFeature, Reference};
use crate::window::{ColumnAcc, WindowAcc};

/// When a column, and a dataset, counts as drifted. Defaults follow `../shared/design.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    /// PSI at or above this is a warning.
    pub psi_warn: f64,
    /// PSI at or above this is drift.
    pub psi_alert: f64,
    /// KS p-value below this (after Bonferroni over the features) is drift.
    pub ks_alpha: f64,
    /// Chi-square p-value below this (after Bonferroni over the features) is drift.
    pub chi2_alpha: f64,
    /// The dataset drifted when at least this share of its features did.
    pub drift_share: f64,
    /// No verdict for windows with fewer rows (PSI over 10 bins gives false alarms below
    /// a few hundred rows).
    pub min_rows: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            psi_warn: 0.1,
            psi_alert: 0.25,
            ks_alpha: 0.01,
            chi2_alpha: 0.01,
            drift_share: 0.5,
            min_rows: 500,
        }
    }
}

impl Thresholds {
    pub fn validate(&self) -> Result<(), String> {
        let unit = [
            ("ks_alpha", self.ks_alpha),
            ("chi2_alpha", self.chi2_alpha),
            ("drift_share", self.drift_share),
        ];
        for (name, v) in unit {
            if !(v > 0.0 && v <= 1.0) {
                return Err(format!("{name} must be within (0, 1] (got {v})"));
            }
        }
        if !(self.psi_warn >= 0.0 && self.psi_alert >= self.psi_warn) {
            return Err(format!(
                "psi_warn ({}) must be >= 0 and <= psi_alert ({})",
                self.psi_warn, self.psi_alert
            ));
        }
        Ok(())
    }
}

/// A column's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Fewer rows than `min_rows`: statistics are shown, no verdict is given.
    Insufficient,
    Ok,
    Warning,
    Drift,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Insufficient => "insufficient",
            Verdict::Ok => "ok",
            Verdict::Warning => "warning",
            Verdict::Drift => "drift",
        }
    }
}

/// The drift of one column in one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnReport {
    pub name: String,
    /// `numeric` or `categorical`.
    pub kind: String,
    pub rows: u64,
    pub psi: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ks_statistic: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ks_pvalue: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chi2_pvalue: Option<f64>,
    pub missing_share: f64,
    /// Numeric: share of non-missing values outside the reference's [min, max].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_of_range_share: Option<f64>,
    /// Categorical: share of values outside the reference's categories (missing included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unseen_share: Option<f64>,
    pub drift: bool,
    pub verdict: Verdict,
    /// Slot labels, reference shares and current counts (the histogram).
    pub bins: Vec<String>,
    pub reference_shares: Vec<f64>,
    pub counts: Vec<u64>,
}

/// The drift of one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowDrift {
    pub rows: u64,
    /// One per monitored feature, in profile order.
    pub features: Vec<ColumnReport>,
    /// Drift of the model's score, when profiled.
    pub prediction: Option<ColumnReport>,
    /// Share of the features with a verdict that drifted (`None` below `min_rows`).
    pub drift_share: Option<f64>,
    pub dataset_drift: Option<bool>,
}

fn ratio(n: u64, d: u64) -> f64 {
    if d == 0 { 0.0 } else { n as f64 / d as f64 }
}

/// Compares one column's window against its reference. `tests` is the number of features
/// compared together (the Bonferroni factor for p-values).
pub fn column(
    r: &RefFeature,
    acc: &ColumnAcc,
    th: &Thresholds,
    tests: usize,
    ks_reference: Option<&[f64]>,
) -> ColumnReport {
    let rows = acc.rows();
    let psi = vane_stats::psi::psi(&r.shares, &acc.counts);
    let tests = tests.max(1) as f64;
    let present = rows - acc.missing;
    let (mut ks_statistic, mut ks_pvalue, mut chi2_pvalue) = (None, None, None);
    let significant = if r.is_numeric() {
        let mut window: Vec<f64> = acc.sample.values().to_vec();
        window.sort_unstable_by(f64::total_cmp);
        let reference = ks_reference.unwrap_or(&r.sample);
        if let Some(ks) = vane_stats::ks::ks_2samp_sorted(reference, &window) {
            ks_statistic = Some(ks.statistic);
            ks_pvalue = Some(ks.pvalue);
        }
        ks_pvalue.is_some_and(|p| p < th.ks_alpha / tests)
    } else {
        chi2_pvalue =
            vane_stats::chi2::chi2_goodness_of_fit(&acc.counts, &r.shares).map(|c| c.pvalue);
        chi2_pvalue.is_some_and(|p| p < th.chi2_alpha / tests)
    };
    let verdict = if rows < th.min_rows {
        Verdict::Insufficient
    } else if significant || psi.is_some_and(|p| p >= th.psi_alert) {
        Verdict::Drift
    } else if psi.is_some_and(|p| p >= th.psi_warn) {
        Verdict::Warning
    } else {
        Verdict::Ok
    };
    ColumnReport {
        name: r.name.clone(),
        kind: if r.is_numeric() {
            "numeric"
        } else {
            "categorical"
        }
        .into(),
        rows,
        psi,
        ks_statistic,
        ks_pvalue,
        chi2_pvalue,
        missing_share: ratio(acc.missing, rows),
        out_of_range_share: r.is_numeric().then(|| ratio(acc.out_of_range, present)),
        unseen_share: (!r.is_numeric()).then(|| ratio(acc.unseen + acc.missing, rows)),
        drift: verdict == Verdict::Drift,
        verdict,
        bins: r.slot_labels(),
        reference_shares: r.shares.clone(),
        counts: acc.counts.clone(),
    }
}

/// Compares a whole window against its reference.
pub fn evaluate(reference: &Reference, w: &WindowAcc, th: &Thresholds) -> WindowDrift {
    evaluate_with(reference, w, th, None)
}

/// [`evaluate`], with per-feature KS reference samples that replace the profile's (the batch
/// `compare` uses the whole reference column, as `scipy.stats.ks_2samp` would).
pub fn evaluate_with(
    reference: &Reference,
    w: &WindowAcc,
    th: &Thresholds,
    ks_reference: Option<&[Vec<f64>]>,
) -> WindowDrift {
    let tests = reference.features.len();
    let features: Vec<ColumnReport> = reference
        .features
        .iter()
        .zip(&w.columns)
        .enumerate()
        .map(|(i, (r, acc))| {
            column(
                r,
                acc,
                th,
                tests,
                ks_reference.and_then(|k| k.get(i)).map(Vec::as_slice),
            )
        })
        .collect();
    // The score is one test on its own: no Bonferroni factor.
    let prediction = match (&reference.score, &w.score) {
        (Some(r), Some(acc)) if acc.rows() > 0 => Some(column(r, acc, th, 1, None)),
        _ => None,
    };
    let judged: Vec<&ColumnReport> = features
        .iter()
        .filter(|f| f.verdict != Verdict::Insufficient)
        .collect();
    let (drift_share, dataset_drift) = if judged.is_empty() {
        (None, None)
    } else {
        let share = judged.iter().filter(|f| f.drift).count() as f64 / judged.len() as f64;
        (Some(share), Some(share >= th.drift_share))
    };
    WindowDrift {
        rows: w.rows,
        features,
        prediction,
        drift_share,
        dataset_drift,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vane_registry::{FeatureProfile, Profile};

    fn reference() -> Reference {
        Reference::from_profile(
            &Profile {
                rows: 1000,
                features: vec![
                    vane_stats::profile::numeric(
                        "x",
                        &(0..1000).map(|i| f64::from(i % 100)).collect::<Vec<_>>(),
                        &(0..1000).collect::<Vec<_>>(),
                    ),
                    FeatureProfile::Categorical {
                        name: "c".into(),
                        categories: vec!["a".into(), "b".into()],
                        shares: vec![0.5, 0.5],
                        unseen_share: 0.0,
                    },
                ],
                score: None,
            },
            "test",
            crate::reference::Precision::F32,
        )
    }

    fn window(r: &Reference, x: impl Iterator<Item = f64>, codes: &[f32]) -> WindowAcc {
        let mut w = WindowAcc::new(r, 10_000, 0);
        let x: Vec<f64> = x.collect();
        w.columns[0].add_numeric(&r.features[0], x.iter().copied());
        w.columns[1].add_codes(&[0, 1], codes.iter().copied());
        w.rows = x.len() as u64;
        w
    }

    #[test]
    fn same_distribution_passes_and_shifted_one_drifts() {
        let r = reference();
        let th = Thresholds::default();
        let codes: Vec<f32> = (0..1000).map(|i| (i % 2) as f32).collect();
        let same = evaluate(
            &r,
            &window(&r, (0..1000).map(|i| f64::from(i % 100)), &codes),
            &th,
        );
        assert!(
            same.features.iter().all(|f| f.verdict == Verdict::Ok),
            "{same:#?}"
        );
        assert_eq!(
            (same.drift_share, same.dataset_drift),
            (Some(0.0), Some(false))
        );
        assert!(same.features[0].psi.unwrap() < 1e-9);
        assert_eq!(same.features[0].ks_statistic, Some(0.0));

        let shifted: Vec<f32> = (0..1000)
            .map(|i| if i % 5 == 0 { 1.0 } else { 0.0 })
            .collect();
        let drifted = evaluate(
            &r,
            &window(&r, (0..1000).map(|i| f64::from(i % 100 + 30)), &shifted),
            &th,
        );
        let x = &drifted.features[0];
        assert_eq!(x.verdict, Verdict::Drift);
        assert!(x.out_of_range_share.unwrap() > 0.25, "{x:?}");
        let c = &drifted.features[1];
        assert_eq!(c.verdict, Verdict::Drift, "{c:?}");
        assert!(c.chi2_pvalue.unwrap() < 1e-10);
        assert_eq!(drifted.dataset_drift, Some(true));
    }

    #[test]
    fn small_windows_get_no_verdict() {
        let r = reference();
        let w = window(&r, (0..100).map(|i| f64::from(i + 50)), &[0.0; 100]);
        let d = evaluate(&r, &w, &Thresholds::default());
        assert!(
            d.features
                .iter()
                .all(|f| f.verdict == Verdict::Insufficient && !f.drift)
        );
        assert!(
            d.features[0].psi.unwrap() > 0.25,
            "statistics are still computed"
        );
        assert_eq!(d.dataset_drift, None);
    }

    #[test]
    fn thresholds_are_checked() {
        assert!(Thresholds::default().validate().is_ok());
        let bad = Thresholds {
            psi_warn: 0.3,
            ..Thresholds::default()
        };
        assert!(bad.validate().unwrap_err().contains("psi_warn"));
        let bad = Thresholds {
            ks_alpha: 0.0,
            ..Thresholds::default()
        };
        assert!(bad.validate().unwrap_err().contains("ks_alpha"));
    }
}
