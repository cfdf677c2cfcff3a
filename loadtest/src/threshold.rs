//! k6-style pass/fail thresholds: `p99 < 2ms`, `error_rate < 0.1%`, `score_psi < 0.1`,
//! `p99_delta < 20%`, from `--threshold` flags or a TOML file.
//!
//! Grammar: `METRIC OP VALUE[UNIT]`, `OP` one of `<`, `<=`, `>`, `>=`. Units: durations
//! (`us`, `ms`, `s`; a bare number on a latency metric is milliseconds, as in k6), `%`, or none.
//! `p(99)` is accepted for `p99` (k6 spelling).
//!
//! | metric | what | value |
//! |---|---|---|
//! | `p50` `p90` `p95` `p99` `p999` `max` `mean` | client latency (the canary's in compare mode) | duration |
//! | `error_rate` | failed / attempted requests | `%` or a fraction |
//! | `rps` | achieved requests per second | number |
//! | `p50_delta` … `p999_delta`, `max_delta`, `mean_delta` | canary − baseline | `%` of baseline, or a duration |
//! | `latency_shift` | Hodges–Lehmann shift canary − baseline when Mann–Whitney (Kayenta) calls it significant, else 0 | `%` of baseline p50, or a duration |
//! | `error_rate_delta` | canary − baseline error rate | `%` points or a fraction |
//! | `score_psi` | PSI of canary scores on the baseline's score deciles | number |
//! | `score_ks` | KS statistic D of the two score distributions | number |
//! | `score_mae` | mean absolute score difference on the same rows | number |
//! | `score_flip` | share of rows whose decision at `--cutoff` differs | `%` or a fraction |
//! | `score_mean_delta` | \|mean canary score − mean baseline score\| | number |

use std::fmt;
use std::path::Path;

use serde::Deserialize;

use crate::error::ConfigError;

/// A latency statistic of one histogram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stat {
    /// Quantile in (0, 1].
    Quantile(f64),
    Max,
    Mean,
}

impl Stat {
    pub fn name(self) -> String {
        match self {
            Stat::Quantile(q) => quantile_name(q),
            Stat::Max => "max".into(),
            Stat::Mean => "mean".into(),
        }
    }
}

/// `0.99` → `p99`, `0.999` → `p999`, `0.5` → `p50`.
pub fn quantile_name(q: f64) -> String {
    let pct = q * 100.0;
    if (pct - pct.round()).abs() < 1e-9 {
        format!("p{}", pct.round() as u64)
    } else {
        format!("p{}", format!("{pct}").replace('.', ""))
    }
}

/// What a threshold measures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Metric {
    Latency(Stat),
    ErrorRate,
    Rps,
    LatencyDelta(Stat),
    LatencyShift,
    ErrorRateDelta,
    ScorePsi,
    ScoreKs,
    ScoreMae,
    ScoreFlip,
    ScoreMeanDelta,
}

impl Metric {
    /// True for metrics that compare a canary with a baseline (compare mode only).
    pub fn is_comparison(self) -> bool {
        !matches!(self, Metric::Latency(_) | Metric::ErrorRate | Metric::Rps)
    }

    /// True for metrics computed from prediction scores.
    pub fn needs_scores(self) -> bool {
        matches!(
            self,
            Metric::ScorePsi
                | Metric::ScoreKs
                | Metric::ScoreMae
                | Metric::ScoreFlip
                | Metric::ScoreMeanDelta
        )
    }

    pub fn name(self) -> String {
        match self {
            Metric::Latency(s) => s.name(),
            Metric::ErrorRate => "error_rate".into(),
            Metric::Rps => "rps".into(),
            Metric::LatencyDelta(s) => format!("{}_delta", s.name()),
            Metric::LatencyShift => "latency_shift".into(),
            Metric::ErrorRateDelta => "error_rate_delta".into(),
            Metric::ScorePsi => "score_psi".into(),
            Metric::ScoreKs => "score_ks".into(),
            Metric::ScoreMae => "score_mae".into(),
            Metric::ScoreFlip => "score_flip".into(),
            Metric::ScoreMeanDelta => "score_mean_delta".into(),
        }
    }

    fn parse(s: &str) -> Option<Metric> {
        let s = s.trim().to_ascii_lowercase();
        if let Some(base) = s.strip_suffix("_delta") {
            return match base {
                "error_rate" => Some(Metric::ErrorRateDelta),
                "score_mean" => Some(Metric::ScoreMeanDelta),
                _ => parse_stat(base).map(Metric::LatencyDelta),
            };
        }
        match s.as_str() {
            "error_rate" | "errors" => Some(Metric::ErrorRate),
            "rps" | "throughput" => Some(Metric::Rps),
            "latency_shift" => Some(Metric::LatencyShift),
            "score_psi" | "psi" => Some(Metric::ScorePsi),
            "score_ks" | "ks" => Some(Metric::ScoreKs),
            "score_mae" | "mae" => Some(Metric::ScoreMae),
            "score_flip" | "flip_rate" => Some(Metric::ScoreFlip),
            other => parse_stat(other).map(Metric::Latency),
        }
    }
}

fn parse_stat(s: &str) -> Option<Stat> {
    match s {
        "max" => return Some(Stat::Max),
        "mean" | "avg" => return Some(Stat::Mean),
        "median" => return Some(Stat::Quantile(0.5)),
        _ => {}
    }
    // p99, p999, p99.9, p(99), p(99.9)
    let digits = s.strip_prefix('p')?;
    let digits = digits
        .strip_prefix('(')
        .and_then(|d| d.strip_suffix(')'))
        .unwrap_or(digits);
    let pct: f64 = if digits.contains('.') {
        digits.parse().ok()?
    } else {
        // p999 = 99.9, p9999 = 99.99: digits after the first two are decimals.
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let (int, frac) = digits.split_at(digits.len().min(2));
        format!("{int}.{frac}0").parse().ok()?
    };
    // Rounded through an integer so that p99.9 is exactly the literal 0.999.
    (pct > 0.0 && pct <= 100.0).then_some(Stat::Quantile((pct * 1e6).round() / 1e8))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    pub fn holds(self, observed: f64, limit: f64) -> bool {
        match self {
            Op::Lt => observed < limit,
            Op::Le => observed <= limit,
            Op::Gt => observed > limit,
            Op::Ge => observed >= limit,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

/// The limit of a threshold, in canonical units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    /// Microseconds.
    Micros(f64),
    /// A fraction (`1%` = 0.01). For deltas: relative to the baseline.
    Relative(f64),
    /// A plain number (or a fraction for rates given without `%`).
    Number(f64),
}

/// One parsed threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub metric: Metric,
    pub op: Op,
    pub limit: Limit,
    /// As written (normalized spacing), for reports.
    pub text: String,
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Threshold {
    /// Parses `METRIC OP VALUE[UNIT]`.
    pub fn parse(s: &str) -> Result<Threshold, ConfigError> {
        let bad = |why: &str| ConfigError::Threshold(s.to_string(), why.to_string());
        let at = s
            .find(['<', '>'])
            .ok_or_else(|| bad("expected METRIC < VALUE (or <=, >, >=)"))?;
        let (name, rest) = s.split_at(at);
        let (op, value) = if let Some(v) = rest.strip_prefix("<=") {
            (Op::Le, v)
        } else if let Some(v) = rest.strip_prefix(">=") {
            (Op::Ge, v)
        } else if let Some(v) = rest.strip_prefix('<') {
            (Op::Lt, v)
        } else {
            (Op::Gt, &rest[1..])
        };
        let metric = Metric::parse(name).ok_or_else(|| {
            bad(
                "unknown metric; expected p50/p90/p95/p99/p999/max/mean, error_rate, rps, \
                 <latency>_delta, latency_shift, error_rate_delta, score_psi, score_ks, score_mae, \
                 score_flip or score_mean_delta",
            )
        })?;
        let value = value.trim();
        let split = value
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == 'e' || c == '+'))
            .unwrap_or(value.len());
        // "1e-3" keeps its exponent; a unit starts at the first other character.
        let (num, unit) = value.split_at(split);
        let num: f64 = num.parse().map_err(|_| bad("the value is not a number"))?;
        if !num.is_finite() {
            return Err(bad("the value is not finite"));
        }
        let unit = unit.trim();
        let duration = |scale: f64| Limit::Micros(num * scale);
        let limit = match (metric, unit) {
            (_, "%") => Limit::Relative(num / 100.0),
            (Metric::Latency(_) | Metric::LatencyDelta(_) | Metric::LatencyShift, "us" | "µs") => {
                duration(1.0)
            }
            (Metric::Latency(_) | Metric::LatencyDelta(_) | Metric::LatencyShift, "ms") => {
                duration(1e3)
            }
            (Metric::Latency(_) | Metric::LatencyDelta(_) | Metric::LatencyShift, "s") => {
                duration(1e6)
            }
            // k6: a bare number on a duration metric is milliseconds.
            (Metric::Latency(_) | Metric::LatencyDelta(_) | Metric::LatencyShift, "") => {
                duration(1e3)
            }
            (_, "") => Limit::Number(num),
            _ => return Err(bad("this unit does not fit the metric")),
        };
        // Which forms make sense per metric.
        match (metric, limit) {
            (Metric::Latency(_), Limit::Relative(_)) => {
                return Err(bad(
                    "an absolute latency takes a duration (e.g. 2ms), not %",
                ));
            }
            (Metric::Rps, Limit::Relative(_)) => return Err(bad("rps takes a number")),
            (
                Metric::ScorePsi | Metric::ScoreKs | Metric::ScoreMae | Metric::ScoreMeanDelta,
                Limit::Relative(_),
            ) => return Err(bad("score statistics take a plain number")),
            _ => {}
        }
        let text = format!("{} {} {}", metric.name(), op.symbol(), value);
        Ok(Threshold {
            metric,
            op,
            limit,
            text,
        })
    }

    /// The observed value this threshold compares, in its own units, given the absolute and
    /// (for deltas) relative observations. `None` when it cannot be observed.
    pub fn pick(&self, absolute: Option<f64>, relative: Option<f64>) -> Option<f64> {
        match (self.metric, self.limit) {
            // Rates: a percentage and a bare fraction mean the same thing.
            (Metric::ErrorRate | Metric::ErrorRateDelta | Metric::ScoreFlip, _) => absolute,
            (_, Limit::Relative(_)) => relative,
            _ => absolute,
        }
    }

    pub fn limit_value(&self) -> f64 {
        match self.limit {
            Limit::Micros(v) | Limit::Relative(v) | Limit::Number(v) => v,
        }
    }

    /// Whether `observed` (from [`Threshold::pick`]) satisfies the threshold.
    pub fn holds(&self, observed: f64) -> bool {
        self.op.holds(observed, self.limit_value())
    }
}

/// A thresholds file, k6 style: either a flat list or named groups of lists.
///
/// ```toml
/// thresholds = ["p99 < 5ms", "error_rate < 0.1%"]
/// # or
/// [thresholds]
/// latency = ["p99 < 5ms", "p99_delta < 20%"]
/// scores = ["score_psi < 0.1", "score_mae < 0.01"]
/// ```
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThresholdFile {
    thresholds: ThresholdList,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ThresholdList {
    Flat(Vec<String>),
    Groups(std::collections::BTreeMap<String, Vec<String>>),
}

/// Reads the thresholds of a TOML file.
pub fn read_file(path: &Path) -> Result<Vec<Threshold>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::Io(path.display().to_string(), e))?;
    parse_toml(&text).map_err(|e| match e {
        ConfigError::Invalid(m) => ConfigError::Invalid(format!("{}: {m}", path.display())),
        other => other,
    })
}

/// Parses the TOML text of a thresholds file.
pub fn parse_toml(text: &str) -> Result<Vec<Threshold>, ConfigError> {
    let file: ThresholdFile =
        toml::from_str(text).map_err(|e| ConfigError::Invalid(format!("thresholds file: {e}")))?;
    let list: Vec<String> = match file.thresholds {
        ThresholdList::Flat(v) => v,
        ThresholdList::Groups(g) => g.into_values().flatten().collect(),
    };
    list.iter().map(|s| Threshold::parse(s)).collect()
}

/// The thresholds compare mode applies unless `--no-default-thresholds` or a threshold on the
/// same metric replaces them.
pub fn compare_defaults(with_scores: bool) -> Vec<Threshold> {
    let mut v = vec![
        "latency_shift < 10%",
        "p99_delta < 50%",
        "error_rate < 1%",
        "error_rate_delta < 0.5%",
    ];
    if with_scores {
        v.extend([
            "score_psi < 0.1",
            "score_ks < 0.1",
            "score_mae < 0.01",
            "score_flip < 1%",
        ]);
    }
    v.into_iter()
        .map(|s| Threshold::parse(s).expect("default thresholds parse"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_latency_thresholds() {
        let t = Threshold::parse("p99 < 2ms").unwrap();
        assert_eq!(t.metric, Metric::Latency(Stat::Quantile(0.99)));
        assert_eq!(t.op, Op::Lt);
        assert_eq!(t.limit, Limit::Micros(2000.0));
        assert_eq!(t.text, "p99 < 2ms");
        let t = Threshold::parse("p(95)<200").unwrap();
        assert_eq!(t.metric, Metric::Latency(Stat::Quantile(0.95)));
        assert_eq!(t.limit, Limit::Micros(200_000.0));
        let t = Threshold::parse("p999<=1.5s").unwrap();
        assert_eq!(t.metric, Metric::Latency(Stat::Quantile(0.999)));
        assert_eq!((t.op, t.limit), (Op::Le, Limit::Micros(1.5e6)));
        let t = Threshold::parse("p99.99 < 800us").unwrap();
        assert!(
            matches!(t.metric, Metric::Latency(Stat::Quantile(q)) if (q - 0.9999).abs() < 1e-12)
        );
        assert_eq!(
            Threshold::parse("max < 1s").unwrap().metric,
            Metric::Latency(Stat::Max)
        );
        assert!(Threshold::parse("p99 < 20%").is_err());
        assert!(Threshold::parse("p0 < 1ms").is_err());
        assert!(Threshold::parse("px < 1ms").is_err());
    }

    #[test]
    fn parses_rates_deltas_and_scores() {
        let t = Threshold::parse("error_rate < 0.1%").unwrap();
        assert_eq!(
            (t.metric, t.limit),
            (Metric::ErrorRate, Limit::Relative(0.001))
        );
        assert_eq!(t.pick(Some(0.0005), None), Some(0.0005));
        assert!(t.holds(0.0005) && !t.holds(0.002));
        let t = Threshold::parse("error_rate<0.001").unwrap();
        assert_eq!(t.limit, Limit::Number(0.001));
        let t = Threshold::parse("p99_delta < 20%").unwrap();
        assert_eq!(t.metric, Metric::LatencyDelta(Stat::Quantile(0.99)));
        assert_eq!(t.pick(Some(500.0), Some(0.25)), Some(0.25));
        assert!(!t.holds(0.25));
        let t = Threshold::parse("p50_delta < 300us").unwrap();
        assert_eq!(t.pick(Some(500.0), Some(0.25)), Some(500.0));
        assert!(!t.holds(500.0));
        let t = Threshold::parse("score_psi < 0.1").unwrap();
        assert_eq!((t.metric, t.limit), (Metric::ScorePsi, Limit::Number(0.1)));
        assert!(t.metric.needs_scores() && t.metric.is_comparison());
        let t = Threshold::parse("score_mae < 1e-3").unwrap();
        assert_eq!(t.limit, Limit::Number(0.001));
        assert!(Threshold::parse("score_psi < 10%").is_err());
        assert!(Threshold::parse("rps > 1000").unwrap().holds(1200.0));
        assert_eq!(
            Threshold::parse("error_rate_delta < 0.5%").unwrap().metric,
            Metric::ErrorRateDelta
        );
        assert_eq!(
            Threshold::parse("latency_shift < 10%").unwrap().metric,
            Metric::LatencyShift
        );
        for bad in [
            "p99",
            "p99 = 2ms",
            "lag < 1ms",
            "p99 < fast",
            "p99 < 2 parsecs",
            "rps > 5%",
        ] {
            assert!(Threshold::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reads_toml_files() {
        let flat = parse_toml(r#"thresholds = ["p99 < 5ms", "score_psi < 0.2"]"#).unwrap();
        assert_eq!(flat.len(), 2);
        let groups = parse_toml(
            "[thresholds]\nlatency = [\"p99 < 5ms\", \"p99_delta < 20%\"]\nscores = [\"score_mae < 0.01\"]\n",
        )
        .unwrap();
        assert_eq!(groups.len(), 3);
        assert!(parse_toml("thresholds = [\"p99 <\"]").is_err());
        assert!(parse_toml("limits = []").is_err());
    }

    #[test]
    fn defaults_parse() {
        assert_eq!(compare_defaults(true).len(), 8);
        assert!(
            compare_defaults(false)
                .iter()
                .all(|t| !t.metric.needs_scores())
        );
        assert_eq!(quantile_name(0.999), "p999");
        assert_eq!(quantile_name(0.5), "p50");
    }
}
