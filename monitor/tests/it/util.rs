//! Test harness: real `vane-monitor` and `vane-server` processes on 127.0.0.1:0.
//!
//! `vane-monitor` is this package's binary. `vane-server` and `vane-models` are the
//! workspace's other binaries, found next to this test's target directory; `cargo test
//! --workspace` (the README's test command) builds them before any test runs.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const MONITOR: &str = env!("CARGO_BIN_EXE_vane-monitor");

pub use vane_testkit::{Proc, sibling_bin};

/// A monitor process: its HTTP address and its TCP ingest address.
pub struct Monitor {
    pub proc: Proc,
    pub http: String,
    pub ingest: String,
}

impl Monitor {
    /// `vane-monitor serve --http 127.0.0.1:0 --listen tcp://127.0.0.1:0 <args>`.
    pub fn start(args: &[&str]) -> Monitor {
        Self::start_on("tcp://127.0.0.1:0", args)
    }

    pub fn start_on(listen: &str, args: &[&str]) -> Monitor {
        let mut full = vec!["serve", "--http", "127.0.0.1:0", "--listen", listen];
        full.extend_from_slice(args);
        let proc = Proc::spawn(Path::new(MONITOR), &full, 2, &[]);
        let http = proc.stdout_lines[0]
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {:?}", proc.stdout_lines))
            .to_string();
        let ingest = proc.stdout_lines[1]
            .strip_prefix("ingest on ")
            .unwrap_or_else(|| panic!("unexpected second line {:?}", proc.stdout_lines))
            .to_string();
        Monitor { proc, http, ingest }
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(&self.http, path)
    }

    pub fn drift(&self) -> Value {
        let (status, body) = self.get("/drift");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("JSON")
    }

    pub fn metrics(&self) -> String {
        self.get("/metrics").1
    }
}

/// A server process.
pub struct Server {
    pub proc: Proc,
    pub addr: String,
}

impl Server {
    pub fn start(registry: &Path, args: &[&str]) -> Server {
        let bin = sibling_bin("vane-server");
        let mut full = vec![
            "--registry".to_string(),
            registry.display().to_string(),
            "--addr".into(),
            "127.0.0.1:0".into(),
        ];
        full.extend(args.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        let proc = Proc::spawn(&bin, &refs, 1, &[]);
        let addr = proc.stdout_lines[0]
            .strip_prefix("listening on http://")
            .expect("address line")
            .to_string();
        let s = Server { proc, addr };
        let deadline = Instant::now() + Duration::from_secs(120);
        while http_get(&s.addr, "/v2/health/ready").0 != 200 {
            assert!(
                Instant::now() < deadline,
                "server not ready:\n{}",
                s.proc.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }
}

/// Sum of the samples of every series whose line starts with `prefix`.
pub fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Status, lower-cased headers and body of an exchange.
pub type Exchange = (u16, Vec<(String, String)>, String);

/// A minimal blocking HTTP/1.1 exchange.
pub fn http(addr: &str, method: &str, path: &str, body: &[u8]) -> std::io::Result<Exchange> {
    http_with(addr, method, path, "", body)
}

/// [`http`] with extra header lines (`"name: value\r\n"` each).
pub fn http_with(
    addr: &str,
    method: &str,
    path: &str,
    headers: &str,
    body: &[u8],
) -> std::io::Result<Exchange> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-type: application/json\r\n{headers}content-length: {}\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok((status, headers, body.to_string()))
}

pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    match http(addr, "GET", path, b"") {
        Ok((s, _, b)) => (s, b),
        Err(_) => (0, String::new()),
    }
}

pub use vane_testkit::wait_for;

/// Resident memory of a process in bytes (Linux).
pub fn rss_bytes(pid: u32) -> u64 {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap_or_default();
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or(0)
        * 4096
}
