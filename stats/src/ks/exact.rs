//! Exact two-sided p-values of the two-sample KS statistic (scipy's `_attempt_exact_2kssamp`).

/// P(D_{n,n} >= h/n) (scipy's `_compute_prob_outside_square`): the alternating sum
/// `2·Σ (−1)^(k−1) C(2n, n−kh)/C(2n, n)` evaluated as a Horner-like product, so there is no
/// cancellation. O(n) time, no memory.
pub(crate) fn prob_outside_square(n: u64, h: u64) -> f64 {
    let (n, h) = (n as i64, h as i64);
    let mut p = 0.0;
    let mut k = n / h;
    while k >= 0 {
        let mut p1 = 1.0;
        for j in 0..h {
            p1 = (n - k * h - j) as f64 * p1 / (n + k * h + j + 1) as f64;
        }
        p = p1 * (1.0 - p);
        k -= 1;
    }
    2.0 * p
}

/// P(D_{m,n} >= h/lcm(m, n)) for `m != n` (scipy's `_compute_outer_prob_inside_method`):
/// Hodges' lattice-path "inside method" with Viehmann's recursion for 1 − P(inside), so small
/// p-values keep their relative accuracy.
///
/// A(i, j) — the probability that a uniformly random path from (0, 0) to (i, j) has left the
/// band `|i/m − j/n| < h/lcm` — is `(i·A(i−1, j) + j·A(i, j−1)) / (i + j)` inside the band and 1
/// outside. scipy walks column by column, where each cell waits on the one below it (a chain
/// of dependent divisions). Here the walk goes along anti-diagonals `i + j = k`: every cell of a
/// diagonal depends only on the previous diagonal, so the loop has no carried dependency and
/// vectorizes, while each cell is the same floating-point expression as in scipy (same result,
/// bit for bit). O(band area) = O(d·m·n) time; `buf` is resized to 2·(max(m, n) + 2).
pub(crate) fn prob_outside_band(m: u64, n: u64, g: u64, h: u64, buf: &mut Vec<f64>) -> f64 {
    let (m, n) = if m < n { (n, m) } else { (m, n) };
    let (mg, ng) = (m / g, n / g);
    let s = mg + ng;
    let width = m as usize + 2;
    buf.clear();
    buf.resize(2 * width, 1.0);
    let (mut prev, mut cur) = buf.split_at_mut(width);
    // Index p holds cell i = p − 1 of a diagonal; p = 0 is a sentinel that only ever meets a
    // zero weight. Diagonal 0 is the origin, inside the band (h >= 1).
    prev[1] = 0.0;
    let (m_i, n_i, h_i, mg_i, s_i) = (m as i64, n as i64, h as i64, mg as i64, s as i64);
    for k in 1..=(m_i + n_i) {
        // Cells (i, k − i) with |(mg + ng)·i − mg·k| < h, 0 <= i <= m, 0 <= k − i <= n.
        let lo = (floor_div(mg_i * k - h_i, s_i) + 1).max(k - n_i).max(0);
        let hi = ceil_div(mg_i * k + h_i, s_i).min(m_i + 1).min(k + 1);
        if hi <= lo {
            return 1.0; // no path stays inside
        }
        let (lo, hi) = (lo as usize, hi as usize);
        let kf = k as f64;
        let left = &prev[lo..hi]; // A(i − 1, j)
        let below = &prev[lo + 1..hi + 1]; // A(i, j − 1)
        let out = &mut cur[lo + 1..hi + 1];
        for (idx, ((o, l), b)) in out.iter_mut().zip(left).zip(below).enumerate() {
            let i = f64::from((lo + idx) as u32); // u32 → f64 vectorizes (i <= m <= 10 000 here)
            let j = kf - i;
            *o = (l * i + b * j) / kf;
        }
        // The next diagonal reads cells lo − 1 ..= hi of this one; the two outside the band
        // are exits (1).
        cur[lo] = 1.0;
        if hi + 1 < width {
            cur[hi + 1] = 1.0;
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[m as usize + 1]
}

fn floor_div(a: i64, b: i64) -> i64 {
    a.div_euclid(b)
}

fn ceil_div(a: i64, b: i64) -> i64 {
    -((-a).div_euclid(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// scipy's column-by-column recursion, transcribed, as the oracle for the diagonal walk.
    fn columnwise(m: u64, n: u64, g: u64, h: u64) -> f64 {
        let (m, n) = if m < n { (n, m) } else { (m, n) };
        let (mg, ng) = ((m / g) as i64, (n / g) as i64);
        let (m, n, h) = (m as i64, n as i64, h as i64);
        let mut minj = 0i64;
        let mut maxj = ((h as f64 / mg as f64).ceil() as i64).min(n + 1);
        let mut curlen = maxj - minj;
        let len_a = (2 * maxj + 2).min(n + 1) as usize;
        let mut a = vec![1.0; len_a.max(n as usize + 2)];
        for x in a.iter_mut().take(maxj as usize).skip(minj as usize) {
            *x = 0.0;
        }
        for i in 1..=m {
            let (lastminj, lastlen) = (minj, curlen);
            minj = ((ng * i - h).div_euclid(mg) + 1).max(0).min(n);
            maxj = (-((-(ng * i + h)).div_euclid(mg))).min(n + 1);
            if maxj <= minj {
                return 1.0;
            }
            let mut val = if minj == 0 { 0.0 } else { 1.0 };
            for jj in 0..(maxj - minj) {
                let j = jj + minj;
                val = (a[(jj + minj - lastminj) as usize] * i as f64 + val * j as f64)
                    / (i + j) as f64;
                a[jj as usize] = val;
            }
            curlen = maxj - minj;
            if lastlen > curlen {
                for x in &mut a[(maxj - minj) as usize..(maxj - minj + lastlen - curlen) as usize] {
                    *x = 1.0;
                }
            }
        }
        a[(maxj - minj - 1) as usize]
    }

    fn gcd(a: u64, b: u64) -> u64 {
        if b == 0 { a } else { gcd(b, a % b) }
    }

    #[test]
    fn diagonal_walk_equals_scipys_column_walk_bit_for_bit() {
        let mut buf = Vec::new();
        for (m, n) in [
            (5u64, 3u64),
            (3, 5),
            (10, 4),
            (12, 9),
            (40, 7),
            (100, 30),
            (64, 48),
        ] {
            let g = gcd(m, n);
            let lcm = m / g * n;
            for h in 1..=lcm {
                let got = prob_outside_band(m, n, g, h, &mut buf);
                let want = columnwise(m, n, g, h);
                assert_eq!(
                    got.to_bits(),
                    want.to_bits(),
                    "m={m} n={n} h={h}: {got} {want}"
                );
            }
        }
    }

    #[test]
    fn square_known_values() {
        // n = 1: D = 1 always, p = 1.
        assert_eq!(prob_outside_square(1, 1), 1.0);
        // P(D_{n,n} = 1) = 2 / C(2n, n).
        assert!((prob_outside_square(5, 5) - 2.0 / 252.0).abs() < 1e-17);
    }
}
