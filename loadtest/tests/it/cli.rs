//! Command-line behaviour: bounded runs, outputs, exit codes without a server.

use std::time::{Duration, Instant};

use crate::util::{Behaviour, TestServer, body_file, loadtest, serial};

#[test]
fn runs_stop_at_the_request_count_and_write_every_output() {
    let _g = serial();
    let server = TestServer::start(Behaviour::Sleep(Duration::ZERO));
    let dir = tempfile::tempdir().unwrap();
    let body = body_file(dir.path());
    let csv = dir.path().join("s.csv");
    let hgrm = dir.path().join("hgrm");
    let plots = dir.path().join("plots");
    let t = Instant::now();
    let run = loadtest(&[
        "--body",
        body.to_str().unwrap(),
        "--target",
        &server.url(),
        "-d",
        "30s",
        "-n",
        "500",
        "-c",
        "4",
        "--csv",
        csv.to_str().unwrap(),
        "--hgrm",
        hgrm.to_str().unwrap(),
        "--plots",
        plots.to_str().unwrap(),
        "--threshold",
        "p99 < 5s",
        "--threshold",
        "error_rate < 1%",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "--requests did not end the run"
    );
    assert_eq!(run.json["requests"], 500);
    assert_eq!(run.json["ok"], 500);
    assert_eq!(run.json["versions"]["1"]["requests"], 500);
    assert_eq!(run.json["verdict"]["status"], "pass");
    assert!(
        run.stdout.contains("verdict: PASS (exit 0)"),
        "{}",
        run.stdout
    );
    assert!(
        std::fs::read_to_string(&csv)
            .unwrap()
            .starts_with("second,arm,")
    );
    let spectrum = std::fs::read_to_string(hgrm.join("target-v1.hgrm")).unwrap();
    assert!(spectrum.contains("1/(1-Percentile)") && spectrum.contains("#[Max"));
    assert!(
        std::fs::read_to_string(plots.join("percentiles.svg"))
            .unwrap()
            .contains("<svg")
    );
    assert!(
        std::fs::read_to_string(plots.join("timeline.svg"))
            .unwrap()
            .contains("<svg")
    );
    // A failed threshold is exit 1.
    let run = loadtest(&[
        "--body",
        body.to_str().unwrap(),
        "--target",
        &server.url(),
        "-n",
        "200",
        "-c",
        "2",
        "--threshold",
        "p50 < 1us",
    ]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.reasons()[0].contains("p50 < 1us failed"),
        "{:?}",
        run.reasons()
    );
}

#[test]
fn a_target_that_is_down_cannot_be_judged() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let body = body_file(dir.path());
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/v2/models/m/infer");
    let run = loadtest(&[
        "--body",
        body.to_str().unwrap(),
        "--target",
        &url,
        "-d",
        "1s",
        "-c",
        "2",
        "--rate",
        "50",
        "--threshold",
        "p99 < 1s",
    ]);
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(
        run.reasons()[0].contains("target down"),
        "{:?}",
        run.reasons()
    );
    assert!(run.json["errors"]["connect"].as_u64().unwrap() > 0);
    // So is a model server that is not there at all (metadata cannot be read).
    let run = loadtest(&[
        "--model",
        "m",
        "--target",
        &format!("http://127.0.0.1:{port}"),
        "-d",
        "1s",
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("cannot connect"), "{}", run.stderr);
}
