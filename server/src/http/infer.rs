//! The inference routes over HTTP: the head read and admitted ([`admit`],
//! [`crate::core::Core::admit`]), then the body read and scored ([`infer`],
//! [`crate::core::Core::infer`]) and the answer encoded in the request's protocol with the
//! timing headers.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Body;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{HeaderMap, Response};
use vane_protocol::{decode_infer, decode_records, encode_infer, encode_predictions};

use super::HttpState;
use super::body::{BodyHead, read_body};
use super::response::Resp;
use crate::core::{ApiError, Call, Ticket};

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

/// An admitted inference request ([`admit`]): it holds nothing of the request head, so the
/// head is dropped before the body is awaited and stays out of the request's future.
pub(super) struct Admitted<'s> {
    ticket: Ticket<'s>,
    api: Api,
    /// `Inference-Header-Content-Length`: the JSON head's length in a binary request.
    json_len: Option<usize>,
    /// `Content-Length` and `Content-Encoding`.
    body: BodyHead,
}

/// Reads what the head says about the request, then admits and routes it in the core.
pub(super) fn admit<'s>(
    state: &'s HttpState,
    headers: &HeaderMap,
    model: &str,
    version: Option<&str>,
    api: Api,
) -> Result<Admitted<'s>, ApiError> {
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
    let body = BodyHead::of(headers)?;
    let ticket = state.core.admit(Call {
        model,
        version,
        route_key: headers.get(ROUTE_KEY).map(HeaderValue::as_bytes),
        timeout,
        started,
        concurrent: state.open_connections() > 1,
    })?;
    Ok(Admitted {
        ticket,
        api,
        json_len,
        body,
    })
}

/// Reads the body of an admitted request, scores it, and encodes the answer in the
/// request's protocol with the timing headers.
pub(super) async fn infer<B>(
    state: &HttpState,
    req: Admitted<'_>,
    body: B,
) -> Result<Resp, ApiError>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let Admitted {
        ticket,
        api,
        json_len,
        body: head,
    } = req;
    // Read under the ticket: the admission limit counts requests whose bodies are arriving.
    let body = read_body(
        head,
        body,
        state.max_body_bytes,
        state.core.limits.body_read_timeout,
    )
    .await?;
    let answer = state
        .core
        .infer(ticket, body, |schema, bytes| match api {
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
    // (`into_boxed_slice` would spare `Bytes` its 24-byte shared header for a `realloc`;
    // interleaved runs could not tell the two apart: BENCHMARKS.md, run V.)
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.headers_mut() = response_headers(
        json_len,
        [
            m.version_header.clone(),
            number(out.queue.as_micros()),
            number(out.compute.as_micros()),
            number(answer.total.as_micros()),
            number(out.batch_rows as u128),
        ],
    );
    Ok(resp)
}

/// The timing headers, in the order [`response_headers`] takes their values.
const TIMING: [HeaderName; 5] = [MODEL_VERSION, QUEUE_US, COMPUTE_US, TOTAL_US, BATCH_ROWS];

/// An inference response's headers: `Content-Type` (and, for a binary body,
/// `Inference-Header-Content-Length`), then the [`TIMING`] headers with `values`.
///
/// Cloned from a map built once and filled in by position: no name is hashed per response,
/// and the clone's two allocations are sized to fit (a map grown by inserts takes a block
/// too large for the allocator's per-thread cache).
fn response_headers(json_len: Option<usize>, values: [HeaderValue; 5]) -> HeaderMap {
    static TEMPLATES: OnceLock<[HeaderMap; 2]> = OnceLock::new();
    let [json, binary] = TEMPLATES.get_or_init(|| {
        let build = |lead: &[(HeaderName, HeaderValue)]| {
            let mut h = HeaderMap::with_capacity(lead.len() + TIMING.len());
            for (name, value) in lead {
                h.insert(name.clone(), value.clone());
            }
            for name in TIMING {
                h.insert(name, HeaderValue::from_static("0"));
            }
            h
        };
        [
            build(&[(header::CONTENT_TYPE, CONTENT_JSON)]),
            build(&[
                (header::CONTENT_TYPE, CONTENT_BINARY),
                (INFERENCE_HEADER_LENGTH, HeaderValue::from_static("0")),
            ]),
        ]
    });
    let mut h = match json_len {
        None => json.clone(),
        Some(_) => binary.clone(),
    };
    let length = json_len.map(HeaderValue::from);
    for (slot, value) in h.values_mut().skip(1).zip(length.into_iter().chain(values)) {
        *slot = value;
    }
    h
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

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> [HeaderValue; 5] {
        ["7", "11", "13", "17", "19"].map(HeaderValue::from_static)
    }

    #[test]
    fn json_response_headers_carry_each_value_under_its_name() {
        let h = response_headers(None, values());
        assert_eq!(h.len(), 6);
        assert_eq!(h[header::CONTENT_TYPE], "application/json");
        assert_eq!(h[MODEL_VERSION], "7");
        assert_eq!(h[QUEUE_US], "11");
        assert_eq!(h[COMPUTE_US], "13");
        assert_eq!(h[TOTAL_US], "17");
        assert_eq!(h[BATCH_ROWS], "19");
        assert!(h.get(INFERENCE_HEADER_LENGTH).is_none());
    }

    #[test]
    fn binary_response_headers_add_the_json_head_length() {
        let h = response_headers(Some(1234), values());
        assert_eq!(h.len(), 7);
        assert_eq!(h[header::CONTENT_TYPE], "application/octet-stream");
        assert_eq!(h[INFERENCE_HEADER_LENGTH], "1234");
        assert_eq!(h[MODEL_VERSION], "7");
        assert_eq!(h[BATCH_ROWS], "19");
        // The template itself is untouched.
        assert_eq!(
            response_headers(Some(5), values())[INFERENCE_HEADER_LENGTH],
            "5"
        );
    }
}
