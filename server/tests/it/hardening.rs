//! What a client (or a dependency) can hold of the server: slow bodies, connection floods,
//! admission, a hung online store, and metric series across many hot swaps.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use hyper::StatusCode;
use vane_models::credit;

use crate::hotswap::{MODEL, registry, sync};
use crate::scoring::tensor_request;
use crate::util::Server;

/// Sends a request head announcing `declared` body bytes, then only `sent` of them.
fn partial_request(server: &Server, path: &str, declared: usize, sent: usize) -> TcpStream {
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {declared}\r\n\r\n"
    )
    .unwrap();
    s.write_all(&vec![b' '; sent]).unwrap();
    s
}

/// The status line's code of whatever the server sends on `s` (0 when it closes silently).
fn read_status(s: &mut TcpStream) -> u16 {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&buf)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn one_row() -> serde_json::Value {
    tensor_request(&credit::sample_rows(1, 3), 1)
}

fn threads_of(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_trickling_body_gets_408_and_others_are_served_meanwhile() {
    let (dir, _reg) = registry(1);
    let server = Server::start(
        dir.path(),
        &["--backend", "tract", "--body-read-timeout-ms", "400"],
    );
    let t0 = Instant::now();
    let mut slow = partial_request(&server, "/v2/models/credit-risk/infer", 1000, 10);
    // Meanwhile a well-behaved client is served at once.
    let (status, _, body) = server.json("POST", "/v2/models/credit-risk/infer", &one_row());
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(read_status(&mut slow), 408);
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(380) && waited < Duration::from_secs(5),
        "408 after {waited:?}"
    );
    assert!(crate::hotswap::metric(&server, "vane_http_responses_total{status=\"408\"}") >= 1.0);
}

/// True once the server has closed `s` (EOF or reset), within `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => {
                return !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                );
            }
        }
    }
}

#[test]
fn idle_connections_and_unfinished_heads_are_closed_after_the_idle_timeout() {
    let (dir, _reg) = registry(1);
    let server = Server::start(
        dir.path(),
        &["--backend", "tract", "--idle-timeout-ms", "400"],
    );
    // A connection that never sends, and one whose request head never ends (slowloris).
    let mut silent = TcpStream::connect(server.addr).unwrap();
    let mut stalled = TcpStream::connect(server.addr).unwrap();
    stalled
        .write_all(b"POST /v2/models/credit-risk/infer HTTP/1.1\r\nhost: x\r\n")
        .unwrap();
    // Not before the timeout.
    assert!(!closed_within(&mut silent, Duration::from_millis(200)));
    // A keep-alive connection in use the whole time is not closed: a request every 100 ms.
    let body = serde_json::to_vec(&one_row()).unwrap();
    let mut busy = TcpStream::connect(server.addr).unwrap();
    busy.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    for _ in 0..10 {
        write!(
            busy,
            "POST /v2/models/credit-risk/infer HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        busy.write_all(&body).unwrap();
        assert_eq!(read_status(&mut busy), 200);
        // The rest of the response (its body) is small and follows the head at once.
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(closed_within(&mut silent, Duration::from_secs(5)));
    assert!(closed_within(&mut stalled, Duration::from_secs(5)));
    // Once it stops sending, the busy connection is closed too.
    assert!(closed_within(&mut busy, Duration::from_secs(5)));
}

#[test]
fn past_the_connection_cap_the_server_stops_accepting_until_one_closes() {
    let (dir, _reg) = registry(1);
    let server = Server::start(
        dir.path(),
        &["--backend", "tract", "--max-connections", "8"],
    );
    // Eight idle connections take every slot.
    let idle: Vec<TcpStream> = (0..8)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    // A ninth connects (the kernel's backlog) but is not served...
    let body = serde_json::to_vec(&one_row()).unwrap();
    let mut ninth = TcpStream::connect(server.addr).unwrap();
    write!(
        ninth,
        "POST /v2/models/credit-risk/infer HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    ninth.write_all(&body).unwrap();
    ninth
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert!(
        ninth.read(&mut byte).is_err(),
        "a connection past the cap was served"
    );
    // ...until one of the eight closes.
    drop(idle.into_iter().next());
    ninth
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(read_status(&mut ninth), 200);

    // A flood of connections that send nothing costs the server nothing lasting.
    let before = threads_of(server.pid());
    let flood: Vec<TcpStream> = (0..300)
        .filter_map(|_| TcpStream::connect(server.addr).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    assert!(threads_of(server.pid()) <= before + 2);
    drop(flood);
    let t0 = Instant::now();
    loop {
        let (status, _, _) = server.json("POST", "/v2/models/credit-risk/infer", &one_row());
        if status == StatusCode::OK {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{status}");
    }
}

#[test]
fn past_the_admission_limit_requests_get_429_with_retry_after() {
    let (dir, _reg) = registry(1);
    let server = Server::start(
        dir.path(),
        &["--backend", "tract", "--max-concurrent-requests", "2"],
    );
    let path = "/v2/models/credit-risk/infer";
    let mut held: Vec<TcpStream> = (0..2)
        .map(|_| partial_request(&server, path, 500, 5))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let (status, headers, body) = server.json("POST", path, &one_row());
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(headers["retry-after"], "1");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("max_concurrent_requests"),
        "{body}"
    );
    // Metadata and health are not inference: never refused by admission.
    assert_eq!(server.get("/v2/health/ready").0, StatusCode::OK);
    // Finishing one held request frees its slot.
    let mut first = held.remove(0);
    first.write_all(&[b' '; 495]).unwrap();
    assert_eq!(read_status(&mut first), 400);
    let (status, _, body) = server.json("POST", path, &one_row());
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[test]
fn a_hung_online_store_costs_503s_not_threads() {
    // A "Redis" that accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = held.clone();
    std::thread::spawn(move || {
        for c in listener.incoming().flatten() {
            keep.lock().unwrap().push(c);
        }
    });
    let reg = crate::online::entity_registry();
    let spec = format!("redis://127.0.0.1:{port}");
    let server = Server::start(
        reg.path(),
        &[
            "--backend",
            "tract",
            "--online-store",
            &spec,
            "--online-timeout-ms",
            "300",
            "--online-concurrency",
            "2",
        ],
    );
    let records = credit::sample_records(6, 5);
    let keyed = crate::online::keyed_request(&[1], &records[..1]);
    let before = threads_of(server.pid());
    let t0 = Instant::now();
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let keyed = keyed.clone();
            let addr = server.addr;
            std::thread::spawn(move || {
                crate::util::block_on(crate::util::send(
                    addr,
                    "POST",
                    "/v2/models/credit-risk/infer",
                    &[],
                    serde_json::to_vec(&keyed).unwrap(),
                ))
            })
        })
        .collect();
    // Direct requests stay fast while the store hangs.
    let (status, _, _) = server.json(
        "POST",
        "/v2/models/credit-risk/infer",
        &crate::scoring::feature_request(&records[..1]),
    );
    assert_eq!(status, StatusCode::OK);
    let peak = threads_of(server.pid());
    for c in clients {
        let (status, _, body) = c.join().unwrap();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("online_timeout_ms")
                || body["error"].as_str().unwrap().contains("unavailable"),
            "{body}"
        );
    }
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(5), "16 lookups took {took:?}");
    // At most `--online-concurrency` blocking threads, whatever the number of requests.
    assert!(
        peak <= before + 2 + 1,
        "threads went from {before} to {peak} with a hung store"
    );
}

#[test]
fn a_thousand_hot_swaps_leave_the_metric_series_bounded() {
    let (dir, reg) = registry(1);
    // Versions 2..=1000 are the same bytes published again (cheap to load).
    let v1 = dir.path().join(MODEL).join("versions").join("1");
    let files: Vec<(String, Vec<u8>)> = ["model.onnx", "signature.json"]
        .iter()
        .map(|f| (f.to_string(), std::fs::read(v1.join(f)).unwrap()))
        .collect();
    for _ in 2..=1000 {
        reg.publish(&vane_registry::PublishRequest {
            model: MODEL.into(),
            files: files.clone(),
            ..Default::default()
        })
        .unwrap();
    }
    let server = Server::start(
        dir.path(),
        &[
            "--backend",
            "tract",
            "--poll-interval-ms",
            "0",
            "--workers",
            "1",
        ],
    );
    let series = |server: &Server| {
        let (_, _, text) = server.get("/metrics");
        text.as_str()
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .count()
    };
    let req = one_row();
    let mut after_first = 0;
    for v in 1..=1000u64 {
        reg.set_alias(MODEL, "champion", v).unwrap();
        sync(&server);
        let (status, headers, body) = server.json("POST", "/v2/models/credit-risk/infer", &req);
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(headers["x-vane-model-version"], v.to_string().as_str());
        if v == 2 {
            after_first = series(&server);
        }
    }
    let after = series(&server);
    assert!(
        after <= after_first + 10,
        "metric series grew from {after_first} to {after} over 1 000 hot swaps"
    );
    let (_, _, text) = server.get("/metrics");
    assert!(
        !text.as_str().unwrap().contains("version=\"999\""),
        "series of unloaded version 999 remain"
    );
}
