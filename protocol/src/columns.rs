//! Values → model input, shared by every decoder: each value is checked against its
//! input's datatype and its feature, and converted to the model's f32 as it is read.

use std::fmt::Write as _;

use vane_registry::FeatureKind;

use crate::schema::Schema;
use crate::{DecodeError, KeyColumn};

/// Longest string accepted in a request (a category name), in bytes.
pub const MAX_STRING_BYTES: usize = 64 << 10;

/// Deepest nesting of `data` arrays accepted.
pub(crate) const MAX_NESTING: usize = 32;

pub(crate) fn bad(msg: impl Into<String>) -> DecodeError {
    DecodeError(msg.into())
}

/// One scalar as read from the wire. A NaN number is a missing value, as `null` is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Val<'a> {
    Num(f64),
    Str(&'a str),
    Bool(bool),
    Null,
}

impl Val<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Val::Num(x) if x.is_nan() => "null",
            Val::Num(_) => "a number",
            Val::Str(_) => "a string",
            Val::Bool(_) => "a boolean",
            Val::Null => "null",
        }
    }
}

/// Wire datatypes of the Open Inference Protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wire {
    Bool,
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
    F16,
    F32,
    F64,
    Bytes,
}

const WIRE_NAMES: &str =
    "BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BYTES";

impl Wire {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "BOOL" => Wire::Bool,
            "UINT8" => Wire::U8,
            "UINT16" => Wire::U16,
            "UINT32" => Wire::U32,
            "UINT64" => Wire::U64,
            "INT8" => Wire::I8,
            "INT16" => Wire::I16,
            "INT32" => Wire::I32,
            "INT64" => Wire::I64,
            "FP16" => Wire::F16,
            "FP32" => Wire::F32,
            "FP64" => Wire::F64,
            "BYTES" => Wire::Bytes,
            _ => return None,
        })
    }

    fn is_numeric(self) -> bool {
        !matches!(self, Wire::Bool | Wire::Bytes)
    }

    fn is_int(self) -> bool {
        self.is_numeric() && !matches!(self, Wire::F16 | Wire::F32 | Wire::F64)
    }
}

/// Where an input's values go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// The model tensor `[N, F]`, row-major.
    Tensor,
    /// One feature column.
    Column(usize),
    /// Join key `k` (of [`Schema::entity_keys`]) of an entity-keyed request.
    Entity(usize),
}

impl Target {
    /// The target an input name selects; `None` for a name the model does not know.
    pub(crate) fn of(schema: &Schema, name: &str) -> Option<Self> {
        if let Some(k) = schema.entity_keys().iter().position(|k| k.name == name) {
            Some(Target::Entity(k))
        } else if name == schema.signature.tensor_name() {
            Some(Target::Tensor)
        } else {
            schema.signature.position(name).map(Target::Column)
        }
    }
}

/// Everything decoded so far, in final form.
#[derive(Debug, Default)]
pub(crate) struct Buffers {
    /// The model tensor when the request sends it whole.
    pub tensor: Vec<f32>,
    /// Per-feature columns, each input's values contiguous.
    pub columns: Vec<f32>,
    /// One column per join key, as [`Schema::entity_keys`].
    pub keys: Vec<KeyColumn>,
    /// Values the request may still carry (see [`Schema::value_budget`]).
    pub budget: usize,
}

impl Buffers {
    pub(crate) fn new(schema: &Schema) -> Self {
        Buffers {
            budget: schema.value_budget(),
            keys: key_columns(schema),
            ..Default::default()
        }
    }

    /// Makes room for an input's values when its shape is known (capped by the budget), or
    /// for one row.
    pub(crate) fn reserve(&mut self, schema: &Schema, target: Target, shape: Option<&[i64]>) {
        let rows = match shape {
            Some([n, ..]) => usize::try_from(*n).unwrap_or(1).max(1),
            _ => 1,
        };
        match target {
            Target::Tensor => self
                .tensor
                .reserve(rows.saturating_mul(schema.width()).min(self.budget)),
            Target::Column(_) => self
                .columns
                .reserve(rows.saturating_mul(schema.width()).min(self.budget)),
            Target::Entity(k) => match &mut self.keys[k] {
                KeyColumn::Int(v) => v.reserve(rows.min(self.budget)),
                KeyColumn::Str(v) => v.reserve(rows.min(self.budget)),
            },
        }
    }

    /// Spends one value of the budget; fails once it is exhausted.
    #[inline]
    pub(crate) fn spend(&mut self) -> Result<(), DecodeError> {
        match self.budget.checked_sub(1) {
            Some(b) => {
                self.budget = b;
                Ok(())
            }
            None => Err(bad(
                "the request carries more values than max_request_rows rows of this model's inputs",
            )),
        }
    }
}

pub(crate) fn check_string(s: &str) -> Result<(), DecodeError> {
    if s.len() > MAX_STRING_BYTES {
        return Err(bad(format!(
            "a string in data has {} bytes; at most {MAX_STRING_BYTES} are accepted",
            s.len()
        )));
    }
    Ok(())
}

/// Writes one input's values, in order, into [`Buffers`].
pub(crate) struct Sink<'s> {
    schema: &'s Schema,
    input: &'s str,
    target: Target,
    wire: Option<Wire>,
    /// Values written so far.
    pub n: usize,
    /// Feature column of the next value of a whole-tensor input (`n % width`, kept as a
    /// counter: a division per value is a measurable share of decoding).
    col: usize,
}

impl<'s> Sink<'s> {
    /// Checks the datatype against what the target takes.
    pub(crate) fn new(
        schema: &'s Schema,
        input: &'s str,
        target: Target,
        datatype: &str,
    ) -> Result<Self, DecodeError> {
        let known = || {
            Wire::parse(datatype).ok_or_else(|| {
                bad(format!(
                    "input {input:?}: unknown datatype {datatype:?}; expected one of {WIRE_NAMES}"
                ))
            })
        };
        let wire = match target {
            // INT64 keys are integers whatever the declared type; STRING keys are BYTES.
            Target::Entity(k) => {
                let key = &schema.entity_keys()[k];
                if key.is_string() && known()? != Wire::Bytes {
                    return Err(bad(format!(
                        "input {input:?}: join key {:?} is a STRING; send datatype BYTES, not {datatype}",
                        key.name
                    )));
                }
                Wire::parse(datatype)
            }
            Target::Tensor => {
                let w = known()?;
                if !w.is_numeric() {
                    return Err(bad(format!(
                        "input {input:?}: datatype {datatype} not allowed; the model tensor takes FP32 (or another numeric type)"
                    )));
                }
                Some(w)
            }
            Target::Column(c) => {
                let w = known()?;
                match schema.signature.inputs[c].kind {
                    FeatureKind::Numeric if w != Wire::Bool && !w.is_numeric() => {
                        return Err(bad(format!(
                            "input {input:?}: feature is numeric, datatype {datatype} is not"
                        )));
                    }
                    FeatureKind::Categorical if w != Wire::Bytes => {
                        return Err(bad(format!(
                            "input {input:?}: categorical feature needs datatype BYTES (strings), got {datatype}"
                        )));
                    }
                    _ => {}
                }
                Some(w)
            }
        };
        Ok(Sink {
            schema,
            input,
            target,
            wire,
            n: 0,
            col: 0,
        })
    }

    /// [`Sink::put`] of a number (the common value): a plain in-range value of a numeric
    /// feature of the model tensor is written at once; anything else (codes, missing values,
    /// errors) goes through `put`.
    #[inline]
    pub(crate) fn put_num(&mut self, bufs: &mut Buffers, x: f64) -> Result<(), DecodeError> {
        if let (Target::Tensor, Some(w)) = (self.target, self.wire) {
            let c = self.col;
            let s = self.schema;
            let y = x as f32;
            // NaN (a missing value), non-integers on an integer wire and codes out of range
            // take the slow path, which reports them. `as i64` (not `trunc`, a libm call)
            // tests integrality: values this far apart from it do not fit in f32 anyway.
            let plain = match s.signature.inputs.get(c).map(|f| f.kind) {
                Some(FeatureKind::Numeric) => {
                    y.is_finite() && (!w.is_int() || (x.abs() < 1e18 && x as i64 as f64 == x))
                }
                Some(FeatureKind::Categorical) => {
                    let k = s.vocab[c].as_ref().map_or(0, |v| v.len());
                    x >= 0.0 && x < k as f64 && x as u64 as f64 == x
                }
                None => false,
            };
            if plain {
                bufs.tensor.push(y);
                self.n += 1;
                self.col = if c + 1 == s.width() { 0 } else { c + 1 };
                return Ok(());
            }
        }
        self.put(bufs, Val::Num(x))
    }

    pub(crate) fn put(&mut self, bufs: &mut Buffers, v: Val<'_>) -> Result<(), DecodeError> {
        let i = self.n;
        self.n += 1;
        let s = self.schema;
        let input = self.input;
        match self.target {
            Target::Tensor => {
                let width = s.width();
                let c = self.col;
                self.col = if c + 1 == width { 0 } else { c + 1 };
                let what = || {
                    format!(
                        "input {input:?} element [{}, {c}] (feature {:?})",
                        i / width,
                        s.signature.inputs[c].name
                    )
                };
                let x = self.number(v, what)?;
                let x = match s.signature.inputs[c].kind {
                    FeatureKind::Categorical => code_of(s, c, x, what)?,
                    FeatureKind::Numeric => to_f32(x, what)?,
                };
                bufs.tensor.push(x);
            }
            Target::Column(c) => {
                let what = || format!("input {input:?} row {i}");
                let x = match s.signature.inputs[c].kind {
                    FeatureKind::Numeric if self.wire == Some(Wire::Bool) => match v {
                        Val::Bool(b) => f32::from(u8::from(b)),
                        _ => {
                            return Err(bad(format!(
                                "input {input:?}: datatype BOOL needs true/false values, element {i} is {}",
                                v.kind()
                            )));
                        }
                    },
                    FeatureKind::Numeric => to_f32(self.number(v, what)?, what)?,
                    FeatureKind::Categorical => match v {
                        Val::Str(name) => category(s, c, name, what)?,
                        _ => {
                            return Err(bad(format!(
                                "input {input:?}: element {i} is {}; categorical values must be strings",
                                v.kind()
                            )));
                        }
                    },
                };
                bufs.columns.push(x);
            }
            Target::Entity(k) => {
                push_key(&mut bufs.keys[k], v, || format!("input {input:?} row {i}"))?
            }
        }
        Ok(())
    }

    /// A numeric value for a numeric datatype; NaN for a missing value the model accepts.
    fn number(&self, v: Val<'_>, what: impl Fn() -> String) -> Result<f64, DecodeError> {
        let datatype = || self.wire.map_or("?", wire_name);
        match v {
            Val::Num(x) if x.is_nan() => missing(self.schema, what),
            Val::Num(x) => {
                if self.wire.is_some_and(Wire::is_int) && x.fract() != 0.0 {
                    return Err(bad(format!(
                        "{}: datatype {} but the value is {x}, not an integer",
                        what(),
                        datatype()
                    )));
                }
                Ok(x)
            }
            Val::Null => missing(self.schema, what),
            other => Err(bad(format!(
                "{}: datatype {} needs numbers, got {}",
                what(),
                datatype(),
                other.kind()
            ))),
        }
    }
}

fn wire_name(w: Wire) -> &'static str {
    match w {
        Wire::Bool => "BOOL",
        Wire::U8 => "UINT8",
        Wire::U16 => "UINT16",
        Wire::U32 => "UINT32",
        Wire::U64 => "UINT64",
        Wire::I8 => "INT8",
        Wire::I16 => "INT16",
        Wire::I32 => "INT32",
        Wire::I64 => "INT64",
        Wire::F16 => "FP16",
        Wire::F32 => "FP32",
        Wire::F64 => "FP64",
        Wire::Bytes => "BYTES",
    }
}

fn missing(schema: &Schema, what: impl Fn() -> String) -> Result<f64, DecodeError> {
    if schema.allow_missing {
        Ok(f64::NAN)
    } else {
        Err(bad(format!(
            "{}: null; this model does not accept missing values",
            what()
        )))
    }
}

/// f64 → f32 for the model, refusing what FP32 cannot hold (NaN is a missing value).
pub(crate) fn to_f32(v: f64, what: impl Fn() -> String) -> Result<f32, DecodeError> {
    if v.is_nan() {
        return Ok(f32::NAN);
    }
    let x = v as f32;
    if !x.is_finite() {
        return Err(bad(format!("{}: {v} does not fit in FP32", what())));
    }
    Ok(x)
}

/// A categorical code given as a number (NaN: a missing category the model accepts).
pub(crate) fn code_of(
    s: &Schema,
    col: usize,
    v: f64,
    what: impl Fn() -> String,
) -> Result<f32, DecodeError> {
    let k = s.vocab[col].as_ref().map_or(0, |v| v.len());
    if v.is_nan() {
        // The trainer's models read NaN like their "unseen" code, as the online store passes it.
        return Ok(f32::NAN);
    }
    if v.fract() != 0.0 || v < 0.0 || v >= k as f64 {
        return Err(bad(format!(
            "{}: categorical code {v} out of range 0..{k} for feature {:?}",
            what(),
            s.signature.inputs[col].name
        )));
    }
    Ok(v as f32)
}

/// A categorical value given by name.
pub(crate) fn category(
    s: &Schema,
    col: usize,
    name: &str,
    what: impl Fn() -> String,
) -> Result<f32, DecodeError> {
    s.vocab[col]
        .as_ref()
        .and_then(|v| v.get(name))
        .map(|c| *c as f32)
        .ok_or_else(|| {
            bad(format!(
                "{}: unknown category {name:?}; expected one of {}",
                what(),
                list(
                    s.signature.inputs[col]
                        .vocab
                        .iter()
                        .flatten()
                        .map(String::as_str)
                )
            ))
        })
}

/// An empty column per join key of `schema`.
pub(crate) fn key_columns(schema: &Schema) -> Vec<KeyColumn> {
    schema
        .entity_keys()
        .iter()
        .map(|k| {
            if k.is_string() {
                KeyColumn::Str(Vec::new())
            } else {
                KeyColumn::Int(Vec::new())
            }
        })
        .collect()
}

/// Appends one join-key value: an integer for an INT64 key, a string for a STRING key.
pub(crate) fn push_key(
    col: &mut KeyColumn,
    v: Val<'_>,
    what: impl Fn() -> String,
) -> Result<(), DecodeError> {
    match (col, v) {
        (KeyColumn::Int(ids), Val::Num(x)) if !x.is_nan() => ids.push(entity_id(x, what)?),
        (KeyColumn::Str(keys), Val::Str(s)) => {
            check_string(s)?;
            keys.push(s.to_owned());
        }
        (KeyColumn::Int(_), v) => {
            return Err(bad(format!(
                "{}: {} is no entity id; this join key is INT64 (integers)",
                what(),
                v.kind()
            )));
        }
        (KeyColumn::Str(_), v) => {
            return Err(bad(format!(
                "{}: {} is no entity key; this join key is a STRING",
                what(),
                v.kind()
            )));
        }
    }
    Ok(())
}

/// An entity id: an integer (or an integral float) that f64 holds exactly.
pub(crate) fn entity_id(v: f64, what: impl Fn() -> String) -> Result<i64, DecodeError> {
    if v.is_nan() || v.fract() != 0.0 || v.abs() > 9.007_199_254_740_992e15 {
        return Err(bad(format!("{}: {v} is not an integer entity id", what())));
    }
    Ok(v as i64)
}

/// Up to eight quoted names, for messages.
pub(crate) fn list<'a>(names: impl Iterator<Item = &'a str>) -> String {
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
