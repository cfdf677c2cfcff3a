//! Sampling to the drift monitor, against the real binary: a test listener plays the monitor
//! and decodes the frames with `vane-sample-stream`.

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::StatusCode;
use vane_models::credit;
use vane_registry::set_canary;
use vane_sample_stream as wire;

use crate::hotswap::{MODEL, lr_predict, metric, one_row, registry, shift_of, sync, version_of};
use crate::util::Server;

/// One decoded rows frame.
#[derive(Debug, Clone)]
struct Got {
    model: String,
    version: u64,
    shadow: bool,
    /// Row-major values.
    rows: Vec<Vec<f32>>,
    scores: Vec<f32>,
}

/// A monitor stand-in: accepts connections and records every frame.
struct FakeMonitor {
    addr: SocketAddr,
    schemas: Arc<Mutex<Vec<wire::Schema>>>,
    rows: Arc<Mutex<Vec<Got>>>,
}

impl FakeMonitor {
    fn start() -> FakeMonitor {
        Self::on(TcpListener::bind("127.0.0.1:0").unwrap())
    }

    fn on(listener: TcpListener) -> FakeMonitor {
        let addr = listener.local_addr().unwrap();
        let schemas: Arc<Mutex<Vec<wire::Schema>>> = Default::default();
        let rows: Arc<Mutex<Vec<Got>>> = Default::default();
        let (s, r) = (schemas.clone(), rows.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let (s, r) = (s.clone(), r.clone());
                std::thread::spawn(move || {
                    loop {
                        let mut prefix = [0u8; 4];
                        if conn.read_exact(&mut prefix).is_err() {
                            return;
                        }
                        let n = wire::body_len(prefix).expect("frame length");
                        let mut body = vec![0u8; n];
                        conn.read_exact(&mut body).expect("frame body");
                        match wire::decode(&body).expect("a valid frame") {
                            wire::Frame::Schema { schema, .. } => s.lock().unwrap().push(schema),
                            wire::Frame::Rows(rows) => {
                                let cols: Vec<Vec<f32>> = (0..rows.columns)
                                    .map(|c| rows.column(c).collect())
                                    .collect();
                                let got = Got {
                                    model: rows.model.to_string(),
                                    version: rows.version,
                                    shadow: rows.shadow,
                                    rows: (0..rows.rows)
                                        .map(|i| cols.iter().map(|c| c[i]).collect())
                                        .collect(),
                                    scores: rows.scores().map(|s| s.collect()).unwrap_or_default(),
                                };
                                r.lock().unwrap().push(got);
                            }
                        }
                    }
                });
            }
        });
        FakeMonitor {
            addr,
            schemas,
            rows,
        }
    }

    fn rows_matching(&self, f: impl Fn(&Got) -> bool) -> usize {
        self.rows
            .lock()
            .unwrap()
            .iter()
            .filter(|g| f(g))
            .map(|g| g.rows.len())
            .sum()
    }

    fn wait_rows(&self, n: usize, f: impl Fn(&Got) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.rows_matching(&f) < n {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} sampled rows arrived",
                self.rows_matching(&f)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn infer(server: &Server, req: &serde_json::Value) -> u64 {
    let (status, headers, body) = server.json("POST", "/v2/models/credit-risk/infer", req);
    assert_eq!(status, StatusCode::OK, "{body}");
    version_of(&headers)
}

#[test]
fn sampled_rows_and_scores_reach_the_monitor_and_shadow_copies_are_tagged() {
    let monitor = FakeMonitor::start();
    let (dir, reg) = registry(3);
    let target = format!("tcp://{}", monitor.addr);
    let server = Server::start(
        dir.path(),
        &[
            "--backend",
            "tract",
            "--poll-interval-ms",
            "0",
            "--monitor",
            &target,
        ],
    );
    let (row, req) = one_row();
    for _ in 0..30 {
        assert_eq!(infer(&server, &req), 1);
    }
    monitor.wait_rows(30, |g| g.version == 1 && !g.shadow);
    let expected_score = lr_predict(shift_of(1), &row)[0];
    {
        let schemas = monitor.schemas.lock().unwrap();
        let s = &schemas[0];
        assert_eq!((s.model.as_str(), s.version), (MODEL, 1));
        let names: Vec<&str> = s.features.iter().map(|f| f.name.as_str()).collect();
        let sig = credit::signature();
        let want: Vec<&str> = sig.inputs.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, want, "features in tensor column order");
        assert_eq!(s.score.as_deref(), Some("probability"));
        for g in monitor.rows.lock().unwrap().iter() {
            assert_eq!(g.model, MODEL);
            for (r, score) in g.rows.iter().zip(&g.scores) {
                assert_eq!(r, &row, "the decoded input row");
                assert!(
                    (score - expected_score).abs() < 1e-6,
                    "{score} vs {expected_score}"
                );
            }
        }
    }

    // Shadow version 3: the client still gets version 1; the copies are sampled, tagged.
    set_canary(&reg, MODEL, 3, 0.0, true).unwrap();
    sync(&server);
    for _ in 0..20 {
        assert_eq!(infer(&server, &req), 1);
    }
    monitor.wait_rows(20, |g| g.version == 3 && g.shadow);
    monitor.wait_rows(50, |g| g.version == 1 && !g.shadow);
    let shadow_score = lr_predict(shift_of(3), &row)[0];
    for g in monitor.rows.lock().unwrap().iter().filter(|g| g.shadow) {
        assert!(g.scores.iter().all(|s| (s - shadow_score).abs() < 1e-6));
        assert!(
            g.rows.iter().all(|r| r == &row),
            "same inputs as the champion"
        );
    }
    assert_eq!(
        monitor.rows_matching(|g| g.shadow && g.version != 3),
        0,
        "only the shadow version is tagged shadow"
    );
    assert!(metric(&server, "vane_samples_sent_total") >= 70.0);
    assert_eq!(metric(&server, "vane_monitor_connected"), 1.0);
}

#[test]
fn zero_percent_sends_no_rows_and_per_model_rates_apply() {
    let monitor = FakeMonitor::start();
    let (dir, _reg) = registry(1);
    let target = format!("tcp://{}", monitor.addr);
    let config = dir.path().join("vane.toml");
    std::fs::write(&config, "[models.\"credit-risk\"]\nsample_percent = 0\n").unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--backend",
            "tract",
            "--monitor",
            &target,
            "--config",
            config.to_str().unwrap(),
        ],
    );
    let (_, req) = one_row();
    for _ in 0..50 {
        infer(&server, &req);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(monitor.rows_matching(|_| true), 0);
    assert_eq!(metric(&server, "vane_samples_sent_total"), 0.0);
    drop(server);

    // 30 % globally: roughly a third of the requests.
    let server = Server::start(
        dir.path(),
        &[
            "--backend",
            "tract",
            "--monitor",
            &target,
            "--sample-percent",
            "30",
        ],
    );
    for _ in 0..400 {
        infer(&server, &req);
    }
    std::thread::sleep(Duration::from_millis(300));
    let n = monitor.rows_matching(|_| true);
    assert!(
        (70..=170).contains(&n),
        "{n} of 400 requests sampled at 30 %"
    );
}

#[test]
fn a_stalled_monitor_never_slows_scoring() {
    // Accepts connections and never reads: the socket buffers fill, then the sender's writes
    // block until their timeout. Requests must not notice.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            keep.lock().unwrap().push(conn);
        }
    });
    let (dir, _reg) = registry(1);
    let target = format!("tcp://{addr}");
    let server = Server::start(dir.path(), &["--backend", "tract", "--monitor", &target]);
    // 1 000-row requests: 84 KB of samples each, so the socket buffers (a few MB on loopback)
    // fill within a hundred.
    let rows = credit::sample_rows(1000, 9);
    let req = crate::scoring::tensor_request(&rows, 1000);
    let mut worst = Duration::ZERO;
    for _ in 0..400 {
        let t0 = Instant::now();
        let (status, _, body) = server.json("POST", "/v2/models/credit-risk/infer", &req);
        assert_eq!(status, StatusCode::OK, "{body}");
        worst = worst.max(t0.elapsed());
    }
    let dropped = metric(&server, "vane_samples_dropped_total");
    eprintln!(
        "slowest of 400 requests with a stalled monitor: {worst:?}; {dropped} samples dropped"
    );
    assert!(
        dropped > 0.0,
        "a stalled monitor must cost samples, not requests"
    );
    // The sender's write timeout is 2 s: a request that waited on it would show.
    assert!(
        worst < Duration::from_millis(1000),
        "a request took {worst:?}"
    );
    assert!(!held.lock().unwrap().is_empty());
}

#[test]
fn an_absent_monitor_costs_no_errors_and_streaming_resumes_when_it_returns() {
    // Reserve a port, then free it: nothing listens there yet.
    let port_holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = port_holder.local_addr().unwrap();
    drop(port_holder);
    let (dir, _reg) = registry(1);
    let target = format!("tcp://{addr}");
    let server = Server::start(dir.path(), &["--backend", "tract", "--monitor", &target]);
    let (_, req) = one_row();
    for _ in 0..200 {
        infer(&server, &req);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(
        &server,
        "vane_samples_dropped_total{reason=\"monitor_down\"}",
    ) < 1.0
    {
        assert!(Instant::now() < deadline, "drops were not counted");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(metric(&server, "vane_monitor_connected"), 0.0);

    let monitor = FakeMonitor::on(TcpListener::bind(addr).unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    while monitor.rows_matching(|_| true) == 0 {
        assert!(Instant::now() < deadline, "streaming did not resume");
        infer(&server, &req);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(metric(&server, "vane_monitor_connected"), 1.0);
    server.expect_log(&["monitor unreachable", "connected to the monitor"]);
    // stderr is a pipe here, as in a container: plain text, no terminal colour codes.
    assert!(!server.stderr().contains('\x1b'), "{:?}", server.stderr());
}
