//! `vane-benches`: Vane's benchmarks.
//!
//! - `benches/backends.rs` (criterion): in-process backend throughput per example model,
//!   backend (ort, tract) and batch size.
//! - `src/bin/hello.rs`: a minimal hyper 1 server that reads the request body and answers a
//!   fixed JSON body — the ceiling Vane's end-to-end numbers are compared against, measured
//!   with the same client (`wrk`) in the same run.
//! - `src/bin/featurebench.rs`: feature store figures — point-in-time join rows/s over a
//!   generated world, and online lookup latency (HDR histogram) against the embedded store or
//!   Redis.
//! - `wrk/*.lua` and `run-e2e.sh`: the end-to-end runs recorded in `BENCHMARKS.md`.

/// Turns off library backtrace capture (`RUST_LIB_BACKTRACE=0`) unless it was asked for, as
/// `vane-server` does at startup: tract 0.23's tree ensembles build an error value per leaf
/// visit, and with `RUST_BACKTRACE=1` in the environment each one captures a backtrace, which
/// makes tree scoring about 10× slower. Call first, before any thread starts.
pub fn quiet_library_backtraces() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: called at the start of a single-threaded benchmark main.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
}
