//! Per-window accumulators: fixed reference bins and a bounded sample per column, never every
//! row, so a window's memory does not grow with its row count.
//!
//! A [`Plan`] maps the columns of a wire schema (what the server sends) onto a [`Reference`]
//! (what the trainer profiled): by feature name, with categorical codes translated from the
//! server's vocabulary to the profile's categories. A [`WindowAcc`] holds one window's
//! [`ColumnAcc`]s, one per reference feature, plus the score's.

use std::ops::Range;

use vane_sample_stream as wire;

use crate::reference::{RefFeature, RefKind, Reference};

/// A bounded uniform sample (Vitter's algorithm R) of a column's non-missing values.
#[derive(Debug, Clone)]
pub struct Reservoir {
    cap: usize,
    seen: u64,
    values: Vec<f64>,
    rng: u64,
}

impl Reservoir {
    pub fn new(cap: usize, seed: u64) -> Self {
        Self {
            cap,
            seen: 0,
            values: Vec::new(),
            rng: seed | 1,
        }
    }

    #[inline]
    pub fn push(&mut self, x: f64) {
        self.seen += 1;
        if self.values.len() < self.cap {
            self.values.push(x);
            return;
        }
        // xorshift64*: cheap and good enough to pick replacement slots.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let j = ((u128::from(r) * u128::from(self.seen)) >> 64) as u64;
        if (j as usize) < self.cap {
            self.values[j as usize] = x;
        }
    }

    /// Values kept (at most `cap`).
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// Values offered so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }
}

/// One column over one window.
#[derive(Debug, Clone)]
pub struct ColumnAcc {
    /// Rows per slot (see [`crate::reference`] for the layout).
    pub counts: Vec<u64>,
    /// Rows whose value was missing (NaN).
    pub missing: u64,
    /// Non-missing numeric rows outside the reference's [min, max].
    pub out_of_range: u64,
    /// Non-missing categorical rows outside the reference's categories.
    pub unseen: u64,
    /// Non-missing numeric values for KS.
    pub sample: Reservoir,
}

impl ColumnAcc {
    pub fn new(feature: &RefFeature, sample_cap: usize, seed: u64) -> Self {
        Self {
            counts: vec![0; feature.slots()],
            missing: 0,
            out_of_range: 0,
            unseen: 0,
            sample: Reservoir::new(if feature.is_numeric() { sample_cap } else { 0 }, seed),
        }
    }

    /// Adds numeric values (served `f32` values are widened exactly).
    #[inline]
    pub fn add_numeric(&mut self, feature: &RefFeature, values: impl Iterator<Item = f64>) {
        let RefKind::Numeric { bins, min, max, .. } = &feature.kind else {
            return;
        };
        let missing_slot = self.counts.len() - 1;
        for v in values {
            if v.is_nan() {
                self.counts[missing_slot] += 1;
                self.missing += 1;
                continue;
            }
            self.counts[bins.bin(v)] += 1;
            if v < *min || v > *max {
                self.out_of_range += 1;
            }
            self.sample.push(v);
        }
    }

    /// Adds categorical codes through `slots` (code → slot; anything else is unseen).
    #[inline]
    pub fn add_codes(&mut self, slots: &[usize], values: impl Iterator<Item = f32>) {
        let unseen_slot = self.counts.len() - 1;
        for x in values {
            if x.is_nan() {
                self.missing += 1;
                self.counts[unseen_slot] += 1;
                continue;
            }
            let slot = if x >= 0.0 && x.fract() == 0.0 {
                slots.get(x as usize).copied()
            } else {
                None
            };
            match slot {
                Some(s) if s != unseen_slot => self.counts[s] += 1,
                // A code outside the server's vocabulary, or a server category the profile
                // never saw.
                _ => {
                    self.unseen += 1;
                    self.counts[unseen_slot] += 1;
                }
            }
        }
    }

    /// Rows counted.
    pub fn rows(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// How one wire column reaches a reference feature.
#[derive(Debug, Clone)]
enum ColPlan {
    Numeric {
        feature: usize,
    },
    /// `slots[code]` = the reference slot of the server's category `code`.
    Categorical {
        feature: usize,
        slots: Vec<usize>,
    },
}

/// How a wire schema's columns map onto a reference.
#[derive(Debug, Clone)]
pub struct Plan {
    cols: Vec<Option<ColPlan>>,
    /// Problems found while matching (kind mismatches, unprofiled features), for logs and
    /// reports.
    pub warnings: Vec<String>,
}

impl Plan {
    pub fn new(schema: &wire::Schema, reference: &Reference) -> Plan {
        let mut warnings = Vec::new();
        let cols =
            schema
                .features
                .iter()
                .map(|f| {
                    let Some((i, r)) = reference.feature(&f.name) else {
                        warnings.push(format!(
                            "feature {:?} is not in the reference profile; not monitored",
                            f.name
                        ));
                        return None;
                    };
                    match (&f.kind, &r.kind) {
                        (wire::FeatureKind::Numeric, RefKind::Numeric { .. }) => {
                            Some(ColPlan::Numeric { feature: i })
                        }
                        (
                            wire::FeatureKind::Categorical(vocab),
                            RefKind::Categorical { index, categories },
                        ) => {
                            let unseen = categories.len();
                            Some(ColPlan::Categorical {
                                feature: i,
                                slots: vocab
                                    .iter()
                                    .map(|c| index.get(c).copied().unwrap_or(unseen))
                                    .collect(),
                            })
                        }
                        (served, _) => {
                            warnings.push(format!(
                            "feature {:?} is {} on the wire but {} in the profile; not monitored",
                            f.name,
                            served,
                            if r.is_numeric() { "numeric" } else { "categorical" }
                        ));
                            None
                        }
                    }
                })
                .collect();
        for r in &reference.features {
            if !schema.features.iter().any(|f| f.name == r.name) {
                warnings.push(format!(
                    "profiled feature {:?} is not sent by the server; not monitored",
                    r.name
                ));
            }
        }
        Plan { cols, warnings }
    }
}

/// One window of one stream.
#[derive(Debug, Clone)]
pub struct WindowAcc {
    /// Unix time (ms) of the window's start.
    pub started_ms: u64,
    pub rows: u64,
    /// One per reference feature (same order).
    pub columns: Vec<ColumnAcc>,
    pub score: Option<ColumnAcc>,
}

impl WindowAcc {
    pub fn new(reference: &Reference, sample_cap: usize, started_ms: u64) -> Self {
        let seed = started_ms ^ 0x9e37_79b9_7f4a_7c15;
        Self {
            started_ms,
            rows: 0,
            columns: reference
                .features
                .iter()
                .enumerate()
                .map(|(i, f)| ColumnAcc::new(f, sample_cap, seed.wrapping_add(i as u64)))
                .collect(),
            score: reference
                .score
                .as_ref()
                .map(|f| ColumnAcc::new(f, sample_cap, seed.rotate_left(17))),
        }
    }

    /// Adds rows `range` of a frame.
    pub fn add(
        &mut self,
        reference: &Reference,
        plan: &Plan,
        rows: &wire::Rows<'_>,
        range: Range<usize>,
    ) {
        for (c, p) in plan.cols.iter().enumerate() {
            match p {
                Some(ColPlan::Numeric { feature }) => self.columns[*feature].add_numeric(
                    &reference.features[*feature],
                    rows.column_range(c, range.clone()).map(f64::from),
                ),
                Some(ColPlan::Categorical { feature, slots }) => {
                    self.columns[*feature].add_codes(slots, rows.column_range(c, range.clone()))
                }
                None => {}
            }
        }
        if let (Some(acc), Some(r), Some(scores)) = (
            self.score.as_mut(),
            reference.score.as_ref(),
            rows.scores_range(range.clone()),
        ) {
            acc.add_numeric(r, scores.map(f64::from));
        }
        self.rows += range.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vane_registry::{FeatureProfile, Profile};

    fn reference() -> Reference {
        Reference::from_profile(
            &Profile {
                rows: 100,
                features: vec![
                    FeatureProfile::Numeric {
                        name: "x".into(),
                        edges: vec![1.0, 2.0],
                        shares: vec![0.3, 0.3, 0.4],
                        missing_share: 0.0,
                        sample: vec![0.0, 1.5, 3.0],
                        min: Some(0.0),
                        max: Some(3.0),
                    },
                    FeatureProfile::Categorical {
                        name: "c".into(),
                        categories: vec!["b".into(), "a".into()],
                        shares: vec![0.5, 0.5],
                        unseen_share: 0.0,
                    },
                ],
                score: None,
            },
            "test",
            crate::reference::Precision::F32,
        )
    }

    #[test]
    fn rows_land_in_their_bins_through_the_plan() {
        let r = reference();
        let schema = wire::Schema {
            model: "m".into(),
            version: 1,
            features: vec![
                wire::Feature {
                    name: "c".into(),
                    kind: wire::FeatureKind::Categorical(vec!["a".into(), "b".into(), "z".into()]),
                },
                wire::Feature {
                    name: "x".into(),
                    kind: wire::FeatureKind::Numeric,
                },
                wire::Feature {
                    name: "extra".into(),
                    kind: wire::FeatureKind::Numeric,
                },
            ],
            score: None,
        };
        let plan = Plan::new(&schema, &r);
        assert_eq!(plan.warnings.len(), 1, "{:?}", plan.warnings);
        // Rows (c, x): (a, 1.0), (b, 1.5), (z, NaN), (7, 9.0), (NaN, 2.0)
        let input = [
            [0.0, 1.0, 0.0],
            [1.0, 1.5, 0.0],
            [2.0, f32::NAN, 0.0],
            [7.0, 9.0, 0.0],
            [f32::NAN, 2.0, 0.0],
        ];
        let mut buf = Vec::new();
        wire::encode_rows(
            &mut buf,
            schema.id(),
            &schema,
            false,
            5,
            |r, c| input[r][c],
            None,
        );
        let wire::Frame::Rows(rows) = wire::decode(&buf[4..]).unwrap() else {
            panic!()
        };
        let mut w = WindowAcc::new(&r, 10, 0);
        w.add(&r, &plan, &rows, 0..3);
        w.add(&r, &plan, &rows, 3..5);
        assert_eq!(w.rows, 5);
        let x = &w.columns[0];
        assert_eq!(x.counts, [1, 2, 1, 1], "(-inf,1], (1,2], (2,inf), missing");
        assert_eq!((x.missing, x.out_of_range), (1, 1));
        assert_eq!(x.sample.values(), [1.0, 1.5, 9.0, 2.0]);
        let c = &w.columns[1];
        // "a" is the profile's slot 1, "b" slot 0; "z", code 7 and NaN are unseen.
        assert_eq!(c.counts, [1, 1, 3]);
        assert_eq!((c.missing, c.unseen), (1, 2));
    }

    #[test]
    fn reservoir_stays_bounded_and_uniform() {
        let mut r = Reservoir::new(1000, 7);
        for i in 0..100_000 {
            r.push(f64::from(i));
        }
        assert_eq!(r.values().len(), 1000);
        assert_eq!(r.seen(), 100_000);
        let mean: f64 = r.values().iter().sum::<f64>() / 1000.0;
        assert!((mean - 50_000.0).abs() < 3_000.0, "{mean}");
    }
}
