//! Helpers the integration tests (`tests/it/`) of several crates share: [`Proc`] runs a
//! workspace binary as a real process (its address lines read, its stderr kept for failure
//! messages, killed on drop), [`sibling_bin`] finds another workspace binary (e.g.
//! `vane-server` from `vane-monitor`'s tests), and [`wait_for`] polls a condition with a
//! deadline. A dev-dependency only.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running child process; SIGKILLed on drop if still alive.
pub struct Proc {
    child: Child,
    /// The lines it printed on stdout before becoming ready (addresses).
    pub stdout_lines: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

impl Proc {
    /// Starts `bin args…` with `env` (and `VANE_LOG=info` unless `env` sets it) and reads
    /// `lines` lines of stdout (its addresses); stdout and stderr keep being drained.
    pub fn spawn(bin: &Path, args: &[&str], lines: usize, env: &[(&str, &str)]) -> Proc {
        let mut cmd = Command::new(bin);
        if !env.iter().any(|(k, _)| *k == "VANE_LOG") {
            cmd.env("VANE_LOG", "info");
        }
        let mut child = cmd
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut stdout_lines = Vec::new();
        for _ in 0..lines {
            let mut line = String::new();
            out.read_line(&mut line).expect("read stdout");
            if line.is_empty() {
                // Give the stderr reader a moment to collect why.
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "{} exited early; stderr:\n{}",
                    bin.display(),
                    stderr.lock().unwrap_or_else(|p| p.into_inner())
                );
            }
            stdout_lines.push(line.trim().to_string());
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = out.read_to_string(&mut sink);
        });
        Proc {
            child,
            stdout_lines,
            stderr,
        }
    }

    /// What it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let status = self.child.wait().expect("wait");
        // Give the stderr reader a moment to flush.
        std::thread::sleep(Duration::from_millis(50));
        status
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A workspace binary built beside the running test executable (e.g. `vane-server`).
///
/// `cargo test --workspace` (the README's test command) builds every package's binaries
/// before any test runs; a single-package run may need `cargo build -p <name>` first, which
/// the panic message says.
pub fn sibling_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    // target/<profile>/deps/it-<hash> → target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is missing: run the workspace tests (scripts/test.sh) or `cargo build -p {name}` first",
        p.display()
    );
    p
}

/// Polls `f` every 50 ms until it returns `Some`; panics naming `what` after `secs`.
pub fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
