//! Binary-classification metrics: AUC (ties count half), KS, Gini, Brier score, log-loss.

use serde::Serialize;

/// Metrics of scores `p` = P(label 1) against 0/1 labels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Metrics {
    pub rows: usize,
    pub positives: usize,
    /// Area under the ROC curve: P(score of a random positive > score of a random negative),
    /// ties counting ½ (the Mann–Whitney statistic).
    pub auc: f64,
    /// Kolmogorov–Smirnov statistic: max |F_neg(t) − F_pos(t)| over thresholds t.
    pub ks: f64,
    /// `2·AUC − 1`.
    pub gini: f64,
    /// Mean squared error of the probabilities.
    pub brier: f64,
    /// Mean negative log-likelihood, probabilities clipped to `[1e-15, 1 − 1e-15]`.
    pub log_loss: f64,
}

/// Clip for [`log_loss`].
pub const LOG_LOSS_EPS: f64 = 1e-15;

impl Metrics {
    /// All metrics at once. AUC, KS and Gini are NaN when `y` holds only one class.
    pub fn compute(y: &[u8], p: &[f64]) -> Self {
        assert_eq!(y.len(), p.len(), "one score per label");
        let (auc, ks) = auc_ks(y, p);
        Self {
            rows: y.len(),
            positives: y.iter().filter(|v| **v == 1).count(),
            auc,
            ks,
            gini: 2.0 * auc - 1.0,
            brier: brier(y, p),
            log_loss: log_loss(y, p),
        }
    }
}

/// AUC and KS in one sorted pass over groups of equal scores.
pub fn auc_ks(y: &[u8], p: &[f64]) -> (f64, f64) {
    let mut order: Vec<usize> = (0..y.len()).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let n_pos = y.iter().filter(|v| **v == 1).count() as u128;
    let n_neg = y.len() as u128 - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return (f64::NAN, f64::NAN);
    }
    // Twice the Mann–Whitney U, in integers: exact for any table size.
    let (mut u2, mut neg_below, mut pos_below, mut ks) = (0u128, 0u128, 0u128, 0.0f64);
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        let (mut pos, mut neg) = (0u128, 0u128);
        while j < order.len() && p[order[j]] == p[order[i]] {
            if y[order[j]] == 1 {
                pos += 1;
            } else {
                neg += 1;
            }
            j += 1;
        }
        u2 += pos * (2 * neg_below + neg);
        neg_below += neg;
        pos_below += pos;
        let d = (neg_below as f64 / n_neg as f64 - pos_below as f64 / n_pos as f64).abs();
        ks = ks.max(d);
        i = j;
    }
    (u2 as f64 / (2 * n_pos * n_neg) as f64, ks)
}

pub fn auc(y: &[u8], p: &[f64]) -> f64 {
    auc_ks(y, p).0
}

pub fn ks(y: &[u8], p: &[f64]) -> f64 {
    auc_ks(y, p).1
}

pub fn brier(y: &[u8], p: &[f64]) -> f64 {
    let s: f64 = y.iter().zip(p).map(|(y, p)| (p - *y as f64).powi(2)).sum();
    s / y.len() as f64
}

pub fn log_loss(y: &[u8], p: &[f64]) -> f64 {
    let s: f64 = y
        .iter()
        .zip(p)
        .map(|(y, p)| {
            let p = p.clamp(LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS);
            if *y == 1 { -p.ln() } else { -(1.0 - p).ln() }
        })
        .sum();
    s / y.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn textbook_example() {
        // Positives score 0.35 and 0.8, negatives 0.1 and 0.4: 3 of 4 pairs ordered.
        let y = [0, 0, 1, 1];
        let p = [0.1, 0.4, 0.35, 0.8];
        let m = Metrics::compute(&y, &p);
        assert!(close(m.auc, 0.75));
        assert!(close(m.gini, 0.5));
        // Ascending: 0.1 (neg) → |0.5 - 0| = 0.5; 0.35 (pos) → 0; 0.4 (neg) → 0.5; 0.8 → 0.
        assert!(close(m.ks, 0.5));
        // (0.01 + 0.16 + 0.4225 + 0.04) / 4
        assert!(close(m.brier, 0.158125));
        // -(ln 0.9 + ln 0.6 + ln 0.35 + ln 0.8) / 4
        let ll = -(0.9f64.ln() + 0.6f64.ln() + 0.35f64.ln() + 0.8f64.ln()) / 4.0;
        assert!(
            close(m.log_loss, ll) && close(ll, 0.472_287_953_809_176),
            "{ll}"
        );
        assert_eq!((m.rows, m.positives), (4, 2));
    }

    #[test]
    fn ties_count_half() {
        // Pairs (pos, neg): (0.5, 0.5) tie = ½, (0.5, 0.2) = 1, (0.9, 0.5) = 1, (0.9, 0.2) = 1.
        let y = [0, 1, 0, 1];
        let p = [0.5, 0.5, 0.2, 0.9];
        let (auc, ks) = auc_ks(&y, &p);
        assert!(close(auc, 3.5 / 4.0));
        // Groups: 0.2 → |0.5 - 0|; 0.5 → |1 - 0.5|; 0.9 → 0.
        assert!(close(ks, 0.5));
        // All scores equal: AUC ½, KS 0 (no threshold separates anything).
        let (auc, ks) = auc_ks(&y, &[0.3; 4]);
        assert!(close(auc, 0.5) && close(ks, 0.0));
    }

    #[test]
    fn perfect_and_inverted_rankings() {
        let y = [0, 0, 0, 1, 1];
        let p = [0.1, 0.2, 0.3, 0.7, 0.9];
        let m = Metrics::compute(&y, &p);
        assert!(close(m.auc, 1.0) && close(m.ks, 1.0) && close(m.gini, 1.0));
        let inv: Vec<f64> = p.iter().map(|v| 1.0 - v).collect();
        let m = Metrics::compute(&y, &inv);
        assert!(close(m.auc, 0.0) && close(m.ks, 1.0) && close(m.gini, -1.0));
    }

    #[test]
    fn one_class_gives_nan_rank_metrics_and_log_loss_clips() {
        let m = Metrics::compute(&[1, 1], &[0.0, 1.0]);
        assert!(m.auc.is_nan() && m.ks.is_nan());
        assert!(close(m.log_loss, -LOG_LOSS_EPS.ln() / 2.0));
        assert!(close(m.brier, 0.5));
    }
}
