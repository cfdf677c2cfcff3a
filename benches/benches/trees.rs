//! Why `TreeEnsemble::to_onnx` splits trees over several classifier nodes: the example GBDT
//! exported with 1, 4, 8, 16 and all 50 trees per `TreeEnsembleClassifier` node, on both
//! backends, at batch 1 and 64.
//!
//!   cargo bench -p vane-benches --bench trees

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use vane_models::credit;
use vane_server::backend::onnxruntime::OrtRuntime;
use vane_server::backend::{self, BackendKind, LoadOptions};

fn trees(c: &mut Criterion) {
    vane_benches::quiet_library_backtraces();
    let ort = backend::ortlib::discover(
        std::env::var_os("ORT_DYLIB_PATH")
            .map(std::path::PathBuf::from)
            .as_deref(),
    )
    .ok()
    .map(|(p, _)| Arc::new(OrtRuntime::init(&p).expect("ONNX Runtime loads")));
    let gbdt = credit::gbdt();
    let rows = credit::sample_rows(64, 5);
    let opts = LoadOptions {
        width: credit::N_FEATURES,
        intra_op_threads: 1,
        tensors: None,
    };
    let mut group = c.benchmark_group("gbdt-trees-per-node");
    for per_node in [1, 4, 8, 16, credit::GBDT_TREES] {
        let bytes = gbdt.to_onnx_chunked(per_node);
        let mut kinds = vec![BackendKind::Tract];
        if ort.is_some() {
            kinds.push(BackendKind::Ort);
        }
        for kind in kinds {
            let engine = backend::load(kind, ort.as_ref(), &bytes, &opts).expect("model loads");
            let mut session = engine.session().expect("session");
            for n in [1usize, 64] {
                let input = &rows[..n * credit::N_FEATURES];
                group.throughput(Throughput::Elements(n as u64));
                group.bench_with_input(
                    BenchmarkId::new(format!("{kind}/batch{n}"), per_node),
                    &n,
                    |b, &n| b.iter(|| session.predict(input, n).expect("predict")),
                );
            }
        }
    }
    group.finish();
}

criterion_group!(benches, trees);
criterion_main!(benches);
