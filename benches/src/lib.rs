//! `vane-benches`: Vane's benchmarks.
//!
//! - `benches/backends.rs` (criterion): in-process backend throughput per example model,
//!   backend (ort, tract) and batch size.
//! - `src/bin/hello.rs`: a minimal hyper 1 server that reads the request body and answers a
//!   fixed JSON body — the ceiling Vane's end-to-end numbers are compared against, measured
//!   with the same client (`wrk`) in the same run.
//! - `wrk/*.lua` and `run-e2e.sh`: the end-to-end runs recorded in `BENCHMARKS.md`.
