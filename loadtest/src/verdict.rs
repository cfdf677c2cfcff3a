//! The canary verdict: thresholds evaluated on a run, with Kayenta's rank test for latency and
//! a score comparison on the same rows.
//!
//! **Rules.**
//! * Arm 0 is the baseline, arm 1 the canary. Absolute thresholds (`p99 < 2ms`, `error_rate`,
//!   `rps`) apply to the canary in compare mode, to the whole run otherwise.
//! * **Latency shift** (`latency_shift`): Kayenta's `MannWhitneyClassifier`
//!   ([`vane_stats::kayenta_classify`], tolerance 0.25, confidence 0.98) on bounded uniform
//!   samples of each arm's per-request latencies. With thousands of requests the rank test
//!   finds even a 1 µs shift significant, so a significant shift fails only when its
//!   Hodges–Lehmann estimate also exceeds the threshold (default 10 % of the baseline's p50):
//!   the observed value is that estimate when Kayenta calls the canary High (or Low), 0 when
//!   it calls it Pass.
//! * **Scores**: rows scored by both arms (the same inputs). PSI of the canary's scores over
//!   the distinct numpy-linear deciles of the baseline's scores (plus a missing bin), as the
//!   drift monitor bins a profile; the KS statistic D; the mean absolute difference of paired
//!   scores; the share of rows whose decision (`score >= cutoff`) flips.
//! * **Could not judge** (exit 2): an arm that answered nothing but connection failures
//!   (target down) or 404s (version missing), or fewer than `min_samples` (default 50, as
//!   Kayenta asks) latencies or paired scores for a threshold that needs them.
//! * Any failed threshold fails the verdict (exit 1), even if another could not be judged;
//!   otherwise anything not judged gives exit 2; otherwise pass (exit 0).

use serde::Serialize;
use vane_stats::mannwhitney::{KAYENTA_CONFIDENCE, KAYENTA_TOLERANCE};
use vane_stats::{Comparison, NumericBins, kayenta_classify, ks_2samp, linear_quantiles, psi};

use crate::engine::RunResult;
use crate::stats::{ArmStats, Transport};
use crate::threshold::{Limit, Metric, Stat, Threshold};

/// Pass, fail, or could not judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Fail,
    Inconclusive,
}

impl Status {
    /// The process exit code: 0 pass, 1 fail, 2 could not judge.
    pub fn exit_code(self) -> i32 {
        match self {
            Status::Pass => 0,
            Status::Fail => 1,
            Status::Inconclusive => 2,
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Inconclusive => "COULD NOT JUDGE",
        }
    }
}

/// One evaluated threshold.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub threshold: String,
    pub status: Status,
    /// In the threshold's units (µs, fraction, number).
    pub observed: Option<f64>,
    /// The observed value as a person reads it.
    pub observed_text: String,
    /// Why it failed or could not be judged.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// Kayenta's latency comparison of the two arms.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyComparison {
    pub baseline_samples: usize,
    pub canary_samples: usize,
    /// `pass`, `high` (canary slower) or `low` (canary faster).
    pub classification: &'static str,
    /// Hodges–Lehmann shift canary − baseline (µs) and its 98 % confidence interval.
    pub shift_us: f64,
    pub shift_lower_us: f64,
    pub shift_upper_us: f64,
    /// Mann–Whitney two-sided p-value.
    pub pvalue: f64,
    pub baseline_p50_us: f64,
}

/// Scores of the same rows on both arms.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ScoreComparison {
    /// Rows scored by both arms.
    pub rows: usize,
    pub baseline_mean: f64,
    pub canary_mean: f64,
    pub psi: Option<f64>,
    pub ks_statistic: Option<f64>,
    pub ks_pvalue: Option<f64>,
    /// Mean and largest |canary − baseline| over the rows.
    pub mae: f64,
    pub max_abs_diff: f64,
    /// Share of rows whose decision at the cutoff differs.
    pub flip_rate: f64,
    pub cutoff: f64,
}

/// The outcome of judging a run.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub status: Status,
    pub checks: Vec<Check>,
    /// One line per failed or unjudged check, and any precondition that stopped the judgement.
    pub reasons: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyComparison>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scores: Option<ScoreComparison>,
}

/// Judging parameters.
#[derive(Debug, Clone)]
pub struct JudgeSpec<'a> {
    pub thresholds: &'a [Threshold],
    /// Arm 0 vs arm 1.
    pub compare: bool,
    pub cutoff: f64,
    pub min_samples: usize,
    pub labels: &'a [String],
}

/// Compares paired scores (NaN = not scored); `None` when no row was scored by both.
pub fn compare_scores(baseline: &[f32], canary: &[f32], cutoff: f64) -> Option<ScoreComparison> {
    let (a, b): (Vec<f64>, Vec<f64>) = baseline
        .iter()
        .zip(canary)
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .map(|(x, y)| (f64::from(*x), f64::from(*y)))
        .unzip();
    let n = a.len();
    if n == 0 {
        return None;
    }
    let nf = n as f64;
    let (mut sum_abs, mut max_abs, mut flips) = (0.0f64, 0.0f64, 0usize);
    for (x, y) in a.iter().zip(&b) {
        let d = (x - y).abs();
        sum_abs += d;
        max_abs = max_abs.max(d);
        if (*x >= cutoff) != (*y >= cutoff) {
            flips += 1;
        }
    }
    let ks = ks_2samp(&a, &b);
    Some(ScoreComparison {
        rows: n,
        baseline_mean: a.iter().sum::<f64>() / nf,
        canary_mean: b.iter().sum::<f64>() / nf,
        psi: score_psi(&a, &b),
        ks_statistic: ks.map(|k| k.statistic),
        ks_pvalue: ks.map(|k| k.pvalue),
        mae: sum_abs / nf,
        max_abs_diff: max_abs,
        flip_rate: flips as f64 / nf,
        cutoff,
    })
}

/// PSI of `canary` over the baseline's frozen deciles (the drift monitor's convention).
pub fn score_psi(baseline: &[f64], canary: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = baseline.iter().copied().filter(|x| x.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_unstable_by(f64::total_cmp);
    let mut edges = linear_quantiles(&sorted, &vane_stats::profile::DECILES);
    edges.dedup();
    let bins = NumericBins::new(edges).ok()?;
    let base = bins.counts(baseline);
    let total: u64 = base.iter().sum();
    let shares: Vec<f64> = base.iter().map(|c| *c as f64 / total as f64).collect();
    psi(&shares, &bins.counts(canary))
}

/// Kayenta's classification of the canary's latency sample against the baseline's.
pub fn compare_latency(baseline: &ArmStats, canary: &ArmStats) -> Option<LatencyComparison> {
    let c = kayenta_classify(
        &baseline.latency_sample,
        &canary.latency_sample,
        KAYENTA_TOLERANCE,
        KAYENTA_CONFIDENCE,
    )?;
    Some(LatencyComparison {
        baseline_samples: baseline.latency_sample.len(),
        canary_samples: canary.latency_sample.len(),
        classification: match c.comparison {
            Comparison::Pass => "pass",
            Comparison::High => "high",
            Comparison::Low => "low",
        },
        shift_us: c.shift.estimate,
        shift_lower_us: c.shift.lower,
        shift_upper_us: c.shift.upper,
        pvalue: c.pvalue,
        baseline_p50_us: quantile(&baseline.latency, Stat::Quantile(0.5)).unwrap_or(0.0),
    })
}

fn quantile(h: &hdrhistogram::Histogram<u64>, s: Stat) -> Option<f64> {
    if h.is_empty() {
        return None;
    }
    Some(match s {
        Stat::Quantile(q) => h.value_at_quantile(q) as f64,
        Stat::Max => h.max() as f64,
        Stat::Mean => h.mean(),
    })
}

/// `1234` µs → `1.23ms`.
pub fn fmt_us(us: f64) -> String {
    let a = us.abs();
    let sign = if us < 0.0 { "-" } else { "" };
    if a >= 1e6 {
        format!("{sign}{:.2}s", a / 1e6)
    } else if a >= 1e4 {
        format!("{sign}{:.1}ms", a / 1e3)
    } else if a >= 1e3 {
        format!("{sign}{:.2}ms", a / 1e3)
    } else {
        format!("{sign}{a:.0}µs")
    }
}

fn fmt_pct(x: f64) -> String {
    let p = x * 100.0;
    if p.abs() >= 10.0 {
        format!("{p:+.1}%")
    } else {
        format!("{p:+.2}%")
    }
}

/// Why an arm cannot be judged at all: no answer but connection failures or 404s.
fn unreachable(arm: &ArmStats, label: &str) -> Option<String> {
    if arm.requests == 0 {
        return Some(format!("{label}: no request completed"));
    }
    if arm.ok > 0 {
        return None;
    }
    let connect = arm
        .transport_errors
        .get(&Transport::Connect)
        .copied()
        .unwrap_or(0);
    let not_found = arm.status_errors.get(&404).copied().unwrap_or(0);
    if connect == arm.requests {
        Some(format!(
            "{label}: target down (every connection attempt failed)"
        ))
    } else if not_found == arm.requests {
        Some(format!(
            "{label}: version missing (every request answered 404)"
        ))
    } else {
        None
    }
}

/// Evaluates the thresholds on a run.
pub fn judge(run: &RunResult, spec: &JudgeSpec<'_>) -> Verdict {
    let label = |i: usize| {
        spec.labels
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("arm {i}"))
    };
    let mut reasons = Vec::new();
    let total = run.total();
    let (base, can) = if spec.compare && run.arms.len() >= 2 {
        (Some(&run.arms[0]), &run.arms[1])
    } else {
        (None, &total)
    };
    // Preconditions.
    let mut blocked = false;
    let arms: Vec<(usize, &ArmStats)> = if spec.compare {
        run.arms.iter().enumerate().collect()
    } else {
        vec![(0, &total)]
    };
    for (i, a) in arms {
        let name = if spec.compare {
            label(i)
        } else {
            "target".to_string()
        };
        if let Some(why) = unreachable(a, &name) {
            reasons.push(why);
            blocked = true;
        }
    }
    let latency = match base {
        Some(b) if !blocked => compare_latency(b, can),
        _ => None,
    };
    let scores = match base {
        Some(b) if !blocked => compare_scores(&b.row_scores, &can.row_scores, spec.cutoff),
        _ => None,
    };
    let elapsed = run.elapsed.max(1e-9);
    let mut checks = Vec::new();
    for t in spec.thresholds {
        let mut reason = String::new();
        let observed: Option<(Option<f64>, Option<f64>)> = match t.metric {
            _ if blocked => None,
            m if m.is_comparison() && base.is_none() => {
                reason = "needs a baseline: use --compare A,B or two --target".into();
                None
            }
            Metric::Latency(s) => {
                if (can.latency.len() as usize) < spec.min_samples {
                    reason = format!(
                        "too few samples ({} successful requests, need {})",
                        can.latency.len(),
                        spec.min_samples
                    );
                    None
                } else {
                    Some((quantile(&can.latency, s), None))
                }
            }
            Metric::ErrorRate => Some((can.error_rate(), None)),
            Metric::Rps => Some((Some(can.requests as f64 / elapsed), None)),
            Metric::ErrorRateDelta => {
                let b = base.expect("checked above");
                Some((
                    b.error_rate().zip(can.error_rate()).map(|(x, y)| y - x),
                    None,
                ))
            }
            Metric::LatencyDelta(s) => {
                let b = base.expect("checked above");
                let n = (b.latency.len().min(can.latency.len())) as usize;
                if n < spec.min_samples {
                    reason = format!("too few samples ({n}, need {})", spec.min_samples);
                    None
                } else {
                    let (x, y) = (quantile(&b.latency, s), quantile(&can.latency, s));
                    let abs = x.zip(y).map(|(x, y)| y - x);
                    let rel = x.zip(abs).and_then(|(x, d)| (x > 0.0).then(|| d / x));
                    Some((abs, rel))
                }
            }
            Metric::LatencyShift => match &latency {
                Some(l) if l.baseline_samples.min(l.canary_samples) >= spec.min_samples => {
                    let abs = if l.classification == "pass" {
                        0.0
                    } else {
                        l.shift_us
                    };
                    let rel = (l.baseline_p50_us > 0.0).then(|| abs / l.baseline_p50_us);
                    Some((Some(abs), rel))
                }
                Some(l) => {
                    reason = format!(
                        "too few samples ({} / {}, need {})",
                        l.baseline_samples, l.canary_samples, spec.min_samples
                    );
                    None
                }
                None => {
                    reason = "no latency samples".into();
                    None
                }
            },
            m if m.needs_scores() => match &scores {
                Some(s) if s.rows >= spec.min_samples => Some((
                    match m {
                        Metric::ScorePsi => s.psi,
                        Metric::ScoreKs => s.ks_statistic,
                        Metric::ScoreMae => Some(s.mae),
                        Metric::ScoreFlip => Some(s.flip_rate),
                        _ => Some((s.canary_mean - s.baseline_mean).abs()),
                    },
                    None,
                )),
                Some(s) => {
                    reason = format!(
                        "too few rows scored by both arms ({}, need {})",
                        s.rows, spec.min_samples
                    );
                    None
                }
                None => {
                    reason = "no rows scored by both arms (scores need model responses)".into();
                    None
                }
            },
            _ => None,
        };
        let value = observed.and_then(|(abs, rel)| t.pick(abs, rel));
        if blocked && reason.is_empty() {
            reason = "not judged: a target could not be measured".into();
        }
        let (status, observed_text) = match value {
            Some(v) => {
                let text = match (t.metric, t.limit) {
                    (Metric::ErrorRate | Metric::ErrorRateDelta | Metric::ScoreFlip, _) => {
                        format!("{:.3}%", v * 100.0)
                    }
                    (_, Limit::Relative(_)) => fmt_pct(v),
                    (_, Limit::Micros(_)) => fmt_us(v),
                    _ => format!("{v:.4}"),
                };
                if t.holds(v) {
                    (Status::Pass, text)
                } else {
                    (Status::Fail, text)
                }
            }
            None => {
                if reason.is_empty() {
                    reason = "not observed".into();
                }
                (Status::Inconclusive, "-".to_string())
            }
        };
        if status == Status::Fail {
            reason = explain(
                t.metric,
                &total,
                base,
                can,
                latency.as_ref(),
                scores.as_ref(),
            );
        }
        checks.push(Check {
            threshold: t.text.clone(),
            status,
            observed: value,
            observed_text,
            reason,
        });
    }
    for c in &checks {
        match c.status {
            Status::Fail => reasons.push(format!(
                "{} failed (observed {}){}",
                c.threshold,
                c.observed_text,
                if c.reason.is_empty() {
                    String::new()
                } else {
                    format!(": {}", c.reason)
                }
            )),
            Status::Inconclusive if !blocked => {
                reasons.push(format!("{} not judged: {}", c.threshold, c.reason))
            }
            _ => {}
        }
    }
    let status = if blocked {
        Status::Inconclusive
    } else if checks.iter().any(|c| c.status == Status::Fail) {
        Status::Fail
    } else if checks.iter().any(|c| c.status == Status::Inconclusive) {
        Status::Inconclusive
    } else {
        Status::Pass
    };
    Verdict {
        status,
        checks,
        reasons,
        latency,
        scores,
    }
}

/// Context for a failed check.
fn explain(
    metric: Metric,
    _total: &ArmStats,
    base: Option<&ArmStats>,
    can: &ArmStats,
    latency: Option<&LatencyComparison>,
    scores: Option<&ScoreComparison>,
) -> String {
    let q =
        |h: &hdrhistogram::Histogram<u64>, p: f64| quantile(h, Stat::Quantile(p)).unwrap_or(0.0);
    match metric {
        Metric::Latency(_) | Metric::LatencyDelta(_) | Metric::LatencyShift => {
            let mut s = match base {
                Some(b) => format!(
                    "latency: canary p50 {} vs {}, p99 {} vs {}",
                    fmt_us(q(&can.latency, 0.5)),
                    fmt_us(q(&b.latency, 0.5)),
                    fmt_us(q(&can.latency, 0.99)),
                    fmt_us(q(&b.latency, 0.99)),
                ),
                None => format!(
                    "latency: p50 {}, p99 {}",
                    fmt_us(q(&can.latency, 0.5)),
                    fmt_us(q(&can.latency, 0.99))
                ),
            };
            if let Some(l) = latency.filter(|_| base.is_some()) {
                s.push_str(&format!(
                    "; Mann–Whitney: canary {} by {} (98% CI {} … {}, p = {:.2e})",
                    match l.classification {
                        "high" => "slower",
                        "low" => "faster",
                        _ => "not significantly different",
                    },
                    fmt_us(l.shift_us),
                    fmt_us(l.shift_lower_us),
                    fmt_us(l.shift_upper_us),
                    l.pvalue
                ));
            }
            s
        }
        Metric::ErrorRate | Metric::ErrorRateDelta => {
            let errs = |a: &ArmStats| {
                let m = a.error_map();
                if m.is_empty() {
                    "none".to_string()
                } else {
                    m.iter()
                        .map(|(k, v)| format!("{k}: {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            };
            match base {
                Some(b) => format!(
                    "errors: canary {} of {} ({}), baseline {} of {} ({})",
                    can.errors(),
                    can.requests,
                    errs(can),
                    b.errors(),
                    b.requests,
                    errs(b)
                ),
                None => format!(
                    "errors: {} of {} ({})",
                    can.errors(),
                    can.requests,
                    errs(can)
                ),
            }
        }
        Metric::Rps => String::new(),
        _ => match scores {
            Some(s) => format!(
                "scores differ on the same {} rows: canary mean {:.4} vs baseline {:.4}, PSI {}, KS D {}, MAE {:.4}, {:.2}% of decisions flip at {}",
                s.rows,
                s.canary_mean,
                s.baseline_mean,
                s.psi.map_or("-".into(), |v| format!("{v:.4}")),
                s.ks_statistic.map_or("-".into(), |v| format!("{v:.4}")),
                s.mae,
                s.flip_rate * 100.0,
                s.cutoff
            ),
            None => String::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_hist;
    use std::time::Duration;

    fn arm(latencies: impl Iterator<Item = u64>, errors: u64) -> ArmStats {
        let mut a = ArmStats::new();
        for v in latencies {
            a.latency.record(v).unwrap();
            a.latency_sample.push(v as f64);
            a.requests += 1;
            a.ok += 1;
        }
        a.requests += errors;
        if errors > 0 {
            a.status_errors.insert(500, errors);
        }
        a
    }

    fn run(arms: Vec<ArmStats>) -> RunResult {
        RunResult {
            arms,
            seconds: vec![],
            elapsed: 10.0,
            offered: None,
            offered_secs: 10.0,
            unsent: 0,
            closed_loop: true,
            connections: 1,
            threads: 1,
            duration: Duration::from_secs(10),
        }
    }

    fn judge_with(r: &RunResult, thresholds: &[&str]) -> Verdict {
        let t: Vec<Threshold> = thresholds
            .iter()
            .map(|s| Threshold::parse(s).unwrap())
            .collect();
        let labels = vec!["champion".to_string(), "canary".to_string()];
        judge(
            r,
            &JudgeSpec {
                thresholds: &t,
                compare: true,
                cutoff: 0.5,
                min_samples: 50,
                labels: &labels,
            },
        )
    }

    #[test]
    fn a_tiny_significant_shift_passes_and_a_real_one_fails() {
        let base = arm((0..2000).map(|i| 500 + (i * 37) % 200), 0);
        // +2 µs everywhere: significant with 2000 samples, but far below 10 % of p50.
        let tiny = arm((0..2000).map(|i| 502 + (i * 37) % 200), 0);
        let v = judge_with(&run(vec![base.clone(), tiny]), &["latency_shift < 10%"]);
        assert_eq!(v.status, Status::Pass, "{:?}", v.reasons);
        let slow = arm((0..2000).map(|i| 800 + (i * 37) % 200), 0);
        let v = judge_with(
            &run(vec![base, slow]),
            &["latency_shift < 10%", "p99_delta < 20%"],
        );
        assert_eq!(v.status, Status::Fail);
        assert_eq!(v.latency.as_ref().unwrap().classification, "high");
        assert!(
            v.reasons[0].contains("latency_shift < 10% failed"),
            "{:?}",
            v.reasons
        );
        assert!(v.reasons[0].contains("slower"), "{:?}", v.reasons);
        assert_eq!(v.checks[1].status, Status::Fail);
    }

    #[test]
    fn too_few_samples_cannot_be_judged() {
        let v = judge_with(
            &run(vec![arm(10..40, 0), arm(10..40, 0)]),
            &["latency_shift < 10%", "p99 < 1s"],
        );
        assert_eq!(v.status, Status::Inconclusive);
        assert!(
            v.reasons.iter().any(|r| r.contains("too few samples")),
            "{:?}",
            v.reasons
        );
        assert_eq!(v.status.exit_code(), 2);
    }

    #[test]
    fn a_down_target_or_missing_version_cannot_be_judged() {
        let mut down = ArmStats::new();
        down.requests = 100;
        down.transport_errors.insert(Transport::Connect, 100);
        let v = judge_with(&run(vec![arm(100..300, 0), down]), &["p99 < 1s"]);
        assert_eq!(v.status, Status::Inconclusive);
        assert!(
            v.reasons[0].contains("canary: target down"),
            "{:?}",
            v.reasons
        );
        let mut missing = ArmStats::new();
        missing.requests = 100;
        missing.status_errors.insert(404, 100);
        let v = judge_with(&run(vec![arm(100..300, 0), missing]), &["p99 < 1s"]);
        assert!(v.reasons[0].contains("version missing"), "{:?}", v.reasons);
    }

    #[test]
    fn error_rates_compare() {
        let v = judge_with(
            &run(vec![arm(100..1100, 0), arm(100..1090, 10)]),
            &["error_rate < 0.5%", "error_rate_delta < 2%"],
        );
        assert_eq!(v.checks[0].status, Status::Fail);
        assert_eq!(v.checks[1].status, Status::Pass);
        assert!(v.reasons[0].contains("500: 10"), "{:?}", v.reasons);
    }

    #[test]
    fn score_comparison_on_paired_rows() {
        let base: Vec<f32> = (0..1000).map(|i| (i as f32) / 1000.0).collect();
        let same = compare_scores(&base, &base, 0.5).unwrap();
        assert_eq!(same.rows, 1000);
        assert!(same.psi.unwrap().abs() < 1e-12);
        assert_eq!(same.ks_statistic, Some(0.0));
        assert_eq!((same.mae, same.flip_rate), (0.0, 0.0));
        let shifted: Vec<f32> = base.iter().map(|x| (x + 0.1).min(1.0)).collect();
        let s = compare_scores(&base, &shifted, 0.5).unwrap();
        assert!((s.mae - 0.095).abs() < 0.01, "{}", s.mae);
        assert!((s.flip_rate - 0.1).abs() < 0.002, "{}", s.flip_rate);
        assert!(s.psi.unwrap() > 0.1 && s.ks_statistic.unwrap() > 0.09);
        // Rows scored on one side only do not count.
        let mut half = base.clone();
        half[..500].iter_mut().for_each(|x| *x = f32::NAN);
        assert_eq!(compare_scores(&half, &base, 0.5).unwrap().rows, 500);
        // PSI against the drift monitor's convention: deciles of the baseline.
        let a: Vec<f64> = (0..100).map(f64::from).collect();
        let b: Vec<f64> = (0..100).map(|x| f64::from(x) + 50.0).collect();
        let p = score_psi(&a, &b).unwrap();
        // Baseline shares 0.1 per decile bin; canary: 5 bins empty, 4 bins at 0.1, 60 % in
        // the top bin.
        let want = 5.0 * (0.1 - 1e-4) * (0.1f64 / 1e-4).ln() + (0.1 - 0.6) * (0.1f64 / 0.6).ln();
        assert!((p - want).abs() < 0.05 * want, "{p} vs {want}");
        let _ = new_hist();
    }

    #[test]
    fn scores_gate_the_verdict() {
        let mut a = arm(100..1100, 0);
        let mut b = arm(100..1100, 0);
        a.row_scores = (0..500).map(|i| i as f32 / 500.0).collect();
        b.row_scores = a.row_scores.iter().map(|x| x + 0.05).collect();
        let v = judge_with(&run(vec![a, b]), &["score_mae < 0.01", "score_psi < 0.1"]);
        assert_eq!(v.status, Status::Fail);
        assert!(
            v.reasons[0].contains("scores differ on the same 500 rows"),
            "{:?}",
            v.reasons
        );
    }
}
