//! Special functions the tests need: log-gamma via Stirling's series, the regularized
//! incomplete gamma function, the normal tail and its inverse.
//!
//! Written for relative accuracy in the far tails (p-values down to ~1e-300), which is why the
//! gamma prefactor is assembled from `log1pmx` and the Stirling correction instead of
//! subtracting large log-gamma values.

use std::f64::consts::PI;

/// ln(2π) / 2.
pub(crate) const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// Below this, `exp` underflows even to a subnormal.
pub(crate) const MIN_LOG: f64 = -745.133_219_101_941_2;

const EPS: f64 = f64::EPSILON;

/// Stirling's correction `S(a) = lnΓ(a) − (a − ½)·ln a + a − ln√(2π)` for `a > 0`
/// (equal to `ln n! − ((n + ½)·ln n − n + ln√(2π))` at `a = n`, Loader's "stirlerr").
/// Absolute error below ~1e-15.
pub(crate) fn stirling_correction(a: f64) -> f64 {
    // Series in 1/a (Bernoulli numbers B_2k / (2k(2k-1))), enough terms for 1e-17 at a >= 10.
    const C: [f64; 8] = [
        1.0 / 12.0,
        -1.0 / 360.0,
        1.0 / 1260.0,
        -1.0 / 1680.0,
        1.0 / 1188.0,
        -691.0 / 360_360.0,
        1.0 / 156.0,
        -3617.0 / 122_400.0,
    ];
    if a >= 10.0 {
        let r = 1.0 / a;
        let r2 = r * r;
        let mut s = 0.0;
        for c in C.iter().rev() {
            s = s * r2 + c;
        }
        return s * r;
    }
    // S(a) = S(a + 1) + (a + ½)·ln(1 + 1/a) − 1; shift up to the series' range.
    let mut x = a;
    let mut acc = 0.0;
    while x < 10.0 {
        acc += (x + 0.5) * (1.0 / x).ln_1p() - 1.0;
        x += 1.0;
    }
    acc + stirling_correction(x)
}

/// `ln Γ(a)` for `a > 0`.
pub(crate) fn ln_gamma(a: f64) -> f64 {
    if a < 1e-300 {
        // Γ(a) ≈ 1/a; the Stirling path would divide by zero.
        return -a.ln();
    }
    (a - 0.5) * a.ln() - a + LN_SQRT_2PI + stirling_correction(a)
}

/// `ln(1 + t) − t`, accurate for small `|t|`.
pub(crate) fn log1pmx(t: f64) -> f64 {
    if t.abs() < 0.5 {
        // −t²/2 + t³/3 − …; 0.5^k/k < eps·(t²/2) after at most ~55 terms.
        let mut term = t;
        let mut sum = 0.0;
        for k in 2..200 {
            term *= -t;
            let add = term / k as f64;
            sum += add;
            if add.abs() <= EPS * sum.abs() {
                break;
            }
        }
        sum
    } else {
        t.ln_1p() - t
    }
}

/// `ln(x^a · e^(−x) / Γ(a))` for `a > 0`, `x > 0`.
fn ln_gamma_prefactor(a: f64, x: f64) -> f64 {
    if a >= 10.0 {
        // a·ln x − x − lnΓ(a) = a·log1pmx((x − a)/a) + ½·ln(a/2π) − S(a): no large cancelling
        // terms, so the exponent keeps its relative accuracy even for large a.
        a * log1pmx((x - a) / a) + 0.5 * a.ln() - LN_SQRT_2PI - stirling_correction(a)
    } else {
        a * x.ln() - x - ln_gamma(a)
    }
}

/// Regularized upper incomplete gamma `Q(a, x) = Γ(a, x) / Γ(a)` for `a > 0`, `x >= 0`.
/// Relative error ~1e-14 (more where `x` itself is large: the result's condition number is `x`).
/// `NaN` for `a <= 0` or NaN arguments.
pub(crate) fn gamma_q(a: f64, x: f64) -> f64 {
    if a.is_nan() || x.is_nan() || a <= 0.0 {
        return f64::NAN;
    }
    if x <= 0.0 {
        return 1.0;
    }
    if a.is_infinite() {
        return 1.0;
    }
    if x.is_infinite() {
        return 0.0;
    }
    if x < a + 1.0 {
        // Here Q >= ~0.3, so 1 − P loses nothing.
        1.0 - gamma_p_series(a, x)
    } else {
        gamma_q_continued_fraction(a, x)
    }
}

/// `P(a, x)` by its power series (DLMF 8.11.4), for `x < a + 1`.
fn gamma_p_series(a: f64, x: f64) -> f64 {
    let lf = ln_gamma_prefactor(a, x);
    if lf < MIN_LOG {
        return 0.0;
    }
    let mut r = a;
    let mut c = 1.0;
    let mut sum = 1.0;
    for _ in 0..10_000 {
        r += 1.0;
        c *= x / r;
        sum += c;
        if c <= EPS * sum {
            break;
        }
    }
    (lf.exp() * sum / a).min(1.0)
}

/// `Q(a, x)` by the continued fraction (DLMF 8.9.2, modified Lentz), for `x >= a + 1`.
fn gamma_q_continued_fraction(a: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let lf = ln_gamma_prefactor(a, x);
    if lf < MIN_LOG - 50.0 {
        return 0.0;
    }
    let mut b = x + 1.0 - a;
    let mut c = 1.0 / TINY;
    let mut d = 1.0 / b;
    let mut h = d;
    for i in 1..10_000 {
        let an = -(i as f64) * (i as f64 - a);
        b += 2.0;
        d = an * d + b;
        if d.abs() < TINY {
            d = TINY;
        }
        c = b + an / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() <= EPS {
            break;
        }
    }
    // exp(lf + ln h) keeps results near the underflow threshold as accurate as possible.
    (lf + h.ln()).exp()
}

/// `P(|Z| >= z)` for a standard normal `Z` and `z >= 0` (= erfc(z/√2)); 1 for `z <= 0`.
pub(crate) fn normal_two_sided_sf(z: f64) -> f64 {
    if z.is_nan() {
        return f64::NAN;
    }
    if z <= 0.0 {
        return 1.0;
    }
    gamma_q(0.5, 0.5 * z * z)
}

/// `z >= 0` with `P(|Z| >= z) = alpha`, for `alpha` in (0, 1]; `+inf` for `alpha <= 0`, NaN for
/// NaN. Newton on the log tail from the Abramowitz–Stegun 26.2.23 start; converges to a few ulp.
pub(crate) fn normal_two_sided_isf(alpha: f64) -> f64 {
    if alpha.is_nan() {
        return f64::NAN;
    }
    if alpha >= 1.0 {
        return 0.0;
    }
    if alpha <= 0.0 {
        return f64::INFINITY;
    }
    let p = 0.5 * alpha;
    let t = (-2.0 * p.ln()).sqrt();
    let mut z = t
        - (2.515_517 + 0.802_853 * t + 0.010_328 * t * t)
            / (1.0 + 1.432_788 * t + 0.189_269 * t * t + 0.001_308 * t * t * t);
    z = z.max(1e-3);
    let ln_alpha = alpha.ln();
    for _ in 0..100 {
        let q = normal_two_sided_sf(z);
        if q <= 0.0 {
            break;
        }
        // d/dz ln Q = −2φ(z)/Q.
        let dens = 2.0 * (-0.5 * z * z).exp() / (2.0 * PI).sqrt();
        let step = (q.ln() - ln_alpha) / (dens / q);
        let next = (z + step).max(0.5 * z);
        if (next - z).abs() <= 4.0 * EPS * z {
            z = next;
            break;
        }
        z = next;
    }
    z
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(a: f64, b: f64) -> f64 {
        ((a - b) / b).abs()
    }

    #[test]
    fn ln_gamma_known_values() {
        assert!(rel(ln_gamma(0.5), 0.5 * PI.ln()) < 1e-15);
        assert!(ln_gamma(1.0).abs() < 1e-15);
        assert!(ln_gamma(2.0).abs() < 1e-15);
        // ln(10!) and ln Γ(100.5) (mpmath).
        assert!(rel(ln_gamma(11.0), 15.104_412_573_075_516) < 1e-15);
        assert!(rel(ln_gamma(100.5), 361.435_540_467_777_6) < 1e-15);
    }

    #[test]
    fn normal_tail_and_inverse() {
        // erfc(1/√2) and erfc(5/√2) (mpmath).
        assert!(rel(normal_two_sided_sf(1.0), 0.317_310_507_862_914_1) < 1e-14);
        assert!(rel(normal_two_sided_sf(5.0), 5.733_031_437_583_878e-7) < 1e-13);
        for alpha in [0.5, 0.05, 0.02, 1e-6, 1e-100] {
            let z = normal_two_sided_isf(alpha);
            assert!(rel(normal_two_sided_sf(z), alpha) < 1e-12, "{alpha} {z}");
        }
        assert!(rel(normal_two_sided_isf(0.02), 2.326_347_874_040_840_8) < 1e-14);
    }
}
