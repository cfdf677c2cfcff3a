//! Quantiles as `numpy.quantile(x, qs)` computes them with its default method, "linear"
//! (Hyndman & Fan type 7).

/// `numpy.quantile(sorted, qs)` (method `"linear"`) of an ascending, NaN-free slice.
///
/// Reproduces numpy's arithmetic exactly: virtual index `(n − 1)·q`, and the interpolation
/// `a + (b − a)·γ` for `γ < 0.5` or `b − (b − a)·(1 − γ)` otherwise. A `q` below 0 gives the
/// minimum and above 1 the maximum (numpy rejects those); a NaN `q` gives NaN. Empty input →
/// empty output. Unsorted input gives unspecified numbers but never panics.
pub fn linear_quantiles(sorted: &[f64], qs: &[f64]) -> Vec<f64> {
    if sorted.is_empty() {
        return Vec::new();
    }
    qs.iter().map(|&q| linear_quantile(sorted, q)).collect()
}

fn linear_quantile(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    let last = sorted[n - 1];
    if q.is_nan() {
        return f64::NAN;
    }
    let virtual_index = (n - 1) as f64 * q;
    if virtual_index.is_nan() {
        return f64::NAN; // 0·∞ for a single value and an infinite q, as numpy
    }
    if virtual_index >= (n - 1) as f64 {
        return last;
    }
    if virtual_index < 0.0 {
        return sorted[0];
    }
    let below = virtual_index.floor();
    let i = below as usize;
    let gamma = virtual_index - below;
    let (a, b) = (sorted[i], sorted[i + 1]);
    let diff = b - a;
    if gamma >= 0.5 {
        b - diff * (1.0 - gamma)
    } else {
        a + diff * gamma
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_cases() {
        assert!(linear_quantiles(&[], &[0.5]).is_empty());
        assert_eq!(linear_quantiles(&[3.0], &[0.0, 0.3, 1.0]), [3.0, 3.0, 3.0]);
        // np.quantile([1, 2, 3, 4], [0.1, 0.5, 0.9]) = [1.3, 2.5, 3.7]
        let q = linear_quantiles(&[1.0, 2.0, 3.0, 4.0], &[0.1, 0.5, 0.9]);
        for (got, want) in q.iter().zip([1.3, 2.5, 3.7]) {
            assert!((got - want).abs() < 1e-15, "{got} {want}");
        }
        assert_eq!(linear_quantiles(&[1.0, 2.0], &[-1.0, 2.0]), [1.0, 2.0]);
        assert!(linear_quantiles(&[1.0, 2.0], &[f64::NAN])[0].is_nan());
    }
}
