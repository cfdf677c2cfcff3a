//! The server following an MLflow model registry (a real `mlflow server` started here).
//! Without `mlflow` on PATH the test prints why and passes, unless `VANE_REQUIRE_MLFLOW=1`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hyper::StatusCode;
use vane_models::credit;
use vane_registry::{
    MlflowRegistry, PublishRequest, RegistryWriter, RemoteOptions, promote, set_canary,
};

use crate::scoring::tensor_request;
use crate::util::{Server, floats};

/// An `mlflow server` in its own process group, killed with it on drop.
struct Mlflow {
    child: Child,
    port: u16,
}

impl Drop for Mlflow {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-TERM", "--", &group])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

fn mlflow_exe() -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("mlflow"))
        .find(|p| p.is_file())
}

fn start_mlflow(exe: &Path, dir: &Path) -> Option<Mlflow> {
    use std::os::unix::process::CommandExt;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(exe)
        .args(["server", "--backend-store-uri"])
        .arg(format!("sqlite:///{}", dir.join("mlflow.db").display()))
        .arg("--artifacts-destination")
        .arg(dir.join("art"))
        .args([
            "--serve-artifacts",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--workers",
            "1",
        ])
        .env("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start mlflow server");
    let mut m = Mlflow { child, port };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let healthy =
            crate::util::raw_request(([127, 0, 0, 1], port).into(), "GET", "/health", &[], b"")
                .is_ok_and(|(s, _, _)| s == StatusCode::OK);
        if healthy {
            return Some(m);
        }
        if let Ok(Some(status)) = m.child.try_wait() {
            assert_eq!(
                status.code(),
                Some(127),
                "mlflow server exited with {status}"
            );
            return None; // a shim without the package
        }
        assert!(Instant::now() < deadline, "mlflow server not healthy");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn lr(shift: f32) -> (Vec<u8>, f32) {
    let mut lr = credit::logistic_regression();
    lr.bias += shift;
    let p = lr.predict(&credit::sample_rows(1, 99), credit::N_FEATURES)[0];
    (lr.to_onnx(), p)
}

#[test]
fn server_follows_an_mlflow_registry() {
    let skip = |why: &str| {
        if std::env::var("VANE_REQUIRE_MLFLOW").as_deref() == Ok("1") {
            panic!("VANE_REQUIRE_MLFLOW=1 but {why}: pip install mlflow");
        }
        eprintln!("SKIPPING server_follows_an_mlflow_registry: {why} (pip install mlflow)");
    };
    let Some(exe) = mlflow_exe() else {
        return skip("`mlflow` is not on PATH");
    };
    let tmp = tempfile::tempdir().unwrap();
    let Some(mlflow) = start_mlflow(&exe, tmp.path()) else {
        return skip("`mlflow` cannot run");
    };
    let spec = format!("mlflow://127.0.0.1:{}", mlflow.port);
    let opts = RemoteOptions {
        cache_dir: Some(tmp.path().join("publisher-cache")),
        ..RemoteOptions::default()
    };
    let reg = MlflowRegistry::new(&spec, &opts).unwrap();
    let sig = serde_json::to_vec(&credit::signature()).unwrap();
    let mut expected = Vec::new();
    for shift in [0.0, 0.3] {
        let (bytes, p) = lr(shift);
        reg.publish(&PublishRequest {
            model: "credit-risk".into(),
            files: vec![
                ("model.onnx".into(), bytes),
                ("signature.json".into(), sig.clone()),
            ],
            ..Default::default()
        })
        .unwrap();
        expected.push(p);
    }
    reg.set_alias("credit-risk", "champion", 1).unwrap();

    let cache = tmp.path().join("server-cache");
    let server = Server::start_with(
        Path::new(&spec),
        &["--backend", "tract", "--poll-interval-ms", "0"],
        &[("VANE_CACHE_DIR", cache.to_str().unwrap())],
    );
    let req = tensor_request(&credit::sample_rows(1, 99), 1);
    let answer = |server: &Server| {
        let (status, headers, body) = server.json("POST", "/v2/models/credit-risk/infer", &req);
        assert_eq!(status, StatusCode::OK, "{body}");
        (
            headers["x-vane-model-version"]
                .to_str()
                .unwrap()
                .to_string(),
            floats(&body["outputs"][0]["data"])[0],
        )
    };
    let (v, p) = answer(&server);
    assert_eq!(v, "1");
    assert!((p - expected[0]).abs() < 1e-5);

    // A full canary, then promotion, both read from MLflow.
    set_canary(&reg, "credit-risk", 2, 1.0, false).unwrap();
    let (status, _) = server.sync();
    assert_eq!(status, StatusCode::OK);
    let (v, p) = answer(&server);
    assert_eq!(v, "2");
    assert!((p - expected[1]).abs() < 1e-5);
    promote(&reg, "credit-risk").unwrap();
    assert_eq!(server.sync().0, StatusCode::OK);
    let (_, _, meta) = server.get("/v2/models/credit-risk");
    assert_eq!(meta["parameters"]["version"], "2");
    // The server kept verified copies in its cache.
    assert!(cache.join("registry").is_dir());
}

/// Logs `fixtures/converters/sklearn_gbdt.onnx` twice as registered model `native` the way a
/// Python user does (`mlflow.onnx.log_model(..., registered_model_name=...)`) and points
/// alias `champion` at version 1; and `zipmap.onnx` (a classifier exported with the
/// converters' default ZipMap) once as `native-zipmap`, champion too. `None` when this Python
/// lacks `mlflow`, `onnx` or `onnxruntime` (which `mlflow.onnx` imports).
fn log_native_versions(tracking_uri: &str) -> Option<()> {
    let script = r#"
import sys
import mlflow, onnx
from mlflow import MlflowClient
mlflow.set_tracking_uri(sys.argv[1])
def log(model, registered):
    try:
        mlflow.onnx.log_model(model, name="model", registered_model_name=registered)
    except TypeError:  # MLflow 2.x spells it artifact_path
        mlflow.onnx.log_model(model, artifact_path="model", registered_model_name=registered)
model = onnx.load(sys.argv[2])
for _ in range(2):
    log(model, "native")
MlflowClient().set_registered_model_alias("native", "champion", "1")
log(onnx.load(sys.argv[3]), "native-zipmap")
MlflowClient().set_registered_model_alias("native-zipmap", "champion", "1")
"#;
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/converters/sklearn_gbdt.onnx");
    let has = Command::new("python3")
        .args(["-c", "import mlflow, onnx, onnxruntime"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has {
        return None;
    }
    let out = Command::new("python3")
        .args(["-c", script, tracking_uri])
        .arg(&fixture)
        .arg(fixture.with_file_name("zipmap.onnx"))
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "logging with mlflow.onnx failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(())
}

#[test]
fn server_serves_models_logged_the_mlflow_way() {
    let skip = |why: &str| {
        if std::env::var("VANE_REQUIRE_MLFLOW").as_deref() == Ok("1") {
            panic!("VANE_REQUIRE_MLFLOW=1 but {why}: pip install mlflow onnx onnxruntime");
        }
        eprintln!("SKIPPING server_serves_models_logged_the_mlflow_way: {why}");
    };
    let Some(exe) = mlflow_exe() else {
        return skip("`mlflow` is not on PATH");
    };
    let Some(lib) = crate::util::ort_lib() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let Some(mlflow) = start_mlflow(&exe, tmp.path()) else {
        return skip("`mlflow` cannot run");
    };
    let uri = format!("http://127.0.0.1:{}", mlflow.port);
    if log_native_versions(&uri).is_none() {
        return skip("python3 cannot import mlflow, onnx and onnxruntime");
    }
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/converters/expected.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let case = &expected["models"]["sklearn_gbdt"];
    let spec = format!("mlflow://127.0.0.1:{}", mlflow.port);
    let lib = lib.display().to_string();
    let cache = tmp.path().join("server-cache");
    let server = Server::start_with(
        Path::new(&spec),
        &[
            "--backend",
            "ort",
            "--ort-lib",
            &lib,
            "--poll-interval-ms",
            "0",
        ],
        &[("VANE_CACHE_DIR", cache.to_str().unwrap())],
    );
    let req = serde_json::json!({"inputs": case["inputs"]});
    let answer = |server: &Server| {
        let (status, headers, body) = server.json("POST", "/v2/models/native/infer", &req);
        assert_eq!(status, StatusCode::OK, "{body}");
        let p = floats(&body["outputs"][1]["data"]);
        let want = floats(&case["outputs"][1]["data"]);
        crate::util::assert_close(&p, &want, 1e-5, "probabilities");
        assert_eq!(body["outputs"][0]["data"], case["outputs"][0]["data"]);
        headers["x-vane-model-version"]
            .to_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(answer(&server), "1");
    // The graph's signature, derived by the server: metadata lists it as declared.
    let (_, _, meta) = server.get("/v2/models/native");
    assert_eq!(meta["inputs"], case["graph_inputs"]);
    // The ZipMap classifier answers its probabilities as a tensor.
    let zipmap = &expected["zipmap"];
    let (status, _, body) = server.json(
        "POST",
        "/v2/models/native-zipmap/infer",
        &serde_json::json!({"inputs": zipmap["inputs"]}),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["outputs"][1]["name"], "output_probability", "{body}");
    assert_eq!(body["outputs"][1]["shape"], zipmap["outputs"][1]["shape"]);
    crate::util::assert_close(
        &floats(&body["outputs"][1]["data"]),
        &floats(&zipmap["outputs"][1]["data"]),
        1e-5,
        "zipmap probabilities",
    );

    // The sha256 of what was fetched is recorded on the MLflow version.
    let model_bytes = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/converters/sklearn_gbdt.onnx"),
    )
    .unwrap();
    let (status, _, body) = crate::util::raw_request(
        ([127, 0, 0, 1], mlflow.port).into(),
        "GET",
        "/api/2.0/mlflow/model-versions/get?name=native&version=1",
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(status, StatusCode::OK);
    let mv: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let tag = mv["model_version"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["key"] == vane_registry::TAG_ONNX_SHA256)
        .expect("sha256 tag");
    assert_eq!(tag["value"], vane_registry::sha256_hex(&model_bytes));

    // A canary and its promotion through Vane's rollout operations, then the champion alias
    // moved back (the MLflow alias API MlflowClient uses): the server follows each.
    let opts = RemoteOptions {
        cache_dir: Some(tmp.path().join("publisher-cache")),
        ..RemoteOptions::default()
    };
    let reg = MlflowRegistry::new(&spec, &opts).unwrap();
    set_canary(&reg, "native", 2, 1.0, false).unwrap();
    assert_eq!(server.sync().0, StatusCode::OK);
    assert_eq!(answer(&server), "2");
    promote(&reg, "native").unwrap();
    assert_eq!(server.sync().0, StatusCode::OK);
    assert_eq!(answer(&server), "2");
    reg.set_alias("native", "champion", 1).unwrap();
    assert_eq!(server.sync().0, StatusCode::OK);
    assert_eq!(answer(&server), "1");
}
