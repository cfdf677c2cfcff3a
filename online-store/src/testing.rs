//! Test support shared by the workspace's integration tests: a throwaway `redis-server`.
//! Not part of the stable API.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` on a free port with persistence off, killed on drop.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
}

impl RedisServer {
    /// Starts one. If `redis-server` is not on `PATH`, prints why the caller skips and returns
    /// `None` — unless `VANE_REQUIRE_REDIS=1`, which turns the skip into a panic (CI).
    pub fn start(test: &str) -> Option<Self> {
        let required = std::env::var("VANE_REQUIRE_REDIS").is_ok_and(|v| v == "1");
        let found = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            if required {
                panic!(
                    "{test}: redis-server is not on PATH and VANE_REQUIRE_REDIS=1: install it (apt-get install -y redis-server)"
                );
            }
            eprintln!("SKIP {test}: redis-server is not on PATH (apt-get install -y redis-server)");
            return None;
        }
        let mut last_err = String::new();
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string()])
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args(["--dir", &std::env::temp_dir().to_string_lossy()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawning redis-server");
            let mut server = RedisServer {
                child: Some(child),
                port,
            };
            match server.wait_ready(Duration::from_secs(10)) {
                Ok(()) => return Some(server),
                Err(e) => {
                    last_err = e;
                    server.stop();
                }
            }
        }
        panic!("{test}: redis-server did not start: {last_err}");
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<(), String> {
        let t0 = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("exited with {status}"));
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
                let mut buf = [0u8; 16];
                if s.write_all(b"PING\r\n").is_ok()
                    && s.read(&mut buf)
                        .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
                {
                    return Ok(());
                }
            }
            if t0.elapsed() > limit {
                return Err(format!("no PONG on port {} within {limit:?}", self.port));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server now (to test a store that went down).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
