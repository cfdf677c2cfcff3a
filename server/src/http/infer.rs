//! The inference routes over HTTP: headers and body in, [`Core::infer`], the response encoded
//! by the request's protocol with the timing headers.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Body;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response};
use vane_protocol::{decode_infer, decode_records, encode_infer, encode_predictions};

use super::HttpState;
use super::body::read_body;
use super::response::Resp;
use crate::core::{ApiError, Call};

/// Which protocol a route speaks.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Api {
    /// Open Inference Protocol v2 (JSON, binary tensor extension).
    V2,
    /// KServe v1 `instances` → `predictions`.
    V1,
}

const CONTENT_JSON: HeaderValue = HeaderValue::from_static("application/json");
const CONTENT_BINARY: HeaderValue = HeaderValue::from_static("application/octet-stream");

pub(super) async fn infer<B>(
    state: &HttpState,
    req: Request<B>,
    model: &str,
    version: Option<&str>,
    api: Api,
) -> Result<Resp, ApiError>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let started = Instant::now();
    let timeout = header_timeout(&req)?;
    let json_len = match req.headers().get("inference-header-content-length") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .ok_or_else(|| {
                    ApiError::BadRequest(
                        "header Inference-Header-Content-Length must be a byte count".into(),
                    )
                })?,
        ),
    };
    let route_key = req
        .headers()
        .get("x-vane-route-key")
        .map(|v| v.as_bytes().to_vec());
    let call = Call {
        model,
        version,
        route_key: route_key.as_deref(),
        timeout,
        started,
        concurrent: state.open_connections() > 1,
    };
    let body = read_body(req, state.max_body_bytes, state.limits.body_read_timeout);
    let answer = state
        .core
        .infer(call, body, |schema, bytes| match api {
            Api::V2 => decode_infer(schema, bytes, json_len),
            Api::V1 => decode_records(schema, bytes),
        })
        .await?;
    let m = &answer.model;
    let out = &answer.done;
    let (body, json_len) = match api {
        Api::V2 => encode_infer(
            &m.schema,
            answer.id.as_deref(),
            answer.rows,
            &out.outputs,
            &answer.outputs,
        ),
        Api::V1 => (
            encode_predictions(&m.schema, answer.rows, &out.outputs),
            None,
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    let h = resp.headers_mut();
    match json_len {
        None => {
            h.insert(header::CONTENT_TYPE, CONTENT_JSON);
        }
        Some(n) => {
            h.insert(header::CONTENT_TYPE, CONTENT_BINARY);
            h.insert("inference-header-content-length", HeaderValue::from(n));
        }
    }
    h.insert("x-vane-model-version", m.version_header.clone());
    h.insert(
        "x-vane-queue-us",
        HeaderValue::from(out.queue.as_micros() as u64),
    );
    h.insert(
        "x-vane-compute-us",
        HeaderValue::from(out.compute.as_micros() as u64),
    );
    h.insert(
        "x-vane-total-us",
        HeaderValue::from(started.elapsed().as_micros() as u64),
    );
    h.insert(
        "x-vane-batch-rows",
        HeaderValue::from(out.batch_rows as u64),
    );
    Ok(resp)
}

fn header_timeout<B>(req: &Request<B>) -> Result<Option<Duration>, ApiError> {
    match req.headers().get("x-vane-timeout-ms") {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .filter(|ms| *ms > 0)
            .map(|ms| Some(Duration::from_millis(ms)))
            .ok_or_else(|| {
                ApiError::BadRequest(
                    "header x-vane-timeout-ms must be a positive integer (milliseconds)".into(),
                )
            }),
    }
}
