//! In-process backend throughput: every example model × backend (ort, tract) × batch size.
//!
//!   cargo bench -p vane-benches --bench backends
//!
//! ONNX Runtime is found like the server does (ORT_DYLIB_PATH, Vane's cache, Python); without
//! it only tract is measured.

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use vane_models::credit;
use vane_server::backend::onnxruntime::OrtRuntime;
use vane_server::backend::{self, BackendKind, LoadOptions};

const BATCHES: [usize; 4] = [1, 8, 64, 256];

fn backends(c: &mut Criterion) {
    vane_benches::quiet_library_backtraces();
    let ort = match backend::ortlib::discover(
        std::env::var_os("ORT_DYLIB_PATH")
            .map(std::path::PathBuf::from)
            .as_deref(),
    ) {
        Ok((path, _)) => Some(Arc::new(
            OrtRuntime::init(&path).expect("ONNX Runtime loads"),
        )),
        Err(e) => {
            eprintln!("ONNX Runtime not measured: {e}");
            None
        }
    };
    let rows = credit::sample_rows(*BATCHES.iter().max().unwrap(), 11);
    let opts = LoadOptions {
        width: credit::N_FEATURES,
        intra_op_threads: 1,
        tensors: None,
    };
    for ex in credit::example_models() {
        let bytes = ex.model.to_onnx();
        let mut group = c.benchmark_group(ex.name);
        let mut kinds = vec![BackendKind::Tract];
        if ort.is_some() {
            kinds.insert(0, BackendKind::Ort);
        }
        for kind in kinds {
            let engine = backend::load(kind, ort.as_ref(), &bytes, &opts).expect("model loads");
            let mut session = engine.session().expect("session");
            for &n in &BATCHES {
                let input = &rows[..n * credit::N_FEATURES];
                group.throughput(Throughput::Elements(n as u64));
                group.bench_with_input(BenchmarkId::new(kind.to_string(), n), &n, |b, &n| {
                    b.iter(|| session.predict(input, n).expect("predict"))
                });
            }
        }
        group.finish();
    }
}

criterion_group!(benches, backends);
criterion_main!(benches);
