//! `MlflowRegistry` (and the CLI) against a real MLflow tracking server started here.
//!
//! Needs `mlflow` on PATH (`pip install mlflow`; `mlflow-skinny` cannot run the server).
//! Without it the test prints why and passes, unless `VANE_REQUIRE_MLFLOW=1` (CI).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use vane_registry::{
    MlflowRegistry, Registry, RegistryError, RegistryWriter, RemoteOptions, Rollback,
    TAG_MANIFEST_SHA256, TrafficPolicy, VersionRef, open_registry, open_writer, promote, rollback,
    set_canary,
};

use crate::common::{cli_err, cli_ok, closed_port, model_bytes, request, version_dir};

fn find_on_path(exe: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(exe))
        .find(|p| p.is_file())
}

/// An `mlflow server` in its own process group, killed (group and all) on drop.
struct MlflowServer {
    child: Child,
    port: u16,
    artifacts: PathBuf,
    log: PathBuf,
}

impl MlflowServer {
    /// Starts the server and waits for `/health`. `Err(None)` when `mlflow` turns out not to
    /// be runnable (a pyenv shim without the package exits 127).
    fn start(mlflow: &Path, dir: &Path) -> Result<Self, Option<String>> {
        use std::os::unix::process::CommandExt;
        let port = closed_port();
        let artifacts = dir.join("art");
        let log = dir.join("mlflow.log");
        let child = Command::new(mlflow)
            .args(["server", "--backend-store-uri"])
            .arg(format!("sqlite:///{}", dir.join("mlflow.db").display()))
            .arg("--artifacts-destination")
            .arg(&artifacts)
            .args([
                "--serve-artifacts",
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            .args(["--workers", "1"])
            .env("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.join("mlflow.err")).unwrap())
            .process_group(0)
            .spawn()
            .expect("start mlflow server");
        let mut server = Self {
            child,
            port,
            artifacts,
            log,
        };
        server.wait_healthy(Duration::from_secs(120))?;
        Ok(server)
    }

    fn wait_healthy(&mut self, limit: Duration) -> Result<(), Option<String>> {
        let start = Instant::now();
        let stderr = |s: &Self| {
            std::fs::read_to_string(s.log.with_file_name("mlflow.err")).unwrap_or_default()
        };
        while start.elapsed() < limit {
            if health(self.port) {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                if status.code() == Some(127) {
                    return Err(None);
                }
                return Err(Some(format!(
                    "mlflow server exited with {status}; stderr:\n{}",
                    stderr(self)
                )));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Err(Some(format!(
            "mlflow server not healthy after {limit:?}; stderr:\n{}",
            stderr(self)
        )))
    }

    fn spec(&self) -> String {
        format!("mlflow://127.0.0.1:{}", self.port)
    }
}

impl Drop for MlflowServer {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-TERM", "--", &group])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

fn health(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req =
        format!("GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

/// The artifact directory of `model` version `version` on the server's disk.
fn artifact_dir(root: &Path, model: &str, version: u64) -> PathBuf {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == "manifest.json") {
                let m: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                if m["name"] == model && m["version"] == version {
                    return dir;
                }
            }
        }
    }
    panic!(
        "no artifacts for {model}/{version} under {}",
        root.display()
    );
}

fn opts(cache: &Path) -> RemoteOptions {
    RemoteOptions {
        cache_dir: Some(cache.to_path_buf()),
        ..RemoteOptions::default()
    }
}

#[test]
fn mlflow_registry_end_to_end() {
    let skip = |why: &str| {
        if std::env::var("VANE_REQUIRE_MLFLOW").as_deref() == Ok("1") {
            panic!("VANE_REQUIRE_MLFLOW=1 but {why}: install it with `pip install mlflow`");
        }
        eprintln!("skipping mlflow_registry_end_to_end: {why} (pip install mlflow)");
    };
    let Some(mlflow) = find_on_path("mlflow") else {
        return skip("`mlflow` is not on PATH");
    };
    let t0 = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let server = match MlflowServer::start(&mlflow, tmp.path()) {
        Ok(server) => server,
        Err(None) => return skip(&format!("{} cannot run (exit 127)", mlflow.display())),
        Err(Some(failure)) => panic!("{failure}"),
    };
    let started = t0.elapsed();
    let cache = tmp.path().join("cache");
    let reg = MlflowRegistry::new(&server.spec(), &opts(&cache)).unwrap();

    // Publish two versions: the numbers are MLflow's.
    assert_eq!(reg.publish(&request("credit", 1)).unwrap(), 1);
    assert_eq!(reg.publish(&request("credit", 2)).unwrap(), 2);
    assert_eq!(reg.models().unwrap(), ["credit"]);
    assert_eq!(reg.versions("credit").unwrap(), [1, 2]);
    let published = t0.elapsed();

    // Aliases, canary weight and the policy.
    reg.set_alias("credit", "champion", 1).unwrap();
    set_canary(&reg, "credit", 2, 0.2, false).unwrap();
    assert_eq!(
        reg.policy("credit").unwrap(),
        TrafficPolicy {
            champion: Some(1),
            canary: Some(2),
            canary_weight: 0.2,
            shadow: None
        }
    );
    assert_eq!(
        reg.resolve("credit", &VersionRef::Alias("champion".into()))
            .unwrap(),
        1
    );

    // Unknowns are NotFound (an unknown alias is MLflow's 400 INVALID_PARAMETER_VALUE).
    for err in [
        reg.resolve("credit", &VersionRef::Alias("nope".into()))
            .unwrap_err(),
        reg.resolve("credit", &VersionRef::Number(9)).unwrap_err(),
        reg.resolve("missing", &VersionRef::Alias("champion".into()))
            .unwrap_err(),
        reg.versions("missing").unwrap_err(),
        reg.aliases("missing").unwrap_err(),
        reg.fetch("credit", 9).unwrap_err(),
        reg.remove_alias("credit", "nope").unwrap_err(),
        reg.set_alias("credit", "champion", 9).unwrap_err(),
    ] {
        assert!(matches!(err, RegistryError::NotFound(_)), "{err}");
    }
    assert!(matches!(
        reg.set_alias("credit", "7", 1).unwrap_err(),
        RegistryError::Invalid(_)
    ));

    // Fetch: manifest checked against the tag, files against the manifest, then cached.
    let v1 = reg
        .fetch_ref("credit", &VersionRef::Alias("champion".into()))
        .unwrap();
    assert_eq!(
        (v1.version, v1.model_bytes.as_slice()),
        (1, model_bytes(1).as_slice())
    );
    assert_eq!(
        v1.manifest.version, 1,
        "the manifest carries MLflow's version number"
    );
    assert_eq!(v1.manifest.metrics["auc"], 0.751);
    assert_eq!(v1.profile.as_ref().map(|p| p.features.len()), Some(2));
    assert!(v1.dir.starts_with(&cache));
    assert_eq!(reg.manifest("credit", 2).unwrap().version, 2);
    // The cached copy is reused without downloading: it survives the artifacts vanishing.
    let dir1 = artifact_dir(&server.artifacts, "credit", 1);
    let saved = std::fs::read(dir1.join("model.onnx")).unwrap();
    std::fs::remove_file(dir1.join("model.onnx")).unwrap();
    assert_eq!(reg.fetch("credit", 1).unwrap().model_bytes, model_bytes(1));
    std::fs::write(dir1.join("model.onnx"), &saved).unwrap();

    // Promote and roll back, through the tags.
    assert_eq!(promote(&reg, "credit").unwrap(), 2);
    let p = reg.policy("credit").unwrap();
    assert_eq!(
        (p.champion, p.canary, p.canary_weight),
        (Some(2), None, 0.0)
    );
    assert_eq!(
        reg.traffic_settings("credit").unwrap().champion_history,
        [1]
    );
    assert_eq!(
        rollback(&reg, "credit").unwrap(),
        Rollback::ChampionRestored { from: 2, to: 1 }
    );
    assert_eq!(reg.policy("credit").unwrap().champion, Some(1));
    assert!(
        reg.traffic_settings("credit")
            .unwrap()
            .champion_history
            .is_empty()
    );

    // A tampered artifact is refused (fresh cache, so the bytes really come from MLflow).
    let fresh = MlflowRegistry::new(&server.spec(), &opts(&tmp.path().join("cache2"))).unwrap();
    let dir2 = artifact_dir(&server.artifacts, "credit", 2);
    let mut bytes = std::fs::read(dir2.join("model.onnx")).unwrap();
    bytes[100] ^= 0x55;
    std::fs::write(dir2.join("model.onnx"), &bytes).unwrap();
    let err = fresh.fetch("credit", 2).unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains("model.onnx"), "{err}");
    assert!(!fresh.cache().version_dir("credit", 2).unwrap().exists());
    // …and so is a rewritten manifest (checked against the version tag).
    let manifest = std::fs::read(dir2.join("manifest.json")).unwrap();
    let mut doc: Value = serde_json::from_slice(&manifest).unwrap();
    doc["files"]["model.onnx"]["sha256"] = Value::from(vane_registry::sha256_hex(&bytes));
    std::fs::write(
        dir2.join("manifest.json"),
        serde_json::to_vec_pretty(&doc).unwrap(),
    )
    .unwrap();
    let err = fresh.fetch("credit", 2).unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
    assert!(
        err.to_string().contains("manifest.json") && err.to_string().contains(TAG_MANIFEST_SHA256),
        "{err}"
    );
    std::fs::write(dir2.join("manifest.json"), &manifest).unwrap();
    bytes[100] ^= 0x55;
    std::fs::write(dir2.join("model.onnx"), &bytes).unwrap();
    assert_eq!(
        fresh.fetch("credit", 2).unwrap().model_bytes,
        model_bytes(2)
    );
    let library = t0.elapsed();

    // The CLI against the same server, through open_registry / open_writer specs.
    let cache_s = tmp.path().join("cache3").to_str().unwrap().to_string();
    let spec = server.spec();
    let env = [
        ("VANE_REGISTRY", spec.as_str()),
        ("VANE_CACHE_DIR", cache_s.as_str()),
    ];
    let v3 = version_dir(tmp.path(), 3);
    assert_eq!(
        cli_ok(
            &[
                "publish",
                v3.to_str().unwrap(),
                "--model",
                "fraud",
                "--alias",
                "champion"
            ],
            &env
        ),
        "1\n"
    );
    assert_eq!(
        cli_ok(&["publish", v3.to_str().unwrap(), "--model", "fraud"], &env),
        "2\n"
    );
    cli_ok(&["alias", "set", "fraud", "staging", "2"], &env);
    cli_ok(&["alias", "rm", "fraud", "staging"], &env);
    cli_ok(&["canary", "set", "fraud", "2", "--weight", "0.3"], &env);
    let out = cli_ok(&["list"], &env);
    assert!(
        out.contains("fraud\tversions 1,2\taliases canary=2 champion=1\tcanary_weight 0.3"),
        "{out}"
    );
    let show: Value = serde_json::from_str(&cli_ok(&["show", "fraud@canary"], &env)).unwrap();
    assert_eq!(
        (
            show["version"].as_u64(),
            show["policy"]["canary_weight"].as_f64()
        ),
        (Some(2), Some(0.3))
    );
    assert!(show["manifest"]["files"]["notes.txt"].is_object());
    assert!(cli_ok(&["promote", "fraud"], &env).contains("version 2 is the champion"));
    assert!(cli_ok(&["rollback", "fraud"], &env).contains("champion 2 -> 1"));
    let err = cli_err(&["show", "fraud@nope"], &env);
    assert!(err.contains("alias \"nope\""), "{err}");
    let reader = open_registry(&spec, &opts(&cache)).unwrap();
    assert_eq!(reader.policy("fraud").unwrap().champion, Some(1));
    assert!(open_writer(&spec, &opts(&cache)).is_ok());
    let cli_done = t0.elapsed();

    drop(server);
    eprintln!(
        "mlflow timings: server up {:.1}s, 2 publishes {:.1}s, library checks {:.1}s, CLI {:.1}s, total {:.1}s",
        started.as_secs_f64(),
        (published - started).as_secs_f64(),
        (library - published).as_secs_f64(),
        (cli_done - library).as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
}

#[test]
fn mlflow_unreachable_after_retries() {
    let cache = tempfile::tempdir().unwrap();
    let opts = RemoteOptions {
        cache_dir: Some(cache.path().to_path_buf()),
        retry: vane_registry::RetryPolicy {
            attempts: 2,
            initial_backoff: Duration::from_millis(10),
            multiplier: 2,
            max_backoff: Duration::from_millis(10),
        },
        ..RemoteOptions::default()
    };
    let spec = format!("mlflow://127.0.0.1:{}", closed_port());
    let reg = open_writer(&spec, &opts).unwrap();
    for err in [
        reg.models().unwrap_err(),
        reg.publish(&request("m", 1)).unwrap_err(),
    ] {
        match err {
            RegistryError::Unreachable { location, reason } => {
                assert!(
                    location.starts_with("mlflow+http://127.0.0.1:"),
                    "{location}"
                );
                assert!(reason.contains("after 2 attempts"), "{reason}");
            }
            other => panic!("expected Unreachable, got {other}"),
        }
    }
}

/// GET `path` on the MLflow server, parsed as JSON.
fn get_json(port: u16, path: &str) -> Value {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    let head_end = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&answer[..head_end]).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut body = answer[head_end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        // De-chunk: size line, data, CRLF, … until 0.
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap().trim(), 16)
                    .unwrap();
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[line_end + 2..line_end + 2 + size]);
            rest = &rest[line_end + 2 + size + 2..];
        }
        body = out;
    }
    serde_json::from_slice(&body).unwrap()
}

#[test]
fn a_published_runs_metrics_params_and_histories_read_back_through_mlflow() {
    let Some(mlflow) = find_on_path("mlflow") else {
        assert_ne!(
            std::env::var("VANE_REQUIRE_MLFLOW").as_deref(),
            Ok("1"),
            "mlflow not on PATH"
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let server = match MlflowServer::start(&mlflow, tmp.path()) {
        Ok(server) => server,
        Err(None) => return,
        Err(Some(failure)) => panic!("{failure}"),
    };
    let reg = MlflowRegistry::new(&server.spec(), &opts(&tmp.path().join("cache"))).unwrap();
    // Shaped like `vane-models train`'s metrics.json and lineage: nested, with a curve.
    let mut req = request("credit", 1);
    req.metrics = serde_json::json!({
        "published": "gbdt",
        "test": {"auc": 0.81, "ks": 0.47},
        "models": {
            "lr": {"valid": {"auc": 0.78}, "details": {"converged": true, "iterations": 7}},
            "gbdt": {"valid": {"auc": 0.8}, "details": {"valid_log_loss_curve": [0.61, 0.52, 0.49]}},
        },
    });
    req.lineage = serde_json::json!({
        "seed": 42,
        "label": "default_12m",
        "features": ["annual_income", "purpose"],
        "params": {"model_type": "both", "lr": {"l2": 0.001}, "gbdt": {"max_depth": 4}},
        "data": {"sha256": "ab12"},
    });
    let v = reg.publish(&req).unwrap();
    let mv = get_json(
        server.port,
        &format!("/api/2.0/mlflow/model-versions/get?name=credit&version={v}"),
    );
    let run_id = mv["model_version"]["run_id"].as_str().unwrap().to_string();
    let run = get_json(
        server.port,
        &format!("/api/2.0/mlflow/runs/get?run_id={run_id}"),
    );
    let data = &run["run"]["data"];
    let metric = |key: &str| {
        data["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["key"] == key)
            .map(|m| m["value"].as_f64().unwrap())
    };
    assert_eq!(metric("test.auc"), Some(0.81));
    assert_eq!(metric("models.lr.valid.auc"), Some(0.78));
    assert_eq!(metric("models.lr.details.converged"), Some(1.0));
    let param = |key: &str| {
        data["params"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["key"] == key)
            .map(|p| p["value"].as_str().unwrap().to_string())
    };
    assert_eq!(param("seed").as_deref(), Some("42"));
    assert_eq!(param("params.lr.l2").as_deref(), Some("0.001"));
    assert_eq!(param("params.gbdt.max_depth").as_deref(), Some("4"));
    assert_eq!(param("features").as_deref(), Some("annual_income,purpose"));
    assert_eq!(param("data.sha256").as_deref(), Some("ab12"));
    let history = get_json(
        server.port,
        &format!(
            "/api/2.0/mlflow/metrics/get-history?run_id={run_id}&metric_key=models.gbdt.details.valid_log_loss_curve"
        ),
    );
    let mut steps: Vec<(i64, f64)> = history["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["step"].as_i64().unwrap_or(0),
                m["value"].as_f64().unwrap(),
            )
        })
        .collect();
    steps.sort_by_key(|s| s.0);
    assert_eq!(steps, [(0, 0.61), (1, 0.52), (2, 0.49)]);
}
