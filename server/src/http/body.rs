//! Request bodies, read under the server's limits: a byte cap (413, with the rest of the body
//! drained so the client reads the answer) and a read deadline (408).

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::HeaderMap;
use hyper::body::Body;
use hyper::header;

use crate::core::ApiError;

/// Most bytes drained from a refused body so the client reads our 413 instead of a reset.
const LINGER_BYTES: usize = 64 << 20;
const LINGER_TIME: Duration = Duration::from_secs(2);

/// The body length a request head declares (`Content-Length`), if any.
pub(super) fn declared_len(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<u64>().ok())
}

/// Reads the whole body within `limits.body_read_timeout` (else 408) and `max_body_bytes`
/// (else 413); `declared` is the head's [`declared_len`].
pub(super) async fn read_body<B>(
    declared: Option<u64>,
    body: B,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, ApiError>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let mut read = pin!(read_body_within(declared, body, limit));
    // Most bodies arrived with their head: no timer is armed (nor the clock read) for them.
    if let Poll::Ready(r) = poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await {
        return r;
    }
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or_else(|_| {
            Err(ApiError::RequestTimeout(format!(
                "request body not received within {} ms (body_read_timeout_ms)",
                timeout.as_millis()
            )))
        })
}

async fn read_body_within<B>(
    declared: Option<u64>,
    body: B,
    limit: usize,
) -> Result<Bytes, ApiError>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let too_large = || {
        ApiError::PayloadTooLarge(format!(
            "request body exceeds the {limit}-byte limit (max_body_bytes)"
        ))
    };
    let mut body = body;
    if declared.is_some_and(|n| n > limit as u64) {
        linger(body);
        return Err(too_large());
    }
    let mut buf = BytesMut::new();
    let mut first: Option<Bytes> = None;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::BadRequest(format!("could not read request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            let held = first.as_ref().map_or(0, Bytes::len) + buf.len();
            if held + data.len() > limit {
                linger(body);
                return Err(too_large());
            }
            // Most bodies arrive as one frame: keep it without copying.
            match first.take() {
                None if buf.is_empty() => first = Some(data),
                prev => {
                    if let Some(prev) = prev {
                        buf.reserve(
                            declared
                                .map_or(0, |n| n as usize)
                                .max(prev.len() + data.len()),
                        );
                        buf.extend_from_slice(&prev);
                    }
                    buf.extend_from_slice(&data);
                }
            }
        }
    }
    Ok(first.unwrap_or_else(|| buf.freeze()))
}

/// Reads and discards the rest of a refused body in the background (bounded in bytes and
/// time): closing a socket with unread input makes the kernel send a reset, which can destroy
/// the error response before the client reads it.
fn linger<B>(mut body: B)
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
{
    tokio::spawn(async move {
        let drain = async {
            let mut seen = 0usize;
            while let Some(Ok(frame)) = body.frame().await {
                seen += frame.data_ref().map_or(0, |d| d.len());
                if seen > LINGER_BYTES {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(LINGER_TIME, drain).await;
    });
}
