//! Property tests: invariants that hold for any input, and no panic on any input (NaN, ±∞,
//! empty, zero counts).

use proptest::prelude::*;
use vane_stats::ks::{KsMethod, ks_pvalue, ks_statistic_sorted};
use vane_stats::{
    NumericBins, chi2_goodness_of_fit, chi2_sf, hodges_lehmann, kayenta_classify, ks_2samp,
    ks_2samp_sorted, kstwo_sf, linear_quantiles, mann_whitney_u, profile, psi, smirnov_sf,
};

/// Any f64 a caller might pass: ordinary values, ties, ±0, ±∞ and NaN.
fn any_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        6 => -1e3f64..1e3,
        2 => (-5i32..5).prop_map(f64::from),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => Just(-0.0),
        1 => any::<f64>(),
    ]
}

fn finite_sample(max: usize) -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(
        prop_oneof![3 => -100.0f64..100.0, 1 => (0i32..6).prop_map(f64::from)],
        1..max,
    )
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_unstable_by(f64::total_cmp);
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn psi_is_nonnegative_and_zero_on_identical(counts in prop::collection::vec(0u64..1000, 1..20),
                                                 other in prop::collection::vec(0u64..1000, 1..20)) {
        let total: u64 = counts.iter().sum();
        prop_assume!(total > 0);
        let shares: Vec<f64> = counts.iter().map(|c| *c as f64 / total as f64).collect();
        prop_assert_eq!(psi(&shares, &counts), Some(0.0));
        if let Some(v) = psi(&shares, &other) {
            prop_assert!(v >= 0.0, "{}", v);
        }
    }

    #[test]
    fn ks_statistic_and_pvalue_are_bounded_and_symmetric(a in finite_sample(80), b in finite_sample(80)) {
        let (a, b) = (sorted(a), sorted(b));
        let ab = ks_2samp_sorted(&a, &b).unwrap();
        let ba = ks_2samp_sorted(&b, &a).unwrap();
        prop_assert!((0.0..=1.0).contains(&ab.statistic));
        prop_assert!((0.0..=1.0).contains(&ab.pvalue));
        prop_assert_eq!(ab, ba);
        // Exact at these sizes, except where rounding pushes the exact p past 1: scipy then
        // switches to the asymptotic p, which is 1 there (see `exact_rounding_past_one_…`).
        prop_assert!(ab.method == KsMethod::Exact || ab.pvalue == 1.0, "{:?}", ab);
        // The snapped statistic is the raw one up to rounding.
        let raw = ks_statistic_sorted(&a, &b).unwrap();
        prop_assert!((raw - ab.statistic).abs() < 1e-12);
    }

    #[test]
    fn exact_pvalue_decreases_with_d(n1 in 1usize..60, n2 in 1usize..60) {
        let lcm = n1 * n2 / gcd(n1, n2);
        let mut last = 1.0f64;
        for h in 0..=lcm {
            // (Where rounding pushes the exact value past 1, e.g. n1 = n2 = 27 at h = 1, scipy
            // and this crate fall back to the asymptotic p, which is 1 there.)
            let r = ks_pvalue(n1, n2, h as f64 / lcm as f64).unwrap();
            prop_assert!((0.0..=1.0).contains(&r.pvalue));
            prop_assert!(r.pvalue <= last * (1.0 + 1e-12), "h={} p={} after {}", h, r.pvalue, last);
            last = r.pvalue;
        }
    }

    #[test]
    fn chi2_pvalues_are_probabilities(x in any_value(), dof in 0.01f64..500.0,
                                      observed in prop::collection::vec(0u64..500, 1..15),
                                      shares in prop::collection::vec(any_value(), 1..15)) {
        let p = chi2_sf(x, dof);
        prop_assert!(p.is_nan() == x.is_nan());
        if !p.is_nan() {
            prop_assert!((0.0..=1.0).contains(&p), "{}", p);
        }
        if let Some(r) = chi2_goodness_of_fit(&observed, &shares) {
            prop_assert!((0.0..=1.0).contains(&r.pvalue));
            prop_assert!(r.statistic >= 0.0);
        }
    }

    #[test]
    fn kolmogorov_distributions_are_probabilities(n in 1u64..3000, d in any_value()) {
        for p in [kstwo_sf(n, d), smirnov_sf(n, d)] {
            prop_assert!(p.is_nan() || (0.0..=1.0).contains(&p), "{}", p);
        }
        if (0.0..=1.0).contains(&d) {
            // Two-sided tail >= one-sided tail.
            prop_assert!(kstwo_sf(n, d) >= smirnov_sf(n, d) * (1.0 - 1e-9));
        }
    }

    #[test]
    fn shift_interval_contains_the_estimate(a in finite_sample(60), b in finite_sample(60),
                                             conf in 0.01f64..0.999) {
        let s = hodges_lehmann(&a, &b, conf).unwrap();
        prop_assert!(s.lower <= s.estimate && s.estimate <= s.upper, "{:?}", s);
        let r = mann_whitney_u(&a, &b).unwrap();
        prop_assert!((0.0..=1.0).contains(&r.pvalue));
        prop_assert!(r.u1 >= 0.0 && r.u1 <= (a.len() * b.len()) as f64);
    }

    #[test]
    fn bins_count_edges_below(edges in prop::collection::vec(-50.0f64..50.0, 0..40), x in any_value()) {
        let edges = {
            let mut e = sorted(edges);
            e.dedup();
            e
        };
        let bins = NumericBins::new(edges.clone()).unwrap();
        let want = if x.is_nan() { edges.len() + 1 } else { edges.partition_point(|e| *e < x) };
        prop_assert_eq!(bins.bin(x), want);
    }

    #[test]
    fn nothing_panics(a in prop::collection::vec(any_value(), 0..40),
                      b in prop::collection::vec(any_value(), 0..40),
                      qs in prop::collection::vec(any_value(), 0..5),
                      positions in prop::collection::vec(0usize..60, 0..10),
                      tol in any_value(), conf in any_value()) {
        if let Some(r) = ks_2samp(&a, &b) {
            prop_assert!((0.0..=1.0).contains(&r.pvalue) && (0.0..=1.0).contains(&r.statistic));
        }
        let _ = ks_2samp_sorted(&a, &b); // unsorted: unspecified, but no panic
        let _ = mann_whitney_u(&a, &b);
        let _ = hodges_lehmann(&a, &b, conf);
        let _ = kayenta_classify(&a, &b, tol, conf);
        let _ = linear_quantiles(&a, &qs);
        let p = profile::numeric("x", &a, &positions);
        prop_assert!(p.validate().is_ok(), "{:?}", p);
        let counts: Vec<u64> = b.iter().map(|x| if x.is_finite() { x.abs() as u64 } else { 0 }).collect();
        let _ = psi(&a, &counts);
        let _ = chi2_goodness_of_fit(&counts, &a);
        let p = profile::categorical("c", (0..a.len()).map(|i| i.to_string()).collect(), &counts, 3);
        prop_assert!(p.validate().is_ok());
        let _ = ks_pvalue(a.len(), b.len(), conf);
    }
}

#[test]
fn unsorted_nan_input_to_the_sorted_ks_terminates() {
    // The merged walk once stalled on a NaN head.
    let r = ks_2samp_sorted(&[f64::NAN, 1.0], &[0.5, f64::NAN]).unwrap();
    assert!((0.0..=1.0).contains(&r.pvalue));
}

#[test]
fn exact_rounding_past_one_falls_back_to_the_asymptotic_p_as_scipy_does() {
    // Found by the symmetry property above. scipy 1.17.1: `ks_2samp([0, 13.5, 0, 71.9, 0],
    // [0, 0, 95.5, 0, 0])` warns "Exact calculation unsuccessful" (the exact p for n = 5,
    // h = 1 is 1.0000000000000002) and returns D = 0.2, p = 1.0 by the asymptotic method.
    let a = sorted(vec![0.0, 13.534231959570102, 0.0, 71.91229708325054, 0.0]);
    let b = sorted(vec![0.0, 0.0, 95.50385199764264, 0.0, 0.0]);
    for r in [
        ks_2samp_sorted(&a, &b).unwrap(),
        ks_2samp_sorted(&b, &a).unwrap(),
    ] {
        assert_eq!(r.method, KsMethod::Asymptotic);
        assert!((r.statistic - 0.2).abs() < 1e-15, "{r:?}");
        assert_eq!(r.pvalue, 1.0);
    }
}

#[test]
fn categorical_counts_near_u64_max_still_give_a_valid_profile() {
    let p = profile::categorical(
        "c",
        vec!["a".into(), "b".into()],
        &[u64::MAX, u64::MAX, 5],
        7,
    );
    assert!(p.validate().is_ok(), "{p:?}");
}

#[test]
fn infinite_quantile_level_of_a_single_value_is_nan() {
    assert!(linear_quantiles(&[0.0], &[f64::INFINITY])[0].is_nan());
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}
