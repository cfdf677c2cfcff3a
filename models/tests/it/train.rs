//! `vane_models::train`: every exported model equals the trainer's own model in tract and ONNX
//! Runtime (including on missing values, unseen categories and rows exactly on split
//! thresholds); boosted trees beat logistic regression on a non-linear world; training is
//! deterministic; CSV and Parquet load alike; the CLI publishes a version `DirRegistry::fetch`
//! accepts; bad inputs are named.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, OnceLock};

use arrow_array::{ArrayRef, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{Field, Schema};
use vane_models::onnx::{FEATURES, OUTPUT};
use vane_models::rng::SplitMix64;
use vane_models::train::{self, Algorithm, ModelType, PublishOptions, TrainReport, TrainSpec};
use vane_models::{Column, LogisticRegression, Model, Preprocess, TreeNode};
use vane_registry::{DirRegistry, FeatureKind, OnlineSpec, OnlineView, sha256_hex};

use crate::runtimes::{Loaded, TOLERANCE, assert_runtimes_match};

const GRADES: [&str; 5] = ["A", "B", "C", "D", "E"];
/// Non-monotone in code order, so trees need several splits where LR needs one weight each.
const GRADE_EFFECT: [f64; 5] = [0.0, 0.6, -0.4, 1.0, -0.8];
const REGIONS: [&str; 3] = ["north", "south", "island"];
/// 2024-01-01 in days since the Unix epoch.
const JAN_1_2024: i32 = 19_723;

/// A seeded credit-like world whose default log-odds are clearly non-linear: a U-shaped
/// effect of `ring`, an XOR of `wave` and `tilt` (missing `wave` is its own risk level), plus
/// linear, count and categorical effects. Columns: `date` (Date32, a year of days), `ring`,
/// `wave` (10 % null), `tilt`, `lin` (floats), `count` (int), `grade` (text, 3 % null),
/// `region` (text, one rare category), `default` (0/1).
fn world(n: usize, seed: u64) -> RecordBatch {
    let mut r = SplitMix64::new(seed);
    let (mut date, mut ring, mut wave, mut tilt, mut lin) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut count, mut grade, mut region, mut label) = (vec![], vec![], vec![], vec![]);
    for _ in 0..n {
        let d = r.below(366) as i32;
        let x_ring = r.uniform(-3.0, 3.0);
        let x_wave = (!r.chance(0.1)).then(|| r.uniform(-3.0, 3.0));
        let x_tilt = r.uniform(-3.0, 3.0);
        let x_lin = r.normal();
        let k = (0..6).filter(|_| r.chance(0.2)).count() as i64;
        let g = (!r.chance(0.03)).then(|| r.weighted(&[0.3, 0.25, 0.2, 0.15, 0.1]));
        let reg = r.weighted(&[0.6, 0.38, 0.02]);
        let xor = match x_wave {
            Some(w) => {
                if (w > 0.0) != (x_tilt > 0.0) {
                    1.2
                } else {
                    0.0
                }
            }
            None => 0.8,
        };
        let z = -1.0
            + 0.6 * (x_ring * x_ring - 3.0)
            + xor
            + 0.8 * x_lin
            + 0.15 * k as f64
            + g.map_or(0.3, |g| GRADE_EFFECT[g])
            + if reg == 2 { 1.0 } else { 0.0 };
        label.push(i64::from(r.unit() < 1.0 / (1.0 + (-z).exp())));
        date.push(JAN_1_2024 + d);
        ring.push(x_ring);
        wave.push(x_wave);
        tilt.push(x_tilt);
        lin.push(x_lin);
        count.push(k);
        grade.push(g.map(|g| GRADES[g]));
        region.push(REGIONS[reg]);
    }
    let cols: Vec<(&str, ArrayRef)> = vec![
        ("date", Arc::new(Date32Array::from(date))),
        ("ring", Arc::new(Float64Array::from(ring))),
        ("wave", Arc::new(Float64Array::from(wave))),
        ("tilt", Arc::new(Float64Array::from(tilt))),
        ("lin", Arc::new(Float64Array::from(lin))),
        ("count", Arc::new(Int64Array::from(count))),
        ("grade", Arc::new(StringArray::from(grade))),
        ("region", Arc::new(StringArray::from(region))),
        ("default", Arc::new(Int64Array::from(label))),
    ];
    let fields: Vec<Field> = cols
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect();
    RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        cols.into_iter().map(|(_, a)| a).collect(),
    )
    .unwrap()
}

fn spec() -> TrainSpec {
    TrainSpec {
        time_column: Some("date".into()),
        ..TrainSpec::new("default")
    }
}

/// Both models on 8000 rows of the world, split by date; trained once for the tests below.
fn report() -> &'static TrainReport {
    static REPORT: OnceLock<TrainReport> = OnceLock::new();
    REPORT.get_or_init(|| train::train(&[world(8_000, 1)], &spec()).unwrap())
}

/// Rows that probe the encoding: the first `test` rows of the test split, then for a base row
/// every feature set to missing (NaN; for categoricals also the unseen code K, K + 3, -1 and a
/// fraction), huge and signed-zero values, and — for tree models — split thresholds (at most
/// `thresholds` of them, evenly spread) with the floats just above and below each.
fn probe_rows(report: &TrainReport, model: &Model, test: usize, thresholds: usize) -> Vec<f32> {
    let f = report.features.len();
    let mut rows = report.test_rows[..test.min(report.rows.test) * f].to_vec();
    let base: Vec<f32> = report.test_rows[..f].to_vec();
    let mut with = |j: usize, v: f32| {
        let mut row = base.clone();
        row[j] = v;
        rows.extend(row);
    };
    for (j, fi) in report.features.iter().enumerate() {
        with(j, f32::NAN);
        match fi.kind {
            FeatureKind::Numeric => {
                for v in [-1e30, 1e30, 0.0, -0.0, f32::MAX] {
                    with(j, v);
                }
            }
            FeatureKind::Categorical => {
                let k = fi.vocab.len() as f32;
                for v in [k, k + 3.0, -1.0, 0.5] {
                    with(j, v);
                }
            }
        }
    }
    if let Model::TreeEnsemble(m) = model {
        let splits: Vec<(usize, u32)> = m
            .trees
            .iter()
            .flat_map(|t| &t.nodes)
            .filter_map(|n| match *n {
                TreeNode::Split {
                    feature, threshold, ..
                } => Some((feature, threshold.to_bits())),
                TreeNode::Leaf { .. } => None,
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let step = splits.len().div_ceil(thresholds.max(1)).max(1);
        for &(feature, bits) in splits.iter().step_by(step) {
            let t = f32::from_bits(bits);
            for v in [t, t.next_up(), t.next_down()] {
                with(feature, v);
            }
        }
    }
    // Everything missing at once.
    rows.extend(vec![f32::NAN; f]);
    rows
}

fn assert_close(what: &str, got: &[f32], expected: &[f32], rows: &[f32], f: usize) {
    assert_eq!(got.len(), expected.len(), "{what}: length");
    for (i, (a, b)) in got.iter().zip(expected).enumerate() {
        assert!(
            (a - b).abs() <= TOLERANCE,
            "{what}: {a} vs {b} at row {i}: {:?}",
            &rows[i * f..(i + 1) * f]
        );
    }
}

#[test]
fn exported_models_match_the_trainer_in_tract_and_onnxruntime() {
    let report = report();
    let f = report.features.len();
    assert_eq!(report.trained().count(), 2);
    for t in report.trained() {
        let a = t.algorithm;
        // The trainer's own model against the exported model's oracle on every test row and
        // every threshold: cheap, pure Rust.
        let rows = probe_rows(report, &t.model, usize::MAX, usize::MAX);
        let oracle = t.model.predict(&rows, f);
        let ours: Vec<f32> = t.predict(&rows).iter().map(|p| *p as f32).collect();
        assert_close(&format!("{a}: trainer vs oracle"), &ours, &oracle, &rows, f);
        // The runtimes against both on a subset (tract's tree ensemble is slow in debug
        // builds: its leaf lookup walks every leaf of a classifier node).
        let rows = probe_rows(report, &t.model, 200, 150);
        let oracle = t.model.predict(&rows, f);
        let ours: Vec<f32> = t.predict(&rows).iter().map(|p| *p as f32).collect();
        let mut loaded = Loaded::new(&t.model.to_onnx(), f);
        let n = rows.len() / f;
        let (shape, tract) = loaded.tract(&rows);
        assert_eq!(shape, [n, 1]);
        assert_close(&format!("{a}: tract vs oracle"), &tract, &oracle, &rows, f);
        assert_close(&format!("{a}: tract vs trainer"), &tract, &ours, &rows, f);
        if let Some((shape, ort)) = loaded.ort(&rows, OUTPUT) {
            assert_eq!(shape, [n, 1]);
            assert_close(
                &format!("{a}: onnxruntime vs oracle"),
                &ort,
                &oracle,
                &rows,
                f,
            );
            assert_close(
                &format!("{a}: onnxruntime vs trainer"),
                &ort,
                &ours,
                &rows,
                f,
            );
        }
        eprintln!("{a}: {n} rows checked in both runtimes; {}", t.details);
    }
}

#[test]
fn gbdt_beats_lr_on_the_nonlinear_world() {
    let report = report();
    let (lr, gbdt) = (report.lr.as_ref().unwrap(), report.gbdt.as_ref().unwrap());
    eprintln!("lr {:?}\ngbdt {:?}", lr.test, gbdt.test);
    assert!(lr.test.auc > 0.6, "lr test AUC {}", lr.test.auc);
    assert!(
        gbdt.test.auc > lr.test.auc + 0.03,
        "gbdt {} vs lr {}",
        gbdt.test.auc,
        lr.test.auc
    );
    assert!(gbdt.test.log_loss < lr.test.log_loss && gbdt.test.brier < lr.test.brier);
    assert!(gbdt.test.ks > lr.test.ks);
    assert_eq!(report.chosen, Algorithm::Gbdt, "chosen by validation AUC");
    for t in report.trained() {
        assert!((t.test.gini - (2.0 * t.test.auc - 1.0)).abs() < 1e-12);
        assert_eq!(t.test.rows, report.rows.test);
    }
    let trees = gbdt.details["trees"].as_u64().unwrap();
    assert!(
        trees >= 10 && trees < gbdt.details["rounds"].as_u64().unwrap() + 1,
        "{}",
        gbdt.details
    );
    // The split is by date: test rows are the latest.
    assert_eq!(report.split["method"], "time");
    let valid_from = report.split["valid_from"].as_str().unwrap();
    let test_from = report.split["test_from"].as_str().unwrap();
    assert!(
        valid_from.starts_with("2024-") && valid_from < test_from,
        "{}",
        report.split
    );
}

#[test]
fn signature_and_profile_describe_the_training_rows() {
    let report = report();
    let names: Vec<&str> = report.features.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        ["ring", "wave", "tilt", "lin", "count", "grade", "region"],
        "every column but label and time, in table order"
    );
    let sig = &report.signature;
    sig.validate().unwrap();
    assert_eq!(sig.tensor.as_ref().unwrap().shape, [-1, 7]);
    assert_eq!(sig.inputs[4].dtype, "INT64");
    let grade = &report.features[5];
    assert_eq!(
        grade.vocab, GRADES,
        "by frequency (generator shares decrease)"
    );
    let region = &report.features[6];
    assert_eq!(region.vocab, REGIONS);
    let p = &report.profile;
    p.validate().unwrap();
    p.check_against(sig).unwrap();
    let vane_registry::FeatureProfile::Numeric {
        edges,
        missing_share,
        sample,
        ..
    } = p.feature("wave").unwrap()
    else {
        panic!("wave is numeric")
    };
    assert_eq!(edges.len(), 9);
    assert!((missing_share - 0.1).abs() < 0.02, "{missing_share}");
    assert!(sample.len() <= 10_000 && !sample.is_empty());
    let vane_registry::FeatureProfile::Numeric { edges, .. } = p.feature("count").unwrap() else {
        panic!()
    };
    assert!(
        edges.len() < 9,
        "discrete feature: deduplicated edges {edges:?}"
    );
    let vane_registry::FeatureProfile::Categorical { unseen_share, .. } =
        p.feature("grade").unwrap()
    else {
        panic!()
    };
    assert!(
        *unseen_share > 0.0 && *unseen_share < 0.06,
        "null grades are unseen"
    );
    let score = p.score.as_ref().unwrap();
    assert_eq!(score.name(), OUTPUT);
    // Encoding a batch again gives the trainer's tensor; an unseen category becomes K.
    let batch = world(5, 99);
    let x = report.encode(&[batch]).unwrap();
    assert_eq!(x.len(), 5 * 7);
    let odd = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("ring", arrow_schema::DataType::Float64, true),
            Field::new("wave", arrow_schema::DataType::Float64, true),
            Field::new("tilt", arrow_schema::DataType::Float64, true),
            Field::new("lin", arrow_schema::DataType::Float64, true),
            Field::new("count", arrow_schema::DataType::Int64, true),
            Field::new("grade", arrow_schema::DataType::Utf8, true),
            Field::new("region", arrow_schema::DataType::Utf8, true),
        ])),
        vec![
            Arc::new(Float64Array::from(vec![1.0])),
            Arc::new(Float64Array::from(vec![None])),
            Arc::new(Float64Array::from(vec![1.0])),
            Arc::new(Float64Array::from(vec![1.0])),
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(StringArray::from(vec!["Z"])),
            Arc::new(StringArray::from(vec![None::<&str>])),
        ],
    )
    .unwrap();
    let x = report.encode(&[odd]).unwrap();
    assert!(x[1].is_nan());
    assert_eq!((x[5], x[6]), (5.0, 3.0), "unseen / null category -> K");
}

#[test]
fn training_is_deterministic_for_a_seed() {
    let batch = world(4_000, 5);
    let spec = TrainSpec {
        seed: 11,
        exclude: vec!["date".into()],
        ..TrainSpec::new("default")
    };
    let a = train::train(std::slice::from_ref(&batch), &spec).unwrap();
    let b = train::train(std::slice::from_ref(&batch), &spec).unwrap();
    assert_eq!(a.metrics_json(), b.metrics_json());
    assert_eq!(
        a.files().unwrap(),
        b.files().unwrap(),
        "identical files, byte for byte"
    );
    for (x, y) in a.trained().zip(b.trained()) {
        assert_eq!(x.model.to_onnx(), y.model.to_onnx(), "{}", x.algorithm);
    }
    assert_eq!(a.split["method"], "random");
    let c = train::train(
        &[batch],
        &TrainSpec {
            seed: 12,
            ..spec.clone()
        },
    )
    .unwrap();
    assert_ne!(
        a.gbdt.as_ref().unwrap().model.to_onnx(),
        c.gbdt.as_ref().unwrap().model.to_onnx(),
        "another seed, another split"
    );
}

#[test]
fn only_the_requested_model_type_is_trained() {
    let batch = world(3_000, 8);
    let lr = train::train(
        std::slice::from_ref(&batch),
        &TrainSpec {
            model_type: ModelType::Lr,
            ..spec()
        },
    )
    .unwrap();
    assert!(lr.gbdt.is_none() && lr.chosen == Algorithm::Lr);
    assert_eq!(lr.chosen().model.kind(), "logistic_regression");
    let spec = TrainSpec {
        model_type: ModelType::Gbdt,
        features: vec!["grade".into(), "ring".into()],
        ..spec()
    };
    let g = train::train(&[batch], &spec).unwrap();
    assert!(g.lr.is_none() && g.chosen == Algorithm::Gbdt);
    assert_eq!(
        g.signature.inputs[0].name, "grade",
        "the given feature order"
    );
    assert_eq!(g.metrics_json()["published"], "gbdt");
}

/// Writes `batch` as CSV (header, empty = null, dates as YYYY-MM-DD).
fn write_csv(batch: &RecordBatch, path: &Path) {
    let file = std::fs::File::create(path).unwrap();
    let mut w = arrow_csv::WriterBuilder::new()
        .with_header(true)
        .build(file);
    w.write(batch).unwrap();
}

fn write_parquet(batch: &RecordBatch, path: &Path) {
    let file = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

#[test]
fn csv_and_parquet_load_the_same_table() {
    let tmp = tempfile::tempdir().unwrap();
    let batch = world(3_000, 4);
    let (csv, pq) = (tmp.path().join("w.csv"), tmp.path().join("w.parquet"));
    write_csv(&batch, &csv);
    write_parquet(&batch, &pq);
    let spec = TrainSpec {
        model_type: ModelType::Gbdt,
        ..spec()
    };
    let from_mem = train::train(std::slice::from_ref(&batch), &spec).unwrap();
    for path in [&csv, &pq] {
        let batches = train::read_table(path, None).unwrap();
        let r = train::train(&batches, &spec).unwrap();
        assert_eq!(
            r.chosen().model.to_onnx(),
            from_mem.chosen().model.to_onnx(),
            "{}",
            path.display()
        );
        assert_eq!(r.signature, from_mem.signature, "{}", path.display());
    }
    // Projection reads only the named columns; a missing one is named.
    let cols = ["ring".to_string(), "default".to_string()];
    for path in [&csv, &pq] {
        let b = train::read_table(path, Some(&cols)).unwrap();
        assert_eq!(b[0].num_columns(), 2);
        let e = train::read_table(path, Some(&["nope".to_string()])).unwrap_err();
        assert!(e.to_string().contains(r#"column "nope" not found"#), "{e}");
    }
    let e = train::read_table(&tmp.path().join("w.json"), None).unwrap_err();
    assert!(e.to_string().contains("No such file") || e.to_string().contains("w.json"));
}

#[test]
fn errors_name_the_column_and_row() {
    let batch = world(200, 3);
    let e = train::train(std::slice::from_ref(&batch), &TrainSpec::new("defaulted"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(r#"label column "defaulted" not found; columns: date, ring"#),
        "{e}"
    );
    // A label of 2 at row 17.
    let mut cols: Vec<ArrayRef> = batch.columns().to_vec();
    let mut y: Vec<i64> = (0..200).map(|i| i % 2).collect();
    y[17] = 2;
    cols[8] = Arc::new(Int64Array::from(y));
    let bad = RecordBatch::try_new(batch.schema(), cols).unwrap();
    let e = train::train(&[bad], &TrainSpec::new("default"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(r#"label column "default": row 17: value 2 is not 0 or 1"#)
            && e.contains("--positive-label"),
        "{e}"
    );
    let e = train::train(std::slice::from_ref(&batch), &TrainSpec::new("grade"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(r#"label column "grade": type Utf8 is not a 0/1 label"#),
        "{e}"
    );
    let spec = TrainSpec {
        features: vec!["ring".into(), "date".into()],
        ..TrainSpec::new("default")
    };
    let e = train::train(&[batch], &spec).unwrap_err().to_string();
    assert!(
        e.contains(r#"feature column "date": type Date32 is neither numeric nor text"#),
        "{e}"
    );
}

#[test]
fn mean_imputation_runs_in_both_runtimes() {
    let pre = Preprocess::new(vec![
        Column::Numeric {
            mean: 3.5,
            scale: 2.0,
        },
        Column::Passthrough,
        Column::Categorical { cardinality: 3 },
        Column::Numeric {
            mean: -1.25,
            scale: 0.5,
        },
    ])
    .with_mean_imputation();
    let nan = f32::NAN;
    #[rustfmt::skip]
    let rows = vec![
        1.0, 2.0, 0.0, 4.0,
        nan, 2.0, 1.0, nan,
        nan, nan, nan, 0.5,
        7.0, nan, 3.0, nan,
    ];
    let mut loaded = Loaded::new(&pre.to_onnx(), 4);
    let expected = pre.transform(&rows, 4);
    // Width 6: numeric, passthrough, numeric, then the one-hot block; row 1 starts at 6.
    assert_eq!(
        (expected[6], expected[8]),
        (0.0, 0.0),
        "row 1: numeric NaN -> mean -> 0"
    );
    assert!(expected[13].is_nan(), "row 2: passthrough keeps NaN");
    // NaN == NaN is false, so compare the NaN positions first and the rest within tolerance.
    let (_, tract) = loaded.tract(&rows);
    for (a, b) in tract.iter().zip(&expected) {
        assert!(a.is_nan() == b.is_nan() && (a.is_nan() || (a - b).abs() <= 1e-6));
    }
    if let Some((_, ort)) = loaded.ort(&rows, FEATURES) {
        for (a, b) in ort.iter().zip(&expected) {
            assert!(a.is_nan() == b.is_nan() && (a.is_nan() || (a - b).abs() <= 1e-6));
        }
    }
    // Without NaN in passthrough columns, a whole model is finite and matches.
    let lr = LogisticRegression {
        preprocess: Preprocess::new(vec![
            Column::Numeric {
                mean: 3.5,
                scale: 2.0,
            },
            Column::Categorical { cardinality: 3 },
        ])
        .with_mean_imputation(),
        weights: vec![0.5, 0.25, -0.5, 1.0],
        bias: -0.2,
    };
    let rows = vec![1.0, 0.0, nan, 2.0, 9.0, nan, nan, 3.0];
    let mut loaded = Loaded::new(&lr.to_onnx(), 2);
    let expected = lr.predict(&rows, 2);
    assert!(expected.iter().all(|p| p.is_finite()));
    assert_runtimes_match("imputed lr", &mut loaded, &rows, OUTPUT, 1, &expected);
}

#[test]
fn cli_trains_a_csv_and_publishes_a_fetchable_version() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("loans.csv");
    write_csv(&world(3_000, 21), &csv);
    let (reg, out) = (tmp.path().join("registry"), tmp.path().join("out"));
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_vane-models"))
            .arg("train")
            .arg("--data")
            .arg(&csv)
            .args([
                "--label",
                "default",
                "--time-column",
                "date",
                "--model",
                "loans",
            ])
            .args(["--alias", "champion", "--max-trees", "60", "--seed", "7"])
            .arg("--registry")
            .arg(&reg)
            .arg("--out")
            .arg(&out)
            .env_remove("VANE_REGISTRY")
            .output()
            .unwrap()
    };
    let first = run();
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&first.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("rows: train "), "{stdout}");
    assert!(
        lines[1].starts_with("model") && lines[1].contains("test_auc"),
        "{stdout}"
    );
    assert!(
        lines[2].starts_with("lr ") && lines[3].starts_with("gbdt "),
        "{stdout}"
    );
    assert!(
        lines[4].starts_with("published loans version 1: ") && lines[4].ends_with("champion -> 1"),
        "{stdout}"
    );

    let registry = DirRegistry::open(&reg).unwrap();
    let v = registry.fetch("loans", 1).unwrap();
    assert_eq!(registry.aliases("loans").unwrap()["champion"], 1);
    let profile = v.profile.as_ref().expect("profile.json published");
    profile.validate().unwrap();
    profile.check_against(&v.signature).unwrap();
    assert_eq!(v.signature.inputs.len(), 7);
    assert!(v.manifest.files.contains_key("metrics.json"));
    assert_eq!(
        std::fs::read(out.join("model.onnx")).unwrap(),
        v.model_bytes
    );
    assert!(out.join("candidates/lr.onnx").is_file() && out.join("candidates/gbdt.onnx").is_file());
    let lineage = &v.manifest.lineage;
    assert_eq!(lineage["tool"], "vane-models train");
    assert_eq!(lineage["seed"], 7);
    assert_eq!(
        lineage["data"][0]["sha256"],
        sha256_hex(&std::fs::read(&csv).unwrap())
    );
    assert_eq!(lineage["params"]["gbdt"]["max_trees"], 60);
    assert_eq!(lineage["split"]["method"], "time");
    let metrics = &v.manifest.metrics;
    let published = metrics["published"].as_str().unwrap();
    assert!(
        metrics["models"][published]["test"]["auc"]
            .as_f64()
            .unwrap()
            > 0.6
    );
    assert_eq!(metrics["test"], metrics["models"][published]["test"]);

    // The published model runs and agrees with the trainer on the file's rows.
    let report = train::train(
        &train::read_table(&csv, None).unwrap(),
        &TrainSpec {
            seed: 7,
            time_column: Some("date".into()),
            gbdt: train::GbdtParams {
                max_trees: 60,
                ..Default::default()
            },
            ..TrainSpec::new("default")
        },
    )
    .unwrap();
    assert_eq!(
        report.chosen().model.to_onnx(),
        v.model_bytes,
        "CLI = library"
    );
    let mut loaded = Loaded::new(&v.model_bytes, 7);
    let rows = &report.test_rows[..64 * 7];
    let expected: Vec<f32> = report
        .chosen()
        .predict(rows)
        .iter()
        .map(|p| *p as f32)
        .collect();
    assert_runtimes_match("published", &mut loaded, rows, OUTPUT, 1, &expected);

    // Same data and seed again: a new version with identical model bytes.
    let second = run();
    assert!(second.status.success());
    let v2 = registry.fetch("loans", 2).unwrap();
    assert_eq!(v2.model_bytes, v.model_bytes);
    assert_eq!(registry.aliases("loans").unwrap()["champion"], 2);

    // Publishing from the library without an alias, with an online spec.
    let online = OnlineSpec {
        keys: vec![vane_registry::OnlineKey::new("applicant_id", "INT64")],
        views: vec![OnlineView {
            name: "activity".into(),
            keys: vec!["applicant_id".into()],
            ttl_s: Some(86_400),
            features: vec!["ring".into(), "wave".into()],
        }],
    };
    let opts = PublishOptions {
        registry: reg.display().to_string(),
        model: "loans".into(),
        online: Some(online.clone()),
        ..Default::default()
    };
    assert_eq!(train::publish(&report, &opts).unwrap(), 3);
    assert_eq!(registry.aliases("loans").unwrap()["champion"], 2);
    assert_eq!(
        registry.fetch("loans", 3).unwrap().signature.online,
        Some(online)
    );
    let mut bad = opts.clone();
    bad.online.as_mut().unwrap().views[0]
        .features
        .push("income".into());
    let e = train::publish(&report, &bad).unwrap_err().to_string();
    assert!(e.contains(r#""income", which is not an input"#), "{e}");
    assert_eq!(registry.versions("loans").unwrap(), [1, 2, 3]);
}

#[test]
fn cli_names_a_missing_label_column() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("t.csv");
    write_csv(&world(100, 2), &csv);
    let out = Command::new(env!("CARGO_BIN_EXE_vane-models"))
        .arg("train")
        .arg("--data")
        .arg(&csv)
        .args(["--label", "bad_flag", "--model", "m", "--registry"])
        .arg(tmp.path().join("r"))
        .env_remove("VANE_REGISTRY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(r#"label column "bad_flag" not found; columns: date, ring"#),
        "{stderr}"
    );
    assert!(!tmp.path().join("r").exists(), "nothing published");
}

/// Not a test: writes the benchmark table of `BENCHMARKS.md` (credit-like, 20 features, a
/// non-linear default rule, some nulls, two years of application dates) as Parquet to
/// `$VANE_TRAIN_BENCH_TABLE` (default `target/train-bench.parquet`), with
/// `$VANE_TRAIN_BENCH_ROWS` rows (default 500 000).
#[test]
#[ignore = "generates the benchmark table; run explicitly"]
fn write_benchmark_table() {
    use vane_models::credit::{CATEGORICAL, N_FEATURES, NUMERIC, feature_names, sample_rows};
    let n: usize = std::env::var("VANE_TRAIN_BENCH_ROWS")
        .map(|v| v.parse().unwrap())
        .unwrap_or(500_000);
    let path = std::env::var_os("VANE_TRAIN_BENCH_TABLE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            let models = Path::new(env!("CARGO_MANIFEST_DIR"));
            models.parent().unwrap().join("target/train-bench.parquet")
        });
    let x = sample_rows(n, 2026);
    let mut r = SplitMix64::new(1126);
    let col = |name: &str| feature_names().iter().position(|f| *f == name).unwrap();
    let (fico, dti, util, delinq, inq) = (
        col("fico_score"),
        col("debt_to_income"),
        col("revolving_utilization"),
        col("delinquencies_2y"),
        col("inquiries_6m"),
    );
    let (income, emp, rate, lti, term, purpose) = (
        col("annual_income"),
        col("employment_length_years"),
        col("interest_rate"),
        col("loan_to_income"),
        col("term"),
        col("purpose"),
    );
    let mut label = Vec::with_capacity(n);
    let mut day = Vec::with_capacity(n);
    for row in x.chunks_exact(N_FEATURES) {
        let v = |j: usize| row[j] as f64;
        let z = -2.35
            + if v(fico) < 640.0 {
                1.1
            } else if v(fico) < 680.0 {
                0.45
            } else if v(fico) > 760.0 {
                -0.6
            } else {
                0.0
            }
            + if v(dti) > 30.0 && v(util) > 70.0 {
                0.9
            } else {
                0.0
            }
            + if v(purpose) == 4.0 && v(income) < 45_000.0 {
                1.0
            } else {
                0.0
            }
            + if v(term) == 1.0 && v(lti) > 0.35 {
                0.8
            } else {
                0.0
            }
            + 0.45 * v(delinq).min(3.0)
            + 0.2 * v(inq)
            + if v(emp) < 1.0 { 0.4 } else { 0.0 }
            + 0.012 * (v(util) - 35.0).powi(2) / 35.0
            + 0.1 * (v(rate) - 13.0)
            + 0.5 * r.normal();
        label.push(i64::from(r.unit() < 1.0 / (1.0 + (-z).exp())));
        day.push(JAN_1_2024 + r.below(731) as i32);
    }
    let mut cols: Vec<(String, ArrayRef)> =
        vec![("application_date".into(), Arc::new(Date32Array::from(day)))];
    for (j, f) in NUMERIC.iter().enumerate() {
        // Nulls: income 3 %, months since last delinquency 8 %.
        let null_share = match f.name {
            "annual_income" => 0.03,
            "months_since_last_delinquency" => 0.08,
            _ => 0.0,
        };
        let values: Vec<Option<f64>> = x
            .chunks_exact(N_FEATURES)
            .map(|row| (!r.chance(null_share)).then_some(row[j] as f64))
            .collect();
        cols.push((f.name.into(), Arc::new(Float64Array::from(values))));
    }
    for (k, f) in CATEGORICAL.iter().enumerate() {
        let values: Vec<&str> = x
            .chunks_exact(N_FEATURES)
            .map(|row| f.vocab[row[NUMERIC.len() + k] as usize])
            .collect();
        cols.push((f.name.into(), Arc::new(StringArray::from(values))));
    }
    cols.push(("default_12m".into(), Arc::new(Int64Array::from(label))));
    let fields: Vec<Field> = cols
        .iter()
        .map(|(n, a)| Field::new(n.as_str(), a.data_type().clone(), true))
        .collect();
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        cols.into_iter().map(|(_, a)| a).collect(),
    )
    .unwrap();
    write_parquet(&batch, &path);
    let positives = batch
        .column(batch.num_columns() - 1)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .values()
        .iter()
        .sum::<i64>();
    eprintln!(
        "wrote {n} rows ({:.1} % default) to {}",
        100.0 * positives as f64 / n as f64,
        path.display()
    );
}

/// Not a test: joins a `vane-models datagen` world point-in-time (applications as the entity
/// data frame, the `credit_risk_v1` service's features) and writes the training set as
/// Parquet, for the synthetic-world figures of `BENCHMARKS.md`: `$VANE_WORLD_DIR` (the datagen
/// output) → `$VANE_WORLD_DIR/training_set.parquet`.
#[test]
#[ignore = "needs a datagen world; run explicitly"]
fn write_world_training_set() {
    use vane_features::{FeatureRepo, get_historical_features, read_parquet_table};
    let dir = std::path::PathBuf::from(std::env::var_os("VANE_WORLD_DIR").expect("VANE_WORLD_DIR"));
    let repo = FeatureRepo::load(dir.join("features.toml")).unwrap();
    let apps = read_parquet_table(&dir.join("applications.parquet"), None).unwrap();
    let features = repo.service_features("credit_risk_v1").unwrap().to_vec();
    let start = std::time::Instant::now();
    let joined = get_historical_features(&repo, &apps, &features).unwrap();
    eprintln!(
        "joined {} rows x {} columns in {:.1} s",
        joined.num_rows(),
        joined.num_columns(),
        start.elapsed().as_secs_f64()
    );
    write_parquet(&joined, &dir.join("training_set.parquet"));
}

/// A feature service over a STRING-keyed view and a view of a composite key: the training set
/// joins each view on its own keys, and the online spec the trainer publishes names every key
/// and each view's keys.
#[test]
fn a_service_over_string_and_composite_keys_names_every_key_online() {
    use arrow_array::Array;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ts = |v: Vec<i64>| Arc::new(Int64Array::from(v)) as ArrayRef;
    let strs = |v: &[&str]| Arc::new(StringArray::from_iter_values(v.iter())) as ArrayRef;
    let profile = RecordBatch::try_from_iter([
        ("applicant_ref", strs(&["a", "b"])),
        ("event_timestamp", ts(vec![10, 10])),
        (
            "income",
            Arc::new(Float64Array::from(vec![1.0, 2.0])) as ArrayRef,
        ),
    ])
    .unwrap();
    write_parquet(&profile, &d.join("profile.parquet"));
    let activity = RecordBatch::try_from_iter([
        ("applicant_ref", strs(&["a", "a", "b"])),
        ("bureau_id", ts(vec![1, 2, 1])),
        ("event_timestamp", ts(vec![10, 10, 10])),
        (
            "utilization",
            Arc::new(Float64Array::from(vec![0.1, 0.2, 0.3])) as ArrayRef,
        ),
    ])
    .unwrap();
    write_parquet(&activity, &d.join("activity.parquet"));
    let entities = RecordBatch::try_from_iter([
        ("applicant_ref", strs(&["a", "a", "b", "c"])),
        ("bureau_id", ts(vec![2, 1, 2, 1])),
        ("event_timestamp", ts(vec![20, 20, 20, 20])),
        ("default", ts(vec![0, 1, 0, 1])),
    ])
    .unwrap();
    write_parquet(&entities, &d.join("entities.parquet"));
    std::fs::write(
        d.join("features.toml"),
        r#"
[[entities]]
name = "applicant"
join_key = "applicant_ref"
dtype = "STRING"

[[entities]]
name = "bureau"
join_key = "bureau_id"

[[feature_views]]
name = "profile"
entity = "applicant"
source = "profile.parquet"
timestamp_field = "event_timestamp"
fields = [{ name = "income", dtype = "FP64" }]

[[feature_views]]
name = "activity"
entities = ["applicant", "bureau"]
source = "activity.parquet"
timestamp_field = "event_timestamp"
fields = [{ name = "utilization", dtype = "FP64" }]

[[feature_services]]
name = "svc"
features = ["profile:income", "activity:utilization"]
"#,
    )
    .unwrap();
    let mut spec = TrainSpec::default();
    let set = train::service_training_set(
        &d.join("features.toml"),
        None,
        &d.join("entities.parquet"),
        &mut spec,
    )
    .unwrap();
    let joined = &set.batches[0];
    let col = |n: &str| {
        let c = joined.column_by_name(n).unwrap();
        let c = c.as_any().downcast_ref::<Float64Array>().unwrap();
        (0..c.len())
            .map(|i| (!c.is_null(i)).then(|| c.value(i)))
            .collect::<Vec<_>>()
    };
    assert_eq!(col("income"), [Some(1.0), Some(1.0), Some(2.0), None]);
    assert_eq!(col("utilization"), [Some(0.2), Some(0.1), None, None]);
    let online = set.online.unwrap();
    assert_eq!(
        online.keys,
        [
            vane_registry::OnlineKey::new("applicant_ref", "STRING"),
            vane_registry::OnlineKey::new("bureau_id", "INT64")
        ]
    );
    assert_eq!(online.views[0].keys, ["applicant_ref"]);
    assert_eq!(online.views[1].keys, ["applicant_ref", "bureau_id"]);
}
