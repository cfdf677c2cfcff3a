//! SVG plots with `plotters` (SVG backend only, no font feature: the SVG backend writes
//! `<text>` elements and the viewer's fonts render them, so nothing is rasterized and no
//! system font is needed).
//!
//! * `percentiles.svg` — the HDR percentile spectrum of each arm and version (latency against
//!   percentile, the x axis stretched as 1/(1−p), like HdrHistogram's plotter);
//! * `timeline.svg` — p50/p99 latency per second per arm, and achieved (and offered)
//!   throughput per second.

use std::path::Path;

use plotters::prelude::*;

use crate::engine::RunResult;
use crate::error::LoadtestError;
use crate::report::ArmInfo;
use crate::stats::percentile_spectrum;

fn plot_err<E: std::fmt::Display>(path: &Path) -> impl Fn(E) -> LoadtestError + '_ {
    move |e| LoadtestError::Plot(path.display().to_string(), e.to_string())
}

/// Writes both plots into `dir`; returns the files written.
pub fn write_plots(
    dir: &Path,
    r: &RunResult,
    arms: &[ArmInfo],
) -> Result<Vec<String>, LoadtestError> {
    std::fs::create_dir_all(dir).map_err(|e| LoadtestError::Write(dir.display().to_string(), e))?;
    let a = dir.join("percentiles.svg");
    percentiles(&a, r, arms)?;
    let b = dir.join("timeline.svg");
    timeline(&b, r, arms)?;
    Ok(vec![a.display().to_string(), b.display().to_string()])
}

/// `log10(1 / (1 − p))` for a percentile in [0, 100).
fn stretch(pct: f64) -> f64 {
    (1.0 / (1.0 - pct / 100.0)).log10()
}

fn percentiles(path: &Path, r: &RunResult, arms: &[ArmInfo]) -> Result<(), LoadtestError> {
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for (a, info) in r.arms.iter().zip(arms) {
        let several = a.versions.len() > 1 || r.arms.len() > 1;
        let mut add = |name: String, h: &hdrhistogram::Histogram<u64>| {
            let pts: Vec<(f64, f64)> = percentile_spectrum(h, 5)
                .into_iter()
                .filter(|(_, p, _)| *p < 99.9999)
                .map(|(v, p, _)| (stretch(p), v as f64 / 1000.0))
                .collect();
            if !pts.is_empty() {
                series.push((name, pts));
            }
        };
        if a.versions.len() > 1 || !several {
            for (v, vs) in &a.versions {
                add(format!("{} v{v}", info.label), &vs.latency);
            }
        } else {
            // One version: name it unless the label already does ("canary (v2)").
            let v = a
                .versions
                .keys()
                .next()
                .filter(|v| !info.label.contains(&format!("v{v}")))
                .map_or(String::new(), |v| format!(" v{v}"));
            add(format!("{}{v}", info.label), &a.latency);
        }
    }
    let x_max = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.0))
        .fold(2.0f64, f64::max)
        .ceil();
    let y_max = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.1))
        .fold(0.1f64, f64::max)
        * 1.05;
    let err = plot_err(path);
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Latency by percentile", ("sans-serif", 22))
        .margin(12)
        .margin_right(40)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(&err)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_labels(x_max as usize + 1)
        .x_label_formatter(&|x| {
            let p = 100.0 * (1.0 - 10f64.powf(-x));
            if p < 99.0 {
                format!("{p:.0}%")
            } else {
                let digits = (x.round() as usize).saturating_sub(2);
                format!("{p:.digits$}%")
            }
        })
        .draw()
        .map_err(&err)?;
    for (i, (name, pts)) in series.into_iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(&err)?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(&err)?;
    root.present().map_err(&err)?;
    Ok(())
}

fn timeline(path: &Path, r: &RunResult, arms: &[ArmInfo]) -> Result<(), LoadtestError> {
    let err = plot_err(path);
    let root = SVGBackend::new(path, (960, 720)).into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    let (upper, lower) = root.split_vertically(400);
    let n = r.seconds.len().max(1) as f64;
    // One series per arm (or "all" with one arm).
    let per_arm: Vec<(String, Vec<&crate::stats::SecondFigures>)> = if r.arms.len() > 1 {
        arms.iter()
            .enumerate()
            .map(|(i, a)| {
                (
                    a.label.clone(),
                    r.seconds.iter().filter_map(|s| s.arms.get(i)).collect(),
                )
            })
            .collect()
    } else {
        vec![(
            "all".to_string(),
            r.seconds.iter().map(|s| &s.all).collect(),
        )]
    };
    let y_max = per_arm
        .iter()
        .flat_map(|(_, f)| f.iter().map(|x| x.p99_us as f64 / 1000.0))
        .fold(0.1f64, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(&upper)
        .caption("Latency per second", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..n, 0f64..y_max)
        .map_err(&err)?;
    chart
        .configure_mesh()
        .x_desc("second")
        .y_desc("latency (ms)")
        .draw()
        .map_err(&err)?;
    let mut k = 0;
    for (name, figs) in &per_arm {
        for (what, pick) in [("p50", 0usize), ("p99", 1)] {
            let color = Palette99::pick(k).to_rgba();
            k += 1;
            let pts: Vec<(f64, f64)> = figs
                .iter()
                .enumerate()
                .filter(|(_, f)| f.ok > 0)
                .map(|(i, f)| {
                    let v = if pick == 0 { f.p50_us } else { f.p99_us };
                    (i as f64 + 0.5, v as f64 / 1000.0)
                })
                .collect();
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                .map_err(&err)?
                .label(format!("{name} {what}"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(&err)?;
    let rps_max = r
        .seconds
        .iter()
        .map(|s| (s.all.completed as f64).max(s.offered.unwrap_or(0.0)))
        .fold(1.0f64, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(&lower)
        .caption("Throughput per second", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..n, 0f64..rps_max)
        .map_err(&err)?;
    chart
        .configure_mesh()
        .x_desc("second")
        .y_desc("requests / s")
        .draw()
        .map_err(&err)?;
    let achieved: Vec<(f64, f64)> = r
        .seconds
        .iter()
        .enumerate()
        .map(|(i, s)| (i as f64 + 0.5, s.all.completed as f64))
        .collect();
    let blue = BLUE.to_rgba();
    chart
        .draw_series(LineSeries::new(achieved, blue.stroke_width(2)))
        .map_err(&err)?
        .label("achieved")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], blue.stroke_width(2)));
    if r.seconds.iter().any(|s| s.offered.is_some()) {
        let offered: Vec<(f64, f64)> = r
            .seconds
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.offered.map(|o| (i as f64 + 0.5, o)))
            .collect();
        let grey = BLACK.mix(0.5);
        chart
            .draw_series(LineSeries::new(offered, grey.stroke_width(1)))
            .map_err(&err)?
            .label("offered")
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], grey.stroke_width(1))
            });
    }
    let errors: Vec<(f64, f64)> = r
        .seconds
        .iter()
        .enumerate()
        .filter(|(_, s)| s.all.errors > 0)
        .map(|(i, s)| (i as f64 + 0.5, s.all.errors as f64))
        .collect();
    if !errors.is_empty() {
        let red = RED.to_rgba();
        chart
            .draw_series(errors.into_iter().map(|p| Circle::new(p, 3, red.filled())))
            .map_err(&err)?
            .label("errors")
            .legend(move |(x, y)| Circle::new((x + 10, y), 3, red.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(&err)?;
    root.present().map_err(&err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{ArmStats, SecondFigures, SecondRow, VersionStats};
    use std::time::Duration;

    #[test]
    fn writes_svg_with_text() {
        let mut a = ArmStats::new();
        let mut v = VersionStats::new();
        for x in 1..2000u64 {
            a.latency.record(100 + x).unwrap();
            v.latency.record(100 + x).unwrap();
        }
        a.versions.insert("1".into(), v.clone());
        a.versions.insert("2".into(), v);
        let r = RunResult {
            arms: vec![a],
            seconds: (0..5)
                .map(|s| SecondRow {
                    second: s,
                    offered: Some(1000.0),
                    all: SecondFigures {
                        completed: 990,
                        ok: 989,
                        errors: 1,
                        p50_us: 500,
                        p90_us: 900,
                        p99_us: 1500,
                        max_us: 3000,
                    },
                    arms: vec![SecondFigures::default()],
                })
                .collect(),
            elapsed: 5.0,
            offered: Some(5000),
            offered_secs: 5.0,
            unsent: 0,
            closed_loop: false,
            connections: 1,
            threads: 1,
            duration: Duration::from_secs(5),
        };
        let dir = tempfile::tempdir().unwrap();
        let files = write_plots(
            dir.path(),
            &r,
            &[ArmInfo {
                label: "target".into(),
                url: "u".into(),
            }],
        )
        .unwrap();
        let svg = std::fs::read_to_string(&files[0]).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..100]);
        assert!(svg.contains("Latency by percentile") && svg.contains("target v2"));
        assert!(svg.contains("99.9%"), "percentile labels");
        let svg = std::fs::read_to_string(&files[1]).unwrap();
        assert!(svg.contains("Throughput per second") && svg.contains("offered"));
    }
}
