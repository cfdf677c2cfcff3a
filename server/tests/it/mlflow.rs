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
