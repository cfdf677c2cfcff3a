//! ONNX Runtime backend (`ort`, library loaded at run time).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ort::session::builder::GraphOptimizationLevel;
use ort::session::{HasSelectedOutputs, OutputSelector, RunOptions, Session as OrtSession};
use ort::value::{TensorElementType, TensorRef, ValueType};

use super::{BackendError, DType, Engine, LoadOptions, Output, OutputMeta, Session, TensorData};

/// The process-wide ONNX Runtime: the loaded library and its environment.
pub struct OrtRuntime {
    env: ort::environment::Environment,
    pub path: PathBuf,
}

impl std::fmt::Debug for OrtRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrtRuntime")
            .field("path", &self.path)
            .finish()
    }
}

impl OrtRuntime {
    /// Loads the library at `path` (once per process; ort keeps the first one) and builds the
    /// environment. A missing file, a non-ORT file or a too-old version is an error here, never a
    /// panic later.
    pub fn init(path: &Path) -> Result<Self, BackendError> {
        let builder = ort::init_from(path).map_err(|e| {
            BackendError::OrtUnavailable(format!("{e}; {}", super::ortlib::SETUP_HINT))
        })?;
        let env = builder
            .with_name("vane")
            .build()
            .map_err(|e| BackendError::OrtUnavailable(e.to_string()))?;
        Ok(Self {
            env,
            path: path.to_path_buf(),
        })
    }
}

/// A model loaded into ONNX Runtime. Sessions are built per worker from the same bytes.
pub struct OrtEngine {
    rt: Arc<OrtRuntime>,
    bytes: Arc<[u8]>,
    input_name: String,
    width: usize,
    intra_op_threads: usize,
    outputs: Vec<OutputMeta>,
}

fn build_session(
    env: &ort::environment::Environment,
    bytes: &[u8],
    threads: usize,
) -> ort::Result<OrtSession> {
    OrtSession::builder(env)?
        .with_optimization_level(GraphOptimizationLevel::Level3)?
        .with_intra_threads(threads)?
        .with_inter_threads(1)?
        .with_intra_op_spinning(false)?
        .with_inter_op_spinning(false)?
        .commit_from_memory(bytes)
}

fn dtype_of(ty: TensorElementType) -> Option<DType> {
    Some(match ty {
        TensorElementType::Float32 => DType::F32,
        TensorElementType::Float64 => DType::F64,
        TensorElementType::Int32 => DType::I32,
        TensorElementType::Int64 => DType::I64,
        TensorElementType::Bool => DType::Bool,
        _ => return None,
    })
}

impl OrtEngine {
    pub fn load(
        rt: &Arc<OrtRuntime>,
        bytes: &[u8],
        opts: &LoadOptions,
    ) -> Result<Self, BackendError> {
        let session = build_session(&rt.env, bytes, opts.intra_op_threads)
            .map_err(|e| BackendError::Load(format!("ONNX Runtime: {e}")))?;
        let inputs = session.inputs();
        if inputs.len() != 1 {
            return Err(BackendError::Load(format!(
                "model has {} inputs; Vane serves models with one float32 [N, F] input",
                inputs.len()
            )));
        }
        let input = &inputs[0];
        match input.dtype() {
            ValueType::Tensor {
                ty: TensorElementType::Float32,
                shape,
                ..
            } if shape.len() == 2 && (shape[1] < 0 || shape[1] as usize == opts.width) => {}
            other => {
                return Err(BackendError::Load(format!(
                    "model input {:?} is {other:?}; expected float32 [N, {}]",
                    input.name(),
                    opts.width
                )));
            }
        }
        let mut outputs = Vec::new();
        for o in session.outputs() {
            match o.dtype() {
                ValueType::Tensor { ty, shape, .. } => match dtype_of(*ty) {
                    Some(dtype) => outputs.push(OutputMeta {
                        name: o.name().to_string(),
                        dtype,
                        // Refined by the probe run below; dynamic dims show as -1 here.
                        row_shape: shape.iter().skip(1).map(|d| (*d).max(1) as usize).collect(),
                    }),
                    None => tracing::warn!(
                        output = o.name(),
                        ?ty,
                        "skipping output of unsupported element type"
                    ),
                },
                other => tracing::info!(output = o.name(), ?other, "skipping non-tensor output"),
            }
        }
        if outputs.is_empty() {
            return Err(BackendError::Load(
                "model has no tensor output Vane can return".into(),
            ));
        }
        let mut engine = Self {
            rt: rt.clone(),
            bytes: Arc::from(bytes),
            input_name: input.name().to_string(),
            width: opts.width,
            intra_op_threads: opts.intra_op_threads,
            outputs,
        };
        // Probe with one row to learn the real per-row output shapes.
        let mut s = OrtWorker::new(&engine, session)?;
        let outputs = &mut engine.outputs;
        s.run_raw(&vec![0.0; engine.width], 1, |ix, shape, _| {
            outputs[ix].row_shape = shape.iter().skip(1).map(|d| *d as usize).collect();
            Ok(())
        })?;
        Ok(engine)
    }
}

impl Engine for OrtEngine {
    fn backend(&self) -> &'static str {
        "ort"
    }

    fn outputs(&self) -> &[OutputMeta] {
        &self.outputs
    }

    fn session(&self) -> Result<Box<dyn Session>, BackendError> {
        let s = build_session(&self.rt.env, &self.bytes, self.intra_op_threads)
            .map_err(|e| BackendError::Load(format!("ONNX Runtime: {e}")))?;
        Ok(Box::new(OrtWorker::new(self, s)?))
    }
}

struct OrtWorker {
    session: OrtSession,
    input_name: String,
    width: usize,
    outputs: Arc<[OutputMeta]>,
    run_options: RunOptions<HasSelectedOutputs>,
}

impl OrtWorker {
    fn new(engine: &OrtEngine, session: OrtSession) -> Result<Self, BackendError> {
        let selector = engine
            .outputs
            .iter()
            .fold(OutputSelector::no_default(), |s, o| s.with(o.name.clone()));
        let run_options = RunOptions::new()
            .map_err(|e| BackendError::Load(e.to_string()))?
            .with_outputs(selector);
        Ok(Self {
            session,
            input_name: engine.input_name.clone(),
            width: engine.width,
            outputs: engine.outputs.clone().into(),
            run_options,
        })
    }

    /// Runs `rows` rows and hands each output (index, shape, values) to `each`, in order.
    fn run_raw(
        &mut self,
        input: &[f32],
        rows: usize,
        mut each: impl FnMut(usize, &[i64], TensorData) -> Result<(), BackendError>,
    ) -> Result<(), BackendError> {
        let run_err = |e: ort::Error| BackendError::Run(e.to_string());
        let x = TensorRef::from_array_view(([rows, self.width], input)).map_err(run_err)?;
        let out = self
            .session
            .run_with_options(
                ort::inputs![self.input_name.as_str() => x],
                &self.run_options,
            )
            .map_err(run_err)?;
        for (ix, meta) in self.outputs.iter().enumerate() {
            let v = out
                .get(&meta.name)
                .ok_or_else(|| BackendError::Run(format!("output {:?} missing", meta.name)))?;
            macro_rules! extract {
                ($t:ty, $variant:ident) => {{
                    let (shape, data) = v.try_extract_tensor::<$t>().map_err(run_err)?;
                    (&shape[..], TensorData::$variant(data.to_vec()))
                }};
            }
            let (shape, data) = match meta.dtype {
                DType::F32 => extract!(f32, F32),
                DType::F64 => extract!(f64, F64),
                DType::I32 => extract!(i32, I32),
                DType::I64 => extract!(i64, I64),
                DType::Bool => extract!(bool, Bool),
            };
            if shape.first() != Some(&(rows as i64)) {
                return Err(BackendError::Run(format!(
                    "output {:?} has shape {shape:?}; expected {rows} rows",
                    meta.name
                )));
            }
            each(ix, shape, data)?;
        }
        Ok(())
    }
}

impl Session for OrtWorker {
    fn predict(&mut self, input: &[f32], rows: usize) -> Result<Vec<Output>, BackendError> {
        let mut out = Vec::with_capacity(self.outputs.len());
        let metas = self.outputs.clone();
        self.run_raw(input, rows, |ix, shape, data| {
            let meta = &metas[ix];
            let same = shape.len() == meta.row_shape.len() + 1
                && shape[1..]
                    .iter()
                    .zip(&meta.row_shape)
                    .all(|(a, b)| *a as usize == *b);
            if !same {
                return Err(BackendError::Run(format!(
                    "output {:?} changed shape to {shape:?}",
                    meta.name
                )));
            }
            out.push(Output { data });
            Ok(())
        })?;
        Ok(out)
    }
}
