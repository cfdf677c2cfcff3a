//! tract backend: pure Rust, always available.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::dims;

use super::{BackendError, DType, Engine, LoadOptions, Output, OutputMeta, Session, TensorData};

/// A model optimized by tract; workers share the plan and keep their own state.
pub struct TractEngine {
    plan: Arc<TypedRunnableModel>,
    width: usize,
    outputs: Vec<OutputMeta>,
}

fn dtype_of(dt: DatumType) -> Option<DType> {
    Some(match dt {
        DatumType::F32 => DType::F32,
        DatumType::F64 => DType::F64,
        DatumType::I8 => DType::I8,
        DatumType::I16 => DType::I16,
        DatumType::I32 => DType::I32,
        DatumType::I64 => DType::I64,
        DatumType::U8 => DType::U8,
        DatumType::U16 => DType::U16,
        DatumType::U32 => DType::U32,
        DatumType::U64 => DType::U64,
        DatumType::Bool => DType::Bool,
        _ => return None,
    })
}

fn datum_of(dtype: DType) -> Option<DatumType> {
    Some(match dtype {
        DType::F32 => DatumType::F32,
        DType::F64 => DatumType::F64,
        DType::I8 => DatumType::I8,
        DType::I16 => DatumType::I16,
        DType::I32 => DatumType::I32,
        DType::I64 => DatumType::I64,
        DType::U8 => DatumType::U8,
        DType::U16 => DatumType::U16,
        DType::U32 => DatumType::U32,
        DType::U64 => DatumType::U64,
        DType::Bool => DatumType::Bool,
        DType::Str => return None,
    })
}

impl TractEngine {
    pub fn load(bytes: &[u8], opts: &LoadOptions) -> Result<Self, BackendError> {
        let load_err = |e: TractError| BackendError::Load(format!("tract: {e:#}"));
        let onnx = tract_onnx::onnx();
        let proto = onnx
            .proto_model_for_read(&mut &bytes[..])
            .map_err(load_err)?;
        // tract turns an unknown operator into a placeholder that fails later with a vaguer
        // message; name it up front.
        if let Some(graph) = &proto.graph {
            for node in &graph.node {
                if !onnx.op_register.0.contains_key(&node.op_type) {
                    let domain = if node.domain.is_empty() {
                        "ai.onnx"
                    } else {
                        &node.domain
                    };
                    return Err(BackendError::Load(format!(
                        "tract does not support operator {domain}.{} (node {:?}); serve this model with ONNX Runtime (--backend ort or auto; {})",
                        node.op_type,
                        node.name,
                        super::ortlib::SETUP_HINT
                    )));
                }
            }
        }
        let output_names: Vec<String> = proto
            .graph
            .as_ref()
            .map(|g| g.output.iter().map(|o| o.name.clone()).collect())
            .unwrap_or_default();
        let mut model = onnx.model_for_proto_model(&proto).map_err(load_err)?;
        if let Some(ts) = &opts.tensors {
            if let Some(why) = proto.graph.as_ref().and_then(wrong_labels) {
                return Err(BackendError::Load(why));
            }
            // Every graph input typed as declared; symbolic dimensions become symbols (the
            // batch dimension `N`), so one plan serves every batch size.
            if model.input_outlets().map_err(load_err)?.len() != ts.inputs.len() {
                return Err(BackendError::Load(format!(
                    "tract sees {} graph inputs; the signature lists {}",
                    model.input_outlets().map_err(load_err)?.len(),
                    ts.inputs.len()
                )));
            }
            for (i, spec) in ts.inputs.iter().enumerate() {
                let dt = datum_of(spec.dtype).ok_or_else(|| {
                    BackendError::Load(format!(
                        "tract cannot take {} input {:?}; serve this model with ONNX Runtime (--backend ort or auto; {})",
                        spec.dtype.oip_name(),
                        spec.name,
                        super::ortlib::SETUP_HINT
                    ))
                })?;
                let dims: TVec<TDim> = spec
                    .shape
                    .iter()
                    .enumerate()
                    .map(|(j, d)| match (*d, j) {
                        (d, _) if d >= 0 => TDim::from(d),
                        (_, 0) => model.sym("N").into(),
                        (_, j) => model.sym(&format!("{}_{j}", spec.name)).into(),
                    })
                    .collect();
                model = model
                    .with_input_fact(i, InferenceFact::dt_shape(dt, dims))
                    .map_err(load_err)?;
            }
            return Self::finish(model, output_names, None, true);
        }
        if model.input_outlets().map_err(load_err)?.len() != 1 {
            return Err(BackendError::Load(
                "model must have exactly one input (float32 [N, F])".into(),
            ));
        }
        let n = model.sym("N");
        let model = model
            .with_input_fact(0, f32::fact(dims!(n, opts.width)).into())
            .map_err(load_err)?;
        let mut engine = Self::finish(model, output_names, Some(opts.width), false)?;
        // Probe with one row to learn the per-row output shapes.
        let mut state = engine.plan.spawn().map_err(load_err)?;
        let probe = run(&mut state, &vec![0.0; engine.width], 1, engine.width)?;
        for (meta, value) in engine.outputs.iter_mut().zip(probe) {
            meta.row_shape = value.shape().iter().skip(1).copied().collect();
        }
        Ok(engine)
    }

    /// Types, prunes (to the outputs Vane can return) and optimizes the model.
    fn finish(
        model: InferenceModel,
        output_names: Vec<String>,
        width: Option<usize>,
        tensor_model: bool,
    ) -> Result<Self, BackendError> {
        let load_err = |e: TractError| BackendError::Load(format!("tract: {e:#}"));
        let mut typed = model.into_typed().map_err(load_err)?;
        let mut keep = Vec::new();
        let mut metas = Vec::new();
        for (ix, outlet) in typed
            .output_outlets()
            .map_err(load_err)?
            .to_vec()
            .into_iter()
            .enumerate()
        {
            let fact = typed.outlet_fact(outlet).map_err(load_err)?;
            let name = output_names
                .get(ix)
                .cloned()
                .unwrap_or_else(|| format!("output_{ix}"));
            // tract types integer results of shape arithmetic (e.g. an ArgMax feeding a
            // classifier's label output) as symbolic dimensions: they are returned as INT64.
            let dtype = match fact.datum_type {
                DatumType::TDim => Some(DType::I64),
                dt => dtype_of(dt),
            };
            match dtype {
                Some(dtype) => {
                    keep.push(outlet);
                    metas.push(OutputMeta {
                        name,
                        dtype,
                        row_shape: Vec::new(),
                    });
                }
                None if tensor_model => {
                    return Err(BackendError::Load(format!(
                        "tract cannot return output {name:?} of type {:?}; serve this model with ONNX Runtime (--backend ort or auto)",
                        fact.datum_type
                    )));
                }
                None => {
                    tracing::info!(output = %name, datum_type = ?fact.datum_type, "skipping output of unsupported type")
                }
            }
        }
        if keep.is_empty() {
            return Err(BackendError::Load(
                "model has no tensor output Vane can return".into(),
            ));
        }
        typed.select_output_outlets(&keep).map_err(load_err)?;
        let plan = typed
            .into_optimized()
            .map_err(load_err)?
            .into_runnable()
            .map_err(load_err)?;
        Ok(Self {
            plan,
            width: width.unwrap_or(0),
            outputs: metas,
        })
    }
}

/// tract's `TreeEnsembleClassifier` label output disagrees with ONNX Runtime's (measured on a
/// skl2onnx random forest: right probabilities, wrong labels). A graph that uses that output
/// is refused rather than answered wrongly; Vane's own tree graphs read only the scores.
fn wrong_labels(graph: &tract_onnx::pb::GraphProto) -> Option<String> {
    let used: std::collections::HashSet<&str> = graph
        .node
        .iter()
        .flat_map(|n| n.input.iter().map(String::as_str))
        .chain(graph.output.iter().map(|o| o.name.as_str()))
        .collect();
    graph
        .node
        .iter()
        .find(|n| {
            n.op_type == "TreeEnsembleClassifier"
                && n.output.first().is_some_and(|l| used.contains(l.as_str()))
        })
        .map(|n| {
            format!(
                "tract's ai.onnx.ml.TreeEnsembleClassifier labels (node {:?}) disagree with ONNX Runtime's; serve this model with ONNX Runtime (--backend ort or auto; {})",
                n.name,
                super::ortlib::SETUP_HINT
            )
        })
}

fn run(
    state: &mut TypedSimpleState,
    input: &[f32],
    rows: usize,
    width: usize,
) -> Result<TVec<TValue>, BackendError> {
    let run_err = |e: TractError| BackendError::Run(format!("{e:#}"));
    let x = Tensor::from_shape(&[rows, width], input).map_err(run_err)?;
    state.run(tvec!(x.into())).map_err(run_err)
}

impl Engine for TractEngine {
    fn backend(&self) -> &'static str {
        "tract"
    }

    fn outputs(&self) -> &[OutputMeta] {
        &self.outputs
    }

    fn session(&self) -> Result<Box<dyn Session>, BackendError> {
        let state = self
            .plan
            .spawn()
            .map_err(|e| BackendError::Load(format!("tract: {e:#}")))?;
        Ok(Box::new(TractWorker {
            state,
            width: self.width,
            outputs: self.outputs.clone(),
        }))
    }
}

struct TractWorker {
    state: TypedSimpleState,
    width: usize,
    outputs: Vec<OutputMeta>,
}

/// A tract value's elements as the output's element type.
fn to_data(v: &TValue, dtype: DType) -> Result<TensorData, BackendError> {
    let run_err = |e: TractError| BackendError::Run(format!("{e:#}"));
    macro_rules! copy {
        ($t:ty, $variant:ident) => {
            TensorData::$variant(
                v.to_plain_array_view::<$t>()
                    .map_err(run_err)?
                    .iter()
                    .copied()
                    .collect(),
            )
        };
    }
    Ok(match dtype {
        DType::F32 => copy!(f32, F32),
        DType::F64 => copy!(f64, F64),
        DType::I8 => copy!(i8, I8),
        DType::I16 => copy!(i16, I16),
        DType::I32 => copy!(i32, I32),
        DType::I64 if v.datum_type() == DatumType::TDim => {
            let v = v.cast_to::<i64>().map_err(run_err)?;
            TensorData::I64(
                v.to_plain_array_view::<i64>()
                    .map_err(run_err)?
                    .iter()
                    .copied()
                    .collect(),
            )
        }
        DType::I64 => copy!(i64, I64),
        DType::U8 => copy!(u8, U8),
        DType::U16 => copy!(u16, U16),
        DType::U32 => copy!(u32, U32),
        DType::U64 => copy!(u64, U64),
        DType::Bool => copy!(bool, Bool),
        DType::Str => return Err(BackendError::Run("tract returns no string tensors".into())),
    })
}

impl Session for TractWorker {
    fn predict_tensors(&mut self, inputs: &[super::Tensor]) -> Result<Vec<Output>, BackendError> {
        let run_err = |e: TractError| BackendError::Run(format!("{e:#}"));
        let mut feed: TVec<TValue> = TVec::with_capacity(inputs.len());
        for t in inputs {
            macro_rules! tensor {
                ($v:expr) => {
                    Tensor::from_shape(&t.shape, $v.as_slice()).map_err(run_err)?
                };
            }
            let x = match &t.data {
                TensorData::F32(v) => tensor!(v),
                TensorData::F64(v) => tensor!(v),
                TensorData::I8(v) => tensor!(v),
                TensorData::I16(v) => tensor!(v),
                TensorData::I32(v) => tensor!(v),
                TensorData::I64(v) => tensor!(v),
                TensorData::U8(v) => tensor!(v),
                TensorData::U16(v) => tensor!(v),
                TensorData::U32(v) => tensor!(v),
                TensorData::U64(v) => tensor!(v),
                TensorData::Bool(v) => tensor!(v),
                TensorData::Str(_) => {
                    return Err(BackendError::Run("tract takes no string tensors".into()));
                }
            };
            feed.push(x.into());
        }
        let values = self.state.run(feed).map_err(run_err)?;
        self.outputs
            .iter()
            .zip(values.iter())
            .map(|(meta, v)| {
                Ok(Output {
                    data: to_data(v, meta.dtype)?,
                    shape: Some(v.shape().to_vec()),
                })
            })
            .collect()
    }

    fn predict(&mut self, input: &[f32], rows: usize) -> Result<Vec<Output>, BackendError> {
        let values = run(&mut self.state, input, rows, self.width)?;
        let mut out = Vec::with_capacity(values.len());
        for (meta, v) in self.outputs.iter().zip(values.iter()) {
            if v.shape().first() != Some(&rows) || v.shape()[1..] != meta.row_shape[..] {
                return Err(BackendError::Run(format!(
                    "output {:?} has shape {:?}; expected [{rows}, {:?}]",
                    meta.name,
                    v.shape(),
                    meta.row_shape
                )));
            }
            let data = to_data(v, meta.dtype)?;
            out.push(Output::rows(data));
        }
        Ok(out)
    }
}
