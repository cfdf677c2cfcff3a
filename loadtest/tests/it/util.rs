//! Test harness: the real `vane-loadtest` binary, small blocking HTTP servers with known
//! latency behaviour (thread per connection, so a sleep is a real `thread::sleep`, not a
//! millisecond timer tick), a delaying proxy, and the real `vane-server`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const LOADTEST: &str = env!("CARGO_BIN_EXE_vane-loadtest");

/// What a `vane-loadtest` run printed and wrote.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// The `--json` summary (when the run wrote one).
    pub json: Value,
}

impl Run {
    pub fn latency(&self, q: &str) -> u64 {
        self.json["latency_us"][q]
            .as_u64()
            .unwrap_or_else(|| panic!("no latency_us.{q} in {}", self.json))
    }

    pub fn reasons(&self) -> Vec<String> {
        self.json["verdict"]["reasons"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Runs `vane-loadtest args… --json <tmp> --progress lines`.
pub fn loadtest(args: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("summary.json");
    let out = Command::new(LOADTEST)
        .args(args)
        .arg("--json")
        .arg(&json)
        .arg("--progress")
        .arg("lines")
        .output()
        .expect("run vane-loadtest");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        json: std::fs::read(&json)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null),
    };
    eprintln!(
        "vane-loadtest {}\n{}{}",
        args.join(" "),
        run.stdout,
        run.stderr
    );
    run
}

// ---------------------------------------------------------------------------------------------
// Minimal HTTP/1.1 over blocking sockets

/// Reads one message (request or response) with a content-length body; `None` at EOF.
fn read_message(r: &mut BufReader<TcpStream>) -> Option<(String, Vec<u8>)> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let len = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).ok()?;
    Some((head, body))
}

const BODY: &str = r#"{"model_name":"m","model_version":"1","outputs":[{"name":"probability","datatype":"FP32","shape":[1,1],"data":[0.25]}]}"#;

/// A test server's behaviour per request.
#[derive(Clone, Copy)]
pub enum Behaviour {
    /// Sleep this long, then answer.
    Sleep(Duration),
    /// Answer at once, except during a stall of `length` starting every `period` (from the
    /// server's start + `period / 2`): then wait until the stall ends.
    Stall { period: Duration, length: Duration },
}

/// A blocking HTTP/1.1 server on 127.0.0.1:0, a thread per connection.
pub struct TestServer {
    pub addr: String,
    stop: Arc<AtomicBool>,
}

impl TestServer {
    pub fn start(b: Behaviour) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let t0 = Instant::now();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let _ = conn.set_nodelay(true);
                std::thread::spawn(move || serve(conn, b, t0));
            }
        });
        TestServer { addr, stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}/v2/models/m/infer", self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(&self.addr);
    }
}

fn serve(conn: TcpStream, b: Behaviour, t0: Instant) {
    let mut w = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    while read_message(&mut r).is_some() {
        match b {
            Behaviour::Sleep(d) => std::thread::sleep(d),
            Behaviour::Stall { period, length } => {
                let since = t0.elapsed().as_secs_f64() + period.as_secs_f64() / 2.0;
                let phase = since % period.as_secs_f64();
                if phase < length.as_secs_f64() {
                    std::thread::sleep(Duration::from_secs_f64(length.as_secs_f64() - phase));
                }
            }
        }
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-vane-model-version: 1\r\ncontent-length: {}\r\n\r\n{BODY}",
            BODY.len()
        );
        if w.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

/// A proxy that forwards each request to `upstream` and holds the response back for `delay`.
pub struct DelayProxy {
    pub addr: String,
}

impl DelayProxy {
    pub fn start(upstream: &str, delay: Duration) -> DelayProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let upstream = upstream.to_string();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let upstream = upstream.clone();
                std::thread::spawn(move || {
                    let _ = conn.set_nodelay(true);
                    let Ok(up) = TcpStream::connect(&upstream) else {
                        return;
                    };
                    let _ = up.set_nodelay(true);
                    let mut up_w = up.try_clone().unwrap();
                    let mut up_r = BufReader::new(up);
                    let mut w = conn.try_clone().unwrap();
                    let mut r = BufReader::new(conn);
                    while let Some((head, body)) = read_message(&mut r) {
                        if up_w
                            .write_all(head.as_bytes())
                            .and_then(|_| up_w.write_all(b"\r\n"))
                            .and_then(|_| up_w.write_all(&body))
                            .is_err()
                        {
                            return;
                        }
                        let Some((head, body)) = read_message(&mut up_r) else {
                            return;
                        };
                        std::thread::sleep(delay);
                        if w.write_all(head.as_bytes())
                            .and_then(|_| w.write_all(b"\r\n"))
                            .and_then(|_| w.write_all(&body))
                            .is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        DelayProxy { addr }
    }
}

// ---------------------------------------------------------------------------------------------
// The real server

pub use vane_testkit::{Proc, sibling_bin};

/// A `vane-server` process on 127.0.0.1:0 (tract backend), killed on drop.
pub struct Server {
    _proc: Proc,
    pub addr: String,
}

impl Server {
    pub fn start(registry: &Path, extra: &[&str]) -> Server {
        let registry = registry.to_str().expect("UTF-8 registry path");
        let mut args = vec![
            "--registry",
            registry,
            "--addr",
            "127.0.0.1:0",
            "--backend",
            "tract",
            "--poll-interval-ms",
            "0",
        ];
        args.extend_from_slice(extra);
        let proc = Proc::spawn(
            &sibling_bin("vane-server"),
            &args,
            1,
            &[("VANE_LOG", "warn")],
        );
        let addr = proc.stdout_lines[0]
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {:?}", proc.stdout_lines))
            .to_string();
        let s = Server { _proc: proc, addr };
        let deadline = Instant::now() + Duration::from_secs(120);
        while get_status(&s.addr, "/v2/health/ready") != 200 {
            assert!(Instant::now() < deadline, "vane-server not ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

pub fn http(addr: &str, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return (0, String::new());
    };
    let _ = write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(body);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

fn get_status(addr: &str, path: &str) -> u16 {
    http(addr, "GET", path, b"").0
}

/// Tests measure latency: they run one at a time so they do not load each other's CPU.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A small JSON body file for `--body`.
pub fn body_file(dir: &Path) -> PathBuf {
    let p = dir.join("body.json");
    std::fs::write(
        &p,
        br#"{"inputs":[{"name":"input","shape":[1,1],"datatype":"FP32","data":[1]}]}"#,
    )
    .unwrap();
    p
}
