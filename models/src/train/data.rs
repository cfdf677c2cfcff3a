//! Reading training tables (CSV, Parquet) and turning Arrow columns into model inputs.
//!
//! Conventions (the signature and the server follow the same ones):
//! - A **numeric** feature is any integer, float, decimal or boolean column (or a text column
//!   the caller declares numeric, parsed strictly). Values become `f32`, the dtype of the model
//!   tensor; null and NaN are *missing* (NaN in the tensor). A value that does not fit in `f32`
//!   (or is infinite) is an error naming the row.
//! - A **categorical** feature is any text or dictionary column (or another column the caller
//!   declares categorical, compared as its text form). Its vocabulary is built on the training
//!   split only, most frequent first, ties by name; the tensor holds the category's index in
//!   the vocabulary. A null, or a category not in the vocabulary, becomes code `K` (the
//!   vocabulary length): see [`crate::train`] for what each model does with it.
//! - The **label** is an integer, float or boolean column holding 0 and 1 only.
//! - The **time** column (optional) orders rows for the time split: a timestamp, date, time,
//!   duration, integer, float, or ISO-8601 text column without nulls.
//!
//! Row numbers in errors count from 0 across all batches, in table order.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_cast::cast::{CastOptions, cast_with_options};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::{DataType, TimeUnit};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use vane_registry::FeatureKind;

use super::TrainError;

/// Reads a table by extension: `.csv` (header row; schema inferred from every row; an empty
/// field is null) or `.parquet` / `.pq` (through `vane-tabular`). With `columns`, only those
/// are read (in file order); a name the file lacks is an error listing the file's columns.
pub fn read_table(path: &Path, columns: Option<&[String]>) -> Result<Vec<RecordBatch>, TrainError> {
    vane_tabular::read_batches(path, columns).map_err(|e| match e {
        vane_tabular::TableError::MissingColumn {
            column, available, ..
        } => TrainError::MissingColumn {
            role: "requested",
            column,
            available,
        },
        other => TrainError::Read {
            path: path.to_path_buf(),
            message: other.to_string(),
        },
    })
}

/// `{"data": [{"path", "sha256", "bytes"}]}` for the files a model was trained on (the path
/// made absolute when possible), for the version's lineage.
pub fn file_lineage(paths: &[&Path]) -> Result<Value, TrainError> {
    let mut data = Vec::new();
    for path in paths {
        let err = |e: std::io::Error| TrainError::Read {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let mut file = File::open(path).map_err(err)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut bytes = 0u64;
        loop {
            let n = file.read(&mut buf).map_err(err)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            bytes += n as u64;
        }
        let shown = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        data.push(json!({
            "path": shown.display().to_string(),
            "sha256": hex_lower(&hasher.finalize()),
            "bytes": bytes,
        }));
    }
    Ok(json!({ "data": data }))
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// Columns

/// The values of one feature over all rows, before encoding.
#[derive(Debug, Clone)]
pub(crate) enum Raw {
    /// `f32` values, NaN = missing.
    Numeric(Vec<f32>),
    /// Interned text: `ids[i]` indexes `names`; [`NULL_ID`] = null.
    Categorical { ids: Vec<u32>, names: Vec<String> },
}

pub(crate) const NULL_ID: u32 = u32::MAX;

/// A feature as read from the table.
#[derive(Debug, Clone)]
pub(crate) struct RawFeature {
    pub name: String,
    /// Open Inference Protocol dtype a client sends for it.
    pub dtype: &'static str,
    pub raw: Raw,
}

/// The time column: an order key per row, and the arrays to print boundaries with.
#[derive(Debug, Clone)]
pub(crate) struct TimeColumn {
    pub name: String,
    pub keys: Vec<i64>,
    arrays: Vec<ArrayRef>,
}

impl TimeColumn {
    /// Row `row`'s value as text (ISO-8601 for timestamps).
    pub fn display(&self, row: usize) -> String {
        let mut local = row;
        for a in &self.arrays {
            if local < a.len() {
                if let Ok(f) = ArrayFormatter::try_new(a.as_ref(), &FormatOptions::default()) {
                    return f.value(local).to_string();
                }
                break;
            }
            local -= a.len();
        }
        // Unprintable type: the raw order key.
        self.keys
            .get(row)
            .map(|k| k.to_string())
            .unwrap_or_default()
    }
}

/// Every column of the batches named `name`, or the error naming it and listing the columns.
pub(crate) fn column<'a>(
    batches: &'a [RecordBatch],
    name: &str,
    role: &'static str,
) -> Result<Vec<&'a ArrayRef>, TrainError> {
    batches
        .iter()
        .map(|b| {
            b.column_by_name(name)
                .ok_or_else(|| TrainError::MissingColumn {
                    role,
                    column: name.to_string(),
                    available: b
                        .schema()
                        .fields()
                        .iter()
                        .map(|f| f.name().clone())
                        .collect(),
                })
        })
        .collect()
}

fn col_err(role: &'static str, column: &str, message: impl Into<String>) -> TrainError {
    TrainError::Column {
        role,
        column: column.to_string(),
        message: message.into(),
    }
}

/// The kind a column gets unless the caller says otherwise (`None`: neither).
pub(crate) fn default_kind(dt: &DataType) -> Option<FeatureKind> {
    use DataType::*;
    match dt {
        Null | Boolean | Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64
        | Float16 | Float32 | Float64 | Decimal32(..) | Decimal64(..) | Decimal128(..)
        | Decimal256(..) => Some(FeatureKind::Numeric),
        Utf8 | LargeUtf8 | Utf8View => Some(FeatureKind::Categorical),
        Dictionary(_, v) => match v.as_ref() {
            Utf8 | LargeUtf8 | Utf8View => Some(FeatureKind::Categorical),
            _ => None,
        },
        _ => None,
    }
}

fn numeric_dtype(dt: &DataType) -> &'static str {
    use DataType::*;
    match dt {
        Null | Float16 | Float32 => "FP32",
        Boolean => "BOOL",
        Int8 | Int16 | Int32 | UInt8 | UInt16 => "INT32",
        Int64 | UInt32 | UInt64 => "INT64",
        _ => "FP64",
    }
}

/// Reads feature `name` from `batches` as `kind` (default: by its Arrow type).
pub(crate) fn read_feature(
    batches: &[RecordBatch],
    name: &str,
    kind: Option<FeatureKind>,
) -> Result<RawFeature, TrainError> {
    let arrays = column(batches, name, "feature")?;
    let dt = arrays
        .first()
        .map(|a| a.data_type().clone())
        .unwrap_or(DataType::Null);
    let kind = match kind.or_else(|| default_kind(&dt)) {
        Some(k) => k,
        None => {
            return Err(col_err(
                "feature",
                name,
                format!(
                    "type {dt} is neither numeric nor text; use it as the time column or leave it \
                     out of the features"
                ),
            ));
        }
    };
    let strict = CastOptions {
        safe: false,
        ..Default::default()
    };
    let mut offset = 0;
    match kind {
        FeatureKind::Numeric => {
            let mut values = Vec::new();
            for a in &arrays {
                let f = cast_with_options(a.as_ref(), &DataType::Float64, &strict)
                    .map_err(|e| col_err("feature", name, format!("as a number: {e}")))?;
                let f = f.as_primitive::<Float64Type>();
                values.reserve(f.len());
                for i in 0..f.len() {
                    let v = if f.is_null(i) { f64::NAN } else { f.value(i) };
                    let x = v as f32;
                    if !v.is_nan() && !x.is_finite() {
                        return Err(col_err(
                            "feature",
                            name,
                            format!("row {}: {v:e} does not fit in FP32", offset + i),
                        ));
                    }
                    values.push(x);
                }
                offset += f.len();
            }
            let dtype = if matches!(
                dt,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            ) {
                "FP64"
            } else {
                numeric_dtype(&dt)
            };
            Ok(RawFeature {
                name: name.to_string(),
                dtype,
                raw: Raw::Numeric(values),
            })
        }
        FeatureKind::Categorical => {
            let mut ids = Vec::new();
            let mut names: Vec<String> = Vec::new();
            let mut index: HashMap<String, u32> = HashMap::new();
            for a in &arrays {
                let s = cast_with_options(a.as_ref(), &DataType::Utf8, &strict)
                    .map_err(|e| col_err("feature", name, format!("as text: {e}")))?;
                let s = s.as_string::<i32>();
                ids.reserve(s.len());
                for i in 0..s.len() {
                    if s.is_null(i) {
                        ids.push(NULL_ID);
                        continue;
                    }
                    let v = s.value(i);
                    let id = match index.get(v) {
                        Some(id) => *id,
                        None => {
                            let id = names.len() as u32;
                            names.push(v.to_string());
                            index.insert(v.to_string(), id);
                            id
                        }
                    };
                    ids.push(id);
                }
            }
            Ok(RawFeature {
                name: name.to_string(),
                dtype: "BYTES",
                raw: Raw::Categorical { ids, names },
            })
        }
    }
}

/// The 0/1 label of every row. With `positive` (`--positive-label`), a row is 1 when its label
/// equals that value and 0 otherwise: text labels (`good`/`bad`) compare as text, numeric ones
/// (`1`/`2`) as numbers.
pub(crate) fn read_label(
    batches: &[RecordBatch],
    name: &str,
    positive: Option<&str>,
) -> Result<Vec<u8>, TrainError> {
    let arrays = column(batches, name, "label")?;
    if let Some(positive) = positive {
        return read_label_against(&arrays, name, positive);
    }
    let mut out = Vec::new();
    let mut offset = 0;
    for a in arrays {
        if !matches!(default_kind(a.data_type()), Some(FeatureKind::Numeric)) {
            return Err(col_err(
                "label",
                name,
                format!(
                    "type {} is not a 0/1 label; expected integers, floats or booleans, or name \
                     the positive class with --positive-label (values seen: {})",
                    a.data_type(),
                    distinct_text(&arrays_text(&[a]), 8).join(", ")
                ),
            ));
        }
        let f = cast_with_options(a.as_ref(), &DataType::Float64, &CastOptions::default())
            .map_err(|e| col_err("label", name, e.to_string()))?;
        let f = f.as_primitive::<Float64Type>();
        for i in 0..f.len() {
            let row = offset + i;
            if f.is_null(i) {
                return Err(col_err(
                    "label",
                    name,
                    format!("row {row}: null; labels must be 0 or 1"),
                ));
            }
            out.push(match f.value(i) {
                0.0 => 0,
                1.0 => 1,
                v => {
                    return Err(col_err(
                        "label",
                        name,
                        format!(
                            "row {row}: value {v} is not 0 or 1 (name the positive class with \
                             --positive-label)"
                        ),
                    ));
                }
            });
        }
        offset += f.len();
    }
    Ok(out)
}

/// The label column as text, `None` for nulls.
fn arrays_text(arrays: &[&ArrayRef]) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for a in arrays {
        match cast_with_options(a.as_ref(), &DataType::Utf8, &CastOptions::default()) {
            Ok(s) => {
                let s = s.as_string::<i32>();
                out.extend((0..s.len()).map(|i| (!s.is_null(i)).then(|| s.value(i).to_string())));
            }
            Err(_) => out.extend(std::iter::repeat_n(None, a.len())),
        }
    }
    out
}

/// Up to `max` distinct non-null values, in order of first appearance.
fn distinct_text(values: &[Option<String>], max: usize) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for v in values.iter().flatten() {
        if seen.len() == max {
            break;
        }
        if !seen.contains(v) {
            seen.push(v.clone());
        }
    }
    seen
}

/// [`read_label`] with a named positive class.
fn read_label_against(
    arrays: &[&ArrayRef],
    name: &str,
    positive: &str,
) -> Result<Vec<u8>, TrainError> {
    let numeric = arrays
        .iter()
        .all(|a| matches!(default_kind(a.data_type()), Some(FeatureKind::Numeric)));
    let out: Vec<u8> = if numeric {
        let want: f64 = positive.trim().parse().map_err(|_| {
            col_err(
                "label",
                name,
                format!("is numeric, but --positive-label {positive:?} is not a number"),
            )
        })?;
        let mut out = Vec::new();
        for a in arrays {
            let f = cast_with_options(a.as_ref(), &DataType::Float64, &CastOptions::default())
                .map_err(|e| col_err("label", name, e.to_string()))?;
            let f = f.as_primitive::<Float64Type>();
            for i in 0..f.len() {
                if f.is_null(i) {
                    let row = out.len();
                    return Err(col_err("label", name, format!("row {row}: null")));
                }
                out.push(u8::from(f.value(i) == want));
            }
        }
        out
    } else {
        let text = arrays_text(arrays);
        let mut out = Vec::with_capacity(text.len());
        for (row, v) in text.iter().enumerate() {
            match v {
                None => return Err(col_err("label", name, format!("row {row}: null"))),
                Some(v) => out.push(u8::from(v == positive)),
            }
        }
        out
    };
    if !out.contains(&1) {
        let seen = distinct_text(&arrays_text(arrays), 8);
        return Err(col_err(
            "label",
            name,
            format!(
                "no row has the positive label {positive:?} (values seen: {})",
                seen.join(", ")
            ),
        ));
    }
    Ok(out)
}

/// Maps a float to an `i64` with the same order (`total_cmp`).
fn float_key(x: f64) -> i64 {
    let b = x.to_bits() as i64;
    b ^ (((b >> 63) as u64) >> 1) as i64
}

/// The time column's order keys.
pub(crate) fn read_time(batches: &[RecordBatch], name: &str) -> Result<TimeColumn, TrainError> {
    use DataType::*;
    let arrays = column(batches, name, "time")?;
    let mut keys = Vec::new();
    let mut offset = 0;
    let strict = CastOptions {
        safe: false,
        ..Default::default()
    };
    let cast = |a: &dyn Array, to: &DataType| {
        cast_with_options(a, to, &strict).map_err(|e| col_err("time", name, e.to_string()))
    };
    for a in &arrays {
        let n = a.len();
        let (valid, k): (Vec<bool>, Vec<i64>) = match a.data_type() {
            Timestamp(..) | Date64 | Time32(_) | Time64(_) | Duration(_) | Int8 | Int16 | Int32
            | Int64 | UInt8 | UInt16 | UInt32 | UInt64 => {
                let c = cast(a.as_ref(), &Int64)?;
                let c = c.as_primitive::<Int64Type>();
                (0..n).map(|i| (c.is_valid(i), c.value(i))).unzip()
            }
            Date32 => {
                let c = cast(a.as_ref(), &Int32)?;
                let c = c.as_primitive::<Int32Type>();
                (0..n).map(|i| (c.is_valid(i), c.value(i) as i64)).unzip()
            }
            Float16 | Float32 | Float64 => {
                let c = cast(a.as_ref(), &Float64)?;
                let c = c.as_primitive::<Float64Type>();
                (0..n)
                    .map(|i| (c.is_valid(i) && !c.value(i).is_nan(), float_key(c.value(i))))
                    .unzip()
            }
            Utf8 | LargeUtf8 | Utf8View => {
                let t = cast(a.as_ref(), &Timestamp(TimeUnit::Nanosecond, None))?;
                let c = cast(t.as_ref(), &Int64)?;
                let c = c.as_primitive::<Int64Type>();
                (0..n).map(|i| (c.is_valid(i), c.value(i))).unzip()
            }
            other => {
                return Err(col_err(
                    "time",
                    name,
                    format!("type {other} cannot order rows; expected a timestamp, date or number"),
                ));
            }
        };
        if let Some(i) = valid.iter().position(|v| !v) {
            return Err(col_err(
                "time",
                name,
                format!("row {}: missing timestamp", offset + i),
            ));
        }
        keys.extend(k);
        offset += n;
    }
    // Printing a named zone ("UTC", "Europe/Paris") needs arrow's chrono-tz feature; the
    // values are UTC instants whatever the zone, so print them with a +00:00 offset.
    let arrays = arrays
        .into_iter()
        .map(|a| match a.data_type() {
            Timestamp(unit, Some(_)) => {
                cast(a.as_ref(), &Timestamp(*unit, Some("+00:00".into()))).unwrap_or(a.clone())
            }
            _ => a.clone(),
        })
        .collect();
    Ok(TimeColumn {
        name: name.to_string(),
        keys,
        arrays,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use arrow_array::{BooleanArray, Float64Array, Int64Array, StringArray};
    use arrow_schema::{Field, Schema};

    fn batch(cols: Vec<(&str, ArrayRef)>) -> RecordBatch {
        let fields: Vec<Field> = cols
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect();
        RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            cols.into_iter().map(|(_, a)| a).collect(),
        )
        .unwrap()
    }

    #[test]
    fn labels_accept_ints_floats_and_bools_and_name_bad_rows() {
        let b = batch(vec![
            ("i", Arc::new(Int64Array::from(vec![0, 1, 1])) as ArrayRef),
            ("f", Arc::new(Float64Array::from(vec![1.0, 0.0, 0.5]))),
            ("b", Arc::new(BooleanArray::from(vec![true, false, true]))),
            (
                "n",
                Arc::new(Int64Array::from(vec![Some(0), None, Some(1)])),
            ),
            ("s", Arc::new(StringArray::from(vec!["0", "1", "1"]))),
        ]);
        let batches = [b.clone(), b];
        assert_eq!(read_label(&batches, "i", None).unwrap(), [0, 1, 1, 0, 1, 1]);
        assert_eq!(read_label(&batches, "b", None).unwrap(), [1, 0, 1, 1, 0, 1]);
        let e = read_label(&batches, "f", None).unwrap_err().to_string();
        assert!(
            e.starts_with(r#"label column "f": row 2: value 0.5 is not 0 or 1"#),
            "{e}"
        );
        let e = read_label(&batches, "n", None).unwrap_err().to_string();
        assert!(e.contains("row 1: null"), "{e}");
        let e = read_label(&batches, "s", None).unwrap_err().to_string();
        assert!(
            e.contains("not a 0/1 label") && e.contains("--positive-label"),
            "{e}"
        );
        let e = read_label(&batches, "y", None).unwrap_err().to_string();
        assert!(
            e.contains(r#"label column "y" not found"#) && e.contains("i, f, b, n, s"),
            "{e}"
        );
    }

    #[test]
    fn a_named_positive_class_labels_text_and_numbers() {
        let b = batch(vec![
            (
                "class",
                Arc::new(StringArray::from(vec!["good", "bad", "good"])) as ArrayRef,
            ),
            ("code", Arc::new(Int64Array::from(vec![1, 2, 2]))),
            (
                "gap",
                Arc::new(StringArray::from(vec![Some("bad"), None, Some("good")])),
            ),
        ]);
        let batches = [b.clone(), b];
        let got = read_label(&batches, "class", Some("bad")).unwrap();
        assert_eq!(got, [0, 1, 0, 0, 1, 0]);
        // German credit's numeric coding: 1 = good, 2 = bad.
        assert_eq!(
            read_label(&batches, "code", Some("2")).unwrap(),
            [0, 1, 1, 0, 1, 1]
        );
        let e = read_label(&batches, "class", Some("Bad"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(r#"no row has the positive label "Bad""#), "{e}");
        assert!(e.contains("good, bad"), "{e}");
        let e = read_label(&batches, "code", Some("bad"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a number"), "{e}");
        let e = read_label(&batches, "gap", Some("bad"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("row 1: null"), "{e}");
    }

    #[test]
    fn features_convert_by_type_and_override() {
        let b = batch(vec![
            (
                "x",
                Arc::new(Int64Array::from(vec![Some(3), None, Some(5)])) as ArrayRef,
            ),
            (
                "c",
                Arc::new(StringArray::from(vec![Some("a"), None, Some("a")])),
            ),
            ("big", Arc::new(Float64Array::from(vec![1.0, 1e300, 2.0]))),
        ]);
        let batches = [b];
        let x = read_feature(&batches, "x", None).unwrap();
        assert_eq!(x.dtype, "INT64");
        let Raw::Numeric(v) = &x.raw else { panic!() };
        assert_eq!(v[0], 3.0);
        assert!(v[1].is_nan());
        let c = read_feature(&batches, "c", None).unwrap();
        let Raw::Categorical { ids, names } = &c.raw else {
            panic!()
        };
        assert_eq!(
            (ids.as_slice(), names.as_slice()),
            (&[0, NULL_ID, 0][..], &["a".to_string()][..])
        );
        let xc = read_feature(&batches, "x", Some(FeatureKind::Categorical)).unwrap();
        let Raw::Categorical { names, .. } = &xc.raw else {
            panic!()
        };
        assert_eq!(names, &["3", "5"]);
        let e = read_feature(&batches, "c", Some(FeatureKind::Numeric)).unwrap_err();
        assert!(
            e.to_string().contains(r#"feature column "c": as a number"#),
            "{e}"
        );
        let e = read_feature(&batches, "big", None).unwrap_err();
        assert!(
            e.to_string().contains("row 1: 1e300 does not fit in FP32"),
            "{e}"
        );
    }

    #[test]
    fn time_keys_order_floats_and_strings() {
        let b = batch(vec![
            (
                "f",
                Arc::new(Float64Array::from(vec![-2.5, 0.0, 1.5, -0.0])) as ArrayRef,
            ),
            (
                "s",
                Arc::new(StringArray::from(vec![
                    "2024-01-02T00:00:00",
                    "2024-01-01T00:00:00",
                    "2024-01-03",
                    "2023-12-31T23:59:59",
                ])),
            ),
        ]);
        let batches = [b];
        let f = read_time(&batches, "f").unwrap();
        let mut order: Vec<usize> = (0..4).collect();
        order.sort_by_key(|&i| f.keys[i]);
        assert_eq!(order, [0, 3, 1, 2]);
        let s = read_time(&batches, "s").unwrap();
        order.sort_by_key(|&i| s.keys[i]);
        assert_eq!(order, [3, 1, 0, 2]);
        assert_eq!(s.display(1), "2024-01-01T00:00:00");
        let two = read_time(&[batches[0].clone(), batches[0].clone()], "s").unwrap();
        assert_eq!(
            two.display(5),
            "2024-01-01T00:00:00",
            "row 1 of the second batch"
        );
        // A named zone prints as UTC with an offset.
        let ts = arrow_array::TimestampMicrosecondArray::from(vec![1_704_067_200_000_000])
            .with_timezone("UTC");
        let t = read_time(&[batch(vec![("t", Arc::new(ts) as ArrayRef)])], "t").unwrap();
        assert_eq!(t.display(0), "2024-01-01T00:00:00Z");
    }
}
