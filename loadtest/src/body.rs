//! Request bodies, encoded once before the run into [`Prepared`] requests (a `Bytes` body and
//! prebuilt header values), so sending one costs reference-count increments only.
//!
//! Formats ([`Format`]):
//! * `tensor` — V2 JSON, one tensor `input [N, F]` in signature order, categorical features
//!   as vocabulary codes;
//! * `features` — V2 JSON, one input per feature (`[N]`, the feature's datatype; categorical
//!   as BYTES strings); with an entity key, an INT64 key input and only the features the
//!   dataset has (the server reads the rest from its online store);
//! * `binary` — the tensor as raw little-endian FP32 after a JSON header
//!   (`Inference-Header-Content-Length`, `parameters.binary_data_size`);
//! * `records` — KServe v1 `{"instances": [{feature: value, …}]}` for `/v1/models/{m}:predict`
//!   (entity-keyed too).

use std::io::Write;

use bytes::Bytes;
use hyper::header::HeaderValue;
use vane_registry::{FeatureKind, FeatureSpec};

use crate::control::ModelMeta;
use crate::dataset::{Dataset, KeyValues, Values};
use crate::error::LoadtestError;

/// The request body format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// V2 JSON tensor `input [N, F]` (categorical features as vocabulary codes).
    Tensor,
    /// V2 JSON, one input per named feature (categorical features as strings).
    Features,
    /// V2 binary tensor extension (raw FP32 after a JSON header).
    Binary,
    /// KServe v1 records on `/v1/models/{m}:predict`.
    Records,
}

/// One ready-to-send request.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub body: Bytes,
    /// `Inference-Header-Content-Length` (binary format).
    pub json_len: Option<HeaderValue>,
    /// `x-vane-route-key`.
    pub route_key: Option<HeaderValue>,
    /// The dataset row this request starts at, and how many rows it carries.
    pub first_row: u32,
    pub rows: u32,
}

impl Prepared {
    /// A fixed body (e.g. `--body FILE`).
    pub fn fixed(body: Bytes) -> Prepared {
        Prepared {
            body,
            json_len: None,
            route_key: None,
            first_row: 0,
            rows: 1,
        }
    }
}

fn data_err(msg: String) -> LoadtestError {
    LoadtestError::Data(msg)
}

fn write_num(out: &mut Vec<u8>, v: f64) {
    if v.is_nan() {
        out.extend_from_slice(b"null");
    } else if v.fract() == 0.0 && v.abs() < 9e15 {
        let _ = write!(out, "{}", v as i64);
    } else {
        let _ = write!(out, "{v}");
    }
}

/// Row `r`'s join-key value: an integer, or a JSON string.
fn write_key(out: &mut Vec<u8>, values: &KeyValues, r: usize) {
    match values {
        KeyValues::Int(ids) => {
            let _ = write!(out, "{}", ids[r]);
        }
        KeyValues::Str(keys) => write_str(out, &keys[r]),
    }
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(&mut *out, s);
}

/// The value of feature `f` at row `r` as a tensor number (categorical → vocabulary code).
fn tensor_value(f: &FeatureSpec, v: &Values, r: usize) -> Result<f64, LoadtestError> {
    match v {
        Values::Num(x) => Ok(x[r]),
        Values::Text(x) => match &x[r] {
            None => Ok(f64::NAN),
            Some(s) => f
                .vocab
                .as_ref()
                .and_then(|voc| voc.iter().position(|c| c == s))
                .map(|c| c as f64)
                .ok_or_else(|| {
                    data_err(format!(
                        "row {r}: feature {:?}: unknown category {s:?}",
                        f.name
                    ))
                }),
        },
    }
}

/// The value of a categorical feature as its category string.
fn category<'a>(
    f: &'a FeatureSpec,
    v: &'a Values,
    r: usize,
) -> Result<Option<&'a str>, LoadtestError> {
    match v {
        Values::Text(x) => Ok(x[r].as_deref()),
        Values::Num(x) => {
            let code = x[r];
            if code.is_nan() {
                return Ok(None);
            }
            f.vocab
                .as_ref()
                .and_then(|voc| {
                    (code >= 0.0 && code.fract() == 0.0)
                        .then(|| voc.get(code as usize))
                        .flatten()
                })
                .map(|s| Some(s.as_str()))
                .ok_or_else(|| {
                    data_err(format!(
                        "row {r}: feature {:?}: code {code} is outside its vocabulary",
                        f.name
                    ))
                })
        }
    }
}

fn is_int(dtype: &str) -> bool {
    dtype.starts_with("INT") || dtype.starts_with("UINT")
}

/// A numeric feature's value checked against its datatype.
fn feature_number(f: &FeatureSpec, v: f64, r: usize) -> Result<f64, LoadtestError> {
    if is_int(&f.dtype) && v.is_finite() && v.fract() != 0.0 {
        return Err(data_err(format!(
            "row {r}: feature {:?} is {} but the value {v} is not an integer",
            f.name, f.dtype
        )));
    }
    Ok(v)
}

fn write_feature_value(
    out: &mut Vec<u8>,
    f: &FeatureSpec,
    v: &Values,
    r: usize,
) -> Result<(), LoadtestError> {
    match f.kind {
        FeatureKind::Categorical => match category(f, v, r)? {
            Some(s) => write_str(out, s),
            None => out.extend_from_slice(b"null"),
        },
        FeatureKind::Numeric => {
            let x = tensor_value(f, v, r)?;
            write_num(out, feature_number(f, x, r)?);
        }
    }
    Ok(())
}

/// Encodes the dataset in chunks of `rows_per_request` rows.
pub fn encode_all(
    format: Format,
    meta: &ModelMeta,
    ds: &Dataset,
    rows_per_request: usize,
) -> Result<Vec<Prepared>, LoadtestError> {
    let per = rows_per_request.max(1);
    if !ds.entity.is_empty() && matches!(format, Format::Tensor | Format::Binary) {
        return Err(data_err(
            "entity-keyed requests need --format features or records (a tensor must carry every feature)".into(),
        ));
    }
    let width = meta.features.len();
    if matches!(format, Format::Tensor | Format::Binary) && ds.features.len() != width {
        return Err(data_err(format!(
            "the tensor format needs all {width} features; the dataset has {}",
            ds.features.len()
        )));
    }
    let mut out = Vec::with_capacity(ds.rows.div_ceil(per));
    let mut start = 0;
    while start < ds.rows {
        let n = per.min(ds.rows - start);
        let rows = start..start + n;
        let mut buf = Vec::with_capacity(64 + n * width * 10);
        let mut json_len = None;
        match format {
            Format::Tensor => {
                let _ = write!(buf, "{{\"inputs\":[{{\"name\":");
                write_str(&mut buf, &meta.tensor_name);
                let _ = write!(
                    buf,
                    ",\"shape\":[{n},{width}],\"datatype\":\"FP32\",\"data\":["
                );
                for (i, r) in rows.clone().enumerate() {
                    for (j, (f, v)) in ds.features.iter().enumerate() {
                        if i + j > 0 {
                            buf.push(b',');
                        }
                        write_num(&mut buf, tensor_value(f, v, r)?);
                    }
                }
                buf.extend_from_slice(b"]}]}");
            }
            Format::Binary => {
                let mut header = Vec::new();
                let _ = write!(header, "{{\"inputs\":[{{\"name\":");
                write_str(&mut header, &meta.tensor_name);
                let _ = write!(
                    header,
                    ",\"shape\":[{n},{width}],\"datatype\":\"FP32\",\"parameters\":{{\"binary_data_size\":{}}}}}]}}",
                    n * width * 4
                );
                json_len = Some(HeaderValue::from(header.len()));
                buf = header;
                for r in rows.clone() {
                    for (f, v) in &ds.features {
                        buf.extend_from_slice(&(tensor_value(f, v, r)? as f32).to_le_bytes());
                    }
                }
            }
            Format::Features => {
                buf.extend_from_slice(b"{\"inputs\":[");
                let mut first = true;
                for (key, values) in &ds.entity {
                    if !first {
                        buf.push(b',');
                    }
                    buf.extend_from_slice(b"{\"name\":");
                    write_str(&mut buf, key);
                    let datatype = match values {
                        KeyValues::Int(_) => "INT64",
                        KeyValues::Str(_) => "BYTES",
                    };
                    let _ = write!(
                        buf,
                        ",\"shape\":[{n}],\"datatype\":\"{datatype}\",\"data\":["
                    );
                    for (i, r) in rows.clone().enumerate() {
                        if i > 0 {
                            buf.push(b',');
                        }
                        write_key(&mut buf, values, r);
                    }
                    buf.extend_from_slice(b"]}");
                    first = false;
                }
                for (f, v) in &ds.features {
                    if !first {
                        buf.push(b',');
                    }
                    first = false;
                    buf.extend_from_slice(b"{\"name\":");
                    write_str(&mut buf, &f.name);
                    let _ = write!(buf, ",\"shape\":[{n}],\"datatype\":");
                    write_str(&mut buf, &f.dtype);
                    buf.extend_from_slice(b",\"data\":[");
                    for (i, r) in rows.clone().enumerate() {
                        if i > 0 {
                            buf.push(b',');
                        }
                        write_feature_value(&mut buf, f, v, r)?;
                    }
                    buf.extend_from_slice(b"]}");
                }
                buf.extend_from_slice(b"]}");
            }
            Format::Records => {
                buf.extend_from_slice(b"{\"instances\":[");
                for (i, r) in rows.clone().enumerate() {
                    if i > 0 {
                        buf.push(b',');
                    }
                    buf.push(b'{');
                    let mut first = true;
                    for (key, values) in &ds.entity {
                        if !first {
                            buf.push(b',');
                        }
                        write_str(&mut buf, key);
                        buf.push(b':');
                        write_key(&mut buf, values, r);
                        first = false;
                    }
                    for (f, v) in &ds.features {
                        if !first {
                            buf.push(b',');
                        }
                        first = false;
                        write_str(&mut buf, &f.name);
                        buf.push(b':');
                        write_feature_value(&mut buf, f, v, r)?;
                    }
                    buf.push(b'}');
                }
                buf.extend_from_slice(b"]}");
            }
        }
        let route_key = match &ds.route_keys {
            Some(keys) => Some(HeaderValue::from_str(&keys[start]).map_err(|_| {
                data_err(format!(
                    "row {start}: route key {:?} is not a valid header value",
                    keys[start]
                ))
            })?),
            None => None,
        };
        out.push(Prepared {
            body: Bytes::from(buf),
            json_len,
            route_key,
            first_row: start as u32,
            rows: n as u32,
        });
        start += n;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn meta() -> ModelMeta {
        ModelMeta {
            name: "m".into(),
            tensor_name: "input".into(),
            features: vec![
                FeatureSpec::numeric("income", "FP32"),
                FeatureSpec::numeric("count", "INT64"),
                FeatureSpec::categorical("term", ["36", "60"]),
            ],
            version: None,
        }
    }

    fn ds() -> Dataset {
        let m = meta();
        Dataset {
            rows: 3,
            features: vec![
                (m.features[0].clone(), Values::Num(vec![1.5, 2.0, f64::NAN])),
                (m.features[1].clone(), Values::Num(vec![3.0, 4.0, 5.0])),
                (
                    m.features[2].clone(),
                    Values::Text(vec![
                        Some("60".into()),
                        Some("36".into()),
                        Some("60".into()),
                    ]),
                ),
            ],
            entity: Vec::new(),
            route_keys: Some(vec!["a".into(), "b".into(), "c".into()]),
        }
    }

    fn json_of(p: &Prepared) -> Value {
        serde_json::from_slice(&p.body).unwrap()
    }

    #[test]
    fn tensor_bodies_carry_codes_in_signature_order() {
        let p = encode_all(Format::Tensor, &meta(), &ds(), 2).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(
            json_of(&p[0]),
            json!({"inputs": [{"name": "input", "shape": [2, 3], "datatype": "FP32", "data": [1.5, 3, 1, 2, 4, 0]}]})
        );
        assert_eq!((p[1].first_row, p[1].rows), (2, 1));
        assert_eq!(json_of(&p[1])["inputs"][0]["data"], json!([null, 5, 1]));
        assert_eq!(p[1].route_key.as_ref().unwrap(), "c");
    }

    #[test]
    fn feature_and_record_bodies_name_features() {
        let p = encode_all(Format::Features, &meta(), &ds(), 3).unwrap();
        assert_eq!(
            json_of(&p[0]),
            json!({"inputs": [
                {"name": "income", "shape": [3], "datatype": "FP32", "data": [1.5, 2, null]},
                {"name": "count", "shape": [3], "datatype": "INT64", "data": [3, 4, 5]},
                {"name": "term", "shape": [3], "datatype": "BYTES", "data": ["60", "36", "60"]},
            ]})
        );
        let mut keyed = ds();
        keyed.entity = vec![("applicant_id".into(), KeyValues::Int(vec![7, 8, 9]))];
        keyed.features.truncate(1);
        let p = encode_all(Format::Records, &meta(), &keyed, 2).unwrap();
        assert_eq!(
            json_of(&p[0]),
            json!({"instances": [{"applicant_id": 7, "income": 1.5}, {"applicant_id": 8, "income": 2}]})
        );
        let p = encode_all(Format::Features, &meta(), &keyed, 1).unwrap();
        assert_eq!(
            json_of(&p[0])["inputs"][0],
            json!({"name": "applicant_id", "shape": [1], "datatype": "INT64", "data": [7]})
        );
        assert!(encode_all(Format::Tensor, &meta(), &keyed, 1).is_err());
        // A composite key: every key, each in its type.
        keyed.entity.push((
            "merchant".into(),
            KeyValues::Str(vec!["a\"b".into(), "c".into(), "d".into()]),
        ));
        let p = encode_all(Format::Records, &meta(), &keyed, 1).unwrap();
        assert_eq!(
            json_of(&p[1]),
            json!({"instances": [{"applicant_id": 8, "merchant": "c", "income": 2}]})
        );
        let p = encode_all(Format::Features, &meta(), &keyed, 2).unwrap();
        assert_eq!(
            json_of(&p[0])["inputs"][1],
            json!({"name": "merchant", "shape": [2], "datatype": "BYTES", "data": ["a\"b", "c"]})
        );
        let mut bad = ds();
        bad.features[1].1 = Values::Num(vec![3.5, 4.0, 5.0]);
        assert!(
            encode_all(Format::Features, &meta(), &bad, 1)
                .unwrap_err()
                .to_string()
                .contains("not an integer")
        );
    }

    #[test]
    fn binary_bodies_split_at_the_header_length() {
        let p = encode_all(Format::Binary, &meta(), &ds(), 2).unwrap();
        let n: usize = p[0]
            .json_len
            .as_ref()
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let (head, tail) = p[0].body.split_at(n);
        let head: Value = serde_json::from_slice(head).unwrap();
        assert_eq!(
            head["inputs"][0]["parameters"]["binary_data_size"],
            json!(24)
        );
        let vals: Vec<f32> = tail
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(vals, vec![1.5, 3.0, 1.0, 2.0, 4.0, 0.0]);
    }
}
