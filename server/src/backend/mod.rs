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

// The tensor vocabulary backends share with the codecs.
pub use vane_protocol::tensor::{DType, Output, OutputMeta, Tensor, TensorData};

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

    /// Runs a tensor-signature model: one tensor per graph input, in graph order. Each
    /// [`Output`] carries the shape the runtime gave it.
    fn predict_tensors(&mut self, _inputs: &[Tensor]) -> Result<Vec<Output>, BackendError> {
        Err(BackendError::Run(
            "this backend runs feature models only".into(),
        ))
    }
}

/// What a loader needs beyond the model bytes.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Model input width F.
    pub width: usize,
    /// ONNX Runtime intra-op threads per session.
    pub intra_op_threads: usize,
    /// Set for a tensor-signature model: its graph inputs (then `width` is unused).
    pub tensors: Option<vane_protocol::TensorInputs>,
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
            Ok(vec![Output::rows(TensorData::F32(out))])
        }
    }
}
