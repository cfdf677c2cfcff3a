//! Minimal hyper 1 server: same runtime shape as vane-server (multi-thread tokio, HTTP/1.1
//! keep-alive, TCP_NODELAY), reads the body, answers a fixed OIP-sized JSON body. The ceiling
//! for end-to-end comparisons.
//!
//!   hello [ADDR] [THREADS]     (default 127.0.0.1:8090, number of cores)

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming};

const BODY: &str = r#"{"model_name":"credit-risk","model_version":"1","outputs":[{"name":"probability","datatype":"FP32","shape":[1,1],"data":[0.1234567]}]}"#;

async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let _ = req.into_body().collect().await;
    let mut resp = Response::new(Full::new(Bytes::from_static(BODY.as_bytes())));
    resp.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8090".into());
    let threads = vane_benches::threads_arg(args.next());
    vane_benches::serve_http1(&addr, threads, handle);
}
