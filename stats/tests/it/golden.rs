//! Golden tests: every function against the numbers numpy/scipy computed for the same inputs
//! (`fixtures/golden.json`). Tolerances are relative; each states why it is what it is.

use serde::Deserialize;
use serde_json::Value;
use vane_registry::FeatureProfile;
use vane_stats::ks::{KsMethod, KsWorkspace};
use vane_stats::{
    binning, chi2_goodness_of_fit, chi2_sf, hodges_lehmann, ks_2samp, kstwo_sf, linear_quantiles,
    mann_whitney_u, profile, psi, smirnov_sf,
};

use crate::{Spec, assert_rel, json_f64};

const GOLDEN: &str = include_str!("../../fixtures/golden.json");

/// Results below this are compared only as "negligible" (scipy itself returns subnormals or
/// 0 there).
const TINY: f64 = 1e-300;

#[derive(Deserialize)]
struct Golden {
    quantile: Vec<QuantileCase>,
    profile_numeric: Vec<ProfileCase>,
    psi: Vec<PsiCase>,
    chi2_sf: Vec<Chi2SfRow>,
    chi2_gof: Vec<Chi2GofCase>,
    kstwo: Vec<DistRow>,
    smirnov: Vec<DistRow>,
    ks_2samp: Vec<KsCase>,
    mannwhitney: Vec<MwuCase>,
    hodges_lehmann: Vec<HlCase>,
}

#[derive(Deserialize)]
struct QuantileCase {
    sample: Spec,
    qs: Vec<f64>,
    expected: Vec<f64>,
}

#[derive(Deserialize)]
struct ProfileCase {
    sample: Spec,
    sample_positions: Vec<usize>,
    expected: ProfileExpected,
}

#[derive(Deserialize)]
pub struct ProfileExpected {
    edges: Vec<f64>,
    shares: Vec<f64>,
    missing_share: f64,
    sample: Vec<f64>,
    min: Option<f64>,
    max: Option<f64>,
}

#[derive(Deserialize)]
struct PsiCase {
    reference_shares: Vec<f64>,
    counts: Vec<u64>,
    expected: f64,
}

#[derive(Deserialize)]
struct Chi2SfRow {
    x_bits: u64,
    dof: f64,
    sf: f64,
}

#[derive(Deserialize)]
struct Chi2GofCase {
    observed: Vec<u64>,
    reference_shares: Vec<f64>,
    expected: Option<Chi2GofExpected>,
}

#[derive(Deserialize)]
struct Chi2GofExpected {
    statistic: f64,
    dof: u32,
    pvalue: f64,
}

#[derive(Deserialize)]
struct DistRow {
    n: u64,
    d_bits: u64,
    sf: f64,
}

#[derive(Deserialize)]
struct KsCase {
    name: String,
    a: Spec,
    b: Spec,
    statistic: f64,
    pvalue: f64,
    method: String,
}

#[derive(Deserialize)]
struct MwuCase {
    a: Spec,
    b: Spec,
    u1: f64,
    pvalue: f64,
}

#[derive(Deserialize)]
struct HlCase {
    a: Spec,
    b: Spec,
    confidence: f64,
    estimate: f64,
    lower: f64,
    upper: f64,
}

fn golden() -> Golden {
    serde_json::from_str(GOLDEN).expect("golden.json parses")
}

/// Relative error, 0 when both are negligible.
fn rel_err(got: f64, want: f64) -> f64 {
    if want.abs() < TINY && got.abs() < 1e3 * TINY {
        0.0
    } else {
        ((got - want) / want).abs()
    }
}

/// Tracks the largest relative error of a group of rows, for the report printed with
/// `--nocapture`.
struct Worst {
    what: &'static str,
    err: f64,
    at: String,
}

impl Worst {
    fn new(what: &'static str) -> Self {
        Self {
            what,
            err: 0.0,
            at: String::new(),
        }
    }

    fn see(&mut self, err: f64, at: impl FnOnce() -> String) {
        if err > self.err || err.is_nan() {
            self.err = err;
            self.at = at();
        }
    }

    #[track_caller]
    fn check(&self, tol: f64) {
        eprintln!(
            "{}: max relative error {:e} at {}",
            self.what, self.err, self.at
        );
        assert!(
            self.err <= tol,
            "{}: {:e} > {tol:e} at {}",
            self.what,
            self.err,
            self.at
        );
    }
}

#[test]
fn quantiles_equal_numpy() {
    for case in golden().quantile {
        let mut x = case.sample.values();
        x.sort_unstable_by(f64::total_cmp);
        let got = linear_quantiles(&x, &case.qs);
        for ((g, w), q) in got.iter().zip(&case.expected).zip(&case.qs) {
            // Same operations as numpy, so the same double.
            assert_eq!(
                g.to_bits(),
                w.to_bits(),
                "q={q}: {g} vs {w} ({:?})",
                case.sample
            );
        }
    }
}

/// Checks a numeric profile against numpy's numbers (edges are numpy's doubles bit for bit;
/// shares are count/n, also exact).
pub fn assert_profile_matches(p: &FeatureProfile, want: &ProfileExpected, what: &str) {
    p.validate().unwrap();
    let FeatureProfile::Numeric {
        edges,
        shares,
        missing_share,
        sample,
        min,
        max,
        ..
    } = p
    else {
        panic!("{what}: not numeric")
    };
    assert_eq!(edges, &want.edges, "{what}: edges");
    assert_eq!(shares, &want.shares, "{what}: shares");
    assert_eq!(*missing_share, want.missing_share, "{what}: missing share");
    assert_eq!(sample, &want.sample, "{what}: sample");
    assert_eq!((*min, *max), (want.min, want.max), "{what}: range");
}

#[test]
fn numeric_profiles_equal_numpy() {
    for case in golden().profile_numeric {
        let x = case.sample.values();
        let p = profile::numeric("f", &x, &case.sample_positions);
        assert_profile_matches(&p, &case.expected, &format!("{:?}", case.sample));
        // Live binning of the reference itself reproduces the reference shares.
        let bins = binning::NumericBins::from_profile(&p).unwrap();
        let counts = bins.counts(&x);
        let shares = binning::reference_shares(&p);
        for (c, s) in counts.iter().zip(&shares) {
            assert_eq!(*c as f64 / x.len() as f64, *s);
        }
    }
}

#[test]
fn psi_equals_numpy() {
    let mut worst = Worst::new("psi");
    for case in golden().psi {
        let got = psi(&case.reference_shares, &case.counts).unwrap();
        worst.see(rel_err(got, case.expected), || format!("{:?}", case.counts));
    }
    // Same terms in the same order as the numpy loop; only libm's log may differ by an ulp.
    worst.check(1e-14);
}

#[test]
fn chi2_sf_equals_scipy() {
    let mut worst = Worst::new("chi2_sf");
    for row in golden().chi2_sf {
        let x = f64::from_bits(row.x_bits);
        let got = chi2_sf(x, row.dof);
        worst.see(rel_err(got, row.sf), || format!("x={x} dof={}", row.dof));
    }
    // scipy (cephes igamc) and this implementation each carry ~1e-14; where p ~ 1e-300 the
    // argument x ~ 1400 multiplies any rounding of the exponent.
    worst.check(1e-12);
}

#[test]
fn chi2_goodness_of_fit_equals_scipy_chisquare() {
    for case in golden().chi2_gof {
        let got = chi2_goodness_of_fit(&case.observed, &case.reference_shares);
        let Some(want) = case.expected else {
            assert!(got.is_none(), "{:?}", case.observed);
            continue;
        };
        let got = got.unwrap();
        let what = format!("{:?} vs {:?}", case.observed, case.reference_shares);
        assert_eq!(got.dof, want.dof, "{what}");
        // Sums of the same terms in another order.
        assert_rel(got.statistic, want.statistic, 1e-13, &what);
        if want.pvalue < TINY {
            assert!(got.pvalue < 1e3 * TINY, "{what}: {}", got.pvalue);
        } else {
            assert_rel(got.pvalue, want.pvalue, 1e-12, &what);
        }
    }
}

fn dist_rows(
    rows: &[DistRow],
    f: fn(u64, f64) -> f64,
    worst: &mut Worst,
    pick: impl Fn(u64, f64) -> bool,
) {
    for row in rows {
        let d = f64::from_bits(row.d_bits);
        if !pick(row.n, d) {
            continue;
        }
        let got = f(row.n, d);
        worst.see(rel_err(got, row.sf), || {
            format!("n={} d={d:e}: got {got:e} want {:e}", row.n, row.sf)
        });
    }
}

#[test]
fn smirnov_equals_scipy() {
    let g = golden();
    let mut worst = Worst::new("smirnov_sf");
    dist_rows(&g.smirnov, smirnov_sf, &mut worst, |_, _| true);
    // scipy sums in double-double; the log-space terms here agree to ~1e-13 for n <= 10⁶.
    worst.check(1e-12);
}

#[test]
fn kstwo_equals_scipy() {
    let g = golden();
    // Branches that only use closed forms or smirnov: as accurate as smirnov.
    let mut exactish = Worst::new("kstwo_sf (closed forms, 2·smirnov)");
    dist_rows(&g.kstwo, kstwo_sf, &mut exactish, |n, d| {
        let (nf, t) = (n as f64, n as f64 * d);
        t <= 1.0
            || t >= nf - 1.0
            || d >= 0.5
            || (n <= 140 && t * d > 4.0)
            || (n > 140 && t * d >= 2.2)
    });
    exactish.check(1e-12);
    // Durbin matrix, Pomeranz and Pelz–Good: 1 − CDF in f64, where scipy finishes the Durbin
    // and Pomeranz scaling loops in long double; the SF there is >= ~1e-3.
    let mut matrix = Worst::new("kstwo_sf (Durbin / Pomeranz / Pelz-Good)");
    dist_rows(&g.kstwo, kstwo_sf, &mut matrix, |n, d| {
        let (nf, t) = (n as f64, n as f64 * d);
        !(t <= 1.0
            || t >= nf - 1.0
            || d >= 0.5
            || (n <= 140 && t * d > 4.0)
            || (n > 140 && t * d >= 2.2))
    });
    matrix.check(1e-10);
}

#[test]
fn ks_2samp_equals_scipy() {
    let mut ws = KsWorkspace::new();
    let mut worst = Worst::new("ks_2samp p-value");
    for case in golden().ks_2samp {
        let (a, b) = (case.a.values(), case.b.values());
        let got = ks_2samp(&a, &b).unwrap();
        let method = match got.method {
            KsMethod::Exact => "exact",
            KsMethod::Asymptotic => "asymptotic",
        };
        assert_eq!(method, case.method, "{}", case.name);
        // The statistic is the same lattice value (exact) or the same i/n1 − j/n2 (asymptotic).
        assert_rel(got.statistic, case.statistic, 1e-15, &case.name);
        worst.see(rel_err(got.pvalue, case.pvalue), || case.name.clone());
        // The workspace path gives the same answer.
        let mut sa = a.clone();
        let mut sb = b.clone();
        sa.sort_unstable_by(f64::total_cmp);
        sb.sort_unstable_by(f64::total_cmp);
        assert_eq!(ws.ks_2samp_sorted(&sa, &sb), Some(got), "{}", case.name);
    }
    // Exact paths repeat scipy's arithmetic; asymptotic ones inherit kstwo_sf's accuracy.
    worst.check(1e-10);
}

#[test]
fn mann_whitney_equals_scipy() {
    let mut worst = Worst::new("mannwhitneyu p-value");
    for case in golden().mannwhitney {
        let (a, b) = (case.a.values(), case.b.values());
        let got = mann_whitney_u(&a, &b).unwrap();
        // U is a sum of half-integers: exact.
        assert_eq!(got.u1, case.u1, "{:?}", case.a);
        worst.see(rel_err(got.pvalue, case.pvalue), || format!("{:?}", case.a));
    }
    // erfc through the incomplete gamma function; z² ~ 1300 at p ~ 1e-285 scales the rounding
    // of the argument.
    worst.check(1e-12);
}

#[test]
fn hodges_lehmann_equals_numpy() {
    for case in golden().hodges_lehmann {
        let (a, b) = (case.a.values(), case.b.values());
        let got = hodges_lehmann(&a, &b, case.confidence).unwrap();
        let what = format!("{:?} vs {:?} at {}", case.a, case.b, case.confidence);
        // Order statistics of the same differences: the same doubles.
        assert_eq!(got.estimate, case.estimate, "{what}: estimate");
        assert_eq!(got.lower, case.lower, "{what}: lower");
        assert_eq!(got.upper, case.upper, "{what}: upper");
    }
}

#[test]
fn json_helpers() {
    assert!(json_f64(&Value::Null).is_nan());
    assert_eq!(json_f64(&Value::String("-inf".into())), f64::NEG_INFINITY);
}
