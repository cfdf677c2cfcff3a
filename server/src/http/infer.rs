//! The inference routes over HTTP: headers and body in, [`Core::infer`], the response encoded
//! by the request's protocol with the timing headers.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Body;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{HeaderMap, Response};
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

/// Numbers below this are header values built once (the timing headers of most requests
/// then allocate nothing); larger ones are formatted per request.
const NUMBERS: usize = 10_000;

fn number(n: u128) -> HeaderValue {
    static TABLE: OnceLock<Vec<HeaderValue>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        (0..NUMBERS)
            .map(|i| HeaderValue::from_static(Box::leak(i.to_string().into_boxed_str())))
            .collect()
    });
    match usize::try_from(n).ok().and_then(|i| table.get(i)) {
        Some(v) => v.clone(),
        None => HeaderValue::from(u64::try_from(n).unwrap_or(u64::MAX)),
    }
}

// Header names built at compile time (a `&str` name is parsed per lookup, and allocated per
// insert).
const INFERENCE_HEADER_LENGTH: HeaderName =
    HeaderName::from_static("inference-header-content-length");
const MODEL_VERSION: HeaderName = HeaderName::from_static("x-vane-model-version");
const QUEUE_US: HeaderName = HeaderName::from_static("x-vane-queue-us");
const COMPUTE_US: HeaderName = HeaderName::from_static("x-vane-compute-us");
const TOTAL_US: HeaderName = HeaderName::from_static("x-vane-total-us");
const BATCH_ROWS: HeaderName = HeaderName::from_static("x-vane-batch-rows");
const ROUTE_KEY: HeaderName = HeaderName::from_static("x-vane-route-key");
const TIMEOUT_MS: HeaderName = HeaderName::from_static("x-vane-timeout-ms");
const CONTENT_JSON: HeaderValue = HeaderValue::from_static("application/json");
const CONTENT_BINARY: HeaderValue = HeaderValue::from_static("application/octet-stream");

pub(super) async fn infer<B>(
    state: &HttpState,
    headers: &HeaderMap,
    body: B,
    model: &str,
    version: Option<&str>,
    api: Api,
) -> Result<Resp, ApiError>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let started = Instant::now();
    let timeout = header_timeout(headers)?;
    let json_len = match headers.get(INFERENCE_HEADER_LENGTH) {
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
    let route_key = headers.get(ROUTE_KEY).map(|v| v.as_bytes().to_vec());
    let call = Call {
        model,
        version,
        route_key: route_key.as_deref(),
        timeout,
        started,
        concurrent: state.open_connections() > 1,
    };
    let body = read_body(
        headers,
        body,
        state.max_body_bytes,
        state.core.limits.body_read_timeout,
    );
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
    // Sized once for every header below: no regrowth per response.
    h.reserve(8);
    match json_len {
        None => {
            h.insert(header::CONTENT_TYPE, CONTENT_JSON);
        }
        Some(n) => {
            h.insert(header::CONTENT_TYPE, CONTENT_BINARY);
            h.insert(INFERENCE_HEADER_LENGTH, HeaderValue::from(n));
        }
    }
    h.insert(MODEL_VERSION, m.version_header.clone());
    h.insert(QUEUE_US, number(out.queue.as_micros()));
    h.insert(COMPUTE_US, number(out.compute.as_micros()));
    h.insert(TOTAL_US, number(answer.total.as_micros()));
    h.insert(BATCH_ROWS, number(out.batch_rows as u128));
    Ok(resp)
}

fn header_timeout(headers: &HeaderMap) -> Result<Option<Duration>, ApiError> {
    match headers.get(TIMEOUT_MS) {
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
