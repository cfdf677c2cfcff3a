//! The drift report a person reads: one HTML page, inline SVG histograms, no JavaScript.
//!
//! For each model version (and window), every feature's reference and current shares side
//! by side, PSI, the KS or chi-square p-value, the missing and out-of-range (or unseen)
//! shares and a verdict colour, most-drifted features first. `/report` renders the monitor's
//! latest windows; `vane-monitor compare --html` renders one comparison.

use std::fmt::Write as _;

use crate::drift::{ColumnReport, Thresholds, Verdict, WindowDrift};

/// One block of the report.
pub struct Section<'a> {
    pub title: String,
    /// Facts shown under the title (label, value).
    pub facts: Vec<(String, String)>,
    pub warnings: &'a [String],
    pub drift: &'a WindowDrift,
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn colour(v: Verdict) -> &'static str {
    match v {
        Verdict::Drift => "#d1242f",
        Verdict::Warning => "#bf8700",
        Verdict::Ok => "#1a7f37",
        Verdict::Insufficient => "#6e7781",
    }
}

fn num(x: Option<f64>, digits: usize) -> String {
    match x {
        None => "–".into(),
        Some(0.0) => "0".into(),
        Some(v) if v.abs() < 10f64.powi(-(digits as i32)) => format!("{v:.2e}"),
        Some(v) => format!("{v:.digits$}"),
    }
}

fn pct(x: Option<f64>) -> String {
    x.map_or_else(|| "–".into(), |v| format!("{:.1}%", v * 100.0))
}

/// Reference (grey) and current (verdict colour) shares per slot.
fn histogram(c: &ColumnReport) -> String {
    let n = c.bins.len().max(1);
    let total: u64 = c.counts.iter().sum();
    let current: Vec<f64> = c
        .counts
        .iter()
        .map(|k| {
            if total == 0 {
                0.0
            } else {
                *k as f64 / total as f64
            }
        })
        .collect();
    let top = c
        .reference_shares
        .iter()
        .chain(&current)
        .fold(0.0f64, |a, b| a.max(*b))
        .max(1e-9);
    let (w, h, pad) = (24.0 * n as f64 + 8.0, 72.0, 4.0);
    let slot = (w - 2.0 * pad) / n as f64;
    let bar = slot * 0.4;
    let mut svg = format!(
        r#"<svg class="hist" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" role="img" aria-label="reference vs current shares of {}">"#,
        esc(&c.name)
    );
    let _ = write!(
        svg,
        r##"<line x1="0" y1="{y:.1}" x2="{w:.0}" y2="{y:.1}" stroke="#d0d7de"/>"##,
        y = h - pad
    );
    for i in 0..n {
        let r = c.reference_shares.get(i).copied().unwrap_or(0.0);
        let k = current.get(i).copied().unwrap_or(0.0);
        let x = pad + i as f64 * slot + slot * 0.1;
        let label = esc(c.bins.get(i).map_or("", String::as_str));
        for (j, (share, fill)) in [(r, "#8c959f"), (k, colour(c.verdict))]
            .into_iter()
            .enumerate()
        {
            let bh = (share / top) * (h - 2.0 * pad);
            let _ = write!(
                svg,
                r#"<rect x="{:.1}" y="{:.1}" width="{bar:.1}" height="{bh:.1}" fill="{fill}"><title>{label}: {} {:.1}%</title></rect>"#,
                x + j as f64 * bar,
                h - pad - bh,
                if j == 0 { "reference" } else { "current" },
                share * 100.0
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

fn row(out: &mut String, c: &ColumnReport) {
    let p = c.ks_pvalue.or(c.chi2_pvalue);
    let test = if c.ks_pvalue.is_some() {
        format!("KS D {} · p {}", num(c.ks_statistic, 3), num(p, 4))
    } else if c.chi2_pvalue.is_some() {
        format!("χ² p {}", num(p, 4))
    } else {
        "–".into()
    };
    let other = match (c.out_of_range_share, c.unseen_share) {
        (Some(o), _) => format!("out of range {}", pct(Some(o))),
        (_, Some(u)) => format!("unseen {}", pct(Some(u))),
        _ => String::new(),
    };
    let _ = write!(
        out,
        r#"<tr><td class="name">{}</td><td>{}</td><td><span class="badge" style="background:{}">{}</span></td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td>{}</td></tr>"#,
        esc(&c.name),
        esc(&c.kind),
        colour(c.verdict),
        c.verdict.label(),
        num(c.psi, 3),
        test,
        pct(Some(c.missing_share)),
        other,
        c.rows,
        histogram(c)
    );
}

/// Most drifted first: verdict, then PSI.
fn order(a: &ColumnReport, b: &ColumnReport) -> std::cmp::Ordering {
    b.verdict
        .cmp(&a.verdict)
        .then(b.psi.unwrap_or(0.0).total_cmp(&a.psi.unwrap_or(0.0)))
}

/// Renders the page.
pub fn render(title: &str, subtitle: &str, th: &Thresholds, sections: &[Section<'_>]) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>{t}</title><style>
body{{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1f2328;margin:24px;max-width:1400px}}
h1{{font-size:22px;margin:0 0 4px}}h2{{font-size:17px;margin:28px 0 4px}}
.sub{{color:#57606a;margin:0 0 12px}}table{{border-collapse:collapse;width:100%;margin-top:8px}}
th,td{{border-bottom:1px solid #d8dee4;padding:4px 8px;text-align:left;vertical-align:middle}}
th{{background:#f6f8fa;font-weight:600}}td.num{{font-variant-numeric:tabular-nums;white-space:nowrap}}
td.name{{font-family:ui-monospace,SFMono-Regular,Menlo,monospace}}
.badge{{color:#fff;border-radius:10px;padding:1px 8px;font-size:12px;font-weight:600}}
.facts span{{margin-right:18px;color:#57606a}}.facts b{{color:#1f2328}}
.warn{{color:#9a6700}}.legend i{{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}}
</style></head><body><h1>{t}</h1><p class="sub">{s}</p>
<p class="sub">PSI warning ≥ {pw}, drift ≥ {pa}; KS p &lt; {ka} and χ² p &lt; {ca}, Bonferroni-corrected over the features; dataset drift when ≥ {ds:.0}% of the features drift; no verdict below {mr} rows.<span class="legend"><i style="background:#8c959f"></i>reference<i style="background:#1a7f37"></i>current (ok)<i style="background:#bf8700"></i>warning<i style="background:#d1242f"></i>drift</span></p>"#,
        t = esc(title),
        s = esc(subtitle),
        pw = th.psi_warn,
        pa = th.psi_alert,
        ka = th.ks_alpha,
        ca = th.chi2_alpha,
        ds = th.drift_share * 100.0,
        mr = th.min_rows,
    );
    if sections.is_empty() {
        out.push_str("<p>No window has been evaluated yet: the monitor needs sampled traffic and a reference profile per model version.</p>");
    }
    for s in sections {
        let d = s.drift;
        let verdict = match d.dataset_drift {
            Some(true) => Verdict::Drift,
            Some(false) if d.features.iter().any(|f| f.verdict == Verdict::Warning) => {
                Verdict::Warning
            }
            Some(false) => Verdict::Ok,
            None => Verdict::Insufficient,
        };
        let _ = write!(
            out,
            r#"<section><h2>{} <span class="badge" style="background:{}">{}</span></h2><p class="facts">"#,
            esc(&s.title),
            colour(verdict),
            match d.dataset_drift {
                Some(true) => "dataset drift",
                Some(false) => "no dataset drift",
                None => "not enough rows",
            }
        );
        for (k, v) in &s.facts {
            let _ = write!(out, "<span>{}: <b>{}</b></span>", esc(k), esc(v));
        }
        let drifted: Vec<&str> = d
            .features
            .iter()
            .filter(|f| f.drift)
            .map(|f| f.name.as_str())
            .collect();
        let _ = write!(
            out,
            "<span>rows: <b>{}</b></span><span>drift share: <b>{}</b></span><span>drifted: <b>{}</b></span></p>",
            d.rows,
            pct(d.drift_share),
            if drifted.is_empty() {
                "none".to_string()
            } else {
                esc(&drifted.join(", "))
            }
        );
        for w in s.warnings {
            let _ = write!(out, r#"<p class="warn">{}</p>"#, esc(w));
        }
        out.push_str("<table><thead><tr><th>feature</th><th>kind</th><th>verdict</th><th>PSI</th><th>test</th><th>missing</th><th>range</th><th>rows</th><th>reference vs current</th></tr></thead><tbody>");
        let mut cols: Vec<&ColumnReport> = d.features.iter().collect();
        cols.sort_by(|a, b| order(a, b));
        for c in cols {
            row(&mut out, c);
        }
        if let Some(p) = &d.prediction {
            out.push_str(r#"<tr><th colspan="9">prediction (model score)</th></tr>"#);
            row(&mut out, p);
        }
        out.push_str("</tbody></table></section>");
    }
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, verdict: Verdict, psi: f64) -> ColumnReport {
        ColumnReport {
            name: name.into(),
            kind: "numeric".into(),
            rows: 1000,
            psi: Some(psi),
            ks_statistic: Some(0.1),
            ks_pvalue: Some(1e-12),
            chi2_pvalue: None,
            missing_share: 0.0,
            out_of_range_share: Some(0.01),
            unseen_share: None,
            drift: verdict == Verdict::Drift,
            verdict,
            bins: vec!["(-inf, 1]".into(), "(1, +inf]".into(), "missing".into()],
            reference_shares: vec![0.5, 0.5, 0.0],
            counts: vec![300, 700, 0],
        }
    }

    #[test]
    fn most_drifted_first_and_names_escaped() {
        let d = WindowDrift {
            rows: 1000,
            features: vec![
                col("calm", Verdict::Ok, 0.01),
                col("<script>", Verdict::Drift, 0.4),
                col("noisy", Verdict::Warning, 0.12),
            ],
            prediction: Some(col("probability", Verdict::Ok, 0.02)),
            drift_share: Some(1.0 / 3.0),
            dataset_drift: Some(false),
        };
        let html = render(
            "Drift",
            "now",
            &Thresholds::default(),
            &[Section {
                title: "m v1".into(),
                facts: vec![("window".into(), "count".into())],
                warnings: &[],
                drift: &d,
            }],
        );
        assert!(!html.contains("<script>"));
        let a = html.find("&lt;script&gt;").unwrap();
        let b = html.find(">noisy<").unwrap();
        let c = html.find(">calm<").unwrap();
        assert!(a < b && b < c, "drift, warning, ok");
        assert!(html.contains("<svg") && html.contains("prediction (model score)"));
        assert!(html.contains("1.00e-12"));
    }
}
