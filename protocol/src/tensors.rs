//! Requests to tensor-signature models: each graph input is sent by name and passed to the
//! backend in its own datatype (an `INT64` input stays `INT64`, strings stay strings). The
//! request is checked against the graph: input names, datatypes, ranks, fixed dimensions, and
//! one batch size across inputs. A column input declared `[-1, 1]` may be sent as `[N]`
//! (MLServer's `pd` content type sends columns that way).
//!
//! Records (KServe v1 `instances`) map to inputs when every input is a column: each record
//! names every column. A model with a single 2-D input also takes instances as lists.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::columns::{MAX_NESTING, bad, check_string, list};
use crate::json::{Scalar, fail, finish};
use crate::schema::{InputSpec, Schema, TensorInputs};
use crate::tensor::{DType, Tensor, TensorData};
use crate::v2::{OutputRequest, echo_id, select_outputs};
use crate::{DecodeError, Decoded, OutputSelection};

#[derive(serde::Deserialize)]
struct Request<'a> {
    #[serde(default, borrow)]
    id: Option<&'a RawValue>,
    #[serde(default)]
    parameters: Option<Params>,
    #[serde(borrow)]
    inputs: Vec<InputReq<'a>>,
    #[serde(default)]
    outputs: Option<Vec<OutputRequest>>,
}

#[derive(serde::Deserialize, Default)]
struct Params {
    #[serde(default)]
    timeout: Option<Scalar>,
    #[serde(default)]
    binary_data_output: Option<Scalar>,
    #[serde(default)]
    binary_data_size: Option<Scalar>,
}

#[derive(serde::Deserialize)]
struct InputReq<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    datatype: Cow<'a, str>,
    shape: Vec<i64>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
    #[serde(default)]
    parameters: Option<Params>,
}

/// Decodes an OIP request for a tensor-signature model; `tail` is the binary part.
pub(crate) fn decode_v2(
    schema: &Schema,
    ts: &TensorInputs,
    json: &[u8],
    mut tail: &[u8],
    binary_ext: bool,
) -> Result<Decoded, DecodeError> {
    let req: Request<'_> =
        serde_json::from_slice(json).map_err(|e| bad(format!("invalid request body: {e}")))?;
    let params = req.parameters.unwrap_or_default();
    let timeout = match params.timeout {
        None => None,
        Some(Scalar::U64(us)) if us > 0 => Some(Duration::from_micros(us)),
        Some(_) => {
            return Err(bad(
                "parameters.timeout must be a positive integer (microseconds)",
            ));
        }
    };
    let binary_output = match params.binary_data_output {
        None => false,
        Some(Scalar::Bool(b)) => b,
        Some(_) => return Err(bad("parameters.binary_data_output must be true or false")),
    };
    let id = match req.id {
        Some(raw) => echo_id(raw.get())?,
        None => None,
    };
    if req.inputs.is_empty() {
        return Err(bad("field `inputs` is empty"));
    }
    let mut slots: Vec<Option<Tensor>> = vec![None; ts.inputs.len()];
    for input in &req.inputs {
        let ix = ts.position(&input.name).ok_or_else(|| {
            bad(format!(
                "unknown input {:?}; this model's inputs are {}",
                input.name,
                list(ts.inputs.iter().map(|i| i.name.as_str()))
            ))
        })?;
        if slots[ix].is_some() {
            return Err(bad(format!("input {:?} is given twice", input.name)));
        }
        let spec = &ts.inputs[ix];
        if input.datatype != spec.dtype.oip_name() {
            return Err(bad(format!(
                "input {:?} has datatype {}; the model takes {}",
                input.name,
                input.datatype,
                spec.dtype.oip_name()
            )));
        }
        let shape = check_shape(spec, &input.shape)?;
        let count = shape.iter().try_fold(1usize, |a, d| a.checked_mul(*d));
        let count = count.ok_or_else(|| bad(format!("input {:?}: shape too large", input.name)))?;
        if ts.batch && shape[0] > schema.max_request_rows {
            return Err(bad(format!(
                "input {:?}: batch of {} rows exceeds this model's max_request_rows ({})",
                input.name, shape[0], schema.max_request_rows
            )));
        }
        let binary_size = match input.parameters.as_ref().and_then(|p| p.binary_data_size) {
            None => None,
            Some(Scalar::U64(n)) => Some(n as usize),
            Some(_) => {
                return Err(bad(format!(
                    "input {:?}: parameters.binary_data_size must be a byte count",
                    input.name
                )));
            }
        };
        let data = match (input.data, binary_size) {
            (Some(_), Some(_)) => {
                return Err(bad(format!(
                    "input {:?}: both data and binary_data_size given",
                    input.name
                )));
            }
            (None, None) => return Err(bad(format!("input {:?} has no data", input.name))),
            (Some(raw), None) => read_json(schema, spec, raw.get(), count)?,
            (None, Some(size)) => {
                if !binary_ext {
                    return Err(bad(format!(
                        "input {:?}: binary_data_size given without the Inference-Header-Content-Length header",
                        input.name
                    )));
                }
                if size > tail.len() {
                    return Err(bad(format!(
                        "input {:?}: binary_data_size {size} exceeds the {} bytes of binary data left",
                        input.name,
                        tail.len()
                    )));
                }
                let (bytes, rest) = tail.split_at(size);
                tail = rest;
                read_binary(spec, bytes)?
            }
        };
        if data.len() != count {
            return Err(bad(format!(
                "input {:?}: shape {:?} needs {count} values, data has {}",
                input.name,
                input.shape,
                data.len()
            )));
        }
        slots[ix] = Some(Tensor { data, shape });
    }
    if !tail.is_empty() {
        return Err(bad(format!(
            "{} bytes of binary data are not claimed by any input's binary_data_size",
            tail.len()
        )));
    }
    let tensors = complete(ts, slots)?;
    let rows = batch_rows(ts, &tensors)?;
    let outputs = select_outputs(schema, req.outputs.as_deref(), binary_output)?;
    Ok(Decoded {
        input: Vec::new(),
        tensors,
        rows,
        id,
        outputs,
        timeout,
        entities: None,
    })
}

/// Every graph input present, in graph order.
fn complete(ts: &TensorInputs, slots: Vec<Option<Tensor>>) -> Result<Vec<Tensor>, DecodeError> {
    slots
        .into_iter()
        .zip(&ts.inputs)
        .map(|(t, spec)| {
            t.ok_or_else(|| {
                bad(format!(
                    "missing input {:?} ({} {:?}); this model's inputs are {}",
                    spec.name,
                    spec.dtype.oip_name(),
                    spec.shape,
                    list(ts.inputs.iter().map(|i| i.name.as_str()))
                ))
            })
        })
        .collect()
}

/// The request's batch size: dimension 0, the same for every input. A graph without a batch
/// dimension takes one request at a time (1 "row").
fn batch_rows(ts: &TensorInputs, tensors: &[Tensor]) -> Result<usize, DecodeError> {
    if !ts.batch {
        return Ok(1);
    }
    let rows = tensors[0].shape[0];
    if let Some((t, spec)) = tensors
        .iter()
        .zip(&ts.inputs)
        .find(|(t, _)| t.shape[0] != rows)
    {
        return Err(bad(format!(
            "inputs disagree on the batch dimension: {:?} has {rows} rows, {:?} has {}",
            ts.inputs[0].name, spec.name, t.shape[0]
        )));
    }
    if rows == 0 {
        return Err(bad("empty batch: the request has 0 rows"));
    }
    Ok(rows)
}

/// The request's shape, checked against the declared one: same rank (a `[-1, 1]` column may
/// come as `[N]`), fixed dimensions equal, no negative dimensions.
fn check_shape(spec: &InputSpec, shape: &[i64]) -> Result<Vec<usize>, DecodeError> {
    let name = &spec.name;
    if let Some(d) = shape.iter().find(|d| **d < 0) {
        return Err(bad(format!(
            "input {name:?}: shape dimension {d} is negative"
        )));
    }
    let mut dims: Vec<usize> = shape.iter().map(|d| *d as usize).collect();
    if spec.shape.len() == 2 && spec.shape[1] == 1 && dims.len() == 1 {
        dims.push(1);
    }
    if dims.len() != spec.shape.len() {
        return Err(bad(format!(
            "input {name:?} has shape {shape:?} (rank {}); the model takes rank {} {:?}",
            shape.len(),
            spec.shape.len(),
            spec.shape
        )));
    }
    for (i, (got, want)) in dims.iter().zip(&spec.shape).enumerate() {
        if *want >= 0 && *got as i64 != *want {
            return Err(bad(format!(
                "input {name:?}: dimension {i} is {got}; the model fixes it at {want} (shape {:?})",
                spec.shape
            )));
        }
    }
    Ok(dims)
}

/// Reads `data` (flat or nested row-major) into `spec`'s element type.
fn read_json(
    schema: &Schema,
    spec: &InputSpec,
    raw: &str,
    count: usize,
) -> Result<TensorData, DecodeError> {
    // Every JSON value takes at least a byte: a count past that is a lie, not a reservation.
    let mut out = TensorData::with_capacity(spec.dtype, count.min(raw.len()));
    let mut error = None;
    let mut de = serde_json::Deserializer::from_str(raw);
    let seed = Flat {
        out: &mut out,
        name: &spec.name,
        allow_missing: schema.allow_missing,
        depth: 0,
        error: &mut error,
    };
    let parsed = seed.deserialize(&mut de).and_then(|()| de.end());
    finish(parsed, error)?;
    Ok(out)
}

/// One JSON value pushed onto `out` (`data` arrays are flattened, up to [`MAX_NESTING`]).
struct Flat<'a> {
    out: &'a mut TensorData,
    name: &'a str,
    allow_missing: bool,
    depth: usize,
    error: &'a mut Option<DecodeError>,
}

impl Flat<'_> {
    fn wrong<E: de::Error>(self, got: &str) -> E {
        let msg = format!(
            "input {:?}: element {} is {got}; expected {}",
            self.name,
            self.out.len(),
            expected(self.out.dtype())
        );
        fail(self.error, bad(msg))
    }

    fn int<E: de::Error>(self, v: i128) -> Result<(), E> {
        macro_rules! put {
            ($vec:expr) => {
                match v.try_into() {
                    Ok(x) => $vec.push(x),
                    Err(_) => {
                        let msg = format!(
                            "input {:?}: element {} ({v}) is out of range for {}",
                            self.name,
                            self.out.len(),
                            self.out.dtype().oip_name()
                        );
                        return Err(fail(self.error, bad(msg)));
                    }
                }
            };
        }
        match self.out {
            TensorData::F32(o) => o.push(v as f32),
            TensorData::F64(o) => o.push(v as f64),
            TensorData::I8(o) => put!(o),
            TensorData::I16(o) => put!(o),
            TensorData::I32(o) => put!(o),
            TensorData::I64(o) => put!(o),
            TensorData::U8(o) => put!(o),
            TensorData::U16(o) => put!(o),
            TensorData::U32(o) => put!(o),
            TensorData::U64(o) => put!(o),
            TensorData::Bool(_) | TensorData::Str(_) => return Err(self.wrong("a number")),
        }
        Ok(())
    }
}

fn expected(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 | DType::F64 => "a number",
        DType::Bool => "true or false",
        DType::Str => "a string",
        _ => "an integer",
    }
}

impl<'de> DeserializeSeed<'de> for Flat<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Flat<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("tensor data")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.depth >= MAX_NESTING {
            let msg = format!(
                "input {:?}: data nested deeper than {MAX_NESTING}",
                self.name
            );
            return Err(fail(self.error, bad(msg)));
        }
        loop {
            let inner = Flat {
                out: &mut *self.out,
                name: self.name,
                allow_missing: self.allow_missing,
                depth: self.depth + 1,
                error: &mut *self.error,
            };
            if seq.next_element_seed(inner)?.is_none() {
                return Ok(());
            }
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.int(v.into())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.int(v.into())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        match self.out {
            TensorData::F32(o) => {
                let x = v as f32;
                if !x.is_finite() {
                    let msg = format!("input {:?}: {v} does not fit in FP32", self.name);
                    return Err(fail(self.error, bad(msg)));
                }
                o.push(x);
                Ok(())
            }
            TensorData::F64(o) => {
                o.push(v);
                Ok(())
            }
            TensorData::Bool(_) | TensorData::Str(_) => Err(self.wrong("a number")),
            // An integral float (`3.0`) is still an integer.
            _ if v.fract() == 0.0 && v.abs() < 1.8e19 => self.int(v as i128),
            _ => Err(self.wrong(&format!("{v}, not an integer"))),
        }
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        match self.out {
            TensorData::Bool(o) => {
                o.push(v);
                Ok(())
            }
            _ => Err(self.wrong("a boolean")),
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        match self.out {
            TensorData::Str(o) => {
                if let Err(e) = check_string(v) {
                    return Err(fail(self.error, e));
                }
                o.push(v.to_owned());
                Ok(())
            }
            _ => Err(self.wrong("a string")),
        }
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        match self.out {
            TensorData::F32(o) if self.allow_missing => o.push(f32::NAN),
            TensorData::F64(o) if self.allow_missing => o.push(f64::NAN),
            TensorData::F32(_) | TensorData::F64(_) => {
                let msg = format!(
                    "input {:?}: element {} is null; this model does not accept missing values",
                    self.name,
                    self.out.len()
                );
                return Err(fail(self.error, bad(msg)));
            }
            _ => return Err(self.wrong("null")),
        }
        Ok(())
    }
}

/// Raw little-endian elements of `spec`'s type (`BYTES`: 4-byte length, then the bytes).
fn read_binary(spec: &InputSpec, bytes: &[u8]) -> Result<TensorData, DecodeError> {
    let name = &spec.name;
    macro_rules! le {
        ($t:ty, $variant:ident) => {{
            const W: usize = std::mem::size_of::<$t>();
            if !bytes.len().is_multiple_of(W) {
                return Err(bad(format!(
                    "input {name:?}: {} bytes is not a whole number of {W}-byte {} elements",
                    bytes.len(),
                    spec.dtype.oip_name()
                )));
            }
            TensorData::$variant(
                bytes
                    .chunks_exact(W)
                    .map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk of W bytes")))
                    .collect(),
            )
        }};
    }
    Ok(match spec.dtype {
        DType::F32 => le!(f32, F32),
        DType::F64 => le!(f64, F64),
        DType::I8 => le!(i8, I8),
        DType::I16 => le!(i16, I16),
        DType::I32 => le!(i32, I32),
        DType::I64 => le!(i64, I64),
        DType::U8 => TensorData::U8(bytes.to_vec()),
        DType::U16 => le!(u16, U16),
        DType::U32 => le!(u32, U32),
        DType::U64 => le!(u64, U64),
        DType::Bool => TensorData::Bool(bytes.iter().map(|b| *b != 0).collect()),
        DType::Str => {
            let mut out = Vec::new();
            crate::binary::strings(name, bytes, |s| {
                out.push(s.to_owned());
                Ok(())
            })?;
            TensorData::Str(out)
        }
    })
}

/// KServe v1 `{"instances": [...]}` for a tensor-signature model: records naming every
/// column input, or (single 2-D input) lists of its row values.
pub(crate) fn decode_records(
    schema: &Schema,
    ts: &TensorInputs,
    body: &[u8],
) -> Result<Decoded, DecodeError> {
    #[derive(serde::Deserialize)]
    struct V1<'a> {
        #[serde(borrow)]
        instances: Vec<&'a RawValue>,
    }
    let req: V1<'_> =
        serde_json::from_slice(body).map_err(|e| bad(format!("invalid request body: {e}")))?;
    let rows = req.instances.len();
    if rows == 0 {
        return Err(bad("empty batch: the request has 0 rows"));
    }
    if rows > schema.max_request_rows {
        return Err(bad(format!(
            "batch of {rows} rows exceeds this model's max_request_rows ({})",
            schema.max_request_rows
        )));
    }
    if !ts.batch {
        return Err(bad(
            "records need a batch dimension, and this model's graph has no batch dimension (its first dimensions are fixed); send an Open Inference Protocol request (/v2/models/{model}/infer)",
        ));
    }
    let columns = ts.inputs.iter().all(|i| column_width(i).is_some());
    let tensors = if columns {
        records_to_columns(schema, ts, &req.instances)?
    } else if ts.inputs.len() == 1 && ts.inputs[0].shape.len() == 2 && ts.inputs[0].shape[1] > 0 {
        vec![lists_to_matrix(schema, &ts.inputs[0], &req.instances)?]
    } else {
        return Err(bad(format!(
            "records map to inputs only when every input is a column ([N] or [N, 1]) or the model has one [N, F] input; this model takes {}; send an Open Inference Protocol request",
            ts.inputs
                .iter()
                .map(|i| format!("{:?} {:?}", i.name, i.shape))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    Ok(Decoded {
        input: Vec::new(),
        tensors,
        rows,
        id: None,
        outputs: OutputSelection::All { binary: false },
        timeout: None,
        entities: None,
    })
}

/// `Some(())` when the input is a column: `[-1]` or `[-1, 1]`.
fn column_width(spec: &InputSpec) -> Option<()> {
    match spec.shape.as_slice() {
        [-1] | [-1, 1] => Some(()),
        _ => None,
    }
}

fn records_to_columns(
    schema: &Schema,
    ts: &TensorInputs,
    instances: &[&RawValue],
) -> Result<Vec<Tensor>, DecodeError> {
    let rows = instances.len();
    let mut cols: Vec<TensorData> = ts
        .inputs
        .iter()
        .map(|i| TensorData::with_capacity(i.dtype, rows))
        .collect();
    for (r, raw) in instances.iter().enumerate() {
        let record: std::collections::HashMap<Cow<'_, str>, &RawValue> =
            serde_json::from_str(raw.get()).map_err(|_| {
                bad(format!(
                    "instance {r} is not an object naming this model's columns ({})",
                    list(ts.inputs.iter().map(|i| i.name.as_str()))
                ))
            })?;
        if let Some(extra) = record.keys().find(|k| ts.position(k).is_none()) {
            return Err(bad(format!(
                "instance {r}: unknown column {extra:?}; this model's columns are {}",
                list(ts.inputs.iter().map(|i| i.name.as_str()))
            )));
        }
        for (spec, col) in ts.inputs.iter().zip(&mut cols) {
            let value = record
                .get(spec.name.as_str())
                .ok_or_else(|| bad(format!("instance {r}: column {:?} is missing", spec.name)))?;
            let before = col.len();
            let mut error = None;
            let mut de = serde_json::Deserializer::from_str(value.get());
            let seed = Flat {
                out: col,
                name: &spec.name,
                allow_missing: schema.allow_missing,
                // A column value is one scalar: no nesting.
                depth: MAX_NESTING,
                error: &mut error,
            };
            let parsed = seed.deserialize(&mut de).and_then(|()| de.end());
            finish(parsed, error)
                .map_err(|e| bad(format!("instance {r}: column {:?}: {e}", spec.name)))?;
            if col.len() != before + 1 {
                return Err(bad(format!(
                    "instance {r}: column {:?} must be one {}",
                    spec.name,
                    spec.dtype.oip_name()
                )));
            }
        }
    }
    Ok(cols
        .into_iter()
        .zip(&ts.inputs)
        .map(|(data, spec)| Tensor {
            data,
            shape: if spec.shape.len() == 2 {
                vec![rows, 1]
            } else {
                vec![rows]
            },
        })
        .collect())
}

fn lists_to_matrix(
    schema: &Schema,
    spec: &InputSpec,
    instances: &[&RawValue],
) -> Result<Tensor, DecodeError> {
    let rows = instances.len();
    let width = spec.shape[1] as usize;
    let mut data = TensorData::with_capacity(spec.dtype, rows.saturating_mul(width));
    for (r, raw) in instances.iter().enumerate() {
        let before = data.len();
        let mut error = None;
        let mut de = serde_json::Deserializer::from_str(raw.get());
        let seed = Flat {
            out: &mut data,
            name: &spec.name,
            allow_missing: schema.allow_missing,
            depth: MAX_NESTING - 1,
            error: &mut error,
        };
        let parsed = seed.deserialize(&mut de).and_then(|()| de.end());
        finish(parsed, error).map_err(|e| bad(format!("instance {r}: {e}")))?;
        if data.len() != before + width {
            return Err(bad(format!(
                "instance {r} has {} values; input {:?} takes {width} per row",
                data.len() - before,
                spec.name
            )));
        }
    }
    Ok(Tensor {
        data,
        shape: vec![rows, width],
    })
}
