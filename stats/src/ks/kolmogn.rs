//! The two-sided one-sample Kolmogorov–Smirnov distribution of `D_n` (scipy's `kstwo`), as
//! `scipy.stats._ksstats._kolmogn` computes its survival function: the algorithm choice of
//! Simard & L'Ecuyer (2011) with scipy's thresholds.

use super::smirnov::smirnov_sf;

const E128: i32 = 128;
/// 2^128 and 2^-128, the rescaling steps.
const EP128: f64 = 3.402_823_669_209_385e38;
const EM128: f64 = 2.938_735_877_055_719e-39;
const PI_SQUARED: f64 = std::f64::consts::PI * std::f64::consts::PI;
const PI_FOUR: f64 = PI_SQUARED * PI_SQUARED;
const PI_SIX: f64 = PI_FOUR * PI_SQUARED;
/// √(2π).
const SQRT_2PI: f64 = 2.506_628_274_631_000_2;
/// scipy's `_MIN_LOG`.
const PELZ_GOOD_MIN_LOG: f64 = -708.0;

/// `scipy.stats.kstwo.sf(d, n)`: P(Dₙ >= d) for the two-sided statistic of `n` observations
/// (`scipy.stats._ksstats.kolmogn(n, d, cdf=False)`).
///
/// Branches as scipy: `n·d <= 1` and `n·d >= n − 1` closed forms (Ruben–Gambino);
/// `2·smirnov(n, d)` for `d >= 0.5`; for `n <= 140` the Durbin matrix (Marsaglia–Tsang–Wang)
/// when `n·d² <= 0.754693`, Pomeranz when `<= 4`, else `2·smirnov`; for `n > 140` 0 when
/// `n·d² >= 370`, `2·smirnov` when `>= 2.2`, otherwise `1 − CDF` with the CDF from the Durbin
/// matrix (`n <= 100 000` and `n·d^1.5 <= 1.4`) or Pelz–Good.
///
/// NaN for `n == 0` or NaN `d`; 1 for `d <= 0`, 0 for `d >= 1`.
pub fn kstwo_sf(n: u64, d: f64) -> f64 {
    if n == 0 || d.is_nan() {
        return f64::NAN;
    }
    if d >= 1.0 {
        return 0.0;
    }
    if d <= 0.0 {
        return 1.0;
    }
    let nf = n as f64;
    let t = nf * d;
    if t <= 1.0 {
        if t <= 0.5 {
            return 1.0;
        }
        let prob = if n <= 140 {
            let inv_n = 1.0 / nf;
            let base = 2.0 * t - 1.0;
            (1..=n).fold(1.0, |p, i| p * (i as f64 * inv_n * base))
        } else {
            (log_nfactorial_div_n_pow_n(nf) + nf * (2.0 * t - 1.0).ln()).exp()
        };
        return clip(1.0 - prob);
    }
    if t >= nf - 1.0 {
        return clip(2.0 * (1.0 - d).powf(nf));
    }
    if d >= 0.5 {
        return clip(2.0 * smirnov_sf(n, d));
    }
    let nxsquared = t * d;
    if n <= 140 {
        if nxsquared <= 0.754_693 {
            return clip(1.0 - durbin_mtw_cdf(n, d));
        }
        if nxsquared <= 4.0 {
            return clip(1.0 - pomeranz_cdf(n, d));
        }
        return clip(2.0 * smirnov_sf(n, d));
    }
    if nxsquared >= 370.0 {
        return 0.0;
    }
    if nxsquared >= 2.2 {
        return clip(2.0 * smirnov_sf(n, d));
    }
    let cdf = if nxsquared >= 18.0 {
        1.0
    } else if n <= 100_000 && nf * d.powf(1.5) <= 1.4 {
        durbin_mtw_cdf(n, d)
    } else {
        pelz_good_cdf(n, d)
    };
    clip(1.0 - cdf)
}

fn clip(p: f64) -> f64 {
    p.clamp(0.0, 1.0)
}

/// `ln(n! / n^n)` by Stirling's series with the `n·ln n` removed up front (scipy's helper).
fn log_nfactorial_div_n_pow_n(n: f64) -> f64 {
    // B_2j / (2j(2j − 1)) for j = 8, …, 1 (scipy's _STIRLING_COEFFS).
    const STIRLING: [f64; 8] = [
        -3617.0 / 122_400.0,
        1.0 / 156.0,
        -691.0 / 360_360.0,
        1.0 / 1188.0,
        -1.0 / 1680.0,
        1.0 / 1260.0,
        -1.0 / 360.0,
        1.0 / 12.0,
    ];
    let rn = 1.0 / n;
    let y = rn / n;
    let poly = STIRLING.iter().fold(0.0, |acc, c| acc * y + c);
    n.ln() / 2.0 - n + (2.0 * std::f64::consts::PI).ln() / 2.0 + rn * poly
}

/// `x · 2^e` without overflowing the intermediate power.
fn ldexp(mut x: f64, mut e: i64) -> f64 {
    while e > 1000 {
        x *= 2f64.powi(1000);
        e -= 1000;
    }
    while e < -1000 {
        x *= 2f64.powi(-1000);
        e += 1000;
    }
    x * 2f64.powi(e as i32)
}

/// P(Dₙ <= d) by Durbin's matrix method as Marsaglia, Tsang & Wang (2003) evaluate it: the
/// k-th diagonal entry of Hⁿ·n!/nⁿ, with a separately tracked power-of-two exponent.
fn durbin_mtw_cdf(n: u64, d: f64) -> f64 {
    if d >= 1.0 {
        return 1.0;
    }
    let nf = n as f64;
    let nd = nf * d;
    if nd <= 0.5 {
        return 0.0;
    }
    let k = nd.ceil() as usize;
    let h = k as f64 - nd;
    let m = 2 * k - 1;

    let mut v = vec![0.0; m];
    let mut w = vec![0.0; m];
    let mut fac = 1.0;
    for j in 1..=m {
        w[j - 1] = fac;
        fac /= j as f64;
        v[j - 1] = (1.0 - h.powi(j as i32)) * fac;
    }
    let tt = (2.0 * h - 1.0).max(0.0).powi(m as i32) - 2.0 * h.powi(m as i32);
    v[m - 1] = (1.0 + tt) * fac;

    let mut hm = Matrix::zeros(m);
    for i in 1..m {
        for r in (i - 1)..m {
            hm.set(r, i, w[r - (i - 1)]);
        }
    }
    for (r, vr) in v.iter().enumerate() {
        hm.set(r, 0, *vr);
    }
    for c in 0..m {
        hm.set(m - 1, c, v[m - 1 - c]);
    }

    let mut pwr = Matrix::identity(m);
    let mut tmp = Matrix::zeros(m);
    let mut nn = n;
    let mut expnt: i64 = 0;
    let mut h_expnt: i64 = 0;
    while nn > 0 {
        if nn % 2 == 1 {
            pwr.mul_into(&hm, &mut tmp);
            std::mem::swap(&mut pwr, &mut tmp);
            expnt += h_expnt;
        }
        nn /= 2;
        if nn == 0 {
            break; // scipy squares once more; the result is never used
        }
        hm.mul_into(&hm, &mut tmp);
        std::mem::swap(&mut hm, &mut tmp);
        h_expnt *= 2;
        if hm.get(k - 1, k - 1).abs() > EP128 {
            hm.scale(EM128);
            h_expnt += i64::from(E128);
        }
    }

    let mut p = pwr.get(k - 1, k - 1);
    for i in 1..=n {
        p = i as f64 * p / nf;
        if p.abs() < EM128 {
            p *= EP128;
            expnt -= i64::from(E128);
        }
    }
    if expnt != 0 {
        p = ldexp(p, expnt);
    }
    clip(p)
}

/// A small dense row-major square matrix.
struct Matrix {
    m: usize,
    a: Vec<f64>,
}

impl Matrix {
    fn zeros(m: usize) -> Self {
        Self {
            m,
            a: vec![0.0; m * m],
        }
    }

    fn identity(m: usize) -> Self {
        let mut s = Self::zeros(m);
        for i in 0..m {
            s.set(i, i, 1.0);
        }
        s
    }

    fn get(&self, r: usize, c: usize) -> f64 {
        self.a[r * self.m + c]
    }

    fn set(&mut self, r: usize, c: usize, x: f64) {
        self.a[r * self.m + c] = x;
    }

    fn scale(&mut self, f: f64) {
        self.a.iter_mut().for_each(|x| *x *= f);
    }

    /// `out = self · rhs` (i-k-j order, so the inner loop runs over contiguous rows).
    fn mul_into(&self, rhs: &Matrix, out: &mut Matrix) {
        let m = self.m;
        out.a.iter_mut().for_each(|x| *x = 0.0);
        for i in 0..m {
            let out_row = &mut out.a[i * m..(i + 1) * m];
            for k in 0..m {
                let f = self.a[i * m + k];
                if f == 0.0 {
                    continue;
                }
                let rhs_row = &rhs.a[k * m..(k + 1) * m];
                for (o, r) in out_row.iter_mut().zip(rhs_row) {
                    *o += f * r;
                }
            }
        }
    }
}

/// The endpoints of the non-zero interval of row `i` of Pomeranz's recursion.
fn pomeranz_j1j2(i: i64, n: i64, ll: i64, ceilf: i64, roundf: i64) -> (i64, i64) {
    let (j1, j2) = if i == 0 {
        (-ll - ceilf - 1, ll + ceilf - 1)
    } else {
        let ip1div2 = (i + 1) / 2;
        if (i + 1) % 2 == 0 {
            if ip1div2 == n + 1 {
                (n - ll - ceilf - 1, n + ll + ceilf - 1)
            } else {
                (ip1div2 - 1 - ll - roundf - 1, ip1div2 + ll - 1 + ceilf - 1)
            }
        } else {
            (ip1div2 - 1 - ll - 1, ip1div2 + ll + roundf - 1)
        }
    };
    ((j1 + 2).max(0), j2.min(n))
}

/// P(Dₙ <= d) by Pomeranz's (1974) recursion: 2n + 1 convolutions of a short row with
/// truncated Poisson weights, rescaled by powers of two against underflow.
fn pomeranz_cdf(n: u64, x: f64) -> f64 {
    let nf = n as f64;
    let n_i = n as i64;
    let t = nf * x;
    let ll = t.floor() as i64;
    let f = t - ll as f64;
    let g = f.min(1.0 - f);
    let ceilf = i64::from(f > 0.0);
    let roundf = i64::from(f > 0.5);
    let npwrs = (2 * (ll + 1)) as usize;
    let mut gpower = vec![1.0; npwrs];
    let mut twogpower = vec![1.0; npwrs];
    let mut onem2gpower = vec![1.0; npwrs];
    let (g_n, two_g_n, one_m2g_n) = (g / nf, 2.0 * g / nf, (1.0 - 2.0 * g) / nf);
    for m in 1..npwrs {
        let mf = m as f64;
        gpower[m] = gpower[m - 1] * g_n / mf;
        twogpower[m] = twogpower[m - 1] * two_g_n / mf;
        onem2gpower[m] = onem2gpower[m - 1] * one_m2g_n / mf;
    }

    let mut v0 = vec![0.0; npwrs];
    let mut v1 = vec![0.0; npwrs];
    v1[0] = 1.0;
    let (mut v0s, mut v1s) = (0i64, 0i64);
    let mut expnt: i64 = 0;
    let (mut j1, mut _j2) = pomeranz_j1j2(0, n_i, ll, ceilf, roundf);
    for i in 1..(2 * n_i + 2) {
        let k1 = j1;
        std::mem::swap(&mut v0, &mut v1);
        std::mem::swap(&mut v0s, &mut v1s);
        v1.iter_mut().for_each(|x| *x = 0.0);
        let (nj1, nj2) = pomeranz_j1j2(i, n_i, ll, ceilf, roundf);
        j1 = nj1;
        _j2 = nj2;
        let pwrs = if i == 1 || i == 2 * n_i + 1 {
            &gpower
        } else if i % 2 == 1 {
            &twogpower
        } else {
            &onem2gpower
        };
        let ln2 = nj2 - k1 + 1;
        if ln2 > 0 {
            // np.convolve(V0[k1 − V0s : k1 − V0s + ln2], pwrs[:ln2]), slices clipped to the
            // array as Python clips them; only the entries that are kept are computed.
            let start = (k1 - v0s).max(0) as usize;
            let a_end = (start + ln2 as usize).min(npwrs);
            let a = &v0[start.min(a_end)..a_end];
            let b = &pwrs[..(ln2 as usize).min(npwrs)];
            let conv_start = nj1 - k1;
            let conv_len = nj2 - nj1 + 1;
            let full_len = (a.len() + b.len()) as i64 - 1;
            for (out_i, idx) in (conv_start..conv_start + conv_len).enumerate() {
                if idx < 0 || idx >= full_len || out_i >= npwrs {
                    continue;
                }
                let idx = idx as usize;
                let lo = idx.saturating_sub(b.len() - 1);
                let hi = idx.min(a.len() - 1);
                let mut s = 0.0;
                for ai in lo..=hi {
                    s += a[ai] * b[idx - ai];
                }
                v1[out_i] = s;
            }
            let max = v1.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if max > 0.0 && max < EM128 {
                v1.iter_mut().for_each(|x| *x *= EP128);
                expnt -= i64::from(E128);
            }
            v1s = v0s + nj1 - k1;
        }
    }
    let idx = n_i - v1s;
    let mut ans = if (0..npwrs as i64).contains(&idx) {
        v1[idx as usize]
    } else {
        0.0
    };
    for m in 1..=n {
        if ans.abs() > EP128 {
            ans *= EM128;
            expnt += i64::from(E128);
        }
        ans *= m as f64;
    }
    if expnt != 0 {
        ans = ldexp(ans, expnt);
    }
    clip(ans)
}

/// The Pelz–Good (1976) approximation to P(Dₙ <= x): the Li-Chien/Korolyuk expansion in
/// 1/√n with each term transformed by Jacobi theta identities for small √n·x.
fn pelz_good_cdf(n: u64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let nf = n as f64;
    let z = nf.sqrt() * x;
    let (zsquared, zthree, zfour, zsix) = (z * z, z.powi(3), z.powi(4), z.powi(6));
    let qlog = -PI_SQUARED / 8.0 / zsquared;
    if qlog < PELZ_GOOD_MIN_LOG {
        return 0.0;
    }
    let q = qlog.exp();

    let k1a = -zsquared;
    let k1b = PI_SQUARED / 4.0;
    let k2a = 6.0 * zsix + 2.0 * zfour;
    let k2b = (2.0 * zfour - 5.0 * zsquared) * PI_SQUARED / 4.0;
    let k2c = PI_FOUR * (1.0 - 2.0 * zsquared) / 16.0;
    let k3d = PI_SIX * (5.0 - 30.0 * zsquared) / 64.0;
    let k3c = PI_FOUR * (-60.0 * zsquared + 212.0 * zfour) / 16.0;
    let k3b = PI_SQUARED * (135.0 * zfour - 96.0 * zsix) / 4.0;
    let k3a = -30.0 * zsix - 90.0 * z.powi(8);

    let mut k = [0.0f64; 4];
    let maxk = (16.0 * z / std::f64::consts::PI).ceil() as i64;
    for kk in (1..=maxk).rev() {
        let m = (2 * kk - 1) as f64;
        let (msquared, mfour, msix) = (m * m, m.powi(4), m.powi(6));
        let qpower = q.powf((8 * kk) as f64);
        let coeffs = [
            1.0,
            k1a + k1b * msquared,
            k2a + k2b * msquared + k2c * mfour,
            k3a + k3b * msquared + k3c * mfour + k3d * msix,
        ];
        for (kv, c) in k.iter_mut().zip(coeffs) {
            *kv = *kv * qpower + c;
        }
    }
    let denoms = [z, 6.0 * zfour, 72.0 * z.powi(7), 6480.0 * z.powi(10)];
    for (kv, den) in k.iter_mut().zip(denoms) {
        *kv = *kv * q * SQRT_2PI / den;
    }

    let q2 = (-PI_SQUARED / 2.0 / zsquared).exp();
    let sqrt3z = 3f64.sqrt() * z;
    let mut k2extra = 0.0;
    let mut k3extra = 0.0;
    for kk in (1..=maxk).rev() {
        let ksq = (kk * kk) as f64;
        let kspi = std::f64::consts::PI * kk as f64;
        let qp = q2.powf(ksq);
        k2extra += ksq * qp;
        k3extra += (sqrt3z + kspi) * (sqrt3z - kspi) * ksq * qp;
    }
    k[2] += k2extra * PI_SQUARED * SQRT_2PI / (-36.0 * zthree);
    k[3] += k3extra * PI_SQUARED * SQRT_2PI / (216.0 * zsix);
    for (i, kv) in k.iter_mut().enumerate() {
        *kv /= nf.powf(i as f64 / 2.0);
    }
    k.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_of_the_support() {
        assert!(kstwo_sf(0, 0.1).is_nan());
        assert!(kstwo_sf(3, f64::NAN).is_nan());
        assert_eq!(kstwo_sf(10, 0.0), 1.0);
        assert_eq!(kstwo_sf(10, 0.05), 1.0);
        assert_eq!(kstwo_sf(10, 1.0), 0.0);
        // Ruben–Gambino: P(D_n >= d) = 2(1 − d)^n for d >= 1 − 1/n.
        assert!((kstwo_sf(10, 0.95) - 2.0 * 0.05f64.powi(10)).abs() < 1e-25);
    }
}
