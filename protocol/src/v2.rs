//! Open Inference Protocol v2 requests (JSON, with the binary tensor extension), decoded in
//! one pass: every value is checked and converted into the model's input buffers as the
//! parser reaches it, under the request's value budget. `id` is kept as raw JSON,
//! `parameters` are read for the keys that matter and skipped otherwise.
//!
//! Accepted shapes:
//! - **tensor**: one input named like the model tensor, shape `[N, F]`, columns in signature
//!   order; categorical columns carry vocabulary codes.
//! - **per feature** (MLServer's `content_type: "pd"` style): one input per feature, each a
//!   column of length N (`[N]` or `[N, 1]`); categorical features as `BYTES` strings. With
//!   an online spec, the entity key input names entities whose stored features fill in what
//!   the request leaves out.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::binary;
use crate::columns::{Buffers, MAX_NESTING, Sink, Target, Val, bad, check_string, list};
use crate::json::{Scalar, Str, fail, finish};
use crate::schema::Schema;
use crate::{DecodeError, Decoded, EntityRequest, OutputSelection, Selected};

mod fast;

/// Most dimensions a request shape may have.
const MAX_RANK: usize = 8;

/// Parses and validates an OIP request against `schema`. With the binary tensor extension,
/// `json_len` (the `Inference-Header-Content-Length` header) splits `body` into the JSON
/// header and the concatenated raw tensors of the inputs that declare
/// `parameters.binary_data_size`, in input order.
pub fn decode_infer(
    schema: &Schema,
    body: &[u8],
    json_len: Option<usize>,
) -> Result<Decoded, DecodeError> {
    let (json, tail) = match json_len {
        None => (body, &[][..]),
        Some(n) if n <= body.len() => body.split_at(n),
        Some(n) => {
            return Err(bad(format!(
                "Inference-Header-Content-Length is {n} but the body has {} bytes",
                body.len()
            )));
        }
    };
    if let Some(ts) = &schema.tensors {
        return crate::tensors::decode_v2(schema, ts, json, tail, json_len.is_some());
    }
    // Plain requests (numbers, names, shapes; no parameters, id, outputs, escapes or binary
    // part) take a hand-written scanner; anything else, and every error, this parser below.
    if json_len.is_none()
        && let Some(ctx) = fast::parse(schema, json)
        && let Ok(d) = complete(schema, ctx, tail, json_len)
    {
        return Ok(d);
    }
    let mut ctx = Ctx::new(schema);
    let mut de = serde_json::Deserializer::from_slice(json);
    let parsed = (&mut de)
        .deserialize_map(RequestVisitor { ctx: &mut ctx })
        .and_then(|()| de.end());
    finish(parsed, ctx.error.take())?;
    complete(schema, ctx, tail, json_len)
}

/// The checks and assembly after parsing: inputs present, binary parts claimed, outputs
/// selected, the model input built.
fn complete(
    schema: &Schema,
    mut ctx: Ctx<'_, '_>,
    mut tail: &[u8],
    json_len: Option<usize>,
) -> Result<Decoded, DecodeError> {
    if !ctx.saw_inputs {
        return Err(bad("invalid request body: missing field `inputs`"));
    }
    if ctx.inputs.is_empty() {
        return Err(bad("field `inputs` is empty"));
    }
    // Inputs whose values travel in the binary part, in input order.
    for input in &mut ctx.inputs {
        let Some(size) = input.binary_size else {
            if !input.has_data && !input.shape.contains(&0) {
                return Err(bad(format!("input {:?} has no data", input.name)));
            }
            continue;
        };
        if json_len.is_none() {
            return Err(bad(format!(
                "input {:?}: binary_data_size given without the Inference-Header-Content-Length header",
                input.name
            )));
        }
        if input.has_data {
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
        let target = target_of(schema, &input.name)?;
        let mut sink = Sink::new(schema, &input.name, target, &input.datatype)?;
        input.start = ctx.bufs.columns.len();
        let bufs = &mut ctx.bufs;
        binary::read(&input.name, &input.datatype, bytes, |v| {
            bufs.spend()?;
            sink.put(bufs, v)
        })?;
        input.target = Some(target);
        input.len = sink.n;
    }
    if !tail.is_empty() {
        return Err(bad(format!(
            "{} bytes of binary data are not claimed by any input's binary_data_size",
            tail.len()
        )));
    }
    let outputs = select_outputs(schema, ctx.outputs.as_deref(), ctx.binary_output)?;
    let (input, rows, entities) = assemble(schema, &ctx.inputs, ctx.bufs)?;
    if rows == 0 {
        return Err(bad("empty batch: the request has 0 rows"));
    }
    if rows > schema.max_request_rows {
        return Err(bad(format!(
            "batch of {rows} rows exceeds this model's max_request_rows ({})",
            schema.max_request_rows
        )));
    }
    Ok(Decoded {
        input,
        tensors: Vec::new(),
        rows,
        id: ctx.id,
        outputs,
        timeout: ctx.timeout,
        entities,
    })
}

fn target_of(schema: &Schema, name: &str) -> Result<Target, DecodeError> {
    Target::of(schema, name).ok_or_else(|| {
        let sig = &schema.signature;
        bad(format!(
            "unknown input {name:?}: send one tensor {:?} [N, {}] or one input per feature ({})",
            sig.tensor_name(),
            sig.width(),
            list(sig.inputs.iter().map(|f| f.name.as_str()))
        ))
    })
}

/// One input as read.
#[derive(Debug, Default)]
struct Input<'de> {
    name: Cow<'de, str>,
    shape: Shape,
    datatype: Cow<'de, str>,
    binary_size: Option<usize>,
    has_data: bool,
    target: Option<Target>,
    /// Where its values start in `Buffers::columns` (feature columns only).
    start: usize,
    /// How many values it carried.
    len: usize,
}

struct Ctx<'s, 'de> {
    schema: &'s Schema,
    bufs: Buffers,
    /// Inline for one input (the usual request): no allocation.
    inputs: smallvec::SmallVec<[Input<'de>; 1]>,
    saw_inputs: bool,
    id: Option<String>,
    timeout: Option<Duration>,
    binary_output: bool,
    outputs: Option<Vec<OutputRequest>>,
    error: Option<DecodeError>,
}

impl<'s> Ctx<'s, '_> {
    fn new(schema: &'s Schema) -> Self {
        Ctx {
            schema,
            bufs: Buffers::new(schema),
            inputs: smallvec::SmallVec::new(),
            saw_inputs: false,
            id: None,
            timeout: None,
            binary_output: false,
            outputs: None,
            error: None,
        }
    }
}

#[derive(serde::Deserialize)]
pub(crate) struct OutputRequest {
    name: String,
    #[serde(default)]
    parameters: Option<OutputParams>,
}

#[derive(serde::Deserialize)]
struct OutputParams {
    #[serde(default)]
    binary_data: Option<Scalar>,
    #[serde(default)]
    classification: Option<IgnoredAny>,
}

struct RequestVisitor<'c, 's, 'de> {
    ctx: &'c mut Ctx<'s, 'de>,
}

impl<'de> Visitor<'de> for RequestVisitor<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an inference request object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let ctx = self.ctx;
        let mut seen = [false; 4];
        while let Some(key) = map.next_key::<Str<'de>>()? {
            let slot = match &*key.0 {
                "id" => 0,
                "parameters" => 1,
                "inputs" => 2,
                "outputs" => 3,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            if std::mem::replace(&mut seen[slot], true) {
                return Err(fail(
                    &mut ctx.error,
                    bad(format!("field `{}` is given twice", key.0)),
                ));
            }
            match slot {
                0 => {
                    let raw = map.next_value::<&'de RawValue>()?;
                    ctx.id = echo_id(raw.get()).map_err(|e| fail(&mut ctx.error, e))?;
                }
                1 => map.next_value_seed(ParamsSeed { ctx: &mut *ctx })?,
                2 => {
                    ctx.saw_inputs = true;
                    map.next_value_seed(InputsSeed { ctx: &mut *ctx })?
                }
                _ => ctx.outputs = Some(map.next_value()?),
            }
        }
        Ok(())
    }
}

/// `id` as the JSON text to echo: a string as sent; a number as a string.
pub(crate) fn echo_id(raw: &str) -> Result<Option<String>, DecodeError> {
    match raw.as_bytes().first() {
        Some(b'"') => Ok(Some(raw.to_owned())),
        Some(b'-' | b'0'..=b'9') => Ok(Some(format!("\"{raw}\""))),
        Some(b'n') => Ok(None),
        _ => Err(bad("field `id` must be a string")),
    }
}

struct ParamsSeed<'c, 's, 'de> {
    ctx: &'c mut Ctx<'s, 'de>,
}

impl<'de> DeserializeSeed<'de> for ParamsSeed<'_, '_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ParamsSeed<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a parameters object")
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let ctx = self.ctx;
        while let Some(key) = map.next_key::<Str<'de>>()? {
            match &*key.0 {
                "timeout" => match map.next_value()? {
                    Scalar::U64(us) if us > 0 => ctx.timeout = Some(Duration::from_micros(us)),
                    _ => {
                        return Err(fail(
                            &mut ctx.error,
                            bad("parameters.timeout must be a positive integer (microseconds)"),
                        ));
                    }
                },
                "binary_data_output" => match map.next_value()? {
                    Scalar::Bool(b) => ctx.binary_output = b,
                    _ => {
                        return Err(fail(
                            &mut ctx.error,
                            bad("parameters.binary_data_output must be true or false"),
                        ));
                    }
                },
                // content_type ("np", "pd"), headers, and anything else: informational.
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

struct InputsSeed<'c, 's, 'de> {
    ctx: &'c mut Ctx<'s, 'de>,
}

impl<'de> DeserializeSeed<'de> for InputsSeed<'_, '_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for InputsSeed<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of inputs")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let ctx = self.ctx;
        // Every feature, the entity key, and one more to report a duplicate.
        let most = ctx.schema.width() + 2;
        while seq
            .next_element_seed(InputSeed { ctx: &mut *ctx })?
            .is_some()
        {
            if ctx.inputs.len() > most {
                return Err(fail(
                    &mut ctx.error,
                    bad(format!(
                        "the request has more than {most} inputs; the model takes {} features",
                        ctx.schema.width()
                    )),
                ));
            }
        }
        Ok(())
    }
}

struct InputSeed<'c, 's, 'de> {
    ctx: &'c mut Ctx<'s, 'de>,
}

impl<'de> DeserializeSeed<'de> for InputSeed<'_, '_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for InputSeed<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an input object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let ctx = self.ctx;
        let schema = ctx.schema;
        let mut name: Option<Str<'de>> = None;
        let mut datatype: Option<Str<'de>> = None;
        let mut shape: Option<Shape> = None;
        let mut binary_size = None;
        let mut has_data = false;
        let mut target = None;
        let mut start = 0;
        let mut len = 0;
        // `data` met before the input's name or datatype: its text, decoded once both are known.
        let mut kept: Option<&'de RawValue> = None;
        while let Some(key) = map.next_key::<Str<'de>>()? {
            match &*key.0 {
                "name" => name = Some(map.next_value()?),
                "datatype" => datatype = Some(map.next_value()?),
                "shape" => shape = Some(map.next_value_seed(ShapeSeed)?),
                "parameters" => {
                    binary_size = map.next_value_seed(InputParamsSeed {
                        error: &mut ctx.error,
                    })?
                }
                "data" => {
                    if std::mem::replace(&mut has_data, true) {
                        return Err(fail(&mut ctx.error, bad("an input has data twice")));
                    }
                    match (&name, &datatype) {
                        (Some(n), Some(dt)) => {
                            let t = target_of(schema, &n.0).map_err(|e| fail(&mut ctx.error, e))?;
                            let mut sink = Sink::new(schema, &n.0, t, &dt.0)
                                .map_err(|e| fail(&mut ctx.error, e))?;
                            start = ctx.bufs.columns.len();
                            ctx.bufs.reserve(schema, t, shape.as_deref());
                            map.next_value_seed(Data {
                                bufs: &mut ctx.bufs,
                                sink: &mut sink,
                                error: &mut ctx.error,
                                depth: 0,
                            })?;
                            target = Some(t);
                            len = sink.n;
                        }
                        // Read once both are known (clients that sort keys send `data` first).
                        _ => kept = Some(map.next_value::<&'de RawValue>()?),
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let mut missing = |field| fail(&mut ctx.error, bad(format!("an input has no `{field}`")));
        let Some(name) = name else {
            return Err(missing("name"));
        };
        let Some(datatype) = datatype else {
            return Err(missing("datatype"));
        };
        let Some(shape) = shape else {
            return Err(missing("shape"));
        };
        if let Some(d) = shape.iter().find(|d| **d < 0) {
            return Err(fail(
                &mut ctx.error,
                bad(format!(
                    "input {:?}: shape {shape:?} has negative dimension {d}",
                    name.0
                )),
            ));
        }
        if let Some(raw) = kept {
            let mut replay = || -> Result<(Target, usize), DecodeError> {
                let t = target_of(schema, &name.0)?;
                let mut sink = Sink::new(schema, &name.0, t, &datatype.0)?;
                start = ctx.bufs.columns.len();
                ctx.bufs.reserve(schema, t, Some(&shape));
                let mut error = None;
                let mut de = serde_json::Deserializer::from_str(raw.get());
                let parsed = Data {
                    bufs: &mut ctx.bufs,
                    sink: &mut sink,
                    error: &mut error,
                    depth: 0,
                }
                .deserialize(&mut de);
                finish(parsed, error)?;
                Ok((t, sink.n))
            };
            let (t, n) = replay().map_err(|e| fail(&mut ctx.error, e))?;
            target = Some(t);
            len = n;
        }
        ctx.inputs.push(Input {
            name: name.0,
            shape,
            datatype: datatype.0,
            binary_size,
            has_data,
            target,
            start,
            len,
        });
        Ok(())
    }
}

/// A request shape, held inline (at most [`MAX_RANK`] dimensions).
#[derive(Default, Clone, Copy, PartialEq, Eq)]
struct Shape {
    dims: [i64; MAX_RANK],
    len: usize,
}

impl std::ops::Deref for Shape {
    type Target = [i64];
    fn deref(&self) -> &[i64] {
        &self.dims[..self.len]
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

struct ShapeSeed;

impl<'de> DeserializeSeed<'de> for ShapeSeed {
    type Value = Shape;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Shape, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ShapeSeed {
    type Value = Shape;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a shape (an array of integers)")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        let mut shape = Shape::default();
        while let Some(d) = seq.next_element::<i64>()? {
            if shape.len == MAX_RANK {
                return Err(de::Error::custom(format!(
                    "a shape has more than {MAX_RANK} dimensions"
                )));
            }
            shape.dims[shape.len] = d;
            shape.len += 1;
        }
        Ok(shape)
    }
}

struct InputParamsSeed<'e> {
    error: &'e mut Option<DecodeError>,
}

impl<'de> DeserializeSeed<'de> for InputParamsSeed<'_> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for InputParamsSeed<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a parameters object")
    }

    fn visit_unit<E>(self) -> Result<Option<usize>, E> {
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<usize>, A::Error> {
        let mut size = None;
        while let Some(key) = map.next_key::<Str<'de>>()? {
            if &*key.0 == "binary_data_size" {
                match map.next_value()? {
                    Scalar::U64(n) => size = Some(usize::try_from(n).unwrap_or(usize::MAX)),
                    _ => {
                        return Err(fail(
                            self.error,
                            bad("parameters.binary_data_size must be a byte count"),
                        ));
                    }
                }
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(size)
    }
}

/// `data`, flattened row-major (nested arrays), each value written as it is read.
struct Data<'a, 's> {
    bufs: &'a mut Buffers,
    sink: &'a mut Sink<'s>,
    error: &'a mut Option<DecodeError>,
    depth: usize,
}

impl Data<'_, '_> {
    fn emit<E: de::Error>(&mut self, v: Val<'_>) -> Result<(), E> {
        let r = self.bufs.spend().and_then(|()| {
            if let Val::Str(s) = v {
                check_string(s)?;
            }
            self.sink.put(self.bufs, v)
        });
        r.map_err(|e| fail(self.error, e))
    }

    #[inline]
    fn emit_num<E: de::Error>(&mut self, x: f64) -> Result<(), E> {
        let r = self
            .bufs
            .spend()
            .and_then(|()| self.sink.put_num(self.bufs, x));
        r.map_err(|e| fail(self.error, e))
    }
}

impl<'de> DeserializeSeed<'de> for Data<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Data<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array (possibly nested) of numbers, strings or booleans")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.depth >= MAX_NESTING {
            return Err(fail(self.error, bad("data is nested too deeply")));
        }
        loop {
            let inner = Data {
                bufs: &mut *self.bufs,
                sink: &mut *self.sink,
                error: &mut *self.error,
                depth: self.depth + 1,
            };
            if seq.next_element_seed(inner)?.is_none() {
                return Ok(());
            }
        }
    }

    fn visit_i64<E: de::Error>(mut self, v: i64) -> Result<(), E> {
        self.emit_num(v as f64)
    }

    fn visit_u64<E: de::Error>(mut self, v: u64) -> Result<(), E> {
        self.emit_num(v as f64)
    }

    fn visit_f64<E: de::Error>(mut self, v: f64) -> Result<(), E> {
        self.emit_num(v)
    }

    fn visit_bool<E: de::Error>(mut self, v: bool) -> Result<(), E> {
        self.emit(Val::Bool(v))
    }

    fn visit_borrowed_str<E: de::Error>(mut self, v: &'de str) -> Result<(), E> {
        self.emit(Val::Str(v))
    }

    fn visit_str<E: de::Error>(mut self, v: &str) -> Result<(), E> {
        self.emit(Val::Str(v))
    }

    fn visit_unit<E: de::Error>(mut self) -> Result<(), E> {
        self.emit(Val::Null)
    }

    fn visit_map<A: MapAccess<'de>>(self, _map: A) -> Result<(), A::Error> {
        Err(fail(
            self.error,
            bad("data must hold numbers, strings or booleans, not objects"),
        ))
    }
}

/// The inputs as one row-major `[rows, F]` buffer, the row count, and the entity request.
fn assemble(
    schema: &Schema,
    inputs: &[Input<'_>],
    bufs: Buffers,
) -> Result<(Vec<f32>, usize, Option<EntityRequest>), DecodeError> {
    let sig = &schema.signature;
    let width = sig.width();
    if let Some(t) = inputs.iter().find(|i| i.target == Some(Target::Tensor)) {
        if inputs.len() > 1 {
            return Err(bad(format!(
                "input {:?} is the whole model tensor; send it alone, or one input per feature ({})",
                t.name,
                list(sig.inputs.iter().map(|f| f.name.as_str()))
            )));
        }
        let rows = match &t.shape[..] {
            [n, f] if *f as usize == width => *n as usize,
            _ => {
                return Err(bad(format!(
                    "input {:?}: shape {:?} does not match the model tensor [N, {width}]",
                    t.name, t.shape
                )));
            }
        };
        let expected = rows.saturating_mul(width);
        if t.len != expected {
            return Err(bad(format!(
                "input {:?}: shape {:?} needs {expected} values, data has {}",
                t.name, t.shape, t.len
            )));
        }
        return Ok((bufs.tensor, rows, None));
    }

    let mut rows: Option<(usize, &str)> = None;
    let mut seen = vec![false; width];
    let keys = schema.entity_keys();
    let mut keys_given = vec![false; keys.len()];
    for input in inputs {
        let target = match input.target {
            Some(t) => t,
            // No values (shape with a 0): still named and counted.
            None => target_of(schema, &input.name)?,
        };
        let unit = match target {
            Target::Entity(k) => {
                if std::mem::replace(&mut keys_given[k], true) {
                    return Err(bad(format!("input {:?} is given twice", input.name)));
                }
                "id"
            }
            Target::Column(c) => {
                if std::mem::replace(&mut seen[c], true) {
                    return Err(bad(format!("input {:?} is given twice", input.name)));
                }
                "value"
            }
            // A tensor input without values (shape with a 0), among others.
            Target::Tensor => return Err(bad("the model tensor must be the only input")),
        };
        let n = match &input.shape[..] {
            [n] | [n, 1] => *n as usize,
            _ => {
                return Err(bad(format!(
                    "input {:?}: shape {:?} must be [N] or [N, 1] (one {unit} per row)",
                    input.name, input.shape
                )));
            }
        };
        if input.len != n {
            return Err(bad(format!(
                "input {:?}: shape {:?} needs {n} {unit}s, data has {}",
                input.name, input.shape, input.len
            )));
        }
        match rows {
            None => rows = Some((n, &input.name)),
            Some((r, first)) if r != n => {
                return Err(bad(format!(
                    "input {:?} has {n} rows but input {first:?} has {r}",
                    input.name
                )));
            }
            _ => {}
        }
    }
    // With its join keys, the online views' features may be left to the store.
    let keyed = keys_given.iter().any(|g| *g);
    if keyed && !keys_given.iter().all(|g| *g) {
        let absent = keys.iter().zip(&keys_given).filter(|(_, g)| !**g);
        return Err(bad(format!(
            "entity-keyed request: missing join key {} (the online views need {})",
            list(absent.map(|(k, _)| k.name.as_str())),
            list(keys.iter().map(|k| k.name.as_str()))
        )));
    }
    let missing: Vec<&str> = sig
        .inputs
        .iter()
        .enumerate()
        .filter(|(c, _)| !(seen[*c] || (keyed && schema.fillable[*c])))
        .map(|(_, f)| f.name.as_str())
        .collect();
    if !missing.is_empty() {
        let hint = match &sig.online {
            Some(o) if !keyed => {
                format!(
                    " (or send {} to read the stored features)",
                    list(o.keys.iter().map(|k| k.name.as_str()))
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
    let mut out = vec![0f32; rows * width];
    for input in inputs {
        if let Some(Target::Column(c)) = input.target {
            let col = &bufs.columns[input.start..input.start + input.len];
            for (r, x) in col.iter().enumerate() {
                out[r * width + c] = *x;
            }
        }
    }
    let entities = keyed.then_some(EntityRequest {
        keys: bufs.keys,
        provided: seen,
    });
    Ok((out, rows, entities))
}

pub(crate) fn select_outputs(
    schema: &Schema,
    req: Option<&[OutputRequest]>,
    binary_default: bool,
) -> Result<OutputSelection, DecodeError> {
    let Some(req) = req.filter(|r| !r.is_empty()) else {
        return Ok(OutputSelection::All {
            binary: binary_default,
        });
    };
    let mut out: Vec<Selected> = Vec::with_capacity(req.len());
    for o in req {
        let index = schema
            .outputs
            .iter()
            .position(|meta| meta.name == o.name)
            .ok_or_else(|| {
                bad(format!(
                    "requested output {:?} does not exist; outputs are {}",
                    o.name,
                    list(schema.outputs.iter().map(|x| x.name.as_str()))
                ))
            })?;
        let mut binary = binary_default;
        if let Some(p) = &o.parameters {
            match p.binary_data {
                None => {}
                Some(Scalar::Bool(b)) => binary = b,
                Some(_) => {
                    return Err(bad(format!(
                        "output {:?}: parameters.binary_data must be true or false",
                        o.name
                    )));
                }
            }
            if p.classification.is_some() {
                return Err(bad(format!(
                    "output {:?}: the classification extension is not supported",
                    o.name
                )));
            }
        }
        if out.iter().any(|s| s.index == index) {
            return Err(bad(format!("output {:?} is requested twice", o.name)));
        }
        out.push(Selected { index, binary });
    }
    Ok(OutputSelection::Some(out))
}
