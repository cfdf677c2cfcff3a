//! Writing small ONNX models from Rust, each paired with a pure-Rust reference evaluation.
//!
//! Every model here takes one float tensor `input` of shape `[N, F]` (symbolic batch dim `N`)
//! and returns one float tensor `probability` of shape `[N, 1]`. The graphs use only operators
//! that both ONNX Runtime and tract run identically:
//!
//! - [`Preprocess`]: standardization and one-hot expansion with plain `Transpose`/`Gather`/
//!   `Sub`/`Mul`/`Equal`/`Cast`/`Concat` — not `ai.onnx.ml` `Scaler`/`OneHotEncoder`, which
//!   tract lacks — and optional mean imputation of missing values with `IsNaN`/`Where` (not
//!   `Imputer`).
//! - [`LogisticRegression`]: `MatMul` + `Add` + `Sigmoid`.
//! - [`Mlp`]: `(MatMul + Add + Relu)*` then `MatMul + Add + Sigmoid`.
//! - [`TreeEnsemble`]: `ai.onnx.ml` `TreeEnsembleClassifier` (opset 3) whose class-1 score is
//!   the sum of leaf values, then `Slice` + `Add(base_score)` + `Sigmoid`. See
//!   [`TreeEnsemble::to_onnx`] for why the encoding looks the way it does.
//!
//! `predict` on each type is the oracle: it computes the same function in `f32`, in the same
//! operation order as the graph, so the runtimes can be checked against it within 1e-5.

use std::collections::HashSet;

use prost::Message;
use tract_onnx::pb;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::{Dimension, dimension};

use crate::rng::SplitMix64;

/// Name of the graph input (`[N, F]` float).
pub const INPUT: &str = "input";
/// Name of the graph output (`[N, 1]` float, P(default)).
pub const OUTPUT: &str = "probability";
/// Name of the symbolic batch dimension.
pub const BATCH_DIM: &str = "N";
/// Output of a standalone [`Preprocess::to_onnx`] graph (`[N, width]` float).
pub const FEATURES: &str = "features";

const IR_VERSION: i64 = 8;
const OPSET: i64 = 17;
const ML_DOMAIN: &str = "ai.onnx.ml";
/// TreeEnsembleClassifier at ≤ 3; the opset-5 `TreeEnsemble` op is not implemented by tract.
const ML_OPSET: i64 = 3;
const PRODUCER: &str = "vane-models";

/// A model description that cannot be turned into a valid graph.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    #[error("invalid model: {0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> ModelError {
    ModelError::Invalid(msg.into())
}

/// `1 / (1 + e^-z)` in `f32`, the oracle's sigmoid.
pub fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

// ---------------------------------------------------------------------------------------------
// Graph building

/// Accumulates nodes and initializers with unique value names; [`GraphBuilder::finish`] wraps
/// them into a `ModelProto` with the `input`/output declarations.
pub(crate) struct GraphBuilder {
    nodes: Vec<pb::NodeProto>,
    initializers: Vec<pb::TensorProto>,
    taken: HashSet<String>,
    uses_ml: bool,
}

impl GraphBuilder {
    pub(crate) fn new() -> Self {
        Self {
            nodes: Vec::new(),
            initializers: Vec::new(),
            taken: [INPUT, OUTPUT, FEATURES]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            uses_ml: false,
        }
    }

    /// A value name not used before: `hint_0`, `hint_1`, …
    fn fresh(&mut self, hint: &str) -> String {
        (0..)
            .map(|i| format!("{hint}_{i}"))
            .find(|n| self.taken.insert(n.clone()))
            .expect("unbounded range")
    }

    pub(crate) fn const_f32(&mut self, hint: &str, dims: &[i64], values: &[f32]) -> String {
        debug_assert_eq!(dims.iter().product::<i64>(), values.len() as i64);
        let name = self.fresh(hint);
        self.initializers.push(pb::TensorProto {
            name: name.clone(),
            dims: dims.to_vec(),
            data_type: DataType::Float as i32,
            float_data: values.to_vec(),
            ..Default::default()
        });
        name
    }

    pub(crate) fn const_i64(&mut self, hint: &str, dims: &[i64], values: &[i64]) -> String {
        debug_assert_eq!(dims.iter().product::<i64>(), values.len() as i64);
        let name = self.fresh(hint);
        self.initializers.push(pb::TensorProto {
            name: name.clone(),
            dims: dims.to_vec(),
            data_type: DataType::Int64 as i32,
            int64_data: values.to_vec(),
            ..Default::default()
        });
        name
    }

    /// Adds a default-domain node with one output and returns the output's name.
    pub(crate) fn op(
        &mut self,
        op: &str,
        inputs: &[&str],
        attrs: Vec<pb::AttributeProto>,
    ) -> String {
        self.op_in("", op, inputs, 1, attrs).remove(0)
    }

    /// Adds a node in `domain` with `n_outputs` outputs.
    pub(crate) fn op_in(
        &mut self,
        domain: &str,
        op: &str,
        inputs: &[&str],
        n_outputs: usize,
        attrs: Vec<pb::AttributeProto>,
    ) -> Vec<String> {
        if domain == ML_DOMAIN {
            self.uses_ml = true;
        }
        let hint = op.to_ascii_lowercase();
        let outputs: Vec<String> = (0..n_outputs).map(|_| self.fresh(&hint)).collect();
        let name = self.fresh(&format!("{hint}_node"));
        self.nodes.push(pb::NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.clone(),
            name,
            op_type: op.to_string(),
            domain: domain.to_string(),
            attribute: attrs,
            ..Default::default()
        });
        outputs
    }

    /// Builds the model: input `input` float `[N, n_features]`, output `output_name` float
    /// `[N, output_width]` taken from value `last`.
    pub(crate) fn finish(
        mut self,
        last: &str,
        n_features: usize,
        output_name: &str,
        output_width: usize,
        doc: &str,
    ) -> pb::ModelProto {
        if last == INPUT {
            // Identity graphs still need a node producing the output.
            self.nodes.push(pb::NodeProto {
                input: vec![INPUT.into()],
                output: vec![output_name.into()],
                name: "identity_node".into(),
                op_type: "Identity".into(),
                ..Default::default()
            });
        } else {
            // Rename the last value so no extra node is needed.
            for node in &mut self.nodes {
                for v in node.input.iter_mut().chain(node.output.iter_mut()) {
                    if v == last {
                        *v = output_name.to_string();
                    }
                }
            }
        }
        let mut opset_import = vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }];
        if self.uses_ml {
            opset_import.push(pb::OperatorSetIdProto {
                domain: ML_DOMAIN.into(),
                version: ML_OPSET,
            });
        }
        pb::ModelProto {
            ir_version: IR_VERSION,
            opset_import,
            producer_name: PRODUCER.into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            doc_string: doc.into(),
            graph: Some(pb::GraphProto {
                name: "vane".into(),
                node: self.nodes,
                initializer: self.initializers,
                input: vec![float_value_info(INPUT, n_features)],
                output: vec![float_value_info(output_name, output_width)],
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// `name: float[N, width]`.
fn float_value_info(name: &str, width: usize) -> pb::ValueInfoProto {
    let dims = vec![
        Dimension {
            value: Some(dimension::Value::DimParam(BATCH_DIM.into())),
            ..Default::default()
        },
        Dimension {
            value: Some(dimension::Value::DimValue(width as i64)),
            ..Default::default()
        },
    ];
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(pb::TensorShapeProto { dim: dims }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn attr(name: &str, ty: AttributeType) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: ty as i32,
        ..Default::default()
    }
}

pub(crate) fn attr_int(name: &str, i: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        i,
        ..attr(name, AttributeType::Int)
    }
}

pub(crate) fn attr_ints(name: &str, ints: Vec<i64>) -> pb::AttributeProto {
    pb::AttributeProto {
        ints,
        ..attr(name, AttributeType::Ints)
    }
}

pub(crate) fn attr_floats(name: &str, floats: Vec<f32>) -> pb::AttributeProto {
    pb::AttributeProto {
        floats,
        ..attr(name, AttributeType::Floats)
    }
}

pub(crate) fn attr_string(name: &str, s: &str) -> pb::AttributeProto {
    pb::AttributeProto {
        s: s.as_bytes().to_vec(),
        ..attr(name, AttributeType::String)
    }
}

pub(crate) fn attr_strings(name: &str, strings: Vec<&str>) -> pb::AttributeProto {
    pb::AttributeProto {
        strings: strings.into_iter().map(|s| s.as_bytes().to_vec()).collect(),
        ..attr(name, AttributeType::Strings)
    }
}

fn check_batch(rows: &[f32], n_features: usize, expected: usize) -> usize {
    assert_eq!(
        n_features, expected,
        "model takes {expected} features, got n_features = {n_features}"
    );
    assert!(
        n_features > 0 && rows.len().is_multiple_of(n_features),
        "{} values is not a whole number of rows of {n_features}",
        rows.len()
    );
    rows.len() / n_features
}

// ---------------------------------------------------------------------------------------------
// Preprocessing

/// How one input column enters a model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Column {
    /// Standardized: `(x - mean) * (1 / scale)`, the reciprocal rounded to `f32` once.
    /// (Multiplying keeps every runtime bit-exact; tract's vectorized `Div` is not.)
    Numeric { mean: f32, scale: f32 },
    /// A category code `0..cardinality` expanded to `cardinality` one-hot columns. A value that
    /// is not exactly one of the codes (out of vocab, NaN) gives all zeros.
    Categorical { cardinality: usize },
    /// Used as is.
    Passthrough,
}

/// Per-column preprocessing from the raw `[N, F]` tensor to the `[N, width]` model features.
///
/// Output layout: first the numeric and passthrough columns in input order, then one one-hot
/// block per categorical column in input order. Width = numeric/passthrough count + sum of
/// cardinalities.
///
/// Missing values: by default a NaN stays NaN through standardization (and so reaches the
/// score). With [`impute_missing`](Self::impute_missing) a NaN in a `Numeric` column is
/// replaced by that column's `mean` first, so it standardizes to exactly 0; the graph does
/// this with `Where(IsNaN(x), fill, x)`, which ONNX Runtime and tract both run. Passthrough
/// columns keep NaN; a categorical NaN one-hots to all zeros either way.
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocess {
    pub columns: Vec<Column>,
    /// Replace NaN in `Numeric` columns by the column mean (see above).
    pub impute_missing: bool,
}

impl Preprocess {
    pub fn new(columns: Vec<Column>) -> Self {
        Self {
            columns,
            impute_missing: false,
        }
    }

    /// The same preprocessing with mean imputation of missing numeric values.
    pub fn with_mean_imputation(mut self) -> Self {
        self.impute_missing = true;
        self
    }

    /// `n` raw columns, unchanged (what tree models use: they split on raw values and codes).
    pub fn passthrough(n: usize) -> Self {
        Self::new(vec![Column::Passthrough; n])
    }

    /// Number of raw input columns.
    pub fn n_inputs(&self) -> usize {
        self.columns.len()
    }

    /// Number of output columns.
    pub fn width(&self) -> usize {
        self.columns
            .iter()
            .map(|c| match c {
                Column::Categorical { cardinality } => *cardinality,
                _ => 1,
            })
            .sum()
    }

    /// True when the output is the input (no graph nodes are emitted).
    pub fn is_identity(&self) -> bool {
        self.columns.iter().all(|c| *c == Column::Passthrough)
    }

    pub fn validate(&self) -> Result<(), ModelError> {
        if self.columns.is_empty() {
            return Err(invalid("preprocessing has no columns"));
        }
        for (i, c) in self.columns.iter().enumerate() {
            match *c {
                Column::Numeric { mean, scale } => {
                    if !mean.is_finite()
                        || !scale.is_finite()
                        || !scale.recip().is_finite()
                        || scale == 0.0
                    {
                        return Err(invalid(format!(
                            "column {i}: mean {mean} / scale {scale} must be finite with scale != 0"
                        )));
                    }
                }
                Column::Categorical { cardinality } => {
                    if cardinality == 0 || cardinality > 1 << 24 {
                        return Err(invalid(format!(
                            "column {i}: cardinality {cardinality} must be in 1..=2^24"
                        )));
                    }
                }
                Column::Passthrough => {}
            }
        }
        Ok(())
    }

    /// Appends the preprocessed features of one raw row to `out` (the oracle).
    pub fn apply_row(&self, row: &[f32], out: &mut Vec<f32>) {
        debug_assert_eq!(row.len(), self.columns.len());
        for (x, c) in row.iter().zip(&self.columns) {
            match *c {
                Column::Numeric { mean, scale } => {
                    let x = if self.impute_missing && x.is_nan() {
                        mean
                    } else {
                        *x
                    };
                    out.push((x - mean) * scale.recip())
                }
                Column::Passthrough => out.push(*x),
                Column::Categorical { .. } => {}
            }
        }
        for (x, c) in row.iter().zip(&self.columns) {
            if let Column::Categorical { cardinality } = *c {
                out.extend((0..cardinality).map(|k| if *x == k as f32 { 1.0 } else { 0.0 }));
            }
        }
    }

    /// Preprocesses a row-major batch of raw rows; returns `[N, width]` row-major.
    pub fn transform(&self, rows: &[f32], n_features: usize) -> Vec<f32> {
        let n = check_batch(rows, n_features, self.n_inputs());
        let mut out = Vec::with_capacity(n * self.width());
        for row in rows.chunks_exact(n_features) {
            self.apply_row(row, &mut out);
        }
        out
    }

    /// A standalone graph `input [N, F]` → `features [N, width]`, for testing the encoding.
    pub fn to_onnx(&self) -> Vec<u8> {
        self.validate().unwrap_or_else(|e| panic!("{e}"));
        let mut g = GraphBuilder::new();
        let out = self.emit(&mut g, INPUT);
        g.finish(
            &out,
            self.n_inputs(),
            FEATURES,
            self.width(),
            "vane preprocessing",
        )
        .encode_to_vec()
    }

    /// Emits the preprocessing of value `x` and returns the name of the `[N, width]` result.
    /// Emits nothing for an all-passthrough preprocessing.
    pub(crate) fn emit(&self, g: &mut GraphBuilder, x: &str) -> String {
        if self.is_identity() {
            return x.to_string();
        }
        let mut dense_idx = Vec::new();
        let mut means = Vec::new();
        let mut inv_scales = Vec::new();
        // Value substituted for NaN per dense column: the mean (numeric), NaN (passthrough).
        let mut fills = Vec::new();
        let mut onehot_idx = Vec::new();
        let mut codes = Vec::new();
        for (i, c) in self.columns.iter().enumerate() {
            match *c {
                Column::Numeric { mean, scale } => {
                    dense_idx.push(i as i64);
                    means.push(mean);
                    inv_scales.push(scale.recip());
                    fills.push(mean);
                }
                // (x - 0) * 1 == x exactly in IEEE arithmetic, so passthrough columns can share
                // the standardization nodes with numeric ones.
                Column::Passthrough => {
                    dense_idx.push(i as i64);
                    means.push(0.0);
                    inv_scales.push(1.0);
                    fills.push(f32::NAN);
                }
                Column::Categorical { cardinality } => {
                    onehot_idx.extend(std::iter::repeat_n(i as i64, cardinality));
                    codes.extend((0..cardinality).map(|k| k as f32));
                }
            }
        }
        // The columns are picked and transformed in column-major layout: `Gather` along axis 1
        // copies element by element (in ONNX Runtime ~0.14 µs per row for these widths, which
        // made it most of a batch's cost), along axis 0 a whole column at once. Two
        // `Transpose`s cost less than that from a few rows up (tract pays a little at small
        // batches; BENCHMARKS.md run U), and every value is unchanged.
        let xt = g.op("Transpose", &[x], vec![attr_ints("perm", vec![1, 0])]);
        let mut parts = Vec::new();
        if !dense_idx.is_empty() {
            let idx = g.const_i64("dense_columns", &[dense_idx.len() as i64], &dense_idx);
            let mut cols = g.op("Gather", &[&xt, &idx], vec![attr_int("axis", 0)]);
            // One value per column: shaped [w, 1] to broadcast over the rows.
            let w = means.len() as i64;
            if self.impute_missing && fills.iter().any(|f| !f.is_nan()) {
                let nan = g.op("IsNaN", &[&cols], vec![]);
                let fill = g.const_f32("fill", &[w, 1], &fills);
                cols = g.op("Where", &[&nan, &fill, &cols], vec![]);
            }
            let mean = g.const_f32("mean", &[w, 1], &means);
            let inv_scale = g.const_f32("inv_scale", &[w, 1], &inv_scales);
            let centered = g.op("Sub", &[&cols, &mean], vec![]);
            parts.push(g.op("Mul", &[&centered, &inv_scale], vec![]));
        }
        if !onehot_idx.is_empty() {
            // One Gather repeats each categorical column once per category; one Equal against
            // [0, 1, …, K-1, 0, 1, …] then yields every one-hot block at once.
            let w = onehot_idx.len() as i64;
            let idx = g.const_i64("onehot_columns", &[w], &onehot_idx);
            let cols = g.op("Gather", &[&xt, &idx], vec![attr_int("axis", 0)]);
            let codes = g.const_f32("codes", &[w, 1], &codes);
            let eq = g.op("Equal", &[&cols, &codes], vec![]);
            parts.push(g.op("Cast", &[&eq], vec![attr_int("to", DataType::Float as i64)]));
        }
        let features = if parts.len() == 1 {
            parts.remove(0)
        } else {
            let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
            g.op("Concat", &refs, vec![attr_int("axis", 0)])
        };
        g.op(
            "Transpose",
            &[&features],
            vec![attr_ints("perm", vec![1, 0])],
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Logistic regression

/// `sigmoid(preprocess(x) · weights + bias)`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogisticRegression {
    pub preprocess: Preprocess,
    /// One weight per preprocessed column.
    pub weights: Vec<f32>,
    pub bias: f32,
}

impl LogisticRegression {
    pub fn n_features(&self) -> usize {
        self.preprocess.n_inputs()
    }

    pub fn validate(&self) -> Result<(), ModelError> {
        self.preprocess.validate()?;
        if self.weights.len() != self.preprocess.width() {
            return Err(invalid(format!(
                "{} weights for {} preprocessed columns",
                self.weights.len(),
                self.preprocess.width()
            )));
        }
        if !self.bias.is_finite() || self.weights.iter().any(|w| !w.is_finite()) {
            return Err(invalid("weights and bias must be finite"));
        }
        Ok(())
    }

    /// The logit of one preprocessed row.
    fn row_logit(&self, features: &[f32]) -> f32 {
        let dot = features
            .iter()
            .zip(&self.weights)
            .fold(0.0f32, |acc, (x, w)| acc + x * w);
        dot + self.bias
    }

    /// The logit (pre-sigmoid score) per row.
    pub fn logits(&self, rows: &[f32], n_features: usize) -> Vec<f32> {
        let pre = self.preprocess.transform(rows, n_features);
        pre.chunks_exact(self.preprocess.width())
            .map(|f| self.row_logit(f))
            .collect()
    }

    /// P(default) per row (the oracle).
    pub fn predict(&self, rows: &[f32], n_features: usize) -> Vec<f32> {
        self.logits(rows, n_features)
            .into_iter()
            .map(sigmoid)
            .collect()
    }

    /// Serialized ONNX. Panics if [`validate`](Self::validate) fails.
    pub fn to_onnx(&self) -> Vec<u8> {
        self.validate().unwrap_or_else(|e| panic!("{e}"));
        let mut g = GraphBuilder::new();
        let x = self.preprocess.emit(&mut g, INPUT);
        let w = g.const_f32("weights", &[self.weights.len() as i64, 1], &self.weights);
        let b = g.const_f32("bias", &[1], &[self.bias]);
        let mm = g.op("MatMul", &[&x, &w], vec![]);
        let z = g.op("Add", &[&mm, &b], vec![]);
        let p = g.op("Sigmoid", &[&z], vec![]);
        g.finish(&p, self.n_features(), OUTPUT, 1, "vane logistic regression")
            .encode_to_vec()
    }
}

// ---------------------------------------------------------------------------------------------
// MLP

/// A fully connected layer: `y = x · weights + bias`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    /// `n_in × n_out`, row-major (row = input unit).
    pub weights: Vec<f32>,
    /// `n_out` values.
    pub bias: Vec<f32>,
}

impl Dense {
    pub fn n_out(&self) -> usize {
        self.bias.len()
    }

    pub fn n_in(&self) -> usize {
        self.weights.len().checked_div(self.bias.len()).unwrap_or(0)
    }

    /// Appends `x · weights + bias` to `out`, summing inputs in order for each unit.
    fn forward(&self, x: &[f32], out: &mut Vec<f32>) {
        let n_out = self.n_out();
        for j in 0..n_out {
            let dot = x.iter().enumerate().fold(0.0f32, |acc, (i, xi)| {
                acc + xi * self.weights[i * n_out + j]
            });
            out.push(dot + self.bias[j]);
        }
    }
}

/// `sigmoid(L_k(relu(… relu(L_1(preprocess(x))))))`; the last layer has one unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Mlp {
    pub preprocess: Preprocess,
    pub layers: Vec<Dense>,
}

impl Mlp {
    /// `depth` hidden layers of `width` units plus a one-unit output layer; He-uniform weights
    /// and small uniform biases drawn from `seed` (deterministic across runs and platforms).
    pub fn seeded(preprocess: Preprocess, width: usize, depth: usize, seed: u64) -> Self {
        let mut rng = SplitMix64::new(seed);
        let mut sizes = vec![preprocess.width()];
        sizes.extend(std::iter::repeat_n(width, depth));
        sizes.push(1);
        let layers = sizes
            .windows(2)
            .map(|w| {
                let (n_in, n_out) = (w[0], w[1]);
                let limit = (6.0 / n_in as f64).sqrt();
                Dense {
                    weights: (0..n_in * n_out)
                        .map(|_| rng.uniform(-limit, limit) as f32)
                        .collect(),
                    bias: (0..n_out).map(|_| rng.uniform(-0.1, 0.1) as f32).collect(),
                }
            })
            .collect();
        Self { preprocess, layers }
    }

    pub fn n_features(&self) -> usize {
        self.preprocess.n_inputs()
    }

    pub fn validate(&self) -> Result<(), ModelError> {
        self.preprocess.validate()?;
        let mut n_in = self.preprocess.width();
        if self.layers.is_empty() {
            return Err(invalid("an MLP needs at least one layer"));
        }
        for (i, l) in self.layers.iter().enumerate() {
            if l.bias.is_empty() || l.weights.len() != n_in * l.n_out() {
                return Err(invalid(format!(
                    "layer {i}: {} weights and {} biases do not fit {n_in} inputs",
                    l.weights.len(),
                    l.bias.len()
                )));
            }
            if l.weights.iter().chain(&l.bias).any(|v| !v.is_finite()) {
                return Err(invalid(format!("layer {i}: weights must be finite")));
            }
            n_in = l.n_out();
        }
        if n_in != 1 {
            return Err(invalid(format!(
                "the last layer has {n_in} units; expected 1"
            )));
        }
        Ok(())
    }

    /// P(default) per row (the oracle).
    pub fn predict(&self, rows: &[f32], n_features: usize) -> Vec<f32> {
        self.logits(rows, n_features)
            .into_iter()
            .map(sigmoid)
            .collect()
    }

    /// The output unit's value (pre-sigmoid) per row.
    pub fn logits(&self, rows: &[f32], n_features: usize) -> Vec<f32> {
        let pre = self.preprocess.transform(rows, n_features);
        let last = self.layers.len() - 1;
        pre.chunks_exact(self.preprocess.width())
            .map(|row| {
                let mut x = row.to_vec();
                let mut y = Vec::new();
                for (i, layer) in self.layers.iter().enumerate() {
                    y.clear();
                    layer.forward(&x, &mut y);
                    if i < last {
                        y.iter_mut().for_each(|v| *v = v.max(0.0));
                    }
                    std::mem::swap(&mut x, &mut y);
                }
                x[0]
            })
            .collect()
    }

    /// Serialized ONNX. Panics if [`validate`](Self::validate) fails.
    pub fn to_onnx(&self) -> Vec<u8> {
        self.validate().unwrap_or_else(|e| panic!("{e}"));
        let mut g = GraphBuilder::new();
        let mut x = self.preprocess.emit(&mut g, INPUT);
        let last = self.layers.len() - 1;
        for (i, l) in self.layers.iter().enumerate() {
            let w = g.const_f32(
                &format!("w{i}"),
                &[l.n_in() as i64, l.n_out() as i64],
                &l.weights,
            );
            let b = g.const_f32(&format!("b{i}"), &[l.n_out() as i64], &l.bias);
            let mm = g.op("MatMul", &[&x, &w], vec![]);
            let z = g.op("Add", &[&mm, &b], vec![]);
            x = g.op(if i < last { "Relu" } else { "Sigmoid" }, &[&z], vec![]);
        }
        g.finish(
            &x,
            self.n_features(),
            OUTPUT,
            1,
            "vane multilayer perceptron",
        )
        .encode_to_vec()
    }
}

// ---------------------------------------------------------------------------------------------
// Tree ensembles

/// One node of a [`Tree`]; node 0 is the root.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TreeNode {
    /// Go to `left` when `x[feature] <= threshold` (ONNX `BRANCH_LEQ` true branch), else to
    /// `right` (also for NaN). Children have larger indices than their parent.
    Split {
        feature: usize,
        threshold: f32,
        left: usize,
        right: usize,
    },
    Leaf {
        value: f32,
    },
}

/// A binary decision tree over raw input columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Tree {
    pub nodes: Vec<TreeNode>,
}

impl Tree {
    /// The leaf value reached by `row`.
    pub fn leaf_value(&self, row: &[f32]) -> f32 {
        let mut i = 0;
        loop {
            match self.nodes[i] {
                TreeNode::Leaf { value } => return value,
                TreeNode::Split {
                    feature,
                    threshold,
                    left,
                    right,
                } => {
                    i = if row[feature] <= threshold {
                        left
                    } else {
                        right
                    }
                }
            }
        }
    }

    fn validate(&self, t: usize, n_features: usize) -> Result<(), ModelError> {
        if self.nodes.is_empty() {
            return Err(invalid(format!("tree {t} has no nodes")));
        }
        let mut parents = vec![0usize; self.nodes.len()];
        for (i, node) in self.nodes.iter().enumerate() {
            match *node {
                TreeNode::Leaf { value } => {
                    if !value.is_finite() {
                        return Err(invalid(format!("tree {t} node {i}: leaf value {value}")));
                    }
                }
                TreeNode::Split {
                    feature,
                    threshold,
                    left,
                    right,
                } => {
                    if feature >= n_features {
                        return Err(invalid(format!(
                            "tree {t} node {i}: feature {feature} >= n_features {n_features}"
                        )));
                    }
                    if !threshold.is_finite() {
                        return Err(invalid(format!("tree {t} node {i}: threshold {threshold}")));
                    }
                    for c in [left, right] {
                        if c <= i || c >= self.nodes.len() {
                            return Err(invalid(format!(
                                "tree {t} node {i}: child {c} must be after it and < {}",
                                self.nodes.len()
                            )));
                        }
                        parents[c] += 1;
                    }
                }
            }
        }
        if let Some(i) = (1..self.nodes.len()).find(|&i| parents[i] != 1) {
            return Err(invalid(format!(
                "tree {t} node {i} has {} parents; expected 1",
                parents[i]
            )));
        }
        Ok(())
    }
}

/// `sigmoid(base_score + Σ_trees leaf value)` — a boosted ensemble over raw columns.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeEnsemble {
    pub n_features: usize,
    pub trees: Vec<Tree>,
    pub base_score: f32,
}

impl TreeEnsemble {
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.n_features == 0 {
            return Err(invalid("a tree ensemble needs at least one feature"));
        }
        if self.trees.is_empty() {
            return Err(invalid("a tree ensemble needs at least one tree"));
        }
        if !self.base_score.is_finite() {
            return Err(invalid("base_score must be finite"));
        }
        for (t, tree) in self.trees.iter().enumerate() {
            tree.validate(t, self.n_features)?;
        }
        Ok(())
    }

    /// Sum of leaf values in tree order, as the runtimes accumulate them.
    pub fn margin(&self, row: &[f32]) -> f32 {
        self.trees
            .iter()
            .fold(0.0f32, |acc, t| acc + t.leaf_value(row))
    }

    /// P(default) per row (the oracle).
    pub fn predict(&self, rows: &[f32], n_features: usize) -> Vec<f32> {
        check_batch(rows, n_features, self.n_features);
        rows.chunks_exact(n_features)
            .map(|row| sigmoid(self.margin(row) + self.base_score))
            .collect()
    }

    /// Serialized ONNX. Panics if [`validate`](Self::validate) fails.
    ///
    /// Encoding (checked against ONNX Runtime 1.31 and tract 0.23.9):
    /// - `ai.onnx.ml` `TreeEnsembleClassifier`, `classlabels_int64s = [0, 1]`,
    ///   `post_transform = "NONE"`, and **no** `base_values`: with `base_values`, ORT's binary
    ///   path ignores the leaves, and a single entry makes tract refuse the model. The base
    ///   score is added afterwards with a plain `Add`.
    /// - Every leaf is listed once, under class id 1, so the classifier's `probabilities`
    ///   column 1 is exactly the sum of leaf values in both runtimes (column 0 stays 0).
    ///   Leaves under class id 0 would put tract on its `binary_result_layout` path, which
    ///   emits `[1 - s, s]`.
    /// - The trees are split over several classifier nodes of at most
    ///   [`TREES_PER_NODE`] trees whose margins are summed (`Sum`): tract 0.23 finds a leaf's
    ///   weights by walking the node's whole leaf list from the start, so one node holding
    ///   every tree costs time quadratic in the ensemble size per row.
    /// - Tree ids start at 0 and increase by 1 within each node; node ids are 0.. per tree;
    ///   nodes are listed sorted by (tree, node), as tract requires.
    /// - Only `probabilities` is read; the `label` output is left dangling (tract's labels can
    ///   be wrong).
    pub fn to_onnx(&self) -> Vec<u8> {
        self.to_onnx_chunked(TREES_PER_NODE)
    }

    /// [`to_onnx`](Self::to_onnx) with `trees_per_node` trees per classifier node.
    pub fn to_onnx_chunked(&self, trees_per_node: usize) -> Vec<u8> {
        self.validate().unwrap_or_else(|e| panic!("{e}"));
        let mut g = GraphBuilder::new();
        let one = g.const_i64("one", &[1], &[1]);
        let two = g.const_i64("two", &[1], &[2]);
        let mut margins = Vec::new();
        for chunk in self.trees.chunks(trees_per_node.max(1)) {
            let outs = g.op_in(
                ML_DOMAIN,
                "TreeEnsembleClassifier",
                &[INPUT],
                2,
                tree_attributes(chunk),
            );
            margins.push(g.op("Slice", &[&outs[1], &one, &two, &one], vec![]));
        }
        let margin = if margins.len() == 1 {
            margins.remove(0)
        } else {
            let refs: Vec<&str> = margins.iter().map(String::as_str).collect();
            g.op("Sum", &refs, vec![])
        };
        let base = g.const_f32("base_score", &[1], &[self.base_score]);
        let z = g.op("Add", &[&margin, &base], vec![]);
        let p = g.op("Sigmoid", &[&z], vec![]);
        g.finish(&p, self.n_features, OUTPUT, 1, "vane tree ensemble")
            .encode_to_vec()
    }
}

/// Trees per `TreeEnsembleClassifier` node in [`TreeEnsemble::to_onnx`].
pub const TREES_PER_NODE: usize = 16;

/// Attributes of one `TreeEnsembleClassifier` holding `trees` (ids local to the node).
fn tree_attributes(trees: &[Tree]) -> Vec<pb::AttributeProto> {
    let mut tree_ids = Vec::new();
    let mut node_ids = Vec::new();
    let mut feature_ids = Vec::new();
    let mut modes = Vec::new();
    let mut values = Vec::new();
    let mut true_ids = Vec::new();
    let mut false_ids = Vec::new();
    let mut class_tree_ids = Vec::new();
    let mut class_node_ids = Vec::new();
    let mut class_weights = Vec::new();
    for (t, tree) in trees.iter().enumerate() {
        for (n, node) in tree.nodes.iter().enumerate() {
            tree_ids.push(t as i64);
            node_ids.push(n as i64);
            match *node {
                TreeNode::Split {
                    feature,
                    threshold,
                    left,
                    right,
                } => {
                    feature_ids.push(feature as i64);
                    modes.push("BRANCH_LEQ");
                    values.push(threshold);
                    true_ids.push(left as i64);
                    false_ids.push(right as i64);
                }
                TreeNode::Leaf { value } => {
                    feature_ids.push(0);
                    modes.push("LEAF");
                    values.push(0.0);
                    true_ids.push(0);
                    false_ids.push(0);
                    class_tree_ids.push(t as i64);
                    class_node_ids.push(n as i64);
                    class_weights.push(value);
                }
            }
        }
    }
    let class_ids = vec![1; class_weights.len()];
    vec![
        attr_ints("classlabels_int64s", vec![0, 1]),
        attr_ints("nodes_treeids", tree_ids),
        attr_ints("nodes_nodeids", node_ids),
        attr_ints("nodes_featureids", feature_ids),
        attr_strings("nodes_modes", modes),
        attr_floats("nodes_values", values),
        attr_ints("nodes_truenodeids", true_ids),
        attr_ints("nodes_falsenodeids", false_ids),
        attr_ints("class_treeids", class_tree_ids),
        attr_ints("class_nodeids", class_node_ids),
        attr_ints("class_ids", class_ids),
        attr_floats("class_weights", class_weights),
        attr_string("post_transform", "NONE"),
    ]
}

// ---------------------------------------------------------------------------------------------

/// Any of the model types, for code that handles them uniformly.
#[derive(Debug, Clone, PartialEq)]
pub enum Model {
    LogisticRegression(LogisticRegression),
    Mlp(Mlp),
    TreeEnsemble(TreeEnsemble),
}

impl Model {
    /// A short stable name of the model family (`logistic_regression`, `mlp`, `tree_ensemble`).
    pub fn kind(&self) -> &'static str {
        match self {
            Model::LogisticRegression(_) => "logistic_regression",
            Model::Mlp(_) => "mlp",
            Model::TreeEnsemble(_) => "tree_ensemble",
        }
    }

    pub fn n_features(&self) -> usize {
        match self {
            Model::LogisticRegression(m) => m.n_features(),
            Model::Mlp(m) => m.n_features(),
            Model::TreeEnsemble(m) => m.n_features,
        }
    }

    pub fn validate(&self) -> Result<(), ModelError> {
        match self {
            Model::LogisticRegression(m) => m.validate(),
            Model::Mlp(m) => m.validate(),
            Model::TreeEnsemble(m) => m.validate(),
        }
    }

    pub fn predict(&self, rows: &[f32], n_features: usize) -> Vec<f32> {
        match self {
            Model::LogisticRegression(m) => m.predict(rows, n_features),
            Model::Mlp(m) => m.predict(rows, n_features),
            Model::TreeEnsemble(m) => m.predict(rows, n_features),
        }
    }

    pub fn to_onnx(&self) -> Vec<u8> {
        match self {
            Model::LogisticRegression(m) => m.to_onnx(),
            Model::Mlp(m) => m.to_onnx(),
            Model::TreeEnsemble(m) => m.to_onnx(),
        }
    }
}

impl From<LogisticRegression> for Model {
    fn from(m: LogisticRegression) -> Self {
        Model::LogisticRegression(m)
    }
}

impl From<Mlp> for Model {
    fn from(m: Mlp) -> Self {
        Model::Mlp(m)
    }
}

impl From<TreeEnsemble> for Model {
    fn from(m: TreeEnsemble) -> Self {
        Model::TreeEnsemble(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mixed() -> Preprocess {
        Preprocess::new(vec![
            Column::Numeric {
                mean: 10.0,
                scale: 4.0,
            },
            Column::Categorical { cardinality: 3 },
            Column::Passthrough,
            Column::Categorical { cardinality: 2 },
        ])
    }

    fn decode(bytes: &[u8]) -> pb::ModelProto {
        pb::ModelProto::decode(bytes).unwrap()
    }

    #[test]
    fn preprocess_layout_is_dense_then_onehot_blocks() {
        let p = mixed();
        assert_eq!(p.width(), 2 + 3 + 2);
        let out = p.transform(&[14.0, 2.0, -7.5, 0.0, 6.0, 5.0, 1.0, 1.0], 4);
        assert_eq!(
            out,
            vec![
                1.0, -7.5, 0.0, 0.0, 1.0, 1.0, 0.0, // row 0
                -1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, // row 1: code 5 is out of vocab
            ]
        );
    }

    #[test]
    fn mean_imputation_standardizes_nan_to_zero() {
        let p = mixed();
        let row = [f32::NAN, 1.0, f32::NAN, 0.0];
        let plain = p.transform(&row, 4);
        assert!(plain[0].is_nan() && plain[1].is_nan());
        let imputed = p.clone().with_mean_imputation().transform(&row, 4);
        assert_eq!(imputed[0], 0.0, "numeric NaN -> mean -> 0");
        assert!(imputed[1].is_nan(), "passthrough keeps NaN");
        assert_eq!(&imputed[2..], &plain[2..]);
        let graph = decode(&p.with_mean_imputation().to_onnx()).graph.unwrap();
        let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
        assert!(ops.contains(&"IsNaN") && ops.contains(&"Where"), "{ops:?}");
        let graph = decode(&mixed().to_onnx()).graph.unwrap();
        assert!(
            !graph.node.iter().any(|n| n.op_type == "Where"),
            "opt-in only"
        );
    }

    #[test]
    fn columns_are_gathered_whole_from_the_transposed_input() {
        let graph = decode(&mixed().with_mean_imputation().to_onnx())
            .graph
            .unwrap();
        let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
        assert_eq!(ops.first(), Some(&"Transpose"), "{ops:?}");
        assert_eq!(ops.last(), Some(&"Transpose"), "{ops:?}");
        let gathers: Vec<_> = graph
            .node
            .iter()
            .filter(|n| n.op_type == "Gather")
            .collect();
        assert_eq!(gathers.len(), 2);
        for n in gathers {
            let axis = n.attribute.iter().find(|a| a.name == "axis").map(|a| a.i);
            assert_eq!(
                axis,
                Some(0),
                "{}: a Gather along axis 1 copies per element",
                n.name
            );
        }
    }

    #[test]
    fn passthrough_preprocess_emits_no_nodes() {
        let p = Preprocess::passthrough(3);
        assert!(p.is_identity());
        let mut g = GraphBuilder::new();
        assert_eq!(p.emit(&mut g, INPUT), INPUT);
        assert!(g.nodes.is_empty());
        let m = decode(&p.to_onnx());
        let graph = m.graph.unwrap();
        assert_eq!(graph.node.len(), 1);
        assert_eq!(graph.node[0].op_type, "Identity");
    }

    #[test]
    fn graphs_declare_io_and_opsets() {
        let lr = LogisticRegression {
            preprocess: mixed(),
            weights: vec![0.5; 7],
            bias: -1.0,
        };
        let m = decode(&lr.to_onnx());
        assert_eq!(m.ir_version, 8);
        assert_eq!(m.opset_import.len(), 1, "no ai.onnx.ml unless used");
        let graph = m.graph.unwrap();
        assert_eq!(graph.input[0].name, INPUT);
        assert_eq!(graph.output[0].name, OUTPUT);
        assert_eq!(graph.node.last().unwrap().output, vec![OUTPUT.to_string()]);
        let names: HashSet<_> = graph.node.iter().flat_map(|n| n.output.clone()).collect();
        assert_eq!(names.len(), graph.node.len(), "value names are unique");

        let trees = stump_ensemble();
        let m = decode(&trees.to_onnx());
        assert!(
            m.opset_import
                .iter()
                .any(|o| o.domain == ML_DOMAIN && o.version == 3)
        );
        let graph = m.graph.unwrap();
        let clf = &graph.node[0];
        assert!(!clf.attribute.iter().any(|a| a.name == "base_values"));
        let class_ids = clf
            .attribute
            .iter()
            .find(|a| a.name == "class_ids")
            .unwrap();
        assert_eq!(
            class_ids.ints,
            vec![1, 1, 1, 1],
            "leaves listed once, under class 1"
        );

        // Larger ensembles are split over several classifier nodes, summed.
        let mut big = stump_ensemble();
        let one = big.trees[0].clone();
        big.trees = vec![one; 2 * TREES_PER_NODE + 1];
        let graph = decode(&big.to_onnx()).graph.unwrap();
        let classifiers = graph
            .node
            .iter()
            .filter(|n| n.op_type == "TreeEnsembleClassifier")
            .count();
        assert_eq!(classifiers, 3);
        assert!(
            graph
                .node
                .iter()
                .any(|n| n.op_type == "Sum" && n.input.len() == 3)
        );
    }

    fn stump_ensemble() -> TreeEnsemble {
        let stump = |f, t, l, r| Tree {
            nodes: vec![
                TreeNode::Split {
                    feature: f,
                    threshold: t,
                    left: 1,
                    right: 2,
                },
                TreeNode::Leaf { value: l },
                TreeNode::Leaf { value: r },
            ],
        };
        TreeEnsemble {
            n_features: 2,
            trees: vec![stump(0, 1.5, -0.25, 0.5), stump(1, 0.0, 0.125, -1.0)],
            base_score: 0.25,
        }
    }

    #[test]
    fn trees_take_the_true_branch_on_equality() {
        let m = stump_ensemble();
        assert_eq!(m.margin(&[1.5, 0.0]), -0.25 + 0.125);
        assert_eq!(m.margin(&[1.5000001, 0.1]), 0.5 - 1.0);
        assert_eq!(m.margin(&[f32::NAN, f32::NAN]), 0.5 - 1.0, "NaN goes right");
        let p = m.predict(&[1.5, 0.0], 2)[0];
        assert!((p - sigmoid(0.125)).abs() < 1e-7);
    }

    #[test]
    fn invalid_models_are_named() {
        let mut m = stump_ensemble();
        m.trees[0].nodes[0] = TreeNode::Split {
            feature: 0,
            threshold: 0.0,
            left: 0,
            right: 2,
        };
        assert!(
            m.validate()
                .unwrap_err()
                .to_string()
                .contains("tree 0 node 0")
        );
        let mut m = stump_ensemble();
        m.n_features = 1;
        assert!(m.validate().unwrap_err().to_string().contains("feature 1"));

        let lr = LogisticRegression {
            preprocess: mixed(),
            weights: vec![0.5; 6],
            bias: 0.0,
        };
        assert!(lr.validate().unwrap_err().to_string().contains("6 weights"));

        let mut mlp = Mlp::seeded(mixed(), 4, 2, 1);
        mlp.layers.pop();
        assert!(mlp.validate().unwrap_err().to_string().contains("4 units"));
        let p = Preprocess::new(vec![Column::Numeric {
            mean: 0.0,
            scale: 0.0,
        }]);
        assert!(p.validate().is_err());
    }

    #[test]
    fn seeded_mlp_is_deterministic_and_shaped() {
        let a = Mlp::seeded(mixed(), 8, 3, 42);
        assert_eq!(a, Mlp::seeded(mixed(), 8, 3, 42));
        assert_ne!(a, Mlp::seeded(mixed(), 8, 3, 43));
        let shapes: Vec<_> = a.layers.iter().map(|l| (l.n_in(), l.n_out())).collect();
        assert_eq!(shapes, vec![(7, 8), (8, 8), (8, 8), (8, 1)]);
        a.validate().unwrap();
        assert_eq!(a.to_onnx(), a.clone().to_onnx());
    }

    #[test]
    fn mlp_oracle_applies_relu_between_layers() {
        let mlp = Mlp {
            preprocess: Preprocess::passthrough(1),
            layers: vec![
                Dense {
                    weights: vec![1.0, -1.0],
                    bias: vec![0.0, 0.0],
                },
                Dense {
                    weights: vec![2.0, 3.0],
                    bias: vec![0.5],
                },
            ],
        };
        let p = mlp.predict(&[2.0, -1.0], 1);
        assert_eq!(p, vec![sigmoid(4.5), sigmoid(3.5)]);
    }
}
