//! Running a serialized model in tract and in ONNX Runtime, and comparing with an oracle.

use std::path::PathBuf;
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::TensorRef;
use tract_onnx::prelude::*;

/// Largest |runtime − oracle| accepted.
pub const TOLERANCE: f32 = 1e-5;

/// Batch sizes every model is checked at.
pub const BATCHES: [usize; 3] = [1, 7, 64];

const ORT_VERSION: &str = "1.31.1";

/// The process-wide ONNX Runtime environment, or `None` (with a printed reason) when the
/// library is not installed. `ort::init_from` loads the dylib once per process, hence the
/// `OnceLock`.
pub fn ort_env() -> Option<&'static Environment> {
    static ENV: OnceLock<Option<Environment>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut candidates = Vec::new();
        if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
            candidates.push(PathBuf::from(p));
        }
        if let Some(home) = std::env::var_os("HOME") {
            candidates.push(
                PathBuf::from(home)
                    .join(".cache/vane/onnxruntime")
                    .join(ORT_VERSION)
                    .join(format!("libonnxruntime.so.{ORT_VERSION}")),
            );
        }
        let Some(path) = candidates.iter().find(|p| p.is_file()) else {
            let msg = format!(
                "ONNX Runtime {ORT_VERSION} not found (looked at {candidates:?}); \
                 run scripts/setup-ort.sh or set ORT_DYLIB_PATH"
            );
            if std::env::var("VANE_REQUIRE_ORT").as_deref() == Ok("1") {
                panic!("VANE_REQUIRE_ORT=1: {msg}");
            }
            eprintln!("skipping ONNX Runtime checks: {msg}");
            return None;
        };
        let env = ort::init_from(path)
            .unwrap_or_else(|e| panic!("loading {}: {e}", path.display()))
            .with_name("vane-models-tests")
            .build()
            .unwrap_or_else(|e| panic!("creating the ONNX Runtime environment: {e}"));
        Some(env)
    })
    .as_ref()
}

/// Builder errors are `ort::Error<SessionBuilder>` (not Send + Sync), so the chain stays in a
/// function returning `ort::Result`.
fn ort_session(env: &Environment, bytes: &[u8]) -> ort::Result<Session> {
    Session::builder(env)?
        .with_optimization_level(GraphOptimizationLevel::Level3)?
        .with_intra_threads(1)?
        .with_inter_threads(1)?
        .with_intra_op_spinning(false)?
        .commit_from_memory(bytes)
}

/// A model loaded in both runtimes (ORT only when available).
pub struct Loaded {
    tract: Arc<TypedRunnableModel>,
    ort: Option<Session>,
    n_features: usize,
}

impl Loaded {
    pub fn new(bytes: &[u8], n_features: usize) -> Self {
        let tract = tract_onnx::onnx()
            .model_for_read(&mut &bytes[..])
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .unwrap_or_else(|e| panic!("tract refused the model: {e:?}"));
        let ort = ort_env().map(|env| {
            let s = ort_session(env, bytes)
                .unwrap_or_else(|e| panic!("ONNX Runtime refused the model: {e}"));
            let inputs: Vec<&str> = s.inputs().iter().map(|o| o.name()).collect();
            assert_eq!(inputs, ["input"]);
            s
        });
        Self {
            tract,
            ort,
            n_features,
        }
    }

    /// tract's output 0 as (shape, values).
    pub fn tract(&self, rows: &[f32]) -> (Vec<usize>, Vec<f32>) {
        let n = rows.len() / self.n_features;
        let x: Tensor = tract_ndarray::Array2::from_shape_vec((n, self.n_features), rows.to_vec())
            .unwrap()
            .into();
        let out = self.tract.run(tvec!(x.into())).expect("tract run");
        let view = out[0].to_plain_array_view::<f32>().expect("f32 output");
        (view.shape().to_vec(), view.iter().copied().collect())
    }

    /// ONNX Runtime's output `name` as (shape, values), or `None` without ORT.
    pub fn ort(&mut self, rows: &[f32], name: &str) -> Option<(Vec<usize>, Vec<f32>)> {
        let session = self.ort.as_mut()?;
        let n = rows.len() / self.n_features;
        let x = TensorRef::from_array_view(([n, self.n_features], rows)).expect("input tensor");
        let out = session.run(ort::inputs!["input" => x]).expect("ort run");
        let (shape, data) = out[name].try_extract_tensor::<f32>().expect("f32 output");
        Some((shape.iter().map(|d| *d as usize).collect(), data.to_vec()))
    }
}

/// Runs `rows` in both runtimes and asserts output `name` has shape `[n, width]` and equals
/// `expected` within [`TOLERANCE`].
pub fn assert_runtimes_match(
    what: &str,
    model: &mut Loaded,
    rows: &[f32],
    name: &str,
    width: usize,
    expected: &[f32],
) {
    let n = rows.len() / model.n_features;
    assert_eq!(expected.len(), n * width, "{what}: oracle length");
    let tract = Some(model.tract(rows));
    let ort = model.ort(rows, name);
    for (runtime, got) in [("tract", tract), ("onnxruntime", ort)] {
        let Some((shape, values)) = got else { continue };
        assert_eq!(shape, [n, width], "{what}: {runtime} output shape");
        let (worst, delta) = values
            .iter()
            .zip(expected)
            .map(|(a, b)| (a - b).abs())
            .enumerate()
            .fold((0, 0.0f32), |acc, (i, d)| {
                if d > acc.1 || d.is_nan() { (i, d) } else { acc }
            });
        assert!(
            delta <= TOLERANCE,
            "{what}: {runtime} differs from the oracle by {delta} at value {worst} (row {}): \
             got {}, expected {}, row {:?}",
            worst / width,
            values[worst],
            expected[worst],
            &rows[worst / width * model.n_features..][..model.n_features]
        );
    }
}
