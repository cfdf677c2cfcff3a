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
//! - `ort_graphs.py`: ONNX Runtime's time per call on two or more ONNX files, interleaved in
//!   one process (compares two exports of the same model).

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

/// The peer servers' one serving loop (`hello`, `naive`): `threads` tokio workers, HTTP/1.1
/// keep-alive, TCP_NODELAY, like `vane-server`; prints `listening on http://ADDR`, then
/// answers every request with `handle`. Runs until killed.
pub fn serve_http1<F, Fut>(addr: &str, threads: usize, handle: F)
where
    F: Fn(hyper::Request<hyper::body::Incoming>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<
            Output = Result<
                hyper::Response<http_body_util::Full<bytes::Bytes>>,
                std::convert::Infallible,
            >,
        > + Send
        + 'static,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
        println!(
            "listening on http://{}",
            listener.local_addr().expect("addr")
        );
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let handle = handle.clone();
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(
                        hyper_util::rt::TokioIo::new(tcp),
                        hyper::service::service_fn(handle),
                    )
                    .await;
            });
        }
    });
}

/// The `[THREADS]` argument of the peer servers: default, the number of cores.
pub fn threads_arg(arg: Option<String>) -> usize {
    arg.and_then(|t| t.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
