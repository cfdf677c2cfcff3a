//! Models exported by the ecosystem's own converters (skl2onnx, onnxmltools), published from
//! a bare `model.onnx` and served by the real binary. Their answers must equal
//! onnxruntime-python's, recorded with the models by `fixtures/converters/make_fixtures.py`.

use std::path::{Path, PathBuf};

use hyper::StatusCode;
use serde_json::{Value, json};
use vane_registry::{DirRegistry, PublishRequest};

use crate::util::{Server, block_on, ort_lib, send};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/converters")
}

fn expected() -> Value {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Publishes `fixtures/<name>.onnx` alone (no signature.json) and aliases it champion.
fn publish_bare(registry: &Path, name: &str) -> Result<u64, vane_registry::RegistryError> {
    let reg = DirRegistry::create(registry).unwrap();
    let req = PublishRequest::from_path(name, &fixtures().join(format!("{name}.onnx")))?;
    let v = reg.publish(&req)?;
    reg.set_alias(name, "champion", v).unwrap();
    Ok(v)
}

/// Checks one response output against the recorded one: same name, datatype and shape;
/// floats within 1e-5, everything else exactly.
fn check_output(got: &Value, want: &Value, what: &str) {
    assert_eq!(got["name"], want["name"], "{what}");
    assert_eq!(
        got["datatype"], want["datatype"],
        "{what}: {}",
        want["name"]
    );
    assert_eq!(got["shape"], want["shape"], "{what}: {}", want["name"]);
    let (g, w) = (
        got["data"].as_array().unwrap(),
        want["data"].as_array().unwrap(),
    );
    assert_eq!(g.len(), w.len(), "{what}: {}", want["name"]);
    for (i, (a, b)) in g.iter().zip(w).enumerate() {
        let close = match (a.as_f64(), b.as_f64(), want["datatype"].as_str()) {
            (Some(x), Some(y), Some("FP32" | "FP64")) => (x - y).abs() <= 1e-5,
            _ => a == b,
        };
        assert!(close, "{what}: {} element {i}: {a} vs {b}", want["name"]);
    }
}

/// Row `r` of a recorded tensor (`[N, …]`) as a one-row tensor.
fn row(t: &Value, r: usize) -> Value {
    let shape: Vec<usize> = serde_json::from_value(t["shape"].clone()).unwrap();
    let per: usize = shape[1..].iter().product();
    let data = &t["data"].as_array().unwrap()[r * per..(r + 1) * per];
    let mut one = shape.clone();
    one[0] = 1;
    let mut t = t.clone();
    t["shape"] = json!(one);
    t["data"] = json!(data);
    t
}

#[test]
fn converter_models_answer_as_onnxruntime_python_does() {
    let Some(lib) = ort_lib() else { return };
    let expected = expected();
    let models = expected["models"].as_object().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for name in models.keys() {
        publish_bare(dir.path(), name).unwrap();
    }
    let lib = lib.display().to_string();
    // One worker and a generous queue delay: concurrent requests queue up and merge.
    let server = Server::start(
        dir.path(),
        &[
            "--backend",
            "auto",
            "--ort-lib",
            &lib,
            "--workers",
            "1",
            "--max-queue-delay-us",
            "20000",
        ],
    );
    for (name, case) in models {
        // Metadata lists the graph as declared.
        let (status, _, meta) = server.get(&format!("/v2/models/{name}"));
        assert_eq!(status, StatusCode::OK, "{name}: {meta}");
        assert_eq!(meta["inputs"], case["graph_inputs"], "{name}");
        assert_eq!(meta["outputs"], case["graph_outputs"], "{name}");

        // One 8-row request.
        let path = format!("/v2/models/{name}/infer");
        let body = json!({"id": "eight", "inputs": case["inputs"]});
        let (status, _, r) = server.json("POST", &path, &body);
        assert_eq!(status, StatusCode::OK, "{name}: {r}");
        assert_eq!(r["id"], "eight");
        let want = case["outputs"].as_array().unwrap();
        let got = r["outputs"].as_array().unwrap();
        assert_eq!(got.len(), want.len(), "{name}: every output is returned");
        for (g, w) in got.iter().zip(want) {
            check_output(g, w, &format!("{name}, 8 rows"));
        }

        // 16 concurrent one-row requests (each row twice), batched by the server.
        let rows = case["inputs"][0]["shape"][0].as_u64().unwrap() as usize;
        let addr = server.addr;
        let answers = block_on(async {
            let mut tasks = Vec::new();
            for i in 0..16 {
                let r = i % rows;
                let inputs: Vec<Value> = case["inputs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| row(t, r))
                    .collect();
                let body = serde_json::to_vec(&json!({"inputs": inputs})).unwrap();
                let path = path.clone();
                tasks.push(tokio::spawn(async move {
                    (r, send(addr, "POST", &path, &[], body).await)
                }));
            }
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        });
        let mut largest_batch = 0;
        for (r, (status, headers, body)) in answers {
            assert_eq!(status, StatusCode::OK, "{name} row {r}: {body}");
            let batch: usize = headers["x-vane-batch-rows"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            largest_batch = largest_batch.max(batch);
            for (g, w) in body["outputs"].as_array().unwrap().iter().zip(want) {
                check_output(g, &row(w, r), &format!("{name}, row {r} alone"));
            }
        }
        assert!(
            largest_batch > 1,
            "{name}: 16 concurrent requests never shared a batch"
        );

        // Records: the column-per-input pipeline takes KServe v1 instances.
        if let Some(records) = case.get("records") {
            let (status, _, r) = server.json(
                "POST",
                &format!("/v1/models/{name}:predict"),
                &json!({"instances": records}),
            );
            assert_eq!(status, StatusCode::OK, "{name}: {r}");
            let predictions = r["predictions"].as_array().unwrap();
            assert_eq!(predictions.len(), rows);
            for (i, p) in predictions.iter().enumerate() {
                for w in want {
                    let w = row(w, i);
                    let out = &p[w["name"].as_str().unwrap()];
                    let values = out.as_array().cloned().unwrap_or_else(|| vec![out.clone()]);
                    check_output(
                        &json!({"name": w["name"], "datatype": w["datatype"], "shape": w["shape"], "data": values}),
                        &w,
                        &format!("{name}, record {i}"),
                    );
                }
            }
        }
    }
}

/// A classifier exported with the converters' default `ZipMap` (class → probability maps,
/// which tensors cannot carry) is served with that output as the `[N, classes]` tensor the map
/// was built from, under the same name; answers equal onnxruntime-python's maps, column by
/// column in class order.
#[test]
fn a_zipmap_classifier_answers_its_probabilities_as_a_tensor() {
    let Some(lib) = ort_lib() else { return };
    let dir = tempfile::tempdir().unwrap();
    publish_bare(dir.path(), "zipmap").unwrap();
    let lib = lib.display().to_string();
    let server = Server::start(dir.path(), &["--backend", "ort", "--ort-lib", &lib]);
    let case = &expected()["zipmap"];
    let (status, _, meta) = server.get("/v2/models/zipmap");
    assert_eq!(status, StatusCode::OK, "{meta}");
    assert_eq!(
        meta["outputs"][1],
        json!({"name": "output_probability", "datatype": "FP32", "shape": [-1, 2]}),
        "{meta}"
    );
    answers_as_recorded(&server, "zipmap", case, "zipmap");
}

/// Sends `case`'s inputs to `model` and checks every output against the recorded ones.
fn answers_as_recorded(server: &Server, model: &str, case: &Value, what: &str) {
    let (status, _, r) = server.json(
        "POST",
        &format!("/v2/models/{model}/infer"),
        &json!({"inputs": case["inputs"]}),
    );
    assert_eq!(status, StatusCode::OK, "{what}: {r}");
    let want = case["outputs"].as_array().unwrap();
    let got = r["outputs"].as_array().unwrap();
    assert_eq!(got.len(), want.len(), "{what}: {r}");
    for (g, w) in got.iter().zip(want) {
        check_output(g, w, what);
    }
}

#[test]
fn bad_requests_get_errors_that_name_the_culprit() {
    let Some(lib) = ort_lib() else { return };
    let dir = tempfile::tempdir().unwrap();
    publish_bare(dir.path(), "sklearn_pipeline").unwrap();
    let lib = lib.display().to_string();
    let server = Server::start(dir.path(), &["--backend", "ort", "--ort-lib", &lib]);
    let good = expected()["models"]["sklearn_pipeline"]["inputs"].clone();
    let path = "/v2/models/sklearn_pipeline/infer";
    let refused = |inputs: Value, needle: &str| {
        let (status, _, r) = server.json("POST", path, &json!({ "inputs": inputs }));
        assert_eq!(status, StatusCode::BAD_REQUEST, "{needle}: {r}");
        let msg = r["error"].as_str().unwrap_or_default();
        assert!(msg.contains(needle), "expected {needle:?} in {msg:?}");
    };
    let edit = |f: &dyn Fn(&mut Vec<Value>)| {
        let mut v = good.as_array().unwrap().clone();
        f(&mut v);
        Value::Array(v)
    };
    let first = good[0]["name"].as_str().unwrap().to_string();
    // A wrong datatype.
    refused(
        edit(&|v| v[0]["datatype"] = json!("INT32")),
        &format!("input \"{first}\" has datatype INT32"),
    );
    // A missing input.
    refused(
        edit(&|v| {
            v.remove(0);
        }),
        &format!("missing input \"{first}\""),
    );
    // A bad fixed dimension: the column is [N, 1].
    refused(
        edit(&|v| {
            let data = v[0]["data"].as_array().unwrap().clone();
            v[0]["shape"] = json!([data.len() / 2, 2]);
        }),
        "fixes it at 1",
    );
    // Inputs disagreeing on the batch dimension.
    refused(
        edit(&|v| {
            let data = v[0]["data"].as_array().unwrap()[..2].to_vec();
            v[0]["shape"] = json!([2, 1]);
            v[0]["data"] = json!(data);
        }),
        "disagree on the batch dimension",
    );
    // An unknown input is named, and so is a record without a column.
    refused(
        edit(&|v| v[0]["name"] = json!("agee")),
        "unknown input \"agee\"",
    );
    let record = expected()["models"]["sklearn_pipeline"]["records"][0].clone();
    let mut partial = record.as_object().unwrap().clone();
    partial.remove(&first);
    let (status, _, r) = server.json(
        "POST",
        "/v1/models/sklearn_pipeline:predict",
        &json!({"instances": [record, partial]}),
    );
    assert_eq!(status, StatusCode::BAD_REQUEST, "{r}");
    let msg = r["error"].as_str().unwrap();
    assert!(msg.contains("instance 1") && msg.contains(&first), "{msg}");

    // tract cannot run string operators: it refuses at load, naming what it lacks.
    let reg = dir.path().display().to_string();
    let out = std::process::Command::new(crate::util::BIN)
        .args([
            "--registry",
            &reg,
            "--addr",
            "127.0.0.1:0",
            "--backend",
            "tract",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("tract"), "{stderr}");
}

/// Little-endian bytes of a recorded tensor's data, as the binary extension carries it.
fn binary_of(t: &Value) -> Vec<u8> {
    let data = t["data"].as_array().unwrap();
    let mut out = Vec::new();
    for v in data {
        match t["datatype"].as_str().unwrap() {
            "FP32" => out.extend((v.as_f64().unwrap() as f32).to_le_bytes()),
            "FP64" => out.extend(v.as_f64().unwrap().to_le_bytes()),
            "INT64" => out.extend(v.as_i64().unwrap().to_le_bytes()),
            "BYTES" => {
                let s = v.as_str().unwrap();
                out.extend((s.len() as u32).to_le_bytes());
                out.extend(s.as_bytes());
            }
            other => panic!("no binary form for {other} in this test"),
        }
    }
    out
}

#[test]
fn tensor_models_speak_the_binary_extension_and_select_outputs() {
    let Some(lib) = ort_lib() else { return };
    let dir = tempfile::tempdir().unwrap();
    publish_bare(dir.path(), "sklearn_pipeline").unwrap();
    let lib = lib.display().to_string();
    let server = Server::start(dir.path(), &["--backend", "ort", "--ort-lib", &lib]);
    let case = &expected()["models"]["sklearn_pipeline"];
    let want = case["outputs"].as_array().unwrap();
    // Every input in binary form (strings length-prefixed), every output asked back binary.
    let mut tail = Vec::new();
    let inputs: Vec<Value> = case["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let bytes = binary_of(t);
            let size = bytes.len();
            tail.extend(bytes);
            json!({"name": t["name"], "datatype": t["datatype"], "shape": t["shape"],
                   "parameters": {"binary_data_size": size}})
        })
        .collect();
    let header = serde_json::to_vec(&json!({
        "inputs": inputs,
        "parameters": {"binary_data_output": true},
    }))
    .unwrap();
    let len = header.len().to_string();
    let mut body = header;
    body.extend(&tail);
    let (status, headers, reply) = server
        .raw(
            "POST",
            "/v2/models/sklearn_pipeline/infer",
            &[
                ("content-type", "application/octet-stream"),
                ("inference-header-content-length", &len),
            ],
            &body,
        )
        .unwrap();
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reply)
    );
    let json_len: usize = headers
        .iter()
        .find(|(k, _)| k == "inference-header-content-length")
        .map(|(_, v)| v.parse().unwrap())
        .expect("inference-header-content-length");
    let head: Value = serde_json::from_slice(&reply[..json_len]).unwrap();
    let mut rest = &reply[json_len..];
    for (o, w) in head["outputs"].as_array().unwrap().iter().zip(want) {
        let size = o["parameters"]["binary_data_size"].as_u64().unwrap() as usize;
        assert_eq!(o["shape"], w["shape"]);
        assert_eq!(&rest[..size], binary_of(w).as_slice(), "{}", w["name"]);
        rest = &rest[size..];
    }
    assert!(rest.is_empty());

    // Asking for one output returns only that one, in JSON.
    let body = json!({"inputs": case["inputs"], "outputs": [{"name": "probabilities"}]});
    let (status, _, r) = server.json("POST", "/v2/models/sklearn_pipeline/infer", &body);
    assert_eq!(status, StatusCode::OK, "{r}");
    let outputs = r["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 1);
    check_output(&outputs[0], &want[1], "selected output");
    // A column sent as [N] (MLServer's `pd` columns) stands for the declared [N, 1].
    let mut inputs = case["inputs"].clone();
    for t in inputs.as_array_mut().unwrap() {
        t["shape"] = json!([t["shape"][0]]);
    }
    let body = json!({"inputs": inputs, "parameters": {"content_type": "pd"}});
    let (status, _, r) = server.json("POST", "/v2/models/sklearn_pipeline/infer", &body);
    assert_eq!(status, StatusCode::OK, "{r}");
    check_output(&r["outputs"][0], &want[0], "pd columns");
}

/// tract serves the converters' graphs it can run with ONNX Runtime's answers: skl2onnx's MLP
/// (whose label tract computes as a symbolic dimension; served as INT64).
#[test]
fn an_sklearn_mlp_answers_alike_on_tract() {
    let dir = tempfile::tempdir().unwrap();
    publish_bare(dir.path(), "sklearn_mlp").unwrap();
    let server = Server::start(dir.path(), &["--backend", "tract"]);
    let case = &expected()["models"]["sklearn_mlp"];
    answers_as_recorded(&server, "sklearn_mlp", case, "sklearn_mlp on tract");
}
