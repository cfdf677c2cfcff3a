//! Inference backends behind one small trait pair.
//!
//! An [`Engine`] is a loaded model shared by all workers of a model version; each worker
//! thread asks it for its own [`Session`] (ONNX Runtime's `run` takes `&mut self`, and tract's
//! state is per caller) and calls [`Session::predict`] with a row-major `[rows, width]` f32
//! batch. Everything above this module is backend-agnostic.

pub mod onnxruntime;
pub mod ortlib;
pub mod tract;

use std::fmt;
use std::sync::Arc;

/// Which backend to use.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// ONNX Runtime when its library is available (and loads the model), tract otherwise.
    Auto,
    /// ONNX Runtime, loaded at run time; a startup error when the library is missing.
    Ort,
    /// tract, pure Rust.
    Tract,
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Auto => "auto",
            BackendKind::Ort => "ort",
            BackendKind::Tract => "tract",
        })
    }
}

/// Element type of an output tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    F64,
    I32,
    I64,
    Bool,
}

impl DType {
    /// The Open Inference Protocol datatype name.
    pub fn oip_name(self) -> &'static str {
        match self {
            DType::F32 => "FP32",
            DType::F64 => "FP64",
            DType::I32 => "INT32",
            DType::I64 => "INT64",
            DType::Bool => "BOOL",
        }
    }
}

/// Row-major tensor data of one output, for all rows of a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    Bool(Vec<bool>),
}

impl TensorData {
    pub fn dtype(&self) -> DType {
        match self {
            TensorData::F32(_) => DType::F32,
            TensorData::F64(_) => DType::F64,
            TensorData::I32(_) => DType::I32,
            TensorData::I64(_) => DType::I64,
            TensorData::Bool(_) => DType::Bool,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::F64(v) => v.len(),
            TensorData::I32(v) => v.len(),
            TensorData::I64(v) => v.len(),
            TensorData::Bool(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values, when the tensor is FP32.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match self {
            TensorData::F32(v) => Some(v),
            _ => None,
        }
    }

    /// Elements `[start, end)` as a new tensor.
    pub fn slice(&self, start: usize, end: usize) -> TensorData {
        match self {
            TensorData::F32(v) => TensorData::F32(v[start..end].to_vec()),
            TensorData::F64(v) => TensorData::F64(v[start..end].to_vec()),
            TensorData::I32(v) => TensorData::I32(v[start..end].to_vec()),
            TensorData::I64(v) => TensorData::I64(v[start..end].to_vec()),
            TensorData::Bool(v) => TensorData::Bool(v[start..end].to_vec()),
        }
    }
}

/// Name, type and per-row shape (dims after the batch dim) of a model output.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputMeta {
    pub name: String,
    pub dtype: DType,
    pub row_shape: Vec<usize>,
}

impl OutputMeta {
    /// Elements per row.
    pub fn row_len(&self) -> usize {
        self.row_shape.iter().product()
    }
}

/// One output of one batch run: `rows * meta.row_len()` elements.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub data: TensorData,
}

/// A backend failure. Load errors name the model and, where known, the operator.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    #[error("{0}")]
    Load(String),
    #[error("inference failed: {0}")]
    Run(String),
    #[error("ONNX Runtime is not available: {0}")]
    OrtUnavailable(String),
}

/// A loaded model, shared by the workers of one model version.
pub trait Engine: Send + Sync {
    /// `"ort"` or `"tract"`.
    fn backend(&self) -> &'static str;
    /// Outputs that [`Session::predict`] returns, in order.
    fn outputs(&self) -> &[OutputMeta];
    /// A new session for one worker thread.
    fn session(&self) -> Result<Box<dyn Session>, BackendError>;
}

/// Per-worker inference state.
pub trait Session: Send {
    /// Scores `rows` rows of `input` (row-major, `rows * width` values). Returns one
    /// [`Output`] per [`Engine::outputs`] entry.
    fn predict(&mut self, input: &[f32], rows: usize) -> Result<Vec<Output>, BackendError>;
}

/// What a loader needs beyond the model bytes.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Model input width F.
    pub width: usize,
    /// ONNX Runtime intra-op threads per session.
    pub intra_op_threads: usize,
}

/// Loads `bytes` with the requested backend. `auto` tries ONNX Runtime (when `ort` is
/// available) then tract; when neither loads the model the error carries both reasons.
pub fn load(
    kind: BackendKind,
    ort: Option<&Arc<onnxruntime::OrtRuntime>>,
    bytes: &[u8],
    opts: &LoadOptions,
) -> Result<Arc<dyn Engine>, BackendError> {
    match kind {
        BackendKind::Tract => Ok(Arc::new(tract::TractEngine::load(bytes, opts)?)),
        BackendKind::Ort => {
            let rt = ort.ok_or_else(|| {
                BackendError::OrtUnavailable(
                    "backend 'ort' requested but no runtime was initialized".into(),
                )
            })?;
            Ok(Arc::new(onnxruntime::OrtEngine::load(rt, bytes, opts)?))
        }
        BackendKind::Auto => {
            let ort_err = match ort {
                Some(rt) => match onnxruntime::OrtEngine::load(rt, bytes, opts) {
                    Ok(e) => return Ok(Arc::new(e)),
                    Err(e) => Some(e),
                },
                None => None,
            };
            match tract::TractEngine::load(bytes, opts) {
                Ok(e) => {
                    if let Some(err) = ort_err {
                        tracing::warn!(error = %err, "ONNX Runtime could not load the model; serving it with tract");
                    }
                    Ok(Arc::new(e))
                }
                Err(tract_err) => Err(match ort_err {
                    Some(ort_err) => BackendError::Load(format!(
                        "no backend can load the model: ort: {ort_err}; tract: {tract_err}"
                    )),
                    None => tract_err,
                }),
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! A deterministic fake backend for batcher tests.
    use super::*;

    /// Output = per-row sum of inputs; a row whose first value is `poison` fails its batch.
    pub struct SumEngine {
        pub width: usize,
        pub poison: f32,
        pub meta: Vec<OutputMeta>,
    }

    impl SumEngine {
        pub fn new(width: usize, poison: f32) -> Self {
            Self {
                width,
                poison,
                meta: vec![OutputMeta {
                    name: "sum".into(),
                    dtype: DType::F32,
                    row_shape: vec![1],
                }],
            }
        }
    }

    impl Engine for SumEngine {
        fn backend(&self) -> &'static str {
            "fake"
        }
        fn outputs(&self) -> &[OutputMeta] {
            &self.meta
        }
        fn session(&self) -> Result<Box<dyn Session>, BackendError> {
            Ok(Box::new(SumSession {
                width: self.width,
                poison: self.poison,
            }))
        }
    }

    struct SumSession {
        width: usize,
        poison: f32,
    }

    impl Session for SumSession {
        fn predict(&mut self, input: &[f32], rows: usize) -> Result<Vec<Output>, BackendError> {
            assert_eq!(input.len(), rows * self.width);
            let mut out = Vec::with_capacity(rows);
            for row in input.chunks(self.width) {
                if row[0] == self.poison {
                    return Err(BackendError::Run("poisoned row".into()));
                }
                out.push(row.iter().sum());
            }
            Ok(vec![Output {
                data: TensorData::F32(out),
            }])
        }
    }
}
