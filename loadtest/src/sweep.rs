//! The saturation search: open-loop steps at rising offered rates until p99 exceeds the SLO,
//! errors appear, or the server cannot keep up (achieved < 90 % of offered), like
//! perf_analyzer's request-rate search. The saturation throughput is the highest achieved
//! rate of a step that met the SLO.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::engine::{self, Load, Plan, RunResult, RunSpec};
use crate::error::LoadtestError;
use crate::progress::Progress;
use crate::schedule::RateSchedule;
use crate::verdict::fmt_us;

/// One step of a sweep.
#[derive(Debug, Clone, Serialize)]
pub struct SweepStep {
    pub offered_rps: f64,
    pub achieved_rps: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    /// Failed requests (status or transport).
    pub errors: u64,
    /// Offered requests never sent: every connection was busy until the step ended.
    pub unsent: u64,
    pub requests: u64,
    /// Met the SLO without errors.
    pub ok: bool,
}

/// The outcome of a sweep.
#[derive(Debug, Clone, Serialize)]
pub struct SweepResult {
    pub slo_p99_us: u64,
    pub steps: Vec<SweepStep>,
    /// Highest achieved rate among the steps that met the SLO.
    pub saturation_rps: Option<f64>,
    /// Why the sweep stopped.
    pub stopped: String,
}

/// Whether a step meets the SLO; `Err(reason)` otherwise.
pub fn judge_step(step: &SweepStep, slo_us: u64) -> Result<(), String> {
    if step.errors > 0 {
        return Err(format!(
            "{} errors at {:.0}/s",
            step.errors, step.offered_rps
        ));
    }
    if step.unsent > 0 {
        return Err(format!(
            "{} requests unsent at {:.0}/s (every connection busy)",
            step.unsent, step.offered_rps
        ));
    }
    if step.requests == 0 {
        return Err(format!("no response at {:.0}/s", step.offered_rps));
    }
    if step.p99_us > slo_us {
        return Err(format!(
            "p99 {} above the SLO {} at {:.0}/s",
            fmt_us(step.p99_us as f64),
            fmt_us(slo_us as f64),
            step.offered_rps
        ));
    }
    if step.achieved_rps < 0.9 * step.offered_rps {
        return Err(format!(
            "achieved {:.0}/s of {:.0}/s offered",
            step.achieved_rps, step.offered_rps
        ));
    }
    Ok(())
}

/// Runs the sweep; returns it and the last step's full result.
pub fn run(
    plan: Arc<Plan>,
    base: &RunSpec,
    rates: &[f64],
    slo: Duration,
    progress: &Progress,
    labels: &[String],
) -> Result<(SweepResult, RunResult), LoadtestError> {
    let slo_us = slo.as_micros() as u64;
    let mut steps = Vec::new();
    let mut last = None;
    let mut stopped = "every rate met the SLO".to_string();
    for &rate in rates {
        let spec = RunSpec {
            load: Load::Open(RateSchedule::constant(rate)),
            ..base.clone()
        };
        let r = engine::run(plan.clone(), &spec, |t| progress.tick(&t, labels))?;
        let total = r.total();
        let h = &total.latency;
        let step = SweepStep {
            offered_rps: rate,
            achieved_rps: r.achieved_rps(),
            p50_us: if h.is_empty() {
                0
            } else {
                h.value_at_quantile(0.5)
            },
            p99_us: if h.is_empty() {
                0
            } else {
                h.value_at_quantile(0.99)
            },
            errors: total.errors(),
            unsent: r.unsent,
            requests: total.requests,
            ok: false,
        };
        let verdict = judge_step(&step, slo_us);
        let step = SweepStep {
            ok: verdict.is_ok(),
            ..step
        };
        progress.note(&format!(
            "sweep {:>8.0}/s: achieved {:>8.0}/s  p50 {:>8}  p99 {:>8}  errors {}  unsent {}  {}",
            step.offered_rps,
            step.achieved_rps,
            fmt_us(step.p50_us as f64),
            fmt_us(step.p99_us as f64),
            step.errors,
            step.unsent,
            if step.ok { "ok" } else { "over" }
        ));
        steps.push(step);
        last = Some(r);
        if let Err(why) = verdict {
            stopped = why;
            break;
        }
    }
    let saturation_rps = steps
        .iter()
        .filter(|s| s.ok)
        .map(|s| s.achieved_rps)
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
    let last = last.ok_or_else(|| LoadtestError::Data("the sweep has no rates".into()))?;
    Ok((
        SweepResult {
            slo_p99_us: slo_us,
            steps,
            saturation_rps,
            stopped,
        },
        last,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(p99: u64, errors: u64, achieved: f64) -> SweepStep {
        SweepStep {
            offered_rps: 1000.0,
            achieved_rps: achieved,
            p50_us: 100,
            p99_us: p99,
            errors,
            unsent: 0,
            requests: 1000,
            ok: false,
        }
    }

    #[test]
    fn steps_are_judged_against_the_slo() {
        assert!(judge_step(&step(900, 0, 1000.0), 1000).is_ok());
        assert!(
            judge_step(&step(1100, 0, 1000.0), 1000)
                .unwrap_err()
                .contains("above the SLO")
        );
        assert!(
            judge_step(&step(900, 3, 1000.0), 1000)
                .unwrap_err()
                .contains("3 errors")
        );
        assert!(
            judge_step(&step(900, 0, 800.0), 1000)
                .unwrap_err()
                .contains("achieved 800/s")
        );
    }
}
