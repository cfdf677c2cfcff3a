//! The V2 JSON codec alone (no server): decoding the single-row request of the end-to-end
//! benches into the model's input buffer, and encoding its answer. Criterion.
//!
//!   cargo bench -p vane-benches --bench codec

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use vane_models::credit;
use vane_protocol::tensor::{DType, Output, OutputMeta, TensorData};
use vane_protocol::{Schema, decode_infer, encode_infer};
use vane_registry::DirRegistry;

/// The body `benches/lib.sh` posts (the example row, `name` first as Triton's clients send).
const ROW: &str = r#"{"inputs":[{"name":"input","shape":[1,20],"datatype":"FP32","data":[58000, 21.4, 62.0, 1, 2, 84, 3, 15000, 13.9, 512, 9, 21, 0, 14, 684, 0.26, 1, 0, 0, 2]}]}"#;

fn schema() -> Schema {
    let dir = tempfile::tempdir().expect("tempdir");
    credit::write_example_registry(dir.path()).expect("example registry");
    let mv = DirRegistry::open(dir.path())
        .expect("registry")
        .fetch("credit-risk", 1)
        .expect("version");
    let outputs = vec![OutputMeta {
        name: "probability".into(),
        dtype: DType::F32,
        row_shape: vec![1],
    }];
    Schema::new("credit-risk", 1, mv.signature, outputs, 256, true).expect("schema")
}

fn codec(c: &mut Criterion) {
    let s = schema();
    let body = ROW.as_bytes();
    // Sorted keys (`data` first), as serde_json and `jq -S` write.
    let sorted =
        serde_json::to_vec(&serde_json::from_str::<serde_json::Value>(ROW).unwrap()).expect("json");
    let mut g = c.benchmark_group("v2-json");
    g.bench_function("decode 1x20, name first", |b| {
        b.iter(|| decode_infer(&s, black_box(body), None).expect("decode"))
    });
    g.bench_function("decode 1x20, data first", |b| {
        b.iter(|| decode_infer(&s, black_box(&sorted), None).expect("decode"))
    });
    let d = decode_infer(&s, body, None).expect("decode");
    let out = vec![Output {
        data: TensorData::F32(vec![0.123_456_7]),
        shape: None,
    }];
    g.bench_function("encode 1 row", |b| {
        b.iter(|| encode_infer(&s, None, 1, black_box(&out), &d.outputs))
    });
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
