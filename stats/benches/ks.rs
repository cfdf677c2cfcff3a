//! The monitor's per-window cost: the exact two-sample KS test of a 10 000-value reference
//! sample against a 1 000-row window (at D ≈ 0.03 and D ≈ 0.3; the exact method's cost grows
//! with D), the asymptotic path, and PSI / chi-square over 11 bins.
//!
//!   cargo bench -p vane-stats --bench ks

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use vane_stats::ks::KsWorkspace;
use vane_stats::{chi2_goodness_of_fit, psi};

/// Deterministic uniform [0, 1) values (SplitMix64), sorted.
fn uniform(seed: u64, n: usize, shift: f64) -> Vec<f64> {
    let mut state = seed;
    let mut v: Vec<f64> = (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 11) as f64 * 2f64.powi(-53) + shift
        })
        .collect();
    v.sort_unstable_by(f64::total_cmp);
    v
}

fn ks(c: &mut Criterion) {
    let mut group = c.benchmark_group("ks_2samp_sorted");
    // Stratified reference and windows, so D is the shift itself.
    let reference: Vec<f64> = (0..10_000).map(|i| (f64::from(i) + 0.5) / 1e4).collect();
    let mut ws = KsWorkspace::new();
    for shift in [0.03, 0.3] {
        let window: Vec<f64> = (0..1_000)
            .map(|i| (f64::from(i) + 0.5) / 1e3 + shift)
            .collect();
        let r = ws.ks_2samp_sorted(&reference, &window).unwrap();
        group.throughput(Throughput::Elements(
            (reference.len() + window.len()) as u64,
        ));
        group.bench_with_input(
            BenchmarkId::new(format!("exact/10000x1000/D={:.3}", r.statistic), shift),
            &window,
            |b, window| b.iter(|| ws.ks_2samp_sorted(black_box(&reference), black_box(window))),
        );
    }
    // max(n1, n2) > 10 000: the asymptotic kstwo path.
    let big = uniform(3, 20_000, 0.0);
    for shift in [0.01, 0.03] {
        let window = uniform(4, 5_000, shift);
        let r = ws.ks_2samp_sorted(&big, &window).unwrap();
        group.bench_with_input(
            BenchmarkId::new(format!("asymptotic/20000x5000/D={:.3}", r.statistic), shift),
            &window,
            |b, window| b.iter(|| ws.ks_2samp_sorted(black_box(&big), black_box(window))),
        );
    }
    group.finish();
}

fn binned(c: &mut Criterion) {
    let mut group = c.benchmark_group("binned-11");
    let reference = [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.0];
    let counts = [95u64, 110, 99, 87, 120, 101, 92, 100, 96, 100, 0];
    group.bench_function("psi", |b| {
        b.iter(|| psi(black_box(&reference), black_box(&counts)))
    });
    group.bench_function("chi2_goodness_of_fit", |b| {
        b.iter(|| chi2_goodness_of_fit(black_box(&counts), black_box(&reference)))
    });
    group.finish();
}

criterion_group!(benches, ks, binned);
criterion_main!(benches);
