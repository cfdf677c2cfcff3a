//! The `vane-server` command line's entry point, shared by the `vane-server` binary and
//! `vane serve`.

use std::process::ExitCode;

use crate::config::{Cli, Config};

/// Runs the server from parsed flags until it is told to stop; logs to stderr (`VANE_LOG`).
/// Binaries call [`quiet_library_backtraces`] first.
pub fn main(cli: Cli) -> ExitCode {
    vane_exposition::init_logging();
    let cfg = match Config::from_cli(cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    tracing::info!(config = %serde_json::to_string(&cfg).unwrap_or_default(), "effective configuration");
    vane_exposition::run_service(cfg.http_threads, "vane-http", crate::run(cfg))
}

/// tract 0.23's tree ensembles build an error value per leaf visit; with `RUST_BACKTRACE=1`
/// each one would capture a backtrace (tree scoring ~10× slower). Panic backtraces still
/// follow `RUST_BACKTRACE`; library ones only when `RUST_LIB_BACKTRACE` asks for them.
///
/// # Safety
/// Sets an environment variable: call it first thing in `main`, before any other thread
/// exists.
pub unsafe fn quiet_library_backtraces() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: the caller guarantees no other thread exists yet.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
}
