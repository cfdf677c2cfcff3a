//! The drift monitor's two costs, on the credit-risk schema (16 numeric + 4 categorical
//! features and a score):
//!
//! - `monitor_ingest`: frames of 1 000 sampled rows decoded and added to a stream's count and
//!   time windows (one count window closes per frame) — rows per second on one core;
//! - `monitor_evaluate`: every statistic (PSI, KS, chi-square, shares) of one window, for
//!   windows of 1 000 and 10 000 rows against a 10 000-value reference sample (the trainer's
//!   default; scipy's exact KS path).
//!
//!   cargo bench -p vane-benches --bench monitor

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use vane_models::credit;
use vane_monitor::drift::{Thresholds, evaluate};
use vane_monitor::engine::{Engine, Settings};
use vane_monitor::metrics::Metrics;
use vane_monitor::profiles::{ProfileArg, Profiles, Scope};
use vane_monitor::reference::{Precision, Reference};
use vane_monitor::window::WindowAcc;
use vane_sample_stream as wire;
use vane_server::backend::{DType, OutputMeta};
use vane_server::core::sampler::SampleSchema;

/// The schema the server announces for the example logistic regression.
fn schema() -> wire::Schema {
    let outputs = [OutputMeta {
        name: "probability".into(),
        dtype: DType::F32,
        row_shape: vec![1],
    }];
    SampleSchema::new("credit-risk", 1, &credit::signature(), &outputs, None)
        .wire()
        .clone()
}

/// Frame bodies: the schema, then `frames` rows frames of `rows` rows each.
fn frames(frames: usize, rows: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
    let s = schema();
    let w = s.features.len();
    let data = credit::sample_rows(rows * frames, 7);
    let scores: Vec<f32> = credit::logistic_regression().predict(&data, w);
    let mut buf = Vec::new();
    s.encode_frame(&mut buf);
    let schema_body = buf[4..].to_vec();
    let bodies = (0..frames)
        .map(|f| {
            let mut buf = Vec::new();
            let base = f * rows;
            wire::encode_rows(
                &mut buf,
                s.id(),
                &s,
                false,
                rows,
                |r, c| data[(base + r) * w + c],
                Some(&scores[base..base + rows]),
            );
            buf[4..].to_vec()
        })
        .collect();
    (schema_body, bodies)
}

fn ingest(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("profile.json");
    std::fs::write(
        &path,
        serde_json::to_vec(&credit::reference_profile(
            &credit::logistic_regression().into(),
            10_000,
            1,
        ))
        .expect("json"),
    )
    .expect("write");
    let profiles = Profiles::new(
        &[ProfileArg {
            scope: Scope::Any,
            path,
        }],
        None,
        |_, _| {},
    )
    .expect("profiles");
    // No evaluator thread: closed windows wait (one per stream) and are replaced, so this
    // measures decoding and accumulation only.
    let engine = Engine::new(Settings::default(), profiles, Arc::new(Metrics::new()));
    let (schema, bodies) = frames(16, 1000);
    engine.handle_frame(&schema);
    let mut group = c.benchmark_group("monitor_ingest");
    group.throughput(Throughput::Elements(1000));
    let mut i = 0;
    group.bench_function("rows_frame_1000", |b| {
        b.iter(|| {
            engine.handle_frame(&bodies[i % bodies.len()]);
            i += 1;
        })
    });
    group.finish();
}

fn evaluation(c: &mut Criterion) {
    let reference = Reference::from_profile(
        &credit::reference_profile(&credit::logistic_regression().into(), 10_000, 1),
        "bench",
        Precision::F32,
    );
    let (schema, bodies) = frames(10, 1000);
    let s = schema_of(&schema);
    let plan = vane_monitor::window::Plan::new(&s, &reference);
    let th = Thresholds::default();
    let mut group = c.benchmark_group("monitor_evaluate");
    for rows in [1000usize, 10_000] {
        let mut acc = WindowAcc::new(&reference, 10_000, 0);
        for body in bodies.iter().take(rows / 1000) {
            let wire::Frame::Rows(r) = wire::decode(body).expect("frame") else {
                unreachable!()
            };
            acc.add(&reference, &plan, &r, 0..r.rows);
        }
        group.bench_with_input(BenchmarkId::new("window_rows", rows), &rows, |b, _| {
            b.iter(|| evaluate(&reference, &acc, &th))
        });
    }
    group.finish();
}

fn schema_of(body: &[u8]) -> wire::Schema {
    match wire::decode(body).expect("schema frame") {
        wire::Frame::Schema { schema, .. } => schema,
        wire::Frame::Rows(_) => unreachable!(),
    }
}

criterion_group!(benches, ingest, evaluation);
criterion_main!(benches);
