//! Test harness: the real `vane-server` binary on 127.0.0.1:0 and a small HTTP client.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// Status, lower-cased headers and body of a raw exchange.
pub type RawResponse = (StatusCode, Vec<(String, String)>, Vec<u8>);

pub const BIN: &str = env!("CARGO_BIN_EXE_vane-server");

pub use vane_testkit::Proc;

/// A running server process; SIGKILLed on drop if still alive.
pub struct Server {
    pub addr: SocketAddr,
    /// The bearer token of the repository API (`--admin-token`, or [`ADMIN_TOKEN`] set
    /// through the environment unless the test overrides `VANE_ADMIN_TOKEN`).
    pub admin_token: String,
    proc: Proc,
}

/// The admin token test servers get by default.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// Path of ONNX Runtime's library, or `None` (with a printed reason) when it is absent and
/// the run does not require it. `VANE_REQUIRE_ORT=1` (set by the README test command and CI)
/// turns absence into a failure.
pub fn ort_lib() -> Option<PathBuf> {
    match vane_server::backend::ortlib::discover(
        std::env::var_os("ORT_DYLIB_PATH")
            .map(PathBuf::from)
            .as_deref(),
    ) {
        Ok((p, _)) => Some(p),
        Err(e) => {
            if std::env::var("VANE_REQUIRE_ORT").as_deref() == Ok("1") {
                panic!("VANE_REQUIRE_ORT=1 but ONNX Runtime is missing: {e}");
            }
            eprintln!("SKIPPING ONNX Runtime checks: {e}");
            None
        }
    }
}

impl Server {
    /// Starts the binary with `args` (plus `--addr 127.0.0.1:0`) and waits until ready.
    pub fn start(registry: &Path, args: &[&str]) -> Server {
        let s = Self::spawn(registry, args);
        s.wait_ready();
        s
    }

    /// [`Server::start`] with extra environment variables.
    pub fn start_with(registry: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let s = Self::spawn_with(registry, args, env);
        s.wait_ready();
        s
    }

    /// Starts the binary and returns once it printed its address (not necessarily ready).
    pub fn spawn(registry: &Path, args: &[&str]) -> Server {
        Self::spawn_with(registry, args, &[])
    }

    fn spawn_with(registry: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let admin_token = args
            .iter()
            .position(|a| *a == "--admin-token")
            .and_then(|i| args.get(i + 1).copied())
            .or_else(|| {
                env.iter()
                    .find(|(k, _)| *k == "VANE_ADMIN_TOKEN")
                    .map(|(_, v)| *v)
            })
            .unwrap_or(ADMIN_TOKEN)
            .to_string();
        let registry = registry.to_str().expect("UTF-8 registry path");
        let mut full = vec!["--registry", registry, "--addr", "127.0.0.1:0"];
        full.extend_from_slice(args);
        // The test's own variables come last and win.
        let mut envs = vec![("VANE_ADMIN_TOKEN", ADMIN_TOKEN), ("VANE_LOG", "info")];
        envs.extend_from_slice(env);
        let proc = Proc::spawn(Path::new(BIN), &full, 1, &envs);
        let addr = proc.stdout_lines[0]
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| {
                panic!(
                    "unexpected first line {:?}; stderr: {}",
                    proc.stdout_lines,
                    proc.stderr()
                )
            })
            .parse()
            .expect("address");
        Server {
            addr,
            admin_token,
            proc,
        }
    }

    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok((StatusCode::OK, _, _)) = self.raw("GET", "/v2/health/ready", &[], b"") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "server not ready; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stderr(&self) -> String {
        self.proc.stderr()
    }

    /// Waits up to 10 s until the server's stderr contains every one of `needles`. A reader
    /// thread copies stderr, so a log line can arrive after the state change it reports is
    /// already visible over HTTP.
    pub fn expect_log(&self, needles: &[&str]) {
        vane_testkit::wait_for(10, &format!("log lines mentioning {needles:?}"), || {
            let err = self.stderr();
            needles.iter().all(|n| err.contains(n)).then_some(())
        });
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> (ExitStatus, String) {
        let status = self.proc.terminate();
        (status, self.stderr())
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Blocking HTTP/1.1 request on a fresh connection (`Connection: close`).
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<RawResponse> {
        raw_request(self.addr, method, path, headers, body)
    }

    /// JSON request; returns status, headers and parsed body.
    pub fn json(&self, method: &str, path: &str, body: &Value) -> (StatusCode, HeaderMap, Value) {
        let bytes = serde_json::to_vec(body).unwrap();
        block_on(send(self.addr, method, path, &[], bytes))
    }

    /// `POST /v2/repository/index` with the admin token: polls the registry now and returns
    /// the index once the sync is done.
    pub fn sync(&self) -> (StatusCode, Value) {
        let auth = format!("Bearer {}", self.admin_token);
        let (status, _, body) = block_on(send(
            self.addr,
            "POST",
            "/v2/repository/index",
            &[("authorization", auth.as_str())],
            b"{}".to_vec(),
        ));
        (status, body)
    }

    pub fn get(&self, path: &str) -> (StatusCode, HeaderMap, Value) {
        block_on(send(self.addr, "GET", path, &[], Vec::new()))
    }
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// One request over hyper's client connection API; the body parsed as JSON when it is JSON.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (StatusCode, HeaderMap, Value) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = sender
        .send_request(req.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .expect("send");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, headers, value)
}

/// A raw HTTP/1.1 exchange, for bodies a well-behaved client would not send.
pub fn raw_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<RawResponse> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !chunked {
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    if chunked {
        for chunk in body.chunks(8192) {
            // The server may answer and close before we finish; that is fine.
            if s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .is_err()
                || s.write_all(chunk).is_err()
                || s.write_all(b"\r\n").is_err()
            {
                break;
            }
        }
        let _ = s.write_all(b"0\r\n\r\n");
    } else {
        let _ = s.write_all(body);
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text_end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            std::io::Error::other(format!(
                "no response head in {:?}",
                String::from_utf8_lossy(&buf)
            ))
        })?;
    let head = String::from_utf8_lossy(&buf[..text_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let code: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {status_line:?}")))?;
    let hdrs = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok((
        StatusCode::from_u16(code).unwrap(),
        hdrs,
        buf[text_end + 4..].to_vec(),
    ))
}

/// Floats of an OIP output's `data`.
pub fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

pub fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol,
            "{what}: element {i}: {x} vs {y} (tolerance {tol})"
        );
    }
}
