//! Heap allocations per inference request through the server's HTTP handler
//! (`vane_server::http::handle`, in process: routing, body, decode, batcher, encode, headers),
//! counted by a global allocator wrapper. Single-row V2 JSON tensor requests against the
//! example logistic regression, on tract and (when `ORT_DYLIB_PATH` is set) ONNX Runtime. The
//! requests are built before counting; hyper's connection handling is not included. It also
//! prints the size of the handler's future: each move of it while it is built and polled is a
//! copy of that many bytes.
//!
//!   ORT_DYLIB_PATH=$(scripts/setup-ort.sh) cargo bench -p vane-benches --bench allocs

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use vane_models::credit;
use vane_registry::DirRegistry;
use vane_server::backend::{self, BackendKind, LoadOptions};
use vane_server::config::ModelSettings;
use vane_server::core::Core;
use vane_server::core::model::{LoadedModel, ModelEntry, ModelTable, Routing};
use vane_server::http::{HttpState, handle};
use vane_server::telemetry::Metrics;

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn state(kind: BackendKind, ort: Option<&Arc<backend::onnxruntime::OrtRuntime>>) -> HttpState {
    let dir = tempfile::tempdir().expect("tempdir");
    credit::write_example_registry(dir.path()).expect("example registry");
    let mv = DirRegistry::open(dir.path())
        .expect("registry")
        .fetch("credit-risk", 1)
        .expect("version");
    let opts = LoadOptions {
        width: mv.signature.width(),
        intra_op_threads: 1,
        tensors: None,
    };
    let engine = backend::load(kind, ort, &mv.model_bytes, &opts).expect("load");
    let metrics = Arc::new(Metrics::new());
    let m = LoadedModel::start(&mv, engine, ModelSettings::defaults(2), &metrics).expect("start");
    let mut table = ModelTable::default();
    table.models.insert(
        "credit-risk".into(),
        ModelEntry {
            routing: Routing {
                champion: 1,
                canary: None,
                shadow: None,
            },
            versions: BTreeMap::from([(1, Arc::new(m))]),
        },
    );
    let core = Core::new(table, metrics, Default::default());
    HttpState::new(Arc::new(core), 8 << 20, None)
}

/// The example row as a V2 tensor request: with `name` first, as Triton's and MLServer's
/// clients send it, or with sorted keys (`data` first, as serde_json and `jq -S` write it).
fn body(sorted: bool) -> Vec<u8> {
    let rows = serde_json::to_string(&credit::sample_rows(1, 7)).expect("json");
    let n = credit::N_FEATURES;
    if sorted {
        format!(
            r#"{{"inputs":[{{"data":{rows},"datatype":"FP32","name":"input","shape":[1,{n}]}}]}}"#
        )
    } else {
        format!(
            r#"{{"inputs":[{{"name":"input","shape":[1,{n}],"datatype":"FP32","data":{rows}}}]}}"#
        )
    }
    .into_bytes()
}

fn per_request(label: &str, state: &HttpState, body: &[u8]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let request = || {
        Request::post("/v2/models/credit-risk/infer")
            .header("content-type", "application/json")
            .header("content-length", body.len())
            .body(Full::new(Bytes::copy_from_slice(body)))
            .expect("request")
    };
    let n = 20_000;
    println!(
        "{label}: the handler's future is {} bytes",
        std::mem::size_of_val(&handle(state, request()))
    );
    rt.block_on(async {
        for _ in 0..2_000 {
            assert!(handle(state, request()).await.status().is_success());
        }
        let requests: Vec<_> = (0..n).map(|_| request()).collect();
        let before = ALLOCS.load(Ordering::Relaxed);
        for r in requests {
            let resp = handle(state, r).await;
            assert!(resp.status().is_success());
        }
        let after = ALLOCS.load(Ordering::Relaxed);
        println!(
            "{label}: {:.1} heap allocations per request (incl. dropping the response; {n} requests)",
            (after - before) as f64 / n as f64
        );
    });
}

fn main() {
    // cargo bench passes `--bench`; this harness takes no options.
    let s = state(BackendKind::Tract, None);
    per_request("tract, name first", &s, &body(false));
    if let Ok(path) = std::env::var("ORT_DYLIB_PATH") {
        let rt = Arc::new(
            backend::onnxruntime::OrtRuntime::init(std::path::Path::new(&path)).expect("ort"),
        );
        let s = state(BackendKind::Ort, Some(&rt));
        per_request("ort, name first", &s, &body(false));
        per_request("ort, sorted keys", &s, &body(true));
    } else {
        println!("ort: skipped (ORT_DYLIB_PATH unset)");
    }
}
