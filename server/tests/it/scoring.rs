//! Every example model, through both request shapes and the records route, on both backends;
//! results equal an in-process run of the same backend.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use hyper::StatusCode;
use serde_json::{Value, json};
use vane_models::credit;
use vane_server::backend::onnxruntime::OrtRuntime;
use vane_server::backend::{self, BackendKind, LoadOptions};

use crate::util::{Server, assert_close, floats, ort_lib};

const MODELS: [&str; 3] = ["credit-risk", "credit-risk-mlp", "credit-risk-gbdt"];
const ROWS: usize = 16;

pub fn example_registry() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    credit::write_example_registry(dir.path()).unwrap();
    dir
}

/// Tensor-shaped OIP request (flat data).
pub fn tensor_request(rows: &[f32], n: usize) -> Value {
    json!({
        "id": "req-1",
        "inputs": [{ "name": "input", "shape": [n, credit::N_FEATURES], "datatype": "FP32", "data": rows }]
    })
}

/// Per-feature (`pd`) OIP request: one column per feature.
pub fn feature_request(records: &[serde_json::Map<String, Value>]) -> Value {
    let sig = credit::signature();
    let inputs: Vec<Value> = sig
        .inputs
        .iter()
        .map(|f| {
            let col: Vec<Value> = records.iter().map(|r| r[&f.name].clone()).collect();
            let datatype = if f.dtype == "BYTES" { "BYTES" } else { "FP64" };
            json!({ "name": f.name, "shape": [records.len()], "datatype": datatype, "data": col })
        })
        .collect();
    json!({ "parameters": { "content_type": "pd" }, "inputs": inputs })
}

fn probabilities(resp: &Value) -> Vec<f32> {
    let out = &resp["outputs"][0];
    assert_eq!(out["name"], "probability", "{resp}");
    assert_eq!(out["datatype"], "FP32", "{resp}");
    floats(&out["data"])
}

fn in_process(
    kind: BackendKind,
    ort: Option<&Arc<OrtRuntime>>,
    registry: &std::path::Path,
    model: &str,
    rows: &[f32],
    n: usize,
) -> Vec<f32> {
    let reg = vane_registry::DirRegistry::open(registry).unwrap();
    let mv = reg.fetch_ref(model, &"champion".parse().unwrap()).unwrap();
    let opts = LoadOptions {
        width: credit::N_FEATURES,
        intra_op_threads: 1,
        tensors: None,
    };
    let engine = backend::load(kind, ort, &mv.model_bytes, &opts).unwrap();
    let mut s = engine.session().unwrap();
    s.predict(rows, n).unwrap()[0]
        .data
        .as_f32()
        .unwrap()
        .to_vec()
}

#[test]
fn every_example_model_scores_through_both_shapes_on_both_backends() {
    let reg = example_registry();
    let rows = credit::sample_rows(ROWS, 42);
    let records = credit::sample_records(ROWS, 42);
    let mut backends: Vec<(BackendKind, Option<PathBuf>)> = vec![(BackendKind::Tract, None)];
    let ort = ort_lib();
    if let Some(lib) = &ort {
        backends.push((BackendKind::Ort, Some(lib.clone())));
    }
    let ort_rt = ort
        .as_ref()
        .map(|lib| Arc::new(OrtRuntime::init(lib).unwrap()));
    let mut by_backend: BTreeMap<String, BTreeMap<&str, Vec<f32>>> = BTreeMap::new();
    for (kind, lib) in &backends {
        let kind_s = kind.to_string();
        let mut args = vec!["--backend", kind_s.as_str()];
        let lib_s = lib.as_ref().map(|p| p.display().to_string());
        if let Some(l) = &lib_s {
            args.extend(["--ort-lib", l.as_str()]);
        }
        let server = Server::start(reg.path(), &args);
        for model in MODELS {
            let (status, _, meta) = server.get(&format!("/v2/models/{model}"));
            assert_eq!(status, StatusCode::OK, "{meta}");
            assert_eq!(meta["parameters"]["backend"], kind_s.as_str(), "{meta}");
            assert_eq!(meta["inputs"][0]["shape"], json!([-1, credit::N_FEATURES]));

            let (status, headers, tensor) = server.json(
                "POST",
                &format!("/v2/models/{model}/infer"),
                &tensor_request(&rows, ROWS),
            );
            assert_eq!(status, StatusCode::OK, "{model} {kind}: {tensor}");
            assert_eq!(tensor["id"], "req-1");
            assert_eq!(tensor["model_name"], model);
            assert_eq!(tensor["model_version"], "1");
            assert_eq!(headers["x-vane-model-version"], "1");
            for h in ["x-vane-queue-us", "x-vane-compute-us", "x-vane-total-us"] {
                assert!(headers.contains_key(h), "missing {h}");
            }
            assert_eq!(tensor["outputs"][0]["shape"], json!([ROWS, 1]));
            let a = probabilities(&tensor);
            assert!(a.iter().all(|p| (0.0..=1.0).contains(p)), "{a:?}");

            // Same rows, nested data and an explicit version in the URL.
            let nested: Vec<Vec<f32>> = rows
                .chunks(credit::N_FEATURES)
                .map(<[f32]>::to_vec)
                .collect();
            let body = json!({ "inputs": [{ "name": "input", "shape": [ROWS, credit::N_FEATURES], "datatype": "FP32", "data": nested }] });
            let (status, _, r) = server.json(
                "POST",
                &format!("/v2/models/{model}/versions/1/infer"),
                &body,
            );
            assert_eq!(status, StatusCode::OK, "{r}");
            assert_close(&probabilities(&r), &a, 1e-6, "nested tensor");

            let (status, _, pd) = server.json(
                "POST",
                &format!("/v2/models/{model}/infer"),
                &feature_request(&records),
            );
            assert_eq!(status, StatusCode::OK, "{model} {kind}: {pd}");
            assert_close(
                &probabilities(&pd),
                &a,
                1e-6,
                &format!("{model} {kind}: per-feature vs tensor"),
            );

            let (status, _, v1) = server.json(
                "POST",
                &format!("/v1/models/{model}:predict"),
                &json!({ "instances": records }),
            );
            assert_eq!(status, StatusCode::OK, "{v1}");
            assert_close(
                &floats(&v1["predictions"]),
                &a,
                1e-6,
                &format!("{model} {kind}: v1 records vs tensor"),
            );

            // One row alone gives the same score as in a batch.
            let (status, _, one) = server.json(
                "POST",
                &format!("/v2/models/{model}/infer"),
                &tensor_request(&rows[..credit::N_FEATURES], 1),
            );
            assert_eq!(status, StatusCode::OK, "{one}");
            assert_close(&probabilities(&one), &a[..1], 1e-6, "single row");

            let expected = in_process(*kind, ort_rt.as_ref(), reg.path(), model, &rows, ROWS);
            assert_close(
                &a,
                &expected,
                1e-6,
                &format!("{model} {kind}: server vs in-process"),
            );
            by_backend
                .entry(kind_s.clone())
                .or_default()
                .insert(model, a);
        }
        let (status, stderr) = server.terminate();
        assert!(status.success(), "server exited with {status}: {stderr}");
    }
    if let (Some(t), Some(o)) = (by_backend.get("tract"), by_backend.get("ort")) {
        for model in MODELS {
            assert_close(
                &t[model],
                &o[model],
                1e-5,
                &format!("{model}: tract vs ort"),
            );
        }
    }
}

#[test]
fn stats_and_metrics_reflect_traffic() {
    let reg = example_registry();
    let server = Server::start(reg.path(), &["--backend", "tract"]);
    let rows = credit::sample_rows(4, 7);
    for _ in 0..20 {
        let (status, _, _) = server.json(
            "POST",
            "/v2/models/credit-risk/infer",
            &tensor_request(&rows, 4),
        );
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _, stats) = server.get("/v2/models/credit-risk/stats");
    assert_eq!(status, StatusCode::OK, "{stats}");
    // Triton's statistics extension, with Vane's percentiles under `vane`.
    let all = stats["model_stats"].as_array().unwrap();
    assert_eq!(all.len(), 1, "{stats}");
    let t = &all[0];
    assert_eq!(
        (&t["name"], &t["version"]),
        (&json!("credit-risk"), &json!("1"))
    );
    assert_eq!(t["inference_count"], 80, "4 rows × 20 requests: {stats}");
    let executions = t["execution_count"].as_u64().unwrap();
    assert!((1..=20).contains(&executions), "{stats}");
    let inf = &t["inference_stats"];
    assert_eq!(inf["success"]["count"], 20, "{stats}");
    assert!(inf["success"]["ns"].as_u64().unwrap() > 0, "{stats}");
    assert_eq!(inf["queue"]["count"], 20, "{stats}");
    assert_eq!(inf["compute_infer"]["count"], 20, "{stats}");
    assert_eq!(inf["fail"]["count"], 0, "{stats}");
    let batches: u64 = t["batch_stats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["compute_infer"]["count"].as_u64().unwrap())
        .sum();
    assert_eq!(batches, executions, "{stats}");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let last = t["last_inference"].as_u64().unwrap();
    assert!(last <= now_ms && last + 60_000 > now_ms, "{stats}");
    let s = &t["vane"]["stats"];
    assert_eq!(s["total_us"]["count"], 20, "{stats}");
    assert_eq!(s["queue_us"]["count"], 20, "{stats}");
    for k in ["p50", "p90", "p99", "p999"] {
        assert!(s["total_us"][k].as_u64().unwrap() > 0, "{k}: {stats}");
    }
    // A bad request counts as a failure; every model's statistics are at /v2/models/stats.
    let (status, _, _) = server.json("POST", "/v2/models/credit-risk/infer", &json!({}));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, all) = server.get("/v2/models/stats");
    assert_eq!(status, StatusCode::OK, "{all}");
    let lr = all["model_stats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "credit-risk")
        .unwrap();
    assert_eq!(lr["inference_stats"]["fail"]["count"], 1, "{all}");
    assert_eq!(
        all["model_stats"].as_array().unwrap().len(),
        3,
        "every loaded model: {all}"
    );
    let (status, _, text) = server.get("/metrics");
    assert_eq!(status, StatusCode::OK);
    let text = text.as_str().unwrap().to_string();
    for needle in [
        r#"vane_requests_total{model="credit-risk",outcome="success",version="1"} 20"#,
        r#"vane_request_duration_seconds_bucket{model="credit-risk",version="1",le="0.00001"}"#,
        r#"vane_queue_duration_seconds_count{model="credit-risk",version="1"} 20"#,
        r#"vane_compute_duration_seconds_count{model="credit-risk",version="1"}"#,
        r#"vane_batch_rows_bucket{model="credit-risk",version="1",le="4"}"#,
        r#"vane_queue_depth{model="credit-risk",version="1"} 0"#,
        r#"vane_model_info{backend="tract",model="credit-risk",version="1"} 1"#,
    ] {
        assert!(text.contains(needle), "missing {needle}");
    }
    // Server and model metadata, readiness.
    let (status, _, meta) = server.get("/v2");
    assert_eq!(
        (status, meta["name"].as_str()),
        (StatusCode::OK, Some("vane"))
    );
    let (status, _, r) = server.get("/v2/models/credit-risk-gbdt/versions/1/ready");
    assert_eq!((status, r["ready"].as_bool()), (StatusCode::OK, Some(true)));
    let (status, _, live) = server.get("/v2/health/live");
    assert_eq!(
        (status, live["live"].as_bool()),
        (StatusCode::OK, Some(true))
    );
}

#[test]
fn compressed_requests_score_as_plain_ones() {
    use std::io::Write;
    let reg = example_registry();
    let server = Server::start(reg.path(), &["--backend", "tract"]);
    let body = serde_json::to_vec(&tensor_request(&credit::sample_rows(3, 5), 3)).unwrap();
    let (status, _, plain) = server.json(
        "POST",
        "/v2/models/credit-risk/infer",
        &serde_json::from_slice(&body).unwrap(),
    );
    assert_eq!(status, StatusCode::OK, "{plain}");
    let gzip = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&body).unwrap();
        e.finish().unwrap()
    };
    let zlib = {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(&body).unwrap();
        e.finish().unwrap()
    };
    for (coding, bytes) in [("gzip", gzip), ("deflate", zlib)] {
        let (status, _, got) = crate::util::block_on(crate::util::send(
            server.addr,
            "POST",
            "/v2/models/credit-risk/infer",
            &[("content-encoding", coding)],
            bytes,
        ));
        assert_eq!(status, StatusCode::OK, "{coding}: {got}");
        assert_eq!(got["outputs"], plain["outputs"], "{coding}");
    }
}
