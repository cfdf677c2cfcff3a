//! The whole drift loop with real processes: `vane-models` generates a credit-risk world and
//! trains a model (its `profile.json` is the reference), `vane-server` serves it and samples
//! every request to `vane-monitor`, which reads the profile from the registry.
//!
//! Traffic comes from a second world (another seed: other applicants, same distribution),
//! joined point-in-time like the training set, over the training period. Then the same world
//! with the datagen's drift injection on one numeric feature (`annual_income`) and one
//! categorical feature (`purpose`).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use vane_registry::{FeatureKind, Signature};
use vane_tabular::Column;

use crate::util::{Monitor, Server, http, metric, sibling_bin};

const MODEL: &str = "credit-risk";

fn vane_models(args: &[&str]) {
    let out = Command::new(sibling_bin("vane-models"))
        .args(args)
        .output()
        .expect("run vane-models");
    assert!(
        out.status.success(),
        "vane-models {args:?}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn datagen(out: &Path, seed: u64, drift: &[&str]) {
    let out = out.display().to_string();
    let seed = seed.to_string();
    let mut args = vec![
        "datagen",
        "--out",
        &out,
        // About one application per applicant: repeat applicants make rows of a window
        // correlated, and KS p-values assume independent rows.
        "--applicants",
        "20000",
        "--applications",
        "20000",
        "--months",
        "12",
        "--start",
        "2024-01-01",
        "--seed",
        &seed,
    ];
    args.extend_from_slice(drift);
    vane_models(&args);
}

/// Tensor rows (signature order; categorical values as codes, missing as NaN) of the
/// earliest `share` of the world's applications, joined point-in-time, in a seeded random
/// order: a window then holds rows from the whole period, like the reference (the synthetic
/// world evolves month by month, so time-ordered windows drift from the pooled profile).
fn traffic(world: &Path, sig: &Signature, share: f64) -> Vec<Vec<f32>> {
    let joined = world.join("joined.csv");
    vane_models(&[
        "join",
        "--repo",
        &world.join("features.toml").display().to_string(),
        "--data",
        &world.join("applications.parquet").display().to_string(),
        "--out",
        &joined.display().to_string(),
    ]);
    let t = vane_tabular::read_table(&joined, None).unwrap();
    let Some(Column::Text(ts)) = t.column("event_timestamp") else {
        panic!("event_timestamp: {:?}", t.names())
    };
    let mut order: Vec<usize> = (0..t.rows).collect();
    order.sort_by(|a, b| ts[*a].cmp(&ts[*b]).then(a.cmp(b)));
    order.truncate((t.rows as f64 * share) as usize);
    // Fisher–Yates with a fixed LCG: the same order on every run.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for i in (1..order.len()).rev() {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        order.swap(i, (state >> 33) as usize % (i + 1));
    }
    // Per feature: numeric values, or the categorical codes (NaN = missing or unknown).
    let columns: Vec<Vec<f32>> = sig
        .inputs
        .iter()
        .map(|f| {
            let c = t
                .column(&f.name)
                .unwrap_or_else(|| panic!("no column {}", f.name));
            match (f.kind, c) {
                (FeatureKind::Numeric, Column::Numeric(v)) => v.iter().map(|x| *x as f32).collect(),
                (FeatureKind::Categorical, c) => {
                    let vocab = f.vocab.clone().unwrap_or_default();
                    c.to_text()
                        .iter()
                        .map(|s| {
                            s.as_deref()
                                .and_then(|s| vocab.iter().position(|x| x == s))
                                .map_or(f32::NAN, |i| i as f32)
                        })
                        .collect()
                }
                (k, _) => panic!("{}: {k:?} column of unexpected type", f.name),
            }
        })
        .collect();
    order
        .iter()
        .map(|&r| columns.iter().map(|c| c[r]).collect())
        .collect()
}

/// Sends `rows` in requests of 10 rows; every answer must be 200.
fn send(server: &Server, rows: &[Vec<f32>]) {
    for chunk in rows.chunks(10) {
        let data: Vec<Value> = chunk
            .iter()
            .flatten()
            .map(|x| if x.is_nan() { Value::Null } else { json!(x) })
            .collect();
        let body = json!({"inputs": [{"name": "input", "shape": [chunk.len(), chunk[0].len()], "datatype": "FP32", "data": data}]});
        let (status, _, text) = http(
            &server.addr,
            "POST",
            "/v2/models/credit-risk/infer",
            &serde_json::to_vec(&body).unwrap(),
        )
        .unwrap();
        assert_eq!(status, 200, "{text}");
    }
}

fn accepted(m: &Monitor) -> u64 {
    metric(
        &m.metrics(),
        r#"vane_monitor_rows_total{model="credit-risk",outcome="accepted",version="1"}"#,
    ) as u64
}

/// Sends rows until the monitor has its reference profile and the current count window is
/// exactly full, so the next rows start a fresh window. Returns the rows it used.
fn warm_up(server: &Server, m: &Monitor, rows: &[Vec<f32>]) -> usize {
    let mut used = 0;
    while accepted(m) == 0 {
        send(server, &rows[used..used + 10]);
        used += 10;
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let before = evaluations(m);
    // Rows of the first requests may still be on their way when `accepted` is read, so the
    // window is topped up until it closes rather than filled once.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while evaluations(m) <= before {
        let rest = (1000 - accepted(m) % 1000) as usize % 1000;
        if rest > 0 && used + rest <= rows.len() {
            send(server, &rows[used..used + rest]);
            used += rest;
        }
        let waited = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while evaluations(m) <= before && std::time::Instant::now() < waited {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no warm-up window evaluated: {}",
            diagnostics(server, m)
        );
    }
    used
}

/// What the server sent and the monitor did with it, for a failure message.
fn diagnostics(server: &Server, m: &Monitor) -> String {
    let (_, server_metrics) = crate::util::http_get(&server.addr, "/metrics");
    let monitor_metrics = m.metrics();
    let pick = |text: &str, prefixes: &[&str]| -> Vec<String> {
        text.lines()
            .filter(|l| prefixes.iter().any(|p| l.starts_with(p)))
            .map(str::to_string)
            .collect()
    };
    format!(
        "server {:?}; monitor {:?}",
        pick(
            &server_metrics,
            &["vane_samples_", "vane_monitor_connected"]
        ),
        pick(
            &monitor_metrics,
            &[
                "vane_monitor_rows_total",
                "vane_monitor_frames_total",
                "vane_monitor_evaluations",
                "vane_monitor_windows_total"
            ]
        )
    )
}

fn evaluations(m: &Monitor) -> f64 {
    metric(
        &m.metrics(),
        r#"vane_monitor_evaluations_total{model="credit-risk",version="1",window="count"}"#,
    )
}

/// Sends `rows` one count window (1 000 rows) at a time, waiting for each window's report so
/// none is coalesced; returns the drifted features of each window.
fn windows(server: &Server, m: &Monitor, rows: &[Vec<f32>]) -> Vec<(BTreeSet<String>, Value)> {
    let mut out = Vec::new();
    for w in rows.chunks(1000).filter(|w| w.len() == 1000) {
        let before = evaluations(m);
        send(server, w);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while evaluations(m) <= before {
            assert!(
                std::time::Instant::now() < deadline,
                "window not evaluated: {}",
                diagnostics(server, m)
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let drift = m.drift();
        let report = drift["windows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["model"] == MODEL && r["window"] == "count" && r["source"] == "live")
            .cloned()
            .expect("a count window report");
        assert_eq!(report["rows"], 1000);
        let drifted = report["features"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["drift"] == true)
            .map(|f| f["name"].as_str().unwrap().to_string())
            .collect();
        out.push((drifted, report));
    }
    out
}

#[test]
fn training_traffic_flags_nothing_and_injected_drift_flags_exactly_the_drifted_features() {
    let dir = tempfile::tempdir().unwrap();
    let (train_world, live, drifted, registry) = (
        dir.path().join("train"),
        dir.path().join("live"),
        dir.path().join("drifted"),
        dir.path().join("registry"),
    );
    datagen(&train_world, 42, &[]);
    datagen(&live, 7, &[]);
    datagen(
        &drifted,
        7,
        &[
            "--drift-shift",
            "annual_income=-0.3",
            "--drift-mix",
            "purpose=small_business:0.3",
        ],
    );
    vane_models(&[
        "train",
        "--repo",
        &train_world.join("features.toml").display().to_string(),
        "--data",
        &train_world
            .join("applications.parquet")
            .display()
            .to_string(),
        "--label",
        "default_12m",
        "--exclude",
        "application_id,applicant_id",
        "--model-type",
        "lr",
        "--registry",
        &registry.display().to_string(),
        "--model",
        MODEL,
        "--alias",
        "champion",
    ]);
    let sig: Signature = serde_json::from_slice(
        &std::fs::read(registry.join(MODEL).join("versions/1/signature.json")).unwrap(),
    )
    .unwrap();
    // The training split is the earliest 70 % of applications.
    let live_rows = traffic(&live, &sig, 0.7);
    let drifted_rows = traffic(&drifted, &sig, 0.7);
    assert!(live_rows.len() >= 4000 && drifted_rows.len() >= 2000);

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
        &[
            "--monitor",
            &monitor.ingest,
            "--sample-percent",
            "100",
            "--allow-missing",
            "true",
        ],
    );

    // Traffic from the training distribution: three windows, nothing flagged.
    let used = warm_up(&server, &monitor, &live_rows);
    assert!(live_rows.len() >= used + 3000);
    for (i, (drifted, report)) in windows(&server, &monitor, &live_rows[used..used + 3000])
        .iter()
        .enumerate()
    {
        assert!(
            drifted.is_empty(),
            "window {i} of undrifted traffic flagged {drifted:?}:\n{report:#}"
        );
        assert_eq!(report["dataset_drift"], false);
        assert!(
            report["prediction"].is_object(),
            "the score is monitored too"
        );
    }

    // Drifted traffic: within two windows both drifted features are flagged, and at most one
    // other feature is (a false positive).
    let results = windows(&server, &monitor, &drifted_rows[..2000]);
    let flagged: BTreeSet<String> = results
        .iter()
        .flat_map(|(d, _)| d.iter().cloned())
        .collect();
    for f in ["annual_income", "purpose"] {
        assert!(
            flagged.contains(f),
            "{f} not flagged; flagged: {flagged:?}\n{:#}",
            results[1].1
        );
    }
    let others: Vec<&String> = flagged
        .iter()
        .filter(|f| *f != "annual_income" && *f != "purpose")
        .collect();
    assert!(others.len() <= 1, "false positives: {others:?}");
    eprintln!("flagged in the drifted windows: {flagged:?}");

    // The verdict reaches /metrics.
    let text = monitor.metrics();
    for f in ["annual_income", "purpose"] {
        let series = format!(
            r#"vane_drift_detected{{feature="{f}",model="credit-risk",source="live",version="1",window="count"}}"#
        );
        assert!(
            results.last().unwrap().0.contains(f) == (metric(&text, &series) == 1.0),
            "{series} disagrees with /drift"
        );
    }
    assert!(text.contains(r#"vane_drift_psi{feature="annual_income""#));
    assert!(text.contains(r#"vane_drift_bin_rows{bin="small_business",feature="purpose""#));
    assert!(metric(&text, "vane_drift_window_rows{") >= 1000.0);
    // And /report renders it.
    let (status, page) = monitor.get("/report");
    assert_eq!(status, 200);
    assert!(page.contains("annual_income") && page.contains("<svg"));
}
