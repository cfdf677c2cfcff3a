//! Fixtures: version files, a CLI runner, and a tiny static file server over `std::net` that
//! implements ETag / If-None-Match (or Last-Modified / If-Modified-Since) and counts what it
//! serves.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::json;
use vane_registry::{PublishRequest, rfc3339_utc, sha256_hex};

pub fn signature_json() -> Vec<u8> {
    serde_json::to_vec_pretty(&json!({
        "inputs": [
            {"name": "income", "dtype": "FP32", "shape": [-1], "kind": "numeric"},
            {"name": "term", "dtype": "BYTES", "shape": [-1], "kind": "categorical", "vocab": ["36", "60"]}
        ],
        "tensor": {"name": "input", "datatype": "FP32", "shape": [-1, 2]},
        "outputs": [{"name": "probability", "datatype": "FP32", "shape": [-1, 1]}]
    }))
    .unwrap()
}

pub fn profile_json() -> Vec<u8> {
    serde_json::to_vec_pretty(&json!({
        "rows": 100,
        "features": [
            {"kind": "numeric", "name": "income", "edges": [10.0, 20.0], "shares": [0.3, 0.3, 0.35],
             "missing_share": 0.05, "sample": [5.0, 15.0, 25.0]},
            {"kind": "categorical", "name": "term", "categories": ["36", "60"], "shares": [0.6, 0.4],
             "unseen_share": 0.0}
        ],
        "score": {"kind": "numeric", "name": "score", "edges": [0.5], "shares": [0.7, 0.3],
                  "missing_share": 0.0, "sample": [0.1, 0.9]}
    }))
    .unwrap()
}

/// Deterministic "model" bytes: big enough to span several reads.
pub fn model_bytes(seed: u8) -> Vec<u8> {
    (0..200_000u32)
        .map(|i| (i.wrapping_mul(31) as u8) ^ seed)
        .collect()
}

pub fn request(model: &str, seed: u8) -> PublishRequest {
    PublishRequest {
        model: model.into(),
        files: vec![
            ("model.onnx".into(), model_bytes(seed)),
            ("signature.json".into(), signature_json()),
            ("profile.json".into(), profile_json()),
        ],
        lineage: json!({"tool": "it", "seed": seed}),
        metrics: json!({"auc": 0.75 + f64::from(seed) / 1000.0}),
    }
}

/// Writes a publishable directory: model.onnx, signature.json, profile.json, notes.txt.
pub fn version_dir(parent: &Path, seed: u8) -> PathBuf {
    let dir = parent.join(format!("v{seed}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("model.onnx"), model_bytes(seed)).unwrap();
    std::fs::write(dir.join("signature.json"), signature_json()).unwrap();
    std::fs::write(dir.join("profile.json"), profile_json()).unwrap();
    std::fs::write(dir.join("notes.txt"), format!("seed {seed}\n")).unwrap();
    dir
}

/// Runs the `vane-registry` binary with a clean registry environment.
pub fn cli(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vane-registry"));
    cmd.args(args)
        .env_remove("VANE_REGISTRY")
        .env_remove("VANE_CACHE_DIR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run vane-registry")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs the CLI and asserts success; returns stdout.
#[track_caller]
pub fn cli_ok(args: &[&str], env: &[(&str, &str)]) -> String {
    let o = cli(args, env);
    assert!(
        o.status.success(),
        "vane-registry {args:?} failed: {}{}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Runs the CLI and asserts it failed with exit code 1; returns stderr.
#[track_caller]
pub fn cli_err(args: &[&str], env: &[(&str, &str)]) -> String {
    let o = cli(args, env);
    assert_eq!(
        o.status.code(),
        Some(1),
        "vane-registry {args:?}: {}{}",
        stdout(&o),
        stderr(&o)
    );
    stderr(&o)
}

/// A port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// How the static server validates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validator {
    ETag,
    LastModified,
}

#[derive(Debug, Default)]
pub struct Stats {
    /// Path → requests.
    pub requests: HashMap<String, u32>,
    /// Path → `200` answers (bodies sent).
    pub ok: HashMap<String, u32>,
    /// Path → `304` answers.
    pub not_modified: HashMap<String, u32>,
}

/// Serves `root` over HTTP/1.1 on 127.0.0.1 (one thread per connection, `Connection: close`).
pub struct StaticServer {
    pub addr: SocketAddr,
    pub stats: Arc<Mutex<Stats>>,
    /// Answer the next N requests `503`.
    pub fail_next: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl StaticServer {
    pub fn start(root: &Path, validator: Validator) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stats = Arc::new(Mutex::new(Stats::default()));
        let fail_next = Arc::new(AtomicU32::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let root = root.to_path_buf();
        let accept = {
            let (stats, fail_next, stop) = (stats.clone(), fail_next.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (root, stats, fail_next) = (root.clone(), stats.clone(), fail_next.clone());
                    std::thread::spawn(move || {
                        let _ = serve(conn, &root, validator, &stats, &fail_next);
                    });
                }
            })
        };
        Self {
            addr,
            stats,
            fail_next,
            stop,
            accept: Some(accept),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self, path: &str) -> u32 {
        self.stats
            .lock()
            .unwrap()
            .requests
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    pub fn ok(&self, path: &str) -> u32 {
        self.stats
            .lock()
            .unwrap()
            .ok
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    pub fn not_modified(&self, path: &str) -> u32 {
        self.stats
            .lock()
            .unwrap()
            .not_modified
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Bodies sent for paths under `prefix`.
    pub fn downloads_under(&self, prefix: &str) -> u32 {
        self.stats
            .lock()
            .unwrap()
            .ok
            .iter()
            .filter(|(p, _)| p.starts_with(prefix))
            .map(|(_, n)| n)
            .sum()
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wake the accept loop
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

/// RFC 7231 IMF-fixdate of a Unix time.
fn http_date(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let iso = rfc3339_utc(secs); // YYYY-MM-DDTHH:MM:SSZ
    let month: usize = iso[5..7].parse().unwrap();
    format!(
        "{}, {} {} {} {} GMT",
        DAYS[((secs / 86_400) % 7) as usize],
        &iso[8..10],
        MONTHS[month - 1],
        &iso[0..4],
        &iso[11..19]
    )
}

fn serve(
    mut conn: TcpStream,
    root: &Path,
    validator: Validator,
    stats: &Mutex<Stats>,
    fail_next: &AtomicU32,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    let path = target.split('?').next().unwrap_or("/").to_string();
    stats
        .lock()
        .unwrap()
        .requests
        .entry(path.clone())
        .and_modify(|n| *n += 1)
        .or_insert(1);
    let respond = |conn: &mut TcpStream, status: &str, extra: &[(String, String)], body: &[u8]| {
        let mut head = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        for (k, v) in extra {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        conn.write_all(head.as_bytes())?;
        if method != "HEAD" {
            conn.write_all(body)?;
        }
        conn.flush()
    };
    if fail_next.load(Ordering::SeqCst) > 0 {
        fail_next.fetch_sub(1, Ordering::SeqCst);
        return respond(&mut conn, "503 Service Unavailable", &[], b"try later");
    }
    if method != "GET" && method != "HEAD" {
        return respond(&mut conn, "405 Method Not Allowed", &[], b"");
    }
    let rel = path.trim_start_matches('/');
    let file = root.join(rel);
    if rel.split('/').any(|s| s == ".." || s.starts_with('.')) || !file.is_file() {
        return respond(&mut conn, "404 Not Found", &[], b"not found");
    }
    let mut body = Vec::new();
    std::fs::File::open(&file)?.read_to_end(&mut body)?;
    let (name, value, fresh) = match validator {
        Validator::ETag => {
            let etag = format!("\"{}\"", &sha256_hex(&body)[..16]);
            let fresh = headers.get("if-none-match") == Some(&etag);
            ("ETag", etag, fresh)
        }
        Validator::LastModified => {
            let mtime = std::fs::metadata(&file)?
                .modified()?
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let lm = http_date(mtime);
            let fresh = headers.get("if-modified-since") == Some(&lm);
            ("Last-Modified", lm, fresh)
        }
    };
    let extra = [(name.to_string(), value)];
    if fresh {
        stats
            .lock()
            .unwrap()
            .not_modified
            .entry(path)
            .and_modify(|n| *n += 1)
            .or_insert(1);
        return respond(&mut conn, "304 Not Modified", &extra, b"");
    }
    stats
        .lock()
        .unwrap()
        .ok
        .entry(path)
        .and_modify(|n| *n += 1)
        .or_insert(1);
    respond(&mut conn, "200 OK", &extra, &body)
}

#[test]
fn http_date_is_imf_fixdate() {
    assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(http_date(1_795_718_101), "Thu, 26 Nov 2026 18:35:01 GMT");
}
