//! The decoder as it was before the one-pass rewrite (two passes through `serde_json` trees
//! and a flat intermediate), kept as the oracle the new decoder is checked against.
#![allow(dead_code, clippy::all)]

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde_json::{Map, Value};
use vane_registry::FeatureKind;

use vane_protocol::{DecodeError as ApiError, Schema as LoadedModel};

/// A decoded request, ready for the batcher.
#[derive(Debug)]
pub struct Decoded {
    /// Row-major `rows * width` model input.
    pub input: Vec<f32>,
    pub rows: usize,
    pub id: Option<String>,
    /// Indices into the model's outputs to return (all when the request names none).
    pub outputs: Vec<usize>,
    /// From `parameters.timeout` (microseconds).
    pub timeout: Option<Duration>,
    /// Per entry of `outputs`: returned in the binary part instead of JSON.
    pub binary: Vec<bool>,
    /// Set when the request names entities whose features come from the online store.
    pub entities: Option<EntityRequest>,
}

/// The entity ids of an entity-keyed request and which values the client supplied; the rest
/// of the online views' columns are filled from the online store before batching.
#[derive(Debug)]
pub struct EntityRequest {
    pub ids: Vec<i64>,
    /// `rows × width`: true where the client supplied the value.
    pub provided: Vec<bool>,
}

/// Columns of `m` an entity-keyed request may leave to the online store.
fn online_columns(m: &LoadedModel) -> Vec<bool> {
    let mut cols = vec![false; m.signature.width()];
    if let Some(online) = &m.signature.online {
        for f in online.views.iter().flat_map(|v| &v.features) {
            if let Some(c) = m.signature.position(f) {
                cols[c] = true;
            }
        }
    }
    cols
}

/// An entity id from JSON: an integer (or an integral float).
fn entity_id(v: f64, what: impl Fn() -> String) -> Result<i64, ApiError> {
    if v.is_nan() || v.fract() != 0.0 || v.abs() > 9.007_199_254_740_992e15 {
        return Err(bad(format!("{}: {v} is not an integer entity id", what())));
    }
    Ok(v as i64)
}

// ---------------------------------------------------------------------------------------------
// JSON shapes

// Names borrow from the body where they can (no escapes), saving allocations per request.
#[derive(Deserialize)]
struct InferRequestJson<'a> {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
    #[serde(borrow)]
    inputs: Vec<InputJson<'a>>,
    #[serde(default)]
    outputs: Option<Vec<OutputRequestJson>>,
}

#[derive(Deserialize)]
struct InputJson<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    shape: Vec<i64>,
    #[serde(borrow)]
    datatype: Cow<'a, str>,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
    /// Absent when the values travel in the binary part (`binary_data_size`).
    #[serde(default)]
    data: Flat,
}

#[derive(Deserialize)]
struct OutputRequestJson {
    name: String,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
}

/// `data` flattened (nested arrays are row-major) into one typed vector.
#[derive(Debug, Default)]
pub struct Flat {
    kind: Kind,
    nums: Vec<f64>,
    strs: Vec<String>,
    bools: Vec<bool>,
    len: usize,
    /// First element written as a float literal (matters for integer datatypes).
    float_at: Option<usize>,
    /// First `null`.
    null_at: Option<usize>,
    /// First element whose JSON type differs from the first element's.
    conflict: Option<(usize, &'static str)>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Kind {
    #[default]
    Empty,
    Num,
    Str,
    Bool,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Empty => "nothing",
            Kind::Num => "numbers",
            Kind::Str => "strings",
            Kind::Bool => "booleans",
        }
    }
}

const MAX_NESTING: usize = 32;

/// Longest string accepted in `data` (a category name), in bytes.
pub const MAX_STRING_BYTES: usize = 64 << 10;

thread_local! {
    /// Values the request being decoded on this thread may still carry: set from
    /// `max_request_rows` before parsing, so an oversized request fails while it is parsed,
    /// before its values are allocated.
    static VALUE_BUDGET: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

/// Sets this thread's value budget for one decode; restores "unlimited" when dropped.
struct ValueBudget;

impl ValueBudget {
    fn set(values: usize) -> Self {
        VALUE_BUDGET.with(|b| b.set(values));
        ValueBudget
    }
}

impl Drop for ValueBudget {
    fn drop(&mut self) {
        VALUE_BUDGET.with(|b| b.set(usize::MAX));
    }
}

/// Spends one value of the budget; fails once it is exhausted.
fn spend<E: de::Error>() -> Result<(), E> {
    VALUE_BUDGET.with(|b| match b.get() {
        0 => Err(E::custom(
            "the request carries more values than max_request_rows rows of this model's inputs",
        )),
        n => {
            b.set(n - 1);
            Ok(())
        }
    })
}

fn check_string<E: de::Error>(v: &str) -> Result<(), E> {
    if v.len() > MAX_STRING_BYTES {
        return Err(E::custom(format!(
            "a string in data has {} bytes; at most {MAX_STRING_BYTES} are accepted",
            v.len()
        )));
    }
    Ok(())
}

impl Flat {
    fn claim(&mut self, k: Kind, what: &'static str) -> bool {
        let i = self.len;
        self.len += 1;
        if self.conflict.is_some() {
            return false;
        }
        if self.kind == Kind::Empty {
            // One allocation covers a typical tabular row instead of four doublings.
            match k {
                Kind::Num => self.nums.reserve(32),
                Kind::Str => self.strs.reserve(8),
                Kind::Bool => self.bools.reserve(32),
                Kind::Empty => {}
            }
            // Leading nulls are numeric (missing values).
            self.kind = k;
            if k != Kind::Num && !self.nums.is_empty() {
                self.conflict = Some((i, what));
                return false;
            }
            return true;
        }
        if self.kind != k {
            self.conflict = Some((i, what));
            return false;
        }
        true
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

struct FlatSeed<'a> {
    flat: &'a mut Flat,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for FlatSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FlatSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array (possibly nested) of numbers, strings or booleans")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.depth >= MAX_NESTING {
            return Err(de::Error::custom("data is nested too deeply"));
        }
        while seq
            .next_element_seed(FlatSeed {
                flat: &mut *self.flat,
                depth: self.depth + 1,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        spend()?;
        if self.flat.claim(Kind::Num, "a number") {
            self.flat.nums.push(v as f64);
        }
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        spend()?;
        if self.flat.claim(Kind::Num, "a number") {
            self.flat.nums.push(v as f64);
        }
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        spend()?;
        let i = self.flat.len;
        if self.flat.claim(Kind::Num, "a number") {
            self.flat.float_at.get_or_insert(i);
            self.flat.nums.push(v);
        }
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        spend()?;
        if self.flat.claim(Kind::Bool, "a boolean") {
            self.flat.bools.push(v);
        }
        Ok(())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        spend()?;
        check_string(v)?;
        if self.flat.claim(Kind::Str, "a string") {
            self.flat.strs.push(v.to_owned());
        }
        Ok(())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<(), E> {
        spend()?;
        check_string(&v)?;
        if self.flat.claim(Kind::Str, "a string") {
            self.flat.strs.push(v);
        }
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        spend()?;
        let i = self.flat.len;
        let k = if self.flat.kind == Kind::Empty {
            Kind::Empty
        } else {
            self.flat.kind
        };
        // A null takes the kind of its column; only numeric columns can hold it (as NaN).
        if k == Kind::Empty || k == Kind::Num {
            self.flat.len += 1;
            if self.flat.conflict.is_none() {
                self.flat.null_at.get_or_insert(i);
                self.flat.nums.push(f64::NAN);
            }
        } else {
            self.flat.len += 1;
            self.flat.null_at.get_or_insert(i);
            self.flat.conflict.get_or_insert((i, "null"));
        }
        Ok(())
    }

    fn visit_map<A: de::MapAccess<'de>>(self, _map: A) -> Result<(), A::Error> {
        Err(de::Error::custom(
            "data must hold numbers, strings or booleans, not objects",
        ))
    }
}

impl<'de> Deserialize<'de> for Flat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut flat = Flat::default();
        FlatSeed {
            flat: &mut flat,
            depth: 0,
        }
        .deserialize(d)?;
        if flat.kind == Kind::Empty && !flat.nums.is_empty() {
            flat.kind = Kind::Num; // all nulls
        }
        Ok(flat)
    }
}

// ---------------------------------------------------------------------------------------------
// OIP decoding

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(msg.into())
}

/// Parses and validates an OIP request against `m`'s signature. With the binary tensor
/// extension, `json_len` (the `Inference-Header-Content-Length` header) splits `body` into the
/// JSON header and the concatenated raw tensors of the inputs that declare
/// `parameters.binary_data_size`, in input order.
pub fn decode_infer(
    m: &LoadedModel,
    body: &[u8],
    json_len: Option<usize>,
) -> Result<Decoded, ApiError> {
    let (json, mut tail) = match json_len {
        None => (body, &[][..]),
        Some(n) if n <= body.len() => body.split_at(n),
        Some(n) => {
            return Err(bad(format!(
                "Inference-Header-Content-Length is {n} but the body has {} bytes",
                body.len()
            )));
        }
    };
    // Every input together: at most max_request_rows rows of every feature, plus an entity key.
    let _budget = ValueBudget::set(m.max_request_rows.saturating_mul(m.signature.width() + 1));
    let mut req: InferRequestJson =
        serde_json::from_slice(json).map_err(|e| bad(format!("invalid request body: {e}")))?;
    let id = match req.id.take() {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => return Err(bad("field `id` must be a string")),
    };
    let mut timeout = None;
    let mut binary_output = false;
    if let Some(params) = &req.parameters {
        for (k, v) in params {
            match k.as_str() {
                "timeout" => {
                    let us = v.as_u64().filter(|us| *us > 0).ok_or_else(|| {
                        bad("parameters.timeout must be a positive integer (microseconds)")
                    })?;
                    timeout = Some(Duration::from_micros(us));
                }
                "binary_data_output" => {
                    binary_output = v.as_bool().ok_or_else(|| {
                        bad("parameters.binary_data_output must be true or false")
                    })?;
                }
                // content_type ("np", "pd"), headers, and anything else: informational.
                _ => {}
            }
        }
    }
    if req.inputs.is_empty() {
        return Err(bad("field `inputs` is empty"));
    }
    for input in &mut req.inputs {
        if let Some(d) = input.shape.iter().find(|d| **d < 0) {
            return Err(bad(format!(
                "input {:?}: shape {:?} has negative dimension {d}",
                input.name, input.shape
            )));
        }
        let size = match input
            .parameters
            .as_ref()
            .and_then(|p| p.get("binary_data_size"))
        {
            None => {
                if input.data.is_empty()
                    && input.data.kind == Kind::Empty
                    && !input.shape.contains(&0)
                {
                    return Err(bad(format!("input {:?} has no data", input.name)));
                }
                continue;
            }
            Some(v) => v.as_u64().ok_or_else(|| {
                bad(format!(
                    "input {:?}: parameters.binary_data_size must be a byte count",
                    input.name
                ))
            })? as usize,
        };
        if json_len.is_none() {
            return Err(bad(format!(
                "input {:?}: binary_data_size given without the Inference-Header-Content-Length header",
                input.name
            )));
        }
        if !input.data.is_empty() {
            return Err(bad(format!(
                "input {:?}: both data and binary_data_size given",
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
        input.data = flat_from_binary(&input.name, &input.datatype, bytes)?;
    }
    if !tail.is_empty() {
        return Err(bad(format!(
            "{} bytes of binary data are not claimed by any input's binary_data_size",
            tail.len()
        )));
    }
    let (outputs, binary) = select_outputs(m, req.outputs.as_deref(), binary_output)?;
    let (input, rows, entities) =
        if req.inputs.len() == 1 && req.inputs[0].name == m.signature.tensor_name() {
            let (input, rows) = decode_tensor(m, &req.inputs[0])?;
            (input, rows, None)
        } else {
            decode_features(m, &req.inputs)?
        };
    check_rows(m, rows)?;
    Ok(Decoded {
        input,
        rows,
        id,
        outputs,
        timeout,
        binary,
        entities,
    })
}

/// Raw little-endian, row-major tensor bytes as a [`Flat`]; BYTES elements are each a 4-byte
/// little-endian length followed by the bytes.
fn flat_from_binary(name: &str, datatype: &str, bytes: &[u8]) -> Result<Flat, ApiError> {
    let mut f = Flat::default();
    macro_rules! numbers {
        ($t:ty) => {{
            const W: usize = std::mem::size_of::<$t>();
            if !bytes.len().is_multiple_of(W) {
                return Err(bad(format!(
                    "input {name:?}: {} bytes of {datatype} is not a whole number of {W}-byte elements",
                    bytes.len()
                )));
            }
            f.kind = Kind::Num;
            f.nums = bytes
                .chunks_exact(W)
                .map(|c| <$t>::from_le_bytes(c.try_into().unwrap_or_default()) as f64)
                .collect();
        }};
    }
    match datatype {
        "FP32" => numbers!(f32),
        "FP64" => numbers!(f64),
        "INT8" => numbers!(i8),
        "INT16" => numbers!(i16),
        "INT32" => numbers!(i32),
        "INT64" => numbers!(i64),
        "UINT8" => numbers!(u8),
        "UINT16" => numbers!(u16),
        "UINT32" => numbers!(u32),
        "UINT64" => numbers!(u64),
        "BOOL" => {
            f.kind = Kind::Bool;
            f.bools = bytes.iter().map(|b| *b != 0).collect();
        }
        "BYTES" => {
            f.kind = Kind::Str;
            let mut rest = bytes;
            while !rest.is_empty() {
                if rest.len() < 4 {
                    return Err(bad(format!(
                        "input {name:?}: truncated BYTES length prefix"
                    )));
                }
                let n = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                rest = &rest[4..];
                if n > rest.len() {
                    return Err(bad(format!(
                        "input {name:?}: BYTES element {} claims {n} bytes, {} left",
                        f.strs.len(),
                        rest.len()
                    )));
                }
                let s = std::str::from_utf8(&rest[..n]).map_err(|_| {
                    bad(format!(
                        "input {name:?}: BYTES element {} is not UTF-8",
                        f.strs.len()
                    ))
                })?;
                f.strs.push(s.to_owned());
                rest = &rest[n..];
            }
        }
        other => {
            return Err(bad(format!(
                "input {name:?}: datatype {other:?} is not supported in binary form"
            )));
        }
    }
    f.len = f.nums.len() + f.strs.len() + f.bools.len();
    // NaN in a binary float tensor is a missing value, as JSON null is.
    f.null_at = f.nums.iter().position(|v| v.is_nan());
    Ok(f)
}

fn check_rows(m: &LoadedModel, rows: usize) -> Result<(), ApiError> {
    if rows == 0 {
        return Err(bad("empty batch: the request has 0 rows"));
    }
    if rows > m.max_request_rows {
        return Err(bad(format!(
            "batch of {rows} rows exceeds this model's max_request_rows ({})",
            m.max_request_rows
        )));
    }
    Ok(())
}

fn select_outputs(
    m: &LoadedModel,
    req: Option<&[OutputRequestJson]>,
    binary_default: bool,
) -> Result<(Vec<usize>, Vec<bool>), ApiError> {
    let Some(req) = req.filter(|r| !r.is_empty()) else {
        return Ok((
            (0..m.outputs.len()).collect(),
            vec![binary_default; m.outputs.len()],
        ));
    };
    let mut out = Vec::with_capacity(req.len());
    let mut binary = Vec::with_capacity(req.len());
    for o in req {
        let ix = m
            .outputs
            .iter()
            .position(|meta| meta.name == o.name)
            .ok_or_else(|| {
                bad(format!(
                    "requested output {:?} does not exist; outputs are {}",
                    o.name,
                    list(m.outputs.iter().map(|x| x.name.as_str()))
                ))
            })?;
        let mut bin = binary_default;
        if let Some(p) = &o.parameters {
            if let Some(v) = p.get("binary_data") {
                bin = v.as_bool().ok_or_else(|| {
                    bad(format!(
                        "output {:?}: parameters.binary_data must be true or false",
                        o.name
                    ))
                })?;
            }
            if p.contains_key("classification") {
                return Err(bad(format!(
                    "output {:?}: the classification extension is not supported",
                    o.name
                )));
            }
        }
        if out.contains(&ix) {
            return Err(bad(format!("output {:?} is requested twice", o.name)));
        }
        out.push(ix);
        binary.push(bin);
    }
    Ok((out, binary))
}

fn list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let mut s = String::new();
    for (i, n) in names.enumerate() {
        if i == 8 {
            s.push_str(", …");
            break;
        }
        if i > 0 {
            s.push_str(", ");
        }
        let _ = write!(s, "{n:?}");
    }
    s
}

fn is_numeric_dtype(d: &str) -> bool {
    matches!(
        d,
        "FP32"
            | "FP64"
            | "FP16"
            | "INT8"
            | "INT16"
            | "INT32"
            | "INT64"
            | "UINT8"
            | "UINT16"
            | "UINT32"
            | "UINT64"
    )
}

fn is_int_dtype(d: &str) -> bool {
    d.starts_with("INT") || d.starts_with("UINT")
}

const KNOWN_DTYPES: &[&str] = &[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16",
    "FP32", "FP64", "BYTES",
];

fn check_dtype(input: &InputJson<'_>) -> Result<(), ApiError> {
    if KNOWN_DTYPES.contains(&&*input.datatype) {
        Ok(())
    } else {
        Err(bad(format!(
            "input {:?}: unknown datatype {:?}; expected one of {}",
            input.name,
            input.datatype,
            KNOWN_DTYPES.join(", ")
        )))
    }
}

/// Numbers of an input checked against its datatype; the i-th value as f64 (NaN = null).
fn numbers<'i>(input: &'i InputJson<'_>, allow_missing: bool) -> Result<&'i [f64], ApiError> {
    let f = &input.data;
    if let Some((i, what)) = f.conflict {
        return Err(bad(format!(
            "input {:?}: element {i} is {what} but earlier elements are {}",
            input.name,
            f.kind.name()
        )));
    }
    match f.kind {
        Kind::Num | Kind::Empty => {}
        k => {
            return Err(bad(format!(
                "input {:?}: datatype {} needs numbers, data holds {}",
                input.name,
                input.datatype,
                k.name()
            )));
        }
    }
    if let Some(i) = f.null_at
        && !allow_missing
    {
        return Err(bad(format!(
            "input {:?}: element {i} is null; this model does not accept missing values",
            input.name
        )));
    }
    if is_int_dtype(&input.datatype)
        && let Some(first) = f.float_at
        && let Some((i, v)) = f
            .nums
            .iter()
            .enumerate()
            .skip(first)
            .find(|(_, v)| v.fract() != 0.0)
    {
        return Err(bad(format!(
            "input {:?}: datatype {} but element {i} is {v}, not an integer",
            input.name, input.datatype
        )));
    }
    Ok(&f.nums)
}

/// f64 → f32 for the model, refusing what FP32 cannot hold.
fn to_f32(v: f64, what: impl Fn() -> String) -> Result<f32, ApiError> {
    if v.is_nan() {
        return Ok(f32::NAN); // a null the model accepts
    }
    let x = v as f32;
    if !x.is_finite() {
        return Err(bad(format!("{}: {v} does not fit in FP32", what())));
    }
    Ok(x)
}

fn code_of(
    m: &LoadedModel,
    col: usize,
    v: f64,
    what: impl Fn() -> String,
) -> Result<f32, ApiError> {
    let k = m.vocab[col].as_ref().map_or(0, |v| v.len());
    if v.is_nan() && m.allow_missing {
        // A missing category, as the online store passes it (the trainer's models read NaN
        // like their "unseen" code).
        return Ok(f32::NAN);
    }
    if v.is_nan() {
        return Err(bad(format!(
            "{}: null; categorical feature {:?} does not accept missing values",
            what(),
            m.signature.inputs[col].name
        )));
    }
    if v.fract() != 0.0 || v < 0.0 || v >= k as f64 {
        return Err(bad(format!(
            "{}: categorical code {v} out of range 0..{k} for feature {:?}",
            what(),
            m.signature.inputs[col].name
        )));
    }
    Ok(v as f32)
}

fn decode_tensor(m: &LoadedModel, input: &InputJson<'_>) -> Result<(Vec<f32>, usize), ApiError> {
    check_dtype(input)?;
    let width = m.signature.width();
    let name = &input.name;
    if !is_numeric_dtype(&input.datatype) {
        return Err(bad(format!(
            "input {name:?}: datatype {} not allowed; the model tensor takes FP32 (or another numeric type)",
            input.datatype
        )));
    }
    let rows = match input.shape.as_slice() {
        [n, f] if *f as usize == width => *n as usize,
        _ => {
            return Err(bad(format!(
                "input {name:?}: shape {:?} does not match the model tensor [N, {width}]",
                input.shape
            )));
        }
    };
    let expected = rows.saturating_mul(width);
    if input.data.len() != expected {
        return Err(bad(format!(
            "input {name:?}: shape {:?} needs {expected} values, data has {}",
            input.shape,
            input.data.len()
        )));
    }
    let nums = numbers(input, m.allow_missing)?;
    let mut out = Vec::with_capacity(expected);
    for (i, &v) in nums.iter().enumerate() {
        let (r, c) = (i / width, i % width);
        let what = || {
            format!(
                "input {name:?} element [{r}, {c}] (feature {:?})",
                m.signature.inputs[c].name
            )
        };
        let x = match m.signature.inputs[c].kind {
            FeatureKind::Categorical => code_of(m, c, v, what)?,
            _ => to_f32(v, what)?,
        };
        out.push(x);
    }
    Ok((out, rows))
}

type Features = (Vec<f32>, usize, Option<EntityRequest>);

/// Rows of a one-value-per-row input (`[N]` or `[N, 1]`), checked against its data and the
/// row count of the inputs seen before it (`rows`: count and the first input's name).
fn column_rows<'a>(
    input: &'a InputJson<'_>,
    unit: &str,
    rows: &mut Option<(usize, &'a str)>,
) -> Result<usize, ApiError> {
    let n = match input.shape.as_slice() {
        [n] | [n, 1] => *n as usize,
        _ => {
            return Err(bad(format!(
                "input {:?}: shape {:?} must be [N] or [N, 1] (one {unit} per row)",
                input.name, input.shape
            )));
        }
    };
    if input.data.len() != n {
        return Err(bad(format!(
            "input {:?}: shape {:?} needs {n} {unit}s, data has {}",
            input.name,
            input.shape,
            input.data.len()
        )));
    }
    match *rows {
        None => *rows = Some((n, &*input.name)),
        Some((r, first)) if r != n => {
            return Err(bad(format!(
                "input {:?} has {n} rows but input {first:?} has {r}",
                input.name
            )));
        }
        _ => {}
    }
    Ok(n)
}

fn decode_features(m: &LoadedModel, inputs: &[InputJson<'_>]) -> Result<Features, ApiError> {
    let sig = &m.signature;
    let width = sig.width();
    let mut rows: Option<(usize, &str)> = None;
    let mut seen = vec![false; width];
    let entity_key = sig.online.as_ref().map(|o| o.keys[0].name.as_str());
    let mut entity_input = None;
    for input in inputs {
        if Some(&*input.name) == entity_key {
            if entity_input.replace(input).is_some() {
                return Err(bad(format!("input {:?} is given twice", input.name)));
            }
            column_rows(input, "id", &mut rows)?;
            continue;
        }
        let Some(col) = sig.position(&input.name) else {
            return Err(bad(format!(
                "unknown input {:?}: send one tensor {:?} [N, {width}] or one input per feature ({})",
                input.name,
                sig.tensor_name(),
                list(sig.inputs.iter().map(|f| f.name.as_str()))
            )));
        };
        if std::mem::replace(&mut seen[col], true) {
            return Err(bad(format!("input {:?} is given twice", input.name)));
        }
        check_dtype(input)?;
        column_rows(input, "value", &mut rows)?;
    }
    // With an entity key, the online views' features may be left to the store.
    let fillable = if entity_input.is_some() {
        online_columns(m)
    } else {
        vec![false; width]
    };
    let missing: Vec<&str> = sig
        .inputs
        .iter()
        .zip(seen.iter().zip(&fillable))
        .filter(|(_, (s, f))| !**s && !**f)
        .map(|(f, _)| f.name.as_str())
        .collect();
    if !missing.is_empty() {
        let hint = match &sig.online {
            Some(o) if entity_input.is_none() => {
                format!(
                    " (or send {:?} to read the stored features)",
                    o.keys[0].name
                )
            }
            _ => String::new(),
        };
        return Err(bad(format!(
            "missing input for feature{} {}{hint}",
            if missing.len() > 1 { "s" } else { "" },
            list(missing.into_iter())
        )));
    }
    let rows = rows.map_or(0, |(r, _)| r);
    let entities = match entity_input {
        None => None,
        Some(input) => {
            let nums = numbers(input, false)?;
            let ids = nums
                .iter()
                .enumerate()
                .map(|(r, v)| entity_id(*v, || format!("input {:?} row {r}", input.name)))
                .collect::<Result<Vec<_>, _>>()?;
            let provided = (0..rows).flat_map(|_| seen.iter().copied()).collect();
            Some(EntityRequest { ids, provided })
        }
    };
    let mut out = vec![0f32; rows * width];
    for input in inputs {
        // The entity key is no feature column: its ids were taken above.
        let Some(col) = sig
            .position(&input.name)
            .filter(|_| Some(&*input.name) != entity_key)
        else {
            continue;
        };
        let feature = &sig.inputs[col];
        match feature.kind {
            FeatureKind::Numeric => {
                let vals: Vec<f64> = if input.datatype == "BOOL" {
                    if input.data.kind != Kind::Bool || input.data.conflict.is_some() {
                        return Err(bad(format!(
                            "input {:?}: datatype BOOL needs true/false values",
                            input.name
                        )));
                    }
                    input
                        .data
                        .bools
                        .iter()
                        .map(|b| f64::from(u8::from(*b)))
                        .collect()
                } else if is_numeric_dtype(&input.datatype) {
                    numbers(input, m.allow_missing)?.to_vec()
                } else {
                    return Err(bad(format!(
                        "input {:?}: feature is numeric, datatype {} is not",
                        input.name, input.datatype
                    )));
                };
                for (r, v) in vals.into_iter().enumerate() {
                    out[r * width + col] = to_f32(v, || format!("input {:?} row {r}", input.name))?;
                }
            }
            FeatureKind::Categorical => {
                if input.datatype != "BYTES" {
                    return Err(bad(format!(
                        "input {:?}: categorical feature needs datatype BYTES (strings), got {}",
                        input.name, input.datatype
                    )));
                }
                if let Some((i, what)) = input.data.conflict {
                    return Err(bad(format!(
                        "input {:?}: element {i} is {what}; categorical values must be strings",
                        input.name
                    )));
                }
                if input.data.kind != Kind::Str {
                    return Err(bad(format!(
                        "input {:?}: categorical values must be strings, data holds {}",
                        input.name,
                        input.data.kind.name()
                    )));
                }
                let vocab = m.vocab[col].as_ref();
                for (r, s) in input.data.strs.iter().enumerate() {
                    let code = vocab.and_then(|v| v.get(s.as_str())).ok_or_else(|| {
                        bad(format!(
                            "input {:?} row {r}: unknown category {s:?}; expected one of {}",
                            input.name,
                            list(feature.vocab.iter().flatten().map(String::as_str))
                        ))
                    })?;
                    out[r * width + col] = *code as f32;
                }
            }
        }
    }
    Ok((out, rows, entities))
}

// ---------------------------------------------------------------------------------------------
// v1 records

#[derive(Deserialize)]
struct V1Request {
    instances: Vec<Value>,
}

/// Decodes `{"instances": [...]}`: each instance an object keyed by feature name, or an
/// array of F values in signature order (categorical values as strings or codes).
pub fn decode_records(m: &LoadedModel, body: &[u8]) -> Result<Decoded, ApiError> {
    let req: V1Request =
        serde_json::from_slice(body).map_err(|e| bad(format!("invalid request body: {e}")))?;
    let sig = &m.signature;
    let width = sig.width();
    let rows = req.instances.len();
    check_rows(m, rows)?;
    let entity_key = sig.online.as_ref().map(|o| o.keys[0].name.as_str());
    let fillable = online_columns(m);
    let mut out = vec![0f32; rows * width];
    let mut ids = Vec::new();
    let mut provided = Vec::new();
    let mut keyed: Option<bool> = None;
    for (r, inst) in req.instances.iter().enumerate() {
        let row = &mut out[r * width..(r + 1) * width];
        match inst {
            Value::Object(obj) => {
                for k in obj.keys() {
                    if sig.position(k).is_none() && Some(k.as_str()) != entity_key {
                        return Err(bad(format!("instances[{r}]: unknown feature {k:?}")));
                    }
                }
                let id = match entity_key.and_then(|k| obj.get(k).map(|v| (k, v))) {
                    Some((k, v)) => Some(entity_id(v.as_f64().unwrap_or(f64::NAN), || {
                        format!("instances[{r}].{k}")
                    })?),
                    None => None,
                };
                if *keyed.get_or_insert(id.is_some()) != id.is_some() {
                    return Err(bad(format!(
                        "instances[{r}]: either every instance names {:?} or none does",
                        entity_key.unwrap_or_default()
                    )));
                }
                for (c, f) in sig.inputs.iter().enumerate() {
                    match obj.get(&f.name) {
                        Some(v) => {
                            row[c] =
                                record_value(m, c, v, || format!("instances[{r}].{}", f.name))?;
                            provided.push(true);
                        }
                        None if id.is_some() && fillable[c] => provided.push(false),
                        None => {
                            return Err(bad(format!(
                                "instances[{r}]: missing feature {:?}",
                                f.name
                            )));
                        }
                    }
                }
                ids.extend(id);
            }
            Value::Array(vals) => {
                if *keyed.get_or_insert(false) {
                    return Err(bad(format!(
                        "instances[{r}]: either every instance names {:?} or none does",
                        entity_key.unwrap_or_default()
                    )));
                }
                if vals.len() != width {
                    return Err(bad(format!(
                        "instances[{r}]: {} values, the model takes {width}",
                        vals.len()
                    )));
                }
                for (c, v) in vals.iter().enumerate() {
                    row[c] = record_value(m, c, v, || {
                        format!("instances[{r}][{c}] ({})", sig.inputs[c].name)
                    })?;
                }
            }
            _ => return Err(bad(format!("instances[{r}] must be an object or an array"))),
        }
    }
    let entities = (!ids.is_empty()).then_some(EntityRequest { ids, provided });
    Ok(Decoded {
        input: out,
        rows,
        id: None,
        outputs: (0..m.outputs.len()).collect(),
        timeout: None,
        binary: Vec::new(),
        entities,
    })
}

fn record_value(
    m: &LoadedModel,
    col: usize,
    v: &Value,
    what: impl Fn() -> String,
) -> Result<f32, ApiError> {
    let feature = &m.signature.inputs[col];
    match (feature.kind, v) {
        (FeatureKind::Categorical, Value::String(s)) => m.vocab[col]
            .as_ref()
            .and_then(|voc| voc.get(s.as_str()))
            .map(|c| *c as f32)
            .ok_or_else(|| {
                bad(format!(
                    "{}: unknown category {s:?}; expected one of {}",
                    what(),
                    list(feature.vocab.iter().flatten().map(String::as_str))
                ))
            }),
        (FeatureKind::Categorical, Value::Number(n)) => {
            code_of(m, col, n.as_f64().unwrap_or(f64::NAN), what)
        }
        (FeatureKind::Numeric, Value::Number(n)) => {
            to_f32(n.as_f64().unwrap_or(f64::INFINITY), what)
        }
        (FeatureKind::Numeric, Value::Bool(b)) => Ok(f32::from(u8::from(*b))),
        (_, Value::Null) if m.allow_missing => Ok(f32::NAN),
        (_, Value::Null) => Err(bad(format!(
            "{}: null; this model does not accept missing values",
            what()
        ))),
        (FeatureKind::Numeric, _) => Err(bad(format!("{}: expected a number", what()))),
        (FeatureKind::Categorical, _) => {
            Err(bad(format!("{}: expected a category string", what())))
        }
    }
}
