//! Integration tests of `vane-stats`: golden values from numpy/scipy (`fixtures/golden.json`,
//! written by `fixtures/generate.py`; no Python needed here) and property tests.

mod golden;
mod props;

use serde::Deserialize;
use serde_json::Value;

/// A sample as the fixture script describes it; [`Spec::values`] replays the script's
/// generator bit for bit (SplitMix64, exact adds and multiplies only).
#[derive(Debug, Clone, Deserialize)]
pub struct Spec {
    kind: String,
    #[serde(default)]
    values: Vec<Value>,
    #[serde(default)]
    seed: u64,
    #[serde(default)]
    n: usize,
    #[serde(default = "one")]
    scale: f64,
    #[serde(default)]
    shift: f64,
    #[serde(default)]
    k: u64,
    #[serde(default)]
    nan_every: usize,
}

fn one() -> f64 {
    1.0
}

struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * 2f64.powi(-53)
    }
}

impl Spec {
    pub fn values(&self) -> Vec<f64> {
        if self.kind == "values" {
            return self.values.iter().map(json_f64).collect();
        }
        let mut rng = SplitMix64(self.seed);
        let mut out: Vec<f64> = (0..self.n)
            .map(|_| match self.kind.as_str() {
                "uniform" => rng.unit() * self.scale + self.shift,
                "normalish" => {
                    let mut s = rng.unit();
                    s += rng.unit();
                    s += rng.unit();
                    s += rng.unit();
                    (s - 2.0) * self.scale + self.shift
                }
                "int" => (rng.unit() * self.k as f64).floor() * self.scale + self.shift,
                other => panic!("unknown sample kind {other}"),
            })
            .collect();
        if self.nan_every > 0 {
            for x in out.iter_mut().step_by(self.nan_every) {
                *x = f64::NAN;
            }
        }
        out
    }
}

/// A JSON number, or `null` = NaN, `"inf"`, `"-inf"`.
pub fn json_f64(v: &Value) -> f64 {
    match v {
        Value::Null => f64::NAN,
        Value::String(s) if s == "inf" => f64::INFINITY,
        Value::String(s) if s == "-inf" => f64::NEG_INFINITY,
        Value::Number(n) => n.as_f64().expect("a number"),
        other => panic!("not a float: {other}"),
    }
}

/// `|got − want| <= rel·|want|` (or both NaN), with a message naming the case.
#[track_caller]
pub fn assert_rel(got: f64, want: f64, rel: f64, what: &str) {
    if got.is_nan() && want.is_nan() {
        return;
    }
    let err = (got - want).abs();
    assert!(
        err <= rel * want.abs(),
        "{what}: got {got:e}, want {want:e}, relative error {:e} > {rel:e}",
        err / want.abs()
    );
}
