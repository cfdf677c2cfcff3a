//! Startup choices and failures, overload, deadlines and graceful shutdown.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use hyper::StatusCode;
use serde_json::json;
use vane_models::credit;
use vane_registry::TensorSpec;

use crate::foreign;
use crate::scoring::{example_registry, tensor_request};
use crate::util::{BIN, Server, assert_close, floats, ort_lib, send};

fn run_to_exit(args: &[&str]) -> (std::process::ExitStatus, String) {
    let out = Command::new(BIN)
        .args(args)
        .args(["--addr", "127.0.0.1:0"])
        .env("VANE_LOG", "info")
        .output()
        .expect("run vane-server");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn ort_without_a_library_is_a_startup_error_that_says_how_to_get_it() {
    let reg = example_registry();
    let reg_s = reg.path().display().to_string();
    let (status, stderr) = run_to_exit(&[
        "--registry",
        &reg_s,
        "--backend",
        "ort",
        "--ort-lib",
        "/nonexistent/libonnxruntime.so",
    ]);
    assert!(!status.success());
    assert!(
        stderr.contains("setup-ort.sh") && stderr.contains("/nonexistent/libonnxruntime.so"),
        "{stderr}"
    );
}

#[test]
fn auto_falls_back_to_tract_with_one_log_line() {
    let reg = example_registry();
    let server = Server::start(
        reg.path(),
        &[
            "--backend",
            "auto",
            "--ort-lib",
            "/nonexistent/libonnxruntime.so",
        ],
    );
    let (_, _, meta) = server.get("/v2/models/credit-risk");
    assert_eq!(meta["parameters"]["backend"], "tract");
    let (status, stderr) = server.terminate();
    assert!(status.success());
    assert_eq!(
        stderr.matches("falling back to tract").count(),
        1,
        "{stderr}"
    );
}

#[test]
fn foreign_model_with_ml_operators_is_served_by_ort_under_auto() {
    let dir = tempfile::tempdir().unwrap();
    let sig = foreign::three_feature_signature(vec![
        TensorSpec {
            name: "label".into(),
            datatype: "INT64".into(),
            shape: vec![-1],
        },
        TensorSpec {
            name: "probabilities".into(),
            datatype: "FP32".into(),
            shape: vec![-1, 2],
        },
    ]);
    foreign::publish(
        dir.path(),
        "sk-pipeline",
        foreign::scaler_linear_classifier(),
        &sig,
    );

    // tract alone cannot: the error names the operator.
    let reg_s = dir.path().display().to_string();
    let (status, stderr) = run_to_exit(&["--registry", &reg_s, "--backend", "tract"]);
    assert!(!status.success());
    assert!(stderr.contains("ai.onnx.ml.Scaler"), "{stderr}");

    let Some(lib) = ort_lib() else { return };
    let lib_s = lib.display().to_string();
    let server = Server::start(dir.path(), &["--backend", "auto", "--ort-lib", &lib_s]);
    let rows: Vec<f32> = vec![0.3, 1.0, -2.0, 4.0, -0.5, 1.5];
    let body = json!({"inputs": [{"name": "float_input", "shape": [2, 3], "datatype": "FP32", "data": rows}]});
    let (status, _, r) = server.json("POST", "/v2/models/sk-pipeline/infer", &body);
    assert_eq!(status, StatusCode::OK, "{r}");
    let outputs = r["outputs"].as_array().unwrap();
    assert_eq!(outputs[0]["name"], "label");
    assert_eq!(outputs[0]["datatype"], "INT64");
    assert_eq!(outputs[1]["shape"], json!([2, 2]));
    let p = floats(&outputs[1]["data"]);
    let expected: Vec<f32> = rows
        .chunks(3)
        .map(foreign::scaler_linear_reference)
        .collect();
    assert_close(&[p[1], p[3]], &expected, 1e-5, "class-1 probabilities");
    let labels: Vec<i64> = outputs[0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(
        labels,
        expected
            .iter()
            .map(|p| i64::from(*p > 0.5))
            .collect::<Vec<_>>()
    );
    // Asking for one output returns only that one; per-feature requests work too.
    let body = json!({
        "inputs": [
            {"name": "a", "shape": [1], "datatype": "FP32", "data": [0.3]},
            {"name": "b", "shape": [1], "datatype": "FP32", "data": [1.0]},
            {"name": "c", "shape": [1], "datatype": "FP32", "data": [-2.0]}
        ],
        "outputs": [{"name": "probabilities"}]
    });
    let (status, _, r) = server.json("POST", "/v2/models/sk-pipeline/infer", &body);
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["outputs"].as_array().unwrap().len(), 1);
    assert_close(
        &floats(&r["outputs"][0]["data"])[1..],
        &expected[..1],
        1e-5,
        "per-feature",
    );
}

#[test]
fn a_model_no_backend_can_load_names_the_operator() {
    let dir = tempfile::tempdir().unwrap();
    let sig = foreign::three_feature_signature(vec![TensorSpec {
        name: "probability".into(),
        datatype: "FP32".into(),
        shape: vec![-1, 1],
    }]);
    foreign::publish(dir.path(), "mystery", foreign::unknown_operator(), &sig);
    let reg_s = dir.path().display().to_string();
    let mut args = vec![
        "--registry".to_string(),
        reg_s,
        "--backend".into(),
        "auto".into(),
    ];
    if let Some(lib) = ort_lib() {
        args.extend(["--ort-lib".into(), lib.display().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (status, stderr) = run_to_exit(&args);
    assert!(!status.success());
    assert!(
        stderr.contains("FrobnicateTransform") && stderr.contains("mystery"),
        "{stderr}"
    );
}

#[test]
fn corrupted_model_file_is_refused_naming_the_file() {
    let reg = example_registry();
    std::fs::write(
        reg.path().join("credit-risk/versions/1/model.onnx"),
        b"not an onnx model",
    )
    .unwrap();
    let reg_s = reg.path().display().to_string();
    let (status, stderr) = run_to_exit(&["--registry", &reg_s, "--backend", "tract"]);
    assert!(!status.success());
    assert!(
        stderr.contains("model.onnx") && stderr.contains("mismatch"),
        "{stderr}"
    );
}

/// A registry shared with a model this server cannot serve: strict startup names it;
/// `--serve-models` serves the rest, refuses to load the others, and names a model it lacks.
#[test]
fn serve_models_limits_the_server_to_the_named_models() {
    let reg = example_registry();
    std::fs::write(
        reg.path().join("credit-risk-mlp/versions/1/model.onnx"),
        b"a pickle, not an onnx model",
    )
    .unwrap();
    let reg_s = reg.path().display().to_string();
    let (status, stderr) = run_to_exit(&["--registry", &reg_s, "--backend", "tract"]);
    assert!(!status.success());
    assert!(stderr.contains("credit-risk-mlp"), "{stderr}");
    let (status, stderr) = run_to_exit(&[
        "--registry",
        &reg_s,
        "--backend",
        "tract",
        "--serve-models",
        "credit-risk,nope",
    ]);
    assert!(!status.success());
    assert!(
        stderr.contains("\"nope\"") && stderr.contains("--serve-models"),
        "{stderr}"
    );

    let server = Server::start(
        reg.path(),
        &[
            "--backend",
            "tract",
            "--serve-models",
            "credit-risk, credit-risk-gbdt",
        ],
    );
    let (status, index) = server.sync();
    assert_eq!(status, StatusCode::OK, "{index}");
    let names: Vec<&str> = index
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["credit-risk", "credit-risk-gbdt"], "{index}");
    let body = tensor_request(&credit::sample_rows(1, 3), 1);
    let (status, _, r) = server.json("POST", "/v2/models/credit-risk/infer", &body);
    assert_eq!(status, StatusCode::OK, "{r}");
    let (status, _, r) = server.json("POST", "/v2/models/credit-risk-mlp/infer", &body);
    assert_eq!(status, StatusCode::NOT_FOUND, "{r}");
    let auth = format!("Bearer {}", server.admin_token);
    let (status, _, r) = crate::util::block_on(send(
        server.addr,
        "POST",
        "/v2/repository/models/credit-risk-mlp/load",
        &[("authorization", auth.as_str())],
        vec![],
    ));
    assert!(!status.is_success(), "{r}");
    assert!(r.to_string().contains("--serve-models"), "{r}");
}

#[test]
fn full_queue_answers_429_with_retry_after() {
    let reg = example_registry();
    let server = Server::start(
        reg.path(),
        &[
            "--backend",
            "tract",
            "--workers",
            "1",
            "--queue-capacity",
            "1",
            "--max-batch-rows",
            "4096",
            "--max-request-rows",
            "4096",
        ],
    );
    let big = tensor_request(&credit::sample_rows(4096, 1), 4096);
    let small = tensor_request(&credit::sample_rows(1, 1), 1);
    let addr = server.addr;
    let big_body = serde_json::to_vec(&big).unwrap();
    let small_body = serde_json::to_vec(&small).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut saw_429 = false;
    for _ in 0..20 {
        let statuses = rt.block_on(async {
            let mut tasks = Vec::new();
            for i in 0..24 {
                let body = if i % 3 == 0 {
                    big_body.clone()
                } else {
                    small_body.clone()
                };
                tasks.push(tokio::spawn(send(
                    addr,
                    "POST",
                    "/v2/models/credit-risk-mlp/infer",
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
        for (status, headers, body) in statuses {
            match status {
                StatusCode::OK => {}
                StatusCode::TOO_MANY_REQUESTS => {
                    saw_429 = true;
                    assert_eq!(headers["retry-after"], "1");
                    assert!(
                        body["error"].as_str().unwrap().contains("credit-risk-mlp"),
                        "{body}"
                    );
                }
                other => panic!("unexpected {other}: {body}"),
            }
        }
        if saw_429 {
            break;
        }
    }
    assert!(
        saw_429,
        "a queue of capacity 1 under 24 concurrent requests never answered 429"
    );
    // Still healthy afterwards.
    let (status, _, _) = server.json("POST", "/v2/models/credit-risk-mlp/infer", &small);
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn expired_deadline_answers_504() {
    let reg = example_registry();
    let server = Server::start(reg.path(), &["--backend", "tract"]);
    let mut req = tensor_request(&credit::sample_rows(1, 1), 1);
    req["parameters"] = json!({"timeout": 1});
    let (status, _, body) = server.json("POST", "/v2/models/credit-risk/infer", &req);
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("deadline"),
        "{body}"
    );
    let (_, _, metrics) = server.get("/metrics");
    assert!(
        metrics.as_str().unwrap().contains(
            r#"vane_requests_total{model="credit-risk",outcome="timeout",version="1"} 1"#
        )
    );
}

#[test]
fn sigterm_finishes_in_flight_requests_then_exits() {
    let reg = example_registry();
    let server = Server::start(reg.path(), &["--backend", "tract"]);
    let body = serde_json::to_vec(&tensor_request(&credit::sample_rows(2, 5), 2)).unwrap();
    // Send the head and half the body, so the request is in flight when SIGTERM lands.
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST /v2/models/credit-risk/infer HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(&body[..body.len() / 2]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    Command::new("kill")
        .arg("-TERM")
        .arg(server.pid().to_string())
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // New connections are refused once the listener is closed.
    assert!(
        TcpStream::connect(server.addr).is_err(),
        "listener still accepting after SIGTERM"
    );
    s.write_all(&body[body.len() / 2..]).unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let (status, stderr) = server.terminate();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("shutting down"), "{stderr}");
}

#[test]
fn requests_whose_client_left_are_dropped_before_execution() {
    let reg = example_registry();
    let server = Server::start(
        reg.path(),
        &[
            "--backend",
            "tract",
            "--workers",
            "1",
            "--max-batch-rows",
            "8192",
            "--max-request-rows",
            "8192",
            "--max-body-bytes",
            "33554432",
        ],
    );
    // Keep the only worker busy with a large tree-ensemble batch…
    let addr = server.addr;
    let big = serde_json::to_vec(&tensor_request(&credit::sample_rows(2048, 2), 2048)).unwrap();
    let busy = std::thread::spawn(move || {
        crate::util::block_on(send(
            addr,
            "POST",
            "/v2/models/credit-risk-gbdt/infer",
            &[],
            big,
        ))
    });
    std::thread::sleep(Duration::from_millis(700));
    // …then queue small requests whose clients hang up at once.
    let small = serde_json::to_vec(&tensor_request(&credit::sample_rows(1, 3), 1)).unwrap();
    for _ in 0..3 {
        let mut s = TcpStream::connect(server.addr).unwrap();
        write!(
            s,
            "POST /v2/models/credit-risk-gbdt/infer HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
            small.len()
        )
        .unwrap();
        s.write_all(&small).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        drop(s);
    }
    let (status, _, body) = busy.join().unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut dropped = 0.0;
    for _ in 0..50 {
        let (_, _, metrics) = server.get("/metrics");
        dropped = metrics
            .as_str()
            .unwrap()
            .lines()
            .find(|l| l.starts_with(r#"vane_requests_dropped_total{model="credit-risk-gbdt""#))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        if dropped >= 3.0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        dropped, 3.0,
        "abandoned requests should be dropped, not executed"
    );
}
