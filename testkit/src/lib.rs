//! Helpers the integration tests (`tests/it/`) of several crates share: [`sibling_bin`] finds
//! another workspace binary (e.g. `vane-server` from `vane-monitor`'s tests), and
//! [`wait_for`] polls a condition with a deadline. A dev-dependency only.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
