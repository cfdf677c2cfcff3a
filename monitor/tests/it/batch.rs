//! `vane-monitor compare` and `profile` on committed fixtures, against the values numpy and
//! scipy computed for them (`tests/fixtures/generate.py`).

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::util::MONITOR;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn expected() -> Value {
    serde_json::from_str(include_str!("../fixtures/expected.json")).unwrap()
}

/// Relative closeness, with an absolute floor for values near 0.
fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-300) || (a - b).abs() < 1e-12
}

#[test]
fn compare_matches_numpy_and_scipy() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("drift.html");
    let out = Command::new(MONITOR)
        .args(["compare", "--reference"])
        .arg(fixture("reference.csv"))
        .arg("--current")
        .arg(fixture("current.csv"))
        .args(["--categorical", "grade", "--html"])
        .arg(&html)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    let want = expected();
    assert_eq!(got["rows"], want["rows"]);
    let features = want["features"].as_object().unwrap();
    assert_eq!(got["features"].as_object().unwrap().len(), features.len());
    for (name, w) in features {
        let g = &got["features"][name];
        assert_eq!(g["kind"], w["kind"], "{name}");
        let num = |v: &Value, k: &str| v[k].as_f64().unwrap_or_else(|| panic!("{name}.{k} in {v}"));
        assert!(
            close(num(g, "psi"), num(w, "psi"), 1e-9),
            "{name} psi {} vs {}",
            g["psi"],
            w["psi"]
        );
        assert!(
            close(num(g, "missing_share"), num(w, "missing_share"), 1e-12),
            "{name}"
        );
        if w["kind"] == "numeric" {
            assert!(
                close(num(g, "ks_statistic"), num(w, "ks_statistic"), 1e-12),
                "{name} D"
            );
            // scipy's exact path (both sizes <= 10 000) to ~1e-9 relative.
            assert!(
                close(num(g, "ks_pvalue"), num(w, "ks_pvalue"), 1e-8),
                "{name} KS p {} vs {}",
                g["ks_pvalue"],
                w["ks_pvalue"]
            );
            assert!(
                close(
                    num(g, "out_of_range_share"),
                    num(w, "out_of_range_share"),
                    1e-12
                ),
                "{name}"
            );
        } else {
            assert!(
                close(num(g, "chi2_pvalue"), num(w, "chi2_pvalue"), 1e-8),
                "{name} chi2 p {} vs {}",
                g["chi2_pvalue"],
                w["chi2_pvalue"]
            );
            assert!(
                close(num(g, "unseen_share"), num(w, "unseen_share"), 1e-12),
                "{name}"
            );
        }
    }
    // The verdicts the defaults give: income (KS) and purpose/term (chi-square) drift; grade's
    // p of 0.0068 is not significant after the Bonferroni correction over 7 features.
    for (name, drift) in [
        ("annual_income", true),
        ("purpose", true),
        ("term", true),
        ("grade", false),
        ("debt_to_income", false),
        ("delinquencies_2y", false),
        ("revolving_utilization", false),
    ] {
        assert_eq!(
            got["features"][name]["drift"], drift,
            "{name}: {}",
            got["features"][name]
        );
    }
    assert!((got["drift_share"].as_f64().unwrap() - 3.0 / 7.0).abs() < 1e-12);
    assert_eq!(got["dataset_drift"], false);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!doctype html>") && page.contains("<svg"));
    // Most drifted first: purpose (PSI 0.42) before revolving_utilization (ok).
    assert!(page.find(">purpose<").unwrap() < page.find(">revolving_utilization<").unwrap());
}

#[test]
fn profile_edges_match_numpy_and_compare_accepts_the_profile() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("profile.json");
    let out = Command::new(MONITOR)
        .args(["profile", "--data"])
        .arg(fixture("reference.csv"))
        .args(["--categorical", "grade", "--out"])
        .arg(&profile)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p: vane_registry::Profile =
        serde_json::from_slice(&std::fs::read(&profile).unwrap()).unwrap();
    p.validate().unwrap();
    assert_eq!(p.rows, 5000);
    let want = expected();
    for f in &p.features {
        let w = &want["features"][f.name()];
        match f {
            vane_registry::FeatureProfile::Numeric { edges, sample, .. } => {
                let we: Vec<f64> = w["edges"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect();
                assert_eq!(edges.len(), we.len(), "{}: {edges:?} vs {we:?}", f.name());
                for (a, b) in edges.iter().zip(&we) {
                    // Profiles hold served precision (f32): edges within f32 rounding.
                    assert!((a - b).abs() <= b.abs() * 1e-6, "{}: {a} vs {b}", f.name());
                }
                assert!(sample.len() <= 10_000 && !sample.is_empty());
            }
            vane_registry::FeatureProfile::Categorical { categories, .. } => {
                let wc: Vec<&str> = w["categories"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_str().unwrap())
                    .collect();
                assert_eq!(categories, &wc, "{}: by frequency, ties by name", f.name());
            }
        }
    }
    // compare against the profile: bins and shares from the profile, KS on its sample.
    let out = Command::new(MONITOR)
        .args(["compare", "--profile"])
        .arg(&profile)
        .arg("--current")
        .arg(fixture("current.csv"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["features"]["purpose"]["drift"], true);
    assert_eq!(got["features"]["revolving_utilization"]["drift"], false);
    assert_eq!(
        got["features"]["grade"]["kind"], "categorical",
        "the profile decides the kind"
    );
}

#[test]
fn bad_inputs_are_named() {
    let out = Command::new(MONITOR)
        .args(["compare", "--current"])
        .arg(fixture("current.csv"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--reference"));
    let out = Command::new(MONITOR)
        .args(["compare", "--reference", "nope.csv", "--current"])
        .arg(fixture("current.csv"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.csv"));
    let out = Command::new(MONITOR)
        .args(["compare", "--reference"])
        .arg(fixture("reference.csv"))
        .arg("--current")
        .arg(fixture("current.csv"))
        .args(["--columns", "no_such_column"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no_such_column"));
}
