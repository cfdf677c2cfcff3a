//! Sidecar outage: the monitor is killed while the server is under load. Scoring sees no
//! error and no latency change, the server counts the samples it dropped, and streaming
//! resumes by itself when a monitor listens on the same address again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use vane_models::credit;

use crate::util::{Monitor, Server, http, metric, wait_for};

/// The example credit-risk model's reference profile, written to `dir`.
pub(crate) fn profile(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("profile.json");
    let p = credit::reference_profile(&credit::logistic_regression().into(), 5000, 1);
    std::fs::write(&path, serde_json::to_vec(&p).unwrap()).unwrap();
    path
}

/// Latencies (ms) of requests sent by 4 looping clients while `busy` is set.
fn load(addr: String, busy: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<(Instant, f64, u16)>> {
    std::thread::spawn(move || {
        let row = credit::sample_rows(1, 5);
        let body = serde_json::to_vec(&json!({"inputs": [{"name": "input", "shape": [1, credit::N_FEATURES], "datatype": "FP32", "data": row}]})).unwrap();
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let (addr, busy, body) = (addr.clone(), busy.clone(), body.clone());
                std::thread::spawn(move || {
                    let mut out = Vec::new();
                    while busy.load(Ordering::Relaxed) {
                        let t0 = Instant::now();
                        let status = http(&addr, "POST", "/v2/models/credit-risk/infer", &body)
                            .map_or(0, |r| r.0);
                        out.push((t0, t0.elapsed().as_secs_f64() * 1e3, status));
                    }
                    out
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

#[test]
fn killing_the_monitor_under_load_costs_no_errors_and_streaming_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry");
    credit::write_example_registry(&registry).unwrap();
    let profile = profile(dir.path());
    let profile_arg = format!("credit-risk={}", profile.display());
    let mut monitor = Monitor::start(&["--profile", &profile_arg, "--window-rows", "200"]);
    let ingest = monitor.ingest.clone();
    let server = Server::start(&registry, &["--backend", "tract", "--monitor", &ingest]);

    let busy = Arc::new(AtomicBool::new(true));
    let loader = load(server.addr.clone(), busy.clone());
    wait_for(30, "sampled rows at the monitor", || {
        (metric(
            &monitor.metrics(),
            r#"vane_monitor_rows_total{model="credit-risk",outcome="accepted""#,
        ) > 0.0)
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    let killed = Instant::now();
    monitor.proc.kill();
    std::thread::sleep(Duration::from_secs(3));
    let restarted = Instant::now();
    let monitor = Monitor::start_on(
        &ingest,
        &["--profile", &profile_arg, "--window-rows", "200"],
    );
    assert_eq!(
        monitor.ingest, ingest,
        "the new monitor listens on the same address"
    );
    wait_for(30, "streaming to resume", || {
        (metric(
            &monitor.metrics(),
            r#"vane_monitor_rows_total{model="credit-risk",outcome="accepted""#,
        ) > 0.0)
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    busy.store(false, Ordering::Relaxed);
    let results = loader.join().unwrap();

    let errors: Vec<_> = results.iter().filter(|r| r.2 != 200).collect();
    assert!(
        errors.is_empty(),
        "{} failed requests, e.g. {:?}",
        errors.len(),
        errors.first()
    );
    let before: Vec<f64> = results
        .iter()
        .filter(|r| r.0 < killed)
        .map(|r| r.1)
        .collect();
    let during: Vec<f64> = results
        .iter()
        .filter(|r| r.0 >= killed && r.0 < restarted)
        .map(|r| r.1)
        .collect();
    let max_during = during.iter().copied().fold(0.0, f64::max);
    let (m_before, m_during) = (median(before.clone()), median(during.clone()));
    eprintln!(
        "{} requests before the kill (median {m_before:.2} ms), {} during the outage (median {m_during:.2} ms, max {max_during:.1} ms)",
        before.len(),
        during.len()
    );
    assert!(during.len() > 50, "load kept running during the outage");
    // The sender's connect and write timeouts are 1–2 s: a server that waited on the monitor
    // would show them. Scheduling noise on a shared machine is far below that.
    assert!(
        max_during < 500.0,
        "a request took {max_during} ms during the outage"
    );
    assert!(
        m_during <= 2.0 * m_before + 2.0,
        "median {m_during} ms during vs {m_before} ms before"
    );

    let (_, body) = crate::util::http_get(&server.addr, "/metrics");
    let dropped = metric(&body, "vane_samples_dropped_total");
    assert!(dropped > 0.0, "drops were not counted:\n{body}");
    assert_eq!(metric(&body, "vane_monitor_connected"), 1.0);
}
