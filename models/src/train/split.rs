//! Train / validation / test splits: by time when there is a time column, else a seeded
//! shuffle.

use serde_json::{Value, json};

use super::TrainError;
use super::data::TimeColumn;
use crate::rng::SplitMix64;

/// Row indices (ascending) of each split, and how they were drawn.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Splits {
    pub train: Vec<usize>,
    pub valid: Vec<usize>,
    pub test: Vec<usize>,
    pub info: Value,
}

/// Time split: with the times sorted, `t_valid` is the time at position
/// `floor(train_fraction · n)` and `t_test` the time at `floor((train_fraction +
/// valid_fraction) · n)`; train = rows before `t_valid`, valid = `[t_valid, t_test)`,
/// test = from `t_test` on. Rows sharing a timestamp always land in the same split, so the
/// shares are only approximately the fractions. Too few distinct timestamps is an error.
pub(crate) fn by_time(
    time: &TimeColumn,
    train_fraction: f64,
    valid_fraction: f64,
) -> Result<Splits, TrainError> {
    let n = time.keys.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (time.keys[i], i));
    let at = |f: f64| order[((f * n as f64) as usize).min(n - 1)];
    let (first_valid, first_test) = (at(train_fraction), at(train_fraction + valid_fraction));
    let (t_valid, t_test) = (time.keys[first_valid], time.keys[first_test]);
    let mut s = Splits {
        train: Vec::new(),
        valid: Vec::new(),
        test: Vec::new(),
        info: json!({
            "method": "time",
            "column": time.name,
            "valid_from": time.display(first_valid),
            "test_from": time.display(first_test),
        }),
    };
    for (i, k) in time.keys.iter().enumerate() {
        if *k < t_valid {
            s.train.push(i);
        } else if *k < t_test {
            s.valid.push(i);
        } else {
            s.test.push(i);
        }
    }
    if s.train.is_empty() || s.valid.is_empty() || s.test.is_empty() {
        return Err(TrainError::Invalid(format!(
            "time column {:?}: too few distinct timestamps to split {n} rows by time \
             (train {}, valid {}, test {} rows); drop --time-column for a random split",
            time.name,
            s.train.len(),
            s.valid.len(),
            s.test.len()
        )));
    }
    Ok(s)
}

/// Seeded shuffle: a Fisher–Yates permutation of the rows from `seed`; the first
/// `round(train_fraction · n)` rows train, the next `round(valid_fraction · n)` validate, the
/// rest test.
pub(crate) fn shuffled(
    n: usize,
    seed: u64,
    train_fraction: f64,
    valid_fraction: f64,
) -> Result<Splits, TrainError> {
    let mut perm: Vec<usize> = (0..n).collect();
    let mut rng = SplitMix64::new(seed ^ 0x5350_4c49_5453); // "SPLITS"
    for i in (1..n).rev() {
        perm.swap(i, rng.below(i + 1));
    }
    let n_train = (train_fraction * n as f64).round() as usize;
    let n_valid = (valid_fraction * n as f64).round() as usize;
    if n_train == 0 || n_valid == 0 || n_train + n_valid >= n {
        return Err(TrainError::Invalid(format!(
            "{n} rows are too few to split into train, validation and test"
        )));
    }
    let part = |r: std::ops::Range<usize>| {
        let mut v = perm[r].to_vec();
        v.sort_unstable();
        v
    };
    Ok(Splits {
        train: part(0..n_train),
        valid: part(n_train..n_train + n_valid),
        test: part(n_train + n_valid..n),
        info: json!({ "method": "random", "seed": seed }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{ArrayRef, Int64Array, RecordBatch};
    use arrow_schema::{DataType, Field, Schema};
    use std::sync::Arc;

    fn time(keys: Vec<i64>) -> TimeColumn {
        let a: ArrayRef = Arc::new(Int64Array::from(keys));
        let b = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("t", DataType::Int64, false)])),
            vec![a],
        )
        .unwrap();
        super::super::data::read_time(&[b], "t").unwrap()
    }

    #[test]
    fn time_split_keeps_equal_timestamps_together_and_orders_splits() {
        // 20 rows, days 0..10 twice each, shuffled order.
        let keys: Vec<i64> = (0..20).map(|i| (i * 7 % 20) / 2).collect();
        let t = time(keys.clone());
        let s = by_time(&t, 0.7, 0.15).unwrap();
        let max = |v: &[usize]| v.iter().map(|&i| keys[i]).max().unwrap();
        let min = |v: &[usize]| v.iter().map(|&i| keys[i]).min().unwrap();
        assert!(max(&s.train) < min(&s.valid) && max(&s.valid) < min(&s.test));
        assert_eq!((s.train.len(), s.valid.len(), s.test.len()), (14, 2, 4));
        assert_eq!(s.info["valid_from"], "7");
        assert_eq!(s.info["test_from"], "8");
        let e = by_time(&time(vec![5; 10]), 0.7, 0.15).unwrap_err();
        assert!(e.to_string().contains("too few distinct timestamps"), "{e}");
    }

    #[test]
    fn shuffled_split_is_seeded_and_partitions_rows() {
        let a = shuffled(1000, 7, 0.7, 0.15).unwrap();
        assert_eq!(a, shuffled(1000, 7, 0.7, 0.15).unwrap());
        assert_ne!(a.train, shuffled(1000, 8, 0.7, 0.15).unwrap().train);
        assert_eq!(
            (a.train.len(), a.valid.len(), a.test.len()),
            (700, 150, 150)
        );
        let mut all: Vec<usize> = [a.train, a.valid, a.test].concat();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        assert!(shuffled(3, 1, 0.7, 0.15).is_err());
    }
}
