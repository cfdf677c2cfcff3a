//! Drift for a tensor-signature model, with real processes: a skl2onnx pipeline (one input per
//! column, numbers and strings) published from its bare `model.onnx` with a `profile.json`
//! that `vane-monitor profile` made from a reference CSV; `vane-server` samples its traffic to
//! `vane-monitor`, which watches each column input as a feature. Traffic like the reference
//! flags nothing; shifted income and a new purpose mix flag exactly those two columns.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use vane_registry::{DirRegistry, PublishRequest};

use crate::util::{MONITOR, Monitor, Server, http, metric};

const MODEL: &str = "pipeline";
const PURPOSES: [&str; 4] = ["car", "home", "education", "business"];
const HOMES: [&str; 3] = ["rent", "own", "mortgage"];

/// One applicant as the pipeline's columns take it.
struct Row {
    age: f32,
    income: f32,
    term: i64,
    purpose: &'static str,
    home: &'static str,
}

/// `n` applicants; `drift` doubles incomes and makes most purposes `business`.
fn applicants(n: usize, seed: u64, drift: bool) -> Vec<Row> {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let income = (20_000.0 + rng.random::<f32>() * 90_000.0).round();
            Row {
                age: 21.0 + (rng.random::<f32>() * 98.0).round() / 2.0,
                income: if drift { income * 2.0 } else { income },
                term: if rng.random::<bool>() { 36 } else { 60 },
                purpose: if drift && rng.random::<f32>() < 0.7 {
                    "business"
                } else {
                    PURPOSES[rng.random_range(0..PURPOSES.len())]
                },
                home: HOMES[rng.random_range(0..HOMES.len())],
            }
        })
        .collect()
}

fn write_csv(path: &Path, rows: &[Row]) {
    let mut text = String::from("age,annual_income,term_months,purpose,home_ownership\n");
    for r in rows {
        text.push_str(&format!(
            "{},{},{},{},{}\n",
            r.age, r.income, r.term, r.purpose, r.home
        ));
    }
    std::fs::write(path, text).unwrap();
}

fn send(server: &Server, rows: &[Row]) {
    for chunk in rows.chunks(50) {
        let n = chunk.len();
        let body = json!({"inputs": [
            {"name": "age", "datatype": "FP32", "shape": [n, 1], "data": chunk.iter().map(|r| r.age).collect::<Vec<_>>()},
            {"name": "annual_income", "datatype": "FP32", "shape": [n, 1], "data": chunk.iter().map(|r| r.income).collect::<Vec<_>>()},
            {"name": "term_months", "datatype": "INT64", "shape": [n, 1], "data": chunk.iter().map(|r| r.term).collect::<Vec<_>>()},
            {"name": "purpose", "datatype": "BYTES", "shape": [n, 1], "data": chunk.iter().map(|r| r.purpose).collect::<Vec<_>>()},
            {"name": "home_ownership", "datatype": "BYTES", "shape": [n, 1], "data": chunk.iter().map(|r| r.home).collect::<Vec<_>>()},
        ]});
        let path = format!("/v2/models/{MODEL}/infer");
        let (status, _, text) = http(
            &server.addr,
            "POST",
            &path,
            &serde_json::to_vec(&body).unwrap(),
        )
        .unwrap();
        assert_eq!(status, 200, "{text}");
    }
}

fn counter(m: &Monitor, name: &str, labels: &str) -> f64 {
    metric(&m.metrics(), &format!("{name}{{model=\"{MODEL}\",{labels}"))
}

fn evaluations(m: &Monitor) -> f64 {
    counter(
        m,
        "vane_monitor_evaluations_total",
        "version=\"1\",window=\"count\"}",
    )
}

/// Waits until the count-window evaluations pass `before`.
fn wait_evaluated(m: &Monitor, before: f64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while evaluations(m) <= before {
        assert!(
            Instant::now() < deadline,
            "window not evaluated:\n{}",
            m.metrics()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The drifted features of the latest live count window, and its watched features.
fn last_window(m: &Monitor) -> (BTreeSet<String>, BTreeSet<String>) {
    let drift = m.drift();
    let report = drift["windows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["model"] == MODEL && r["window"] == "count" && r["source"] == "live")
        .cloned()
        .expect("a count window report");
    let features = report["features"].as_array().unwrap();
    let names = |pick: &dyn Fn(&Value) -> bool| {
        features
            .iter()
            .filter(|f| pick(f))
            .map(|f| f["name"].as_str().unwrap().to_string())
            .collect()
    };
    (names(&|f| f["drift"] == true), names(&|_| true))
}

#[test]
fn a_tensor_models_columns_are_watched_for_drift() {
    if std::env::var_os("ORT_DYLIB_PATH").is_none() {
        // The pipeline's string operators need ONNX Runtime.
        assert_ne!(
            std::env::var("VANE_REQUIRE_ORT").as_deref(),
            Ok("1"),
            "VANE_REQUIRE_ORT=1 but ORT_DYLIB_PATH is not set"
        );
        eprintln!("SKIPPING tensor-model drift: ORT_DYLIB_PATH is not set");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("reference.csv");
    write_csv(&reference, &applicants(4000, 1, false));
    let profile = dir.path().join("profile.json");
    let out = std::process::Command::new(MONITOR)
        .args(["profile", "--data"])
        .arg(&reference)
        .arg("--out")
        .arg(&profile)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let registry = dir.path().join("registry");
    let reg = DirRegistry::create(&registry).unwrap();
    let model: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "server/tests/fixtures/converters/sklearn_pipeline.onnx",
    ]
    .iter()
    .collect();
    let v = reg
        .publish(&PublishRequest {
            model: MODEL.into(),
            files: vec![
                ("model.onnx".into(), std::fs::read(model).unwrap()),
                ("profile.json".into(), std::fs::read(&profile).unwrap()),
            ],
            ..Default::default()
        })
        .unwrap();
    reg.set_alias(MODEL, "champion", v).unwrap();

    let registry_arg = registry.display().to_string();
    let monitor = Monitor::start(&[
        "--registry",
        &registry_arg,
        "--window-rows",
        "1000",
        "--window-seconds",
        "3600",
    ]);
    let server = Server::start(
        &registry,
        &["--monitor", &monitor.ingest, "--sample-percent", "100"],
    );

    // Warm up until the monitor has the profile, then top the window up until it closes, so
    // the next 1 000 rows make a window of their own.
    let live = applicants(6000, 2, false);
    let mut used = 0;
    while counter(
        &monitor,
        "vane_monitor_rows_total",
        "outcome=\"accepted\",version=\"1\"}",
    ) == 0.0
    {
        send(&server, &live[used..used + 50]);
        used += 50;
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = evaluations(&monitor);
    while evaluations(&monitor) <= before {
        let accepted = counter(
            &monitor,
            "vane_monitor_rows_total",
            "outcome=\"accepted\",version=\"1\"}",
        ) as usize;
        let rest = (1000 - accepted % 1000) % 1000;
        if rest > 0 && used + rest <= live.len() {
            send(&server, &live[used..used + rest]);
            used += rest;
        }
        std::thread::sleep(Duration::from_millis(200));
    }

    let before = evaluations(&monitor);
    send(&server, &live[used..used + 1000]);
    wait_evaluated(&monitor, before);
    let (drifted, watched) = last_window(&monitor);
    let columns: BTreeSet<String> = [
        "age",
        "annual_income",
        "term_months",
        "purpose",
        "home_ownership",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(watched, columns, "every column input is a watched feature");
    assert!(
        drifted.is_empty(),
        "reference-like traffic flagged {drifted:?}"
    );

    let before = evaluations(&monitor);
    send(&server, &applicants(1000, 3, true));
    wait_evaluated(&monitor, before);
    let (drifted, _) = last_window(&monitor);
    let expected: BTreeSet<String> = ["annual_income", "purpose"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(drifted, expected);
}
