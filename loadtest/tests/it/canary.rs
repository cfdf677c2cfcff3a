//! Canary verdicts end to end against the real `vane-server` (tract backend): an identical
//! canary passes, a canary that scores differently fails on scores, a slower one fails on
//! latency, a missing version cannot be judged.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vane_models::credit;
use vane_registry::{DirRegistry, PublishRequest, set_canary};

use crate::util::{DelayProxy, Server, loadtest, serial};

const MODEL: &str = "credit-risk";

fn publish(reg: &DirRegistry, onnx: Vec<u8>) -> u64 {
    reg.publish(&PublishRequest {
        model: MODEL.into(),
        files: vec![
            ("model.onnx".into(), onnx),
            (
                "signature.json".into(),
                serde_json::to_vec(&credit::signature()).unwrap(),
            ),
        ],
        ..Default::default()
    })
    .unwrap()
}

fn lr(shift: f32) -> Vec<u8> {
    let mut m = credit::logistic_regression();
    m.bias += shift;
    m.to_onnx()
}

/// A registry with the example logistic regression as champion (v1) and `canary` as v2, the
/// canary alias on it.
fn registry(canary: Option<Vec<u8>>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let reg = DirRegistry::create(dir.path()).unwrap();
    assert_eq!(publish(&reg, lr(0.0)), 1);
    reg.set_alias(MODEL, "champion", 1).unwrap();
    if let Some(bytes) = canary {
        assert_eq!(publish(&reg, bytes), 2);
        set_canary(&reg, MODEL, 2, 0.1, false).unwrap();
    }
    dir
}

/// 2 000 applicants as JSON Lines (categorical features as strings), as a client would send.
fn dataset(dir: &Path) -> PathBuf {
    let p = dir.join("applicants.jsonl");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&p).unwrap());
    for r in credit::sample_records(2000, 11) {
        serde_json::to_writer(&mut f, &r).unwrap();
        f.write_all(b"\n").unwrap();
    }
    f.flush().unwrap();
    p
}

fn compare(server: &Server, data: &Path, rate: &str, rows: &str) -> crate::util::Run {
    let url = server.url();
    loadtest(&[
        "--model",
        MODEL,
        "--target",
        &url,
        "--compare",
        "champion,canary",
        "--data",
        data.to_str().unwrap(),
        "--format",
        "features",
        "--rate",
        rate,
        "-d",
        "5s",
        "--warmup",
        "1s",
        "-c",
        "16",
        "--rows-per-request",
        rows,
    ])
}

#[test]
fn an_identical_canary_passes() {
    let _g = serial();
    // The same model bytes published again as a new version.
    let reg = registry(Some(lr(0.0)));
    let server = Server::start(reg.path(), &[]);
    let data = dataset(reg.path());
    // 400/s for 5 s: ~1 000 latencies per arm, so each p99 rests on ~10 tail samples (at
    // 150/s it rested on ~4, and one stall on a shared machine moved it by 80 %).
    let run = compare(&server, &data, "400", "1");
    assert_eq!(run.code, 0, "{}\n{:?}", run.stdout, run.reasons());
    assert_eq!(run.json["verdict"]["status"], "pass");
    assert!(run.json["versions"]["1"]["requests"].as_u64().unwrap() >= 300);
    assert!(run.json["versions"]["2"]["requests"].as_u64().unwrap() >= 300);
    let scores = &run.json["verdict"]["scores"];
    assert!(scores["rows"].as_u64().unwrap() >= 300, "{scores}");
    assert_eq!(scores["mae"].as_f64(), Some(0.0));
    assert_eq!(scores["flip_rate"].as_f64(), Some(0.0));
    assert!(scores["psi"].as_f64().unwrap() < 1e-9);
    // Scores per version, server timing kept apart from client latency.
    assert!(run.json["versions"]["2"]["score_mean"].as_f64().unwrap() > 0.0);
    assert!(run.json["server_us"]["total"]["p50"].as_u64().is_some());
    assert!(run.stdout.contains("verdict: PASS"), "{}", run.stdout);
}

#[test]
fn a_canary_that_scores_differently_fails_on_scores() {
    let _g = serial();
    // The logistic regression with its bias shifted: same cost, different scores.
    let reg = registry(Some(lr(0.4)));
    let server = Server::start(reg.path(), &[]);
    let data = dataset(reg.path());
    let run = compare(&server, &data, "150", "1");
    assert_eq!(run.code, 1, "{}\n{:?}", run.stdout, run.reasons());
    let reasons = run.reasons();
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("score_mae") && r.contains("scores differ on the same")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.starts_with("score_psi")),
        "{reasons:?}"
    );
    let scores = &run.json["verdict"]["scores"];
    assert!(scores["mae"].as_f64().unwrap() > 0.01, "{scores}");
    assert!(
        scores["canary_mean"].as_f64().unwrap() > scores["baseline_mean"].as_f64().unwrap(),
        "{scores}"
    );
}

#[test]
fn a_slower_canary_fails_on_latency() {
    let _g = serial();
    // A 4×512 MLP over the same features (~0.8 M multiply-adds per row against the LR's ~40),
    // sent 32 rows per request so the compute difference stands out of a debug server's noise.
    let reg = registry(None);
    let v = credit::publish_seeded_mlp(reg.path(), MODEL, 512, 4, 7).unwrap();
    assert_eq!(v, 2);
    let writer = DirRegistry::create(reg.path()).unwrap();
    writer.set_alias(MODEL, "champion", 1).unwrap();
    set_canary(&writer, MODEL, 2, 0.1, false).unwrap();
    let server = Server::start(reg.path(), &[]);
    let data = dataset(reg.path());
    let run = compare(&server, &data, "40", "32");
    assert_eq!(run.code, 1, "{}\n{:?}", run.stdout, run.reasons());
    let reasons = run.reasons();
    assert!(
        reasons.iter().any(
            |r| r.starts_with("latency_shift") && r.contains("canary slower")
                || r.starts_with("latency_shift") && r.contains("slower by")
        ),
        "{reasons:?}"
    );
    assert_eq!(run.json["verdict"]["latency"]["classification"], "high");
}

#[test]
fn a_canary_behind_a_delay_fails_on_latency_and_a_missing_version_cannot_be_judged() {
    let _g = serial();
    let reg = registry(None);
    let server = Server::start(reg.path(), &[]);
    let data = dataset(reg.path());
    // Two targets: the same server directly (baseline) and through a proxy adding 3 ms.
    let proxy = DelayProxy::start(&server.addr, Duration::from_millis(3));
    let url = server.url();
    let slow = format!("http://{}", proxy.addr);
    let run = loadtest(&[
        "--model",
        MODEL,
        "--target",
        &url,
        "--target",
        &slow,
        "--data",
        data.to_str().unwrap(),
        "--rate",
        "150",
        "-d",
        "4s",
        "--warmup",
        "1s",
        "-c",
        "16",
    ]);
    assert_eq!(run.code, 1, "{}\n{:?}", run.stdout, run.reasons());
    let reasons = run.reasons();
    assert!(
        reasons.iter().any(|r| r.starts_with("latency_shift")),
        "{reasons:?}"
    );
    // Same model on both: the scores agree.
    assert!(
        !reasons.iter().any(|r| r.starts_with("score_")),
        "{reasons:?}"
    );
    assert_eq!(run.json["verdict"]["scores"]["mae"].as_f64(), Some(0.0));
    // A version the server does not serve: could not judge.
    let run = loadtest(&[
        "--model",
        MODEL,
        "--target",
        &url,
        "--compare",
        "1,7",
        "--data",
        data.to_str().unwrap(),
        "--rate",
        "50",
        "-d",
        "1s",
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("404"), "{}", run.stderr);
    // An alias nobody set: could not judge either, naming what is served.
    let run = loadtest(&[
        "--model",
        MODEL,
        "--target",
        &url,
        "--compare",
        "champion,canary",
        "--data",
        data.to_str().unwrap(),
        "-d",
        "1s",
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("no canary version served (served: 1 (champion))"),
        "{}",
        run.stderr
    );
}

/// The README's example: the champion LR against an untrained 2×64 MLP published as the
/// canary (a different model: similar cost, different scores). Writes its outputs to
/// `target/loadtest-example/`.
///
/// `cargo test -p vane-loadtest --test it readme_example -- --ignored --nocapture`
#[test]
#[ignore = "writes the README example into target/loadtest-example"]
fn readme_example() {
    let _g = serial();
    let reg = registry(None);
    let v = credit::publish_seeded_mlp(reg.path(), MODEL, 64, 2, 3).unwrap();
    let writer = DirRegistry::create(reg.path()).unwrap();
    writer.set_alias(MODEL, "champion", 1).unwrap();
    set_canary(&writer, MODEL, v, 0.05, false).unwrap();
    let server = Server::start(reg.path(), &[]);
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/loadtest-example");
    std::fs::create_dir_all(&out).unwrap();
    // Kept beside the outputs: BENCHMARKS.md replays it against release binaries.
    let data = dataset(&out);
    let url = server.url();
    let run = loadtest(&[
        "--model",
        MODEL,
        "--target",
        &url,
        "--compare",
        "champion,canary",
        "--data",
        data.to_str().unwrap(),
        "--format",
        "features",
        "--rate",
        "200",
        "-d",
        "10s",
        "--warmup",
        "2s",
        "-c",
        "16",
        "--plots",
        out.to_str().unwrap(),
        "--hgrm",
        out.to_str().unwrap(),
        "--csv",
        out.join("seconds.csv").to_str().unwrap(),
    ]);
    std::fs::write(out.join("stdout.txt"), &run.stdout).unwrap();
    std::fs::write(
        out.join("summary.json"),
        serde_json::to_string_pretty(&run.json).unwrap(),
    )
    .unwrap();
    assert_eq!(run.code, 1, "{}", run.stdout);
}
