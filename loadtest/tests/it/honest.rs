//! Honest percentiles: latency counts from each request's intended send time.

use std::time::Duration;

use crate::util::{Behaviour, TestServer, body_file, loadtest, serial};

#[test]
fn a_one_millisecond_server_measures_one_millisecond() {
    let _g = serial();
    let server = TestServer::start(Behaviour::Sleep(Duration::from_millis(1)));
    let dir = tempfile::tempdir().unwrap();
    let body = body_file(dir.path());
    let body = body.to_str().unwrap();
    let url = server.url();
    // Open loop: 200/s, well below what 8 connections to a 1 ms server can carry.
    let open = loadtest(&[
        "--body", body, "--target", &url, "--rate", "200", "-d", "3s", "-c", "8", "--warmup",
        "500ms",
    ]);
    assert_eq!(open.code, 0, "{}", open.stderr);
    let p50 = open.latency("p50");
    // A thread::sleep(1 ms) server plus loopback and the VM's wake-ups from idle: 1.2–1.6 ms
    // here (the pacer's own precision is unit-tested in `pacer`).
    assert!((1000..2000).contains(&p50), "open-loop p50 {p50} µs");
    assert_eq!(open.json["requests"], 600);
    let achieved = open.json["achieved_rps"].as_f64().unwrap();
    assert!((190.0..=205.0).contains(&achieved), "achieved {achieved}/s");
    // Closed loop, one connection: one request at a time.
    let closed = loadtest(&["--body", body, "--target", &url, "-d", "2s", "-c", "1"]);
    assert_eq!(closed.code, 0, "{}", closed.stderr);
    let p50 = closed.latency("p50");
    assert!((1000..2000).contains(&p50), "closed-loop p50 {p50} µs");
    let rps = closed.json["achieved_rps"].as_f64().unwrap();
    assert!((400.0..1000.0).contains(&rps), "closed-loop rate {rps}/s");
}

/// The server freezes for 200 ms once a second (like a GC pause). Open loop (wrk2 style):
/// the requests due during the freeze wait, and their waiting counts, so ~20 % of requests
/// take up to 200 ms and p99 ≈ 190 ms. Closed loop: each connection has one request stuck per
/// freeze and sends nothing else meanwhile, so the freeze touches a handful of thousands of
/// requests and p99 stays low — the coordinated omission wrk2 was written to expose.
#[test]
fn a_stalling_server_shows_in_open_loop_p99_not_in_closed_loop() {
    let _g = serial();
    let server = TestServer::start(Behaviour::Stall {
        period: Duration::from_secs(1),
        length: Duration::from_millis(200),
    });
    let dir = tempfile::tempdir().unwrap();
    let body = body_file(dir.path());
    let body = body.to_str().unwrap();
    let url = server.url();
    let open = loadtest(&[
        "--body", body, "--target", &url, "--rate", "500", "-d", "4s", "-c", "64", "--warmup",
        "300ms",
    ]);
    assert_eq!(open.code, 0, "{}", open.stderr);
    let (p50, p90, p99) = (
        open.latency("p50"),
        open.latency("p90"),
        open.latency("p99"),
    );
    // Ideal: p50 < 1 ms, p90 ≈ 100 ms, p99 ≈ 190 ms.
    assert!(p99 >= 140_000, "open-loop p99 {p99} µs hides the stall");
    assert!(p90 >= 40_000, "open-loop p90 {p90} µs hides the stall");
    assert!(p50 < 20_000, "open-loop p50 {p50} µs");
    assert!(
        open.latency("max") <= 260_000,
        "max {}",
        open.latency("max")
    );
    let closed = loadtest(&["--body", body, "--target", &url, "-d", "4s", "-c", "4"]);
    assert_eq!(closed.code, 0, "{}", closed.stderr);
    let cp99 = closed.latency("p99");
    // The closed loop sees the stall only in its few stuck requests…
    assert!(
        closed.latency("max") >= 100_000,
        "closed loop never saw the stall"
    );
    // …and its p99 hides it.
    assert!(cp99 < 30_000, "closed-loop p99 {cp99} µs");
    assert!(p99 > 4 * cp99, "open p99 {p99} µs vs closed p99 {cp99} µs");
}
