//! `vane-protocol`: the inference API's wire formats as pure functions, from request bytes to
//! a typed, validated model input and from model outputs back to response bytes. Nothing here
//! runs threads or touches the serving runtime, so the codecs are tested, benchmarked and
//! fuzzed on their own.
//!
//! - [`v2::decode_infer`]: Open Inference Protocol v2 JSON with the binary tensor extension;
//! - [`v1::decode_records`]: KServe v1 / TF-Serving `instances`;
//! - [`encode::encode_infer`] / [`encode::encode_predictions`]: the response bodies.
//!
//! Two kinds of model: a *feature* model (named features over one FP32 `[N, F]` tensor,
//! decoded into one row-major f32 buffer) and a *tensor-signature* model (any ONNX graph:
//! each graph input decoded into its own typed [`tensor::Tensor`]; `tensors.rs`).
//!
//! Principal types: [`Schema`] (a model version's request and response shape), [`Decoded`]
//! (a validated request: f32 rows or typed tensors, row count, entity ids, output selection),
//! [`DecodeError`] (always the client's fault: a 400 whose message names the field),
//! [`tensor::TensorData`] / [`tensor::OutputMeta`] (what backends return).
//!
//! Values: JSON has no NaN or infinity, and a number that overflows FP32 is refused. `null`
//! in a numeric feature is refused unless the model allows missing values (then it reaches the
//! model as NaN). Limits (`max_request_rows`, [`MAX_STRING_BYTES`], nesting depth) apply while
//! parsing, before values are allocated.

pub mod binary;
mod columns;
pub mod encode;
mod json;
pub mod schema;
pub mod tensor;
mod tensors;
pub mod v1;
pub mod v2;

use std::time::Duration;

pub use columns::MAX_STRING_BYTES;
pub use encode::{encode_infer, encode_predictions};
pub use schema::{InputSpec, Schema, TensorInputs};
pub use v1::decode_records;
pub use v2::decode_infer;

/// A request the client got wrong; the message names the input, feature, row or element.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

/// A decoded request, ready for the serving core.
#[derive(Debug, PartialEq)]
pub struct Decoded {
    /// Row-major `rows * width` model input (feature models).
    pub input: Vec<f32>,
    /// One tensor per graph input, in graph order (tensor-signature models).
    pub tensors: Vec<tensor::Tensor>,
    pub rows: usize,
    /// The request's `id` as JSON text, echoed verbatim (a number is echoed as a string).
    pub id: Option<String>,
    /// Which outputs to return, and how.
    pub outputs: OutputSelection,
    /// From `parameters.timeout` (microseconds).
    pub timeout: Option<Duration>,
    /// Set when the request names entities whose features come from the online store.
    pub entities: Option<EntityRequest>,
}

/// The join keys of an entity-keyed request and which values the client supplied; the rest
/// of the online views' columns are filled from the online store before batching.
#[derive(Debug, PartialEq)]
pub struct EntityRequest {
    /// One column per join key of the model's online spec, in its order, one value per row.
    pub keys: Vec<KeyColumn>,
    /// True where the client supplied the value: one flag per feature when every row gives
    /// the same features (V2 columns), `rows × F` flags when rows differ (v1 records).
    pub provided: Vec<bool>,
}

/// One join key's values, one per row.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyColumn {
    Int(Vec<i64>),
    Str(Vec<String>),
}

impl KeyColumn {
    pub fn len(&self) -> usize {
        match self {
            KeyColumn::Int(v) => v.len(),
            KeyColumn::Str(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Row `r`'s value, for messages: `7` or `"acme"`.
    pub fn show(&self, r: usize) -> String {
        match self {
            KeyColumn::Int(v) => v[r].to_string(),
            KeyColumn::Str(v) => format!("{:?}", v[r]),
        }
    }
}

impl EntityRequest {
    /// Rows the request names.
    pub fn rows(&self) -> usize {
        self.keys.first().map_or(0, KeyColumn::len)
    }

    /// Whether the client gave feature `col` of row `row` (of a `width`-feature model).
    pub fn provided(&self, width: usize, row: usize, col: usize) -> bool {
        if self.provided.len() == width {
            self.provided[col]
        } else {
            self.provided[row * width + col]
        }
    }
}

/// The outputs a response carries.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputSelection {
    /// Every output, in model order.
    All { binary: bool },
    /// The outputs the request named, in its order.
    Some(Vec<Selected>),
}

/// One requested output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Selected {
    /// Index into [`Schema::outputs`].
    pub index: usize,
    /// Returned in the binary part instead of JSON.
    pub binary: bool,
}

impl OutputSelection {
    /// `(output index, binary)` pairs in response order, for a model with `n` outputs.
    pub fn iter(&self, n: usize) -> impl Iterator<Item = (usize, bool)> + Clone + '_ {
        let (all, some) = match self {
            OutputSelection::All { binary } => (Some((0..n, *binary)), None),
            OutputSelection::Some(v) => (None, Some(v.iter().map(|s| (s.index, s.binary)))),
        };
        all.into_iter()
            .flat_map(|(r, b)| r.map(move |i| (i, b)))
            .chain(some.into_iter().flatten())
    }
}
