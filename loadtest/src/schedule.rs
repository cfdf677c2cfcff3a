//! Offered-rate schedules for the open loop: constant, ramp and steps, as one piecewise-linear
//! rate over time.
//!
//! Request `i` (0-based) is due at the time `t` where the expected request count
//! `N(t) = ∫₀ᵗ rate` reaches `i`, so a constant rate `r` puts request `i` at `i / r` and a ramp
//! spaces requests ever closer. Latency is measured from these due times, whatever happened to
//! earlier requests (no coordinated omission).

use std::time::Duration;

use crate::error::ConfigError;

/// One piece of the schedule: the rate moves linearly from `r0` to `r1` over `len` seconds.
#[derive(Debug, Clone, PartialEq)]
struct Segment {
    /// Seconds from the schedule's start.
    start: f64,
    /// Seconds; `f64::INFINITY` for the last segment (it holds its rate).
    len: f64,
    r0: f64,
    r1: f64,
    /// Expected requests before `start`.
    n0: f64,
}

/// A piecewise-linear offered rate (requests per second) that holds its last rate forever.
#[derive(Debug, Clone, PartialEq)]
pub struct RateSchedule {
    segments: Vec<Segment>,
}

impl RateSchedule {
    /// `rate` requests per second throughout.
    pub fn constant(rate: f64) -> Self {
        Self::from_pieces(&[], rate)
    }

    /// A linear ramp from `from` to `to` over `over`, then `to`.
    pub fn ramp(from: f64, to: f64, over: Duration) -> Self {
        Self::from_pieces(&[(from, to, over.as_secs_f64())], to)
    }

    /// Each rate held for `each`, then the last one.
    pub fn steps(rates: &[f64], each: Duration) -> Self {
        let each = each.as_secs_f64();
        let pieces: Vec<(f64, f64, f64)> = rates.iter().map(|r| (*r, *r, each)).collect();
        Self::from_pieces(&pieces, rates.last().copied().unwrap_or(0.0))
    }

    /// The same schedule preceded by `warmup` at its initial rate (the warm-up runs at the
    /// rate the measurement starts with).
    pub fn with_warmup(&self, warmup: Duration) -> Self {
        let w = warmup.as_secs_f64();
        if w <= 0.0 {
            return self.clone();
        }
        let r = self.rate_at(0.0);
        let mut pieces = vec![(r, r, w)];
        let mut hold = r;
        for s in &self.segments {
            if s.len.is_finite() {
                pieces.push((s.r0, s.r1, s.len));
            } else {
                hold = s.r0;
            }
        }
        Self::from_pieces(&pieces, hold)
    }

    fn from_pieces(pieces: &[(f64, f64, f64)], hold: f64) -> Self {
        let mut segments = Vec::with_capacity(pieces.len() + 1);
        let (mut t, mut n) = (0.0, 0.0);
        for &(r0, r1, len) in pieces.iter().filter(|p| p.2 > 0.0) {
            segments.push(Segment {
                start: t,
                len,
                r0,
                r1,
                n0: n,
            });
            t += len;
            n += (r0 + r1) / 2.0 * len;
        }
        segments.push(Segment {
            start: t,
            len: f64::INFINITY,
            r0: hold,
            r1: hold,
            n0: n,
        });
        Self { segments }
    }

    /// The offered rate at `t` seconds.
    pub fn rate_at(&self, t: f64) -> f64 {
        let s = self.segment_at(t);
        if s.len.is_finite() {
            s.r0 + (s.r1 - s.r0) * ((t - s.start) / s.len).clamp(0.0, 1.0)
        } else {
            s.r0
        }
    }

    /// Expected number of requests due in `[0, t)`.
    pub fn count_until(&self, t: f64) -> f64 {
        if t <= 0.0 {
            return 0.0;
        }
        let s = self.segment_at(t);
        let tau = t - s.start;
        let slope = if s.len.is_finite() {
            (s.r1 - s.r0) / s.len
        } else {
            0.0
        };
        s.n0 + s.r0 * tau + slope / 2.0 * tau * tau
    }

    fn segment_at(&self, t: f64) -> &Segment {
        let i = self
            .segments
            .partition_point(|s| s.start <= t)
            .saturating_sub(1);
        &self.segments[i]
    }

    /// Seconds from the start at which request `i` is due; `None` if it never is (the rate
    /// falls to zero first).
    pub fn due(&self, i: u64) -> Option<f64> {
        let k = i as f64;
        // The segment whose count range holds k.
        let idx = self
            .segments
            .partition_point(|s| s.n0 <= k)
            .saturating_sub(1);
        for s in &self.segments[idx..] {
            let need = k - s.n0;
            let slope = if s.len.is_finite() {
                (s.r1 - s.r0) / s.len
            } else {
                0.0
            };
            // Solve r0·τ + slope/2·τ² = need for the smallest τ ≥ 0 (numerically stable form).
            let tau = if need <= 0.0 {
                Some(0.0)
            } else {
                let disc = s.r0 * s.r0 + 2.0 * slope * need;
                let denom = s.r0 + disc.max(0.0).sqrt();
                (disc >= 0.0 && denom > 0.0).then(|| 2.0 * need / denom)
            };
            match tau {
                Some(tau) if tau <= s.len => return Some(s.start + tau),
                _ if s.len.is_finite() => continue,
                _ => return None,
            }
        }
        None
    }

    /// The rate the schedule ends on (and holds).
    pub fn final_rate(&self) -> f64 {
        self.segments.last().map_or(0.0, |s| s.r0)
    }
}

/// Parses `--ramp FROM:TO:DURATION` (e.g. `100:2000:30s`).
pub fn parse_ramp(s: &str) -> Result<RateSchedule, ConfigError> {
    let bad = || {
        ConfigError::Invalid(format!(
            "--ramp {s:?}: expected FROM:TO:DURATION, e.g. 100:2000:30s"
        ))
    };
    let mut parts = s.split(':');
    let (Some(a), Some(b), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let from = parse_rate(a).map_err(|_| bad())?;
    let to = parse_rate(b).map_err(|_| bad())?;
    let over = parse_duration(d).map_err(|_| bad())?;
    if over.is_zero() || (from == 0.0 && to == 0.0) {
        return Err(bad());
    }
    Ok(RateSchedule::ramp(from, to, over))
}

/// Parses `--steps R1,R2,…@DURATION` (e.g. `500,1000,2000@10s`).
pub fn parse_steps(s: &str) -> Result<RateSchedule, ConfigError> {
    let bad = || {
        ConfigError::Invalid(format!(
            "--steps {s:?}: expected RATE,RATE,…@DURATION, e.g. 500,1000,2000@10s"
        ))
    };
    let (rates, each) = s.split_once('@').ok_or_else(bad)?;
    let rates: Vec<f64> = rates
        .split(',')
        .map(|r| parse_rate(r.trim()))
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let each = parse_duration(each).map_err(|_| bad())?;
    if rates.is_empty() || each.is_zero() || rates.iter().all(|r| *r == 0.0) {
        return Err(bad());
    }
    Ok(RateSchedule::steps(&rates, each))
}

/// A rate in requests per second: a finite, non-negative number.
pub fn parse_rate(s: &str) -> Result<f64, ConfigError> {
    match s.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r >= 0.0 => Ok(r),
        _ => Err(ConfigError::Invalid(format!(
            "{s:?} is not a rate (requests per second)"
        ))),
    }
}

/// A duration: a number with a unit `us`/`µs`, `ms`, `s`, `m` or `h`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, ConfigError> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let scale = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => f64::NAN,
    };
    match num.parse::<f64>() {
        Ok(v) if (v * scale).is_finite() && v >= 0.0 => Ok(Duration::from_secs_f64(v * scale)),
        _ => Err(ConfigError::Invalid(format!(
            "{s:?} is not a duration (e.g. 500ms, 10s, 2m)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * (1.0 + a.abs().max(b.abs()))
    }

    #[test]
    fn constant_rate_spaces_requests_evenly() {
        let s = RateSchedule::constant(1000.0);
        assert_eq!(s.due(0), Some(0.0));
        assert!(close(s.due(1).unwrap(), 0.001));
        assert!(close(s.due(2500).unwrap(), 2.5));
        assert!(close(s.count_until(3.0), 3000.0));
        assert_eq!(RateSchedule::constant(0.0).due(1), None);
    }

    #[test]
    fn ramp_accelerates_then_holds() {
        // 0 → 100/s over 10 s: N(t) = 5 t² for t ≤ 10, then 500 + 100 (t − 10).
        let s = RateSchedule::ramp(0.0, 100.0, Duration::from_secs(10));
        assert!(close(s.due(5).unwrap(), 1.0));
        assert!(close(s.due(125).unwrap(), 5.0));
        assert!(close(s.due(500).unwrap(), 10.0));
        assert!(close(s.due(600).unwrap(), 11.0));
        assert!(close(s.rate_at(5.0), 50.0));
        assert!(close(s.rate_at(60.0), 100.0));
        // Ramping down to zero ends the schedule.
        let down = RateSchedule::ramp(100.0, 0.0, Duration::from_secs(10));
        assert!(close(down.count_until(10.0), 500.0));
        assert!(down.due(499).is_some());
        assert_eq!(down.due(501), None);
    }

    #[test]
    fn steps_hold_each_rate() {
        let s = parse_steps("500,1000,2000@10s").unwrap();
        assert!(close(s.due(500).unwrap(), 1.0));
        assert!(close(s.due(5000).unwrap(), 10.0));
        assert!(close(s.due(5000 + 1000).unwrap(), 11.0));
        assert!(close(s.due(5000 + 10_000 + 2000).unwrap(), 21.0));
        assert!(close(s.due(35_000 + 2000).unwrap(), 31.0));
        assert_eq!(s.final_rate(), 2000.0);
    }

    #[test]
    fn warmup_runs_at_the_initial_rate() {
        let s = parse_ramp("100:1000:10s").unwrap();
        let w = s.with_warmup(Duration::from_secs(2));
        assert!(close(w.count_until(2.0), 200.0));
        assert!(close(w.count_until(12.0), 200.0 + 5500.0));
        assert!(close(w.rate_at(13.0), 1000.0));
    }

    #[test]
    fn parses_specs_and_durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("100us").unwrap(), Duration::from_micros(100));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        for bad in ["", "ms", "-1s", "3 parsecs", "1e400s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(parse_ramp("100:2000").is_err());
        assert!(parse_ramp("a:2000:1s").is_err());
        assert!(parse_steps("500,1000").is_err());
        assert!(parse_steps("@1s").is_err());
    }

    proptest! {
        #[test]
        fn due_times_are_monotone_and_match_the_count(
            r0 in 0.0f64..5000.0, r1 in 0.0f64..5000.0, len in 0.1f64..20.0,
            steps in proptest::collection::vec(1.0f64..3000.0, 1..5),
            warm in 0.0f64..3.0,
        ) {
            let ramp = RateSchedule::ramp(r0, r1, Duration::from_secs_f64(len));
            let stepped = RateSchedule::steps(&steps, Duration::from_secs_f64(len))
                .with_warmup(Duration::from_secs_f64(warm));
            for s in [ramp, stepped] {
                let mut prev = 0.0;
                for i in 0..2000u64 {
                    let Some(t) = s.due(i) else { break };
                    prop_assert!(t >= prev - 1e-12, "due({i}) = {t} < {prev}");
                    // N(due(i)) = i: the schedule's count and its due times agree.
                    let n = s.count_until(t);
                    prop_assert!((n - i as f64).abs() < 1e-6 * (1.0 + i as f64), "N({t}) = {n}, i = {i}");
                    prev = t;
                }
            }
        }
    }
}
