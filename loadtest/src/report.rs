//! Reports of a run: the JSON summary, the final text table, per-second CSV and `.hgrm`
//! percentile spectra.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::engine::RunResult;
use crate::error::LoadtestError;
use crate::stats::{ArmStats, VersionStats, write_hgrm};
use crate::sweep::SweepResult;
use crate::verdict::{Status, Verdict, fmt_us};

/// `{"p50","p90","p99","p999","max","mean"}` in µs (null when empty).
pub fn latency_json(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return json!({"p50": null, "p90": null, "p99": null, "p999": null, "max": null, "mean": null, "count": 0});
    }
    json!({
        "p50": h.value_at_quantile(0.5),
        "p90": h.value_at_quantile(0.9),
        "p99": h.value_at_quantile(0.99),
        "p999": h.value_at_quantile(0.999),
        "max": h.max(),
        "mean": (h.mean() * 10.0).round() / 10.0,
        "count": h.len(),
    })
}

fn versions_json(v: &BTreeMap<String, VersionStats>) -> Value {
    Value::Object(
        v.iter()
            .map(|(k, s)| {
                (
                    k.clone(),
                    json!({
                        "requests": s.requests,
                        "ok": s.ok,
                        "latency_us": latency_json(&s.latency),
                        "score_mean": s.score_mean(),
                    }),
                )
            })
            .collect(),
    )
}

fn server_json(a: &ArmStats) -> Value {
    json!({
        "queue": latency_json(&a.server_queue),
        "compute": latency_json(&a.server_compute),
        "total": latency_json(&a.server_total),
    })
}

/// Labels and URLs of the arms.
#[derive(Debug, Clone)]
pub struct ArmInfo {
    pub label: String,
    pub url: String,
}

/// The JSON summary.
pub fn summary_json(
    r: &RunResult,
    arms: &[ArmInfo],
    verdict: &Verdict,
    sweep: Option<&SweepResult>,
    warmup_s: f64,
) -> Value {
    let total = r.total();
    let elapsed = r.elapsed.max(1e-9);
    let arms_json: Vec<Value> = r
        .arms
        .iter()
        .zip(arms)
        .map(|(a, info)| {
            json!({
                "label": info.label,
                "url": info.url,
                "requests": a.requests,
                "ok": a.ok,
                "errors": a.error_map(),
                "error_rate": a.error_rate(),
                "achieved_rps": a.requests as f64 / elapsed,
                "latency_us": latency_json(&a.latency),
                "server_us": server_json(a),
                "versions": versions_json(&a.versions),
                "score_mean": a.score_mean(),
            })
        })
        .collect();
    let mut out = json!({
        "mode": if r.closed_loop { "closed" } else { "open" },
        "duration_s": r.duration.as_secs_f64(),
        "warmup_s": warmup_s,
        "elapsed_s": r.elapsed,
        "connections": r.connections,
        "threads": r.threads,
        "requests": total.requests,
        "ok": total.ok,
        "errors": total.error_map(),
        "error_rate": total.error_rate(),
        "offered_rps": r.offered_rps(),
        "achieved_rps": r.achieved_rps(),
        "unsent": r.unsent,
        "latency_us": latency_json(&total.latency),
        "server_us": server_json(&total),
        "versions": versions_json(&total.versions),
        "arms": arms_json,
        "verdict": verdict_json(verdict),
    });
    if let Some(s) = sweep {
        out["sweep"] = serde_json::to_value(s).unwrap_or(Value::Null);
    }
    out
}

fn verdict_json(v: &Verdict) -> Value {
    let mut j = serde_json::to_value(v).unwrap_or(Value::Null);
    j["exit_code"] = json!(v.status.exit_code());
    j
}

fn opt_us(h: &Histogram<u64>, q: f64) -> String {
    if h.is_empty() {
        "-".into()
    } else if q >= 1.0 {
        fmt_us(h.max() as f64)
    } else {
        fmt_us(h.value_at_quantile(q) as f64)
    }
}

/// The final text table.
pub fn text_table(
    r: &RunResult,
    arms: &[ArmInfo],
    verdict: &Verdict,
    sweep: Option<&SweepResult>,
) -> String {
    let mut s = String::new();
    let total = r.total();
    let _ = writeln!(
        s,
        "{} loop, {} connection{}, {} thread{}, {:.1}s measured",
        if r.closed_loop { "closed" } else { "open" },
        r.connections,
        if r.connections == 1 { "" } else { "s" },
        r.threads,
        if r.threads == 1 { "" } else { "s" },
        r.elapsed
    );
    let _ = write!(
        s,
        "requests {}  ok {}  errors {}  achieved {:.1}/s",
        total.requests,
        total.ok,
        total.errors(),
        r.achieved_rps()
    );
    if let Some(o) = r.offered_rps() {
        let _ = write!(s, "  offered {o:.1}/s");
    }
    if r.unsent > 0 {
        let _ = write!(s, "  unsent {}", r.unsent);
    }
    s.push('\n');
    let errs = total.error_map();
    if !errs.is_empty() {
        let list: Vec<String> = errs.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let _ = writeln!(s, "errors by kind: {}", list.join(", "));
    }
    s.push('\n');
    let _ = writeln!(
        s,
        "{:<24} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10}",
        "arm / version",
        "requests",
        "errors",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "max",
        "srv p99",
        "score"
    );
    let row = |s: &mut String,
               name: &str,
               req: u64,
               err: u64,
               h: &Histogram<u64>,
               srv: Option<&Histogram<u64>>,
               score: Option<f64>| {
        let _ = writeln!(
            s,
            "{:<24} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10}",
            truncate(name, 24),
            req,
            err,
            opt_us(h, 0.5),
            opt_us(h, 0.9),
            opt_us(h, 0.99),
            opt_us(h, 0.999),
            opt_us(h, 1.0),
            srv.map_or("-".into(), |h| opt_us(h, 0.99)),
            score.map_or("-".into(), |v| format!("{v:.4}")),
        );
    };
    for (a, info) in r.arms.iter().zip(arms) {
        row(
            &mut s,
            &info.label,
            a.requests,
            a.errors(),
            &a.latency,
            Some(&a.server_total),
            a.score_mean(),
        );
        for (v, vs) in &a.versions {
            row(
                &mut s,
                &format!("  version {v}"),
                vs.requests,
                vs.requests - vs.ok,
                &vs.latency,
                None,
                vs.score_mean(),
            );
        }
    }
    if r.arms.len() > 1 {
        row(
            &mut s,
            "all",
            total.requests,
            total.errors(),
            &total.latency,
            Some(&total.server_total),
            total.score_mean(),
        );
    }
    if !total.server_total.is_empty() {
        let _ = writeln!(s, "\nserver time (x-vane-*-us headers), p50 / p99:");
        let mut server = |name: &str, a: &ArmStats| {
            let _ = writeln!(
                s,
                "  {:<22} queue {} / {}, compute {} / {}, total {} / {}",
                truncate(name, 22),
                opt_us(&a.server_queue, 0.5),
                opt_us(&a.server_queue, 0.99),
                opt_us(&a.server_compute, 0.5),
                opt_us(&a.server_compute, 0.99),
                opt_us(&a.server_total, 0.5),
                opt_us(&a.server_total, 0.99),
            );
        };
        if r.arms.len() > 1 {
            for (a, info) in r.arms.iter().zip(arms) {
                server(&info.label, a);
            }
        } else {
            server("all", &total);
        }
    }
    if let Some(l) = &verdict.latency {
        let _ = writeln!(
            s,
            "\nlatency (Mann–Whitney, {} vs {} samples): {}; shift {} (98% CI {} … {}), p = {:.2e}",
            l.baseline_samples,
            l.canary_samples,
            match l.classification {
                "high" => "canary slower",
                "low" => "canary faster",
                _ => "no significant difference",
            },
            fmt_us(l.shift_us),
            fmt_us(l.shift_lower_us),
            fmt_us(l.shift_upper_us),
            l.pvalue
        );
    }
    if let Some(sc) = &verdict.scores {
        let _ = writeln!(
            s,
            "scores on {} shared rows: mean {:.4} → {:.4}, PSI {}, KS D {} (p {}), MAE {:.5}, max |Δ| {:.5}, decisions flipped at {}: {:.2}%",
            sc.rows,
            sc.baseline_mean,
            sc.canary_mean,
            sc.psi.map_or("-".into(), |v| format!("{v:.4}")),
            sc.ks_statistic.map_or("-".into(), |v| format!("{v:.4}")),
            sc.ks_pvalue.map_or("-".into(), |v| format!("{v:.2e}")),
            sc.mae,
            sc.max_abs_diff,
            sc.cutoff,
            sc.flip_rate * 100.0
        );
    }
    if let Some(sw) = sweep {
        let _ = writeln!(s, "\nsweep (SLO p99 < {}):", fmt_us(sw.slo_p99_us as f64));
        for st in &sw.steps {
            let _ = writeln!(
                s,
                "  offered {:>9.0}/s  achieved {:>9.0}/s  p50 {:>8}  p99 {:>8}  errors {:>5}  unsent {:>5}  {}",
                st.offered_rps,
                st.achieved_rps,
                fmt_us(st.p50_us as f64),
                fmt_us(st.p99_us as f64),
                st.errors,
                st.unsent,
                if st.ok { "ok" } else { "over" }
            );
        }
        let _ = writeln!(
            s,
            "saturation throughput: {} (stopped: {})",
            sw.saturation_rps
                .map_or("none met the SLO".into(), |r| format!("{r:.0}/s")),
            sw.stopped
        );
    }
    if !verdict.checks.is_empty() || verdict.status != Status::Pass {
        s.push('\n');
        for c in &verdict.checks {
            let _ = writeln!(
                s,
                "  {:<6} {:<28} observed {}",
                match c.status {
                    Status::Pass => "ok",
                    Status::Fail => "FAIL",
                    Status::Inconclusive => "?",
                },
                c.threshold,
                c.observed_text
            );
        }
        let _ = writeln!(
            s,
            "verdict: {} (exit {})",
            verdict.status.word(),
            verdict.status.exit_code()
        );
        for reason in &verdict.reasons {
            let _ = writeln!(s, "  - {reason}");
        }
    }
    s
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> LoadtestError + '_ {
    move |e| LoadtestError::Write(path.display().to_string(), e)
}

/// Per-second figures: one row per second for all arms together (`arm` = `all`) and, with
/// several arms, one per arm.
pub fn write_csv(path: &Path, r: &RunResult, arms: &[ArmInfo]) -> Result<(), LoadtestError> {
    let mut out =
        String::from("second,arm,offered_rps,completed,ok,errors,p50_us,p90_us,p99_us,max_us\n");
    for row in &r.seconds {
        let offered = row.offered.map_or(String::new(), |o| format!("{o:.1}"));
        let mut line = |label: &str, f: &crate::stats::SecondFigures| {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{}",
                row.second,
                csv_field(label),
                offered,
                f.completed,
                f.ok,
                f.errors,
                f.p50_us,
                f.p90_us,
                f.p99_us,
                f.max_us
            );
        };
        line("all", &row.all);
        if row.arms.len() > 1 {
            for (f, a) in row.arms.iter().zip(arms) {
                line(&a.label, f);
            }
        }
    }
    std::fs::write(path, out).map_err(write_err(path))
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A file-name-safe form of a label.
pub fn slug(s: &str) -> String {
    let mut t = String::with_capacity(s.len());
    for c in s.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
            c
        } else {
            '_'
        };
        if !(c == '_' && t.ends_with('_')) {
            t.push(c);
        }
    }
    t.trim_matches('_').to_string()
}

/// `.hgrm` spectra: `all.hgrm`, one per arm (`<arm>.hgrm`) and one per arm and version
/// (`<arm>-v<version>.hgrm`). Returns the files written.
pub fn write_hgrms(
    dir: &Path,
    r: &RunResult,
    arms: &[ArmInfo],
) -> Result<Vec<String>, LoadtestError> {
    std::fs::create_dir_all(dir).map_err(write_err(dir))?;
    let mut files = Vec::new();
    let mut write = |name: String, h: &Histogram<u64>| -> Result<(), LoadtestError> {
        let path = dir.join(&name);
        let mut f =
            std::io::BufWriter::new(std::fs::File::create(&path).map_err(write_err(&path))?);
        write_hgrm(h, &mut f).map_err(write_err(&path))?;
        f.flush().map_err(write_err(&path))?;
        files.push(path.display().to_string());
        Ok(())
    };
    write("all.hgrm".into(), &r.total().latency)?;
    for (a, info) in r.arms.iter().zip(arms) {
        let base = slug(&info.label);
        write(format!("{base}.hgrm"), &a.latency)?;
        for (v, vs) in &a.versions {
            write(format!("{base}-v{}.hgrm", slug(v)), &vs.latency)?;
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{ArmStats, SecondFigures, SecondRow};
    use std::time::Duration;

    fn result() -> RunResult {
        let mut a = ArmStats::new();
        for v in [100u64, 200, 300, 400] {
            a.latency.record(v).unwrap();
        }
        a.requests = 5;
        a.ok = 4;
        a.status_errors.insert(503, 1);
        let mut v = VersionStats::new();
        v.requests = 5;
        v.ok = 4;
        v.latency = a.latency.clone();
        v.score_sum = 2.0;
        v.score_count = 4;
        a.versions.insert("3".into(), v);
        RunResult {
            arms: vec![a],
            seconds: vec![SecondRow {
                second: 0,
                offered: Some(5.0),
                all: SecondFigures::from_hist(5, 4, &crate::stats::new_hist()),
                arms: vec![SecondFigures::default()],
            }],
            elapsed: 1.0,
            offered: Some(5),
            offered_secs: 1.0,
            unsent: 0,
            closed_loop: false,
            connections: 2,
            threads: 1,
            duration: Duration::from_secs(1),
        }
    }

    #[test]
    fn summary_has_the_documented_shape() {
        let r = result();
        let v = Verdict {
            status: Status::Pass,
            checks: vec![],
            reasons: vec![],
            latency: None,
            scores: None,
        };
        let arms = vec![ArmInfo {
            label: "target".into(),
            url: "http://x/infer".into(),
        }];
        let j = summary_json(&r, &arms, &v, None, 0.0);
        for k in [
            "requests",
            "ok",
            "errors",
            "offered_rps",
            "achieved_rps",
            "latency_us",
            "versions",
            "verdict",
        ] {
            assert!(j.get(k).is_some(), "{k}");
        }
        assert_eq!(j["requests"], json!(5));
        assert_eq!(j["errors"], json!({"503": 1}));
        assert_eq!(j["latency_us"]["p50"], json!(200));
        for k in ["p50", "p90", "p99", "p999", "max"] {
            assert!(j["latency_us"][k].is_u64(), "{k}");
        }
        assert_eq!(j["versions"]["3"]["score_mean"], json!(0.5));
        assert_eq!(j["versions"]["3"]["requests"], json!(5));
        assert_eq!(j["verdict"]["status"], json!("pass"));
        assert_eq!(j["verdict"]["exit_code"], json!(0));
        let t = text_table(&r, &arms, &v, None);
        assert!(t.contains("version 3"), "{t}");
        assert!(t.contains("503: 1"), "{t}");
    }

    #[test]
    fn csv_and_hgrm_files() {
        let dir = tempfile::tempdir().unwrap();
        let r = result();
        let arms = vec![ArmInfo {
            label: "champion (v3)".into(),
            url: "u".into(),
        }];
        let csv = dir.path().join("s.csv");
        write_csv(&csv, &r, &arms).unwrap();
        let text = std::fs::read_to_string(&csv).unwrap();
        assert!(text.starts_with("second,arm,offered_rps,completed,ok,errors,p50_us,p90_us,p99_us,max_us\n0,all,5.0,5,4,1,"), "{text}");
        let files = write_hgrms(dir.path(), &r, &arms).unwrap();
        assert_eq!(files.len(), 3);
        assert!(files[2].ends_with("champion_v3-v3.hgrm"), "{files:?}");
    }
}
