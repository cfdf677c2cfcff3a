//! Hot swap, canary/shadow routing, failure handling and the repository API, against the real
//! binary with a directory registry changed underneath it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::StatusCode;
use serde_json::{Value, json};
use vane_models::credit;
use vane_registry::{DirRegistry, PublishRequest, promote, rollback, set_canary};

use crate::scoring::tensor_request;
use crate::util::{Server, floats, send};

pub(crate) const MODEL: &str = "credit-risk";

/// The example logistic regression with its bias moved by `shift`, so every version scores
/// differently and a response can be traced to the version that produced it.
pub(crate) fn lr_bytes(shift: f32) -> Vec<u8> {
    let mut lr = credit::logistic_regression();
    lr.bias += shift;
    lr.to_onnx()
}

pub(crate) fn lr_predict(shift: f32, rows: &[f32]) -> Vec<f32> {
    let mut lr = credit::logistic_regression();
    lr.bias += shift;
    lr.predict(rows, credit::N_FEATURES)
}

pub(crate) fn shift_of(version: u64) -> f32 {
    version as f32 * 0.01
}

fn publish(reg: &DirRegistry, bytes: Vec<u8>, signature: &vane_registry::Signature) -> u64 {
    reg.publish(&PublishRequest {
        model: MODEL.into(),
        files: vec![
            ("model.onnx".into(), bytes),
            (
                "signature.json".into(),
                serde_json::to_vec(signature).unwrap(),
            ),
        ],
        ..Default::default()
    })
    .unwrap()
}

/// A registry with versions 1..=n of the shifted LR, champion = 1.
pub(crate) fn registry(n: u64) -> (tempfile::TempDir, DirRegistry) {
    let dir = tempfile::tempdir().unwrap();
    let reg = DirRegistry::create(dir.path()).unwrap();
    for v in 1..=n {
        assert_eq!(
            publish(&reg, lr_bytes(shift_of(v)), &credit::signature()),
            v
        );
    }
    reg.set_alias(MODEL, "champion", 1).unwrap();
    (dir, reg)
}

/// Polls the registry now (POST /v2/repository/index returns after the sync).
pub(crate) fn sync(server: &Server) -> Value {
    let (status, index) = server.sync();
    assert_eq!(status, StatusCode::OK, "{index}");
    index
}

pub(crate) fn metric(server: &Server, prefix: &str) -> f64 {
    let (_, _, text) = server.get("/metrics");
    text.as_str()
        .unwrap()
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub(crate) fn one_row() -> (Vec<f32>, Value) {
    let row = credit::sample_rows(1, 99);
    let req = tensor_request(&row, 1);
    (row, req)
}

pub(crate) fn version_of(headers: &hyper::HeaderMap) -> u64 {
    headers["x-vane-model-version"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

struct Sample {
    sent: Instant,
    done: Instant,
    status: StatusCode,
    version: u64,
    probability: f32,
}

#[test]
fn a_hundred_swaps_under_load_fail_no_request() {
    let (dir, reg) = registry(1);
    let server = Server::start(
        dir.path(),
        &[
            "--backend",
            "tract",
            "--poll-interval-ms",
            "100",
            "--workers",
            "1",
        ],
    );
    let (row, req) = one_row();
    let body = serde_json::to_vec(&req).unwrap();
    let addr = server.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    // Steady closed-loop load from 4 clients for the whole test.
    let load = {
        let (stop, samples, body) = (stop.clone(), samples.clone(), body.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut tasks = Vec::new();
                for _ in 0..4 {
                    let (stop, samples, body) = (stop.clone(), samples.clone(), body.clone());
                    tasks.push(tokio::spawn(async move {
                        while !stop.load(Ordering::Relaxed) {
                            let sent = Instant::now();
                            let (status, headers, value) = send(
                                addr,
                                "POST",
                                "/v2/models/credit-risk/infer",
                                &[],
                                body.clone(),
                            )
                            .await;
                            let done = Instant::now();
                            let (version, probability) = if status == StatusCode::OK {
                                (
                                    version_of(&headers),
                                    floats(&value["outputs"][0]["data"])[0],
                                )
                            } else {
                                (0, f32::NAN)
                            };
                            samples.lock().unwrap().push(Sample {
                                sent,
                                done,
                                status,
                                version,
                                probability,
                            });
                        }
                    }));
                }
                for t in tasks {
                    t.await.unwrap();
                }
            });
        })
    };
    // Steady phase.
    std::thread::sleep(Duration::from_secs(2));
    let steady_end = Instant::now();
    let rss_before = metric(&server, "vane_process_resident_memory_bytes");
    // Version v is valid from the moment an alias points at it until it stops pointing.
    let mut valid: BTreeMap<u64, (Instant, Option<Instant>)> =
        BTreeMap::from([(1, (Instant::now() - Duration::from_secs(60), None))]);
    let mut champion = 1u64;
    let mut rollbacks = 0;
    for i in 0..100u64 {
        let v = publish(&reg, lr_bytes(shift_of(i + 2)), &credit::signature());
        assert_eq!(v, i + 2);
        // Half of the rollouts go through a canary first.
        if i % 2 == 0 {
            valid.insert(v, (Instant::now(), None));
            set_canary(&reg, MODEL, v, 0.3, false).unwrap();
            sync(&server);
        }
        valid.entry(v).or_insert((Instant::now(), None));
        let prev = champion;
        champion = promote(&reg, MODEL)
            .or_else(|_| reg.set_alias(MODEL, "champion", v).map(|_| v))
            .unwrap();
        assert_eq!(champion, v);
        sync(&server);
        if let Some(p) = valid.get_mut(&prev) {
            p.1 = Some(Instant::now());
        }
        // Every tenth rollout is rolled back.
        if i % 10 == 9 {
            rollback(&reg, MODEL).unwrap();
            rollbacks += 1;
            let now = Instant::now();
            valid.get_mut(&prev).unwrap().1 = None;
            valid.get_mut(&v).unwrap().1 = Some(now);
            champion = prev;
            sync(&server);
        }
    }
    let swaps_end = Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    let rss_after = metric(&server, "vane_process_resident_memory_bytes");

    let samples = samples.lock().unwrap();
    assert!(samples.len() > 500, "too little load: {}", samples.len());
    let failed: Vec<_> = samples
        .iter()
        .filter(|s| s.status != StatusCode::OK)
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed, first: {:?}",
        failed.len(),
        samples.len(),
        failed.first().map(|s| s.status)
    );
    // Each response comes from the version it names, and that version was live then (the
    // watcher applies a change within one poll or sync; allow 2 s of slack).
    let slack = Duration::from_secs(2);
    for s in samples.iter() {
        let expected = lr_predict(shift_of(s.version), &row)[0];
        assert!(
            (s.probability - expected).abs() < 1e-5,
            "version {} answered {} (expected {expected})",
            s.version,
            s.probability
        );
        let (from, to) = valid
            .get(&s.version)
            .copied()
            .unwrap_or_else(|| panic!("version {} was never live", s.version));
        assert!(
            s.done + slack >= from && to.is_none_or(|to| s.sent <= to + slack),
            "version {} answered outside its live window",
            s.version
        );
    }
    let p99 = |xs: &mut Vec<Duration>| {
        xs.sort();
        xs[(xs.len() as f64 * 0.99) as usize - 1]
    };
    let mut steady: Vec<Duration> = samples
        .iter()
        .filter(|s| s.done < steady_end)
        .map(|s| s.done - s.sent)
        .collect();
    let mut swapping: Vec<Duration> = samples
        .iter()
        .filter(|s| s.sent > steady_end && s.done < swaps_end)
        .map(|s| s.done - s.sent)
        .collect();
    let (p_steady, p_swap) = (p99(&mut steady), p99(&mut swapping));
    eprintln!(
        "hot swap: {} requests, 0 failed; 100 rollouts, {rollbacks} rollbacks; p99 steady {:?}, during swaps {:?} ({:.2}x); RSS {:.1} MiB -> {:.1} MiB",
        samples.len(),
        p_steady,
        p_swap,
        p_swap.as_secs_f64() / p_steady.as_secs_f64(),
        rss_before / 1048576.0,
        rss_after / 1048576.0
    );
    assert!(metric(&server, "vane_model_swaps_total{model=\"credit-risk\"}") >= 100.0);
}

#[test]
fn canary_share_sticky_keys_and_shadow() {
    let (dir, reg) = registry(3);
    let server = Server::start(
        dir.path(),
        &["--backend", "tract", "--poll-interval-ms", "0"],
    );
    set_canary(&reg, MODEL, 2, 0.1, false).unwrap();
    sync(&server);
    let (row, req) = one_row();
    let body = serde_json::to_vec(&req).unwrap();
    let addr = server.addr;
    let rt = tokio::runtime::Runtime::new().unwrap();
    // 10 000 unkeyed requests over 16 connections.
    let versions: Vec<u64> = rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let body = body.clone();
            tasks.push(tokio::spawn(async move {
                let mut out = Vec::new();
                for _ in 0..625 {
                    let (status, headers, _) = send(
                        addr,
                        "POST",
                        "/v2/models/credit-risk/infer",
                        &[],
                        body.clone(),
                    )
                    .await;
                    assert_eq!(status, StatusCode::OK);
                    out.push(version_of(&headers));
                }
                out
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    });
    assert_eq!(versions.len(), 10_000);
    let canary = versions.iter().filter(|v| **v == 2).count() as f64 / 10_000.0;
    eprintln!("canary share of 10 000 requests at weight 0.10: {canary:.4}");
    assert!((0.08..=0.12).contains(&canary), "canary share {canary}");
    assert!(versions.iter().all(|v| *v == 1 || *v == 2));

    // Sticky: a key always lands on the same version.
    let mut on_canary = 0;
    for k in 0..200 {
        let key = format!("applicant-{k}");
        let seen: Vec<u64> = (0..5)
            .map(|_| {
                let (status, headers, _) = crate::util::block_on(send(
                    addr,
                    "POST",
                    "/v2/models/credit-risk/infer",
                    &[("x-vane-route-key", key.as_str())],
                    body.clone(),
                ));
                assert_eq!(status, StatusCode::OK);
                version_of(&headers)
            })
            .collect();
        assert!(
            seen.windows(2).all(|w| w[0] == w[1]),
            "key {key} moved between versions: {seen:?}"
        );
        on_canary += usize::from(seen[0] == 2);
    }
    assert!(
        (5..=45).contains(&on_canary),
        "{on_canary} of 200 keys on the canary"
    );
    // An explicit version bypasses the policy.
    for _ in 0..20 {
        let (status, headers, _) =
            server.json("POST", "/v2/models/credit-risk/versions/2/infer", &req);
        assert_eq!((status, version_of(&headers)), (StatusCode::OK, 2));
    }

    // Shadow: version 3 gets copies; clients still get the champion's answer.
    rollback(&reg, MODEL).unwrap();
    set_canary(&reg, MODEL, 3, 0.0, true).unwrap();
    sync(&server);
    let champion_answer = lr_predict(shift_of(1), &row)[0];
    for _ in 0..200 {
        let (status, headers, value) = server.json("POST", "/v2/models/credit-risk/infer", &req);
        assert_eq!((status, version_of(&headers)), (StatusCode::OK, 1));
        assert!((floats(&value["outputs"][0]["data"])[0] - champion_answer).abs() < 1e-6);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(
        &server,
        "vane_shadow_requests_total{model=\"credit-risk\",outcome=\"success\",version=\"3\"}",
    ) < 200.0
    {
        assert!(
            Instant::now() < deadline,
            "shadow copies were not all scored"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, _, stats) = server.get("/v2/models/credit-risk/versions/3/stats");
    let diff = stats["model_stats"][0]["vane"]["stats"]["shadow"]["max_abs_diff"]
        .as_f64()
        .unwrap();
    let expected = (lr_predict(shift_of(3), &row)[0] - champion_answer).abs() as f64;
    assert!(
        (diff - expected).abs() < 1e-5,
        "shadow diff {diff} vs {expected}"
    );
    let (_, _, text) = server.get("/metrics");
    assert!(
        text.as_str()
            .unwrap()
            .contains(r#"vane_model_role{model="credit-risk",role="shadow",version="3"} 0"#)
    );
}

/// Publishes `bytes` (with `signature`) as the next version and makes it champion; the server
/// must refuse it and keep serving version 1.
fn refused(server: &Server, reg: &DirRegistry, version: u64, reason: &str, log: &str) {
    reg.set_alias(MODEL, "champion", version).unwrap();
    let index = sync(server);
    let (row, req) = one_row();
    let (status, headers, value) = server.json("POST", "/v2/models/credit-risk/infer", &req);
    assert_eq!(
        (status, version_of(&headers)),
        (StatusCode::OK, 1),
        "{value}"
    );
    assert!(
        (floats(&value["outputs"][0]["data"])[0] - lr_predict(shift_of(1), &row)[0]).abs() < 1e-6
    );
    let (status, _, ready) = server.get("/v2/health/ready");
    assert_eq!(
        (status, ready["ready"].as_bool()),
        (StatusCode::OK, Some(true))
    );
    let row_of = index
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["version"].as_str().and_then(|v| v.parse::<u64>().ok()) == Some(version))
        .cloned()
        .unwrap_or_default();
    assert_eq!(row_of["state"], "UNAVAILABLE", "{index}");
    assert!(
        row_of["reason"]
            .as_str()
            .unwrap_or_default()
            .starts_with(reason),
        "{index}"
    );
    let metric_name =
        format!("vane_model_load_failures_total{{model=\"credit-risk\",reason=\"{reason}\"}}");
    assert!(metric(server, &metric_name) >= 1.0, "no {metric_name}");
    server.expect_log(&[log]);
    reg.set_alias(MODEL, "champion", 1).unwrap();
}

#[test]
fn bad_versions_leave_the_old_one_serving() {
    let (dir, reg) = registry(1);
    let server = Server::start(
        dir.path(),
        &["--backend", "tract", "--poll-interval-ms", "0"],
    );
    // A corrupted artifact: bytes that hash right but are not a model.
    let v = publish(
        &reg,
        b"\x08\x07garbage that is not protobuf".to_vec(),
        &credit::signature(),
    );
    refused(&server, &reg, v, "load", "model version not loaded");
    // A digest mismatch: the file changed after publish.
    let v = publish(&reg, lr_bytes(0.5), &credit::signature());
    std::fs::write(
        dir.path()
            .join(format!("credit-risk/versions/{v}/model.onnx")),
        lr_bytes(0.7),
    )
    .unwrap();
    refused(&server, &reg, v, "digest", "digest mismatch");
    // An incompatible signature: a feature renamed.
    let mut sig = credit::signature();
    sig.inputs[0].name = "income_usd".into();
    let v = publish(&reg, lr_bytes(0.5), &sig);
    refused(&server, &reg, v, "incompatible", "income_usd");
}

#[test]
fn unreachable_registry_keeps_serving() {
    let (dir, _reg) = registry(1);
    // Serve the registry directory over HTTP with Python's static file server.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut http = std::process::Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3 -m http.server");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "static server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let cache = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        Path::new(&url),
        &["--backend", "tract", "--poll-interval-ms", "0"],
        &[("VANE_CACHE_DIR", cache.path().to_str().unwrap())],
    );
    let (_, req) = one_row();
    assert_eq!(
        server.json("POST", "/v2/models/credit-risk/infer", &req).0,
        StatusCode::OK
    );
    http.kill().unwrap();
    http.wait().unwrap();
    let index = sync(&server);
    assert!(index.to_string().contains("unreachable"), "{index}");
    let (status, headers, _) = server.json("POST", "/v2/models/credit-risk/infer", &req);
    assert_eq!((status, version_of(&headers)), (StatusCode::OK, 1));
    assert!(metric(&server, "vane_registry_errors_total{kind=\"unreachable\"}") >= 1.0);
    server.expect_log(&["registry poll failed"]);
    assert_eq!(server.get("/v2/health/ready").0, StatusCode::OK);
}

#[test]
fn repository_api_needs_a_bearer_token_and_sighup_polls() {
    let (dir, reg) = registry(2);
    let open = Server::start_with(
        dir.path(),
        &["--backend", "tract", "--poll-interval-ms", "0"],
        &[("VANE_ADMIN_TOKEN", "")],
    );
    let (status, body) = open.sync();
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _, body) = open.json(
        "POST",
        "/v2/repository/models/credit-risk/unload",
        &json!({}),
    );
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body["error"].as_str().unwrap().contains("--admin-token"));
    drop(open);

    let server = Server::start(
        dir.path(),
        &[
            "--backend",
            "tract",
            "--poll-interval-ms",
            "0",
            "--admin-token",
            "t0ken",
        ],
    );
    let unload = "/v2/repository/models/credit-risk/unload";
    let (status, headers, _) = server.json("POST", unload, &json!({}));
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["www-authenticate"], "Bearer");
    let (status, _, _) = crate::util::block_on(send(
        server.addr,
        "POST",
        unload,
        &[("authorization", "Bearer wrong")],
        vec![],
    ));
    assert_eq!(status, StatusCode::FORBIDDEN);
    let auth = [("authorization", "Bearer t0ken")];
    let (status, _, body) = crate::util::block_on(send(server.addr, "POST", unload, &auth, vec![]));
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, req) = one_row();
    assert_eq!(
        server.json("POST", "/v2/models/credit-risk/infer", &req).0,
        StatusCode::NOT_FOUND
    );
    let index = sync(&server);
    assert!(index.to_string().contains("UNLOADED"), "{index}");
    let (status, _, body) = crate::util::block_on(send(
        server.addr,
        "POST",
        "/v2/repository/models/credit-risk/load",
        &auth,
        vec![],
    ));
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        server.json("POST", "/v2/models/credit-risk/infer", &req).0,
        StatusCode::OK
    );
    let (status, _, _) = crate::util::block_on(send(
        server.addr,
        "POST",
        "/v2/repository/models/nope/unload",
        &auth,
        vec![],
    ));
    assert_eq!(status, StatusCode::NOT_FOUND);

    // SIGHUP polls the registry (polling is off here).
    reg.set_alias(MODEL, "champion", 2).unwrap();
    std::process::Command::new("kill")
        .arg("-HUP")
        .arg(server.pid().to_string())
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, headers, _) = server.json("POST", "/v2/models/credit-risk/infer", &req);
        assert_eq!(status, StatusCode::OK);
        if version_of(&headers) == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not swap to version 2"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
