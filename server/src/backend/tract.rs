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
        DatumType::I32 => DType::I32,
        DatumType::I64 => DType::I64,
        DatumType::Bool => DType::Bool,
        _ => return None,
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
        let model = onnx.model_for_proto_model(&proto).map_err(load_err)?;
        if model.input_outlets().map_err(load_err)?.len() != 1 {
            return Err(BackendError::Load(
                "model must have exactly one input (float32 [N, F])".into(),
            ));
        }
        let n = model.sym("N");
        let model = model
            .with_input_fact(0, f32::fact(dims!(n, opts.width)).into())
            .map_err(load_err)?;
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
            match dtype_of(fact.datum_type) {
                Some(dtype) => {
                    keep.push(outlet);
                    metas.push(OutputMeta {
                        name,
                        dtype,
                        row_shape: Vec::new(),
                    });
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
        let mut engine = Self {
            plan,
            width: opts.width,
            outputs: metas,
        };
        // Probe with one row to learn the per-row output shapes.
        let mut state = engine.plan.spawn().map_err(load_err)?;
        let probe = run(&mut state, &vec![0.0; engine.width], 1, engine.width)?;
        for (meta, value) in engine.outputs.iter_mut().zip(probe) {
            meta.row_shape = value.shape().iter().skip(1).copied().collect();
        }
        Ok(engine)
    }
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

impl Session for TractWorker {
    fn predict(&mut self, input: &[f32], rows: usize) -> Result<Vec<Output>, BackendError> {
        let values = run(&mut self.state, input, rows, self.width)?;
        let run_err = |e: TractError| BackendError::Run(format!("{e:#}"));
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
            let data = match meta.dtype {
                DType::F32 => TensorData::F32(
                    v.to_plain_array_view::<f32>()
                        .map_err(run_err)?
                        .iter()
                        .copied()
                        .collect(),
                ),
                DType::F64 => TensorData::F64(
                    v.to_plain_array_view::<f64>()
                        .map_err(run_err)?
                        .iter()
                        .copied()
                        .collect(),
                ),
                DType::I32 => TensorData::I32(
                    v.to_plain_array_view::<i32>()
                        .map_err(run_err)?
                        .iter()
                        .copied()
                        .collect(),
                ),
                DType::I64 => TensorData::I64(
                    v.to_plain_array_view::<i64>()
                        .map_err(run_err)?
                        .iter()
                        .copied()
                        .collect(),
                ),
                DType::Bool => TensorData::Bool(
                    v.to_plain_array_view::<bool>()
                        .map_err(run_err)?
                        .iter()
                        .copied()
                        .collect(),
                ),
            };
            out.push(Output { data });
        }
        Ok(out)
    }
}
