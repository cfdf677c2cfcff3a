//! Tensor-signature models on both backends: a two-input graph (float and int64) published
//! from a bare `model.onnx`, served by tract and by ONNX Runtime with the same answers, batched
//! along its batch dimension; and a graph without one, run a request at a time.

use hyper::StatusCode;
use serde_json::{Value, json};
use vane_registry::{DirRegistry, PublishRequest};

use crate::foreign::{mixed_inputs, mixed_reference};
use crate::util::{Server, assert_close, block_on, floats, ort_lib, send};

fn publish(dir: &std::path::Path, name: &str, bytes: Vec<u8>) {
    let reg = DirRegistry::create(dir).unwrap();
    let v = reg
        .publish(&PublishRequest {
            model: name.into(),
            files: vec![("model.onnx".into(), bytes)],
            ..Default::default()
        })
        .unwrap();
    reg.set_alias(name, "champion", v).unwrap();
}

fn request(rows: &[([f32; 2], i64)]) -> Value {
    let x: Vec<f32> = rows.iter().flat_map(|r| r.0).collect();
    let k: Vec<i64> = rows.iter().map(|r| r.1).collect();
    json!({"inputs": [
        {"name": "k", "datatype": "INT64", "shape": [rows.len(), 1], "data": k},
        {"name": "x", "datatype": "FP32", "shape": [rows.len(), 2], "data": x},
    ]})
}

fn rows() -> Vec<([f32; 2], i64)> {
    (0..12)
        .map(|i| {
            (
                [i as f32 * 0.37 - 2.0, 1.5 - i as f32 * 0.21],
                (i * 7 % 11) as i64 - 3,
            )
        })
        .collect()
}

/// Scores and doubled keys of `rows` as served, checked against the reference.
fn check(server: &Server, name: &str, rows: &[([f32; 2], i64)]) {
    let (status, _, r) = server.json("POST", &format!("/v2/models/{name}/infer"), &request(rows));
    assert_eq!(status, StatusCode::OK, "{r}");
    let out = r["outputs"].as_array().unwrap();
    assert_eq!(out[0]["name"], "score");
    assert_eq!(out[0]["shape"], json!([rows.len(), 1]));
    let want: Vec<f32> = rows.iter().map(|(x, k)| mixed_reference(*x, *k)).collect();
    assert_close(&floats(&out[0]["data"]), &want, 1e-6, name);
    assert_eq!(out[1]["datatype"], "INT64");
    let k2: Vec<i64> = rows.iter().map(|r| 2 * r.1).collect();
    assert_eq!(out[1]["data"], json!(k2));
}

#[test]
fn a_typed_multi_input_graph_scores_alike_on_both_backends() {
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), "mixed", mixed_inputs(true));
    let mut backends = vec![vec!["--backend", "tract"]];
    let lib = ort_lib().map(|l| l.display().to_string());
    if let Some(lib) = &lib {
        backends.push(vec!["--backend", "ort", "--ort-lib", lib]);
    }
    for args in backends {
        let mut args = args.clone();
        args.extend(["--workers", "1", "--max-queue-delay-us", "20000"]);
        let server = Server::start(dir.path(), &args);
        check(&server, "mixed", &rows());
        // Concurrent one-row requests merge along the batch dimension and split back.
        let addr = server.addr;
        let answers = block_on(async {
            let mut tasks = Vec::new();
            for (i, r) in rows().into_iter().enumerate() {
                let body = serde_json::to_vec(&request(&[r])).unwrap();
                tasks.push(tokio::spawn(async move {
                    (
                        i,
                        send(addr, "POST", "/v2/models/mixed/infer", &[], body).await,
                    )
                }));
            }
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        });
        let mut largest = 0;
        for (i, (status, headers, body)) in answers {
            assert_eq!(status, StatusCode::OK, "{body}");
            let (x, k) = rows()[i];
            assert_close(
                &floats(&body["outputs"][0]["data"]),
                &[mixed_reference(x, k)],
                1e-6,
                &format!("{args:?} row {i}"),
            );
            assert_eq!(body["outputs"][1]["data"], json!([2 * k]));
            let b: usize = headers["x-vane-batch-rows"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            largest = largest.max(b);
        }
        assert!(largest > 1, "{args:?}: no batch formed");
    }
}

#[test]
fn a_graph_without_a_batch_dimension_runs_one_request_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), "single", mixed_inputs(false));
    let server = Server::start(dir.path(), &["--backend", "tract"]);
    let (_, _, meta) = server.get("/v2/models/single");
    assert_eq!(meta["inputs"][0]["shape"], json!([1, 2]), "{meta}");
    assert_eq!(meta["inputs"][1]["shape"], json!([1, 1]), "{meta}");
    let r = rows();
    check(&server, "single", &r[..1]);
    // Two rows do not fit the fixed dimension; the error says so.
    let (status, _, body) = server.json("POST", "/v2/models/single/infer", &request(&r[..2]));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("fixes it at 1"),
        "{body}"
    );
    // Concurrent requests are each answered alone.
    let addr = server.addr;
    let answers = block_on(async {
        let mut tasks = Vec::new();
        for row in r.iter().take(6) {
            let body = serde_json::to_vec(&request(&[*row])).unwrap();
            tasks.push(tokio::spawn(send(
                addr,
                "POST",
                "/v2/models/single/infer",
                &[],
                body,
            )));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    for (status, headers, body) in answers {
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(headers["x-vane-batch-rows"], "1");
    }
}
