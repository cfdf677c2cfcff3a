//! ONNX Runtime backend (`ort`, library loaded at run time).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ort::session::builder::GraphOptimizationLevel;
use ort::session::{HasSelectedOutputs, OutputSelector, RunOptions, Session as OrtSession};
use ort::value::{TensorElementType, TensorRef, ValueType};

use vane_protocol::TensorInputs;

use super::{
    BackendError, DType, Engine, LoadOptions, Output, OutputMeta, Session, Tensor, TensorData,
};

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
    /// Set for a tensor-signature model: its graph inputs, fed by name.
    tensors: Option<TensorInputs>,
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
        TensorElementType::Int8 => DType::I8,
        TensorElementType::Int16 => DType::I16,
        TensorElementType::Int32 => DType::I32,
        TensorElementType::Int64 => DType::I64,
        TensorElementType::Uint8 => DType::U8,
        TensorElementType::Uint16 => DType::U16,
        TensorElementType::Uint32 => DType::U32,
        TensorElementType::Uint64 => DType::U64,
        TensorElementType::Bool => DType::Bool,
        TensorElementType::String => DType::Str,
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
        if let Some(ts) = &opts.tensors {
            return Self::load_tensor_model(rt, session, bytes, opts, ts);
        }
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
            tensors: None,
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

impl OrtEngine {
    /// A tensor-signature model: every graph output is returned, in the runtime's own shape,
    /// so no probe run is needed (nor possible: inputs may be strings or categories).
    fn load_tensor_model(
        rt: &Arc<OrtRuntime>,
        session: OrtSession,
        bytes: &[u8],
        opts: &LoadOptions,
        ts: &TensorInputs,
    ) -> Result<Self, BackendError> {
        for spec in &ts.inputs {
            if !session.inputs().iter().any(|i| i.name() == spec.name) {
                return Err(BackendError::Load(format!(
                    "ONNX Runtime does not see graph input {:?}",
                    spec.name
                )));
            }
        }
        let mut outputs = Vec::new();
        for o in session.outputs() {
            let ValueType::Tensor { ty, shape, .. } = o.dtype() else {
                return Err(BackendError::Load(format!(
                    "graph output {:?} is {:?}, not a tensor; export classifiers without ZipMap (skl2onnx `options={{id(model): {{'zipmap': False}}}}`, onnxmltools `zipmap=False`)",
                    o.name(),
                    o.dtype()
                )));
            };
            let dtype = dtype_of(*ty).ok_or_else(|| {
                BackendError::Load(format!(
                    "graph output {:?} has element type {ty:?}, which Vane cannot return",
                    o.name()
                ))
            })?;
            outputs.push(OutputMeta {
                name: o.name().to_string(),
                dtype,
                row_shape: shape.iter().skip(1).map(|d| (*d).max(1) as usize).collect(),
            });
        }
        Ok(Self {
            rt: rt.clone(),
            bytes: Arc::from(bytes),
            input_name: String::new(),
            width: 0,
            intra_op_threads: opts.intra_op_threads,
            outputs,
            tensors: Some(ts.clone()),
        })
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
    /// Graph input names of a tensor-signature model, in request order.
    tensor_inputs: Vec<String>,
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
            tensor_inputs: engine
                .tensors
                .iter()
                .flat_map(|ts| ts.inputs.iter().map(|i| i.name.clone()))
                .collect(),
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
            let (shape, data) = extract(v, meta.dtype).map_err(run_err)?;
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

/// An output value's shape and elements, copied out of ONNX Runtime's buffer.
fn extract(v: &ort::value::DynValue, dtype: DType) -> ort::Result<(&[i64], TensorData)> {
    macro_rules! ext {
        ($t:ty, $variant:ident) => {{
            let (shape, data) = v.try_extract_tensor::<$t>()?;
            (&shape[..], TensorData::$variant(data.to_vec()))
        }};
    }
    Ok(match dtype {
        DType::F32 => ext!(f32, F32),
        DType::F64 => ext!(f64, F64),
        DType::I8 => ext!(i8, I8),
        DType::I16 => ext!(i16, I16),
        DType::I32 => ext!(i32, I32),
        DType::I64 => ext!(i64, I64),
        DType::U8 => ext!(u8, U8),
        DType::U16 => ext!(u16, U16),
        DType::U32 => ext!(u32, U32),
        DType::U64 => ext!(u64, U64),
        DType::Bool => ext!(bool, Bool),
        DType::Str => {
            let (shape, data) = v.try_extract_strings()?;
            (&shape[..], TensorData::Str(data))
        }
    })
}

impl Session for OrtWorker {
    fn predict_tensors(&mut self, inputs: &[Tensor]) -> Result<Vec<Output>, BackendError> {
        let run_err = |e: ort::Error| BackendError::Run(e.to_string());
        let mut feed: Vec<(
            std::borrow::Cow<'_, str>,
            ort::session::SessionInputValue<'_>,
        )> = Vec::with_capacity(inputs.len());
        for (name, t) in self.tensor_inputs.iter().zip(inputs) {
            let shape = t.shape.as_slice();
            macro_rules! view {
                ($v:expr) => {
                    TensorRef::from_array_view((shape, $v.as_slice()))
                        .map_err(run_err)?
                        .into()
                };
            }
            let value: ort::session::SessionInputValue<'_> = match &t.data {
                TensorData::F32(v) => view!(v),
                TensorData::F64(v) => view!(v),
                TensorData::I8(v) => view!(v),
                TensorData::I16(v) => view!(v),
                TensorData::I32(v) => view!(v),
                TensorData::I64(v) => view!(v),
                TensorData::U8(v) => view!(v),
                TensorData::U16(v) => view!(v),
                TensorData::U32(v) => view!(v),
                TensorData::U64(v) => view!(v),
                TensorData::Bool(v) => view!(v),
                TensorData::Str(v) => ort::value::Tensor::from_string_array((shape, v.as_slice()))
                    .map_err(run_err)?
                    .into(),
            };
            feed.push((name.as_str().into(), value));
        }
        let out = self
            .session
            .run_with_options(feed, &self.run_options)
            .map_err(run_err)?;
        let mut result = Vec::with_capacity(self.outputs.len());
        for meta in self.outputs.iter() {
            let v = out
                .get(&meta.name)
                .ok_or_else(|| BackendError::Run(format!("output {:?} missing", meta.name)))?;
            let (shape, data) = extract(v, meta.dtype).map_err(run_err)?;
            let shape = shape.iter().map(|d| (*d).max(0) as usize).collect();
            result.push(Output {
                data,
                shape: Some(shape),
            });
        }
        Ok(result)
    }

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
            out.push(Output::rows(data));
            Ok(())
        })?;
        Ok(out)
    }
}
